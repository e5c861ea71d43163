"""convscope: train, evaluate and look inside convolutional image classifiers.

    import convscope
    data = convscope.load_dataset("mnist-sample")
    model = convscope.create_model("mnist_convnet", data.input_shape, data.num_classes)
    print(convscope.summarize(model).to_text())
    result = convscope.run()            # train + evaluate + inspect + report on the bundled sample

The public functions are imported lazily so that `convscope --help` and
`convscope datasets` start without loading Keras. Two of them share their
module's name (train, evaluate): `convscope.evaluate` is always the function;
reach the module's other names with `from convscope.evaluate import ...`.
`convscope.inspect` is the function of the package `convscope.inspection`;
`convscope.view` is the function of the package of the same name (reach its
other names with `from convscope.viewer import ...`).
"""

import sys
import types

from convscope import startup

startup.apply()  # before anything imports Keras: backend, oneDNN, quiet TensorFlow start-up

__version__ = "0.1.0"

_PUBLIC = {
    "load_dataset": "convscope.data",
    "list_datasets": "convscope.data",
    "create_model": "convscope.models",
    "list_models": "convscope.models",
    "summarize": "convscope.models",
    "train": "convscope.train",
    "find_learning_rate": "convscope.lrfind",
    "evaluate": "convscope.evaluate",
    "inspect": "convscope.inspection",
    "build_report": "convscope.pipeline",
    "run": "convscope.pipeline",
    "compare_runs": "convscope.compare",
    "train_baseline": "convscope.pipeline",
    "sweep": "convscope.sweep",
    "predict_images": "convscope.predict",
    "view": "convscope.viewer",
    "ConvscopeError": "convscope.errors",
}

__all__ = sorted(_PUBLIC)


class _PublicModule(types.ModuleType):
    def __setattr__(self, name, value):
        # Importing convscope.evaluate would bind the submodule over the function
        # of the same name; keep the function reachable as convscope.evaluate.
        if name in _PUBLIC and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _PublicModule


def __getattr__(name):
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'convscope' has no attribute {name!r}")
