"""Evaluation: every number the CNN lessons compute by hand about a trained classifier.

Predict once, then derive everything from two arrays (probabilities and labels):

    from convscope.evaluate import evaluate, evaluate_predictions
    result = evaluate(model, data.x_test, data.y_test, class_names=data.class_names)
    print(result.accuracy, result.report.macro["f1-score"], result.calibration.ece)
    result.most_confused[:3]          # [ConfusedPair(true=4, predicted=9, count=17), ...]
    metrics = result.to_metrics()     # JSON-ready dict for metrics.json

    saved = np.load("runs/demo/predictions.npz")
    result = evaluate_predictions(saved["probabilities"], saved["labels"])   # no model needed

Each ``compute_*`` function is pure numpy and usable on its own. The figures that
draw these results live in ``convscope.plots.evaluation``; nothing here draws.

Definitions follow the references the tests compare against: the classification
report and confusion matrix equal scikit-learn's (``zero_division=0``), the loss
equals Keras' sparse categorical cross-entropy on probabilities (clipped at 1e-7),
top-k counts ties at the boundary as hits (like ``tf.math.in_top_k``), and the
calibration error is Guo et al. (2017)'s ECE over equal-width confidence bins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from convscope.data.stream import is_streamed, pipeline_errors, stream_batches
from convscope.errors import ConvscopeError
from convscope.probabilities import to_probabilities  # the one probability rule; evaluate.to_probabilities stays importable

# Keras clips probabilities to [1e-7, 1 - 1e-7] before the log; the same epsilon makes
# our test loss equal model.evaluate's and keeps one confidently wrong image finite.
EPSILON = 1e-7


# --------------------------------------------------------------------------- results


class ConfusedPair(NamedTuple):
    """One off-diagonal cell of the confusion matrix: ``count`` images of ``true`` predicted as ``predicted``."""

    true: int
    predicted: int
    count: int


@dataclass
class ClassificationReport:
    """Precision, recall, F1 and support per class, with macro and weighted averages.

    ``to_dict()`` equals scikit-learn's ``classification_report(..., output_dict=True,
    zero_division=0)`` called with ``labels=range(num_classes)``.
    """

    class_names: list[str]
    precision: np.ndarray  # (num_classes,) fraction of predictions of the class that are right
    recall: np.ndarray  # (num_classes,) fraction of images of the class found
    f1: np.ndarray  # (num_classes,) harmonic mean of precision and recall
    support: np.ndarray  # (num_classes,) int, number of test images with this label
    accuracy: float
    macro: dict[str, float]  # unweighted mean over classes (classes absent from the test set count as 0)
    weighted: dict[str, float]  # mean weighted by support

    def to_dict(self) -> dict:
        """Return the report in scikit-learn's ``output_dict`` layout (floats only)."""
        report: dict = {}
        for index, name in enumerate(self.class_names):
            report[name] = {
                "precision": float(self.precision[index]),
                "recall": float(self.recall[index]),
                "f1-score": float(self.f1[index]),
                "support": float(self.support[index]),
            }
        report["accuracy"] = float(self.accuracy)
        report["macro avg"] = dict(self.macro)
        report["weighted avg"] = dict(self.weighted)
        return report


@dataclass
class TopErrors:
    """Misclassified test images, worst first, with the probabilities behind the ranking.

    ``ranking`` is ``"rule"`` (probability of the predicted class minus probability of
    the true class, the lessons' rule) or ``"loss"`` (-log of the true class' probability).
    """

    ranking: str
    indices: np.ndarray  # (count,) positions in the test set
    true_labels: np.ndarray  # (count,)
    predicted_labels: np.ndarray  # (count,)
    p_pred: np.ndarray  # (count,) probability of the predicted class
    p_true: np.ndarray  # (count,) probability of the true class
    loss: np.ndarray  # (count,) -log(p_true), clipped at EPSILON

    def __len__(self) -> int:
        return len(self.indices)


