"""From raw pixels to model inputs: validation split, scaling, channel axis.

Every formula is fitted on the final training images only (after the
validation split and ``limit_train``), so validation and test images never
leak into the numbers. Each scale is ``(x - offset) / scale``:

    unit       x / 255                      the Keras MNIST/CIFAR lessons
    centered   (x - 128) / 128              values in [-1, 1]
    standard   (x - mean) / std             one mean and std over all training pixels
    minmax     (x - min) / (max - min)      per pixel position; pixels constant in training -> 0

    from convscope.data.preprocess import split_validation, fit_scaling
    train_index, val_index, rule = split_validation(y_train, val_split=0.1, val_first=0, limit_train=0, seed=0)
    scaling = fit_scaling("standard", x_train, train_index)
    x = scaling.apply(x_train, train_index)          # float32, (N, H, W, C)
    pixels = scaling.invert(x)                        # back to 0..255 floats
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from convscope.errors import ConvscopeError

CHUNK_BYTES = 4 << 20  # float32 bytes per chunk: temporaries stay in cache-sized pieces, never a full-size copy


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices so that ``fraction`` of each class is held out.

    The held-out total is round(fraction * N); each class gives its share, with
    the leftover places going to the classes with the largest remainders.

    Args:
        labels: (N,) class indices.
        fraction: 0 <= fraction < 1.
        seed: the same seed and labels give the same split.

    Returns:
        (kept, held): sorted index arrays that together cover 0..N-1.

    Example:
        >>> kept, held = stratified_split(np.repeat(np.arange(10), 600), 0.1, seed=0)
        >>> len(held)
        600
    """
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    quotas = fraction * counts
    take = np.floor(quotas).astype(np.int64)
    leftover = int(np.floor(fraction * len(labels) + 0.5)) - int(take.sum())
    if leftover > 0:
        take[np.argsort(-(quotas - take), kind="stable")[:leftover]] += 1
    rng = np.random.default_rng(seed)
    held = [rng.permutation(np.flatnonzero(labels == label))[:count] for label, count in zip(classes, take)]
    held = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    keep_mask = np.ones(len(labels), dtype=bool)
    keep_mask[held] = False
    return np.flatnonzero(keep_mask), held


