"""The learning-rate finder's figure: draw what ``convscope.lrfind`` recorded (no computation here).

    from convscope.lrfind import find_learning_rate
    from convscope.plots.lr_find import plot_lr_find
    figure = plot_lr_find(find_learning_rate(model, x_train, y_train))
    save_figure(figure, "runs/demo/plots/lr_find.png")
"""

from __future__ import annotations

import numpy as np

from convscope.plots.common import new_axes

POINT_STYLES = {  # rule -> (colour, marker, how the legend names it)
    "valley": ("tab:red", "o", "valley, suggested"),
    "minimum": ("tab:green", "v", "minimum"),
    "steep": ("tab:purple", "s", "steepest fall"),
}
SKIPPED_COLOR = "0.92"  # the batches the rules do not read


def plot_lr_find(sweep, ax=None):
    """Loss against learning rate (log scale): each batch's loss, the smoothed curve, the three rules' points.

    Args:
        sweep: a ``convscope.lrfind.LearningRateSweep`` (``find_learning_rate``'s result,
            or ``read_lr_find(run)``).
        ax: axes to draw into; a new figure otherwise.

    Returns:
        The figure.

    Example:
        >>> plot_lr_find(read_lr_find(open_run("runs/demo")))  # doctest: +SKIP
    """
    figure, ax = new_axes(ax, figsize=(7, 4.2))
    rates = np.asarray(sweep.learning_rates, dtype=float)
    losses, smoothed = np.asarray(sweep.losses, dtype=float), np.asarray(sweep.smoothed, dtype=float)
    ax.plot(rates, losses, color="0.6", linewidth=0.8, alpha=0.8, label="loss of each batch")
    ax.plot(rates, smoothed, color="tab:blue", linewidth=2, label="smoothed loss")
    _shade_skipped(ax, sweep, rates)
    for rule, (color, marker, name) in POINT_STYLES.items():
        point = sweep.points[rule]
        label = f"{name}: {point.learning_rate:.2g}" + (f" (fastai suggests a tenth, {point.learning_rate / 10:.2g})" if rule == "minimum" else "")
        ax.plot(point.learning_rate, point.loss, marker, color=color, markersize=9, markeredgecolor="white", label=label, zorder=5)
    valley = sweep.points["valley"]
    ax.axvline(valley.learning_rate, color="tab:red", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.set_ylim(*_loss_limits(losses, smoothed))
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ended = {"completed": "all batches ran", "diverged": "stopped: smoothed loss over 4x its lowest", "not finite": "stopped: loss NaN/Inf"}
    ax.set_title(
        f"Suggested learning rate {valley.learning_rate:.2g} (valley rule)\n"
        f"{len(losses)} batches of {sweep.batch_size}, {ended.get(sweep.stop_reason, sweep.stop_reason)}",
        fontsize=10,
    )
    return figure


def _shade_skipped(ax, sweep, rates) -> None:
    """Grey the batches the rules leave out (``LearningRateSweep.rules_window``)."""
    first, last = sweep.rules_window()
    if first > 0:
        ax.axvspan(rates[0], rates[min(first, len(rates) - 1)], color=SKIPPED_COLOR, zorder=0, label="not read by the rules")
    if last < len(rates) - 1:
        ax.axvspan(rates[last], rates[-1], color=SKIPPED_COLOR, zorder=0)


def _loss_limits(losses, smoothed) -> tuple[float, float]:
    """The smoothed curve whole, with a margin; single batches far above it are cut off."""
    finite = smoothed[np.isfinite(smoothed)]
    noisy = losses[np.isfinite(losses)]
    low = min(finite.min(), np.percentile(noisy, 1)) if noisy.size else finite.min()
    high = finite.max()
    margin = 0.05 * (high - low) or 0.05 * abs(high) or 0.1
    return low - margin, high + margin
