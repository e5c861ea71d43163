"""Baselines: scikit-learn's MLP and logistic regression on flattened images, as ordinary run folders.

    convscope baseline --dataset mnist --data-dir ../shared/data/mnist                 # MLP (16, 16)
    convscope baseline --dataset mnist --hidden-layers 40                               # MLP (40,)
    convscope baseline --dataset mnist --kind logistic

    from convscope.baseline import baseline_config
    from convscope.pipeline import train_baseline
    config = Config(); config.model.name = "sklearn-mlp-16x16"
    result = train_baseline(baseline_config(config))    # fit_baseline, then the figures
    result.metrics["test_accuracy"]

The MLP is the lessons' ``MLPClassifier(hidden_layer_sizes=(16, 16),
early_stopping=True)`` (or ``(40,)``) with scikit-learn's defaults: Adam at
1e-3, batches of 200, at most 200 epochs, stopping after 10 epochs without a
better score on the 10% of the training images it holds out, and keeping the
best epoch's weights. Logistic regression is ``LogisticRegression`` (lbfgs,
multinomial, L2 with C=1).

Both compute ``softmax(dense(...dense(flatten(x))))``, so the fitted arrays are
copied into the equivalent Keras network (Flatten, Dense relu ..., Dense
softmax) and saved as ``model.keras``: predict, evaluate, inspect, report and
compare then treat a baseline like any other run, and nothing is ever
unpickled. ``estimator.npz`` keeps scikit-learn's own ``coefs_`` and
``intercepts_`` (plain arrays). The run folder gets what ``train`` writes
(config.yaml, environment.json, data.json, history.csv for the MLP,
metrics.json with the same keys, model.keras) plus what ``evaluate`` writes
(predictions.npz, the evaluation in metrics.json, figures), and
plots/dense_weights.png: the first layer's weights drawn as images.

history.csv holds what ``MLPClassifier`` records per epoch: ``loss_curve_``
(training loss, including the L2 penalty alpha=1e-4) and ``validation_scores_``
(accuracy on its own held-out 10%) as val_accuracy. best_val_accuracy and
best_val_loss in metrics.json are measured on the dataset's validation split,
the same images the Keras runs are scored on.
"""

from __future__ import annotations

import copy
import logging
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from convscope.config import BASELINE_PREFIX as PREFIX
from convscope.config import Config, is_baseline_name
from convscope.data import load_dataset
from convscope.data.checks import check_dataset
from convscope.errors import ConvscopeError
from convscope.lessons import LESSON_RUNS, find_lesson_run
from convscope.evaluate import EvaluationResult, compute_accuracy, compute_loss, evaluate_predictions
from convscope.fileio import write_npz
from convscope.runfolder import HISTORY_COLUMNS, RunFolder, describe_environment, with_run_name
from convscope.train import record_test_evaluation

logger = logging.getLogger(__name__)

DEFAULT_HIDDEN_LAYERS = (16, 16)  # the lesson's smallest MLP; (40,) is its other preset
# scikit-learn's defaults, written into config.yaml so the run folder says what was used.
MLP_MAX_ITER = 200  # epochs at most; early stopping ended the 16x16 MLP after 40 on full MNIST
MLP_BATCH_SIZE = 200  # batch_size="auto" is min(200, N)
MLP_LEARNING_RATE = 1e-3  # learning_rate_init, Adam, constant
MLP_PATIENCE = 10  # n_iter_no_change
LOGISTIC_MAX_ITER = 100  # lbfgs iterations
ABSENT_CLASS_BIAS = -1e4  # logit of a class missing from the training images: exp(-1e4) == 0 in float32


@dataclass(frozen=True)
class BaselineSpec:
    """Which estimator a baseline name stands for."""

    kind: str  # "mlp" or "logistic"
    hidden_layer_sizes: tuple[int, ...]  # () for logistic regression


@dataclass
class BaselineResult:
    """What ``fit_baseline`` produced."""

    run: RunFolder
    config: Config  # the resolved config saved in the folder
    model: object  # the equivalent keras.Model, saved as model.keras
    estimator: object  # the fitted scikit-learn estimator
    metrics: dict
    dataset: object = field(repr=False, default=None)  # the convscope.data.Dataset used
    evaluation: EvaluationResult | None = field(repr=False, default=None)  # the test set, from scikit-learn's probabilities


# --------------------------------------------------------------------------- names and settings


