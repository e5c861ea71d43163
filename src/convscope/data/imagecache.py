"""Image files decoded on demand, kept as uint8 in memory, in a file on disk, or not at all.

A folder dataset that streams holds only its file list; ``ImageFiles.read`` decodes
the rows asked for (with ``images._decode``, the in-memory loader's own decode, so
the pixels are the same) and keeps them in the cache, so that every later epoch reads
uint8 pixels instead of decoding again:

    memory  one uint8 array, filled as images are first decoded (pages are touched only
            when filled: nothing is held for images not yet read)
    disk    one uint8 file of N x H x W x C bytes in the user cache
            (``$CONVSCOPE_CACHE/images/``), written and read with pwrite/pread rather
            than mapped, so its pages stay in the OS page cache and out of the process's
            memory. It is written as ``.partial-<pid>.<n>`` and renamed once every image is in
            it; its name hashes the folder, image size, color mode and every file's path,
            size and modification time, so a changed folder never reads stale pixels. A
            completed file is reused by later runs; older files of the same folder are
            removed then, and so are partial files of processes no longer running.
    none    decode every time

    files = ImageFiles(paths, (64, 64), "rgb", cache="disk", key_parts=[...], name="flowers")
    pixels = files.read(np.array([3, 1, 4]))       # (3, 64, 64, 3) uint8
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import threading
import time
from pathlib import Path

import numpy as np

from convscope.config import CACHES
from convscope.data.download import cache_root
from convscope.data.images import FORMATS_TEXT, _decode
from convscope.errors import ConvscopeError
from convscope.fileio import write_json

# --cache auto: memory when every decoded image together (uint8) takes at most this, else disk.
# 512 MB holds 40,000 images of 64x64 RGB; a 100,000-image folder (1.2 GB) goes to disk.
CACHE_MEMORY_BYTES = 512 << 20
PROGRESS_SECONDS = 0.2

results = logging.getLogger("convscope.results")
progress = logging.getLogger("convscope.progress")


def choose_cache(requested: str, total_bytes: int) -> str:
    """The cache a run uses: ``requested``, or for auto memory up to CACHE_MEMORY_BYTES of decoded images, else disk."""
    if requested not in CACHES:
        raise ConvscopeError(f"cache={requested!r}; expected one of {', '.join(CACHES)}")
    if requested != "auto":
        return requested
    return "memory" if total_bytes <= CACHE_MEMORY_BYTES else "disk"


def cache_folder() -> Path:
    return cache_root() / "images"


class ImageFiles:
    """uint8 pixels of a fixed list of image files, decoded when first read and cached."""

    def __init__(self, paths: list[Path], image_size: tuple[int, int], color_mode: str, cache: str, key_parts: list[str], name: str):
        self.paths = [str(path) for path in paths]
        height, width = image_size
        self.shape = (len(self.paths), height, width, 1 if color_mode == "grayscale" else 3)
        self.image_size, self.color_mode, self.cache = (height, width), color_mode, cache
        self.image_bytes = int(np.prod(self.shape[1:]))
        self.filled = np.zeros(len(self.paths), dtype=bool)
        self.lock = threading.Lock()
        self.decoded, self.decode_started, self.drawn = 0, None, 0.0
        self.memory = np.empty(self.shape, dtype=np.uint8) if cache == "memory" else None
        self.fd = None
        if cache == "disk":
            self._open_disk(key_parts, name)

    # ------------------------------------------------------------------ disk cache

    def _open_disk(self, key_parts: list[str], name: str) -> None:
        digest = hashlib.sha256("\n".join([*key_parts, repr(self.shape)]).encode()).hexdigest()[:16]
        folder_tag = hashlib.sha256(name.encode()).hexdigest()[:8]
        stem = f"{Path(name).name or 'folder'}-{folder_tag}"
        folder = cache_folder()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConvscopeError(f"{folder}: cannot create the image cache folder ({error.strerror}); pass --cache memory or none, or set CONVSCOPE_CACHE") from None
        self.final_path = folder / f"{stem}-{digest}.u8"
        self.stem, self.folder = stem, folder
        size = self.shape[0] * self.image_bytes
        if self.final_path.is_file() and self.final_path.stat().st_size == size and self._meta_matches():
            self.fd = os.open(self.final_path, os.O_RDONLY)
            self.filled[:] = True
            self.complete = True
            return
        self._remove_abandoned()
        # pid (to find abandoned files) and a number: two loads in one process never share a file
        self.partial_path = folder / f"{stem}-{digest}.u8.partial-{os.getpid()}.{next(_opened)}"
        try:
            self.fd = os.open(self.partial_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            os.ftruncate(self.fd, size)  # sparse: the disk fills as images are written
        except OSError as error:
            raise ConvscopeError(f"{self.partial_path}: cannot create the image cache ({error.strerror}); free disk space, pass --cache none, or set CONVSCOPE_CACHE") from None
        self.complete = False

    def _meta_path(self) -> Path:
        return self.final_path.with_suffix(".json")

    def _meta_matches(self) -> bool:
        try:
            meta = json.loads(self._meta_path().read_text())
        except (OSError, ValueError):
            return False
        return meta.get("shape") == list(self.shape) and meta.get("files") == len(self.paths)

    def _remove_abandoned(self) -> None:
        """Partial files of processes that no longer run; they can never be completed."""
        for path in self.folder.glob(f"{self.stem}-*.u8.partial-*"):
            pid = path.name.rsplit("-", 1)[-1].split(".")[0]
            if pid.isdigit() and not _running(int(pid)):
                path.unlink(missing_ok=True)

    def _finish_disk(self) -> None:
        """Every image is in the partial file: rename it into place and drop older versions of this folder."""
        os.fsync(self.fd)
        write_json(self._meta_path(), {"shape": list(self.shape), "files": len(self.paths), "first": self.paths[0] if self.paths else None})
        os.replace(self.partial_path, self.final_path)
        self.complete = True
        for path in self.folder.glob(f"{self.stem}-*.u8"):
            if path != self.final_path:
                path.unlink(missing_ok=True)
                path.with_suffix(".json").unlink(missing_ok=True)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            if not self.complete:
                Path(self.partial_path).unlink(missing_ok=True)

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: modules may be gone
            pass

    # ------------------------------------------------------------------ reading

    def _decode_one(self, row: int) -> np.ndarray:
        pixels = _decode(self.paths[row], *self.image_size, self.color_mode)
        if pixels is None:
            raise ConvscopeError(f"{self.paths[row]}: no longer a {FORMATS_TEXT} image (it changed since the folder was scanned); restore or remove it")
        return pixels

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Pixels of ``rows`` (indices into the file list), (len(rows), H, W, C) uint8, in that order."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if self.memory is not None and self.filled[rows].all():
            return self.memory[rows]  # every epoch after the first: one gather
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.uint8)
        newly = 0
        for place, row in enumerate(rows):
            if self.filled[row]:
                if self.memory is not None:
                    out[place] = self.memory[row]
                else:
                    out[place] = np.frombuffer(os.pread(self.fd, self.image_bytes, int(row) * self.image_bytes), dtype=np.uint8).reshape(self.shape[1:])
                continue
            out[place] = pixels = self._decode_one(int(row))
            if self.memory is not None:
                self.memory[row] = pixels
            elif self.fd is not None:
                try:
                    os.pwrite(self.fd, pixels.tobytes(), int(row) * self.image_bytes)
                except OSError as error:
                    raise ConvscopeError(
                        f"{self.partial_path}: cannot write the image cache ({error.strerror}); "
                        "free disk space, pass --cache memory or none, or set CONVSCOPE_CACHE to another disk"
                    ) from None
            if self.cache != "none":
                self.filled[row] = True
            newly += 1
        if newly:
            self._count(newly)
        return out

    def _count(self, newly: int) -> None:
        with self.lock:
            now = time.perf_counter()
            self.decode_started = self.decode_started or now
            self.decoded += newly
            total = len(self.paths)
            # the sum only once enough images were decoded to fill it (each filled row was decoded at least once)
            if self.cache != "none" and self.decoded >= total and int(self.filled.sum()) == total:
                if self.cache == "disk" and not self.complete:
                    self._finish_disk()
                seconds = now - self.decode_started  # reads are all hits from now on: this runs once
                where = f"on disk: {self.final_path}" if self.cache == "disk" else "in memory"
                results.info(f"All {total:,} images decoded ({self.decoded:,} over {seconds:.1f}s) and cached {where}")
                return
            # tf.data's threads decode during training, whose epoch line is the progress then
            if on_main_thread() and self.decoded < total and progress.isEnabledFor(logging.INFO) and now - self.drawn > PROGRESS_SECONDS:
                self.drawn = now
                rate = self.decoded / max(now - self.decode_started, 1e-9)
                progress.info(f"Decoding {total:,} images: {self.decoded:,} ({rate:,.0f}/s)")


_opened = itertools.count()


def on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
