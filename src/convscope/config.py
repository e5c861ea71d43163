"""Run configuration: four flat dataclasses, one per concern, and their YAML form.

A run's resolved configuration is saved as ``config.yaml`` in its folder and can
be fed back with ``--config`` to repeat the run. YAML sets defaults, CLI flags
override them; an unknown key is an error naming the key.

    from convscope.config import RunConfig, load_config, save_config
    config = load_config("runs/mnist/config.yaml", overrides={"train": {"epochs": 5}})
    save_config(config, "runs/again/config.yaml")

The YAML has one mapping per concern::

    data: {dataset: mnist, data_dir: ../shared/data/mnist, scale: unit}
    model: {name: mnist_convnet}
    train: {epochs: 3, batch_size: 128}
    run: {out: runs, name: mnist-convnet}
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from convscope.errors import ConvscopeError
from convscope.fileio import write_text
from convscope.lessons import LESSON_PRESETS

SCALES = ("unit", "minmax", "centered", "standard")
COLOR_MODES = ("grayscale", "rgb")
OPTIMIZERS = ("adam", "rmsprop", "sgd")
SCHEDULES = ("constant", "onecycle")
VALIDATIONS = ("stratified", "random", "last", "test")
STREAMS = ("auto", "on", "off")  # data.stream: folders stream unless off
CACHES = ("auto", "memory", "disk", "none")  # data.cache for streamed images
KEEPS = ("best", "last")
FIND = "find"  # train.learning_rate: run the learning-rate finder first and train at its suggestion
# The finder's sweep (convscope.lrfind), fastai's defaults: start_lr, end_lr, num_it.
LR_FIND_DEFAULTS = (1e-7, 10.0, 100)


@dataclass
class DataConfig:
    """Which images to load and how to prepare them."""

    dataset: str = "mnist-sample"  # name from `convscope datasets`, or npz:PATH, folder:PATH
    data_dir: str | None = None  # folder holding the dataset's files; None: $CONVSCOPE_DATA, then the cache
    scale: str = "unit"  # unit: x/255; minmax: per-pixel, fitted on train; centered: (x-128)/128; standard: mean/std of train
    val_split: float = 0.1  # fraction of training images held out for validation (how: see validation)
    validation: str = "stratified"  # stratified: val_split per class; random: scikit-learn's train_test_split; last: Keras' validation_split; test: the test set (leaks it into model selection)
    val_seed: int | None = None  # seeds the stratified or random split; None: train.seed
    val_first: int = 0  # if > 0: the first N training images are the validation set (overrides val_split)
    test_split: float = 0.0  # if > 0: pool training and test images, hold out this random fraction as the test set (openml's mnist_784 + train_test_split); seeded like val_seed
    limit_train: int = 0  # if > 0: keep only the first N training images (after the validation split)
    image_size: tuple[int, int] | None = None  # (height, width) for folder images; None: size of the first image
    color_mode: str | None = None  # grayscale or rgb for folder images; None: decided by the first image
    stream: str = "auto"  # folder images: on/auto: decoded as training reads them (bounded memory); off: all decoded up front
    cache: str = "auto"  # streamed images, once decoded: memory, disk ($CONVSCOPE_CACHE/images), none; auto: memory up to 512 MB of decoded images, else disk
    allow_download: bool = True  # fetch mnist/fashion-mnist/kmnist/cifar10 into the cache when missing


@dataclass
class ModelConfig:
    """Which network to build."""

    name: str = "mnist_convnet"  # registered name (`convscope models`), a YAML layer list path, or an imported model file
    trust_model: bool = False  # allow legacy .h5 files and Lambda layers in .keras files (both can run arbitrary code)
    weights: str | None = None  # HDF5 weights loaded into the model before anything else (e.g. a lesson's model.weights.best.hdf5)


BASELINE_PREFIX = "sklearn-"  # model names of scikit-learn baselines (`convscope baseline`), e.g. sklearn-mlp-16x16


def is_baseline_name(name: str) -> bool:
    """True for ``sklearn-...`` model names: runs made by `convscope baseline`, not by training a Keras model.

    Example:
        >>> is_baseline_name("sklearn-mlp-16x16"), is_baseline_name("cnn_2conv")
        (True, False)
    """
    return str(name).startswith(BASELINE_PREFIX)


@dataclass
class TrainConfig:
    """How to fit the network."""

    # Defaults: mnist_convnet on mnist-sample reaches 98.3% test accuracy in 12 epochs with
    # onecycle at 5e-3, against 97.4% for 8 epochs of constant 1e-3 (2 CPU cores).
    epochs: int = 12  # passes over the training set
    batch_size: int = 128  # images per gradient step
    optimizer: str = "adam"  # adam, rmsprop or sgd
    learning_rate: float | str = 5e-3  # the constant rate, or the peak rate of onecycle; "find": lr-find's suggestion
    learning_rate_found: bool = False  # True: learning_rate is the finder's suggestion (lr_find.csv), not given
    schedule: str = "onecycle"  # constant, or onecycle (warm up, then anneal to ~0 by the last epoch)
    seed: int = 0  # seeds weights, shuffling, dropout and the validation split
    reduce_lr: tuple[float, int, float] | None = None  # (factor, patience, min_lr) for ReduceLROnPlateau on val_loss
    early_stop: int = 0  # if > 0: stop after this many epochs without val_loss improving
    keep: str = "best"  # which weights end training and are evaluated: best (lowest val_loss) or last (the last epoch's)
    preset: str | None = None  # a named recipe (see config.PRESETS) applied before flags
    tensorboard: bool = False  # write TensorBoard event logs (loss, accuracy, learning rate per epoch) into <run>/tensorboard/
    augment: str | None = None  # training-image augmentation, e.g. "flip,shift=0.1,rotate=10,zoom=0.1,contrast=0.2" (convscope.data.augment); None: off
    devices: str | None = None  # data-parallel over this machine's devices (MirroredStrategy): a count or "all"; None: one device


@dataclass
class RunConfig:
    """Where the run folder goes."""

    out: str = "runs"  # parent folder of run folders
    name: str | None = None  # run folder name; None: <dataset>-<model>-<timestamp>


@dataclass
class Config:
    """Everything a run needs; saved as the run folder's config.yaml."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "run": RunConfig}


