"""Evaluation figures: draw what ``convscope.evaluate`` computed (no computation here).

    from convscope.evaluate import evaluate
    from convscope.plots.evaluation import plot_confusion_matrix, save_evaluation_figures
    result = evaluate(model, data.x_test, data.y_test, class_names=data.class_names)
    figure = plot_confusion_matrix(result)                      # one figure, to adjust or show
    paths = save_evaluation_figures(result, data.display_images(data.x_test), "runs/demo/plots",
                                    history=run.read_history(), train_labels=data.y_train)

Single-panel functions take ``ax=None`` and draw into it when given; two-panel
figures (training curves, probability bars, reliability) take ``axes=None``, a
pair; image grids always make their own figure. Every function returns the
figure. Images may be grayscale or RGB, uint8 or float, channel axis last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from convscope.errors import ConvscopeError
from convscope.evaluate import (
    Calibration,
    ClassProbabilities,
    Confidence,
    EvaluationResult,
    TopErrors,
    compute_class_counts,
    compute_confused_classes,
    normalize_confusion,
)
from convscope.display import display_image
from convscope.plots.common import new_axes, new_panels, save_figure

GRID_COUNT = 25  # 5 x 5 images: enough to see patterns, small enough to save in ~0.3 s
GRID_COLUMNS = 5
MAX_NUMBERED_CLASSES = 30  # above this a confusion matrix cell is too small to hold its count
MAX_BAR_CLASSES = 20  # probability bars show every class up to this, else the 10 most probable
RIGHT_COLOR, WRONG_COLOR = "tab:blue", "tab:red"  # the lessons' colours for right and wrong predictions


# --------------------------------------------------------------------------- training


def plot_training_curves(history: dict[str, np.ndarray], axes=None):
    """Loss and accuracy per epoch, train and validation, with learning-rate changes and the best epoch.

    Args:
        history: columns as ``RunFolder.read_history()`` returns them (epoch, loss,
            accuracy, val_loss, val_accuracy, learning_rate, seconds); any may be missing
            except loss or accuracy.
        axes: two axes (loss, accuracy) to draw into; a new figure otherwise.

    Returns:
        The figure (two panels: loss, accuracy).

    Example:
        >>> plot_training_curves(open_run("runs/demo").read_history())
    """
    # A column of NaN (val_loss of a run without validation data) counts as missing.
    columns = {key: np.asarray(values, dtype=float) for key, values in (history or {}).items()}
    columns = {key: values for key, values in columns.items() if len(values) and np.any(np.isfinite(values))}
    if "loss" not in columns and "accuracy" not in columns:
        raise ConvscopeError(
            f"history has columns {sorted(columns)}; expected at least 'loss' or 'accuracy'; pass the history of a finished training run"
        )
    length = len(columns.get("loss", columns.get("accuracy")))
    epochs = columns.get("epoch", np.arange(length))
    # Keras logs epochs from 0; the figure counts completed epochs from 1, as the lessons' plots do.
    epochs = epochs + 1 if epochs[0] == 0 else epochs
    figure, axes = new_panels(axes, 1, 2, figsize=(10, 4), layout="constrained")
    axes = axes.ravel()
    marker = "o" if length <= 30 else None
    best = None
    if "val_loss" in columns:
        best = int(np.nanargmin(columns["val_loss"]))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for key, label, style in ((metric, "train", "-"), (f"val_{metric}", "validation", "--")):
            if key in columns:
                ax.plot(epochs, columns[key], style, marker=marker, markersize=3, label=label)
        if metric not in columns and f"val_{metric}" not in columns:
            ax.text(0.5, 0.5, f"no {metric} recorded", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if length == 1:  # one epoch (the fast preset): one point per curve, on that epoch's tick
            ax.set_xlim(epochs[0] - 0.5, epochs[0] + 0.5), ax.set_xticks([epochs[0]])
        ax.set_ylabel(metric)
        ax.set_title(metric.capitalize())
        ax.grid(alpha=0.3)
        _mark_learning_rate_changes(ax, epochs, columns.get("learning_rate"))
        if best is not None:
            ax.axvline(epochs[best], color="tab:green", linestyle=":", linewidth=1.5, label=f"best epoch {epochs[best]:g}")
            value = columns.get(f"val_{metric}")
            if value is not None and np.isfinite(value[best]):
                ax.plot(epochs[best], value[best], "*", color="tab:green", markersize=12)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if best is not None:
        figure.suptitle(f"Best epoch {epochs[best]:g}: validation loss {columns['val_loss'][best]:.4f}", fontsize=10)
    return figure


def _mark_learning_rate_changes(ax, epochs, learning_rate) -> None:
    if learning_rate is None or len(learning_rate) < 2:
        return
    for index in range(1, len(learning_rate)):
        before, after = learning_rate[index - 1], learning_rate[index]
        if np.isfinite(before) and np.isfinite(after) and not np.isclose(before, after, rtol=1e-6, atol=0):
            ax.axvline(epochs[index], color="tab:orange", linestyle="-.", linewidth=1)
            ax.annotate(
                f"lr {after:.2g}", (epochs[index], 0.98), xycoords=("data", "axes fraction"),
                rotation=90, va="top", ha="right", fontsize=7, color="tab:orange",
            )


# --------------------------------------------------------------------------- confusion


def plot_confusion_matrix(result_or_counts, class_names: Sequence[str] | None = None, show_counts: bool | None = None, ax=None):
    """Confusion matrix: counts written in the cells, colour = fraction of the true class.

    Args:
        result_or_counts: an EvaluationResult, or a (C, C) count matrix (rows true).
        class_names: names for the axes (taken from the result when it has them).
        show_counts: write counts in the cells; default only up to 30 classes.
        ax: axes to draw into; a new figure sized for the class count otherwise.

    Returns:
        The figure.

    Example:
        >>> plot_confusion_matrix(result)
    """
    counts, normalized, names = _confusion_parts(result_or_counts, class_names)
    if show_counts is None:
        show_counts = len(names) <= MAX_NUMBERED_CLASSES
    figure, ax = new_axes(ax, figsize=_confusion_size(len(names)))
    _draw_confusion(ax, counts, normalized, names, show_counts)
    title = "Confusion matrix" + ("" if show_counts else f" ({len(names)} classes, counts hidden)")
    ax.set_title(title)
    return figure


def plot_confusion_top(result: EvaluationResult, max_classes: int = 20, ax=None):
    """Confusion matrix restricted to the classes of the most confused pairs, with counts.

    For many classes (say 100) the full matrix cannot show numbers; this shows the
    part that matters. Colours stay fractions of each true class' full row.

    Returns:
        The figure.

    Example:
        >>> plot_confusion_top(result, max_classes=15)
    """
    classes = compute_confused_classes(result.most_confused, max_classes=max_classes)
    figure, ax = new_axes(ax, figsize=_confusion_size(max(len(classes), 2)))
    if len(classes) == 0:
        ax.text(0.5, 0.5, "no misclassified test images", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return figure
    subset = np.ix_(classes, classes)
    names = [result.class_names[index] for index in classes]
    _draw_confusion(ax, result.confusion[subset], result.confusion_normalized[subset], names, show_counts=True)
    ax.set_title(f"Most confused classes ({len(classes)} of {result.num_classes})")
    return figure


def _confusion_parts(result_or_counts, class_names):
    if isinstance(result_or_counts, EvaluationResult):
        return result_or_counts.confusion, result_or_counts.confusion_normalized, result_or_counts.class_names
    counts = np.asarray(result_or_counts)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ConvscopeError(f"confusion matrix has shape {counts.shape}; expected a square (C, C) count matrix")
    names = list(class_names) if class_names is not None else [str(index) for index in range(len(counts))]
    return counts, normalize_confusion(counts), names


def _confusion_size(num_classes: int) -> tuple[float, float]:
    # ~0.5 in per class keeps 10 classes at 7.5 x 6.5 in; capped at 16 in (1,600 px at 100 dpi) for 100+ classes.
    side = float(np.clip(2.5 + 0.5 * num_classes, 5.0, 16.0))
    return side, side - 1.0


def _draw_confusion(ax, counts, normalized, names, show_counts: bool) -> None:
    num_classes = len(names)
    image = ax.imshow(normalized, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, shrink=0.8, aspect=30, pad=0.02, label="fraction of the true class")
    # Text sized to the cell: a cell is ~0.12 in (8.6 pt) at 100 classes, ~0.5 in at 10.
    cell_points = 72 * (ax.figure.get_figwidth() - 2.0) / max(num_classes, 1)
    label_size = float(np.clip(0.7 * cell_points, 5.5, 10.0))
    labels = [_short(name, 16) for name in names]
    positions = np.arange(num_classes)
    if num_classes <= MAX_NUMBERED_CLASSES:
        ax.set_xticks(positions, labels, rotation=45, ha="right", rotation_mode="anchor", fontsize=label_size)
    else:
        ax.set_xticks(positions, labels, rotation=90, fontsize=label_size)
    ax.set_yticks(positions, labels, fontsize=label_size)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if show_counts:
        number_size = float(np.clip(0.4 * cell_points, 6.0, 11.0))
        for (row, column), count in np.ndenumerate(counts):
            # White on cells darker than the middle of the colour map, black elsewhere.
            color = "white" if normalized[row, column] > 0.5 else ("black" if count else "0.7")
            ax.text(column, row, str(int(count)), ha="center", va="center", fontsize=number_size, color=color)


# --------------------------------------------------------------------------- image grids


def plot_top_errors(top_errors: TopErrors, images: np.ndarray, class_names: Sequence[str], count: int = GRID_COUNT):
    """The worst misclassified images, titled "pred X (p=..)" over "true Y (p=..)".

    Args:
        top_errors: ``result.top_errors_rule`` or ``result.top_errors_loss``.
        images: the test images (display form), indexed like the test set.
        class_names: one name per class.
        count: how many images to show.

    Returns:
        The figure.

    Example:
        >>> plot_top_errors(result.top_errors_loss, data.display_images(data.x_test), result.class_names)
    """
    shown = min(count, len(top_errors))
    titles = [
        f"pred {_short(class_names[top_errors.predicted_labels[i]])} (p={_probability(top_errors.p_pred[i])})\n"
        f"true {_short(class_names[top_errors.true_labels[i]])} (p={_probability(top_errors.p_true[i])})"
        for i in range(shown)
    ]
    ranking = "p(pred) - p(true)" if top_errors.ranking == "rule" else "loss -log p(true)"
    figure = _image_grid([images[index] for index in top_errors.indices[:shown]], titles, [WRONG_COLOR] * shown, title_lines=2)
    figure.suptitle(f"Top {shown} errors by {ranking}" if shown else "No misclassified test images", fontsize=11)
    return figure


def plot_prediction_grid(images: np.ndarray, predictions: np.ndarray, class_names: Sequence[str], count: int = GRID_COUNT):
    """The first ``count`` test images with the predicted class as title.

    Example:
        >>> plot_prediction_grid(test_images, result.predictions, result.class_names)
    """
    shown = min(count, len(images))
    titles = [f"pred {_short(class_names[predictions[index]])}" for index in range(shown)]
    figure = _image_grid(images[:shown], titles, ["black"] * shown, title_lines=1)
    figure.suptitle(f"First {shown} test images and their predictions", fontsize=11)
    return figure


def plot_sample_grid(
    images: np.ndarray, predictions: np.ndarray, labels: np.ndarray, class_names: Sequence[str], count: int = GRID_COUNT, seed: int = 0
):
    """A seeded random sample titled "pred (true)": blue when right, red when wrong.

    Example:
        >>> plot_sample_grid(test_images, result.predictions, result.labels, result.class_names, seed=1)
    """
    shown = min(count, len(images))
    # Which images to show is a display choice; the seed makes the figure repeatable.
    indices = np.sort(np.random.default_rng(seed).choice(len(images), size=shown, replace=False))
    titles = [f"{_short(class_names[predictions[i]])} ({_short(class_names[labels[i]])})" for i in indices]
    colors = [RIGHT_COLOR if predictions[i] == labels[i] else WRONG_COLOR for i in indices]
    figure = _image_grid([images[i] for i in indices], titles, colors, title_lines=1)
    figure.suptitle("Random test images: predicted (true); blue right, red wrong", fontsize=11)
    return figure


def plot_data_samples(images: np.ndarray, labels: np.ndarray | None = None, class_names: Sequence[str] | None = None, count: int = GRID_COUNT):
    """The first ``count`` training images with their labels.

    Example:
        >>> plot_data_samples(data.display_images(data.x_train[:25]), data.y_train, data.class_names)
    """
    shown = min(count, len(images))
    if labels is None:
        titles = [""] * shown
    else:
        titles = [_short(class_names[labels[i]]) if class_names is not None else str(int(labels[i])) for i in range(shown)]
    figure = _image_grid(images[:shown], titles, ["black"] * shown, title_lines=1)
    figure.suptitle(f"First {shown} training images", fontsize=11)
    return figure


def _image_grid(images, titles: list[str], colors: list[str], title_lines: int):
    # One axes measured in inches with one imshow per image, not a grid of axes: a 5 x 5 grid
    # builds and saves in ~0.3 s of CPU this way against ~0.5 s with 25 axes.
    columns = GRID_COLUMNS
    rows = max(1, -(-len(titles) // columns))
    image_size, gap, header = 1.7, 0.12, 0.5  # inches: one image, space around it, the figure title
    title_height = 0.16 * title_lines + 0.08
    width = columns * (image_size + gap) + gap
    height = header + rows * (title_height + image_size + gap)
    figure = plt.figure(figsize=(width, height))
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    for position, title in enumerate(titles):
        row, column = divmod(position, columns)
        left = gap + column * (image_size + gap)
        top = header + row * (title_height + image_size + gap) + title_height
        picture = display_image(images[position])
        # Keep the image's aspect ratio inside the square cell.
        image_height, image_width = picture.shape[:2]
        scale = image_size / max(image_height, image_width)
        x0 = left + (image_size - image_width * scale) / 2
        y0 = top + (image_size - image_height * scale) / 2
        ax.imshow(
            picture, cmap="gray" if picture.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest",
            extent=(x0, x0 + image_width * scale, y0 + image_height * scale, y0),
        )
        ax.text(left + image_size / 2, top - 0.04, title, ha="center", va="bottom",
                fontsize=8 if title_lines > 1 else 9, color=colors[position])
    if not titles:
        ax.text(width / 2, height / 2, "nothing to show", ha="center", va="center")
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)  # y in inches from the top, rows read downwards
    ax.set_aspect("auto")
    return figure


def _probability(value: float) -> str:
    # Two decimals, except below 0.01 where "0.00" would hide how sure the model was: 3e-05.
    if value == 0:
        return "0"
    return f"{value:.2f}" if value >= 0.005 else f"{value:.0e}"


def _short(name, limit: int = 14) -> str:
    name = str(name)
    return name if len(name) <= limit else name[: limit - 1] + "…"


# --------------------------------------------------------------------------- one image


def plot_probability_bars(
    probabilities: np.ndarray, label: int, image: np.ndarray | None = None, class_names: Sequence[str] | None = None, axes=None
):
    """One image beside its predicted probabilities as horizontal bars; the true class highlighted.

    Args:
        probabilities: (num_classes,) the image's predicted probabilities.
        label: the true class index.
        image: the image (display form); omitted when None.
        class_names: one name per class.
        axes: axes to draw into: (image axes, bar axes), or the bar axes alone when
            there is no image; a new figure otherwise.

    Returns:
        The figure. With more than 20 classes only the 10 most probable (and the true class) are drawn.

    Example:
        >>> i = result.top_errors_rule.indices[0]
        >>> plot_probability_bars(result.probabilities[i], result.labels[i], test_images[i], result.class_names)
    """
    num_classes = len(probabilities)
    names = list(class_names) if class_names is not None else [str(index) for index in range(num_classes)]
    shown = np.arange(num_classes)
    if num_classes > MAX_BAR_CLASSES:
        shown = np.union1d(np.argsort(probabilities)[::-1][:10], [label])
    predicted = int(np.argmax(probabilities))
    colors = ["tab:green" if index == label else (WRONG_COLOR if index == predicted else "0.6") for index in shown]
    height = float(np.clip(0.28 * len(shown) + 1.2, 3.0, 8.0))
    if image is None:
        figure, bar_ax = new_axes(axes, figsize=(6, height))
    else:
        figure, panels = new_panels(axes, 1, 2, figsize=(9, height), layout="constrained", width_ratios=(1, 1.6))
        image_ax, bar_ax = panels.ravel()
        picture = display_image(image)
        image_ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
        image_ax.set_axis_off()
        image_ax.set_title(f"true: {_short(names[label], 24)}", color="tab:green")
    positions = np.arange(len(shown))
    bar_ax.barh(positions, probabilities[shown], color=colors)
    bar_ax.set_yticks(positions, [_short(names[index], 24) for index in shown], fontsize=9)
    for tick_label, index in zip(bar_ax.get_yticklabels(), shown):
        if index in (label, predicted):  # a true class at p=0.00 has no visible bar: mark its name too
            tick_label.set_color(colors[list(shown).index(index)])
            tick_label.set_fontweight("bold")
    bar_ax.invert_yaxis()  # class 0 on top, as a list reads
    bar_ax.set_xlim(0, 1.08)
    bar_ax.set_xlabel("predicted probability")
    for position, index in zip(positions, shown):
        bar_ax.text(probabilities[index] + 0.01, position, _probability(probabilities[index]), va="center", fontsize=8)
    verdict = "right" if predicted == label else "wrong"
    bar_ax.set_title(f"predicted {_short(names[predicted], 24)} (p={probabilities[predicted]:.2f}): {verdict}",
                     color=RIGHT_COLOR if predicted == label else WRONG_COLOR)
    return figure


# --------------------------------------------------------------------------- probability distributions


def plot_class_histogram(class_probabilities: ClassProbabilities, class_names: Sequence[str] | None = None, ax=None):
    """Predicted probability of class k for images that are k (red) and that are not (blue), log-scale counts.

    Example:
        >>> plot_class_histogram(result.class_probabilities, result.class_names)
    """
    figure, ax = new_axes(ax, figsize=(7, 4))
    index = class_probabilities.class_index
    name = class_names[index] if class_names is not None else str(index)
    bins = np.linspace(0.0, 1.0, 21)
    ax.hist(class_probabilities.out_of_class, bins=bins, color=RIGHT_COLOR, alpha=0.55,
            label=f"label is not {name} ({len(class_probabilities.out_of_class)} images)")
    ax.hist(class_probabilities.in_class, bins=bins, color=WRONG_COLOR, alpha=0.55,
            label=f"label is {name} ({len(class_probabilities.in_class)} images)")
    ax.set_yscale("log")
    ax.minorticks_off()  # minor log ticks add ~0.2 s per figure and nothing readable
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"predicted probability of class {name}")
    ax.set_ylabel("images (log scale)")
    ax.set_title(f"How sure the model is about class {name}")
    ax.legend(fontsize=8, loc="upper center")
    return figure


def plot_confidence(confidence: Confidence, ax=None):
    """Histogram of the highest predicted probability for all images and for the wrong ones.

    Example:
        >>> plot_confidence(result.confidence)
    """
    figure, ax = new_axes(ax, figsize=(7, 4))
    bins = np.linspace(0.0, 1.0, 21)
    ax.hist(confidence.all, bins=bins, color="0.55", label=f"all predictions ({len(confidence.all)})")
    if len(confidence.wrong):
        ax.hist(confidence.wrong, bins=bins, color=WRONG_COLOR, alpha=0.8, label=f"wrong predictions ({len(confidence.wrong)})")
    ax.set_yscale("log")
    ax.minorticks_off()
    ax.set_xlim(0, 1)
    ax.set_xlabel("confidence (highest predicted probability)")
    ax.set_ylabel("images (log scale)")
    ax.set_title("Confidence of all and of wrong predictions")
    ax.legend(fontsize=8, loc="upper left")
    return figure


def plot_reliability(calibration: Calibration, axes=None):
    """Reliability diagram: accuracy per confidence bin against the diagonal, gap shaded, counts below.

    Args:
        calibration: ``result.calibration``.
        axes: two axes (reliability, counts) to draw into; a new figure otherwise.

    Example:
        >>> plot_reliability(result.calibration)
    """
    figure, panels = new_panels(axes, 2, 1, figsize=(6, 6.5), layout="constrained", sharex=True, height_ratios=(3, 1))
    ax, count_ax = panels.ravel()
    edges = calibration.bin_edges
    width = np.diff(edges)
    filled = calibration.counts > 0
    accuracy = np.where(filled, calibration.accuracy, 0.0)
    confidence = np.where(filled, calibration.mean_confidence, 0.0)
    ax.bar(edges[:-1], accuracy, width=width, align="edge", color=RIGHT_COLOR, edgecolor="white", label="accuracy")
    # The gap between each bin's accuracy and its mean confidence is what ECE sums (weighted by count).
    ax.bar(edges[:-1][filled], (confidence - accuracy)[filled], bottom=accuracy[filled], width=width[filled], align="edge",
           color=WRONG_COLOR, alpha=0.3, hatch="//", edgecolor=WRONG_COLOR, label="gap to confidence")
    ax.plot([0, 1], [0, 1], "--", color="0.3", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability (ECE = {calibration.ece:.4f})")
    ax.legend(fontsize=8, loc="upper left")
    count_ax.bar(edges[:-1], calibration.counts, width=width, align="edge", color="0.55", edgecolor="white")
    if np.any(filled):
        count_ax.set_yscale("log")
        count_ax.minorticks_off()
    count_ax.set_xlabel("confidence (highest predicted probability)")
    count_ax.set_ylabel("images")
    return figure


# --------------------------------------------------------------------------- data overview


def plot_class_counts(counts: dict[str, np.ndarray], class_names: Sequence[str] | None = None, ax=None):
    """Images per class for each split as grouped bars.

    Args:
        counts: split name -> (num_classes,) counts, as ``compute_class_counts`` returns.
        class_names: one name per class.

    Example:
        >>> plot_class_counts(compute_class_counts({"train": data.y_train, "test": data.y_test}, 10), data.class_names)
    """
    if not counts:
        raise ConvscopeError("no class counts to draw; expected at least one split's labels")
    num_classes = len(next(iter(counts.values())))
    names = list(class_names) if class_names is not None else [str(index) for index in range(num_classes)]
    figure, ax = new_axes(ax, figsize=(float(np.clip(3 + 0.45 * num_classes, 7, 16)), 4.5))
    width = 0.8 / len(counts)
    positions = np.arange(num_classes)
    for offset, (split, values) in enumerate(counts.items()):
        ax.bar(positions + (offset - (len(counts) - 1) / 2) * width, values, width=width, label=f"{split} ({int(values.sum())})")
    names = [_short(name, 16) for name in names]
    if num_classes <= 10 and max(len(name) for name in names) <= 6:
        ax.set_xticks(positions, names)
    elif num_classes <= 30:  # up to 30 slanted 9 pt names fit the width (0.45 in per class)
        ax.set_xticks(positions, names, rotation=45, ha="right", rotation_mode="anchor", fontsize=9)
    else:
        # At the 16 in cap 100 classes get ~0.15 in each, room for a 7 pt name (0.1 in); beyond, skip names.
        step = int(np.ceil(num_classes / 100))
        ax.set_xticks(positions[::step], names[::step], rotation=90, fontsize=7)
    ax.set_xlim(-0.6, num_classes - 0.4)
    ax.set_ylim(0, 1.15 * max(float(values.max()) for values in counts.values()) + 1)  # headroom for the legend
    ax.set_ylabel("images")
    ax.set_title("Images per class")
    ax.legend(fontsize=8, ncols=len(counts), loc="upper right")
    return figure


# --------------------------------------------------------------------------- all at once


def save_evaluation_figures(
    result: EvaluationResult,
    images: np.ndarray | None,
    out_dir: str | Path,
    history: dict[str, np.ndarray] | None = None,
    train_labels: np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
    train_images: np.ndarray | None = None,
) -> dict[str, Path]:
    """Draw every evaluation figure the inputs allow and save each as PNG in ``out_dir``.

    Args:
        result: what ``evaluate`` returned.
        images: the test images in display form (e.g. ``dataset.display_images(x_test)``),
            indexed like ``result.labels``; image figures are skipped when None.
        out_dir: folder for the PNGs (created if needed).
        history: training history columns; adds training_curves.png.
        train_labels, val_labels: add their counts to class_counts.png.
        train_images: first training images in display form; adds data_samples.png
            (titled with ``train_labels`` when given).

    Returns:
        figure name (file stem) -> path written.

    Example:
        >>> paths = save_evaluation_figures(result, data.display_images(data.x_test), run.plots_dir,
        ...                                 history=run.read_history(), train_labels=data.y_train)
        >>> sorted(paths)[:3]
        ['class_counts', 'class_histogram', 'confidence']
    """
    out_dir = Path(out_dir)
    plan = plan_evaluation_figures(result, images, history, train_labels, val_labels, train_images)
    return {name: save_figure(draw(), out_dir / f"{name}.png") for name, draw in plan.items()}


def plan_evaluation_figures(
    result: EvaluationResult,
    images: np.ndarray | None,
    history: dict[str, np.ndarray] | None = None,
    train_labels: np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
    train_images: np.ndarray | None = None,
) -> dict:
    """The evaluation figures the inputs allow, not yet drawn: {name: a call that returns the figure}, in a fixed order.

    ``save_evaluation_figures`` draws them all; ``plots.background`` shares them between two processes.
    """
    if images is not None and len(images) != len(result.labels):
        raise ConvscopeError(
            f"{len(images)} test images given for {len(result.labels)} evaluated labels; "
            "expected the same test set that was evaluated; pass its display images"
        )
    names = result.class_names
    figures = {}
    if history:
        figures["training_curves"] = lambda: plot_training_curves(history)
    figures["confusion_matrix"] = lambda: plot_confusion_matrix(result)
    if result.num_classes > MAX_NUMBERED_CLASSES:
        figures["confusion_top"] = lambda: plot_confusion_top(result)
    if images is not None:
        figures["top_errors_rule"] = lambda: plot_top_errors(result.top_errors_rule, images, names)
        figures["top_errors_loss"] = lambda: plot_top_errors(result.top_errors_loss, images, names)
        figures["prediction_grid"] = lambda: plot_prediction_grid(images, result.predictions, names)
        figures["sample_grid"] = lambda: plot_sample_grid(images, result.predictions, result.labels, names)
        # The worst error shows what the model confuses; a perfect model shows its first image.
        index = int(result.top_errors_rule.indices[0]) if len(result.top_errors_rule) else 0
        figures["probability_bars"] = lambda: plot_probability_bars(result.probabilities[index], int(result.labels[index]), images[index], names)
    figures["class_histogram"] = lambda: plot_class_histogram(result.class_probabilities, names)
    figures["confidence"] = lambda: plot_confidence(result.confidence)
    figures["reliability"] = lambda: plot_reliability(result.calibration)
    if train_images is not None:
        figures["data_samples"] = lambda: plot_data_samples(train_images, train_labels, names)
    counts = compute_class_counts({"train": train_labels, "validation": val_labels, "test": result.labels}, result.num_classes)
    figures["class_counts"] = lambda: plot_class_counts(counts, names)
    return figures
