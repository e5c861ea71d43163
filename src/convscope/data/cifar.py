"""CIFAR-10 in its official "python version": pickled batches, usually in a .tar.gz.

The batches are pickles, and a pickle can run any code when loaded. They are
read with ``RestrictedUnpickler``, which builds only what the official batches
contain (numpy arrays, lists, dicts, bytes, str) and refuses every other global.
Members are read straight from the archive, never extracted to disk; links,
devices, absolute or ``..`` paths and oversized members are refused before any
member is read.

    from convscope.data.cifar import find_cifar10, load_cifar10
    location = find_cifar10(Path("data"))     # the .tar.gz, or a cifar-10-batches-py/ folder
    raw = load_cifar10(location)              # 50000 + 10000 images, (N, 32, 32, 3) uint8
"""

from __future__ import annotations

import builtins
import codecs
import io
import pickle
import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from convscope.data.raw import RawImages, check_labels, describe_error, unsafe_member_problem
from convscope.errors import ConvscopeError

ARCHIVE_NAME = "cifar-10-python.tar.gz"
FOLDER_NAME = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{number}" for number in range(1, 6))
MEMBERS = (*TRAIN_BATCHES, "test_batch", "batches.meta")
MAX_MEMBER_BYTES = 1 << 30  # 1 GiB; official batches are 31 MB each
FIX = f"re-download the official {ARCHIVE_NAME}"

try:  # NumPy 2 moved the array-pickle helpers to numpy._core; NumPy 1 pickles still name numpy.core
    from numpy._core.multiarray import _reconstruct
    from numpy._core.numeric import _frombuffer
except ImportError:  # NumPy 1.x
    from numpy.core.multiarray import _reconstruct
    from numpy.core.numeric import _frombuffer

# Every global a CIFAR batch (or a NumPy array pickled with protocols 2-5) needs; nothing else.
_SAFE_BUILTINS = {name: getattr(builtins, name) for name in ("bytes", "bytearray", "dict", "list", "str", "tuple", "set", "frozenset")}
ALLOWED_GLOBALS = {
    **{(module, "_reconstruct"): _reconstruct for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "_frombuffer"): _frombuffer for module in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # protocol 2 stores bytes as _codecs.encode(str, "latin1")
    **{(module, name): value for module in ("builtins", "__builtin__") for name, value in _SAFE_BUILTINS.items()},
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in ALLOWED_GLOBALS.

    Example:
        >>> RestrictedUnpickler(io.BytesIO(data), source="data_batch_1").load()
    """

    def __init__(self, file, source: str):
        super().__init__(file, encoding="bytes")  # the batches were pickled by Python 2: keys are bytes
        self.source = source

    def find_class(self, module: str, name: str):
        allowed = ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise ConvscopeError(
                f"{self.source}: refused to load the pickled global '{module}.{name}'; a CIFAR batch holds only "
                f"numpy arrays, lists and bytes, so this file is not one (it may be malicious); {FIX}"
            )
        return allowed


def unpickle_batch(data: bytes, source: str) -> dict:
    """Unpickle one batch with RestrictedUnpickler; return a dict with str keys."""
    try:
        batch = RestrictedUnpickler(io.BytesIO(data), source).load()
    except ConvscopeError:
        raise
    except Exception as error:  # a damaged pickle raises many types (UnpicklingError, EOFError, ValueError, ...)
        raise ConvscopeError(f"{source}: not a readable CIFAR batch ({describe_error(error)}); {FIX}") from None
    if not isinstance(batch, dict):
        raise ConvscopeError(f"{source}: holds a {type(batch).__name__}; expected a dict batch; {FIX}")
    return {key.decode("latin1") if isinstance(key, bytes) else str(key): value for key, value in batch.items()}


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Refuse members that could escape a folder or exhaust memory."""
    problem = unsafe_member_problem(
        member.name,
        member.size,
        MAX_MEMBER_BYTES,
        link=member.linkname if member.issym() or member.islnk() else None,
        special=not (member.isfile() or member.isdir()),
    )
    if problem:
        raise ConvscopeError(f"{archive}: member {member.name!r} has {problem}; refused before reading anything; {FIX}")


def _read_archive(path: Path) -> dict[str, bytes]:
    """Read MEMBERS from the tar archive (any compression) after checking every member."""
    try:
        with tarfile.open(path, mode="r:*") as archive:
            members = []
            for member in archive:  # header by header: a member is checked before tarfile seeks past its data
                _check_member(member, path)
                members.append(member)
            by_name = {}
            for member in members:
                base = PurePosixPath(member.name).name
                if member.isfile() and base in MEMBERS:
                    if base in by_name:
                        raise ConvscopeError(f"{path}: two members named {base} ({by_name[base].name}, {member.name}); expected one; {FIX}")
                    by_name[base] = member
            missing = [name for name in MEMBERS if name not in by_name]
            if missing:
                raise ConvscopeError(f"{path}: archive lacks {', '.join(missing)}; expected the CIFAR-10 python batches; {FIX}")
            return {name: archive.extractfile(member).read() for name, member in by_name.items()}
    except ConvscopeError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error, ValueError, UnicodeError) as error:
        raise ConvscopeError(f"{path}: not a readable tar archive ({describe_error(error)}); {FIX}") from None


