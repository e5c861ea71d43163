"""Image folders: one sub-folder per class.

Two layouts are read::

    PATH/<class>/*.png                       -> a seeded stratified 80/20 train/test split
    PATH/train/<class>/*  PATH/test/<class>/*  -> the given split

Class names are the sorted folder names. Files are recognised by content;
other files are skipped with a warning naming them. Image size and color mode
come from the config, or else from the first image (first class, first file).
The folder is scanned first (file list and labels, every file's header read, with
a progress line). By default the images then stream: they are decoded when training
first reads them and kept in the cache (``--cache``, see imagecache.py); with
``stream="off"`` all are decoded now into one array, as small datasets are held.

    from convscope.data.folder import load_folder_dataset
    raw = load_folder_dataset(Path("flowers"), image_size=(64, 64), color_mode="rgb")
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

import numpy as np

from convscope.config import STREAMS
from convscope.data.imagecache import ImageFiles, choose_cache
from convscope.data.images import FORMATS_TEXT, read_header
from convscope.data.preprocess import stratified_split
from convscope.data.raw import RawImages
from convscope.data.stream import StoredPixels
from convscope.errors import ConvscopeError

TEST_FRACTION = 0.2  # without a test/ folder, 20% of each class is held out for testing
SPLIT_SEED = 0  # fixed, so every training seed is scored on the same test images
DECODE_CHUNK = 256  # images decoded between progress updates when not streaming
PROGRESS_SECONDS = 0.2

progress = logging.getLogger("convscope.progress")


def _class_folders(root: Path) -> list[Path]:
    return sorted((entry for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith(".")), key=lambda entry: entry.name)


def split_folders(root: Path) -> tuple[Path, Path | None]:
    """(the folder of training class folders, the test folder or None): ``root/train`` and ``root/test`` when they exist, else root alone."""
    split_layout = (root / "train").is_dir() and bool(_class_folders(root / "train"))
    if not split_layout:
        return root, None
    return root / "train", root / "test" if (root / "test").is_dir() else None


def _scan(root: Path, class_names: list[str]) -> tuple[list[Path], np.ndarray, list[str]]:
    """The image files under root/<class>/ (recognised by content), their labels, and a key line per file.

    Non-image files are skipped with a warning naming them; an image-less class folder is an error.
    The key lines (path, size, modification time) name the disk cache.
    """
    paths, labels, keys, counts = [], [], [], {}
    shows, drawn = progress.isEnabledFor(logging.INFO), time.perf_counter()
    for folder in _class_folders(root):
        if folder.name not in class_names:
            raise ConvscopeError(
                f"{folder}: class '{folder.name}' is not among the training classes ({', '.join(class_names)}); "
                "expected the same class folders under train/ and test/; rename or remove it"
            )
        label = class_names.index(folder.name)
        counts[folder] = 0
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith("."):
                continue  # .DS_Store, editor swap files: never images
            if entry.is_dir():
                warnings.warn(f"{entry}: sub-folder inside class folder {folder.name} skipped; images must sit directly in the class folder", stacklevel=3)
                continue
            if read_header(entry) is None:
                warnings.warn(f"{entry}: not a {FORMATS_TEXT} image (judged by content); skipped", stacklevel=3)
                continue
            info = entry.stat()
            paths.append(entry)
            labels.append(label)
            keys.append(f"{entry}\t{info.st_size}\t{info.st_mtime_ns}")
            counts[folder] += 1
            if shows and time.perf_counter() - drawn > PROGRESS_SECONDS:
                drawn = time.perf_counter()
                progress.info(f"Scanning {root}: {len(paths):,} images found")
    if shows:
        progress.info("")
    for folder, count in counts.items():
        if count == 0:
            raise ConvscopeError(f"{folder}: class folder holds no {FORMATS_TEXT} images; add images or remove the folder")
    return paths, np.asarray(labels, dtype=np.int64), keys


def _decode_all(files: ImageFiles) -> np.ndarray:
    """Every file decoded into one array (--stream off), a chunk at a time so progress can be shown."""
    pixels = np.empty(files.shape, dtype=np.uint8)
    for start in range(0, len(pixels), DECODE_CHUNK):
        pixels[start : start + DECODE_CHUNK] = files.read(np.arange(start, min(start + DECODE_CHUNK, len(pixels))))
    if progress.isEnabledFor(logging.INFO):
        progress.info("")
    return pixels


def _first_image(root: Path):
    for folder in _class_folders(root):
        for entry in sorted(folder.iterdir()):
            if entry.is_file() and not entry.name.startswith(".") and (header := read_header(entry)) is not None:
                return header
    raise ConvscopeError(f"{root}: no {FORMATS_TEXT} images in any class folder; add images")


def load_folder_dataset(
    root: Path, image_size: tuple[int, int] | None = None, color_mode: str | None = None, stream: str = "auto", cache: str = "auto"
) -> RawImages:
    """Load an image folder as training and test images.

    Args:
        root: ``PATH`` holding ``<class>/`` folders, or ``train/`` and ``test/`` folders of them.
        image_size: (height, width) to resize to; None: the first image's size.
        color_mode: "grayscale" or "rgb"; None: decided by the first image.
        stream: on or auto: the images are decoded when read (``StoredPixels``); off: all decoded now.
        cache: where streamed images are kept once decoded: memory, disk, none, or auto
            (memory up to ``imagecache.CACHE_MEMORY_BYTES`` of decoded images, else disk).

    Returns:
        RawImages, (N, H, W, C) uint8 (arrays, or StoredPixels when streaming). Each split is in a
        fixed shuffled order, so ``val_first`` and ``limit_train`` take a mix of classes, not the first class.

    Raises:
        ConvscopeError: missing folder, no class folders, an empty class folder, a corrupt image.

    Example:
        >>> raw = load_folder_dataset(Path("shapes"))   # shapes/circle/*.png, shapes/square/*.png
        >>> raw.class_names
        ['circle', 'square']
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ConvscopeError(f"{root}: image folder not found; pass folder:PATH with PATH holding one sub-folder of images per class")
    if stream not in STREAMS:
        raise ConvscopeError(f"stream={stream!r}; expected one of {', '.join(STREAMS)}")
    train_root, test_root = split_folders(root)
    class_names = [folder.name for folder in _class_folders(train_root)]
    if not class_names:
        raise ConvscopeError(f"{train_root}: no class folders; expected {train_root}/<class>/<images>, one sub-folder per class")
    first = _first_image(train_root)
    size = tuple(image_size) if image_size is not None else (first.height, first.width)
    mode = color_mode or first.color_mode
    paths, labels, keys = _scan(train_root, class_names)
    rng = np.random.default_rng(SPLIT_SEED)
    if test_root is not None:
        test_paths, test_labels, test_keys = _scan(test_root, class_names)
        train_order, test_order = rng.permutation(len(labels)), rng.permutation(len(test_labels)) + len(labels)
        layout = f"{root}/train and {root}/test, one folder per class"
    else:
        test_paths, test_labels, test_keys = [], labels[:0], []
        train_order, test_order = stratified_split(labels, TEST_FRACTION, seed=SPLIT_SEED)
        train_order, test_order = rng.permutation(train_order), rng.permutation(test_order)
        layout = f"{train_root}, one folder per class; test = stratified {TEST_FRACTION:.0%} of each class (seed {SPLIT_SEED})"
        if len(test_order) == 0:
            raise ConvscopeError(f"{train_root}: {len(labels)} images are too few to hold out a test set; add images or a test/ folder")
    all_paths, all_labels = paths + test_paths, np.concatenate([labels, test_labels])
    channels = 1 if mode == "grayscale" else 3
    decoded_bytes = len(all_paths) * size[0] * size[1] * channels
    streams = stream != "off"
    chosen_cache = choose_cache(cache, decoded_bytes) if streams else "none"
    files = ImageFiles(all_paths, size, mode, chosen_cache, [*keys, *test_keys], str(root.resolve()))
    pixels = StoredPixels(files, np.arange(len(all_paths))) if streams else _decode_all(files)
    notes = {
        "layout": layout,
        "image_size": list(size),
        "color_mode": mode,
        "decided_by": "config" if image_size is not None and color_mode else f"first image {first.path}",
        "stream": "on" if streams else "off",
        "cache": chosen_cache,
        "decoded_size_mb": round(decoded_bytes / 1e6, 1),
    }
    take = (lambda order: pixels.subset(order)) if streams else (lambda order: pixels[order])
    return RawImages(
        x_train=take(train_order),
        y_train=all_labels[train_order],
        x_test=take(test_order),
        y_test=all_labels[test_order],
        class_names=class_names,
        source=str(root),
        notes=notes,
    )
