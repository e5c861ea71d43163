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

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import ListedColormap

from convscope.display import display_image
from convscope.plots.common import (
    adjust_margins,
    caption,
    cell_lines,
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


def plot_classic_kernels(kernels, image: np.ndarray, ax=None, image_label: str | None = None):
    """Classic kernels (matrix with numbers above the filtered image) beside the learned filters' responses.

    Rows 1-2: each hand-made kernel and its true convolution of the grayscale
    image; rows 3-4: the first convolutional layer's filters and their
    pre-activation outputs on the same image. Each output has its own gray scale.
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
        cells += weight_cells(kernel, top, left, limit, digits, cell_size=(cell_height, cell_width))
    draw_numbers(ax_, cells, fontsize=7 if all(kernel.shape[0] <= 3 for kernel, *_ in numbers) else 5.5)
    for x, y, text, vertical in labels:
        ax_.text(x, y, text, ha="center", va=vertical, fontsize=7.5)
    ax_.set_axis_off()
    caption(ax_, f"Kernels on {image_title(image_label, kernels.image_index)}: hand-made vs learned", fontsize=10)
    return figure


def plot_channel_split(kernels, image: np.ndarray, ax=None, image_label: str | None = None):
    """An RGB input, its ITU-R 601 grayscale and its R, G, B channels.

    Args:
        kernels: ``ClassicKernels`` of an RGB image (its ``channels`` and ``grayscale``).
        image: that image, (H, W, 3) uint8 as people see it.
        ax: axes whose grid cell to split, or None for a new figure.
        image_label: the image's name in the title; None: "image N".

    Example:
        >>> plot_channel_split(cifar_result.classic_kernels, cifar_result.display_images[0])
    """
    figure, axes = new_panels(ax, 1, 5, figsize=(10, 2.6))
    axes[0, 0].imshow(image, interpolation="nearest")
    caption(axes[0, 0], "RGB", fontsize=9)
    axes[0, 1].imshow(kernels.grayscale, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    caption(axes[0, 1], "0.299R + 0.587G + 0.114B", fontsize=8)
    for axis, (name, channel), colormap in zip(axes[0, 2:], kernels.channels.items(), ("Reds", "Greens", "Blues")):
        axis.imshow(channel, cmap=colormap, vmin=0, vmax=255, interpolation="nearest")
        caption(axis, f"{name} channel (0-255)", fontsize=9)
    for axis in axes.ravel():
        axis.set_axis_off()
    adjust_margins(figure, ax, left=0.01, right=0.99, bottom=0.02, top=0.78, wspace=0.06)
    set_title(figure, ax, f"{image_title(image_label, kernels.image_index)} split into channels")
    return figure


def plot_pixel_grid(grid, ax=None, image_label: str | None = None):
    """The image as a grid of integers 0-255, each number on its own pixel.

    Args:
        grid: ``PixelGrid`` (``InspectionResult.pixel_grid``).
        ax: axes to draw into, or None for a new figure.
        image_label: the image's name in the title; None: "image N".

    Example:
        >>> plot_pixel_grid(result.pixel_grid, image_label="test image 7")
    """
    height, width = grid.values.shape
    figure, ax_ = new_axes(ax, figsize=(0.3 * width + 0.6, 0.3 * height + 0.8))
    ax_.imshow(grid.values, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    draw_numbers(ax_, number_cells(grid.values.astype(str), np.where(grid.values > 127, "black", "white")), fontsize=6)
    ax_.set_axis_off()
    caption(ax_, f"{image_title(image_label, grid.image_index)}: {grid.description}", fontsize=10)
    return figure


# ---------------------------------------------------------------- worked examples


WORKED_COLOURS = ListedColormap(["white", "0.82", "#ffd966", "#e6b800"])  # inside, zero padding, window, window on padding


def _integer_grid(ax, values: np.ndarray, title: str, shade=None, colormap=WORKED_COLOURS, vmax: float = 3) -> None:
    """An integer matrix as a table: category colours behind the numbers, thin cell lines."""
    background = np.zeros(values.shape) if shade is None else shade
    ax.imshow(background, cmap=colormap, vmin=0, vmax=vmax, interpolation="nearest")
    draw_numbers(ax, number_cells(values.astype(str), np.full(values.shape, "black")), fontsize=10)
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
    size, kernel_size, stride = len(worked.input), len(worked.kernel), worked.stride
    padded_size, output_size = len(worked.padded_input), len(worked.output)
    # Column widths follow the matrix sizes so every cell is the same size.
    figure, grid = new_grid(ax, 2, 3, figsize=(9, 6.4), height_ratios=[1.0, 1.1], width_ratios=[padded_size, kernel_size + 1, output_size + 1])
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
    lines += [f"  {text}" for text in output_sizes]
    text_axis.text(0, 1, "\n".join(lines), va="top", ha="left", family="monospace", fontsize=7.5, transform=text_axis.transAxes)
    adjust_margins(figure, ax, left=0.03, right=0.97, bottom=0.01, top=0.88, wspace=0.2, hspace=0.12)
    legend = "yellow: the window of out[0,0]" + ("; grey: zero padding" if worked.pad_before or len(worked.padded_input) > size else "")
    set_title(figure, ax, f"Worked convolution: {worked.operation}\n{legend}")
    return figure


def plot_worked_pooling(pooling, ax=None):
    """The worked 2x2 max-pooling: each window coloured, its values and maximum listed.

    Args:
        pooling: ``WorkedPooling`` (``InspectionResult.worked_pooling``).
        ax: axes whose grid cell to split, or None for a new figure.

    Example:
        >>> plot_worked_pooling(result.worked_pooling)
    """
    figure, axes = new_panels(ax, 1, 3, figsize=(9, 3.4), width_ratios=[1, 0.6, 1.4])
    window_colour = np.kron(np.array([[0, 1], [2, 3]]), np.ones((2, 2)))  # which window each cell falls in
    _integer_grid(axes[0, 0], pooling.input, "input 4x4 (one colour per window)", shade=window_colour, colormap="Pastel1", vmax=8)
    _integer_grid(axes[0, 1], pooling.output, "output 2x2", shade=np.array([[0, 1], [2, 3]]), colormap="Pastel1", vmax=8)
    axes[0, 2].set_axis_off()
    lines = [f"out[{row},{column}] = {pooling.windows[row][column]}" for row in range(2) for column in range(2)]
    axes[0, 2].text(0, 0.5, "\n".join(lines), va="center", ha="left", family="monospace", fontsize=9, transform=axes[0, 2].transAxes)
    adjust_margins(figure, ax, left=0.02, right=0.98, bottom=0.03, top=0.8, wspace=0.15)
    set_title(figure, ax, "Worked 2x2 max-pooling, stride 2: each output is the largest value in its window")
    return figure