def baseline_name(kind: str, hidden_layer_sizes=DEFAULT_HIDDEN_LAYERS) -> str:
    """``sklearn-mlp-16x16``, ``sklearn-mlp-40`` or ``sklearn-logistic``.

    Example:
        >>> baseline_name("sklearn-mlp", (16, 16))
        'sklearn-mlp-16x16'
    """
    if kind in ("logistic", "sklearn-logistic"):
        return f"{PREFIX}logistic"
    if kind not in ("mlp", "sklearn-mlp"):
        raise ConvscopeError(f"--kind {kind!r}; expected sklearn-mlp or logistic")
    sizes = tuple(int(size) for size in hidden_layer_sizes)
    if not sizes or min(sizes) <= 0:
        raise ConvscopeError(f"--hidden-layers {','.join(map(str, sizes)) or '(empty)'}; expected positive layer sizes, e.g. 16,16 or 40")
    return f"{PREFIX}mlp-{'x'.join(map(str, sizes))}"


def parse_baseline_name(name: str) -> BaselineSpec:
    """The estimator a baseline name stands for.

    Example:
        >>> parse_baseline_name("sklearn-mlp-16x16")
        BaselineSpec(kind='mlp', hidden_layer_sizes=(16, 16))
    """
    if name == f"{PREFIX}logistic":
        return BaselineSpec("logistic", ())
    match = re.fullmatch(rf"{PREFIX}mlp-(\d+(?:x\d+)*)", name)
    if not match or min(int(size) for size in match[1].split("x")) <= 0:
        raise ConvscopeError(
            f"model {name!r}: not a baseline name; expected sklearn-mlp-16x16, sklearn-mlp-40 "
            "(hidden sizes joined by x) or sklearn-logistic"
        )
    return BaselineSpec("mlp", tuple(int(size) for size in match[1].split("x")))


def baseline_config(config: Config, max_iter: int | None = None) -> Config:
    """Write the estimator's fixed settings into the training section (seed and data stay as given).

    Args:
        config: with ``model.name`` a baseline name.
        max_iter: epochs (MLP) or solver iterations (logistic); None: scikit-learn's default.

    Returns:
        A new Config; ``config`` is left as it was.
    """
    spec = parse_baseline_name(config.model.name)
    config = copy.deepcopy(config)
    train = config.train
    lesson = find_lesson_run(train.preset) if train.preset else None
    lesson_model = lesson.model if lesson is not None else None
    if lesson_model is not None and not is_baseline_name(lesson_model):
        baselines = ", ".join(run.preset for run in LESSON_RUNS if is_baseline_name(run.model))
        raise ConvscopeError(
            f"--preset {train.preset} trains the Keras model {lesson_model}, not a scikit-learn baseline; "
            f"run it with `convscope run --preset {train.preset}`, or give a baseline preset ({baselines})"
        )
    if spec.kind == "mlp" and lesson_model is not None:
        # A lesson's MLPClassifier: its max_iter and early stopping (or none) come from the preset.
        train.epochs = max_iter or train.epochs
        train.reduce_lr, train.schedule = None, "constant"
        return config
    train.preset, train.reduce_lr, train.schedule = None, None, "constant"
    if spec.kind == "mlp":
        train.epochs = max_iter or MLP_MAX_ITER
        train.optimizer, train.learning_rate, train.batch_size, train.early_stop = "adam", MLP_LEARNING_RATE, MLP_BATCH_SIZE, MLP_PATIENCE
    else:
        # lbfgs has no batches, rate or early stop; these fields stay at their defaults, unused.
        train.epochs = max_iter or LOGISTIC_MAX_ITER
        train.early_stop = 0
    if train.epochs <= 0:
        raise ConvscopeError(f"--epochs {train.epochs}; expected a positive number of iterations")
    return config


def create_estimator(spec: BaselineSpec, config: Config):
    """The scikit-learn estimator for ``spec``, seeded by the config."""
    if spec.kind == "mlp":
        from sklearn.neural_network import MLPClassifier

        return MLPClassifier(
            hidden_layer_sizes=spec.hidden_layer_sizes,
            early_stopping=config.train.early_stop > 0,  # 0: a lesson preset's MLP that runs all max_iter epochs
            max_iter=config.train.epochs,
            batch_size=config.train.batch_size,
            learning_rate_init=config.train.learning_rate,
            n_iter_no_change=config.train.early_stop or MLP_PATIENCE,
            random_state=config.train.seed,
        )
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=config.train.epochs, random_state=config.train.seed)


# --------------------------------------------------------------------------- arrays


def flatten_images(x: np.ndarray, channels_first: bool) -> np.ndarray:
    """(N, H, W, C) or (N, C, H, W) -> (N, H*W*C) in (H, W, C) order, the order keras' Flatten uses."""
    if channels_first:
        x = np.moveaxis(x, 1, -1)
    return np.ascontiguousarray(x).reshape(len(x), -1)


