"""``load_dataset``: a name or DataConfig in, a ready-to-train ``Dataset`` out.

    from convscope.data import load_dataset
    data = load_dataset("mnist-sample")                      # bundled, offline
    data = load_dataset("mnist", data_dir="data/mnist", scale="standard", val_first=5000)
    model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val))
    pictures = data.display_images(data.x_test[:16])         # uint8 (16, 28, 28, 1) for figures
    print(data.preprocessing)                                 # what was done, with the fitted numbers
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from convscope.config import Config, DataConfig, config_from_dict
from convscope.data.checks import check_classes, check_splits
from convscope.data.preprocess import Scaling, fit_scaling, random_split, split_validation
from convscope.data.raw import RawImages
from convscope.data.sources import load_raw
from convscope.data.stream import StoredPixels, StreamedImages
from convscope.errors import ConvscopeError


@dataclass(repr=False)
class Dataset:
    """Preprocessed images and labels, ready for ``model.fit``.

    x arrays are float32, (N, H, W, C) for channels_last or (N, C, H, W) for
    channels_first (``keras.config.image_data_format()``), with a channel axis
    even for grayscale; y arrays are int64 class indices.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    preprocessing: dict  # what was done, with fitted numbers and sizes (for the report)
    source: str  # where the pixels came from
    scaling: Scaling | None = field(default=None)  # undone by display_images
    channels_first: bool = False

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one image as the model sees it, e.g. (28, 28, 1)."""
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def display_images(self, x: np.ndarray) -> np.ndarray:
        """Undo the scaling: model inputs -> uint8 pixels, channels last, for figures.

        Args:
            x: one image or a batch, in this dataset's layout.

        Returns:
            uint8 (N, H, W, C), or (H, W, C) for one image.

        Example:
            >>> data.display_images(data.x_test[:4]).shape
            (4, 28, 28, 1)
        """
        if isinstance(x, StreamedImages):
            return x.display()  # the pixels themselves, read when indexed
        x = np.asarray(x, dtype=np.float32)
        single = x.ndim == 3
        batch = x[np.newaxis] if single else x
        if batch.ndim != 4:
            raise ConvscopeError(f"display_images: got an array of shape {x.shape}; expected one image or a batch shaped like x_test")
        if self.channels_first:
            batch = np.moveaxis(batch, 1, -1)
        pixels = self.scaling.invert(batch) if self.scaling is not None else batch
        pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
        return pixels[0] if single else pixels

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={self.x_train.shape}, val={self.x_val.shape}, test={self.x_test.shape}, "
            f"classes={self.num_classes}, scale={self.preprocessing.get('scale')!r})"
        )


def _data_config(config: DataConfig | str, overrides: dict) -> DataConfig:
    """Resolve a name or DataConfig plus field overrides, checked like a YAML config."""
    if isinstance(config, str):
        config = DataConfig(dataset=config)
    elif not isinstance(config, DataConfig):
        raise ConvscopeError(f"load_dataset: got {type(config).__name__}; expected a dataset name or a DataConfig")
    resolved = config_from_dict({"data": overrides}, source="load_dataset", base=Config(data=dataclasses.replace(config)))
    return resolved.data


def image_data_format() -> str:
    """Keras' ``image_data_format()``: channels_last or channels_first (imports Keras)."""
    import keras  # lazy: `convscope datasets` lists the catalogue without importing Keras

    return keras.config.image_data_format()


