"""The dataset catalog: every name ``load_dataset`` accepts, and where its files are.

    mnist-sample    bundled: 6,000 + 1,000 real MNIST digits (600 / 100 per class), offline
    mnist, fashion-mnist, kmnist    IDX files: data_dir, $CONVSCOPE_DATA/<name>, cache, download
    cifar10         the official python batches (.tar.gz or extracted folder)
    digits          scikit-learn's 8x8 digits, split 80/20
    npz:PATH        x_train, y_train, x_test, y_test in one .npz
    folder:PATH     one sub-folder of images per class

    from convscope.data.sources import load_raw, list_datasets, format_datasets_table
    raw = load_raw(DataConfig(dataset="fashion-mnist", allow_download=False))
    print(format_datasets_table())
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convscope.config import DataConfig
from convscope.data import cifar, download, idx
from convscope.data.download import RemoteFile
from convscope.data.folder import load_folder_dataset
from convscope.data.npz import load_npz_dataset
from convscope.data.preprocess import stratified_split
from convscope.data.raw import RawImages
from convscope.errors import ConvscopeError
from convscope.text import format_table

SAMPLE_FOLDER = Path(__file__).parent / "sample"
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0  # fixed: every training seed is scored on the same 359 test digits

DIGIT_NAMES = [str(digit) for digit in range(10)]
FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
KMNIST_NAMES = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]  # romanised hiragana, label order of the dataset
IDX_GZ_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _remotes(base_url: str, md5s: tuple[str, ...], content_md5s: tuple[str, ...] = (None,) * 4) -> dict[str, RemoteFile]:
    return {name: RemoteFile(base_url + name, md5, content) for name, md5, content in zip(IDX_GZ_NAMES, md5s, content_md5s)}


@dataclass(frozen=True)
class CatalogEntry:
    """What is known about a named dataset before loading it."""

    name: str
    source: str  # URL, "bundled" or "scikit-learn"
    image_shape: tuple[int, int, int]
    train_size: int
    test_size: int
    class_names: tuple[str, ...]
    remotes: dict  # file name -> RemoteFile; empty for bundled data


CATALOG = {
    entry.name: entry
    for entry in (
        CatalogEntry("mnist-sample", "bundled", (28, 28, 1), 6000, 1000, tuple(DIGIT_NAMES), {}),
        CatalogEntry(
            "mnist", "https://storage.googleapis.com/cvdf-datasets/mnist/", (28, 28, 1), 60000, 10000, tuple(DIGIT_NAMES),
            _remotes(
                "https://storage.googleapis.com/cvdf-datasets/mnist/",
                ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                 "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"),
                # MD5 of the decompressed IDX files, as published with the dataset
                ("6bbc9ace898e44ae57da46a324031adb", "a25bea736e30d166cdddb491f175f624",
                 "2646ac647ad5339dbf082846283269ea", "27ae3e4e09519cfbb04c329615203637"),
            ),
        ),
        CatalogEntry(
            "fashion-mnist", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", (28, 28, 1), 60000, 10000, tuple(FASHION_NAMES),
            _remotes(
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                 "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"),
            ),
        ),
        CatalogEntry(
            "kmnist", "http://codh.rois.ac.jp/kmnist/dataset/kmnist/", (28, 28, 1), 60000, 10000, tuple(KMNIST_NAMES),
            _remotes(
                "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
                ("bdb82020997e1d708af4cf47b453dcf7", "e144d726b3acfaa3e44228e80efcd344",
                 "5c965bf0a639b31b8f53240b1b52f4d7", "7320c461ea6c1c855c0b718fb2a4b134"),
            ),
        ),
        CatalogEntry(
            "cifar10", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", (32, 32, 3), 50000, 10000,
            ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
            {cifar.ARCHIVE_NAME: RemoteFile("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")},
        ),
        CatalogEntry("digits", "scikit-learn (sklearn.datasets.load_digits)", (8, 8, 1), 1438, 359, tuple(DIGIT_NAMES), {}),
    )
}
IDX_DATASETS = ("mnist", "fashion-mnist", "kmnist")
IDX_HINT = "the four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each raw or .gz)"
CIFAR_HINT = f"{cifar.ARCHIVE_NAME} or its extracted {cifar.FOLDER_NAME}/ folder"


# ---------------------------------------------------------------- finding files


def _keras_locations(name: str) -> list[Path]:
    """What keras.datasets.<name>.load_data() downloaded, if it has the same files."""
    folder = download.keras_datasets_folder()
    return {"mnist": [folder / "mnist.npz"], "cifar10": [folder / cifar.FOLDER_NAME]}.get(name, [])


def _find(name: str, data_dir) -> tuple[str, Path] | None:
    """(kind, location) of dataset ``name`` on this machine, or None. Kinds: idx, keras-npz, cifar, bundled."""
    if name == "mnist-sample":
        return "bundled", SAMPLE_FOLDER
    for folder in download.search_folders(name, data_dir):
        if name in IDX_DATASETS and (files := idx.find_idx_files(folder)):
            return "idx", files["train_images"].parent
        if name == "cifar10" and (location := cifar.find_cifar10(folder)):
            return "cifar", location
    for location in _keras_locations(name):
        if location.suffix == ".npz" and location.is_file():
            return "keras-npz", location
        if location.is_dir() and (found := cifar.find_cifar10(location)):
            return "cifar", found
    return None


# ---------------------------------------------------------------- loading


def _load_digits() -> RawImages:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Pixels are counts 0..16 (4x4 blocks of a 32x32 bitmap); stretch to 0..255 like every other source.
    pixels = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., np.newaxis]
    labels = digits.target.astype(np.int64)
    train_index, test_index = stratified_split(labels, DIGITS_TEST_FRACTION, seed=DIGITS_SPLIT_SEED)
    return RawImages(
        pixels[train_index], labels[train_index], pixels[test_index], labels[test_index], list(DIGIT_NAMES),
        source=CATALOG["digits"].source,
        notes={"layout": f"1797 images, test = stratified {DIGITS_TEST_FRACTION:.0%} per class (seed {DIGITS_SPLIT_SEED}); pixels 0..16 x 255/16"},
    )


def _load_named(entry: CatalogEntry, config: DataConfig) -> RawImages:
    if entry.name == "digits":
        return _load_digits()
    found = _find(entry.name, config.data_dir)
    if found is None:
        folders = download.search_folders(entry.name, config.data_dir) + _keras_locations(entry.name)
        hint = CIFAR_HINT if entry.name == "cifar10" else IDX_HINT
        target = download.download_missing(entry.name, entry.remotes, folders, config.allow_download, hint)
        found = ("cifar", target / cifar.ARCHIVE_NAME) if entry.name == "cifar10" else ("idx", target)
    kind, location = found
    names = list(entry.class_names)
    if kind == "cifar":
        return cifar.load_cifar10(location)
    if kind == "keras-npz":
        return load_npz_dataset(location, class_names=names)
    files = idx.find_idx_files(location)
    if files is None:  # only possible for the bundled sample, found by its folder alone
        raise ConvscopeError(f"{location}: the bundled MNIST sample files are missing; reinstall convscope")
    return idx.load_idx_dataset(files, names, source="bundled" if kind == "bundled" else None)


def load_raw(config: DataConfig) -> RawImages:
    """Load the raw images of ``config.dataset``.

    Raises:
        ConvscopeError: unknown name, missing files with downloading off or failing, or bad data.
    """
    name = config.dataset
    if name.startswith("npz:"):
        return load_npz_dataset(Path(name[len("npz:"):]), stream=config.stream)
    if name.startswith("folder:"):
        return load_folder_dataset(Path(name[len("folder:"):]), config.image_size, config.color_mode, config.stream, config.cache)
    if name not in CATALOG:
        raise ConvscopeError(f"dataset {name!r} is unknown; expected one of {', '.join(CATALOG)}, npz:PATH or folder:PATH (see `convscope datasets`)")
    return _load_named(CATALOG[name], config)


# ---------------------------------------------------------------- listing


@dataclass(frozen=True)
class DatasetInfo:
    """One row of `convscope datasets`."""

    name: str
    source: str  # URL, bundled, scikit-learn or user path
    image_shape: tuple[int, ...] | None  # (H, W, C); None for user data
    num_classes: int | None
    train_size: int | None
    test_size: int | None
    available: bool | None  # usable without downloading; None for user data
    location: str | None  # where it was found


def list_datasets(data_dir: str | None = None) -> list[DatasetInfo]:
    """Describe every dataset name, and whether it is on this machine.

    Only looks for files; nothing is loaded or downloaded (fast, no Keras import).

    Args:
        data_dir: also search this folder (as DataConfig.data_dir does).

    Example:
        >>> [info.name for info in list_datasets() if info.available]
        ['mnist-sample', 'digits']
    """
    infos = []
    for entry in CATALOG.values():
        if entry.name == "digits":
            found = ("sklearn", "bundled with scikit-learn") if importlib.util.find_spec("sklearn") else None
        else:
            try:
                found = _find(entry.name, data_dir)
            except ConvscopeError:  # a data_dir that does not exist: listing still works
                found = _find(entry.name, None)
        location = None if found is None else str(found[1])
        infos.append(
            DatasetInfo(entry.name, entry.source, entry.image_shape, len(entry.class_names), entry.train_size, entry.test_size, found is not None, location)
        )
    infos.append(DatasetInfo("npz:PATH", "user .npz (x_train, y_train, x_test, y_test)", None, None, None, None, None, None))
    infos.append(DatasetInfo("folder:PATH", "user folder (PATH/<class>/ or PATH/train|test/<class>/)", None, None, None, None, None, None))
    return infos


def format_datasets_table(infos: list[DatasetInfo] | None = None) -> str:
    """Text table of ``list_datasets()`` for `convscope datasets`."""
    infos = list_datasets() if infos is None else infos
    headers = ("name", "shape", "classes", "train", "test", "here", "source / location")
    rows = []
    for info in infos:
        shape = "x".join(map(str, info.image_shape)) if info.image_shape else "-"
        here = {True: "yes", False: "no", None: "-"}[info.available]
        where = info.location if info.available and info.location and info.location != info.source else info.source
        rows.append((info.name, shape, str(info.num_classes or "-"), str(info.train_size or "-"), str(info.test_size or "-"), here, where))
    return format_table(headers, rows, strip_trailing=False)
