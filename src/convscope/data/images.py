"""Image files to arrays: the one place convscope decodes images.

Files are recognised by their content (PNG, JPEG, BMP, GIF, WebP), never by
their extension. Each image is converted to grayscale or RGB, resized to one
(height, width) and written into a preallocated uint8 array, so decoding a large
folder holds one decoded image at a time.

    from convscope.data.images import load_images
    pixels = load_images(["cat.jpg", "dog.png"], image_size=(32, 32), color_mode="rgb")   # (2, 32, 32, 3) uint8
    pixels = load_images(paths)        # size and mode of the first image
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image, UnidentifiedImageError

from convscope.data.raw import describe_error
from convscope.errors import ConvscopeError

IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
FORMATS_TEXT = "PNG, JPEG, BMP, GIF or WebP"
# Refuse decompression bombs: 64 megapixels (192 MB as RGB) admits a 50 MP camera
# photo; a few-KB PNG declaring 100000 x 100000 pixels is refused before decoding.
MAX_IMAGE_PIXELS = 64_000_000
GRAYSCALE_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


class ImageTooLargeError(ConvscopeError):
    """An image declaring more pixels than allowed (a possible decompression bomb)."""


@dataclass(frozen=True)
class ImageHeader:
    """What an image file declares, read without decoding its pixels."""

    path: Path
    format: str  # PNG, JPEG, BMP, GIF or WEBP
    width: int
    height: int
    mode: str  # Pillow mode: L, RGB, RGBA, P, ...

    @property
    def color_mode(self) -> str:
        """The color_mode this image suggests: grayscale or rgb."""
        return "grayscale" if self.mode in GRAYSCALE_MODES else "rgb"


def _open(path, label=None, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Open ``path`` (or a file object) by content; raise UnidentifiedImageError for a non-image, ConvscopeError for a bomb.

    ``label`` names the image in messages (default: ``path``).
    """
    label = path if label is None else label
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(path, formats=IMAGE_FORMATS)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
            raise ImageTooLargeError(f"{label}: refused as a decompression bomb ({describe_error(error)}); expected an image under {max_pixels} pixels; resize it first") from None
    if image.width * image.height > max_pixels:
        image.close()
        raise ImageTooLargeError(
            f"{label}: declares {image.width} x {image.height} pixels; refused as a possible decompression bomb "
            f"(limit {max_pixels} pixels); resize the image first"
        )
    return image


def read_header(path: str | os.PathLike) -> ImageHeader | None:
    """Return the header of an image file, or None if the content is not a supported image.

    Raises:
        ConvscopeError: the file cannot be read, or declares too many pixels.
    """
    path = Path(path)
    try:
        with _open(path) as image:
            return ImageHeader(path, image.format, image.width, image.height, image.mode)
    except UnidentifiedImageError:
        return None
    except OSError as error:
        raise ConvscopeError(f"{path}: cannot read ({describe_error(error)}); expected a complete image file; re-export it or remove it") from None


def _to_mode(image: Image.Image, color_mode: str) -> Image.Image:
    """Convert any Pillow mode to L (grayscale) or RGB."""
    if image.mode.startswith("I") and image.mode != "I;8":
        # 16-bit PNGs: keep the top 8 bits (Pillow's convert("L") would clip at 255).
        high_bits = np.right_shift(np.asarray(image).astype(np.uint32), 8)
        image = Image.fromarray(np.clip(high_bits, 0, 255).astype(np.uint8))
    elif image.mode == "P":
        image = image.convert("RGBA")  # palette transparency is only resolved this way
    return image.convert("L" if color_mode == "grayscale" else "RGB")