@dataclass
class ClassProbabilities:
    """Predicted probability of one class, split by whether the image really is that class."""

    class_index: int
    in_class: np.ndarray  # probability of class_index for images labelled class_index
    out_of_class: np.ndarray  # probability of class_index for all other images


@dataclass
class Confidence:
    """Highest predicted probability per image, for all images and for the wrong ones."""

    all: np.ndarray
    wrong: np.ndarray


@dataclass
class Calibration:
    """Reliability bins on confidence (equal width on [0, 1]) and the expected calibration error."""

    bin_edges: np.ndarray  # (n_bins + 1,) from 0 to 1; bin i holds confidences in (edge_i, edge_i+1]
    mean_confidence: np.ndarray  # (n_bins,) NaN for empty bins
    accuracy: np.ndarray  # (n_bins,) NaN for empty bins
    counts: np.ndarray  # (n_bins,) int
    ece: float  # sum over bins of count/N * |accuracy - mean confidence|


@dataclass
class EvaluationResult:
    """Everything ``evaluate`` computes about a classifier on a test set."""

    probabilities: np.ndarray  # (N, num_classes) float32, rows sum to 1
    labels: np.ndarray  # (N,) int64
    predictions: np.ndarray  # (N,) int64, argmax of probabilities
    class_names: list[str]
    loss: float
    accuracy: float
    top_k: dict[int, float]  # k -> top-k accuracy, only for k < num_classes
    report: ClassificationReport
    confusion: np.ndarray  # (num_classes, num_classes) int64 counts, rows true, columns predicted
    confusion_normalized: np.ndarray  # rows divided by their sum (0 for classes absent from the test set)
    most_confused: list[ConfusedPair]
    top_errors_rule: TopErrors
    top_errors_loss: TopErrors
    class_probabilities: ClassProbabilities  # for the class with the most errors
    confidence: Confidence
    calibration: Calibration

    @property
    def num_classes(self) -> int:
        return self.probabilities.shape[1]

    @property
    def num_errors(self) -> int:
        return int(np.count_nonzero(self.predictions != self.labels))

    def to_metrics(self, max_pairs: int = 20) -> dict:
        """Return a JSON-ready summary for metrics.json.

        Args:
            max_pairs: how many most-confused pairs to keep.

        Returns:
            dict with loss, accuracy, top_k_accuracy, macro_avg, weighted_avg,
            per_class, ece, most_confused, num_test, num_errors and confusion_matrix.

        Example:
            >>> run.update_metrics(result.to_metrics())
        """
        report = self.report.to_dict()
        return {
            "loss": float(self.loss),
            "accuracy": float(self.accuracy),
            "top_k_accuracy": {str(k): float(value) for k, value in self.top_k.items()},
            "macro_avg": report["macro avg"],
            "weighted_avg": report["weighted avg"],
            "per_class": {name: report[name] for name in self.class_names},
            "ece": float(self.calibration.ece),
            "most_confused": [
                {"true": self.class_names[pair.true], "predicted": self.class_names[pair.predicted], "count": int(pair.count)}
                for pair in self.most_confused[:max_pairs]
            ],
            "num_test": int(len(self.labels)),
            "num_errors": self.num_errors,
            "confusion_matrix": self.confusion.tolist(),  # counts, rows true, columns predicted
        }


# --------------------------------------------------------------------------- entry points


