"""Helpers every figure module shares: axes and panels, captions, tiles, numbers drawn as glyphs, saving.

    from convscope.plots.common import new_axes, new_panels, save_figure
    figure, ax = new_axes(ax, figsize=(6, 4))               # the caller's axes, or a new figure
    figure, axes = new_panels(ax, 2, 3, figsize=(9, 6))     # a 2 x 3 array of axes
    save_figure(figure, "runs/demo/plots/x.png")

``new_panels`` takes what a plot function's ``ax`` argument holds: None (a new
figure), one axes (its grid cell is split into the panels) or a sequence of
exactly rows x columns axes (used as they are).
"""

from __future__ import annotations

import functools
import io
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.font_manager import FontProperties
from matplotlib.path import Path as MatplotlibPath
from matplotlib.textpath import TextPath, text_to_path
from matplotlib.transforms import Affine2D

from convscope.errors import ConvscopeError
from convscope.fileio import write_bytes

DPI = 100  # 100 dpi keeps a 10-class figure near 50 KB; the report inlines every PNG


def new_axes(ax=None, figsize=(6, 4)):
    """Return (figure, axes): the given axes' figure, or a new figure with one axes."""
    if ax is not None:
        return ax.figure, ax
    figure, ax = plt.subplots(figsize=figsize, layout="constrained")
    return figure, ax


def new_grid(ax, rows: int, columns: int, figsize, layout: str | None = None, **grid_options):
    """Return (figure, grid spec): a new figure's, or ``ax``'s grid cell split into rows x columns (``ax`` hidden)."""
    if ax is None:
        figure = plt.figure(figsize=figsize, layout=layout)
        return figure, figure.add_gridspec(rows, columns, **grid_options)
    ax.set_axis_off()
    return ax.figure, ax.get_subplotspec().subgridspec(rows, columns, **grid_options)


def new_panels(ax, rows: int, columns: int, figsize, layout: str | None = None, sharex: bool = False, **grid_options):
    """Return (figure, rows x columns array of axes) for a figure of several panels.

    Args:
        ax: None for a new figure; one axes whose grid cell to split; or rows x columns axes to draw into.
        rows, columns: the panels' layout.
        figsize: inches of a new figure.
        layout: a new figure's layout engine, e.g. "constrained"; None places axes by the grid alone.
        sharex: panels share their x axis (inner tick labels hidden).
        **grid_options: ``width_ratios``, ``height_ratios``, ``wspace``, ...

    Example:
        >>> figure, axes = new_panels(None, 1, 2, figsize=(10, 4), layout="constrained")
        >>> axes.shape
        (1, 2)
    """
    if ax is not None and not isinstance(ax, Axes):
        given = list(np.ravel(ax))
        if len(given) != rows * columns:
            raise ConvscopeError(f"{len(given)} axes given; expected {rows * columns} for this figure's panels")
        axes = np.empty((rows, columns), dtype=object)
        axes.ravel()[:] = given
        return given[0].figure, axes
    figure, grid = new_grid(ax, rows, columns, figsize, layout, **grid_options)
    return figure, grid.subplots(sharex=sharex, squeeze=False)


def set_title(figure, ax, text: str) -> None:
    """Figure title for a new figure, the parent axes' title inside someone else's figure."""
    if ax is None:
        figure.suptitle(text, fontsize=11)
    else:
        caption(ax, text, fontsize=10)


def adjust_margins(figure, ax, **margins) -> None:
    """Set the margins of a figure this module created; someone else's figure keeps its layout."""
    if ax is None:
        figure.subplots_adjust(**margins)


