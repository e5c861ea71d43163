"""Figures of ``convscope.inspect`` results: filters, activations, Grad-CAM, kernels, worked examples.

Every ``plot_x(result, ..., ax=None)`` draws one part of an ``InspectionResult``
and returns the figure; ``save_inspection_figures`` draws and saves them all.

    from convscope.inspect import inspect
    from convscope.plots.inspection import plot_grad_cam, save_inspection_figures
    result = inspect(model, images)
    figure = plot_grad_cam(result, class_names=data.class_names)
    paths = save_inspection_figures(result, "runs/demo/plots", class_names=data.class_names)
    paths["grad_cam"]        # PosixPath('runs/demo/plots/grad_cam.png')

Multi-panel figures given ``ax`` split that axes' grid cell into their panels.
Tiles of many channels are drawn as one image (a mosaic) per figure: one
``imshow`` instead of dozens of axes keeps a figure near 0.1 s.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.colors import ListedColormap
from matplotlib.font_manager import FontProperties
from matplotlib.path import Path as MatplotlibPath
from matplotlib.textpath import TextPath, text_to_path
from matplotlib.transforms import Affine2D

from convscope.errors import ConvscopeError
from convscope.plots.common import display_image, new_axes, save_figure

MAX_FILTERS = 64  # first-layer filters shown (8 x 8 tiles)
MAX_UNITS = 32  # Dense units shown as images
MAX_CHANNELS = 32  # activation channels shown per layer
MAX_BARS = 64  # units shown for a flat (N, units) activation
ACTIVATION_COLUMNS = 16  # channel tiles per row: 32 channels fill two rows
MAX_IMAGES = 8  # images side by side in Grad-CAM and saliency figures
MAX_LEARNED = 8  # learned first-layer filters beside the classic kernels
DIVERGING = "RdBu_r"  # red positive, blue negative, white zero
HEATMAP = "jet"
HEATMAP_ALPHA = 0.45  # the digit stays visible under the heatmap


# ---------------------------------------------------------------- helpers


def _grid(ax, rows: int, columns: int, figsize, **grid_options):
    """Return (figure, grid spec): a new figure's, or ``ax``'s grid cell split into rows x columns."""
    if ax is None:
        figure = plt.figure(figsize=figsize)
        return figure, figure.add_gridspec(rows, columns, **grid_options)
    ax.set_axis_off()
    return ax.figure, ax.get_subplotspec().subgridspec(rows, columns, **grid_options)


def _panels(ax, rows: int, columns: int, figsize, **grid_options):
    """Return (figure, 2-D array of axes) laid out by ``_grid``."""
    figure, grid = _grid(ax, rows, columns, figsize, **grid_options)
    axes = np.array([[figure.add_subplot(grid[row, column]) for column in range(columns)] for row in range(rows)])
    return figure, axes


def _title(figure, ax, text: str) -> None:
    """Figure title for a new figure, the parent axes' title inside someone else's figure."""
    if ax is None:
        figure.suptitle(text, fontsize=11)
    else:
        _caption(ax, text, fontsize=10)


def _adjust(figure, ax, **margins) -> None:
    """Set the margins of a figure this module created; someone else's figure keeps its layout."""
    if ax is None:
        figure.subplots_adjust(**margins)


