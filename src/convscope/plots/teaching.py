"""Figures of the teaching material: classic kernels, channels, the pixel grid, worked convolution and pooling.

Each ``plot_x(part, ..., ax=None)`` takes the part of an ``InspectionResult`` it
draws (``convscope.inspection.teaching`` computes them, no model needed) and
returns the figure.

    from convscope.inspection import compute_pixel_grid, compute_worked_convolution
    from convscope.plots.teaching import plot_pixel_grid, plot_worked_convolution
    figure = plot_worked_convolution(compute_worked_convolution(stride=2, padding="same"))
    figure = plot_pixel_grid(compute_pixel_grid(display_image), image_label="test image 7")
    figure = plot_classic_kernels(result.classic_kernels, result.display_images[0])

Multi-panel figures given ``ax`` split that axes' grid cell into their panels.
"""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
from matplotlib import patheffects
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import LinearSegmentedColormap, ListedColormap
from matplotlib.patches import Rectangle

from convscope.display import display_image
from convscope.inspection.teaching import downsample
from convscope.plots.common import (
    adjust_margins,
    caption,
    cell_lines,
    colormap_with_gaps,
    draw_numbers,
    image_title,
    new_axes,
    new_grid,
    new_panels,
    number_cells,
    set_title,
    weight_cells,
)

DIVERGING = "RdBu_r"  # red positive, blue negative, white zero
MAX_LEARNED = 8  # learned first-layer filters beside the classic kernels
LOCATOR_SIDE = 400  # pixels of the whole image beside a cropped pixel grid
MIN_TILE = 24  # pixels: a 1x1 image or a 3x900 strip still gets a kernel tile its numbers fit in


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


def _place(canvas: np.ndarray, tile: np.ndarray, top: int, left: int, box: tuple[int, int], scale: tuple[int, int]) -> None:
    """Draw ``tile`` enlarged (rows, columns) ``scale`` times, centred in the box at (top, left): a 'valid' output is smaller."""
    tile = np.repeat(np.repeat(tile, scale[0], axis=0), scale[1], axis=1)
    down, right = top + (box[0] - tile.shape[0]) // 2, left + (box[1] - tile.shape[1]) // 2
    canvas[down : down + tile.shape[0], right : right + tile.shape[1]] = tile


