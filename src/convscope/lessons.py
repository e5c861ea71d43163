"""The lessons convscope grew out of, one preset per training run they print.

    convscope lessons                                        # the table below
    convscope train --preset ex5-conv2-pool --dataset mnist --data-dir ../shared/data/mnist

    from convscope.lessons import LESSON_RUNS, format_lessons_table
    print(format_lessons_table())

Each ``LessonRun`` names a preset (its ``settings`` are filed in
``config.PRESETS``), the lesson and the zoo model, the recipe in words, the
result the lesson printed and, in ``notes``, every choice the preset had to
make: where the printed code and the printed output disagree, and where
convscope cannot do exactly what the notebook did. The settings set every field
a lesson fixes (dataset, scale, validation, optimizer, rate, batch, epochs,
callbacks, kept weights), so a preset never inherits convscope's own defaults
(one-cycle at 5e-3, a stratified split). Optimizers take Keras' default
rate, 1e-3, because the lessons pass ``optimizer='adam'`` or ``'rmsprop'`` by
name (Exercise 12.1 passes none: Keras' default, RMSprop).

Plain data only: this module imports nothing from TensorFlow or Keras, so
`convscope lessons` starts in a fraction of a second.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass




@dataclass(frozen=True)
class LessonRun:
    """One model a lesson trains, and the preset that repeats it."""

    preset: str  # the preset's name (`--preset`)
    lesson: str  # the lesson, in words
    source: str  # the file name of the lesson's plain-text copy
    model: str  # zoo name of the exact architecture
    params: int  # the parameter count the lesson printed
    recipe: str  # data, optimizer, batch, epochs, callbacks and kept weights, in words
    printed: str  # what the lesson printed as its result
    printed_test_accuracy: float | None  # None: the lesson printed no test accuracy
    settings: dict  # the preset: config sections, as in a config.yaml
    notes: str  # choices the preset makes, and where convscope differs from the notebook


def _settings(dataset: str, scale: str, data: dict, model: str, train: dict) -> dict:
    """A preset that fixes everything a lesson fixes: constant rate, no early stop, no plateau cut unless given."""
    return {
        "data": {"dataset": dataset, "scale": scale, "val_split": 0.0, "validation": "stratified", "val_seed": None, "val_first": 0, "limit_train": 0, "test_split": 0.0, **data},
        "model": {"name": model},
        "train": {"schedule": "constant", "learning_rate": 1e-3, "reduce_lr": None, "early_stop": 0, **train},
    }


# Exercise 5: MinMaxScaler, then train_test_split(test_size=0.3) after np.random.seed(1338)
# (the call is cut off in the copy; random_state=1338 and the global seed 1338 give the same
# permutation); Adam, batch 256, 10 epochs, no callback: the last epoch's weights are evaluated.
_EX5_DATA = {"val_split": 0.3, "validation": "random", "val_seed": 1338}
_EX5_TRAIN = {"optimizer": "adam", "batch_size": 256, "epochs": 10, "keep": "last"}
_EX5_NOTES = (
    "MinMax is fitted on the 42,000 training images; the lesson fitted it on all 60,000 before splitting, "
    "so its validation images shaped the scale, and a pixel constant in training maps to 0 here where "
    "scikit-learn would leave it unscaled."
)
_EX5 = "Exercise 5 solution: CNNs and MNIST"
_EX5_RECIPE = "MinMax, 70/30 split (seed 1338), Adam 1e-3, batch 256, 10 epochs, last weights"

# The neural-networks lesson's Keras models: keras.datasets.mnist (its comment says 80/20, the
# code loads the 60,000/10,000 files), /255, validation_split=0.1 (the last 6,000 images),
# Adam, batch 200, 10 epochs, last weights.
_NN_DATA = {"val_split": 0.1, "validation": "last"}
_NN_TRAIN = {"optimizer": "adam", "batch_size": 200, "epochs": 10, "keep": "last"}
_NN_NOTES = (
    "The comment says 80% train / 20% test, but the Keras cells load keras.datasets.mnist (60,000/10,000); "
    "openml's random 80/20 split is the scikit-learn part's (`convscope baseline`). "
    "validation_split=0.1 is Keras' last 10%: 54,000 training, 6,000 validation images."
)
_NN = "Neural-networks lesson"
_SKLEARN_NOTES = (
    "fetch_openml('mnist_784') holds MNIST's 60,000 training then 10,000 test images; the lesson's "
    "train_test_split(test_size=0.2) has no random_state, so its 14,000 test images cannot be repeated: "
    "the preset draws them with the run's seed. A scikit-learn baseline, not a Keras model."
)
_NN_RECIPE = "/255, last 10% as validation, Adam 1e-3, batch 200, 10 epochs, last weights"

LESSON_RUNS: tuple[LessonRun, ...] = (
    LessonRun(
        "ex5-conv", _EX5, "000_e64cc3356a01cff5.txt", "cnn_single", 216_650, _EX5_RECIPE,
        "test accuracy 98.05%", 0.9805,
        _settings("mnist", "minmax", _EX5_DATA, "cnn_single", _EX5_TRAIN), _EX5_NOTES,
    ),
    LessonRun(
        "ex5-conv-dense", _EX5, "000_e64cc3356a01cff5.txt", "cnn_dropout", 2_770_634, _EX5_RECIPE,
        "test accuracy 98.43%", 0.9843,
        _settings("mnist", "minmax", _EX5_DATA, "cnn_dropout", _EX5_TRAIN), _EX5_NOTES,
    ),
    LessonRun(
        "ex5-conv2-pool", _EX5, "000_e64cc3356a01cff5.txt", "cnn_2conv", 1_199_882, _EX5_RECIPE,
        "test accuracy 99.08%", 0.9908,
        _settings("mnist", "minmax", _EX5_DATA, "cnn_2conv", _EX5_TRAIN), _EX5_NOTES,
    ),
    LessonRun(
        "lecture-mnist-cnn", "CNN intuition lecture: MNIST", "001_704311ce5ece3cdc.txt", "cnn_pool_dense64", 220_234,
        "/255, the test set as validation, RMSprop 1e-3, batch 64, 10 epochs, best val_loss weights",
        "test accuracy 99.20%", 0.9920,
        _settings("mnist", "unit", {"validation": "test"}, "cnn_pool_dense64",
                  {"optimizer": "rmsprop", "batch_size": 64, "epochs": 10, "keep": "best"}),
        "ModelCheckpoint(save_best_only=True) on val_loss, then load_weights: the kept epoch is chosen on the "
        "test set, which the lesson then scores; convscope warns that this leaks the test set into model selection.",
    ),
    LessonRun(
        "lecture-cifar-cnn", "CNN intuition lecture: CIFAR-10", "001_704311ce5ece3cdc.txt", "cifar_cnn", 541_094,
        "/255, first 5,000 as validation, RMSprop 1e-3, batch 32, 1 epoch, best val_loss weights",
        "validation accuracy 43.20% (no test accuracy printed)", None,
        _settings("cifar10", "unit", {"val_first": 5000}, "cifar_cnn",
                  {"optimizer": "rmsprop", "batch_size": 32, "epochs": 1, "keep": "best"}),
        "One epoch, as printed; the checkpoint keeps it. The lesson prints validation accuracy only.",
    ),
    LessonRun(
        "blog-mnist-cnn", "Keras intro blog post", "002_d02d3401f39f7d95.txt", "cnn_small_dropout", 54_410,
        "/255, first 20,000 training images, the test set as validation, Adam 1e-3, batch 128, 6 epochs, last weights",
        "test accuracy 96.85%", 0.9685,
        _settings("mnist", "unit", {"validation": "test", "limit_train": 20000}, "cnn_small_dropout",
                  {"optimizer": "adam", "batch_size": 128, "epochs": 6, "keep": "last"}),
        "validation_data=(x_test, y_test) with no callback: the test set only reports; the last weights are evaluated.",
    ),
    LessonRun(
        "nn-lesson-cnn", _NN, "003_8cb94b8132373837.txt", "mnist_convnet_dropout02", 34_826, _NN_RECIPE,
        "test accuracy 98.91%", 0.9891,
        _settings("mnist", "unit", _NN_DATA, "mnist_convnet_dropout02", _NN_TRAIN),
        "mnist_convnet with Dropout 0.2, as the lesson has it (keras.io's example uses 0.5). " + _NN_NOTES,
    ),
    LessonRun(
        "nn-lesson-mlp", _NN, "003_8cb94b8132373837.txt", "mlp_16x16", 13_002, _NN_RECIPE,
        "test accuracy 94.61%", 0.9461,
        _settings("mnist", "unit", _NN_DATA, "mlp_16x16", _NN_TRAIN), _NN_NOTES,
    ),
    LessonRun(
        "nn-lesson-sklearn-16x16", _NN + ": scikit-learn", "003_8cb94b8132373837.txt", "sklearn-mlp-16x16", 13_002,
        "openml's 80/20 (training and test pooled), /255, MLPClassifier((16, 16), max_iter=50): Adam 1e-3, batch 200, 50 epochs, no early stopping",
        "test accuracy 95.09%", 0.9509,
        _settings("mnist", "unit", {"test_split": 0.2}, "sklearn-mlp-16x16",
                  {"optimizer": "adam", "batch_size": 200, "epochs": 50, "keep": "last"}),
        _SKLEARN_NOTES + " Run it with `convscope baseline --preset nn-lesson-sklearn-16x16`.",
    ),
    LessonRun(
        "nn-lesson-sklearn-40", _NN + ": scikit-learn", "003_8cb94b8132373837.txt", "sklearn-mlp-40", 31_810,
        "openml's 80/20 (training and test pooled), /255, MLPClassifier((40,), early_stopping=True): Adam 1e-3, "
        "batch 200, at most 200 epochs, stop after 10 without gain on its own 10%",
        "test accuracy 96.47%", 0.9647,
        _settings("mnist", "unit", {"test_split": 0.2}, "sklearn-mlp-40",
                  {"optimizer": "adam", "batch_size": 200, "epochs": 200, "early_stop": 10, "keep": "best"}),
        _SKLEARN_NOTES + " Run it with `convscope baseline --preset nn-lesson-sklearn-40`.",
    ),
    LessonRun(
        "ex12-cifar-elu", "Exercise 12.1: weights and activations", "004_8285f1de30932a54.txt", "cifar_elu", 73_498,
        "(x-128)/128, last 10% as validation, RMSprop 1e-3, batch 32, 30 epochs, "
        "ReduceLROnPlateau(0.5, 3, 1e-5), last weights",
        "validation accuracy 73.20% after epoch 30 (no test accuracy printed)", None,
        _settings("cifar10", "centered", {"val_split": 0.1, "validation": "last"}, "cifar_elu",
                  {"optimizer": "rmsprop", "batch_size": 32, "epochs": 30, "keep": "last", "reduce_lr": (0.5, 3, 1e-5)}),
        "Follows the printed summary (six convolutions, 73,498 parameters), not the printed code (three, "
        "which would have 25,002): the summary, the training log and the activation figures of every conv "
        "layer are output of the model that ran, while the exported code cell shows fewer layers. "
        "compile() names no optimizer: Keras' default, RMSprop at 1e-3.",
    ),
)

LESSON_PRESETS: dict[str, dict] = {run.preset: run.settings for run in LESSON_RUNS}


def find_lesson_run(preset: str) -> LessonRun | None:
    """The lesson run behind ``preset``, or None for a preset that is not a lesson's (e.g. fast)."""
    return next((run for run in LESSON_RUNS if run.preset == preset), None)


def format_lessons_table(runs: tuple[LessonRun, ...] = LESSON_RUNS, notes: bool = True) -> str:
    """Return `convscope lessons`: one row per preset, then each preset's notes.

    Args:
        runs: the lesson runs to list.
        notes: add each preset's notes (choices and differences) below its recipe.

    Example:
        >>> print(format_lessons_table(notes=False).splitlines()[0])   # doctest: +SKIP
        preset  lesson  model  params  lesson printed
    """
    from convscope.text import format_table  # lazy: text imports NumPy; config.py reads this module on every start, --help included

    header = ("preset", "lesson", "model", "params", "lesson printed")
    rows = [(run.preset, run.lesson, run.model, f"{run.params:,}", run.printed) for run in runs]
    blocks = [format_table(header, rows, align="lllrl")]
    for run in runs:  # the recipe, and why it is what it is, below the table: one block per preset
        lines = textwrap.wrap(run.recipe, width=100, initial_indent=f"{run.preset}: ", subsequent_indent="    ")
        if notes and run.notes:
            lines += textwrap.wrap(run.notes, width=100, initial_indent="    ", subsequent_indent="    ")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n\nRun one: convscope run --preset PRESET (MNIST presets: --data-dir DIR, the folder of MNIST's IDX files)"
