"""Datasets saved as one NumPy .npz file.

The file holds ``x_train, y_train, x_test, y_test`` and, optionally,
``class_names`` (an array of strings). Images are (N, H, W) or (N, H, W, C),
uint8 pixels or floats; labels are class indices or one-hot rows. The file is
opened with ``allow_pickle=False``: an object array cannot run code, it is refused.
A file over 512 MB whose images are uncompressed uint8 is read in place, batch by batch
(npzmap.py), instead of loaded whole.

    import numpy as np
    np.savez("digits.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    raw = load_npz_dataset(Path("digits.npz"))          # or: convscope run --dataset npz:digits.npz
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from convscope.data.npzmap import should_stream, stored_image_arrays
from convscope.data.raw import RawImages, check_images, check_labels, check_zip_members, default_class_names, describe_error
from convscope.data.stream import StoredPixels
from convscope.errors import ConvscopeError

REQUIRED = ("x_train", "y_train", "x_test", "y_test")
MAX_ARRAY_BYTES = 8 << 30  # 8 GiB uncompressed per array; a zip bomb declares more and is refused before reading


def _read_array(archive, path: Path, key: str) -> np.ndarray:
    """One array of the archive, with zip/npy errors turned into ConvscopeError."""
    try:
        return archive[key]
    except ValueError as error:
        if "allow_pickle" in str(error) or "object" in str(error).lower():
            raise ConvscopeError(
                f"{path}: array '{key}' holds Python objects (dtype object); refused because loading it could run code; "
                "save numeric arrays (uint8 or float images, integer labels, class_names as a string array)"
            ) from None
        raise ConvscopeError(f"{path}: array '{key}' is unreadable ({describe_error(error)}); re-save it with numpy.savez") from None
    except Exception as error:  # zipfile, zlib and npy-header errors all mean a damaged file
        raise ConvscopeError(f"{path}: array '{key}' is unreadable ({describe_error(error)}); re-save it with numpy.savez") from None


def load_npz_dataset(path: Path, class_names: list[str] | None = None, source: str | None = None, stream: str = "off") -> RawImages:
    """Load x_train, y_train, x_test, y_test (and optional class_names) from an .npz file.

    Args:
        path: the .npz file.
        class_names: names to use when the file has none (default: "0".."K-1").
        source: what to record as the source (default: the path).
        stream: on, or auto for a file over ``npzmap.NPZ_STREAM_BYTES``: uint8 images stored
            uncompressed (numpy.savez) are read in place as training asks for them (StoredPixels).

    Returns:
        RawImages with (N, H, W, C) images.

    Raises:
        ConvscopeError: missing file or array, object array, bad shapes, dtypes or labels.

    Example:
        >>> raw = load_npz_dataset(Path("mnist.npz"), class_names=[str(d) for d in range(10)])
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConvscopeError(f"{path}: npz file not found; pass npz:PATH with the path of an .npz holding {', '.join(REQUIRED)}")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:  # np.load raises ValueError, OSError, EOFError or zipfile errors for a bad file
        raise ConvscopeError(f"{path}: not a readable .npz file ({describe_error(error)}); save the arrays with numpy.savez") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ConvscopeError(f"{path}: holds a single array, not an .npz archive; save {', '.join(REQUIRED)} with numpy.savez")
    with archive:
        check_zip_members(archive.zip, path, MAX_ARRAY_BYTES, fix="save the arrays with numpy.savez (split a dataset over 8 GiB)")
        missing = [key for key in REQUIRED if key not in archive.files]
        if missing:
            raise ConvscopeError(
                f"{path}: missing array(s) {', '.join(missing)} (found: {', '.join(archive.files) or 'none'}); "
                f"expected {', '.join(REQUIRED)}; save them with numpy.savez(path, x_train=..., ...)"
            )
        stored = stored_image_arrays(path, ["x_train", "x_test"]) if should_stream(path, stream) else None
        if stored is not None:  # uint8 pixels need no value check; nothing is read now
            x_train, x_test = (StoredPixels(stored[key], np.arange(stored[key].shape[0])) for key in ("x_train", "x_test"))
            notes = {"stream": "on", "cache": "none", "read": "in place (uncompressed uint8 members of the .npz)"}
        else:
            if stream == "on":
                warnings.warn(f"{path}: x_train/x_test are compressed or not uint8 images, so they are loaded whole; save them with numpy.savez as uint8 to stream", stacklevel=3)
            x_train = check_images(_read_array(archive, path, "x_train"), where=f"{path}: x_train")
            x_test = check_images(_read_array(archive, path, "x_test"), where=f"{path}: x_test")
            notes = {"stream": "off", "cache": "none"} if stream == "on" else {}
        if x_train.shape[1:] != x_test.shape[1:]:
            raise ConvscopeError(f"{path}: x_test images are {x_test.shape[1:]} but x_train images are {x_train.shape[1:]}; expected one (H, W, C) for both")
        if "class_names" in archive.files:
            names = _read_array(archive, path, "class_names")
            if names.ndim != 1 or names.dtype.kind not in "US" or len(names) == 0:
                raise ConvscopeError(f"{path}: class_names has shape {names.shape} and dtype {names.dtype}; expected a 1-D array of strings")
            class_names = [name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name) for name in names.tolist()]
        num_classes = len(class_names) if class_names else None
        y_train = check_labels(_read_array(archive, path, "y_train"), where=f"{path}: y_train", count=len(x_train), num_classes=num_classes)
        y_test = check_labels(_read_array(archive, path, "y_test"), where=f"{path}: y_test", count=len(x_test), num_classes=num_classes)
    return RawImages(
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        class_names=class_names or default_class_names(y_train, y_test, where=f"{path}: y_train, y_test"),
        source=source or str(path),
        notes=notes,
    )