def _mosaic(tiles: np.ndarray, columns: int, gap: int = 1, fill=np.nan) -> np.ndarray:
    """Lay (n, h, w[, 3]) tiles out in rows of ``columns``, ``gap`` cells of ``fill`` between them."""
    count, height, width = tiles.shape[:3]
    rows = -(-count // columns)
    columns = min(columns, count)
    canvas = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, *tiles.shape[3:]), fill, dtype=np.float32)
    for position, tile in enumerate(tiles):
        top, left = (position // columns) * (height + gap), (position % columns) * (width + gap)
        canvas[top : top + height, left : left + width] = tile
    return canvas


def _tile_origins(count: int, columns: int, height: int, width: int, gap: int = 1):
    columns = min(columns, count)
    return [((position // columns) * (height + gap), (position % columns) * (width + gap)) for position in range(count)]


def _colormap(name: str):
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


def _cells(texts, colors, top: float = 0, left: float = 0, cell_size=(1, 1)) -> list[tuple]:
    """(text, colour, x, y) for every cell of a matrix whose first cell starts at pixel (top, left).

    imshow puts pixel centres on integers, so cell (r, c) of size (h, w) is centred at
    (left + (c + 0.5) w - 0.5, top + (r + 0.5) h - 0.5).
    """
    texts, colors = np.asarray(texts, dtype=object), np.asarray(colors, dtype=object)
    return [
        (texts[row, column], colors[row, column], left + (column + 0.5) * cell_size[1] - 0.5, top + (row + 0.5) * cell_size[0] - 0.5)
        for row, column in np.ndindex(texts.shape)
    ]


def _weight_cells(values: np.ndarray, top: float, left: float, limit: float, digits: int = 2, cell_size=(1, 1)) -> list[tuple]:
    """Cells of a weight matrix: '-.12' style numbers, white on strong colours and black on pale ones."""
    # Rounded first so that -0.003 prints as ".00", not "-.00".
    texts = [[re.sub(r"^(-?)0\.", r"\1.", f"{round(float(value), digits) + 0.0:.{digits}f}") for value in row] for row in values]
    colors = np.where((limit > 0) & (np.abs(values) > 0.6 * limit), "white", "black")
    return _cells(texts, colors, top, left, cell_size)


def _draw_numbers(ax, cells: list[tuple], fontsize: float) -> None:
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


def _caption(ax, text: str, fontsize: float) -> None:
    """Axes title at a fixed height: matplotlib's automatic title placement creates ticks, ~10 ms per axes."""
    ax.set_title(text, fontsize=fontsize, y=1.0)


def _cell_lines(ax, rows: int, columns: int) -> None:
    """Thin lines around every cell of a small matrix drawn with imshow (no ticks: they cost ~5 ms per axes)."""
    ax.hlines(np.arange(rows + 1) - 0.5, -0.5, columns - 0.5, color="0.6", linewidth=0.8)
    ax.vlines(np.arange(columns + 1) - 0.5, -0.5, rows - 0.5, color="0.6", linewidth=0.8)
    ax.set_axis_off()


def _class_name(index: int, class_names) -> str:
    return str(class_names[index]) if class_names is not None and index < len(class_names) else f"class {index}"


def _image_for_display(result, index: int) -> np.ndarray:
    return display_image(result.display_images[index])


def _image_cmap(image: np.ndarray):
    return "gray" if image.ndim == 2 else None


# ---------------------------------------------------------------- filters and weights


def plot_filters(result, ax=None, show_values: bool | None = None):
    """First-layer filters on one symmetric diverging colour scale; one row per input channel.

    Args:
        result: ``InspectionResult`` with ``filters``.
        ax: axes to draw into, or None for a new figure.
        show_values: print each weight in its cell; default for kernels up to 5x5
            when at most 64 filters are shown.

    Returns:
        The figure.

    Example:
        >>> plot_filters(result).savefig("filters.png")
    """
    filters = result.filters
    in_channels, out_channels, height, width = filters.channel_views.shape
    if in_channels == 1:
        shown = min(out_channels, MAX_FILTERS)
        tiles, columns = filters.channel_views[0, :shown], 8
        row_labels = []
    else:
        # Each filter is one column of its input-channel slices; 8 filters per band of rows.
        shown, rows_shown, columns = min(out_channels, 16), min(in_channels, 3), 8
        views = filters.channel_views[:rows_shown, :shown]
        bands = [views[:, start : start + columns] for start in range(0, shown, columns)]
        bands = [np.pad(band, ((0, 0), (0, columns - band.shape[1]), (0, 0), (0, 0)), constant_values=np.nan) for band in bands]
        tiles = np.concatenate([band.reshape(-1, height, width) for band in bands])
        names = list("RGB") if in_channels == 3 else [f"in {channel}" for channel in range(rows_shown)]
        row_labels = names * len(bands)
    limit = float(np.nanmax(np.abs(tiles))) or 1.0
    if show_values is None:
        show_values = height * width <= 25 and len(tiles) <= MAX_FILTERS
    canvas = _mosaic(tiles, columns)
    cell = 0.34 if show_values else 0.16  # inches per weight: room for "-.12" at 6.5 pt
    figure, ax_ = new_axes(ax, figsize=(max(4.0, canvas.shape[1] * cell + 1.6), max(2.5, canvas.shape[0] * cell + 0.9)))
    image = ax_.imshow(canvas, cmap=_colormap(DIVERGING), vmin=-limit, vmax=limit, interpolation="nearest")
    if show_values:
        origins = _tile_origins(len(tiles), columns, height, width)
        cells = []
        for (top, left), tile in zip(origins, tiles):
            if not np.isnan(tile).all():  # the empty slots of a last, partial band
                cells += _weight_cells(tile, top, left, limit)
        _draw_numbers(ax_, cells, fontsize=6.5)
    for row, label in enumerate(row_labels):
        ax_.text(-0.8, row * (height + 1) + height / 2 - 0.5, label, ha="right", va="center", fontsize=9)
    ax_.set_axis_off()
    figure.colorbar(image, ax=ax_, shrink=0.8, label="weight")
    count = f"first {shown} of {out_channels}" if shown < out_channels else f"{out_channels}"
    _caption(ax_, f"{filters.layer_name}: {count} filters {height}x{width}, one colour scale (±{limit:.2f})", fontsize=10)
    return figure


def plot_filters_rgb(result, ax=None):
    """First-layer filters of a 3-channel input as colour images (each filter min-max rescaled).

    Example:
        >>> plot_filters_rgb(result)   # result of a CIFAR model
    """
    filters = result.filters
    shown = min(len(filters.rgb), MAX_FILTERS)
    canvas = _mosaic(filters.rgb[:shown].astype(np.float32) / 255.0, 8, fill=1.0)
    figure, ax_ = new_axes(ax, figsize=(max(3.5, canvas.shape[1] * 0.2 + 0.4), max(2.0, canvas.shape[0] * 0.2 + 0.6)))
    ax_.imshow(canvas, interpolation="nearest")
    ax_.set_axis_off()
    count = f"first {shown} of {len(filters.rgb)}" if shown < len(filters.rgb) else f"{shown}"
    _caption(ax_, f"{filters.layer_name}: {count} filters as RGB\n(each rescaled to 0-255 on its own)", fontsize=10)
    return figure


def plot_dense_weights(result, ax=None, max_units: int = MAX_UNITS):
    """Each unit of the first Dense layer as an image, all on one symmetric diverging scale.

    Example:
        >>> plot_dense_weights(mlp_result)
    """
    weights = result.dense_weights
    shown = min(len(weights.images), max_units)
    tiles = weights.images[:shown]
    figure_rows = -(-shown // 8)
    figure, ax_ = new_axes(ax, figsize=(8.5, 1.2 * figure_rows + 1.0))
    if tiles.ndim == 4:  # colour input: zero weight is mid-grey, the scale is shared by all units
        canvas = _mosaic((tiles - weights.vmin) / (weights.vmax - weights.vmin), 8, fill=1.0)
        ax_.imshow(np.clip(canvas, 0, 1), interpolation="nearest")
    else:
        canvas = _mosaic(tiles, 8)
        image = ax_.imshow(canvas, cmap=_colormap(DIVERGING), vmin=weights.vmin, vmax=weights.vmax, interpolation="nearest")
        figure.colorbar(image, ax=ax_, shrink=0.8, label="weight")
    ax_.set_axis_off()
    count = f"first {shown} of {len(weights.images)}" if shown < len(weights.images) else f"{shown}"
    _caption(ax_, f"{weights.layer_name}: weights of {count} units as images (one scale ±{weights.vmax:.3f})", fontsize=10)
    return figure


# ---------------------------------------------------------------- activations and explanations


def plot_activations(result, layer_name: str, image_index: int = 0, ax=None, max_channels: int = MAX_CHANNELS):
    """One layer's output for one image: channels tiled (each min-max scaled), or unit bars.

    Args:
        result: ``InspectionResult``.
        layer_name: a layer in ``result.activations``.
        image_index: which inspected image.
        ax: axes to draw into, or None.
        max_channels: channels shown (the title says when more exist).

    Returns:
        The figure.

    Example:
        >>> plot_activations(result, "conv2d", image_index=1)
    """
    activation = next((item for item in result.activations if item.layer_name == layer_name), None)
    if activation is None:
        names = ", ".join(item.layer_name for item in result.activations)
        raise ConvscopeError(f"no activations of layer {layer_name!r} were computed; choose one of: {names} (or pass layers= to inspect)")
    values = activation.values[image_index]
    shape = "x".join(str(size) for size in values.shape)
    label = f"{layer_name} ({activation.layer_type}) output {shape}, {result.image_labels[image_index]}"
    if values.ndim == 3:
        channels = values.shape[-1]
        shown = min(channels, max_channels)
        tiles = np.moveaxis(values[..., :shown], -1, 0).astype(np.float32)
        low = tiles.min(axis=(1, 2), keepdims=True)
        span = tiles.max(axis=(1, 2), keepdims=True) - low
        # Each channel on its own scale: a weak but structured channel stays visible; all-zero stays black.
        tiles = np.where(span > 0, (tiles - low) / np.where(span > 0, span, 1), 0.0)
        columns = min(shown, ACTIVATION_COLUMNS)
        canvas = _mosaic(tiles, columns)
        figure, ax_ = new_axes(ax, figsize=(0.62 * columns + 0.4, 0.62 * -(-shown // columns) + 0.7))
        ax_.imshow(canvas, cmap=_colormap("viridis"), vmin=0, vmax=1, interpolation="nearest")
        ax_.set_axis_off()
        count = f"channels 0-{shown - 1} of {channels}" if shown < channels else f"all {channels} channels"
        _caption(ax_, f"{label}: {count}, each scaled to its own min-max", fontsize=9)
        return figure
    flat = values.reshape(-1)
    shown = min(len(flat), MAX_BARS)
    figure, ax_ = new_axes(ax, figsize=(7, 2.2))
    ax_.vlines(np.arange(shown), 0, flat[:shown], color="tab:blue", linewidth=4)  # one artist, not 64 bars
    ax_.axhline(0, color="0.5", linewidth=0.6)
    ax_.set_xlim(-1, shown)
    if shown <= 20:  # class scores and other short vectors: one tick per unit
        ax_.set_xticks(np.arange(shown))
    ax_.set_xlabel("unit" if shown == len(flat) else f"unit (first {shown} of {len(flat)})", fontsize=8)
    ax_.tick_params(labelsize=7)
    _caption(ax_, label, fontsize=9)
    return figure


def plot_activations_of_image(result, image_index: int = 0, layer_names: list[str] | None = None, ax=None):
    """Every inspected layer's output for one image, one row per layer, input to output.

    Args:
        result: ``InspectionResult``.
        image_index: which inspected image.
        layer_names: layers to show, default every layer in ``result.activations``.
        ax: axes whose grid cell to split into the rows, or None for a new figure.

    Returns:
        The figure.

    Example:
        >>> plot_activations_of_image(result, image_index=1, layer_names=["conv1", "pool1"])
    """
    layer_names = [item.layer_name for item in result.activations] if layer_names is None else layer_names
    heights = []
    for name in layer_names:
        values = next((item.values for item in result.activations if item.layer_name == name), None)
        channels = min(values.shape[-1], MAX_CHANNELS) if values is not None and values.ndim == 4 else 0
        heights.append(0.62 * -(-channels // ACTIVATION_COLUMNS) + 0.35 if channels else 1.9)
    figure, grid = _grid(ax, len(layer_names), 1, figsize=(0.62 * ACTIVATION_COLUMNS + 0.6, sum(heights) + 1.0), height_ratios=heights)
    for row, name in enumerate(layer_names):
        plot_activations(result, name, image_index, ax=figure.add_subplot(grid[row, 0]))
    figure_height = sum(heights) + 1.0
    _adjust(figure, ax, left=0.06, right=0.98, bottom=0.45 / figure_height, top=1 - 0.7 / figure_height, hspace=0.6)
    _title(figure, ax, f"Activations of {result.image_labels[image_index]}, layer by layer")
    return figure


def _explained_panels(result, maps: np.ndarray, class_indices, class_names, ax, title: str, overlay: bool, colormap: str):
    count = min(len(maps), MAX_IMAGES)
    figure, axes = _panels(ax, 2, count, figsize=(2.1 * count + 0.4, 4.6))
    for index in range(count):
        image = _image_for_display(result, index)
        predicted = int(result.predicted_classes[index])
        axes[0, index].imshow(image, cmap=_image_cmap(image), interpolation="nearest")
        probability = result.probabilities[index, predicted]
        _caption(axes[0, index], f"{result.image_labels[index]}: {_class_name(predicted, class_names)}\np={probability:.2f}", fontsize=8)
        if overlay:
            axes[1, index].imshow(image, cmap=_image_cmap(image), interpolation="nearest")
            axes[1, index].imshow(maps[index], cmap=colormap, alpha=HEATMAP_ALPHA, vmin=0, vmax=1, interpolation="bilinear")
        else:
            axes[1, index].imshow(maps[index], cmap=colormap, vmin=0, vmax=1, interpolation="nearest")
        empty = " (all zero)" if maps[index].max() <= 0 else ""  # e.g. Grad-CAM where every weighted sum is negative
        _caption(axes[1, index], f"for {_class_name(int(class_indices[index]), class_names)}{empty}", fontsize=8)
        axes[0, index].set_axis_off()
        axes[1, index].set_axis_off()
    _adjust(figure, ax, left=0.02, right=0.98, bottom=0.02, top=0.8, wspace=0.08, hspace=0.3)
    _title(figure, ax, title)
    return figure


def plot_grad_cam(result, class_names=None, ax=None):
    """Grad-CAM (or HiResCAM) heatmaps over the inputs, with the method, predicted and explained class named.

    Example:
        >>> plot_grad_cam(result, class_names=[str(d) for d in range(10)])
    """
    cam = result.grad_cam
    method = {"gradcam": "Grad-CAM", "hirescam": "HiResCAM"}[cam.method]
    return _explained_panels(
        result, cam.heatmaps, cam.class_indices, class_names, ax,
        f"{method} of {cam.layer_name}\nscore: {cam.score_source}", overlay=True, colormap=HEATMAP,
    )


def plot_saliency(result, class_names=None, ax=None):
    """Vanilla-gradient saliency maps |d score / d pixel| under each input.

    Example:
        >>> plot_saliency(result)
    """
    saliency = result.saliency
    return _explained_panels(
        result, saliency.maps, saliency.class_indices, class_names, ax,
        "Saliency |d score / d pixel|\n(max over channels, each map / its max)", overlay=False, colormap="inferno",
    )


# ---------------------------------------------------------------- classic kernels and pixels


def _colored(values: np.ndarray, colormap: str, vmin: float, vmax: float) -> np.ndarray:
    """A 2-D array through a colormap, as (H, W, 3) floats: tiles with different maps share one canvas."""
    scaled = (values - vmin) / (vmax - vmin) if vmax > vmin else np.zeros_like(values, dtype=np.float32)
    return plt.get_cmap(colormap)(np.clip(scaled, 0, 1))[..., :3]


def _kernel_tile(kernel: np.ndarray, height: int, width: int) -> np.ndarray:
    """A kernel as an RGB tile of (height, width) pixels: diverging colours, or its own RGB composite."""
    if kernel.ndim == 3 and kernel.shape[-1] == 3:
        low, high = kernel.min(), kernel.max()
        tile = (kernel - low) / (high - low if high > low else 1)
    else:
        kernel = kernel if kernel.ndim == 2 else kernel.mean(axis=-1)
        limit = float(np.abs(kernel).max()) or 1.0
        tile = _colored(kernel, DIVERGING, -limit, limit)
    rows = np.arange(height) * kernel.shape[0] // height  # nearest-neighbour upscaling
    columns = np.arange(width) * kernel.shape[1] // width
    return tile[rows][:, columns]


def plot_classic_kernels(result, ax=None):
    """Classic kernels (matrix with numbers above the filtered image) beside the learned filters' responses.

    Rows 1-2: each hand-made kernel and its true convolution of the grayscale
    image; rows 3-4: the first convolutional layer's filters and their
    pre-activation outputs on the same image. Each output has its own gray scale.
    The whole figure is one RGB image: 40 separate axes cost ~0.7 s to draw.

    Example:
        >>> plot_classic_kernels(result)
    """
    kernels = result.classic_kernels
    learned = kernels.learned[:MAX_LEARNED]
    image = _image_for_display(result, kernels.image_index)
    image = np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image
    gray = np.repeat(kernels.grayscale[..., None], 3, axis=-1)
    groups = [("classic kernels\n(true convolution,\nmirror edges)", "grayscale input", gray, kernels.classic, lambda item: item.name)]
    if learned:
        label = f"learned {kernels.learned_layer_name}\n(cross-correlation,\nbefore activation)"
        groups.append((label, "model input", image, learned, lambda item: f"filter {item.name.rsplit(' ', 1)[-1]}"))
    height = max(max(item.response.shape[0] for _, _, _, items, _ in groups for item in items), gray.shape[0])
    width = max(max(item.response.shape[1] for _, _, _, items, _ in groups for item in items), gray.shape[1])
    columns = 1 + max(len(items) for _, _, _, items, _ in groups)
    gap, title_gap = max(2, width // 8), max(4, height // 3)
    canvas = np.ones((len(groups) * (title_gap + 2 * height + gap), columns * (width + gap) - gap, 3), np.float32)
    figure, ax_ = new_axes(ax, figsize=(1.3 * columns, 2.7 * len(groups) + 0.4))
    labels, numbers, lines = [], [], []
    for group, (label, input_label, input_image, items, name_of) in enumerate(groups):
        top = group * (title_gap + 2 * height + gap) + title_gap  # kernel row; responses start at top + height + gap
        bottom = top + height + gap
        canvas[bottom : bottom + input_image.shape[0], : input_image.shape[1]] = input_image  # the widest tile
        labels += [(width / 2, top + height / 2, label, "center"), (width / 2, bottom - 1, input_label, "bottom")]
        for column, item in enumerate(items, start=1):
            left = column * (width + gap)
            canvas[top : top + height, left : left + width] = _kernel_tile(item.kernel, height, width)
            response = item.response
            # A 'valid' convolution's output is smaller than the input: centre it under the kernel.
            down, right = bottom + (height - response.shape[0]) // 2, left + (width - response.shape[1]) // 2
            shown = _colored(response, "gray", response.min(), response.max())
            canvas[down : down + response.shape[0], right : right + response.shape[1]] = shown
            labels.append((left + width / 2, top - 1, name_of(item), "bottom"))
            kernel_rows, kernel_columns = item.kernel.shape[:2]
            cell_height, cell_width = height / kernel_rows, width / kernel_columns
            row_lines = top - 0.5 + np.arange(kernel_rows + 1) * cell_height
            column_lines = left - 0.5 + np.arange(kernel_columns + 1) * cell_width
            lines += [[(left - 0.5, y), (left + width - 0.5, y)] for y in row_lines]
            lines += [[(x, top - 0.5), (x, top + height - 0.5)] for x in column_lines]
            if item.kernel.ndim == 2 and item.kernel.size <= 25:
                numbers.append((item.kernel, top, left, cell_height, cell_width))
    ax_.imshow(canvas, interpolation="nearest")
    ax_.add_collection(LineCollection(lines, colors="0.6", linewidths=0.6))
    cells = []
    for kernel, top, left, cell_height, cell_width in numbers:
        limit = float(np.abs(kernel).max()) or 1.0
        digits = next((digits for digits in (0, 1) if np.allclose(kernel, np.round(kernel, digits))), 2)
        cells += _weight_cells(kernel, top, left, limit, digits, cell_size=(cell_height, cell_width))
    _draw_numbers(ax_, cells, fontsize=7 if all(kernel.shape[0] <= 3 for kernel, *_ in numbers) else 5.5)
    for x, y, text, vertical in labels:
        ax_.text(x, y, text, ha="center", va=vertical, fontsize=7.5)
    ax_.set_axis_off()
    _caption(ax_, f"Kernels on {result.image_labels[kernels.image_index]}: hand-made vs learned", fontsize=10)
    return figure


def plot_channel_split(result, ax=None):
    """An RGB input, its ITU-R 601 grayscale and its R, G, B channels.

    Example:
        >>> plot_channel_split(cifar_result)
    """
    kernels = result.classic_kernels
    figure, axes = _panels(ax, 1, 5, figsize=(10, 2.6))
    axes[0, 0].imshow(result.display_images[kernels.image_index], interpolation="nearest")
    _caption(axes[0, 0], "RGB", fontsize=9)
    axes[0, 1].imshow(kernels.grayscale, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    _caption(axes[0, 1], "0.299R + 0.587G + 0.114B", fontsize=8)
    for axis, (name, channel), colormap in zip(axes[0, 2:], kernels.channels.items(), ("Reds", "Greens", "Blues")):
        axis.imshow(channel, cmap=colormap, vmin=0, vmax=255, interpolation="nearest")
        _caption(axis, f"{name} channel (0-255)", fontsize=9)
    for axis in axes.ravel():
        axis.set_axis_off()
    _adjust(figure, ax, left=0.01, right=0.99, bottom=0.02, top=0.78, wspace=0.06)
    _title(figure, ax, f"{result.image_labels[kernels.image_index]} split into channels")
    return figure


def plot_pixel_grid(result, ax=None):
    """The image as a grid of integers 0-255, each number on its own pixel.

    Example:
        >>> plot_pixel_grid(result)
    """
    grid = result.pixel_grid
    height, width = grid.values.shape
    figure, ax_ = new_axes(ax, figsize=(0.3 * width + 0.6, 0.3 * height + 0.8))
    ax_.imshow(grid.values, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    _draw_numbers(ax_, _cells(grid.values.astype(str), np.where(grid.values > 127, "black", "white")), fontsize=6)
    ax_.set_axis_off()
    _caption(ax_, f"{result.image_labels[grid.image_index]}: {grid.description}", fontsize=10)
    return figure


# ---------------------------------------------------------------- worked examples


WORKED_COLOURS = ListedColormap(["white", "0.82", "#ffd966", "#e6b800"])  # inside, zero padding, window, window on padding


def _integer_grid(ax, values: np.ndarray, title: str, shade=None, colormap=WORKED_COLOURS, vmax: float = 3) -> None:
    """An integer matrix as a table: category colours behind the numbers, thin cell lines."""
    background = np.zeros(values.shape) if shade is None else shade
    ax.imshow(background, cmap=colormap, vmin=0, vmax=vmax, interpolation="nearest")
    _draw_numbers(ax, _cells(values.astype(str), np.full(values.shape, "black")), fontsize=10)
    _cell_lines(ax, *values.shape)
    ax.set_xlim(-0.55, values.shape[1] - 0.45)  # keep the outer cell lines inside the axes
    ax.set_ylim(values.shape[0] - 0.45, -0.55)
    _caption(ax, title, fontsize=9)


def plot_worked_convolution(result, ax=None):
    """The worked convolution: padded input, kernel, output, every output cell's sum, and the size formula.

    Example:
        >>> plot_worked_convolution(result)
    """
    worked = result.worked_convolution
    size, kernel_size, stride = len(worked.input), len(worked.kernel), worked.stride
    padded_size, output_size = len(worked.padded_input), len(worked.output)
    # Column widths follow the matrix sizes so every cell is the same size.
    figure, grid = _grid(ax, 2, 3, figsize=(9, 6.4), height_ratios=[1.0, 1.1], width_ratios=[padded_size, kernel_size + 1, output_size + 1])
    axes = [figure.add_subplot(grid[0, column]) for column in range(3)]
    shade = np.ones(worked.padded_input.shape)
    inside = slice(worked.pad_before, worked.pad_before + size)
    shade[inside, inside] = 0
    shade[:kernel_size, :kernel_size] += 2  # the window of out[0,0], over input or padding
    _integer_grid(axes[0], worked.padded_input, f"input {size}x{size}, padding '{worked.padding}'", shade=shade)
    _integer_grid(axes[1], worked.kernel, f"kernel {kernel_size}x{kernel_size}")
    output_shade = np.zeros(worked.output.shape)
    output_shade[0, 0] = 2
    _integer_grid(axes[2], worked.output, f"output {output_size}x{output_size}, stride {stride}", shade=output_shade)
    text_axis = figure.add_subplot(grid[1, :])
    text_axis.set_axis_off()
    lines = [f"out[{row},{column}] = {worked.sums[row][column]}" for row in range(output_size) for column in range(output_size)]
    lines += ["", "Output size = ⌊(n + 2p - k) / s⌋ + 1   (2p: all zeros added along one axis)"]
    lines += [f"  {text}" for text in result.output_sizes]
    text_axis.text(0, 1, "\n".join(lines), va="top", ha="left", family="monospace", fontsize=7.5, transform=text_axis.transAxes)
    _adjust(figure, ax, left=0.03, right=0.97, bottom=0.01, top=0.88, wspace=0.2, hspace=0.12)
    legend = "yellow: the window of out[0,0]" + ("; grey: zero padding" if worked.pad_before or len(worked.padded_input) > size else "")
    _title(figure, ax, f"Worked convolution: {worked.operation}\n{legend}")
    return figure


def plot_worked_pooling(result, ax=None):
    """The worked 2x2 max-pooling: each window coloured, its values and maximum listed.

    Example:
        >>> plot_worked_pooling(result)
    """
    pooling = result.worked_pooling
    figure, axes = _panels(ax, 1, 3, figsize=(9, 3.4), width_ratios=[1, 0.6, 1.4])
    window_colour = np.kron(np.array([[0, 1], [2, 3]]), np.ones((2, 2)))  # which window each cell falls in
    _integer_grid(axes[0, 0], pooling.input, "input 4x4 (one colour per window)", shade=window_colour, colormap="Pastel1", vmax=8)
    _integer_grid(axes[0, 1], pooling.output, "output 2x2", shade=np.array([[0, 1], [2, 3]]), colormap="Pastel1", vmax=8)
    axes[0, 2].set_axis_off()
    lines = [f"out[{row},{column}] = {pooling.windows[row][column]}" for row in range(2) for column in range(2)]
    axes[0, 2].text(0, 0.5, "\n".join(lines), va="center", ha="left", family="monospace", fontsize=9, transform=axes[0, 2].transAxes)
    _adjust(figure, ax, left=0.02, right=0.98, bottom=0.03, top=0.8, wspace=0.15)
    _title(figure, ax, "Worked 2x2 max-pooling, stride 2: each output is the largest value in its window")
    return figure


# ---------------------------------------------------------------- all figures


def save_inspection_figures(result, out_dir, class_names=None) -> dict[str, Path]:
    """Draw every inspection figure that applies to ``result`` and save it as PNG.

    Args:
        result: ``InspectionResult`` from ``convscope.inspect.inspect``.
        out_dir: folder for the PNGs (created if missing), e.g. the run's plots folder.
        class_names: names of the classes, or None for "class 3".

    Returns:
        Figure key -> path, e.g. {"filters": Path(".../filters.png"),
        "activations_img0": Path(".../activations_img0.png"), ...}: one activations
        figure per image, a row per layer.
        Figures that do not apply (RGB filters of a grayscale model, dense
        weights of a CNN, Grad-CAM of an MLP) are left out.

    Example:
        >>> paths = save_inspection_figures(result, "runs/demo/plots", class_names=data.class_names)
    """
    out_dir = Path(out_dir)
    figures = {}
    if result.filters is not None:
        figures["filters"] = lambda: plot_filters(result)
        if result.filters.rgb is not None:
            figures["filters_rgb"] = lambda: plot_filters_rgb(result)
    if result.dense_weights is not None:
        figures["dense_weights"] = lambda: plot_dense_weights(result)
    if result.activations:
        # One figure per image with a row per layer: 5 layers x 2 images as 10 separate PNGs cost ~0.5 s more.
        for image_index in range(len(result.images)):
            figures[f"activations_img{image_index}"] = lambda index=image_index: plot_activations_of_image(result, index)
    if result.grad_cam is not None:
        figures["grad_cam"] = lambda: plot_grad_cam(result, class_names)
    figures["saliency"] = lambda: plot_saliency(result, class_names)
    figures["classic_kernels"] = lambda: plot_classic_kernels(result)
    if result.classic_kernels.channels is not None:
        figures["channel_split"] = lambda: plot_channel_split(result)
    figures["pixel_grid"] = lambda: plot_pixel_grid(result)
    figures["worked_convolution"] = lambda: plot_worked_convolution(result)
    figures["worked_pooling"] = lambda: plot_worked_pooling(result)
    return {key: save_figure(draw(), out_dir / f"{key}.png") for key, draw in figures.items()}
