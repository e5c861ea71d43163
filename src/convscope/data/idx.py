"""IDX files: the format of MNIST, Fashion-MNIST and KMNIST.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number
of dimensions), one big-endian uint32 per dimension, then the values.
Files may be gzipped; that is detected from the content (bytes 1f 8b), not the name.

    from convscope.data.idx import read_idx, find_idx_files, load_idx_dataset
    images = read_idx("train-images-idx3-ubyte.gz", kind="images")   # (60000, 28, 28) uint8
    files = find_idx_files(Path("data/mnist"))                        # None unless all four are there
    raw = load_idx_dataset(files, class_names=[str(d) for d in range(10)])
"""

from __future__ import annotations

import gzip
import struct
import zlib
from math import prod
from pathlib import Path

import numpy as np

from convscope.data.raw import RawImages, check_images, check_labels, describe_error
from convscope.errors import ConvscopeError
from convscope.fileio import write_bytes

# type code -> big-endian dtype, from the format's definition (yann.lecun.com/exdb/mnist)
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
EXPECTED_MAGIC = {"images": 0x00000803, "labels": 0x00000801}  # uint8, 3 or 1 dimensions
MAX_DECOMPRESSED_BYTES = 2 << 30  # 2 GiB; full EMNIST, the largest IDX set, is 0.7 GB
FIX = "re-download the file or point --data-dir at the original IDX files"

# The four files of an IDX dataset, and the names each may have on disk.
IDX_PARTS = {
    "train_images": ("train", "images", 3),
    "train_labels": ("train", "labels", 1),
    "test_images": ("t10k", "images", 3),
    "test_labels": ("t10k", "labels", 1),
}


def idx_file_names(part: str) -> list[str]:
    """Accepted names of one part: raw or gzipped, "-idx3-ubyte" or ".idx3-ubyte"."""
    prefix, kind, ndim = IDX_PARTS[part]
    stems = [f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte"]
    return stems + [stem + ".gz" for stem in stems]


def find_idx_files(folder: Path) -> dict[str, Path] | None:
    """Return part -> path for the four IDX files in ``folder``, or None if any is missing."""
    found = {}
    for part in IDX_PARTS:
        paths = [folder / name for name in idx_file_names(part) if (folder / name).is_file()]
        if not paths:
            return None
        found[part] = paths[0]
    return found


def _gunzip(data: bytes, path: Path) -> bytes:
    """Decompress gzip ``data`` (possibly several members) with a size limit."""
    pieces, total = [], 0
    while data:
        if data[:2] != b"\x1f\x8b":
            if data.strip(b"\x00"):  # gzip itself tolerates trailing zero padding, nothing else
                raise ConvscopeError(f"{path}: {len(data)} bytes of non-gzip data after the compressed stream; expected a plain .gz file; {FIX}")
            break
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            piece = decompressor.decompress(data, MAX_DECOMPRESSED_BYTES + 1 - total)
        except zlib.error as error:
            raise ConvscopeError(f"{path}: corrupt gzip data ({describe_error(error)}); expected a valid .gz file; {FIX}") from None
        total += len(piece)
        if total > MAX_DECOMPRESSED_BYTES:
            raise ConvscopeError(f"{path}: decompresses to more than {MAX_DECOMPRESSED_BYTES >> 30} GiB; expected an IDX image set; {FIX}")
        if not decompressor.eof:
            raise ConvscopeError(f"{path}: gzip stream ends early (file truncated); expected a complete .gz file; {FIX}")
        pieces.append(piece)
        data = decompressor.unused_data
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def read_idx(path: str | Path, kind: str) -> np.ndarray:
    """Read one IDX file, gzipped or not, and check it against its header.

    Args:
        path: the file.
        kind: "images" (3 dimensions: N, height, width) or "labels" (1 dimension).

    Returns:
        A read-only array of the declared type (uint8 for the official files).

    Raises:
        ConvscopeError: unreadable file, wrong magic number, data shorter or longer
            than the header declares, or NaN/Inf in float data.

    Example:
        >>> read_idx("t10k-labels-idx1-ubyte.gz", kind="labels").shape
        (10000,)
    """
    path = Path(path)
    expected = EXPECTED_MAGIC[kind]
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConvscopeError(f"{path}: cannot read ({describe_error(error)}); expected a readable IDX {kind} file") from None
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data, path)
    ndim = expected & 0xFF
    header_bytes = 4 + 4 * ndim
    if len(data) < 4:
        raise ConvscopeError(f"{path}: {len(data)} bytes, too short for an IDX header; expected magic 0x{expected:08x}; {FIX}")
    magic = int.from_bytes(data[:4], "big")
    if data[:2] != b"\x00\x00" or data[2] not in IDX_TYPES or data[3] != ndim:
        raise ConvscopeError(
            f"{path}: IDX magic number 0x{magic:08x}; expected 0x{expected:08x} (IDX {kind}, {ndim} dimension{'s' if ndim > 1 else ''}); "
            f"check that this is the {kind} file and {FIX}"
        )
    if len(data) < header_bytes:
        raise ConvscopeError(f"{path}: header cut short at {len(data)} bytes; expected {header_bytes} header bytes; the file is truncated; {FIX}")
    dims = struct.unpack(f">{ndim}I", data[4:header_bytes])
    dtype = np.dtype(IDX_TYPES[data[2]])
    declared = prod(dims) * dtype.itemsize
    held = len(data) - header_bytes
    if held != declared:
        problem = "the file is truncated" if held < declared else "the file has extra bytes at the end"
        raise ConvscopeError(
            f"{path}: header declares {' x '.join(map(str, dims))} {dtype.name} values = {declared} bytes but the file holds {held}; "
            f"{problem}; {FIX}"
        )
    array = np.frombuffer(data, dtype=dtype, count=prod(dims), offset=header_bytes).reshape(dims)
    if dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            index = tuple(int(i) for i in np.unravel_index(int(np.argmin(finite)), dims))
            raise ConvscopeError(f"{path}: NaN or Inf at index {index}; expected finite values; {FIX}")
    if dtype.byteorder == ">" and dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))
    return array


