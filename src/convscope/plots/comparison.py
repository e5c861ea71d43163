"""Comparison figures: several runs on shared axes (what ``convscope.compare`` computed; no computation here).

    from convscope.compare import compare_runs
    from convscope.plots.comparison import plot_compared_curves, plot_compared_confusions
    comparison = compare_runs(["runs/sweep-mnist/mlp_512", "runs/sweep-mnist/cnn_2conv"])
    runs = comparison.groups["mnist"]
    figure = plot_compared_curves(runs)           # validation accuracy and loss, one colour per run
    figure = plot_compared_confusions(runs)       # one confusion matrix per run, side by side

Both take the ``RunSummary`` list of one dataset, in leaderboard order, and
return the figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from convscope.plots.evaluation import _confusion_size, plot_confusion_matrix

CONFUSION_COLUMNS = 3  # confusion matrices per row: three 10-class matrices fill a 1,600 px wide figure


def run_colors(count: int) -> list:
    """One distinct colour per run (tab10, then tab20 beyond ten runs)."""
    colormap = plt.get_cmap("tab10" if count <= 10 else "tab20")
    return [colormap(index % colormap.N) for index in range(count)]


def plot_compared_curves(runs, axes=None):
    """Validation accuracy and validation loss per epoch of every run, on shared axes.

    Args:
        runs: ``RunSummary`` objects (``history`` holds history.csv columns).
        axes: two axes (accuracy, loss) to draw into; a new figure otherwise.

    Returns:
        The figure. A run without a column (a baseline has no validation loss)
        is missing from that panel only, and the legend says so.

    Example:
        >>> plot_compared_curves(comparison.groups["mnist"])
    """
    if axes is None:
        figure, axes = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    else:
        figure = axes[0].figure
    colors = run_colors(len(runs))
    for ax, column, title in zip(axes, ("val_accuracy", "val_loss"), ("Validation accuracy", "Validation loss")):
        drawn = 0
        for run, color in zip(runs, colors):
            values = np.asarray(run.history.get(column, []), dtype=float)
            if not len(values) or not np.any(np.isfinite(values)):
                ax.plot([], [], color=color, label=f"{run.label} (not recorded)")
                continue
            epochs = np.asarray(run.history.get("epoch", np.arange(1, len(values) + 1)), dtype=float)
            ax.plot(epochs, values, color=color, marker="o" if len(values) <= 30 else None, markersize=3, label=run.label)
            drawn += 1
        if not drawn:
            ax.text(0.5, 0.5, f"no run recorded {column}", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(column.replace("_", " "))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return figure


def plot_compared_confusions(runs, columns: int = CONFUSION_COLUMNS):
    """The confusion matrix of every run that has predictions, side by side (same colour scale).

    Args:
        runs: ``RunSummary`` objects; those without ``confusion`` are left out.
        columns: matrices per row.

    Returns:
        The figure, or None when no run has predictions.

    Example:
        >>> plot_compared_confusions(comparison.groups["mnist"])
    """
    shown = [run for run in runs if run.confusion is not None]
    if not shown:
        return None
    columns = min(columns, len(shown))
    rows = -(-len(shown) // columns)
    width, height = _confusion_size(len(shown[0].class_names))
    figure, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), layout="constrained", squeeze=False)
    for ax, run in zip(axes.flat, shown):
        plot_confusion_matrix(run.confusion, run.class_names, ax=ax)
        accuracy = f", test accuracy {100 * run.test_accuracy:.2f}%" if run.test_accuracy is not None else ""
        ax.set_title(f"{run.label}{accuracy}", fontsize=11)
    for ax in axes.flat[len(shown):]:
        ax.set_axis_off()
    return figure
