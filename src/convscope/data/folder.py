"""Image folders: one sub-folder per class.

Two layouts are read::

    PATH/<class>/*.png                       -> a seeded stratified 80/20 train/test split
    PATH/train/<class>/*  PATH/test/<class>/*  -> the given split

Class names are the sorted folder names. Files are recognised by content;
other files are skipped with a warning naming them. Image size and color mode
come from the config, or else from the first image (first class, first file).
Each file is opened once and decoded straight into a preallocated array.

    from convscope.data.folder import load_folder_dataset
    raw = load_folder_dataset(Path("flowers"), image_size=(64, 64), color_mode="rgb")
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from convscope.data.images import FORMATS_TEXT, decode_images, read_header
from convscope.data.preprocess import stratified_split
from convscope.data.raw import RawImages
from convscope.errors import ConvscopeError

TEST_FRACTION = 0.2  # without a test/ folder, 20% of each class is held out for testing
SPLIT_SEED = 0  # fixed, so every training seed is scored on the same test images


def _class_folders(root: Path) -> list[Path]:
    return sorted((entry for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith(".")), key=lambda entry: entry.name)


def split_folders(root: Path) -> tuple[Path, Path | None]:
    """(the folder of training class folders, the test folder or None): ``root/train`` and ``root/test`` when they exist, else root alone."""
    split_layout = (root / "train").is_dir() and bool(_class_folders(root / "train"))
    if not split_layout:
        return root, None
    return root / "train", root / "test" if (root / "test").is_dir() else None


def _list_files(root: Path, class_names: list[str]) -> tuple[list[Path], np.ndarray, dict[int, Path]]:
    """Files under root/<class>/ with their labels, and the folder of each class present."""
    paths, labels, folders = [], [], {}
    for folder in _class_folders(root):
        if folder.name not in class_names:
            raise ConvscopeError(
                f"{folder}: class '{folder.name}' is not among the training classes ({', '.join(class_names)}); "
                "expected the same class folders under train/ and test/; rename or remove it"
            )
        label = class_names.index(folder.name)
        folders[label] = folder
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith("."):
                continue  # .DS_Store, editor swap files: never images
            if entry.is_dir():
                warnings.warn(f"{entry}: sub-folder inside class folder {folder.name} skipped; images must sit directly in the class folder", stacklevel=3)
                continue
            paths.append(entry)
            labels.append(label)
    return paths, np.asarray(labels, dtype=np.int64), folders


def _decode_folder(root: Path, class_names: list[str], size, mode) -> tuple[np.ndarray, np.ndarray]:
    """Pixels and labels of every image under root/<class>/; an image-less class folder is an error."""
    paths, labels, folders = _list_files(root, class_names)
    pixels, kept = decode_images(paths, size, mode, skip_non_images=True)
    labels = labels[kept]
    counts = np.bincount(labels, minlength=len(class_names))
    for label, folder in folders.items():
        if counts[label] == 0:
            raise ConvscopeError(f"{folder}: class folder holds no {FORMATS_TEXT} images; add images or remove the folder")
    return pixels, labels


def _first_image(root: Path):
    for folder in _class_folders(root):
        for entry in sorted(folder.iterdir()):
            if entry.is_file() and not entry.name.startswith(".") and (header := read_header(entry)) is not None:
                return header
    raise ConvscopeError(f"{root}: no {FORMATS_TEXT} images in any class folder; add images")


def load_folder_dataset(root: Path, image_size: tuple[int, int] | None = None, color_mode: str | None = None) -> RawImages:
    """Load an image folder as training and test images.

    Args:
        root: ``PATH`` holding ``<class>/`` folders, or ``train/`` and ``test/`` folders of them.
        image_size: (height, width) to resize to; None: the first image's size.
        color_mode: "grayscale" or "rgb"; None: decided by the first image.

    Returns:
        RawImages, (N, H, W, C) uint8. Each split is in a fixed shuffled order, so
        ``val_first`` and ``limit_train`` take a mix of classes, not the first class.

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
    train_root, test_root = split_folders(root)
    class_names = [folder.name for folder in _class_folders(train_root)]
    if not class_names:
        raise ConvscopeError(f"{train_root}: no class folders; expected {train_root}/<class>/<images>, one sub-folder per class")
    first = _first_image(train_root)
    size = tuple(image_size) if image_size is not None else (first.height, first.width)
    mode = color_mode or first.color_mode
    pixels, labels = _decode_folder(train_root, class_names, size, mode)
    rng = np.random.default_rng(SPLIT_SEED)
    if test_root is not None:
        test_pixels, test_labels = _decode_folder(test_root, class_names, size, mode)
        train_order, test_order = rng.permutation(len(labels)), rng.permutation(len(test_labels))
        layout = f"{root}/train and {root}/test, one folder per class"
    else:
        test_pixels, test_labels = pixels, labels
        train_order, test_order = stratified_split(labels, TEST_FRACTION, seed=SPLIT_SEED)
        train_order, test_order = rng.permutation(train_order), rng.permutation(test_order)
        layout = f"{train_root}, one folder per class; test = stratified {TEST_FRACTION:.0%} of each class (seed {SPLIT_SEED})"
        if len(test_order) == 0:
            raise ConvscopeError(f"{train_root}: {len(labels)} images are too few to hold out a test set; add images or a test/ folder")
    return RawImages(
        x_train=pixels[train_order],
        y_train=labels[train_order],
        x_test=test_pixels[test_order],
        y_test=test_labels[test_order],
        class_names=class_names,
        source=str(root),
        notes={
            "layout": layout,
            "image_size": list(size),
            "color_mode": mode,
            "decided_by": "config" if image_size is not None and color_mode else f"first image {first.path}",
        },
    )
