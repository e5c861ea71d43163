"""Where dataset files are looked for, and how missing ones are downloaded.

A named dataset is searched for, in order, in ``data_dir`` (DataConfig.data_dir),
``$CONVSCOPE_DATA/<name>/`` and the user cache (``$CONVSCOPE_CACHE/<name>/``,
default ``~/.cache/convscope/<name>/``). Downloads go to the cache, are checked
against the published MD5 and are written atomically, so the cache never holds
half a file or a file with the wrong content.

    from convscope.data.download import RemoteFile, search_folders, download_file
    folders = search_folders("mnist", data_dir=None)
    download_file(RemoteFile(url, md5), cache_folder("mnist") / "train-images-idx3-ubyte.gz")
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import urllib.error
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.request import urlopen

from convscope.data.raw import describe_error
from convscope.errors import ConvscopeError
from convscope.fileio import atomic_path

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20  # stream downloads 1 MiB at a time
TIMEOUT_SECONDS = 60  # per network read; a stalled mirror fails instead of hanging


@dataclass(frozen=True)
class RemoteFile:
    """One published file and the MD5 that identifies it."""

    url: str
    md5: str  # MD5 of the file as published
    content_md5: str | None = None  # MD5 of its gunzipped bytes: a mirror that re-compresses keeps this one


def cache_root() -> Path:
    """The user cache: $CONVSCOPE_CACHE, else $XDG_CACHE_HOME/convscope, else ~/.cache/convscope."""
    if os.environ.get("CONVSCOPE_CACHE"):
        return Path(os.environ["CONVSCOPE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "convscope"


def cache_folder(name: str) -> Path:
    """The cache folder of one dataset, where downloads are written."""
    return cache_root() / name


def keras_datasets_folder() -> Path:
    """Where Keras' own loaders keep their downloads ($KERAS_HOME/datasets, default ~/.keras/datasets)."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser() / "datasets"


def search_folders(name: str, data_dir: str | os.PathLike | None) -> list[Path]:
    """Folders searched for dataset ``name``, in order.

    Raises:
        ConvscopeError: ``data_dir`` is given but is not a folder.
    """
    folders = []
    if data_dir is not None:
        data_dir = Path(data_dir).expanduser()
        if not data_dir.is_dir():
            raise ConvscopeError(f"data_dir {data_dir}: folder not found; pass an existing folder holding the {name} files, or leave data_dir unset")
        folders.append(data_dir)
    if os.environ.get("CONVSCOPE_DATA"):
        folders.append(Path(os.environ["CONVSCOPE_DATA"]).expanduser() / name)
    folders.append(cache_folder(name))
    return folders


def md5_of_file(path: Path) -> str:
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _content_md5(path: Path) -> str | None:
    """MD5 of a gzip file's decompressed bytes; None if it is not valid gzip."""
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with gzip.open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error):
        return None
    return digest.hexdigest()


def download_file(remote: RemoteFile, destination: Path) -> Path:
    """Download ``remote`` to ``destination`` atomically after checking its MD5.

    Args:
        remote: the URL and the published MD5.
        destination: the final path (in the cache); its folder is created.

    Returns:
        ``destination``.

    Raises:
        ConvscopeError: the MD5 does not match (nothing is left at ``destination``).
        urllib.error.URLError, OSError, http.client.HTTPException: the network failed;
            callers turn these into a message listing where to put the files by hand.

    Example:
        >>> download_file(RemoteFile("https://example.org/a.gz", "0123..."), Path("~/.cache/convscope/x/a.gz"))
    """
    logger.info("downloading %s to %s", remote.url, destination)
    with atomic_path(destination) as temp:
        digest = hashlib.md5(usedforsecurity=False)
        with urlopen(remote.url, timeout=TIMEOUT_SECONDS) as response, open(temp, "wb") as handle:
            for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                digest.update(chunk)
                handle.write(chunk)
        received = digest.hexdigest()
        if received != remote.md5 and (remote.content_md5 is None or _content_md5(temp) != remote.content_md5):
            raise ConvscopeError(
                f"{remote.url}: downloaded file has MD5 {received}, expected {remote.md5}; "
                f"the mirror sent something else or the transfer was corrupted; try again later or place the official file in {destination.parent}"
            )
    return destination


NETWORK_ERRORS = (urllib.error.URLError, OSError, http.client.HTTPException)


def download_missing(
    name: str,
    remotes: dict[str, RemoteFile],
    folders: list[Path],
    allow_download: bool,
    hint: str,
) -> Path:
    """Download every file of ``remotes`` missing from the cache; return the cache folder.

    Args:
        name: dataset name, for messages and the cache folder.
        remotes: file name -> RemoteFile.
        folders: the folders that were searched (for the message when this fails).
        allow_download: False: raise at once with the manual instructions.
        hint: what to place in those folders, e.g. "the four IDX files (...)".

    Raises:
        ConvscopeError: downloading is off or failed; the message lists the searched folders and file names.
    """
    searched = ", ".join(str(folder) for folder in folders)
    target = cache_folder(name)
    if not allow_download:
        raise ConvscopeError(
            f"{name}: not found in {searched} and downloading is off (allow_download: false); "
            f"put {hint} in one of those folders (or pass --data-dir), or allow downloading"
        )
    for file_name, remote in remotes.items():
        if (target / file_name).is_file():
            continue
        try:
            download_file(remote, target / file_name)
        except NETWORK_ERRORS as error:
            reason = describe_error(getattr(error, "reason", error))  # URLError wraps the socket error in .reason
            raise ConvscopeError(
                f"{name}: not found in {searched} and downloading {remote.url} failed ({reason}); "
                f"put {hint} in one of those folders (or pass --data-dir) and run again"
            ) from None
    return target
