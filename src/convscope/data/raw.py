"""Raw image arrays as a source delivers them, and the checks every source shares.

Each source (IDX, CIFAR batches, npz, folders, digits) returns ``RawImages``:
pixels in 0..255 with a channel axis, integer labels, class names, and where
they came from. ``convscope.data.preprocess`` turns them into a ``Dataset``.

    from convscope.data.raw import RawImages, check_images, check_labels
    x = check_images(array, where="data.npz: x_train")       # (N, H, W, C) uint8 or float32
    y = check_labels(labels, where="data.npz: y_train", count=len(x), num_classes=10)
    check_zip_members(zipfile.ZipFile("data.npz"), "data.npz", max_bytes=8 << 30, fix="re-save it")
"""

from __future__ import annotations

import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import numpy as np

from convscope.errors import ConvscopeError

MAX_CLASSES = 100_000  # ImageNet-21k has 21,841; more classes than this means damaged labels


@dataclass
class RawImages:
    """Training and test images before scaling: (N, H, W, C) pixels in 0..255."""

    x_train: np.ndarray  # uint8, or float32 for sources that store floats
    y_train: np.ndarray  # int64 class indices
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    source: str  # the folder, file, URL or "bundled" the pixels came from
    notes: dict = field(default_factory=dict)  # source facts for Dataset.preprocessing (layout, split rule, ...)


def check_images(array: np.ndarray, where: str) -> np.ndarray:
    """Return ``array`` as (N, H, W, C) pixels in 0..255 (uint8 kept, floats as float32).

    Float images with every value in [0, 1] are taken to be already divided by
    255 and are multiplied back, so every scale formula sees pixel units.

    Args:
        array: (N, H, W) or (N, H, W, C) with C = 1 or 3; uint8, another integer type, or float.
        where: file and array name for error messages, e.g. ``"data.npz: x_train"``.

    Returns:
        A (N, H, W, C) uint8 or float32 array.

    Raises:
        ConvscopeError: wrong rank, channel count, dtype, empty, NaN/Inf or values outside 0..255.
    """
    array = np.asarray(array)
    shape_fix = "save images as (N, H, W) or (N, H, W, C) with C = 1 (grayscale) or 3 (RGB)"
    if array.ndim == 3:
        array = array[..., np.newaxis]
    if array.ndim != 4 or array.shape[-1] not in (1, 3):
        raise ConvscopeError(f"{where}: images have shape {array.shape}; {shape_fix}")
    if min(array.shape[:3]) == 0:
        raise ConvscopeError(f"{where}: no images (shape {array.shape}); expected at least one image of at least 1x1 pixels")
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind in "iu":
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ConvscopeError(f"{where}: integer pixels range {low}..{high}; expected 0..255; rescale the images to 0..255 (uint8)")
        return array.astype(np.uint8)
    if array.dtype.kind != "f":
        raise ConvscopeError(f"{where}: images have dtype {array.dtype}; expected uint8 pixels 0..255 or floats in 0..1 or 0..255")
    array = array.astype(np.float32, copy=False)
    finite = np.isfinite(array)
    if not finite.all():
        index = np.unravel_index(int(np.argmin(finite)), array.shape)
        raise ConvscopeError(f"{where}: NaN or Inf pixel at index {tuple(int(i) for i in index)}; expected finite pixel values; fix or drop that image")
    low, high = float(array.min()), float(array.max())
    if low < 0.0 or high > 255.0:
        raise ConvscopeError(
            f"{where}: float pixels range {low:g}..{high:g}; expected 0..1 or 0..255 (unscaled pixels); "
            "save the images before normalising them, convscope applies the scale itself"
        )
    if high <= 1.0:
        array = array * np.float32(255.0)
    return array