def random_split(total: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split like scikit-learn's ``train_test_split(test_size=fraction, random_state=seed)``.

    The held-out images are the first ceil(fraction * N) of
    ``np.random.RandomState(seed).permutation(N)``, the rest are kept: the same
    images scikit-learn picks (tests/test_lessons.py checks it), without
    importing it.

    Returns:
        (kept, held): sorted index arrays.

    Example:
        >>> kept, held = random_split(60000, 0.3, seed=1338)
        >>> len(kept), len(held)
        (42000, 18000)
    """
    held_count = math.ceil(fraction * total)
    order = np.random.RandomState(seed).permutation(total)
    return np.sort(order[held_count:]), np.sort(order[:held_count])


def split_validation(
    labels: np.ndarray, val_split: float, val_first: int, limit_train: int, seed: int, method: str = "stratified"
) -> tuple[np.ndarray, np.ndarray, str]:
    """Choose training and validation indices of the training images.

    Args:
        labels: (N,) training labels.
        val_split: fraction held out for validation (ignored when val_first > 0).
        val_first: if > 0, the first val_first images are the validation set.
        limit_train: if > 0, keep only the first limit_train training images after the split.
        seed: seeds the stratified or random split.
        method: how val_split is taken: stratified (per class), random (scikit-learn's
            train_test_split), last (the last images, as Keras' validation_split), or
            test (none: the caller validates on the test set).

    Returns:
        (train_index, val_index, rule): sorted indices and a sentence describing the rule.

    Raises:
        ConvscopeError: the rule leaves no training images.
    """
    total = len(labels)
    if method == "test":
        train_index, val_index = np.arange(total), np.zeros(0, dtype=np.int64)
        rule = "the test set (validating on it leaks it into model selection)"
    elif val_first > 0:
        if val_first >= total:
            raise ConvscopeError(f"val_first={val_first} but there are only {total} training images; expected fewer, so some remain for training")
        train_index, val_index = np.arange(val_first, total), np.arange(val_first)
        rule = f"the first {val_first} training images"
    elif val_split > 0 and method == "last":
        split_at = int(math.floor(total * (1.0 - val_split)))  # Keras' validation_split
        train_index, val_index = np.arange(split_at), np.arange(split_at, total)
        rule = f"the last {val_split:g} of the training images ({total - split_at}), as Keras' validation_split"
    elif val_split > 0 and method == "random":
        train_index, val_index = random_split(total, val_split, seed)
        rule = f"a random {val_split:g} of the training images (seed {seed}), as scikit-learn's train_test_split"
    elif val_split > 0:
        train_index, val_index = stratified_split(labels, val_split, seed)
        rule = f"stratified {val_split:g} of the training images per class (seed {seed})"
    else:
        train_index, val_index = np.arange(total), np.zeros(0, dtype=np.int64)
        rule = "none (val_split 0)"
    if len(train_index) == 0:
        raise ConvscopeError(f"val_split={val_split} leaves no training images out of {total}; lower val_split")
    if 0 < limit_train < len(train_index):
        train_index = train_index[:limit_train]
        rule += f"; training limited to the first {limit_train} remaining images"
    return train_index, val_index, rule


def _chunks(pixels: np.ndarray, index: np.ndarray | None):
    """Yield (start, float32 chunk) over ``pixels[index]`` (all rows when index is None), a few MB at a time."""
    rows = len(pixels) if index is None else len(index)
    step = max(1, CHUNK_BYTES // (4 * int(np.prod(pixels.shape[1:]))))
    for start in range(0, rows, step):
        chunk = pixels[start : start + step] if index is None else pixels[index[start : start + step]]
        yield start, chunk.astype(np.float32)


@dataclass
class Scaling:
    """A fitted ``(x - offset) / scale``; a scale of 0 marks a constant pixel, mapped to 0."""

    kind: str  # unit, centered, standard or minmax
    offset: np.ndarray  # float32, scalar or (H, W, C) for minmax
    scale: np.ndarray

    def apply(self, pixels: np.ndarray, index: np.ndarray | None = None, channels_first: bool = False) -> np.ndarray:
        """Scale ``pixels[index]`` (N, H, W, C) into a new float32 array, (N, C, H, W) if channels_first.

        Works chunk by chunk into one preallocated output: the only full-size
        allocation is the result (full MNIST: 0.19 GB float32 from 47 MB of uint8).
        """
        rows = len(pixels) if index is None else len(index)
        height, width, channels = pixels.shape[1:]
        out = np.empty((rows, channels, height, width) if channels_first else (rows, height, width, channels), dtype=np.float32)
        constant = self.scale == 0
        divisor = np.where(constant, np.float32(1.0), self.scale)
        for start, chunk in _chunks(pixels, index):
            chunk -= self.offset
            chunk /= divisor
            if constant.any():
                chunk *= ~constant
            out[start : start + len(chunk)] = chunk.transpose(0, 3, 1, 2) if channels_first else chunk
        return out

    def invert(self, inputs: np.ndarray) -> np.ndarray:
        """float inputs (N, H, W, C) -> pixels 0..255 as float32 (not clipped)."""
        return np.asarray(inputs, dtype=np.float32) * self.scale + self.offset

    def describe(self) -> dict:
        """The formula with its fitted numbers, for Dataset.preprocessing."""
        if self.kind == "unit":
            return {"scale": "unit", "formula": "x / 255"}
        if self.kind == "centered":
            return {"scale": "centered", "formula": "(x - 128) / 128"}
        if self.kind == "standard":
            mean, std = float(self.offset), float(self.scale)
            return {"scale": "standard", "formula": f"(x - {mean:.4f}) / {std:.4f}", "mean": mean, "std": std}
        return {
            "scale": "minmax",
            "formula": "(x - min) / (max - min) per pixel position",
            "min_range": [float(self.offset.min()), float(self.offset.max())],
            "max_range": [float((self.offset + self.scale).min()), float((self.offset + self.scale).max())],
            "constant_pixels": int(np.count_nonzero(self.scale == 0)),  # equal in every training image; always 0 after scaling
        }


def scaling_from_description(described: dict) -> Scaling | None:
    """Rebuild a Scaling from what ``Scaling.describe()`` wrote (data.json's preprocessing).

    Args:
        described: a dict with "scale" and, for standard, "mean" and "std".

    Returns:
        The Scaling, or None for minmax: its per-pixel numbers are not in the
        description (refit it by loading the dataset).

    Raises:
        ConvscopeError: an unknown scale, or a standard scale without its numbers.

    Example:
        >>> scaling_from_description({"scale": "standard", "mean": 33.3, "std": 78.6}).apply(pixels)
    """
    kind = described.get("scale")
    if kind == "minmax":
        return None
    if kind == "standard":
        if "mean" not in described or "std" not in described:
            raise ConvscopeError("preprocessing says scale standard without its mean and std; re-run the training that wrote it")
        return Scaling(kind, _as_float(described["mean"]), _as_float(described["std"]))
    if kind in ("unit", "centered"):
        return fit_scaling(kind, np.zeros((0, 1, 1, 1), dtype=np.uint8))
    raise ConvscopeError(f"preprocessing scale={kind!r}; expected one of unit, minmax, centered, standard")


def _as_float(value) -> np.ndarray:
    return np.asarray(value, dtype=np.float32)


def fit_scaling(kind: str, pixels: np.ndarray, index: np.ndarray | None = None) -> Scaling:
    """Fit a scale formula on training pixels.

    Args:
        kind: unit, centered, standard or minmax.
        pixels: (N, H, W, C) pixels in 0..255.
        index: the rows that are training images (None: all).

    Returns:
        The fitted Scaling.

    Example:
        >>> fit_scaling("standard", x_train).describe()["formula"]
        '(x - 33.3184) / 78.5675'
    """
    if kind == "unit":
        return Scaling(kind, _as_float(0.0), _as_float(255.0))
    if kind == "centered":
        return Scaling(kind, _as_float(128.0), _as_float(128.0))
    if kind == "standard":
        # float64 sums over chunks: exact for uint8 pixels, no full-size float64 temporary
        total, total_squares, count = 0.0, 0.0, 0
        for _, chunk in _chunks(pixels, index):
            chunk = chunk.astype(np.float64)
            total += float(chunk.sum())
            total_squares += float(np.square(chunk).sum())
            count += chunk.size
        mean = total / count
        return Scaling(kind, _as_float(mean), _as_float(np.sqrt(max(total_squares / count - mean * mean, 0.0))))
    if kind == "minmax":
        low = high = None
        for _, chunk in _chunks(pixels, index):
            low = chunk.min(axis=0) if low is None else np.minimum(low, chunk.min(axis=0))
            high = chunk.max(axis=0) if high is None else np.maximum(high, chunk.max(axis=0))
        return Scaling(kind, low, high - low)
    raise ConvscopeError(f"scale={kind!r}; expected one of unit, minmax, centered, standard")