def evaluate(
    model,
    x_test: np.ndarray,
    y_test: np.ndarray,
    class_names: Sequence[str] | None = None,
    batch_size: int = 256,
    top_k: Sequence[int] = (3, 5),
) -> EvaluationResult:
    """Predict the test set once with ``model`` and compute every evaluation result.

    Args:
        model: a built Keras classifier (softmax probabilities or logits out).
        x_test: test images, shaped as the model expects.
        y_test: integer class indices (or one-hot rows), one per image.
        class_names: display names, one per model output; default "0".."n-1".
        batch_size: images per model call (``keras_compat.predict_outputs``).
        top_k: the k of the top-k accuracies (k >= num_classes is skipped).

    Returns:
        EvaluationResult.

    Example:
        >>> result = evaluate(model, data.x_test, data.y_test, data.class_names)
        >>> result.accuracy, result.most_confused[0]
    """
    num_images = len(x_test)
    if num_images == 0:
        raise ConvscopeError("empty test set: x_test has 0 images; expected at least one image; check the test split of the dataset")
    if len(y_test) != num_images:
        raise ConvscopeError(
            f"x_test has {num_images} images but y_test has {len(y_test)} labels; "
            "expected one label per image; pass matching arrays"
        )
    from convscope.keras_compat import predict_outputs  # lazy: compare and the plots import this module without Keras
    # streamed images (a large folder) are read batch by batch, never all at once
    inputs = stream_batches(x_test, None, batch_size) if is_streamed(x_test) else x_test
    with pipeline_errors(x_test):
        probabilities = predict_outputs(model, inputs, batch_size=batch_size)
    if isinstance(probabilities, (list, tuple, dict)):
        raise ConvscopeError(
            f"model has {len(probabilities)} outputs; expected a classifier with one output of shape (N, num_classes)"
        )
    return evaluate_predictions(probabilities, y_test, class_names=class_names, top_k=top_k)


def evaluate_predictions(
    probabilities: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str] | None = None,
    top_k: Sequence[int] = (3, 5),
    n_bins: int = 15,
    max_errors: int = 100,
) -> EvaluationResult:
    """Compute every evaluation result from predicted probabilities (or logits) and labels.

    Args:
        probabilities: (N, num_classes) model outputs; logits are turned into probabilities.
        labels: (N,) integer class indices, or (N, num_classes) one-hot rows.
        class_names: display names, one per class; default "0".."n-1".
        top_k: the k of the top-k accuracies (k >= num_classes is skipped).
        n_bins: number of equal-width confidence bins for calibration.
        max_errors: how many top errors to keep per ranking.

    Returns:
        EvaluationResult.

    Example:
        >>> evaluate_predictions(np.array([[0.9, 0.1], [0.3, 0.7]]), np.array([0, 0])).accuracy
        0.5
    """
    probabilities, labels = check_predictions(probabilities, labels)
    num_classes = probabilities.shape[1]
    names = check_class_names(class_names, num_classes)
    predictions = probabilities.argmax(axis=1)
    confusion = compute_confusion_matrix(labels, predictions, num_classes)
    most_confused = compute_most_confused(confusion)
    return EvaluationResult(
        probabilities=probabilities,
        labels=labels,
        predictions=predictions,
        class_names=names,
        loss=compute_loss(probabilities, labels),
        accuracy=compute_accuracy(probabilities, labels),
        top_k={k: compute_top_k_accuracy(probabilities, labels, k) for k in top_k if k < num_classes},
        report=compute_classification_report(labels, predictions, num_classes, names),
        confusion=confusion,
        confusion_normalized=normalize_confusion(confusion),
        most_confused=most_confused,
        top_errors_rule=compute_top_errors(probabilities, labels, ranking="rule", count=max_errors),
        top_errors_loss=compute_top_errors(probabilities, labels, ranking="loss", count=max_errors),
        class_probabilities=compute_class_probabilities(probabilities, labels, class_with_most_errors(confusion)),
        confidence=compute_confidence(probabilities, labels),
        calibration=compute_calibration(probabilities, labels, n_bins=n_bins),
    )


# --------------------------------------------------------------------------- input checks


