"""The augmentation grid: a few training images, each beside versions of it as --augment transforms it.

    from convscope.data.augment import augment_examples
    from convscope.plots.augmentation import plot_augmentation
    versions = augment_examples(data.x_train[:4], "flip,rotate=10", seed=0, count=5, scaling=data.scaling)
    figure = plot_augmentation(data.display_images(data.x_train[:4]), uint8_versions, "flip, rotation up to ±10°")
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from convscope.plots.common import mosaic

GAP = 2  # pixels of white between tiles, in image pixels
CELL_INCHES = 1.1  # one image on the page


def plot_augmentation(originals: np.ndarray, versions: np.ndarray, description: str, labels: list[str] | None = None, ax=None):
    """Rows of images: the original first, then its augmented versions.

    Args:
        originals: uint8 (N, H, W, C) training images as pixels (scaling undone).
        versions: uint8 (N, K, H, W, C): K augmented versions of each.
        description: what the augmentation does, for the title (``Augmentation.describe()``).
        labels: one label per row (the class), or None.
        ax: axes to draw into; None: a new figure.

    Returns:
        The figure.
    """
    count, per_image = versions.shape[:2]
    tiles = np.concatenate([originals[:, np.newaxis], versions], axis=1).reshape(count * (per_image + 1), *originals.shape[1:])
    tiles = tiles.astype(np.float32) / 255.0
    grayscale = tiles.shape[-1] == 1
    canvas = mosaic(tiles[..., 0] if grayscale else tiles, per_image + 1, gap=GAP, fill=1.0)
    height, width = originals.shape[1:3]
    scale = CELL_INCHES / max(height, width)
    if ax is None:
        figure = plt.figure(figsize=(canvas.shape[1] * scale + 1.2, canvas.shape[0] * scale + 0.9))
        ax = figure.add_axes((1.0 / (canvas.shape[1] * scale + 1.2), 0.02, 1 - 1.1 / (canvas.shape[1] * scale + 1.2), 1 - 0.9 / (canvas.shape[0] * scale + 0.9)))
        figure.suptitle(f"Augmented training images: {description}", fontsize=10, wrap=True)
    else:
        figure = ax.figure
    ax.imshow(canvas, cmap="gray" if grayscale else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([(width + GAP) * column + width / 2 for column in range(per_image + 1)])
    ax.set_xticklabels(["original", *(f"augmented {index + 1}" for index in range(per_image))], fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks([(height + GAP) * row + height / 2 for row in range(count)])
    ax.set_yticklabels(labels if labels is not None else [""] * count, fontsize=8)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    return figure