def write_idx(path: str | Path, array: np.ndarray, compress: bool = True) -> Path:
    """Write a uint8 array as an IDX file (gzipped, reproducibly, when ``compress``).

    The gzip header carries no timestamp or file name, so the same array gives
    the same bytes; scripts/make_mnist_sample.py relies on that.

    Example:
        >>> write_idx("t10k-labels-idx1-ubyte.gz", labels)
    """
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    if compress:
        data = gzip.compress(data, compresslevel=9, mtime=0)
    return write_bytes(path, data)


def load_idx_dataset(files: dict[str, Path], class_names: list[str], source: str | None = None) -> RawImages:
    """Read the four IDX files of a dataset and check that they belong together.

    Args:
        files: part -> path, as returned by ``find_idx_files``.
        class_names: one name per label value.
        source: what to record as the source; default: the folder of the files.

    Returns:
        RawImages with (N, H, W, 1) images.
    """
    arrays = {}
    for split in ("train", "test"):
        images_path, labels_path = files[f"{split}_images"], files[f"{split}_labels"]
        images = check_images(read_idx(images_path, "images"), where=str(images_path))
        labels_raw = read_idx(labels_path, "labels")
        if len(labels_raw) != len(images):
            raise ConvscopeError(
                f"{labels_path}: {len(labels_raw)} labels but {images_path.name} holds {len(images)} images; "
                "expected one label per image; the files come from different datasets or one is damaged; re-download both"
            )
        arrays[split] = images, check_labels(labels_raw, where=str(labels_path), count=len(images), num_classes=len(class_names))
    if arrays["train"][0].shape[1:] != arrays["test"][0].shape[1:]:
        raise ConvscopeError(
            f"{files['test_images']}: test images are {arrays['test'][0].shape[1:3]} pixels but training images are "
            f"{arrays['train'][0].shape[1:3]}; expected one image size; use the files of one dataset"
        )
    return RawImages(
        x_train=arrays["train"][0],
        y_train=arrays["train"][1],
        x_test=arrays["test"][0],
        y_test=arrays["test"][1],
        class_names=list(class_names),
        source=source or str(files["train_images"].parent),
        notes={"files": [str(path) for path in files.values()]},
    )