def estimator_layers(estimator, num_classes: int) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """The estimator as dense layers (kernel (in, out), bias (out,), activation), output over all classes.

    A two-class estimator's single logit z becomes the logits (0, z): softmax of
    those is (1 - sigmoid(z), sigmoid(z)), what predict_proba returns. Classes
    missing from the training images get logit ABSENT_CLASS_BIAS.
    """
    if hasattr(estimator, "coefs_"):
        kernels, biases = list(estimator.coefs_), list(estimator.intercepts_)
        activations = [estimator.activation] * (len(kernels) - 1)
    else:
        kernels, biases, activations = [estimator.coef_.T], [estimator.intercept_], []
    kernel, bias = kernels[-1], biases[-1]
    if kernel.shape[1] == 1:
        kernel = np.concatenate([np.zeros_like(kernel), kernel], axis=1)
        bias = np.concatenate([np.zeros_like(bias), bias])
    classes = np.asarray(estimator.classes_, dtype=np.int64)
    full_kernel = np.zeros((kernel.shape[0], num_classes), dtype=np.float32)
    full_bias = np.full(num_classes, ABSENT_CLASS_BIAS, dtype=np.float32)
    full_kernel[:, classes], full_bias[classes] = kernel, bias
    layers = [(k.astype(np.float32), b.astype(np.float32), a) for k, b, a in zip(kernels[:-1], biases[:-1], activations)]
    return layers + [(full_kernel, full_bias, "softmax")]


def create_keras_model(estimator, input_shape: tuple, num_classes: int, name: str):
    """The Keras network computing exactly what the estimator computes (Flatten, Dense ..., Dense softmax)."""
    activation_names = {"relu": "relu", "tanh": "tanh", "logistic": "sigmoid", "identity": "linear", "softmax": "softmax"}
    layers = estimator_layers(estimator, num_classes)
    model = keras.Sequential(
        [keras.Input(tuple(input_shape)), keras.layers.Flatten(name="flatten")]
        + [
            keras.layers.Dense(
                kernel.shape[1],
                activation=activation_names[activation],
                name="predictions" if index == len(layers) - 1 else f"dense{index + 1}",
            )
            for index, (kernel, _, activation) in enumerate(layers)
        ],
        name=re.sub(r"[^A-Za-z0-9_]", "_", name),
    )
    model.set_weights([array for kernel, bias, _ in layers for array in (kernel, bias)])
    return model


def save_estimator_arrays(estimator, path: Path) -> Path:
    """Write the fitted arrays (no pickled objects): coefs_i/intercepts_i, or coef/intercept, and classes."""
    if hasattr(estimator, "coefs_"):
        arrays = {f"coefs_{index}": kernel for index, kernel in enumerate(estimator.coefs_)}
        arrays |= {f"intercepts_{index}": bias for index, bias in enumerate(estimator.intercepts_)}
        arrays["activation"] = np.array(estimator.activation)
    else:
        arrays = {"coef": estimator.coef_, "intercept": estimator.intercept_}
    arrays["classes"] = np.asarray(estimator.classes_)
    arrays["estimator"] = np.array(type(estimator).__name__)
    return write_npz(path, **arrays)


# --------------------------------------------------------------------------- training


def fit_estimator(estimator, x: np.ndarray, y: np.ndarray) -> tuple[float, bool]:
    """Fit; return (seconds, converged). Non-convergence is reported, not raised: a baseline is still a result."""
    from sklearn.exceptions import ConvergenceWarning

    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        estimator.fit(x, y)
    seconds = time.perf_counter() - started
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    if not converged:
        warnings.warn(
            f"{type(estimator).__name__} stopped at max_iter={estimator.max_iter} before converging; "
            "pass a larger --epochs to let it finish", stacklevel=2,
        )
    return seconds, converged


def baseline_history(estimator, config: Config) -> dict[str, list] | None:
    """history.csv columns from the MLP's per-epoch records; None for logistic regression (no epochs)."""
    losses = getattr(estimator, "loss_curve_", None)
    if losses is None:
        return None
    scores = getattr(estimator, "validation_scores_", None) or [np.nan] * len(losses)
    history = {column: [np.nan] * len(losses) for column in HISTORY_COLUMNS}
    history["epoch"] = list(range(1, len(losses) + 1))
    history["loss"] = [float(value) for value in losses]
    history["val_accuracy"] = [float(value) for value in scores]
    history["learning_rate"] = [float(config.train.learning_rate)] * len(losses)
    return history


def prepare_baseline(config: Config, dataset=None):
    """The resolved config and the dataset, checked before any folder exists: a bad name leaves none behind.

    Args:
        config: ``model.name`` a baseline name (``sklearn-mlp-16x16``, ``sklearn-mlp-40``,
            ``sklearn-logistic``), after ``baseline_config``; it is not changed.
        dataset: a ``convscope.data.Dataset`` to use instead of loading ``config.data``.

    Returns:
        (config copy with its run name, dataset).

    Raises:
        ConvscopeError: not a baseline name, or no training images.
    """
    config = with_run_name(config)
    parse_baseline_name(config.model.name)
    if dataset is None:
        dataset = load_dataset(config.data, seed=config.train.seed)  # checked there, split by split
    else:
        check_dataset(dataset)
    return config, dataset