def plot_classic_kernels(kernels, image: np.ndarray, ax=None, image_label: str | None = None):
    """Classic kernels (matrix with numbers above the filtered image) beside the learned filters' responses.

    Rows 1-2: each hand-made kernel and its true convolution of the grayscale
    image; then the same for the caller's own kernels (``ClassicKernels.user``),
    if any; last, the first convolutional layer's filters and their
    pre-activation outputs on the same image, if a model was inspected. Each
    output has its own gray scale.
    The whole figure is one RGB image: 40 separate axes cost ~0.7 s to draw.

    Args:
        kernels: ``ClassicKernels`` (``InspectionResult.classic_kernels``).
        image: the image they were applied to, as people see it (``display_images[kernels.image_index]``).
        ax: axes to draw into, or None for a new figure.
        image_label: the image's name in the title; None: "image N".

    Returns:
        The figure.

    Example:
        >>> plot_classic_kernels(result.classic_kernels, result.display_images[0])
    """
    learned = kernels.learned[:MAX_LEARNED]
    image = display_image(image)
    image = np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image
    gray = np.repeat(kernels.grayscale[..., None], 3, axis=-1)
    gray_label = "grayscale input" + ("\n(downsampled)" if kernels.scale_note else "")
    groups = [("classic kernels\n(true convolution,\nmirror edges)", gray_label, gray, kernels.classic, lambda item: item.name)]
    if kernels.user:
        groups.append(("your kernels\n(true convolution,\nmirror edges)", gray_label, gray, kernels.user, lambda item: item.name))
    if learned:
        label = f"learned {kernels.learned_layer_name}\n(cross-correlation,\nbefore activation)"
        groups.append((label, "model input", image, learned, lambda item: f"filter {item.name.rsplit(' ', 1)[-1]}"))
    largest_height = max(max(item.response.shape[0] for _, _, _, items, _ in groups for item in items), gray.shape[0])
    largest_width = max(max(item.response.shape[1] for _, _, _, items, _ in groups for item in items), gray.shape[1])
    # Every tile gets one box at least 2/3 as tall as wide (and wide as tall), so a kernel's cells stay big
    # enough for their numbers; a tiny image is enlarged to fill it, a strip's rows or columns repeated.
    height = max(largest_height, largest_width * 2 // 3, MIN_TILE)
    width = max(largest_width, largest_height * 2 // 3, MIN_TILE)
    scale = (max(1, height // largest_height), max(1, width // largest_width))
    if scale[0] != scale[1]:  # a strip: say that its tiles are stretched
        note = f"\n({'taller' if scale[0] > scale[1] else 'wider'} {max(scale)}x)"
        groups = [(label, input_label + note, *rest) for label, input_label, *rest in groups]
    columns = 1 + max(len(items) for _, _, _, items, _ in groups)
    gap, title_gap = max(2, width // 8), max(4, height // 3)
    canvas = np.ones((len(groups) * (title_gap + 2 * height + gap), columns * (width + gap) - gap, 3), np.float32)
    # Landscape photos make short rows: the figure is no taller than the canvas at its width, plus the caption,
    # but tall enough for each group's three-line label beside the input's.
    scale_lines = 0.2 if kernels.scale_note else 0.0
    canvas_height = 1.3 * columns * canvas.shape[0] / canvas.shape[1] + 0.6
    figure_height = max(1.8 * len(groups) + 0.4, min(2.7 * len(groups) + 0.4, canvas_height)) + scale_lines
    figure, ax_ = new_axes(ax, figsize=(1.3 * columns, figure_height))
    labels, numbers, lines = [], [], []
    for group, (label, input_label, input_image, items, name_of) in enumerate(groups):
        top = group * (title_gap + 2 * height + gap) + title_gap  # kernel row; responses start at top + height + gap
        bottom = top + height + gap
        _place(canvas, input_image, bottom, 0, (height, width), scale)
        labels += [(width / 2, top, label, "top"), (width / 2, bottom - 1, input_label, "bottom")]  # apart even in a short row
        for column, item in enumerate(items, start=1):
            left = column * (width + gap)
            canvas[top : top + height, left : left + width] = _kernel_tile(item.kernel, height, width)
            response = item.response
            _place(canvas, _colored(response, "gray", response.min(), response.max()), bottom, left, (height, width), scale)
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
        cells += weight_cells(kernel, top, left, limit, digits, cell_size=(cell_height, cell_width))
    draw_numbers(ax_, cells, fontsize=7 if all(kernel.shape[0] <= 3 for kernel, *_ in numbers) else 5.5)
    for x, y, text, vertical in labels:
        ax_.text(x, y, text, ha="center", va=vertical, fontsize=7.5)
    ax_.set_axis_off()
    scale = f"\n{kernels.scale_note}" if kernels.scale_note else ""
    kinds = "hand-made vs learned" if learned else "hand-made" + (" and yours" if kernels.user else "")
    caption(ax_, f"Kernels on {image_title(image_label, kernels.image_index)}: {kinds}{scale}", fontsize=10)
    return figure


def plot_channel_split(kernels, image: np.ndarray, ax=None, image_label: str | None = None):
    """An image split into its channels: RGB, its ITU-R 601 grayscale and R, G, B; a grayscale image's one channel.

    Each channel is drawn from black (0) to its own colour (255), so a bright
    patch in the R panel is a red-rich patch of the photo.

    Args:
        kernels: ``ClassicKernels`` of the image (its ``channels`` and ``grayscale``; ``channels`` is None for grayscale).
        image: that image as people see it, (H, W, 3) or (H, W[, 1]) uint8, at the size the kernels were applied to.
        ax: axes whose grid cell to split, or None for a new figure.
        image_label: the image's name in the title; None: "image N".

    Example:
        >>> plot_channel_split(cifar_result.classic_kernels, cifar_result.display_images[0])
    """
    scale = f"\n{kernels.scale_note}" if kernels.scale_note else ""
    title = image_title(image_label, kernels.image_index)
    if kernels.channels is None:
        values = np.asarray(image)[..., 0] if np.asarray(image).ndim == 3 else np.asarray(image)
        figure, axes = new_panels(ax, 1, 1, figsize=(3.6, 3.9))
        axes[0, 0].imshow(values, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        caption(axes[0, 0], f"the only channel: gray 0-255\n{values.shape[0]}x{values.shape[1]}x1", fontsize=9)
        axes[0, 0].set_axis_off()
        adjust_margins(figure, ax, left=0.03, right=0.97, bottom=0.02, top=0.78)
        set_title(figure, ax, f"{title}: one channel (grayscale){scale}")
        return figure
    # Panels about 1.85 inches wide, as tall as the image's aspect makes them, plus captions and the title's lines.
    title_height = 0.6 + (0.2 if scale else 0.0)
    panel_height = 1.85 * kernels.grayscale.shape[0] / kernels.grayscale.shape[1] + 0.35
    figure, axes = new_panels(ax, 1, 5, figsize=(10, panel_height + title_height))
    axes[0, 0].imshow(image, interpolation="nearest")
    caption(axes[0, 0], "RGB", fontsize=9)
    axes[0, 1].imshow(kernels.grayscale, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    caption(axes[0, 1], "0.299R + 0.587G + 0.114B", fontsize=8)
    for axis, (name, channel), colour in zip(axes[0, 2:], kernels.channels.items(), ("red", "lime", "blue")):
        axis.imshow(channel, cmap=LinearSegmentedColormap.from_list(name, ["black", colour]), vmin=0, vmax=255, interpolation="nearest")
        caption(axis, f"{name} channel (0-255)", fontsize=9)
    for axis in axes.ravel():
        axis.set_axis_off()
    adjust_margins(figure, ax, left=0.01, right=0.99, bottom=0.02, top=1 - title_height / (panel_height + title_height), wspace=0.06)
    set_title(figure, ax, f"{title} split into channels{scale}")
    return figure


def plot_pixel_grid(grid, ax=None, image_label: str | None = None, image: np.ndarray | None = None):
    """The image as a grid of integers 0-255, each number on its own pixel; for a crop, where it lies.

    Args:
        grid: ``PixelGrid`` (``InspectionResult.pixel_grid``).
        ax: axes to draw into, or None for a new figure.
        image_label: the image's name in the title; None: "image N".
        image: the whole image (H, W[, C]) uint8; when the grid is a crop of it, a
            second panel shows the whole image with the crop outlined.

    Example:
        >>> plot_pixel_grid(result.pixel_grid, image_label="test image 7")
    """
    height, width = grid.values.shape
    title = f"{image_title(image_label, grid.image_index)}: {grid.description}"
    cropped = image is not None and tuple(np.asarray(image).shape[:2]) != (height, width)
    if cropped:
        figure, axes = new_panels(ax, 1, 2, figsize=(0.3 * width + 4.6, 0.3 * height + 0.9), width_ratios=[4.0, 0.3 * width])
        # The locator panel is ~400 px wide: a 50-megapixel photo is averaged down before it is drawn.
        whole, (block_height, block_width) = downsample(np.asarray(image), LOCATOR_SIDE)
        whole, ax_ = display_image(whole), axes[0, 1]
        axes[0, 0].imshow(whole, cmap="gray" if whole.ndim == 2 else None, vmin=0, vmax=1)
        top, left = grid.top_left
        # On a big photo 32 pixels shrink to a dot: the outline is kept at least 14 drawn pixels wide, around the same centre.
        box_height, box_width = max(height / block_height, 14), max(width / block_width, 14)
        centre_row, centre_column = (top + height / 2) / block_height, (left + width / 2) / block_width
        outline = (centre_column - box_width / 2 - 0.5, centre_row - box_height / 2 - 0.5)
        halo = [patheffects.withStroke(linewidth=3.5, foreground="white")]  # visible on red and orange photos too
        axes[0, 0].add_patch(Rectangle(outline, box_width, box_height, fill=False, edgecolor="red", linewidth=1.5, path_effects=halo))
        full_height, full_width = np.asarray(image).shape[:2]
        where = "around the grid's pixels" if box_width > width / block_width else "the grid's pixels"
        caption(axes[0, 0], f"whole image {full_height}x{full_width},\n{where} in red", fontsize=9)
        axes[0, 0].set_axis_off()
        adjust_margins(figure, ax, left=0.01, right=0.99, bottom=0.01, top=1 - 0.75 / (0.3 * height + 0.9), wspace=0.05)
    else:
        figure, ax_ = new_axes(ax, figsize=(0.3 * width + 0.6, 0.3 * height + 0.8))
    ax_.imshow(grid.values, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    draw_numbers(ax_, number_cells(grid.values.astype(str), np.where(grid.values > 127, "black", "white")), fontsize=6)
    ax_.set_axis_off()
    if cropped:
        set_title(figure, ax, title)
    else:
        caption(ax_, title, fontsize=10)
    return figure


# ---------------------------------------------------------------- worked examples


MAX_SUM_LINES = 16  # spelled-out sums in the figure; WorkedConvolution.sums holds them all
WORKED_COLOURS = ListedColormap(["white", "0.82", "#ffd966", "#e6b800"])  # inside, zero padding, window, window on padding


def _integer_grid(ax, values: np.ndarray, title: str, shade=None, colormap=WORKED_COLOURS, vmax: float = 3) -> None:
    """A small matrix as a table: category colours behind the numbers, thin cell lines."""
    background = np.zeros(values.shape) if shade is None else shade
    ax.imshow(background, cmap=colormap, vmin=0, vmax=vmax, interpolation="nearest")
    texts = [[str(int(value)) if float(value).is_integer() else f"{float(value):.4g}" for value in row] for row in values]  # as the sums print them
    draw_numbers(ax, number_cells(texts, np.full(values.shape, "black")), fontsize=10 if max(len(text) for row in texts for text in row) <= 3 else 8)
    cell_lines(ax, *values.shape)
    ax.set_xlim(-0.55, values.shape[1] - 0.45)  # keep the outer cell lines inside the axes
    ax.set_ylim(values.shape[0] - 0.45, -0.55)
    caption(ax, title, fontsize=9)


def plot_worked_convolution(worked, output_sizes=(), ax=None):
    """The worked convolution: padded input, kernel, output, every output cell's sum, and the size formula.

    Args:
        worked: ``WorkedConvolution`` (``InspectionResult.worked_convolution``).
        output_sizes: the size formula filled in, one line per case (``InspectionResult.output_sizes``).
        ax: axes whose grid cell to split, or None for a new figure.

    Example:
        >>> plot_worked_convolution(result.worked_convolution, result.output_sizes)
    """
    (rows, columns), (kernel_rows, kernel_columns), stride = worked.input.shape, worked.kernel.shape, worked.stride
    (padded_rows, padded_columns), (output_rows, output_columns) = worked.padded_input.shape, worked.output.shape
    lines = [f"out[{row},{column}] = {worked.sums[row][column]}" for row in range(output_rows) for column in range(output_columns)]
    if len(lines) > MAX_SUM_LINES:
        lines = lines[: MAX_SUM_LINES - 1] + [f"... and {len(lines) - MAX_SUM_LINES + 1} more cells, worked the same way (WorkedConvolution.sums)"]
    # A 5x5 kernel's sum is ~230 characters: wrap at the ~135 monospace characters a 9-inch line holds at 7.5 pt.
    lines = [wrapped for line in lines for wrapped in textwrap.wrap(line, 135, subsequent_indent=" " * 10, break_on_hyphens=False)]
    lines += ["", "Output size = ⌊(n + 2p - k) / s⌋ + 1   (2p: all zeros added along one axis)"]
    lines += [f"  {text}" for text in output_sizes]
    width_ratios = [max(padded_columns, 3), kernel_columns + 1, output_columns + 1]
    cell = min(0.6, 7.6 / sum(width_ratios))  # inches per matrix cell: the three tables share about 7.6 of the 9 inches
    matrix_height = max(padded_rows, kernel_rows, output_rows, 3) * cell + 0.5
    text_height = 0.135 * len(lines) + 0.2
    # Column widths follow the matrix sizes so every cell is the same size.
    figure, grid = new_grid(
        ax, 2, 3, figsize=(9, matrix_height + text_height + 0.75), height_ratios=[matrix_height, text_height], width_ratios=width_ratios
    )
    axes = [figure.add_subplot(grid[0, column]) for column in range(3)]
    shade = np.ones(worked.padded_input.shape)
    top, left = worked.pad_before
    shade[top : top + rows, left : left + columns] = 0
    shade[:kernel_rows, :kernel_columns] += 2  # the window of out[0,0], over input or padding
    _integer_grid(axes[0], worked.padded_input, f"input {rows}x{columns}, padding '{worked.padding}'", shade=shade)
    _integer_grid(axes[1], worked.kernel, f"kernel {kernel_rows}x{kernel_columns}")
    output_shade = np.zeros(worked.output.shape)
    output_shade[0, 0] = 2
    _integer_grid(axes[2], worked.output, f"output {output_rows}x{output_columns}, stride {stride}", shade=output_shade)
    text_axis = figure.add_subplot(grid[1, :])
    text_axis.set_axis_off()
    text_axis.text(0, 1, "\n".join(lines), va="top", ha="left", family="monospace", fontsize=7.5, transform=text_axis.transAxes)
    figure_height = matrix_height + text_height + 0.75
    adjust_margins(figure, ax, left=0.03, right=0.97, bottom=0.01, top=1 - 0.75 / figure_height, wspace=0.2, hspace=0.12)
    legend = "yellow: the window of out[0,0]" + ("; grey: zero padding" if worked.padded_input.shape != worked.input.shape else "")
    set_title(figure, ax, f"Worked convolution: {worked.operation}\n{legend}")
    return figure


def plot_worked_pooling(pooling, ax=None):
    """The worked max-pooling: each window coloured, its values and maximum listed.

    Args:
        pooling: ``WorkedPooling`` (``InspectionResult.worked_pooling``).
        ax: axes whose grid cell to split, or None for a new figure.

    Example:
        >>> plot_worked_pooling(result.worked_pooling)
    """
    size = pooling.pool_size
    (rows, columns), (output_rows, output_columns) = pooling.input.shape, pooling.output.shape
    # Nine pastel colours, neighbouring windows never alike; cells no window covers stay white.
    window_colour = (np.arange(output_rows)[:, None] % 3) * 3 + np.arange(output_columns)[None, :] % 3
    shade = np.full(pooling.input.shape, np.nan)
    shade[: output_rows * size, : output_columns * size] = np.kron(window_colour, np.ones((size, size)))
    lines = [f"out[{row},{column}] = {pooling.windows[row][column]}" for row in range(output_rows) for column in range(output_columns)]
    height = max(rows * 0.45 + 1.4, 0.17 * len(lines) + 1.0, 3.4)
    figure, axes = new_panels(ax, 1, 3, figsize=(9, height), width_ratios=[max(columns, 3), max(output_columns, 2), 8])
    pastel = colormap_with_gaps("Pastel1")
    dropped = "\n(white: left over, dropped)" if np.isnan(shade).any() else ""
    _integer_grid(axes[0, 0], pooling.input, f"input {rows}x{columns}, one colour per window{dropped}", shade=shade, colormap=pastel, vmax=8)
    _integer_grid(axes[0, 1], pooling.output, f"output {output_rows}x{output_columns}", shade=window_colour, colormap=pastel, vmax=8)
    axes[0, 2].set_axis_off()
    axes[0, 2].text(0, 0.5, "\n".join(lines), va="center", ha="left", family="monospace", fontsize=9, transform=axes[0, 2].transAxes)
    adjust_margins(figure, ax, left=0.02, right=0.98, bottom=0.03, top=1 - 0.7 / height, wspace=0.15)
    set_title(figure, ax, f"Worked {size}x{size} max-pooling, stride {size}: each output is the largest value in its window")
    return figure
