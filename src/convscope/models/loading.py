"""Getting a model: by name, from a YAML spec, from the user's own Keras model, or from a file.

    from convscope.models import create_model, ensure_built, load_model
    model = create_model("mnist_convnet", (28, 28, 1), num_classes=10)      # the zoo
    model = create_model("my_cnn.yaml", (28, 28, 1), num_classes=10)        # a layer list
    model = create_model(keras.Sequential([...]), (28, 28, 1), 10)          # your own, even never called
    model = load_model("runs/mnist/model.keras")                            # safe-mode loading

Everything downstream (training, activation maps, Grad-CAM) needs a model with
defined ``inputs`` and ``outputs``. A notebook's ``keras.Sequential([...])``
without ``keras.Input`` has neither until it is called ("The layer sequential
has never been called and thus has no defined input"); ``ensure_built`` builds
it in place for the dataset's input shape, keeping the user's layer objects and
weights.

Loading a file runs only Keras' own classes: ``.keras`` files are checked for
Lambda layers and for classes from outside Keras before Keras reads them with
``safe_mode=True``; legacy ``.h5`` files are refused unless the user says they
trust the file (``--trust-model``), because they can carry arbitrary code.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import keras

from convscope.data.raw import check_zip_members, describe_error
from convscope.errors import ConvscopeError
from convscope.models.spec import create_model_from_spec
from convscope.models.weights_file import LEGACY_MODEL, load_weights, read_hdf5_kind
from convscope.models.zoo import MODELS, build_registered_model, describe_keras_error

SPEC_SUFFIXES = (".yaml", ".yml")
LEGACY_SUFFIXES = (".h5", ".hdf5")
# Packages whose classes Keras itself agrees to import while loading (keras.src.saving.serialization_lib).
KERAS_PACKAGES = ("keras", "keras_hub", "keras_cv", "keras_nlp")
MAX_CONFIG_BYTES = 64 << 20  # config.json of the zoo models is 5-20 KB; a bigger one is a bomb, not a model
MAX_MEMBER_BYTES = 16 << 30  # weights of a CPU image classifier are MBs; 16 GiB declared is an archive bomb


def create_model(model: str | Path | keras.Model, input_shape: tuple, num_classes: int) -> keras.Model:
    """Return a built, uncompiled model for ``input_shape`` images and ``num_classes`` classes.

    Args:
        model: a registered name (`convscope models`), a path to a YAML layer list
            (.yaml/.yml), or a keras.Model built by the user (Sequential or functional,
            possibly never called).
        input_shape: one image's shape, e.g. (28, 28, 1) (channel axis per
            ``keras.config.image_data_format()``).
        num_classes: number of classes; the model must output one score per class.

    Returns:
        A keras.Model with defined inputs and outputs. A user's model is returned
        itself (same layers and weights), built if it was never called.

    Raises:
        ConvscopeError: unknown name, bad spec file, or a user model that cannot take
            ``input_shape`` or does not output ``num_classes`` scores.

    Example:
        >>> model = create_model("mnist_convnet", (28, 28, 1), 10)
        >>> model.count_params()
        34826
    """
    input_shape = tuple(int(size) for size in input_shape)
    if isinstance(model, keras.Model):
        model = ensure_built(model, input_shape)
        output_shapes = [tuple(output.shape[1:]) for output in model.outputs]
        if output_shapes != [(num_classes,)]:
            raise ConvscopeError(
                f"model '{model.name}' outputs {', '.join(map(str, output_shapes))} per image, expected "
                f"({num_classes},) (one score per class); end it with keras.layers.Dense({num_classes})"
            )
        return model
    if not isinstance(model, (str, Path)):
        raise ConvscopeError(
            f"expected a model name, a .yaml path or a keras.Model, got {type(model).__name__}"
        )
    text = str(model)
    if text.lower().endswith(SPEC_SUFFIXES):
        return create_model_from_spec(text, input_shape, num_classes)
    if is_model_file(text):
        raise ConvscopeError(
            f"{text}: a saved model file is not an architecture to train; evaluate it with "
            f"`convscope evaluate --model {text} --dataset D` (convscope.pipeline.import_model), "
            "or pass a registered name or a .yaml layer list"
        )
    return build_registered_model(text, input_shape, num_classes)


def is_model_file(name: str | Path) -> bool:
    """True for the name of a saved model file (.keras, .h5, .hdf5), False for an architecture's name or YAML.

    Example:
        >>> is_model_file("lesson.keras"), is_model_file("cnn_2conv")
        (True, False)
    """
    text = str(name)
    return text not in MODELS and text.lower().endswith((".keras", *LEGACY_SUFFIXES))


def load_model_for_data(
    model: str | Path,
    input_shape: tuple,
    num_classes: int,
    weights: str | Path | None = None,
    trust: bool = False,
    data_name: str = "the data",
) -> keras.Model:
    """A model made outside convscope, ready for ``input_shape`` images and ``num_classes`` classes.

    Args:
        model: a saved model file (.keras; legacy .h5/.hdf5 with ``trust``), or an
            architecture (registered name or .yaml layer list) for ``weights``.
        input_shape: one image's shape, as the dataset prepares it.
        num_classes: the dataset's number of classes.
        weights: HDF5 weights loaded into the model (``load_weights``); needed for an architecture.
        trust: the user vouches for the file (``--trust-model``).
        data_name: how messages name the data, e.g. "dataset mnist-sample".

    Returns:
        The built model.

    Raises:
        ConvscopeError: one line naming both sides when the model takes other images or
            outputs another number of classes than the data has, or when the weights do not fit.

    Example:
        >>> model = load_model_for_data("cnn_2conv", (28, 28, 1), 10, weights="model.weights.best.hdf5")  # doctest: +SKIP
    """
    input_shape = tuple(int(size) for size in input_shape)
    text = str(model)
    if is_model_file(text):
        loaded = ensure_built(load_model(text, trust=trust))
        model_shape = tuple(loaded.inputs[0].shape[1:])
        if len(model_shape) != len(input_shape) or any(size not in (None, given) for size, given in zip(model_shape, input_shape)):
            raise ConvscopeError(
                f"{text}: the model takes images of shape {model_shape}, {data_name} has {input_shape}; pass the dataset "
                "it was trained on with --dataset (an image folder: --image-size H,W and --color-mode)"
            )
        outputs = [tuple(output.shape[1:]) for output in loaded.outputs]
        if outputs != [(num_classes,)]:
            scores = f"{outputs[0][-1]} classes" if len(outputs) == 1 and len(outputs[0]) == 1 else f"outputs of shape {', '.join(map(str, outputs))}"
            raise ConvscopeError(
                f"{text}: the model gives {scores} per image, {data_name} has {num_classes} classes; "
                "pass the dataset it was trained on with --dataset"
            )
        built = create_model(loaded, input_shape, num_classes)
    else:
        built = create_model(text, input_shape, num_classes)
        if weights is None:
            raise ConvscopeError(
                f"--model {text}: an architecture alone has untrained weights; pass the weights it was trained to "
                "with --weights FILE, or a saved model file (.keras; .h5 with --trust-model)"
            )
    if weights is not None:
        load_weights(built, weights)
    return built


def _has_graph(model: keras.Model) -> bool:
    try:
        return bool(model.inputs) and bool(model.outputs)
    except AttributeError:  # a Sequential never called, or a subclassed model
        return False


def ensure_built(model: keras.Model, input_shape: tuple | None = None) -> keras.Model:
    """Return ``model`` with defined inputs and outputs, building a never-called Sequential in place.

    Args:
        model: a keras Sequential or functional model.
        input_shape: one image's shape; needed only for a Sequential that was never
            called; checked against the model's input otherwise.

    Returns:
        The same model object (same layers, same weights), so that
        ``keras.Model(model.inputs, layer.output)`` works for every layer.

    Raises:
        ConvscopeError: the model cannot take ``input_shape``, has several inputs, or
            is a subclassed model (no layer graph to look inside).

    Example:
        >>> model = keras.Sequential([keras.layers.Conv2D(8, 3), keras.layers.Flatten(), keras.layers.Dense(10)])
        >>> ensure_built(model, (28, 28, 1)).layers[0].output.shape
        (None, 26, 26, 8)
    """
    if not isinstance(model, keras.Model):
        raise ConvscopeError(f"expected a keras.Model, got {type(model).__name__}")
    if _has_graph(model):
        if len(model.inputs) != 1:
            raise ConvscopeError(
                f"model '{model.name}' has {len(model.inputs)} inputs; convscope needs one image input"
            )
        model_shape = tuple(model.inputs[0].shape[1:])
        if input_shape is not None and (
            len(model_shape) != len(input_shape)
            or any(expected is not None and expected != given for expected, given in zip(model_shape, input_shape))
        ):
            raise ConvscopeError(
                f"model '{model.name}' expects images of shape {model_shape}, the data has {tuple(input_shape)}; "
                "rebuild the model with keras.Input(shape) matching the data, or resize the data"
            )
        return model
    if not isinstance(model, keras.Sequential):
        raise ConvscopeError(
            f"model '{model.name}' is a subclassed keras.Model, which has no layer graph to look inside; "
            "write it as keras.Sequential([...]) or with the functional API (keras.Input ... keras.Model(inputs, outputs))"
        )
    if input_shape is None:
        raise ConvscopeError(
            f"model '{model.name}' has never been called, so its input shape is unknown; "
            "pass input_shape, or start the Sequential with keras.Input(shape)"
        )
    try:
        # Sequential.build puts an Input in front of the user's layers and wires them
        # into a graph; the layer objects (and any weights already there) stay the same.
        model.build((None, *input_shape))
    except (ValueError, TypeError) as error:
        raise ConvscopeError(
            f"model '{model.name}' cannot take images of shape {tuple(input_shape)}: {describe_keras_error(error)}"
        ) from None
    assert _has_graph(model), "Sequential.build left the model without inputs/outputs"
    return model


def load_model(path: str | Path, trust: bool = False, compile: bool = False) -> keras.Model:
    """Load a saved model, refusing files that would run code on loading.

    Args:
        path: a ``.keras`` file (or a legacy ``.h5``/``.hdf5`` with ``trust=True``).
        trust: the user vouches for the file (``--trust-model``): allow legacy HDF5
            and Lambda layers.
        compile: also restore the optimizer, loss and metrics (not needed to predict).

    Returns:
        The loaded keras.Model.

    Raises:
        ConvscopeError: the file is missing, corrupt, legacy HDF5 without ``trust``, or
            holds a Lambda layer or a class from outside Keras.

    Example:
        >>> model = load_model("runs/mnist/model.keras")   # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise ConvscopeError(f"{path}: model file not found; pass the path of a .keras file saved by Keras or convscope")
    suffix = path.suffix.lower()
    if suffix in LEGACY_SUFFIXES:
        if read_hdf5_kind(path) != LEGACY_MODEL:  # reading attributes runs nothing
            raise ConvscopeError(
                f"{path}: holds weights only, no architecture; pass the architecture they were saved from "
                f"and the file as its weights: --model NAME --weights {path}"
            )
        if not trust:
            raise ConvscopeError(
                f"{path}: legacy HDF5 model files can run arbitrary code when loaded; re-save it as .keras "
                "(model.save('model.keras')), or pass --trust-model if you made this file yourself"
            )
        with warnings.catch_warnings():
            # Keras 2 configs give the first layer a batch_input_shape; Keras 3 builds the Input from it
            # and warns about a choice the file's author made years ago, with nothing left to do about it.
            warnings.filterwarnings("ignore", message="Do not pass an `input_shape`", category=UserWarning)
            return _load_with_keras(path, safe_mode=False, compile=compile)
    if suffix != ".keras":
        raise ConvscopeError(f"{path}: expected a .keras model file (or a legacy .h5 with --trust-model), got '{suffix}'")
    if not trust:
        _check_keras_archive(path)
    return _load_with_keras(path, safe_mode=not trust, compile=compile)