def config_to_dict(config: Config) -> dict:
    """Return the config as plain YAML-ready dicts (tuples become lists)."""

    def plain(value):
        return list(value) if isinstance(value, tuple) else value

    return {
        section: {f.name: plain(getattr(getattr(config, section), f.name)) for f in dataclasses.fields(cls)}
        for section, cls in SECTIONS.items()
    }


def config_from_dict(raw: dict, source: str = "config", base: Config | None = None) -> Config:
    """Build a Config from nested dicts, starting from ``base`` (defaults if None).

    Raises:
        ConvscopeError: a section or key is unknown, or a value has the wrong type.
    """
    config = dataclasses.replace(base) if base is not None else Config()
    if not isinstance(raw, dict):
        raise ConvscopeError(f"{source}: expected a mapping with sections {', '.join(SECTIONS)}, got {type(raw).__name__}")
    for section, values in raw.items():
        if section not in SECTIONS:
            raise ConvscopeError(
                f"{source}: unknown section '{section}'; expected one of {', '.join(SECTIONS)}"
            )
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConvscopeError(f"{source}: section '{section}' must be a mapping of key: value")
        cls = SECTIONS[section]
        known = {f.name: f for f in dataclasses.fields(cls)}
        current = dataclasses.asdict(getattr(config, section))
        for key, value in values.items():
            if key not in known:
                raise ConvscopeError(
                    f"{source}: unknown key '{section}.{key}'; expected one of {', '.join(known)}"
                )
            current[key] = _coerce(value, known[key], f"{source}: {section}.{key}")
        if section == "train" and "learning_rate" in values and "learning_rate_found" not in values:
            current["learning_rate_found"] = False  # a rate given here was not found by the finder
        setattr(config, section, cls(**current))
    validate(config, source)
    return config


