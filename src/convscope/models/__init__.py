"""Models: the zoo of lesson architectures, YAML layer lists, the user's own models, the explained summary.

    from convscope.models import create_model, list_models, summarize, load_model
    model = create_model("mnist_convnet", (28, 28, 1), num_classes=10)   # or "spec.yaml", or a keras.Model
    print(summarize(model).to_text())
    print(format_models_table())                                        # `convscope models`
    model = load_model("runs/mnist/model.keras")                       # safe-mode loading
    load_weights(model, "model.weights.best.hdf5")                     # weights into an architecture

Modules: ``zoo`` (registry and architectures; what `convscope models` lists about each is
``convscope.model_catalog``, which needs no Keras), ``spec`` (YAML layer lists),
``loading`` (create_model, ensure_built, load_model, load_model_for_data), ``weights_file`` (HDF5
weights into an architecture), ``summary`` (shapes, parameters and their arithmetic).
"""

from convscope.model_catalog import format_models_table
from convscope.models.loading import create_model, ensure_built, is_model_file, load_model, load_model_for_data
from convscope.models.spec import ALLOWED_LAYERS, create_model_from_spec, read_spec
from convscope.models.summary import LayerSummary, ModelSummary, summarize
from convscope.models.weights_file import describe_model_file, load_weights
from convscope.models.zoo import MODELS, ModelInfo, list_models, register_model

__all__ = [
    "ALLOWED_LAYERS",
    "MODELS",
    "LayerSummary",
    "ModelInfo",
    "ModelSummary",
    "create_model",
    "create_model_from_spec",
    "describe_model_file",
    "ensure_built",
    "format_models_table",
    "is_model_file",
    "list_models",
    "load_model",
    "load_model_for_data",
    "load_weights",
    "read_spec",
    "register_model",
    "summarize",
]