def _decode(source, height: int, width: int, color_mode: str, label=None, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray | None:
    """Decode one image (a path or a file object) to (height, width, channels) uint8; None if the content is not a supported image."""
    path = source if label is None else label  # how messages name it
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = _open(source, label, max_pixels)
        except UnidentifiedImageError:
            return None
        except OSError as error:
            raise ConvscopeError(f"{path}: cannot read ({describe_error(error)}); expected a complete image file; re-export it or remove it") from None
        try:
            with image:
                converted = _to_mode(image, color_mode)
                if converted.size != (width, height):
                    converted = converted.resize((width, height), Image.Resampling.BILINEAR)
                pixels = np.asarray(converted)
        except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, EOFError ... for damaged data
            raise ConvscopeError(
                f"{path}: cannot decode this {image.format} image ({describe_error(error)}); "
                "the file is truncated or corrupt; re-export it or remove it"
            ) from None
    return pixels.reshape(height, width, -1)


def decode_images(paths: list[Path], image_size: tuple[int, int], color_mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode files into one preallocated uint8 array, one image in memory at a time.

    Args:
        paths: the files.
        image_size: (height, width) every image is resized to.
        color_mode: "grayscale" or "rgb".

    Returns:
        (pixels, kept): (M, height, width, C) uint8 and the indices into ``paths`` of its M images.
    """
    if color_mode not in ("grayscale", "rgb"):
        raise ConvscopeError(f"color_mode={color_mode!r}; expected grayscale or rgb")
    height, width = image_size
    if height <= 0 or width <= 0:
        raise ConvscopeError(f"image_size=({height}, {width}); expected two positive sizes (height, width)")
    pixels = np.empty((len(paths), height, width, 1 if color_mode == "grayscale" else 3), dtype=np.uint8)
    kept = []
    for index, path in enumerate(paths):
        image = _decode(path, height, width, color_mode)
        if image is None:
            raise ConvscopeError(f"{path}: not a {FORMATS_TEXT} image (judged by content); pass an image file")
        pixels[len(kept)] = image
        kept.append(index)
    return pixels[: len(kept)], np.asarray(kept, dtype=np.int64)


def decode_image_bytes(
    data: bytes, image_size: tuple[int, int], color_mode: str, label: str = "upload", max_pixels: int = MAX_IMAGE_PIXELS
) -> np.ndarray:
    """One image held in memory (an upload), decoded and converted exactly as ``load_images`` decodes a file.

    Args:
        data: the file's bytes.
        image_size: (height, width) it is resized to.
        color_mode: "grayscale" or "rgb".
        label: how messages name it.
        max_pixels: images declaring more pixels are refused before decoding (at most ``MAX_IMAGE_PIXELS``).

    Returns:
        (1, height, width, C) uint8.

    Raises:
        ConvscopeError: not a supported image, a decompression bomb, truncated or corrupt data.

    Example:
        >>> decode_image_bytes(Path("seven.png").read_bytes(), (28, 28), "grayscale").shape
        (1, 28, 28, 1)
    """
    image = _decode(io.BytesIO(data), *image_size, color_mode, label, min(max_pixels, MAX_IMAGE_PIXELS))
    if image is None:
        raise ConvscopeError(f"{label}: not a {FORMATS_TEXT} image (judged by content); send an image file")
    return image[np.newaxis]


def load_images(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    image_size: tuple[int, int] | None = None,
    color_mode: str | None = None,
) -> np.ndarray:
    """Decode image files into one uint8 array.

    Args:
        paths: one path or several.
        image_size: (height, width) every image is resized to; None: the first image's size.
        color_mode: "grayscale" or "rgb"; None: grayscale if the first image is grayscale, else rgb.

    Returns:
        (N, height, width, C) uint8 with C = 1 (grayscale) or 3 (rgb).

    Raises:
        ConvscopeError: missing file, not a supported image, decompression bomb, truncated or corrupt data.

    Example:
        >>> load_images(["seven.png"], image_size=(28, 28), color_mode="grayscale").shape
        (1, 28, 28, 1)
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [Path(path) for path in paths]
    if not paths:
        raise ConvscopeError("load_images: no image paths given; pass at least one image file")
    for path in paths:
        if not path.is_file():
            raise ConvscopeError(f"{path}: image file not found; check the path")
    if image_size is None or color_mode is None:
        first = read_header(paths[0])
        if first is None:
            raise ConvscopeError(f"{paths[0]}: not a {FORMATS_TEXT} image (judged by content); pass an image file")
        image_size = image_size or (first.height, first.width)
        color_mode = color_mode or first.color_mode
    return decode_images(paths, tuple(image_size), color_mode)[0]
