"""Figures of a network's inside: filters, Dense weights, activations, Grad-CAM, saliency; and all figures at once.

Each ``plot_x(part, ..., ax=None)`` takes the part of an ``InspectionResult`` it
draws and returns the figure; ``save_inspection_figures`` draws and saves every
figure of a whole result (the teaching figures come from ``convscope.plots.teaching``).

    from convscope.inspection import inspect
    from convscope.plots.inspection import plot_grad_cam, save_inspection_figures
    result = inspect(model, images)
    figure = plot_grad_cam(result.grad_cam, result.display_images, result.probabilities, class_names=data.class_names)
    paths = save_inspection_figures(result, "runs/demo/plots", class_names=data.class_names)
    paths["grad_cam"]        # PosixPath('runs/demo/plots/grad_cam.png')

Multi-panel figures given ``ax`` split that axes' grid cell into their panels.
Tiles of many channels are drawn as one image (a mosaic) per figure: one
``imshow`` instead of dozens of axes keeps a figure near 0.1 s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convscope.display import display_image
from convscope.errors import ConvscopeError
from convscope.plots.common import (
    adjust_margins,
    caption,
    colormap_with_gaps,
    draw_numbers,
    image_title,
    mosaic,
    new_axes,
    new_grid,
    new_panels,
    save_figure,
    set_title,
    tile_origins,
    weight_cells,
)
from convscope.plots.teaching import (
    DIVERGING,
    plot_channel_split,
    plot_classic_kernels,
    plot_pixel_grid,
    plot_worked_convolution,
    plot_worked_pooling,
)

MAX_FILTERS = 64  # first-layer filters shown (8 x 8 tiles)
MAX_UNITS = 32  # Dense units shown as images
MAX_CHANNELS = 32  # activation channels shown per layer
MAX_BARS = 64  # units shown for a flat (N, units) activation
ACTIVATION_COLUMNS = 16  # channel tiles per row: 32 channels fill two rows
MAX_IMAGES = 8  # images side by side in Grad-CAM and saliency figures
HEATMAP = "jet"
HEATMAP_ALPHA = 0.45  # the digit stays visible under the heatmap


def _class_name(index: int, class_names) -> str:
    return str(class_names[index]) if class_names is not None and index < len(class_names) else f"class {index}"


def _image_cmap(image: np.ndarray):
    return "gray" if image.ndim == 2 else None


# ---------------------------------------------------------------- filters and weights


def plot_filters(filters, ax=None, show_values: bool | None = None):
    """First-layer filters on one symmetric diverging colour scale; one row per input channel.

    Args:
        filters: ``FirstLayerFilters`` (``InspectionResult.filters``).
        ax: axes to draw into, or None for a new figure.
        show_values: print each weight in its cell; default for kernels up to 5x5
            when at most 64 filters are shown.

    Returns:
        The figure.

    Example:
        >>> plot_filters(result.filters).savefig("filters.png")
    """
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
    canvas = mosaic(tiles, columns)
    cell = 0.34 if show_values else 0.16  # inches per weight: room for "-.12" at 6.5 pt
    figure, ax_ = new_axes(ax, figsize=(max(4.0, canvas.shape[1] * cell + 1.6), max(2.5, canvas.shape[0] * cell + 0.9)))
    image = ax_.imshow(canvas, cmap=colormap_with_gaps(DIVERGING), vmin=-limit, vmax=limit, interpolation="nearest")
    if show_values:
        origins = tile_origins(len(tiles), columns, height, width)
        cells = []
        for (top, left), tile in zip(origins, tiles):
            if not np.isnan(tile).all():  # the empty slots of a last, partial band
                cells += weight_cells(tile, top, left, limit)
        draw_numbers(ax_, cells, fontsize=6.5)
    for row, label in enumerate(row_labels):
        ax_.text(-0.8, row * (height + 1) + height / 2 - 0.5, label, ha="right", va="center", fontsize=9)
    ax_.set_axis_off()
    figure.colorbar(image, ax=ax_, shrink=0.8, label="weight")
    count = f"first {shown} of {out_channels}" if shown < out_channels else f"{out_channels}"
    caption(ax_, f"{filters.layer_name}: {count} filters {height}x{width}, one colour scale (±{limit:.2f})", fontsize=10)
    return figure


def plot_filters_rgb(filters, ax=None):
    """First-layer filters of a 3-channel input as colour images (each filter min-max rescaled).

    Args:
        filters: ``FirstLayerFilters`` with ``rgb`` (a 3-channel input).
        ax: axes to draw into, or None for a new figure.

    Example:
        >>> plot_filters_rgb(result.filters)   # result of a CIFAR model
    """
    shown = min(len(filters.rgb), MAX_FILTERS)
    canvas = mosaic(filters.rgb[:shown].astype(np.float32) / 255.0, 8, fill=1.0)
    figure, ax_ = new_axes(ax, figsize=(max(3.5, canvas.shape[1] * 0.2 + 0.4), max(2.0, canvas.shape[0] * 0.2 + 0.6)))
    ax_.imshow(canvas, interpolation="nearest")
    ax_.set_axis_off()
    count = f"first {shown} of {len(filters.rgb)}" if shown < len(filters.rgb) else f"{shown}"
    caption(ax_, f"{filters.layer_name}: {count} filters as RGB\n(each rescaled to 0-255 on its own)", fontsize=10)
    return figure


def plot_dense_weights(weights, ax=None, max_units: int = MAX_UNITS):
    """Each unit of the first Dense layer as an image, all on one symmetric diverging scale.

    Args:
        weights: ``DenseWeightImages`` (``InspectionResult.dense_weights`` or ``compute_dense_weights``).
        ax: axes to draw into, or None for a new figure.
        max_units: units shown (the title says when more exist).

    Example:
        >>> plot_dense_weights(mlp_result.dense_weights)
    """
    shown = min(len(weights.images), max_units)
    tiles = weights.images[:shown]
    figure_rows = -(-shown // 8)
    figure, ax_ = new_axes(ax, figsize=(8.5, 1.2 * figure_rows + 1.0))
    if tiles.ndim == 4:  # colour input: zero weight is mid-grey, the scale is shared by all units
        canvas = mosaic((tiles - weights.vmin) / (weights.vmax - weights.vmin), 8, fill=1.0)
        ax_.imshow(np.clip(canvas, 0, 1), interpolation="nearest")
    else:
        canvas = mosaic(tiles, 8)
        image = ax_.imshow(canvas, cmap=colormap_with_gaps(DIVERGING), vmin=weights.vmin, vmax=weights.vmax, interpolation="nearest")
        figure.colorbar(image, ax=ax_, shrink=0.8, label="weight")
    ax_.set_axis_off()
    count = f"first {shown} of {len(weights.images)}" if shown < len(weights.images) else f"{shown}"
    caption(ax_, f"{weights.layer_name}: weights of {count} units as images (one scale ±{weights.vmax:.3f})", fontsize=10)
    return figure


# ---------------------------------------------------------------- activations and explanations


def plot_activations(
    activations, layer_name: str, image_index: int = 0, ax=None, max_channels: int = MAX_CHANNELS, image_label: str | None = None
):
    """One layer's output for one image: channels tiled (each min-max scaled), or unit bars.

    Args:
        activations: ``LayerActivation`` list (``InspectionResult.activations``).
        layer_name: a layer in ``activations``.
        image_index: which inspected image.
        ax: axes to draw into, or None.
        max_channels: channels shown (the title says when more exist).
        image_label: the image's name in the title; None: "image N".

    Returns:
        The figure.

    Example:
        >>> plot_activations(result.activations, "conv2d", image_index=1, image_label="test image 42")
    """
    activation = next((item for item in activations if item.layer_name == layer_name), None)
    if activation is None:
        names = ", ".join(item.layer_name for item in activations)
        raise ConvscopeError(f"no activations of layer {layer_name!r} were computed; choose one of: {names} (or pass layers= to inspect)")
    values = activation.values[image_index]
    shape = "x".join(str(size) for size in values.shape)
    label = f"{layer_name} ({activation.layer_type}) output {shape}, {image_title(image_label, image_index)}"
    if values.ndim == 3:
        channels = values.shape[-1]
        shown = min(channels, max_channels)
        tiles = np.moveaxis(values[..., :shown], -1, 0).astype(np.float32)
        low = tiles.min(axis=(1, 2), keepdims=True)
        span = tiles.max(axis=(1, 2), keepdims=True) - low
        # Each channel on its own scale: a weak but structured channel stays visible; all-zero stays black.
        tiles = np.where(span > 0, (tiles - low) / np.where(span > 0, span, 1), 0.0)
        columns = min(shown, ACTIVATION_COLUMNS)
        canvas = mosaic(tiles, columns)
        figure, ax_ = new_axes(ax, figsize=(0.62 * columns + 0.4, 0.62 * -(-shown // columns) + 0.7))
        ax_.imshow(canvas, cmap=colormap_with_gaps("viridis"), vmin=0, vmax=1, interpolation="nearest")
        ax_.set_axis_off()
        count = f"channels 0-{shown - 1} of {channels}" if shown < channels else f"all {channels} channels"
        caption(ax_, f"{label}: {count}, each scaled to its own min-max", fontsize=9)
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
    caption(ax_, label, fontsize=9)
    return figure


def plot_activations_of_image(
    activations, image_index: int = 0, layer_names: list[str] | None = None, ax=None, image_label: str | None = None
):
    """Every inspected layer's output for one image, one row per layer, input to output.

    Args:
        activations: ``LayerActivation`` list (``InspectionResult.activations``).
        image_index: which inspected image.
        layer_names: layers to show, default every layer in ``activations``.
        ax: axes whose grid cell to split into the rows, or None for a new figure.
        image_label: the image's name in the titles; None: "image N".

    Returns:
        The figure.

    Example:
        >>> plot_activations_of_image(result.activations, image_index=1, layer_names=["conv1", "pool1"])
    """
    layer_names = [item.layer_name for item in activations] if layer_names is None else layer_names
    heights = []
    for name in layer_names:
        values = next((item.values for item in activations if item.layer_name == name), None)
        channels = min(values.shape[-1], MAX_CHANNELS) if values is not None and values.ndim == 4 else 0
        heights.append(0.62 * -(-channels // ACTIVATION_COLUMNS) + 0.35 if channels else 1.9)
    figure, grid = new_grid(ax, len(layer_names), 1, figsize=(0.62 * ACTIVATION_COLUMNS + 0.6, sum(heights) + 1.0), height_ratios=heights)
    for row, name in enumerate(layer_names):
        plot_activations(activations, name, image_index, ax=figure.add_subplot(grid[row, 0]), image_label=image_label)
    figure_height = sum(heights) + 1.0
    adjust_margins(figure, ax, left=0.06, right=0.98, bottom=0.45 / figure_height, top=1 - 0.7 / figure_height, hspace=0.6)
    set_title(figure, ax, f"Activations of {image_title(image_label, image_index)}, layer by layer")
    return figure


def _explained_panels(maps, class_indices, display_images, probabilities, image_labels, class_names, ax, title: str, overlay: bool, colormap: str):
    """Each image with its predicted class above its map (Grad-CAM overlaid, saliency alone)."""
    count = min(len(maps), MAX_IMAGES)
    figure, axes = new_panels(ax, 2, count, figsize=(2.1 * count + 0.4, 4.6))
    for index in range(count):
        image = display_image(display_images[index])
        predicted = int(np.argmax(probabilities[index]))
        axes[0, index].imshow(image, cmap=_image_cmap(image), interpolation="nearest")
        probability = probabilities[index, predicted]
        caption(axes[0, index], f"{image_title(None if image_labels is None else image_labels[index], index)}: {_class_name(predicted, class_names)}\np={probability:.2f}", fontsize=8)
        if overlay:
            axes[1, index].imshow(image, cmap=_image_cmap(image), interpolation="nearest")
            axes[1, index].imshow(maps[index], cmap=colormap, alpha=HEATMAP_ALPHA, vmin=0, vmax=1, interpolation="bilinear")
        else:
            axes[1, index].imshow(maps[index], cmap=colormap, vmin=0, vmax=1, interpolation="nearest")
        empty = " (all zero)" if maps[index].max() <= 0 else ""  # e.g. Grad-CAM where every weighted sum is negative
        caption(axes[1, index], f"for {_class_name(int(class_indices[index]), class_names)}{empty}", fontsize=8)
        axes[0, index].set_axis_off()
        axes[1, index].set_axis_off()
    adjust_margins(figure, ax, left=0.02, right=0.98, bottom=0.02, top=0.8, wspace=0.08, hspace=0.3)
    set_title(figure, ax, title)
    return figure


def plot_grad_cam(cam, display_images, probabilities, class_names=None, ax=None, image_labels=None):
    """Grad-CAM (or HiResCAM) heatmaps over the inputs, with the method, predicted and explained class named.

    Args:
        cam: ``GradCam`` (``InspectionResult.grad_cam``).
        display_images: the inspected images as people see them, (N, H, W, C).
        probabilities: (N, num_classes) predictions; the highest is named above each image.
        class_names: names of the classes, or None for "class 3".
        ax: axes whose grid cell to split, or None for a new figure.
        image_labels: names of the images; None: "image 0", "image 1", ...

    Example:
        >>> plot_grad_cam(result.grad_cam, result.display_images, result.probabilities, class_names=[str(d) for d in range(10)])
    """
    method = {"gradcam": "Grad-CAM", "hirescam": "HiResCAM"}[cam.method]
    return _explained_panels(
        cam.heatmaps, cam.class_indices, display_images, probabilities, image_labels, class_names, ax,
        f"{method} of {cam.layer_name}\nscore: {cam.score_source}", overlay=True, colormap=HEATMAP,
    )


def plot_image_prediction(cam, image, probabilities, class_names=None, ax=None, image_label: str | None = None, top_k: int = 5):
    """One image's prediction: the image as the model takes it, Grad-CAM over it, and its most probable classes.

    Args:
        cam: ``GradCam`` of this one image (``InspectionResult.grad_cam``), or None (no spatial layer).
        image: the image as people see it, (H, W[, C]) (``InspectionResult.display_images[0]``).
        probabilities: (num_classes,) this image's predicted probabilities.
        class_names: names of the classes, or None for "class 3".
        ax: axes whose grid cell to split, or None for a new figure.
        image_label: the image's name in the title; None: "image 0".
        top_k: classes shown as bars, most probable first.

    Example:
        >>> plot_image_prediction(result.grad_cam, result.display_images[0], result.probabilities[0], class_names, image_label="seven.png")
    """
    image = display_image(image)
    probabilities = np.asarray(probabilities, np.float64)
    predicted = int(np.argmax(probabilities))
    figure, axes = new_panels(ax, 1, 3, figsize=(9.5, 3.6), width_ratios=[1, 1, 1.2])
    axes[0, 0].imshow(image, cmap=_image_cmap(image), interpolation="nearest")
    caption(axes[0, 0], "model input", fontsize=9)
    axes[0, 1].imshow(image, cmap=_image_cmap(image), interpolation="nearest")
    if cam is not None:
        method = {"gradcam": "Grad-CAM", "hirescam": "HiResCAM"}[cam.method]
        axes[0, 1].imshow(cam.heatmaps[0], cmap=HEATMAP, alpha=HEATMAP_ALPHA, vmin=0, vmax=1, interpolation="bilinear")
        empty = " (all zero)" if cam.heatmaps[0].max() <= 0 else ""
        caption(axes[0, 1], f"{method} of {cam.layer_name}\nfor {_class_name(int(cam.class_indices[0]), class_names)}{empty}", fontsize=9)
    else:
        caption(axes[0, 1], "no Grad-CAM:\nno layer keeps a spatial map", fontsize=9)
    for axis in axes[0, :2]:
        axis.set_axis_off()
    order = np.argsort(-probabilities, kind="stable")[: min(top_k, len(probabilities))]
    bars = axes[0, 2]
    bars.barh(np.arange(len(order)), probabilities[order], color=["tab:orange"] + ["tab:blue"] * (len(order) - 1))
    bars.set_yticks(np.arange(len(order)), [_class_name(int(k), class_names) for k in order], fontsize=8)
    bars.invert_yaxis()
    bars.set_xlim(0, 1)
    bars.tick_params(axis="x", labelsize=8)
    for position, k in enumerate(order):
        bars.text(min(probabilities[k] + 0.02, 0.8), position, f"{probabilities[k]:.3f}", va="center", fontsize=8)
    caption(bars, f"top {len(order)} of {len(probabilities)} classes", fontsize=9)
    adjust_margins(figure, ax, left=0.02, right=0.97, bottom=0.09, top=0.74, wspace=0.25)
    title = image_title(image_label, 0)
    set_title(figure, ax, f"{title}\npredicted {_class_name(predicted, class_names)} with probability {probabilities[predicted]:.3f}")
    return figure


def plot_saliency(saliency, display_images, probabilities, class_names=None, ax=None, image_labels=None):
    """Vanilla-gradient saliency maps |d score / d pixel| under each input.

    Args:
        saliency: ``Saliency`` (``InspectionResult.saliency``).
        display_images, probabilities, class_names, ax, image_labels: as for ``plot_grad_cam``.

    Example:
        >>> plot_saliency(result.saliency, result.display_images, result.probabilities)
    """
    return _explained_panels(
        saliency.maps, saliency.class_indices, display_images, probabilities, image_labels, class_names, ax,
        "Saliency |d score / d pixel|\n(max over channels, each map / its max)", overlay=False, colormap="inferno",
    )


# ---------------------------------------------------------------- all figures


def save_inspection_figures(result, out_dir, class_names=None) -> dict[str, Path]:
    """Draw every inspection figure that applies to ``result`` and save it as PNG.

    Args:
        result: ``InspectionResult`` from ``convscope.inspection.inspect``.
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
    labels, shown = result.image_labels, result.display_images
    figures = {}
    if result.filters is not None:
        figures["filters"] = lambda: plot_filters(result.filters)
        if result.filters.rgb is not None:
            figures["filters_rgb"] = lambda: plot_filters_rgb(result.filters)
    if result.dense_weights is not None:
        figures["dense_weights"] = lambda: plot_dense_weights(result.dense_weights)
    if result.activations:
        # One figure per image with a row per layer: 5 layers x 2 images as 10 separate PNGs cost ~0.5 s more.
        for image_index in range(len(result.images)):
            figures[f"activations_img{image_index}"] = lambda index=image_index: plot_activations_of_image(
                result.activations, index, image_label=labels[index]
            )
    if result.grad_cam is not None:
        figures["grad_cam"] = lambda: plot_grad_cam(result.grad_cam, shown, result.probabilities, class_names, image_labels=labels)
    figures["saliency"] = lambda: plot_saliency(result.saliency, shown, result.probabilities, class_names, image_labels=labels)
    kernels = result.classic_kernels
    image_label = labels[kernels.image_index]
    figures["classic_kernels"] = lambda: plot_classic_kernels(kernels, shown[kernels.image_index], image_label=image_label)
    if kernels.channels is not None:
        figures["channel_split"] = lambda: plot_channel_split(kernels, shown[kernels.image_index], image_label=image_label)
    figures["pixel_grid"] = lambda: plot_pixel_grid(result.pixel_grid, image_label=labels[result.pixel_grid.image_index])
    figures["worked_convolution"] = lambda: plot_worked_convolution(result.worked_convolution, result.output_sizes)
    figures["worked_pooling"] = lambda: plot_worked_pooling(result.worked_pooling)
    return {key: save_figure(draw(), out_dir / f"{key}.png") for key, draw in figures.items()}