def check_predictions(probabilities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate model outputs and labels; return (probabilities float32 rows summing to 1, labels int64).

    Logits (rows not summing to 1 within 1e-3, or negative values) go through softmax.
    """
    probabilities = np.asarray(probabilities)
    labels = np.asarray(labels)
    if probabilities.ndim != 2:
        raise ConvscopeError(
            f"model outputs have shape {probabilities.shape}; expected (N, num_classes) class scores; "
            "end the model with Dense(num_classes) (softmax or logits)"
        )
    num_images, num_classes = probabilities.shape
    if num_images == 0:
        raise ConvscopeError("empty test set: 0 predictions; expected at least one image; check the test split of the dataset")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    elif labels.ndim == 2 and labels.shape[1] == num_classes:
        labels = labels.argmax(axis=1)  # one-hot rows, as keras.utils.to_categorical writes them
    if labels.ndim != 1 or len(labels) != num_images:
        raise ConvscopeError(
            f"labels have shape {labels.shape} but there are {num_images} predictions with {num_classes} classes; "
            f"expected ({num_images},) class indices or ({num_images}, {num_classes}) one-hot rows; pass the labels of the same test set"
        )
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
            raise ConvscopeError("labels contain non-integer values; expected class indices 0..num_classes-1; pass integer labels")
    elif labels.dtype.kind not in "iub":
        raise ConvscopeError(f"labels have dtype {labels.dtype}; expected integer class indices; map names to indices first")
    labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= num_classes:
        bad = int(labels.max()) if labels.max() >= num_classes else int(labels.min())
        raise ConvscopeError(
            f"label {bad} is outside the model's {num_classes} outputs (valid labels are 0..{num_classes - 1}); "
            f"build the model with num_classes >= {int(labels.max()) + 1} or re-map the labels to 0..{num_classes - 1}"
        )
    probabilities = probabilities.astype(np.float32)
    if not np.all(np.isfinite(probabilities)):
        raise ConvscopeError("model outputs contain NaN or infinity; expected finite scores; the model diverged, retrain it with a lower learning rate")
    return to_probabilities(probabilities), labels


def check_class_names(class_names: Sequence[str] | None, num_classes: int) -> list[str]:
    """Return ``class_names`` as a list of strings, or "0".."n-1" when None."""
    if class_names is None:
        return [str(index) for index in range(num_classes)]
    names = [str(name) for name in class_names]
    if len(names) != num_classes:
        raise ConvscopeError(
            f"{len(names)} class names given for a model with {num_classes} outputs; "
            f"expected one name per output; pass {num_classes} names or none"
        )
    return names


# --------------------------------------------------------------------------- headline numbers


def compute_loss(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy -log p(true class), probabilities clipped to [1e-7, 1 - 1e-7].

    Example:
        >>> compute_loss(np.array([[0.9, 0.1]]), np.array([0]))   # -log(0.9)
        0.10536...
    """
    p_true = probabilities[np.arange(len(labels)), labels].astype(np.float64)
    return float(np.mean(-np.log(np.clip(p_true, EPSILON, 1 - EPSILON))))


def compute_accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of images whose highest-probability class is the label."""
    return float(np.mean(probabilities.argmax(axis=1) == labels))


def compute_top_k_accuracy(probabilities: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of images whose label is among the k most probable classes.

    A class tied with the k-th is counted in the top k, as ``tf.math.in_top_k`` does.

    Example:
        >>> compute_top_k_accuracy(np.array([[0.5, 0.3, 0.2]]), np.array([1]), k=2)
        1.0
    """
    p_true = probabilities[np.arange(len(labels)), labels]
    classes_ahead = np.count_nonzero(probabilities > p_true[:, None], axis=1)
    return float(np.mean(classes_ahead < k))


def compute_classification_report(
    labels: np.ndarray, predictions: np.ndarray, num_classes: int, class_names: Sequence[str] | None = None
) -> ClassificationReport:
    """Precision, recall, F1 and support per class; divisions by zero give 0 (scikit-learn's zero_division=0).

    Example:
        >>> report = compute_classification_report(np.array([0, 1, 1]), np.array([0, 0, 1]), 2)
        >>> report.precision, report.recall
        (array([0.5, 1. ]), array([1. , 0.5]))
    """
    names = check_class_names(class_names, num_classes)
    confusion = compute_confusion_matrix(labels, predictions, num_classes)
    true_positives = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)  # images per true class
    predicted = confusion.sum(axis=0)  # predictions per class
    precision = _divide(true_positives, predicted)
    recall = _divide(true_positives, support)
    # F1 from counts, 2tp / (2tp + fn + fp), the form scikit-learn uses: equal to 2PR/(P+R) and exact to the last bit.
    f1 = _divide(2 * true_positives, (support + predicted).astype(np.float64))
    total = float(support.sum())

    def averages(weights):
        return {
            "precision": float(np.average(precision, weights=weights)),
            "recall": float(np.average(recall, weights=weights)),
            "f1-score": float(np.average(f1, weights=weights)),
            "support": total,
        }

    return ClassificationReport(
        class_names=names,
        precision=precision,
        recall=recall,
        f1=f1,
        support=support,
        accuracy=float(true_positives.sum() / total),
        macro=averages(None),
        weighted=averages(support),
    )


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    safe = np.where(denominator == 0, 1, denominator).astype(np.float64)
    return np.where(denominator == 0, 0.0, numerator / safe)