def _check_keras_archive(path: Path) -> None:
    """Refuse a .keras file whose config holds a Lambda layer or a class from outside Keras."""
    fix = "re-save the model with model.save('model.keras')"
    try:
        with zipfile.ZipFile(path) as archive:
            check_zip_members(archive, path, MAX_MEMBER_BYTES, fix)
            declared = archive.getinfo("config.json").file_size
            if declared > MAX_CONFIG_BYTES:
                raise ConvscopeError(
                    f"{path}: member 'config.json' has a declared size of {declared} bytes (limit {MAX_CONFIG_BYTES}); "
                    f"refused before reading anything; {fix}"
                )
            config = json.loads(archive.read("config.json"))
        items = list(_config_objects(config))
    except ConvscopeError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, RecursionError) as error:
        raise ConvscopeError(f"{path}: not a readable .keras file ({describe_error(error)}); {fix}") from None
    registered = keras.saving.get_custom_objects()
    for item in items:
        class_name, module = item.get("class_name"), item.get("module")
        if class_name == "Lambda":
            layer_name = (item.get("config") or {}).get("name", "?")
            raise ConvscopeError(
                f"{path}: holds a Lambda layer '{layer_name}', whose Python code would run on loading; "
                "replace it by a layer class registered with keras.saving.register_keras_serializable, "
                "or pass --trust-model if you made this file yourself"
            )
        if (
            isinstance(module, str)
            and module != "builtins"
            and module.split(".")[0] not in KERAS_PACKAGES
            and item.get("registered_name") not in registered
        ):
            raise ConvscopeError(
                f"{path}: names class '{class_name}' from module '{module}', which is not part of Keras "
                "and not a registered custom object; refusing to import it. Import the module that "
                "registers it first, or pass --trust-model if you made this file yourself"
            )


def _config_objects(value):
    """Yield every serialized object (a dict with a class_name) inside a Keras config."""
    if isinstance(value, dict):
        if "class_name" in value:
            yield value
        for child in value.values():
            yield from _config_objects(child)
    elif isinstance(value, list):
        for child in value:
            yield from _config_objects(child)


def _load_with_keras(path: Path, safe_mode: bool, compile: bool) -> keras.Model:
    try:
        model = keras.saving.load_model(path, safe_mode=safe_mode, compile=compile)
    except Exception as error:  # Keras raises ValueError, TypeError, OSError, KeyError... for a bad file
        message = describe_keras_error(error)
        if "safe_mode" in str(error) or "Lambda" in str(error):
            raise ConvscopeError(
                f"{path}: Keras' safe mode refused it ({message}); pass --trust-model only if you made this file yourself"
            ) from error
        raise ConvscopeError(f"{path}: cannot load the model ({message}); re-save it with model.save('model.keras')") from error
    if not isinstance(model, keras.Model):
        raise ConvscopeError(f"{path}: holds a {type(model).__name__}, not a keras.Model")
    return model
