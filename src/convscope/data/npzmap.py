"""Large .npz files read in place: uint8 images stored uncompressed are never loaded whole.

``numpy.savez`` stores each array uncompressed (zip method "stored"), so an image array
is one contiguous run of bytes inside the file: after the member's zip header and its
.npy header, image ``i`` is ``H*W*C`` bytes at a fixed offset. ``StoredArray`` reads the
rows it is asked for there with ``os.pread`` (an mmap would do the same, but pages read
through a map stay in the process's resident memory until the kernel reclaims them;
pread leaves them in the OS page cache). ``numpy.savez_compressed`` files cannot be read
this way and are loaded whole, as small files always are.

    arrays = stored_image_arrays(Path("big.npz"), ["x_train", "x_test"])
    pixels = arrays["x_train"].read(np.array([0, 5]))       # (2, H, W, C) uint8
"""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import numpy as np

from convscope.errors import ConvscopeError

NPZ_STREAM_BYTES = 512 << 20  # .npz files larger than this stream (data.stream auto)
LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, then the name and extra-field lengths at offset 26


class StoredArray:
    """A C-ordered uint8 (N, H, W[, C]) array at ``offset`` in ``path``, read by rows."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...]):
        self.path, self.offset = path, offset
        self.shape = shape if len(shape) == 4 else (*shape, 1)  # (N, H, W) -> one channel
        self.image_bytes = int(np.prod(self.shape[1:]))
        self.fd = os.open(path, os.O_RDONLY)

    def read(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.uint8)
        for place, row in enumerate(rows):
            data = os.pread(self.fd, self.image_bytes, self.offset + int(row) * self.image_bytes)
            if len(data) != self.image_bytes:
                raise ConvscopeError(f"{self.path}: image {row} is cut short (the file is truncated); re-save it with numpy.savez")
            out[place] = np.frombuffer(data, dtype=np.uint8).reshape(self.shape[1:])
        return out

    def __del__(self):
        try:
            os.close(self.fd)
        except Exception:  # interpreter shutdown, or never opened
            pass


def _member_array(handle, archive: zipfile.ZipFile, key: str) -> tuple[int, tuple[int, ...]] | None:
    """(data offset, shape) of member ``key``.npy when it is stored uncompressed as C-ordered uint8 images, else None."""
    try:
        info = archive.getinfo(f"{key}.npy")
    except KeyError:
        return None
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    handle.seek(info.header_offset)
    signature, name_length, extra_length = LOCAL_HEADER.unpack(handle.read(LOCAL_HEADER.size))
    if signature != b"PK\x03\x04":
        return None
    handle.seek(info.header_offset + LOCAL_HEADER.size + name_length + extra_length)
    try:
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(handle)
    except ValueError:
        return None
    if fortran_order or dtype != np.uint8 or len(shape) not in (3, 4) or (len(shape) == 4 and shape[-1] not in (1, 3)) or min(shape) == 0:
        return None  # left to the ordinary loader, which checks it and says what is wrong
    offset = handle.tell()
    if offset + int(np.prod(shape)) > info.header_offset + LOCAL_HEADER.size + name_length + extra_length + info.compress_size:
        return None
    return offset, tuple(int(size) for size in shape)


def stored_image_arrays(path: Path, keys: list[str]) -> dict[str, StoredArray] | None:
    """StoredArrays for every one of ``keys``, or None when any of them cannot be read in place."""
    with open(path, "rb") as handle, zipfile.ZipFile(handle) as archive:
        found = {key: _member_array(handle, archive, key) for key in keys}
    if any(place is None for place in found.values()):
        return None
    return {key: StoredArray(path, *place) for key, place in found.items()}


def should_stream(path: Path, stream: str) -> bool:
    """data.stream for an .npz: on, or auto and larger than NPZ_STREAM_BYTES."""
    return stream == "on" or (stream == "auto" and path.stat().st_size > NPZ_STREAM_BYTES)
