"""Model inputs as people see them: the one conversion to displayable images (NumPy only).

    from convscope.display import display_image, display_uint8
    display_image(x_test[0])                   # (28, 28) floats in [0, 1], ready for imshow
    display_uint8(to_channels_last(x_test[:2]))  # (2, 28, 28, 1) uint8 for figures and reports
    drawable_images(to_channels_last(x_test))  # what image figures take, or None for flat vectors

Float images outside [0, 1] (preprocessed inputs) are min-max rescaled per
image; uint8 images are divided by 255. ``Dataset.display_images`` knows the
dataset's scaling and undoes it exactly; these rules are for images whose
scaling is unknown (a notebook's arrays, a model brought from elsewhere).
Arrays come channels-last: ``keras_compat.to_channels_last`` turns model inputs
into that layout.
"""

from __future__ import annotations

import numpy as np


def display_image(image: np.ndarray) -> np.ndarray:
    """Return an image ready for imshow: (H, W) or (H, W, 3) floats in [0, 1].

    Accepts uint8 or float images, channels-last or without a channel axis;
    float images outside [0, 1] are min-max rescaled (preprocessed inputs).
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    image = image.astype(np.float32)
    low, high = float(np.nanmin(image)), float(np.nanmax(image))
    if low >= 0.0 and high <= 1.0:
        return image
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def display_uint8(images: np.ndarray) -> np.ndarray:
    """A channels-last batch of model inputs as (N, H, W, C) uint8 (min-max per image unless already in [0, 1]).

    Example:
        >>> display_uint8(np.full((1, 2, 2, 1), 0.5, np.float32))[0, 0, 0]
        array([128], dtype=uint8)
    """
    shown = [display_image(image) for image in np.asarray(images, np.float32)]
    shown = np.stack([image[..., None] if image.ndim == 2 else image for image in shown])
    return np.round(shown * 255).astype(np.uint8)


def drawable_images(x: np.ndarray) -> np.ndarray | None:
    """Channels-last model inputs as the image figures take them (they rescale floats themselves); None when not images.

    (N, H, W, C) and grayscale (N, H, W) batches are drawable; flat vectors are not.
    """
    return x if x.ndim in (3, 4) else None