def _coerce(value, spec: dataclasses.Field, where: str):
    """Convert a YAML value to the field's type, or raise naming the key."""
    if value is None:
        return None
    kind = str(spec.type)
    if kind == "float | str" and str(value).strip().lower() == FIND:
        return FIND
    if where.endswith("data.stream") and isinstance(value, bool):
        return "on" if value else "off"  # YAML reads a bare on/off as a boolean
    try:
        if kind.startswith("tuple"):
            if isinstance(value, str):
                value = [part for part in value.split(",") if part.strip()]
            default_types = {"tuple[int, int] | None": (int, int), "tuple[float, int, float] | None": (float, int, float)}
            types = default_types[kind]
            if len(value) != len(types):
                raise ValueError(f"expected {len(types)} values")
            return tuple(t(v) for t, v in zip(types, value))
        if kind.startswith("bool"):
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "yes", "1", "false", "no", "0"):
                return str(value).lower() in ("true", "yes", "1")
            raise ValueError("expected true or false")
        if kind.startswith("int"):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError("expected a whole number")
            return int(value)
        if kind.startswith("float"):
            return float(value)
        return str(value)
    except (TypeError, ValueError) as error:
        expected = f"a number or {FIND!r}" if kind == "float | str" else kind
        raise ConvscopeError(f"{where}: cannot use {value!r} ({error}); expected {expected}") from None


def validate(config: Config, source: str = "config") -> None:
    """Check choices and ranges; raise ConvscopeError naming the bad value."""
    checks = [
        (config.data.scale in SCALES, f"data.scale={config.data.scale!r}; expected one of {', '.join(SCALES)}"),
        (config.data.color_mode in (None, *COLOR_MODES), f"data.color_mode={config.data.color_mode!r}; expected grayscale or rgb"),
        (0.0 <= config.data.val_split < 1.0, f"data.val_split={config.data.val_split}; expected 0 <= value < 1"),
        (config.data.validation in VALIDATIONS, f"data.validation={config.data.validation!r}; expected one of {', '.join(VALIDATIONS)}"),
        (config.data.validation != "test" or config.data.val_first == 0, f"data.validation=test with data.val_first={config.data.val_first}; the test set is the validation set, so drop val_first"),
        (config.data.stream in STREAMS, f"data.stream={config.data.stream!r}; expected one of {', '.join(STREAMS)}"),
        (config.data.cache in CACHES, f"data.cache={config.data.cache!r}; expected one of {', '.join(CACHES)}"),
        (0.0 <= config.data.test_split < 1.0, f"data.test_split={config.data.test_split}; expected 0 (the source's own test set) or a fraction below 1"),
        (config.data.val_first >= 0, f"data.val_first={config.data.val_first}; expected 0 or more"),
        (config.data.limit_train >= 0, f"data.limit_train={config.data.limit_train}; expected 0 or more"),
        (config.data.image_size is None or min(config.data.image_size) > 0, f"data.image_size={config.data.image_size}; expected two positive sizes H,W"),
        (config.train.epochs > 0, f"train.epochs={config.train.epochs}; expected a positive number"),
        (config.train.batch_size > 0, f"train.batch_size={config.train.batch_size}; expected a positive number"),
        (config.train.optimizer in OPTIMIZERS, f"train.optimizer={config.train.optimizer!r}; expected one of {', '.join(OPTIMIZERS)}"),
        (config.train.schedule in SCHEDULES, f"train.schedule={config.train.schedule!r}; expected one of {', '.join(SCHEDULES)}"),
        (
            config.train.learning_rate == FIND or (isinstance(config.train.learning_rate, (int, float)) and 0 < config.train.learning_rate < math.inf),
            f"train.learning_rate={config.train.learning_rate}; expected a positive number, e.g. 1e-3, or {FIND!r} (the learning-rate finder)",
        ),
        (config.train.reduce_lr is None or config.train.schedule == "constant", "train.reduce_lr needs train.schedule constant (a schedule already sets every step's rate); drop one of them"),
        (config.train.early_stop >= 0, f"train.early_stop={config.train.early_stop}; expected 0 (off) or a patience in epochs"),
        (config.train.keep in KEEPS, f"train.keep={config.train.keep!r}; expected best or last"),
        (config.train.devices is None or str(config.train.devices) == "all" or str(config.train.devices).isdigit() and int(config.train.devices) > 0,
         f"train.devices={config.train.devices!r}; expected a number of devices (1, 2, ...) or all"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConvscopeError(f"{source}: {message}")


# Named recipes, applied above the defaults and below --config and flags.
PRESETS: dict[str, dict] = {
    # The least training time to about 99% MNIST test accuracy on 2 CPU cores: one epoch of
    # mnist_fast (5x5 stride-2 conv 16, conv 32, fused batch norm), one-cycle at 1e-2, batch
    # 125 (it divides 60,000: no partial last batch retraces the step), then all 60,000
    # training images. Chosen on validation runs (54,000 training / 6,000 stratified
    # validation images, the test set never scored; bench/README.md has the table): one
    # epoch reached 98.92 / 98.67 / 98.82 / 98.68 / 99.17% validation accuracy (seeds 0-4,
    # mean 98.85%). Rounding alone moves a seed by up to 0.3 points (Keras' own Adam, whose
    # operations round differently from the fused kernel's, gave
    # 98.62 / 98.50 / 98.77% on seeds 0-2), and nothing tried beat it by more: batch 64 or
    # 100, peak 5e-3 or 2e-2, Adam betas (0.7, 0.9) or (0.8, 0.99), a longer warm-up,
    # standardized pixels, conv1 24 or conv2 40 filters, Dense 256 (means 98.61-98.78%); a second epoch
    # (99.01%) doubles the time. Test accuracy, scored once per seed after the choice
    # (bench/time_to_accuracy.py): 98.97 / 98.99 / 99.07 / 98.96 / 98.87% (mean 98.97%) in
    # 2.6-2.8 s of training, 0.041x the neural-networks lesson's fit (67.3 s, 99.00%).
    "fast": {
        "data": {"val_split": 0.0},
        "model": {"name": "mnist_fast"},
        "train": {"epochs": 1, "batch_size": 125, "optimizer": "adam", "learning_rate": 1e-2, "schedule": "onecycle"},
    },
    # The most MNIST test accuracy in the lesson recipe's time (bench/time_to_accuracy.py
    # times both): the fast preset's model for 16 epochs on images shifted and rotated anew
    # each epoch, all 60,000 training images, the last epoch's weights. Chosen on the same
    # validation split: 99.37 / 99.23 / 99.60% (seeds 0-2, mean 99.40%); adding zoom 0.1 gave
    # 99.43 / 99.20 / 99.50% for more time, 12 epochs 99.33% (seed 0), and wider models
    # (conv 32 and 48 or 64, Dense 256, 6-8 epochs) 99.22-99.32% in as much time. Test
    # accuracy, scored once per seed: 99.37 / 99.48 / 99.44% (mean 99.43%) in 0.64x the lesson's fit.
    "best": {
        "data": {"val_split": 0.0},
        "model": {"name": "mnist_fast"},
        "train": {"epochs": 16, "batch_size": 125, "optimizer": "adam", "learning_rate": 1e-2, "schedule": "onecycle",
                  "augment": "shift=0.1,rotate=10", "keep": "last"},
    },
}
# One preset per lesson run (convscope.lessons; `convscope lessons` lists them).
PRESETS.update(LESSON_PRESETS)


def resolve_config(config_path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Defaults, then the preset named anywhere, then the YAML file, then ``overrides`` (CLI flags).

    Example:
        >>> resolve_config(overrides={"train": {"epochs": 2}}).train.epochs
        2
    """
    raw = {}
    source = "command line"
    if config_path is not None:
        path = Path(config_path)
        if path.is_dir():
            path = path / "config.yaml"
        raw = _read_yaml(path)
        source = str(path)
    overrides = overrides or {}
    preset = (overrides.get("train") or {}).get("preset") or ((raw.get("train") or {}).get("preset") if isinstance(raw, dict) else None)
    config = Config()
    if preset is not None:
        if preset not in PRESETS:
            raise ConvscopeError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS) or '(none)'}")
        config = config_from_dict(PRESETS[preset], source=f"preset {preset}")
    config = config_from_dict(raw, source=source, base=config)
    return config_from_dict(overrides, source="command line", base=config)


def _read_yaml(path: Path):
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConvscopeError(f"{path}: config file not found; pass the path of a run.yaml or a run folder") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        reason = str(error).splitlines()[0]
        raise ConvscopeError(f"{path}: not a readable YAML file ({reason}); fix the file or pass another --config") from None


def load_config(path: str | Path, base: Config | None = None) -> Config:
    """Read a YAML config file; keys it does not set keep ``base``'s values (defaults if None)."""
    path = Path(path)
    return config_from_dict(_read_yaml(path), source=str(path), base=base)


def save_config(config: Config, path: str | Path) -> Path:
    """Write the config as YAML, atomically."""
    return write_text(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))