def check_labels(array: np.ndarray, where: str, count: int, num_classes: int | None = None) -> np.ndarray:
    """Return ``array`` as int64 class indices, one per image.

    Args:
        array: (N,) integer labels, or (N, K) one-hot rows.
        where: file and array name for error messages.
        count: the number of images the labels belong to.
        num_classes: labels must lie in 0..num_classes-1; None: only >= 0.

    Returns:
        A (N,) int64 array.

    Raises:
        ConvscopeError: wrong shape or length, non-integer values, or a label out of range.
    """
    array = np.asarray(array)
    if array.ndim == 2 and array.shape[0] == count and array.dtype.kind in "iufb" and array.size:
        if not np.isin(array, (0, 1)).all() or not (array.sum(axis=1) == 1).all():
            raise ConvscopeError(f"{where}: 2-D labels {array.shape} are not one-hot rows; expected class indices (N,) or one-hot (N, K)")
        array = array.argmax(axis=1)
    if array.ndim != 1:
        raise ConvscopeError(f"{where}: labels have shape {array.shape}; expected class indices of shape ({count},)")
    if len(array) != count:
        raise ConvscopeError(f"{where}: {len(array)} labels for {count} images; expected one label per image; check that the files belong together")
    if array.dtype.kind == "f":
        whole = np.isfinite(array) & (array == np.round(array))
        if not whole.all():
            index = int(np.argmin(whole))
            raise ConvscopeError(f"{where}: label {array[index]!r} at index {index} is not a whole number; expected class indices 0, 1, 2, ...")
    elif array.dtype.kind not in "iub":
        raise ConvscopeError(f"{where}: labels have dtype {array.dtype}; expected integer class indices")
    labels = array.astype(np.int64)
    if labels.size:
        bad = (labels < 0) if num_classes is None else (labels < 0) | (labels >= num_classes)
        if bad.any():
            index = int(np.argmax(bad))
            expected = "0 or more" if num_classes is None else f"0..{num_classes - 1} ({num_classes} classes)"
            raise ConvscopeError(f"{where}: label {labels[index]} at index {index} is out of range; expected {expected}; fix the label file or the class list")
    return labels


def default_class_names(*label_arrays: np.ndarray, where: str = "labels") -> list[str]:
    """Names "0".."K-1" where K is one more than the largest label.

    Raises:
        ConvscopeError: the largest label implies more than MAX_CLASSES classes (a damaged
            or crafted file; listing 2**40 names would exhaust memory).
    """
    largest = max((int(labels.max()) for labels in label_arrays if labels.size), default=-1)
    if largest >= MAX_CLASSES:
        raise ConvscopeError(
            f"{where}: largest label {largest} implies {largest + 1} classes; expected at most {MAX_CLASSES}; "
            "fix the labels, or store class_names beside them"
        )
    return [str(index) for index in range(largest + 1)]


def unsafe_member_problem(name: str, size: int, max_bytes: int, link: str | None = None, special: bool = False) -> str | None:
    """Why an archive member must not be read, or None.

    Refused: absolute or ``..`` paths (they escape a folder when extracted),
    links, devices and FIFOs, and a declared size over ``max_bytes`` (an archive
    bomb states its size in the header, before any data is read).

    Args:
        name: the member's path inside the archive.
        size: its declared (uncompressed) size in bytes.
        max_bytes: the largest size a genuine member can have.
        link: the link target if the member is a link ("" when unknown), else None.
        special: the member is a device, FIFO or other non-regular file.

    Example:
        >>> unsafe_member_problem("../escape", 10, 1000)
        "a '..' path component"
    """
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    if ".." in parts:
        return "a '..' path component"
    if link is not None:
        return f"a link (to {link!r})" if link else "a link"
    if special:
        return "a device, FIFO or other special file"
    if size > max_bytes:
        return f"a declared size of {size} bytes (limit {max_bytes})"
    return None


def check_zip_members(archive: zipfile.ZipFile, path, max_bytes: int, fix: str) -> None:
    """Refuse a zip (.npz, .keras) with any unsafe member (see ``unsafe_member_problem``) before reading one.

    Raises:
        ConvscopeError: naming the archive, the member and the problem.
    """
    for info in archive.infolist():
        file_type = stat.S_IFMT(info.external_attr >> 16)  # Unix mode bits; 0 when the zip was made without them
        problem = unsafe_member_problem(
            info.filename,
            info.file_size,
            max_bytes,
            link="" if file_type == stat.S_IFLNK else None,
            special=file_type not in (0, stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK),
        )
        if problem:
            raise ConvscopeError(f"{path}: member {info.filename!r} has {problem}; refused before reading anything; {fix}")


def describe_error(error: BaseException | str) -> str:
    """A library exception as one short line ("Type: message"), for the reason part of a ConvscopeError."""
    text = " ".join(str(error).split())  # some messages (tarfile's) span several lines; the CLI prints one
    if len(text) > 200:
        text = text[:197] + "..."
    if not isinstance(error, BaseException):
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