# --------------------------------------------------------------------------- confusion


def compute_confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (true, predicted) pairs: row = true class, column = predicted class.

    Example:
        >>> compute_confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]), 2)
        array([[1, 0],
               [1, 1]])
    """
    flat = np.asarray(labels, dtype=np.int64) * num_classes + np.asarray(predictions, dtype=np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def normalize_confusion(confusion: np.ndarray) -> np.ndarray:
    """Divide each row by its total (recall on the diagonal); rows with no images stay 0."""
    totals = confusion.sum(axis=1, keepdims=True)
    return np.where(totals == 0, 0.0, confusion / np.where(totals == 0, 1, totals))


def compute_most_confused(confusion: np.ndarray, min_count: int = 1) -> list[ConfusedPair]:
    """Off-diagonal cells with at least ``min_count`` images, largest count first.

    Ties keep row-major order (true class, then predicted class), as fastai's ``most_confused``.

    Example:
        >>> compute_most_confused(np.array([[5, 2], [3, 4]]))
        [ConfusedPair(true=1, predicted=0, count=3), ConfusedPair(true=0, predicted=1, count=2)]
    """
    off_diagonal = confusion.copy()
    np.fill_diagonal(off_diagonal, 0)
    rows, columns = np.nonzero(off_diagonal >= max(min_count, 1))
    counts = off_diagonal[rows, columns]
    order = np.argsort(-counts, kind="stable")
    return [ConfusedPair(int(rows[i]), int(columns[i]), int(counts[i])) for i in order]


def compute_confused_classes(most_confused: Sequence[ConfusedPair], max_classes: int = 20) -> np.ndarray:
    """Classes involved in the most confused pairs, in order of first appearance, at most ``max_classes``.

    Used to draw a readable confusion matrix subset when there are too many classes.
    """
    classes: list[int] = []
    for pair in most_confused:
        for index in (pair.true, pair.predicted):
            if index not in classes and len(classes) < max_classes:
                classes.append(index)
        if len(classes) >= max_classes:
            break
    return np.array(sorted(classes), dtype=np.int64)


def class_with_most_errors(confusion: np.ndarray) -> int:
    """The true class with the most misclassified images (the lowest index among ties)."""
    errors = confusion.sum(axis=1) - np.diag(confusion)
    return int(np.argmax(errors))


# --------------------------------------------------------------------------- errors and probabilities


def compute_top_errors(
    probabilities: np.ndarray, labels: np.ndarray, ranking: str = "rule", count: int | None = None, errors_only: bool = True
) -> TopErrors:
    """Rank test images from most to least wrong.

    Args:
        probabilities: (N, num_classes) probabilities.
        labels: (N,) class indices.
        ranking: "rule" ranks by p(predicted) - p(true), the lessons' rule;
            "loss" ranks by -log p(true), fastai's top losses.
        count: keep the first ``count`` images (all when None).
        errors_only: keep only misclassified images (with False, "loss" also ranks correct ones).

    Returns:
        TopErrors, ties kept in test-set order.

    Example:
        >>> errors = compute_top_errors(np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), np.array([1, 1, 1]))
        >>> errors.indices          # image 0 (0.9 - 0.1) before image 2 (0.6 - 0.4)
        array([0, 2])
    """
    if ranking not in ("rule", "loss"):
        raise ConvscopeError(f"unknown ranking {ranking!r}; expected 'rule' or 'loss'")
    rows = np.arange(len(labels))
    predicted = probabilities.argmax(axis=1)
    p_pred = probabilities[rows, predicted]
    p_true = probabilities[rows, labels]
    loss = -np.log(np.clip(p_true.astype(np.float64), EPSILON, 1 - EPSILON))
    score = (p_pred.astype(np.float64) - p_true) if ranking == "rule" else loss
    candidates = np.flatnonzero(predicted != labels) if errors_only else rows
    order = candidates[np.argsort(-score[candidates], kind="stable")][:count]
    return TopErrors(
        ranking=ranking,
        indices=order,
        true_labels=labels[order],
        predicted_labels=predicted[order],
        p_pred=p_pred[order],
        p_true=p_true[order],
        loss=loss[order],
    )


def compute_class_probabilities(probabilities: np.ndarray, labels: np.ndarray, class_index: int) -> ClassProbabilities:
    """Probability the model gives ``class_index``, for images of that class and for all others.

    A good model puts the first group near 1 and the second near 0; overlap shows the confusion.

    Example:
        >>> split = compute_class_probabilities(result.probabilities, result.labels, 9)
        >>> split.in_class.mean(), split.out_of_class.mean()   # near 1 and near 0 for a good model
    """
    num_classes = probabilities.shape[1]
    if not 0 <= class_index < num_classes:
        raise ConvscopeError(f"class index {class_index} is out of range; expected 0..{num_classes - 1}")
    is_class = labels == class_index
    return ClassProbabilities(
        class_index=int(class_index),
        in_class=probabilities[is_class, class_index],
        out_of_class=probabilities[~is_class, class_index],
    )


def compute_confidence(probabilities: np.ndarray, labels: np.ndarray) -> Confidence:
    """Highest probability per image (the model's confidence), for all and for wrong predictions."""
    confidence = probabilities.max(axis=1)
    wrong = probabilities.argmax(axis=1) != labels
    return Confidence(all=confidence, wrong=confidence[wrong])


def compute_calibration(probabilities: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> Calibration:
    """Reliability bins and expected calibration error (ECE).

    Confidence is the highest probability; bin i holds confidences in (i/n, (i+1)/n].
    ECE = sum_i (count_i / N) * |accuracy_i - mean confidence_i|.

    Example:
        >>> compute_calibration(np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([0, 1]), n_bins=2).ece
        0.25     # both images in bin (0.5, 1]: mean confidence 0.75, accuracy 0.5
    """
    if n_bins < 1:
        raise ConvscopeError(f"n_bins={n_bins}; expected at least 1 calibration bin")
    confidence = probabilities.max(axis=1).astype(np.float64)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges[1:-1], confidence, side="left"), 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(bins, weights=confidence, minlength=n_bins) / counts
        accuracy = np.bincount(bins, weights=correct, minlength=n_bins) / counts
    filled = counts > 0
    ece = float(np.sum(counts[filled] / len(labels) * np.abs(accuracy[filled] - mean_confidence[filled])))
    return Calibration(bin_edges=edges, mean_confidence=mean_confidence, accuracy=accuracy, counts=counts, ece=ece)


def compute_class_counts(labels_by_split: dict[str, np.ndarray | None], num_classes: int) -> dict[str, np.ndarray]:
    """Images per class for each split given (splits that are None are left out).

    Example:
        >>> compute_class_counts({"train": np.array([0, 2, 2]), "val": None}, 3)
        {'train': array([1, 0, 2])}
    """
    counts = {}
    for split, labels in labels_by_split.items():
        if labels is None:
            continue
        labels = np.asarray(labels, dtype=np.int64).ravel()
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise ConvscopeError(f"{split} labels range {labels.min()}..{labels.max()}; expected 0..{num_classes - 1}")
        counts[split] = np.bincount(labels, minlength=num_classes)
    return counts
