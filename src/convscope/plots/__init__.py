"""Figures: matplotlib displays of results computed elsewhere (no computation inside).

Every ``plot_x(result, ax=None)`` draws one computed result and returns the figure;
``save_figure`` writes it as PNG atomically.

    from convscope.plots import plot_confusion_matrix, save_figure
    fig = plot_confusion_matrix(result)
    save_figure(fig, "runs/demo/plots/confusion_matrix.png")
"""

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI; figures only go to files

from convscope.display import display_image  # noqa: E402
from convscope.plots.common import new_axes, save_figure  # noqa: E402

__all__ = ["display_image", "new_axes", "save_figure"]