def prepare_dataset(raw: RawImages, config: DataConfig, seed: int = 0, channels_first: bool | None = None) -> Dataset:
    """Split off validation images, fit and apply the scale, and set the channel axis.

    Args:
        raw: images as a source delivered them.
        config: scale, test_split, val_split, validation, val_seed, val_first, limit_train are used.
        seed: seeds the test split and the stratified or random validation split unless config.val_seed is set.
        channels_first: put the channel axis first; None: as Keras' image_data_format says (which imports Keras).

    Returns:
        The Dataset.

    Raises:
        ConvscopeError: a degenerate dataset (convscope.data.checks): fewer than two classes,
            an empty split, or a class missing from a split.
    """
    split_seed = seed if config.val_seed is None else config.val_seed
    check_classes(config.dataset, raw.class_names, raw.y_train, raw.y_test)
    if config.test_split > 0:
        raw = pool_and_split_test(raw, config.test_split, split_seed)
    train_index, val_index, rule = split_validation(raw.y_train, config.val_split, config.val_first, config.limit_train, split_seed, config.validation)
    check_splits(config.dataset, raw.class_names, raw.y_train[train_index], raw.y_train[val_index], raw.y_test, config)
    scaling = fit_scaling(config.scale, raw.x_train, train_index)
    if channels_first is None:
        channels_first = image_data_format() == "channels_first"
    x_train = scaled(scaling, raw.x_train, train_index, channels_first)
    x_test = scaled(scaling, raw.x_test, None, channels_first)
    on_test = config.validation == "test"  # the same array: validating on it costs no copy
    x_val = x_test if on_test else scaled(scaling, raw.x_train, val_index, channels_first)
    y_val = raw.y_test.astype(np.int64) if on_test else raw.y_train[val_index]
    preprocessing = {
        "dataset": config.dataset,
        "source": raw.source,
        **raw.notes,
        "raw_image_shape": list(raw.x_train.shape[1:]),
        "raw_dtype": str(raw.x_train.dtype),
        **scaling.describe(),
        "fitted_on": f"the {len(train_index)} training images",
        "validation": rule,
        "sizes": {"train": len(train_index), "val": len(y_val), "test": len(raw.x_test)},
        "image_data_format": "channels_first" if channels_first else "channels_last",
        "dtype": "float32 inputs, int64 labels",
    }
    return Dataset(
        name=config.dataset,
        x_train=x_train,
        y_train=raw.y_train[train_index],
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=raw.y_test.astype(np.int64),
        class_names=list(raw.class_names),
        preprocessing=preprocessing,
        source=raw.source,
        scaling=scaling,
        channels_first=channels_first,
    )


def scaled(scaling: Scaling, pixels, index: np.ndarray | None, channels_first: bool):
    """``scaling.apply(pixels, index)``: a new float32 array, or for streamed pixels a StreamedImages that scales per read."""
    if isinstance(pixels, StoredPixels):
        return StreamedImages(pixels if index is None else pixels.subset(index), scaling, channels_first)
    return scaling.apply(pixels, index, channels_first)


def pool_and_split_test(raw: RawImages, fraction: float, seed: int) -> RawImages:
    """Pool the training and test images (in that order) and hold out a random ``fraction`` as the test set.

    This is ``train_test_split(X, y, test_size=fraction, random_state=seed)`` on
    openml's mnist_784, whose 70,000 rows are MNIST's 60,000 training images
    followed by its 10,000 test images.
    """
    x = np.concatenate([raw.x_train, raw.x_test])
    y = np.concatenate([raw.y_train, raw.y_test]).astype(np.int64)
    kept, held = random_split(len(y), fraction, seed)
    notes = {**raw.notes, "test_split": f"training and test images pooled ({len(y)}), a random {fraction:g} held out as the test set (seed {seed})"}
    return dataclasses.replace(raw, x_train=x[kept], y_train=y[kept], x_test=x[held], y_test=y[held], notes=notes)


def load_dataset(config: DataConfig | str = "mnist-sample", seed: int = 0, channels_first: bool | None = None, **overrides) -> Dataset:
    """Load a dataset by name or DataConfig, split, scale and return it.

    Args:
        config: a dataset name (``convscope datasets``; or npz:PATH, folder:PATH) or a DataConfig.
        seed: seeds the stratified validation split (use the training seed).
        channels_first: put the channel axis first; None: as Keras' image_data_format says (which imports Keras).
        **overrides: DataConfig fields, e.g. ``scale="standard"``, ``val_first=5000``, ``data_dir="data/mnist"``.

    Returns:
        The Dataset.

    Raises:
        ConvscopeError: unknown name or field, missing or bad files; the message names the file and the fix.

    Example:
        >>> data = load_dataset("mnist-sample", val_split=0.1)
        >>> data.x_train.shape, data.x_val.shape, data.x_test.shape
        ((5400, 28, 28, 1), (600, 28, 28, 1), (1000, 28, 28, 1))
    """
    data_config = _data_config(config, overrides)
    return prepare_dataset(load_raw(data_config), data_config, seed, channels_first)
