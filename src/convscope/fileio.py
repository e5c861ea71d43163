"""Atomic file writes: the one place convscope writes a file under its final name.

Every file is first written to a temp file in the same folder (same filesystem,
so ``os.replace`` is atomic), flushed and fsynced, then renamed. A crash or a
full disk leaves either the old file or the new one, never half of one.

    from convscope.fileio import atomic_path, write_json
    with atomic_path(run_dir / "model.keras") as tmp:
        model.save(tmp)
    write_json(run_dir / "metrics.json", {"accuracy": 0.99})
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Iterator

TEMP_MARKER = ".tmp-"  # temp names look like ".model.keras.tmp-1234-ab12cd.keras"


def _temp_name(path: Path) -> Path:
    # Keep the suffix last: Keras refuses to save a model to a name not ending in .keras.
    token = f"{TEMP_MARKER}{os.getpid()}-{secrets.token_hex(3)}"
    return path.with_name(f".{path.name}{token}{path.suffix}")


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems refuse fsync on folders
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success it replaces ``path`` atomically.

    On any exception the temp file is removed and ``path`` is left as it was.
    The temp path may also become a folder (a SavedModel): an old folder at
    ``path`` is moved aside, the new one renamed into place, then the old one
    deleted, so ``path`` holds one whole folder or the other, never a mix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    old = _temp_name(path)  # where an existing folder at path waits while the new one moves in
    try:
        yield tmp
        if tmp.is_file():
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        if tmp.is_dir() and path.is_dir():
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)
                raise
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        for leftover in (tmp, old):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            elif leftover.exists():
                leftover.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically and return the path."""
    return write_bytes(path, text.encode("utf-8"))


def write_npz(path: str | os.PathLike, **arrays) -> Path:
    """Write numpy arrays as a compressed .npz atomically (numeric and str arrays: no pickles)."""
    import numpy as np

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
    return Path(path)


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented JSON atomically (numpy scalars and arrays become lists)."""
    return write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete temp files a killed process left in ``folder``; return what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        if entry.name.startswith(".") and TEMP_MARKER in entry.name:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed
