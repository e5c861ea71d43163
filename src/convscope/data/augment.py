"""Training-image augmentation: Keras preprocessing layers on the fly, seeded per (seed, epoch).

    convscope train --augment                                   # the default set for the data
    convscope train --augment flip,shift=0.1,rotate=10,zoom=0.1,contrast=0.2
    convscope train --augment default,contrast=0                # the default set without contrast

    from convscope.data.augment import augment_batches, parse_augment
    augmentation = parse_augment("default", channels=1)          # Augmentation(shift=0.1, rotate=10.0, ...)
    dataset = augment_batches(batches, augmentation.spec(), seed=0, epoch=3, scaling=data.scaling)

The spec is a comma-separated list: ``default``, ``flip[=horizontal|vertical|both|none]``,
``shift=FRACTION`` (of height and width, RandomTranslation), ``rotate=DEGREES`` (either way,
RandomRotation), ``zoom=FRACTION`` (in or out, RandomZoom), ``contrast=FACTOR`` (contrast
times 1 ± FACTOR, RandomContrast); a name without a value takes its default, a later item
overrides ``default``'s, 0 turns one off, and ``none`` turns augmentation off.

The default set is shift 0.1, rotate 10, zoom 0.1, contrast 0.2, plus a horizontal flip for
colour (RGB) images only. The grayscale datasets here are digits, handwritten characters and
clothing: a mirrored 2, 7 or hiragana is not that class (or no class at all), so flipping them
would teach the network wrong labels; photos (CIFAR-10, image folders) keep their class in a
mirror. ``flip`` adds it for any data.

Only training batches pass through ``augment_batches``; validation and test images never do.
Each epoch builds its layers with seeds drawn from (seed, epoch), and a sequential ``map``
advances their seed generators batch by batch in order: the same seed gives the same
augmented batches, and a run resumed at epoch e draws exactly what an uninterrupted one drew.
Corners uncovered by a shift, rotation or zoom-out are black for grayscale images and
reflected for colour ones (Keras' default), and contrast is clipped to the range scaled pixels
0..255 take, so no scale formula loses its values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from convscope.errors import ConvscopeError

DEFAULTS = {"shift": 0.1, "rotate": 10.0, "zoom": 0.1, "contrast": 0.2}  # 10% and 10 degrees keep an MNIST digit inside its 4-pixel margin
LIMITS = {"shift": (0.5, "a fraction of height and width, 0..0.5"), "rotate": (180.0, "degrees, 0..180"),
          "zoom": (0.9, "a fraction, 0..0.9"), "contrast": (1.0, "a factor, 0..1")}
FLIPS = {"horizontal": "horizontal", "vertical": "vertical", "both": "horizontal_and_vertical", "none": None}
AUGMENT_STREAM = 0xA06  # a third seed word: layer seeds never coincide with the shuffle's default_rng([seed, epoch])
GRAMMAR = "default, flip[=horizontal|vertical|both|none], shift=FRACTION, rotate=DEGREES, zoom=FRACTION, contrast=FACTOR, or none"


@dataclass(frozen=True)
class Augmentation:
    """Which augmentations training applies, and how strongly; 0 or None: not applied."""

    flip: str | None = None  # horizontal, vertical, both, or None
    shift: float = 0.0  # largest shift, a fraction of height and of width (RandomTranslation)
    rotate: float = 0.0  # largest rotation either way, in degrees (RandomRotation)
    zoom: float = 0.0  # largest zoom in or out, a fraction (RandomZoom)
    contrast: float = 0.0  # contrast times a factor in 1 ± this (RandomContrast)

    @property
    def active(self) -> bool:
        return self.flip is not None or any(getattr(self, name) > 0 for name in DEFAULTS)

    def spec(self) -> str | None:
        """The canonical spec, as config.yaml records it (None: off).

        Example:
            >>> parse_augment("rotate=5,flip").spec()
            'flip,rotate=5'
        """
        if not self.active:
            return None
        items = [] if self.flip is None else ["flip" if self.flip == "horizontal" else f"flip={self.flip}"]
        items += [f"{name}={getattr(self, name):g}" for name in DEFAULTS if getattr(self, name) > 0]
        return ",".join(items)

    def describe(self) -> str:
        """One phrase for the report, e.g. "horizontal flip, shift up to 10% of height and width, ..."."""
        parts = [] if self.flip is None else [f"{'horizontal and vertical' if self.flip == 'both' else self.flip} flip"]
        if self.shift:
            parts.append(f"shift up to {self.shift:.0%} of height and width")
        if self.rotate:
            parts.append(f"rotation up to ±{self.rotate:g}°")
        if self.zoom:
            parts.append(f"zoom up to ±{self.zoom:.0%}")
        if self.contrast:
            parts.append(f"contrast ×(1 ± {self.contrast:g})")
        return ", ".join(parts) if parts else "none"


def parse_augment(spec: str | None, channels: int | None = None) -> Augmentation | None:
    """Read an --augment spec (see the module docstring).

    Args:
        spec: e.g. ``"default"``, ``"flip,shift=0.1,rotate=10"``; None, "", "none" or "false": off.
        channels: the images' channel count; ``default`` adds a horizontal flip for 3 (RGB).
            None: ``default`` is taken without the flip.

    Returns:
        The Augmentation, or None when off (or every strength is 0).

    Raises:
        ConvscopeError: an unknown name, a repeated name, a value that is no number or out of range.

    Example:
        >>> parse_augment("default", channels=3).spec()
        'flip,shift=0.1,rotate=10,zoom=0.1,contrast=0.2'
    """
    text = "" if spec is None else str(spec).strip()
    if text.lower() in ("", "none", "false", "no", "off"):
        return None
    if text.lower() in ("true", "yes", "on"):  # `augment: true` in a YAML config
        text = "default"
    values: dict = {}
    seen: set[str] = set()
    for item in (part.strip() for part in text.split(",")):
        name, has_value, value = (part.strip() for part in item.partition("="))
        name = name.lower()
        if name in seen:
            raise ConvscopeError(f"--augment {text!r}: {name} given twice; give each augmentation once")
        seen.add(name)
        if name == "default" and not has_value:
            values = {**DEFAULTS, **({"flip": "horizontal"} if channels == 3 else {}), **values}
        elif name == "flip":
            if value.lower() not in ("", *FLIPS):
                raise ConvscopeError(f"--augment {text!r}: flip={value}; expected flip, flip=horizontal, flip=vertical, flip=both or flip=none")
            choice = value.lower() or "horizontal"
            values["flip"] = None if choice == "none" else choice
        elif name in DEFAULTS:
            values[name] = _strength(text, name, value if has_value else None)
        else:
            raise ConvscopeError(f"--augment {text!r}: unknown augmentation {item!r}; expected a comma-separated list of {GRAMMAR}, e.g. flip,shift=0.1,rotate=10")
    augmentation = Augmentation(**{field.name: values[field.name] for field in fields(Augmentation) if field.name in values})
    return augmentation if augmentation.active else None


def _strength(text: str, name: str, value: str | None) -> float:
    limit, unit = LIMITS[name]
    if value is None:
        return DEFAULTS[name]
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not 0 <= number <= limit:
        raise ConvscopeError(f"--augment {text!r}: {name}={value}; expected {unit} (0 turns it off), e.g. {name}={DEFAULTS[name]:g}")
    return number


def resolve_augment(spec: str | None, input_shape: tuple[int, ...], channels_first: bool = False) -> str | None:
    """The canonical spec for a dataset's images (``default`` decided by its channels), for config.yaml.

    Example:
        >>> resolve_augment("default", (28, 28, 1))
        'shift=0.1,rotate=10,zoom=0.1,contrast=0.2'
    """
    channels = input_shape[0] if channels_first else input_shape[-1]
    augmentation = parse_augment(spec, channels=channels)
    return augmentation.spec() if augmentation else None


def value_range(scaling) -> tuple[float, float]:
    """The smallest and largest model input that pixels 0..255 become under ``scaling`` (unknown: unbounded)."""
    if scaling is None:
        return (-float(np.finfo(np.float32).max), float(np.finfo(np.float32).max))
    if np.ndim(scaling.offset):  # minmax: per pixel position; every training pixel lies in 0..1
        return (0.0, 1.0)
    ends = scaling.apply(np.array([0, 255], dtype=np.float32).reshape(2, 1, 1, 1))
    return (float(ends.min()), float(ends.max()))


def create_layers(augmentation: Augmentation, seeds, value_range_: tuple[float, float], channels: int = 3, black: float = 0.0) -> list:
    """The Keras preprocessing layers of ``augmentation``, each with its own seed, in a fixed order.

    Uncovered corners are black for grayscale images (digits and clothing lie on black: a
    reflected stroke would add ink) and reflected for colour photos (Keras' default).
    """
    import keras  # lazy: parsing a spec (the CLI, config checks) needs no Keras

    fill = {"fill_mode": "constant", "fill_value": black} if channels == 1 else {"fill_mode": "reflect"}
    layers, seeds = [], iter(int(seed) for seed in seeds)
    if augmentation.flip is not None:
        layers.append(keras.layers.RandomFlip(FLIPS[augmentation.flip], seed=next(seeds)))
    if augmentation.shift:
        layers.append(keras.layers.RandomTranslation(augmentation.shift, augmentation.shift, seed=next(seeds), **fill))
    if augmentation.rotate:
        layers.append(keras.layers.RandomRotation(augmentation.rotate / 360.0, seed=next(seeds), **fill))
    if augmentation.zoom:
        layers.append(keras.layers.RandomZoom((-augmentation.zoom, augmentation.zoom), seed=next(seeds), **fill))
    if augmentation.contrast:
        layers.append(keras.layers.RandomContrast(augmentation.contrast, value_range=value_range_, seed=next(seeds)))
    return layers


def epoch_seeds(seed: int, epoch: int, count: int = len(fields(Augmentation))) -> np.ndarray:
    """One seed per layer for this epoch: the same (seed, epoch) always gives the same seeds."""
    return np.random.default_rng([seed, epoch, AUGMENT_STREAM]).integers(0, 2**31 - 1, size=count)


def augment_batches(batches, spec, seed: int, epoch: int, scaling=None):
    """Augment a tf.data.Dataset of (x, y) training batches, seeded by (seed, epoch).

    Args:
        batches: the epoch's training batches, in their seeded order (a ``tf.data.Dataset``).
        spec: an Augmentation, or a spec string as config.yaml records it; None: unchanged.
        seed: the run's seed.
        epoch: the 0-based epoch; each epoch draws new transforms, the same for the same (seed, epoch).
        scaling: the dataset's Scaling (``Dataset.scaling``): contrast is clipped to the range it gives pixels 0..255.

    Returns:
        The dataset with every x batch augmented (labels unchanged), or ``batches`` itself when off.

    Raises:
        ConvscopeError: a bad spec, or batches that are no tf.data.Dataset (another Keras backend).

    Example:
        >>> augmented = augment_batches(batches(x_train, y_train, 128), "flip,rotate=10", seed=0, epoch=0)  # doctest: +SKIP
    """
    augmentation = spec if isinstance(spec, Augmentation) or spec is None else parse_augment(spec)
    if augmentation is None or not augmentation.active:
        return batches
    if not hasattr(batches, "map") or not hasattr(batches, "element_spec"):
        raise ConvscopeError("--augment runs in a tf.data pipeline and needs the TensorFlow backend; set KERAS_BACKEND=tensorflow or drop --augment")
    from convscope.keras_compat import is_channels_first  # lazy: parsing a spec (the CLI, the report) needs no Keras

    shape = batches.element_spec[0].shape
    channels = shape[1] if is_channels_first() else shape[-1]
    low, high = value_range(scaling)
    black = low if scaling is not None else 0.0  # the model input of pixel 0; unscaled inputs: 0
    layers = create_layers(augmentation, epoch_seeds(seed, epoch), (low, high), channels, black)

    def augment(x, y):
        for layer in layers:
            x = layer(x, training=True)
        return x, y

    return batches.map(augment)  # sequential, in order: the seed generators advance batch by batch


def augment_examples(images: np.ndarray, spec, seed: int, count: int = 5, scaling=None) -> np.ndarray:
    """``count`` augmented versions of each image, drawn as training draws them (for the report's grid).

    Args:
        images: (N, ...) model inputs (scaled, in the dataset's layout).
        spec: an Augmentation or a spec string.
        seed: the run's seed (the examples use epoch 0's layer seeds, on their own batch).
        count: versions per image.
        scaling: the dataset's Scaling.

    Returns:
        float32 (N, count, ...) in the images' layout.
    """
    import tensorflow as tf  # lazy: only the figure and training need it

    augmentation = spec if isinstance(spec, Augmentation) else parse_augment(spec)
    repeated = np.repeat(np.asarray(images, dtype=np.float32), count, axis=0)
    if augmentation is None:
        return repeated.reshape(len(images), count, *images.shape[1:])
    batch = tf.data.Dataset.from_tensors((repeated, np.zeros(len(repeated), dtype=np.int64)))
    augmented = next(iter(augment_batches(batch, augmentation, seed, 0, scaling)))[0]
    return np.asarray(augmented).reshape(len(images), count, *images.shape[1:])