def mosaic(tiles: np.ndarray, columns: int, gap: int = 1, fill=np.nan) -> np.ndarray:
    """Lay (n, h, w[, 3]) tiles out in rows of ``columns``, ``gap`` cells of ``fill`` between them."""
    count, height, width = tiles.shape[:3]
    rows = -(-count // columns)
    columns = min(columns, count)
    canvas = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, *tiles.shape[3:]), fill, dtype=np.float32)
    for position, tile in enumerate(tiles):
        top, left = (position // columns) * (height + gap), (position % columns) * (width + gap)
        canvas[top : top + height, left : left + width] = tile
    return canvas


def tile_origins(count: int, columns: int, height: int, width: int, gap: int = 1):
    columns = min(columns, count)
    return [((position // columns) * (height + gap), (position % columns) * (width + gap)) for position in range(count)]


def colormap_with_gaps(name: str):
    return plt.get_cmap(name).with_extremes(bad="white")  # NaN: the gaps between tiles


@functools.lru_cache(maxsize=None)
def _character_path(character: str) -> tuple[MatplotlibPath, float]:
    """Outline of one character at 1 pt and its advance width in points."""
    font = FontProperties(family="DejaVu Sans")
    outline = TextPath((0, 0), character, size=1, prop=font)
    width, _, _ = text_to_path.get_text_width_height_descent(character, font, ismath=False)
    return outline, width / font.get_size_in_points()


@functools.lru_cache(maxsize=8192)
def _number_path(text: str) -> MatplotlibPath:
    """Outline of ``text`` at 1 pt, centred on the origin (digit height, not descenders)."""
    parts, advance = [], 0.0
    for character in text:
        outline, width = _character_path(character)
        parts.append(outline.transformed(Affine2D().translate(advance, 0)))
        advance += width
    digit_height = _character_path("0")[0].vertices[:, 1].max()
    return MatplotlibPath.make_compound_path(*parts).transformed(Affine2D().translate(-advance / 2, -digit_height / 2))


def number_cells(texts, colors, top: float = 0, left: float = 0, cell_size=(1, 1)) -> list[tuple]:
    """(text, colour, x, y) for every cell of a matrix whose first cell starts at pixel (top, left).

    imshow puts pixel centres on integers, so cell (r, c) of size (h, w) is centred at
    (left + (c + 0.5) w - 0.5, top + (r + 0.5) h - 0.5).
    """
    texts, colors = np.asarray(texts, dtype=object), np.asarray(colors, dtype=object)
    return [
        (texts[row, column], colors[row, column], left + (column + 0.5) * cell_size[1] - 0.5, top + (row + 0.5) * cell_size[0] - 0.5)
        for row, column in np.ndindex(texts.shape)
    ]


def weight_cells(values: np.ndarray, top: float, left: float, limit: float, digits: int = 2, cell_size=(1, 1)) -> list[tuple]:
    """Cells of a weight matrix: '-.12' style numbers, white on strong colours and black on pale ones."""
    # Rounded first so that -0.003 prints as ".00", not "-.00".
    texts = [[re.sub(r"^(-?)0\.", r"\1.", f"{round(float(value), digits) + 0.0:.{digits}f}") for value in row] for row in values]
    colors = np.where((limit > 0) & (np.abs(values) > 0.6 * limit), "white", "black")
    return number_cells(texts, colors, top, left, cell_size)


def draw_numbers(ax, cells: list[tuple], fontsize: float) -> None:
    """Write each (text, colour, x, y) as glyph outlines, one PathCollection per colour.

    784 pixel values drawn as Text artists take ~1.5 s on one CPU core; the
    same glyphs in two collections take ~0.2 s and look the same at 100 dpi.
    """
    to_display = Affine2D().scale(fontsize / 72) + ax.figure.dpi_scale_trans  # points to pixels at any dpi
    for color in sorted({cell[1] for cell in cells}):
        chosen = [cell for cell in cells if cell[1] == color]
        paths = [_number_path(text) for text, _, _, _ in chosen]
        offsets = np.array([(x, y) for _, _, x, y in chosen])
        ax.add_collection(
            PathCollection(
                paths, offsets=offsets, offset_transform=ax.transData, transform=to_display, facecolors=color, edgecolors="none"
            ),
            autolim=False,
        )


def image_title(image_label: str | None, image_index: int) -> str:
    """How a title names an inspected image: the caller's label, else inspect's default "image N"."""
    return f"image {image_index}" if image_label is None else image_label


def caption(ax, text: str, fontsize: float) -> None:
    """Axes title at a fixed height: matplotlib's automatic title placement creates ticks, ~10 ms per axes."""
    ax.set_title(text, fontsize=fontsize, y=1.0)


def cell_lines(ax, rows: int, columns: int) -> None:
    """Thin lines around every cell of a small matrix drawn with imshow (no ticks: they cost ~5 ms per axes)."""
    ax.hlines(np.arange(rows + 1) - 0.5, -0.5, columns - 0.5, color="0.6", linewidth=0.8)
    ax.vlines(np.arange(columns + 1) - 0.5, -0.5, rows - 0.5, color="0.6", linewidth=0.8)
    ax.set_axis_off()


def save_figure(figure, path: str | Path) -> Path:
    """Write ``figure`` as PNG atomically, close it, and return the path."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    plt.close(figure)
    return write_bytes(path, buffer.getvalue())
