"""Helpers every figure module shares: axes creation, image display, saving."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from convscope.fileio import write_bytes

DPI = 100  # 100 dpi keeps a 10-class figure near 50 KB; the report inlines every PNG


def new_axes(ax=None, figsize=(6, 4)):
    """Return (figure, axes): the given axes' figure, or a new figure with one axes."""
    if ax is not None:
        return ax.figure, ax
    figure, ax = plt.subplots(figsize=figsize, layout="constrained")
    return figure, ax


def display_image(image: np.ndarray, channels_first: bool = False) -> np.ndarray:
    """Return an image ready for imshow: (H, W) or (H, W, 3) floats in [0, 1].

    Accepts uint8 or float images with a channel axis (first or last) or none;
    float images outside [0, 1] are min-max rescaled (preprocessed inputs).
    """
    image = np.asarray(image)
    if image.ndim == 3 and channels_first:
        image = np.moveaxis(image, 0, -1)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    image = image.astype(np.float32)
    low, high = float(np.nanmin(image)), float(np.nanmax(image))
    if low >= 0.0 and high <= 1.0:
        return image
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def save_figure(figure, path: str | Path) -> Path:
    """Write ``figure`` as PNG atomically, close it, and return the path."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    plt.close(figure)
    return write_bytes(path, buffer.getvalue())