def fit_baseline(run: RunFolder, config: Config, dataset) -> BaselineResult:
    """Fit a scikit-learn baseline on the flattened training images into a locked run folder.

    Writes what ``train`` writes (config, environment, data, history, model.keras, metrics,
    and the test set's predictions and evaluation, computed once from scikit-learn's own
    probabilities) plus estimator.npz. ``pipeline.train_baseline`` creates the folder
    and draws the figures.

    Args:
        run: the run folder, locked (``runfolder.new_run``).
        config: the config ``prepare_baseline`` returned.
        dataset: the dataset ``prepare_baseline`` returned.

    Returns:
        BaselineResult with the run folder, the equivalent Keras model, the estimator and metrics.
    """
    import sklearn  # lazy: scikit-learn loads in about a second, and only baselines need it

    estimator = create_estimator(parse_baseline_name(config.model.name), config)
    logger.info("fitting %s on %d flattened images of %s", config.model.name, len(dataset.y_train), dataset.name)
    train_seconds, converged = fit_estimator(estimator, flatten_images(dataset.x_train, dataset.channels_first), dataset.y_train)

    model = create_keras_model(estimator, dataset.input_shape, dataset.num_classes, config.model.name)
    check_equivalent(estimator, model, dataset)
    run.write_config(config)
    environment = describe_environment(config)
    environment["scikit_learn"] = sklearn.__version__
    environment["estimator"] = {"class": type(estimator).__name__, "params": _plain_params(estimator.get_params())}
    run.write_environment(environment)
    run.write_data_description(dataset)
    history = baseline_history(estimator, config)
    if history is not None:
        run.write_history(history)
    save_estimator_arrays(estimator, run.estimator_path)
    run.save_model(model)
    run.update_metrics(baseline_metrics(estimator, dataset, config, train_seconds, converged))
    evaluation = None
    if len(dataset.y_test):
        probabilities = estimator_probabilities(estimator, dataset, dataset.x_test)
        evaluation = record_test_evaluation(run, evaluate_predictions(probabilities, dataset.y_test, dataset.class_names))
    return BaselineResult(run, config, model, estimator, run.read_metrics(), dataset, evaluation)


def baseline_metrics(estimator, dataset, config: Config, train_seconds: float, converged: bool) -> dict:
    """metrics.json's training facts, with train's keys; validation scored on the dataset's own split."""
    epochs_run = int(np.max(estimator.n_iter_))  # an int for the MLP, one per class problem for logistic regression
    scores = getattr(estimator, "validation_scores_", None)
    metrics = {
        "best_epoch": int(np.argmax(scores)) + 1 if scores else epochs_run,  # early stopping keeps the best epoch's weights
        "epochs_run": epochs_run,
        "stopped_early": bool(scores) and epochs_run < config.train.epochs,
        "converged": converged,
        "train_seconds": round(train_seconds, 2),
        "last_session_seconds": round(train_seconds, 2),
    }
    if len(dataset.y_val):
        val_probabilities = estimator_probabilities(estimator, dataset, dataset.x_val)
        metrics["best_val_loss"] = compute_loss(val_probabilities, dataset.y_val)
        metrics["best_val_accuracy"] = compute_accuracy(val_probabilities, dataset.y_val)
    return metrics


def estimator_probabilities(estimator, dataset, x: np.ndarray) -> np.ndarray:
    """predict_proba over all the dataset's classes (columns of classes absent from training are 0)."""
    probabilities = np.zeros((len(x), dataset.num_classes), dtype=np.float32)
    probabilities[:, np.asarray(estimator.classes_, dtype=np.int64)] = estimator.predict_proba(flatten_images(x, dataset.channels_first))
    return probabilities


def check_equivalent(estimator, model, dataset, count: int = 256) -> None:
    """The Keras copy must give scikit-learn's probabilities (float32 rounding apart)."""
    x = dataset.x_test[:count] if len(dataset.y_test) else dataset.x_train[:count]
    expected = estimator_probabilities(estimator, dataset, x)
    got = np.asarray(model(x, training=False))  # a direct call: no predict function traced for one check
    assert np.allclose(got, expected, atol=1e-4), f"Keras copy differs from scikit-learn by {np.abs(got - expected).max()}"


def _plain_params(params: dict) -> dict:
    """get_params() as JSON values (tuples to lists, anything else to its repr)."""
    plain = {}
    for key, value in params.items():
        if isinstance(value, tuple):
            value = list(value)
        plain[key] = value if isinstance(value, (bool, int, float, str, list, type(None))) else repr(value)
    return plain