def _read_folder(folder: Path) -> dict[str, bytes]:
    """Read MEMBERS from an extracted cifar-10-batches-py folder."""
    contents = {}
    for name in MEMBERS:
        path = folder / name
        if not path.is_file():
            raise ConvscopeError(f"{path}: missing; expected the CIFAR-10 batches {', '.join(MEMBERS)} in {folder}; {FIX}")
        if path.stat().st_size > MAX_MEMBER_BYTES:
            raise ConvscopeError(f"{path}: {path.stat().st_size} bytes; expected under {MAX_MEMBER_BYTES} for a CIFAR batch; {FIX}")
        contents[name] = path.read_bytes()
    return contents


def _batch_arrays(batch: dict, source: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 32, 32, 3) uint8 and labels int64 of one batch."""
    data = batch.get("data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        shape = getattr(data, "shape", None)
        raise ConvscopeError(f"{source}: 'data' is {type(data).__name__} {shape}; expected a uint8 array (N, 3072); {FIX}")
    labels = batch.get("labels")
    if not isinstance(labels, (list, np.ndarray)):
        raise ConvscopeError(f"{source}: 'labels' is {type(labels).__name__}; expected a list of class indices; {FIX}")
    try:
        labels = np.asarray(labels)
    except (ValueError, TypeError) as error:
        raise ConvscopeError(f"{source}: 'labels' is not a list of numbers ({describe_error(error)}); {FIX}") from None
    labels = check_labels(labels, where=f"{source}: labels", count=len(data), num_classes=num_classes)
    # Rows are 1024 red, then 1024 green, then 1024 blue values, each row-major 32x32.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


def find_cifar10(folder: Path) -> Path | None:
    """The archive or batches folder inside ``folder`` (or ``folder`` itself), or None."""
    for candidate in (folder / FOLDER_NAME, folder):
        if (candidate / "batches.meta").is_file() and (candidate / "data_batch_1").is_file():
            return candidate
    if (folder / ARCHIVE_NAME).is_file():
        return folder / ARCHIVE_NAME
    return None


def load_cifar10(location: Path) -> RawImages:
    """Load CIFAR-10 from the official archive or an extracted batches folder.

    Args:
        location: ``cifar-10-python.tar.gz`` or a folder holding data_batch_1..5, test_batch, batches.meta.

    Returns:
        RawImages: 50000 training and 10000 test images (N, 32, 32, 3) uint8; class names from batches.meta.

    Raises:
        ConvscopeError: unsafe archive member, refused pickle global, missing batch, bad arrays.

    Example:
        >>> load_cifar10(Path("~/.cache/convscope/cifar10/cifar-10-python.tar.gz").expanduser()).class_names[:2]
        ['airplane', 'automobile']
    """
    contents = _read_folder(location) if location.is_dir() else _read_archive(location)
    meta_source = f"{location}: batches.meta"
    meta = unpickle_batch(contents["batches.meta"], meta_source)
    names = meta.get("label_names")
    if not isinstance(names, list) or not names or not all(isinstance(name, (bytes, str)) for name in names):
        raise ConvscopeError(f"{meta_source}: 'label_names' is missing or not a list of strings; {FIX}")
    class_names = [name.decode("utf-8", "replace") if isinstance(name, bytes) else name for name in names]
    parts = {}
    for name in (*TRAIN_BATCHES, "test_batch"):
        source = f"{location}: {name}"
        parts[name] = _batch_arrays(unpickle_batch(contents.pop(name), source), source, len(class_names))
    x_train = np.concatenate([parts[name][0] for name in TRAIN_BATCHES])
    y_train = np.concatenate([parts[name][1] for name in TRAIN_BATCHES])
    x_test = np.ascontiguousarray(parts["test_batch"][0])
    return RawImages(x_train, y_train, x_test, parts["test_batch"][1], class_names, source=str(location))
