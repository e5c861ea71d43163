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
from matplotlib.ticker import MaxNLocator, NullFormatter, ScalarFormatter

from convscope.plots.evaluation import _confusion_size, plot_confusion_matrix

CONFUSION_COLUMNS = 2  # matrices per row: two 10-class matrices are 1,500 px wide, their counts readable in a 1,200 px column
LOG_EPOCHS_RATIO = 5  # a 40-epoch MLP beside 3-epoch CNNs: a linear axis would squeeze the CNNs into its first tenth


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
        The figure, with one legend for both panels. A run without a column (a
        scikit-learn MLP records no validation loss) is missing from that panel,
        which names it. When run lengths differ by more than LOG_EPOCHS_RATIO the
        epoch axis is logarithmic, so 3-epoch CNNs stay readable beside a 40-epoch MLP.

    Example:
        >>> plot_compared_curves(comparison.groups["mnist"])
    """
    if axes is None:
        figure, axes = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained", sharex=True)
    else:
        figure = axes[0].figure
    colors = run_colors(len(runs))
    lengths = [len(run.history.get("epoch", [])) for run in runs if len(run.history.get("epoch", []))]
    logarithmic = bool(lengths) and max(lengths) > LOG_EPOCHS_RATIO * min(lengths)
    handles = {}
    for ax, column, title in zip(axes, ("val_accuracy", "val_loss"), ("Validation accuracy", "Validation loss")):
        missing = []
        for run, color in zip(runs, colors):
            values = np.asarray(run.history.get(column, []), dtype=float)
            if not len(values) or not np.any(np.isfinite(values)):
                missing.append(run.label)
                continue
            epochs = np.asarray(run.history.get("epoch", np.arange(1, len(values) + 1)), dtype=float)
            (line,) = ax.plot(epochs, values, color=color, marker="o" if len(values) <= 30 else None, markersize=3, label=run.label)
            handles.setdefault(run.label, line)
        if missing:
            ax.text(0.99, 0.01, "not recorded: " + ", ".join(missing), ha="right", va="bottom", fontsize=8, color="0.4", transform=ax.transAxes)
        ax.set_title(title)
        ax.set_xlabel("epoch" + (" (log scale)" if logarithmic else ""))
        ax.set_ylabel(column.replace("_", " "))
        if logarithmic:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
            ticks = [tick for tick in (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000) if tick <= max(lengths)]
            ax.set_xticks(ticks)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    ordered = [handles[run.label] for run in runs if run.label in handles]
    if ordered:
        figure.legend(ordered, [line.get_label() for line in ordered], loc="outside lower center", ncols=min(len(ordered), 5), fontsize=9)
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
