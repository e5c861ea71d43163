"""Training: fit a model and write a run folder that survives interruption.

    from convscope.config import Config
    from convscope.train import train
    result = train(Config())                     # mnist-sample, mnist_convnet, 8 epochs
    print(result.run.path, result.metrics["test_accuracy"])
    train(result.config, resume=True)            # continue an interrupted run

The epoch loop is ours (one `model.fit` call per epoch, shuffled by a seeded
permutation, dropout seeds reset from (seed, epoch)) so that a run resumed from
its last complete epoch reaches the same weights as one never interrupted.
Per-epoch fit calls cost nothing measurable here (3 epochs: 10.4 s looped vs
11.8 s in one call, 20,000 images, 2 cores). The callbacks the lessons use —
best checkpoint on val_loss with best weights restored, ReduceLROnPlateau,
EarlyStopping — are reimplemented in that loop with Keras' semantics, because
Keras' own reset their state at every fit call.

After each complete epoch, in this order and each file atomically:
``model.keras`` when val_loss improved, ``checkpoint/epoch-NNNN.json`` (loop
state and history) and ``epoch-NNNN.keras`` (model + optimizer), ``history.csv``.
The two newest checkpoints are kept; resume falls back to the older one when
the newest does not load.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import platform
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import keras
import numpy as np

from convscope.keras_compat import batches, describe_backend, seed_everything
from convscope.config import Config, save_config
from convscope.errors import ConvscopeError, TrainingInterrupted
from convscope.fileio import atomic_path, remove_stale_temps, write_json, write_text
from convscope.runfolder import RunFolder

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds")
CHECKPOINTS_KEPT = 2  # the newest, and one to fall back to if the newest is damaged
REDUCE_LR_MIN_DELTA = 1e-4  # ReduceLROnPlateau's default: smaller val_loss gains count as no gain
ONECYCLE_WARMUP_FRACTION = 0.2  # linear warm-up over the first 20% of steps, then cosine to 0
ONECYCLE_START_DIVISOR = 25.0  # warm-up starts at peak/25, as in fastai's fit_one_cycle
# Batches per call into TensorFlow while training (see batches_per_call). Each call costs
# about 1.5 ms of Python and dispatch here, 10-17% of a small model's step: 8 at a time,
# mnist_fast trained at 10,300 images/s instead of 8,800 (mnist_convnet 3,740 instead of
# 3,500), with identical weights. Callbacks (NaN checks, Ctrl-C, progress) then run once
# per 8 batches.
STEPS_PER_EXECUTION = 8
PROGRESS_SECONDS = 0.2  # the interactive progress line is redrawn at most this often


@dataclass
class TrainResult:
    """What a finished training run produced."""

    run: RunFolder  # the run folder
    config: Config  # the resolved config saved in it
    model: keras.Model  # the model with the best weights restored
    history: dict[str, list[float]]  # one list per history.csv column
    metrics: dict  # test_loss, test_accuracy, best_epoch, train_seconds, ...
    dataset: object = field(repr=False, default=None)  # the convscope.data.Dataset used


# --------------------------------------------------------------------------- run folder


def default_run_name(config: Config) -> str:
    """Name a run `<dataset>-<model>-<YYYYmmdd-HHMMSS>`."""

    def slug(text: str) -> str:
        text = Path(text.split(":", 1)[-1]).stem if ":" in text or text.endswith((".yaml", ".yml")) else text
        return "".join(c if c.isalnum() or c in "-_" else "-" for c in text).strip("-") or "run"

    return f"{slug(config.data.dataset)}-{slug(config.model.name)}-{datetime.now():%Y%m%d-%H%M%S}"


def prepare_run_folder(config: Config, resume: bool) -> RunFolder:
    """Create (or, when resuming, check) the run folder and clean temp files a killed run left."""
    if config.run.name is None:
        config.run.name = default_run_name(config)
    run = RunFolder(Path(config.run.out) / config.run.name)
    # config.yaml is written before epoch 1; a folder without it (killed while loading data) holds no run.
    has_run = any(path.exists() for path in (run.config_path, run.history_path, run.model_path)) or bool(list_checkpoints(run))
    if has_run and not resume:
        raise ConvscopeError(
            f"{run.path}: already holds a run; continue it with `convscope train --resume {run.path}` "
            "or choose another --name"
        )
    if resume and not run.path.is_dir():
        raise ConvscopeError(f"{run.path}: no run folder to resume; check the path or start a new run without --resume")
    try:
        run.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConvscopeError(f"{run.path}: cannot create the run folder ({error.strerror}); pass a writable --out") from None
    for folder in (run.path, run.checkpoint_dir):
        for stale in remove_stale_temps(folder):
            warnings.warn(f"removed {stale}, a partial file left by an interrupted run", stacklevel=2)
    return run


def describe_environment(config: Config) -> dict:
    """Versions, seed, machine and command line, for environment.json."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    import convscope

    return {
        "convscope": convscope.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        **describe_backend(),
        "seed": config.train.seed,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "command": " ".join(["convscope", *sys.argv[1:]]) if Path(sys.argv[0]).name == "convscope" else None,
        "started": datetime.now().isoformat(timespec="seconds"),
    }


def describe_dataset(dataset) -> dict:
    """What the report says about the data, for data.json."""
    return {
        "name": dataset.name,
        "source": dataset.source,
        "class_names": list(dataset.class_names),
        "input_shape": list(dataset.input_shape),
        "num_classes": dataset.num_classes,
        "preprocessing": dataset.preprocessing,
    }


def write_history(run: RunFolder, history: dict[str, list[float]]) -> None:
    """Rewrite history.csv atomically with every completed epoch."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HISTORY_COLUMNS)
    for row in zip(*(history[column] for column in HISTORY_COLUMNS)):
        writer.writerow(["" if isinstance(v, float) and math.isnan(v) else (f"{v:.6g}" if isinstance(v, float) else v) for v in row])
    try:
        write_text(run.history_path, buffer.getvalue())
    except OSError as error:
        raise ConvscopeError(
            f"{run.history_path}: cannot write ({error.strerror or error}); the previous file is intact; "
            "free disk space, then resume with --resume"
        ) from None


def save_keras(model: keras.Model, path: Path) -> None:
    """Save a model atomically; a full disk becomes a clear error, the old file intact."""
    try:
        with atomic_path(path) as tmp:
            model.save(tmp)
    except OSError as error:
        raise ConvscopeError(
            f"{path}: cannot write ({error.strerror or error}); the previous file is intact; "
            "free disk space or pass another --out, then resume with --resume"
        ) from None


# --------------------------------------------------------------------------- model and optimizer


def outputs_probabilities(model: keras.Model) -> bool:
    """True if the model ends in a softmax, so the loss must not apply another one."""
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    name = getattr(activation, "__name__", str(activation))
    return name == "softmax" or type(last).__name__ == "Softmax"


def create_optimizer(config: Config, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """The optimizer with a constant rate or a one-cycle schedule over all steps."""
    train = config.train
    learning_rate = train.learning_rate
    if train.schedule == "onecycle":
        total_steps = steps_per_epoch * train.epochs
        warmup_steps = max(1, int(total_steps * ONECYCLE_WARMUP_FRACTION))
        learning_rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=train.learning_rate / ONECYCLE_START_DIVISOR,
            decay_steps=max(1, total_steps - warmup_steps),
            alpha=0.0,
            warmup_target=train.learning_rate,
            warmup_steps=warmup_steps,
        )
    optimizers = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop, "sgd": keras.optimizers.SGD}
    return optimizers[train.optimizer](learning_rate=learning_rate)


def compile_model(model: keras.Model, config: Config, steps_per_epoch: int) -> None:
    """Compile with integer labels: sparse cross-entropy, so labels never need one-hot encoding."""
    model.compile(
        optimizer=create_optimizer(config, steps_per_epoch),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_probabilities(model)),
        metrics=["accuracy"],
    )


def build_training_state(model: keras.Model, x, y) -> None:
    """Create the optimizer's and the metrics' variables now, from one example's shapes.

    Otherwise Keras (TensorFlow, no distribution strategy) creates them while tracing the
    first training step, and TensorFlow traces a function that created variables a second
    time: the first epoch of mnist_fast took 1 s longer here. ``_symbolic_build`` is private,
    but it is Keras' own way to build that state, which it uses under a distribution strategy.
    """
    model._symbolic_build(data_batch=(x, y, None))


@contextlib.contextmanager
def batches_per_call(model: keras.Model, count: int):
    """Inside, ``fit`` and ``evaluate`` run ``count`` batches per call into the backend.

    Not compiled into the model: ``predict`` with more than one batch per call traces its
    function again for every new size of the last group (and TensorFlow warns about it),
    and saved models would carry the setting into evaluate and inspect. On the way out the
    model gets 1 again and drops the functions built for ``count``; Keras rebuilds them.
    """
    model.steps_per_execution = count
    try:
        yield model
    finally:
        model.steps_per_execution = 1
        model.train_function = model.test_function = model.predict_function = None


def current_learning_rate(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def reset_random_state(model: keras.Model, seed: int, epoch: int) -> None:
    """Set every dropout (and other random layer) seed from (seed, epoch).

    Keras keeps these seeds in per-layer SeedGenerator variables that .keras files
    do not store, so a resumed run would otherwise draw different dropout masks.
    """
    rng = np.random.default_rng([seed, epoch])
    for layer in model._flatten_layers(include_self=True):  # private, but the only way to reach every nested layer
        for generator in getattr(layer, "_seed_generators", []):
            state = generator.state
            generator.state.assign(np.array([rng.integers(0, 2**30), 0], dtype=state.dtype))


# --------------------------------------------------------------------------- callbacks


class EpochMonitor(keras.callbacks.Callback):
    """Stops on NaN/Inf loss or SIGINT, naming the batches, and shows progress.

    Keras calls it once per STEPS_PER_EXECUTION batches, with the epoch's running mean
    loss: a NaN batch makes that mean NaN, so divergence is caught in the group of batches
    that caused it. Reading the loss costs about 7 microseconds per call (Keras' conversion
    of the logs included), against 10+ ms per training step: TensorFlow runs each CPU step
    to completion before returning, so there is nothing to wait for.
    """

    def __init__(self, epoch: int, epochs: int, steps: int, interactive: bool):
        super().__init__()
        self.epoch, self.epochs, self.steps, self.interactive = epoch, epochs, steps, interactive
        self.bad_loss: tuple[str, float] | None = None  # ("batch 3" or "batches 1-8", value)
        self.interrupted_at: int | None = None  # batch
        self.interrupt_requested = False
        self.batches_done = 0
        self.started = self.drawn = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        # Keras names the group's last batch, counting past the epoch's end for a short last group.
        first, done = self.batches_done + 1, min(batch + 1, self.steps)
        self.batches_done = done
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            self.bad_loss = (f"batch {done}" if first >= done else f"batches {first}-{done}", loss)
            self.model.stop_training = True
        elif self.interrupt_requested:
            self.interrupted_at = done
            self.model.stop_training = True
        elif self.interactive and (time.perf_counter() - self.drawn > PROGRESS_SECONDS or done == self.steps):
            self.drawn = time.perf_counter()
            bar = "=" * int(30 * done / self.steps)
            sys.stdout.write(
                f"\rEpoch {self.epoch + 1}/{self.epochs} [{bar:<30}] {done}/{self.steps} "
                f"loss {loss:.4f} {self.drawn - self.started:.0f}s"
            )
            sys.stdout.flush()


class SigintGuard:
    """While active, Ctrl-C asks training to stop at the end of the current batch, or, between
    epochs, once the epoch's files are written; a second Ctrl-C stops at once."""

    def __init__(self):
        self.monitor: EpochMonitor | None = None
        self.previous = None
        self.requested = False

    def __enter__(self):
        if hasattr(signal, "SIGINT") and _in_main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.requested = True
        if self.monitor is not None:
            self.monitor.interrupt_requested = True

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# --------------------------------------------------------------------------- resume


def fingerprint(config: Config, dataset) -> dict:
    """What must not change between a run and its resumption."""
    return {
        "dataset": config.data.dataset,
        "model": config.model.name,
        "scale": config.data.scale,
        "input_shape": list(dataset.input_shape),
        "class_names": list(dataset.class_names),
        "train_size": int(len(dataset.y_train)),
        "batch_size": config.train.batch_size,
        "optimizer": config.train.optimizer,
        "schedule": config.train.schedule,
        "learning_rate": config.train.learning_rate,  # the checkpoint's optimizer keeps the old one
        # One-cycle spreads its schedule over all epochs; more epochs would run at rate 0.
        **({"epochs": config.train.epochs} if config.train.schedule == "onecycle" else {}),
        "seed": config.train.seed,
    }


def check_same_run(saved: dict, current: dict, run: RunFolder) -> None:
    """Refuse to resume when the model, data or recipe differ from the run's own."""
    differences = [
        f"{key}: run has {saved.get(key)!r}, now {current[key]!r}"
        for key in current
        if key in saved and saved[key] != current[key]
    ]
    if differences:
        raise ConvscopeError(
            f"{run.path}: cannot resume with different settings ({'; '.join(differences)}); "
            "resume with the run's own settings (`convscope train --resume RUN` alone) or start a new run"
        )


def list_checkpoints(run: RunFolder) -> list[Path]:
    """Checkpoint files, newest first."""
    return sorted(run.checkpoint_dir.glob("epoch-*.keras"), reverse=True)


def load_checkpoint(run: RunFolder, trust: bool = False) -> tuple[keras.Model, dict] | None:
    """Load the newest checkpoint that loads; warn about each that does not.

    Args:
        run: the run folder.
        trust: the run's --trust-model (a trusted Lambda layer must resume too).

    Returns:
        (model with its optimizer, loop state), or None when the run has no
        checkpoint (interrupted in its first epoch).
    """
    from convscope.models import load_model

    candidates = list_checkpoints(run)
    for path in candidates:
        state_path = damaged = path.with_suffix(".json")
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
            damaged = path
            return load_model(path, trust=trust, compile=True), state
        except Exception as error:  # noqa: BLE001 - any failure to read means: damaged, try the older one
            reason = " ".join(str(error).split())[:120]  # Keras' messages span lines; a warning is one
            warnings.warn(f"{damaged}: damaged checkpoint ({type(error).__name__}: {reason}); trying an older one", stacklevel=2)
    if candidates:
        raise ConvscopeError(
            f"{run.checkpoint_dir}: no checkpoint loads ({len(candidates)} damaged); "
            f"delete {run.path} and train again without --resume"
        )
    return None


def save_checkpoint(run: RunFolder, model: keras.Model, state: dict) -> None:
    """Write epoch-NNNN.json then epoch-NNNN.keras, then drop checkpoints beyond the newest two."""
    stem = run.checkpoint_dir / f"epoch-{state['epoch']:04d}"
    try:
        write_json(stem.with_suffix(".json"), state)
    except OSError as error:
        raise ConvscopeError(
            f"{stem}.json: cannot write ({error.strerror or error}); the previous checkpoint is intact; "
            "free disk space, then resume with --resume"
        ) from None
    save_keras(model, stem.with_suffix(".keras"))
    for old in list_checkpoints(run)[CHECKPOINTS_KEPT:]:
        old.unlink(missing_ok=True)
        old.with_suffix(".json").unlink(missing_ok=True)


# --------------------------------------------------------------------------- train


def train(config: Config, model: keras.Model | None = None, dataset=None, resume: bool = False) -> TrainResult:
    """Train a model and write its run folder.

    Args:
        config: the resolved run configuration.
        model: a Keras model (Sequential or functional, called or not) to train
            instead of ``config.model.name``.
        dataset: a ``convscope.data.Dataset`` to use instead of loading ``config.data``.
        resume: continue the run in ``config.run.out/config.run.name`` from its
            last complete epoch.

    Returns:
        TrainResult with the run folder, the best model, the history and test metrics.

    Raises:
        ConvscopeError: bad input, NaN/Inf loss, a full disk, or a resume that
            does not match the run; TrainingInterrupted on Ctrl-C.

    Example:
        >>> result = train(Config())  # doctest: +SKIP
    """
    from convscope.data import load_dataset
    from convscope.models import create_model, load_model

    # Data and model before the run folder: a bad dataset or model name leaves no empty folder behind.
    if dataset is None:
        dataset = load_dataset(config.data, seed=config.train.seed)
    if len(dataset.y_train) == 0:
        raise ConvscopeError(f"{config.data.dataset}: no training images; check the dataset and --limit-train")
    seed_everything(config.train.seed)
    if model is not None:
        config.model.name = f"python:{model.name}"  # built in Python: config.yaml can name it, not rebuild it
    if model is not None or not resume:  # a resumed run takes its model from the checkpoint
        model = create_model(model if model is not None else config.model.name, dataset.input_shape, dataset.num_classes)
    run = prepare_run_folder(config, resume)
    current = fingerprint(config, dataset)
    steps_per_epoch = math.ceil(len(dataset.y_train) / config.train.batch_size)

    loop = {
        "epoch": 0, "best_value": math.inf, "best_epoch": 0, "stopped_early": False,
        "stale_epochs": 0, "plateau_best": math.inf, "plateau_epochs": 0,
    }
    history: dict[str, list] = {column: [] for column in HISTORY_COLUMNS}
    checkpoint = load_checkpoint(run, trust=config.model.trust_model) if resume else None
    if checkpoint is not None:
        model, state = checkpoint
        check_same_run(state.get("fingerprint", {}), current, run)
        loop.update({key: state[key] for key in loop})
        history = {column: list(values) for column, values in state["history"].items()}
        write_history(run, history)  # a kill between checkpoint and history write left it one epoch behind
        print(f"Resuming {run.path} after epoch {loop['epoch']}")
    else:
        if resume:
            print(f"Resuming {run.path}: no complete epoch was saved, starting from epoch 1")
            if model is None:
                model = create_model(config.model.name, dataset.input_shape, dataset.num_classes)
        compile_model(model, config, steps_per_epoch)
        save_config(config, run.config_path)
        write_json(run.environment_path, describe_environment(config))
        write_json(run.data_path, describe_dataset(dataset))
    build_training_state(model, dataset.x_train[:1], dataset.y_train[:1])
    best_weights = model.get_weights()
    if resume and run.model_path.exists() and loop["best_epoch"] > 0:
        best_weights = load_model(run.model_path, trust=config.model.trust_model).get_weights()

    has_validation = len(dataset.y_val) > 0
    # Backend tensors made once: fit() given NumPy arrays converts the whole set again at every
    # epoch's call (full MNIST, 0.19 GB: 2.3 s -> 1.0 s of fixed cost per epoch, 2 loaded cores).
    x_train, y_train = keras.ops.convert_to_tensor(dataset.x_train), keras.ops.convert_to_tensor(dataset.y_train)
    validation = batches(dataset.x_val, dataset.y_val, config.train.batch_size) if has_validation else None
    monitor_key = "val_loss" if has_validation else "loss"
    interactive = sys.stdout.isatty()
    started = time.perf_counter()
    with SigintGuard() as guard, batches_per_call(model, STEPS_PER_EXECUTION):
        for epoch in range(loop["epoch"], config.train.epochs):
            if loop["stopped_early"]:
                break
            order = keras.ops.convert_to_tensor(np.random.default_rng([config.train.seed, epoch]).permutation(len(dataset.y_train)))
            reset_random_state(model, config.train.seed, epoch)
            monitor = EpochMonitor(epoch, config.train.epochs, steps_per_epoch, interactive)
            guard.monitor = monitor
            monitor.interrupt_requested = guard.requested
            epoch_start = time.perf_counter()
            logs = model.fit(
                batches(keras.ops.take(x_train, order, axis=0), keras.ops.take(y_train, order, axis=0), config.train.batch_size),
                epochs=epoch + 1, initial_epoch=epoch, shuffle=False, validation_data=validation,
                callbacks=[monitor], verbose=0,
            ).history
            guard.monitor = None
            if interactive:
                sys.stdout.write("\r" + " " * 90 + "\r")
            kept = f"the last good checkpoint is kept in {run.checkpoint_dir}" if loop["epoch"] else "no epoch completed, nothing was saved"
            if monitor.bad_loss is not None:
                where, value = monitor.bad_loss
                raise ConvscopeError(
                    f"training diverged: loss became {value} at epoch {epoch + 1}, {where}; "
                    f"{kept}; lower --learning-rate or check the data for NaN/Inf"
                )
            if monitor.interrupted_at is not None:
                raise TrainingInterrupted(
                    f"interrupted at epoch {epoch + 1}, batch {monitor.interrupted_at}; "
                    f"{loop['epoch']} complete epoch(s) saved; continue with `convscope train --resume {run.path}`"
                )
            row = {
                "epoch": epoch + 1,
                "loss": float(logs["loss"][-1]),
                "accuracy": float(logs["accuracy"][-1]),
                "val_loss": float(logs["val_loss"][-1]) if has_validation else math.nan,
                "val_accuracy": float(logs["val_accuracy"][-1]) if has_validation else math.nan,
                "learning_rate": current_learning_rate(model),
                "seconds": round(time.perf_counter() - epoch_start, 3),
            }
            value = row[monitor_key]
            if not math.isfinite(value):
                raise ConvscopeError(
                    f"training diverged: {monitor_key} became {value} at epoch {epoch + 1}; "
                    f"{kept}; lower --learning-rate or check the data"
                )
            # A batch's loss is computed before its update: an update that breaks the
            # weights on the epoch's last batch leaves every logged loss finite.
            weights = model.get_weights()
            if not all(np.isfinite(array).all() for array in weights):
                raise ConvscopeError(
                    f"training diverged: weights became NaN or Inf at epoch {epoch + 1}, batch {steps_per_epoch} "
                    f"(the epoch's last, whose loss was still finite); {kept}; lower --learning-rate or check the data"
                )
            for column in HISTORY_COLUMNS:
                history[column].append(row[column])
            improved = value < loop["best_value"]
            if improved:
                loop["best_value"], loop["best_epoch"] = value, epoch + 1
                best_weights = weights
            update_callbacks(model, config, loop, value, improved)
            loop["epoch"] = epoch + 1
            if improved:  # before the checkpoint: a resume never sees a best epoch newer than model.keras
                save_keras(model, run.model_path)
            save_checkpoint(run, model, {**loop, "fingerprint": current, "history": history})
            write_history(run, history)
            print(format_epoch(row, config.train.epochs, improved), flush=True)
            if guard.requested:
                raise TrainingInterrupted(
                    f"interrupted after epoch {epoch + 1}; {loop['epoch']} complete epoch(s) saved; "
                    f"continue with `convscope train --resume {run.path}`"
                )
    train_seconds = time.perf_counter() - started
    model.set_weights(best_weights)
    return TrainResult(run, config, model, history, finish_metrics(run, model, dataset, config, loop, history, train_seconds), dataset)


def update_callbacks(model: keras.Model, config: Config, loop: dict, value: float, improved: bool) -> None:
    """ReduceLROnPlateau and EarlyStopping with Keras' rules, state kept in ``loop`` for resume."""
    if config.train.reduce_lr is not None:
        factor, patience, min_lr = config.train.reduce_lr
        gained = value < loop["plateau_best"] - REDUCE_LR_MIN_DELTA
        if gained:
            loop["plateau_best"], loop["plateau_epochs"] = value, 0
        else:
            loop["plateau_epochs"] += 1
            if loop["plateau_epochs"] >= patience:
                new_rate = max(current_learning_rate(model) * factor, min_lr)
                model.optimizer.learning_rate.assign(new_rate)
                loop["plateau_epochs"] = 0
    if config.train.early_stop > 0:
        loop["stale_epochs"] = 0 if improved else loop["stale_epochs"] + 1
        if loop["stale_epochs"] >= config.train.early_stop:
            loop["stopped_early"] = True


def format_epoch(row: dict, epochs: int, improved: bool) -> str:
    text = f"Epoch {row['epoch']}/{epochs}: loss {row['loss']:.4f} accuracy {row['accuracy']:.4f}"
    if not math.isnan(row["val_loss"]):
        text += f" val_loss {row['val_loss']:.4f} val_accuracy {row['val_accuracy']:.4f}"
    return text + f" lr {row['learning_rate']:.2g} {row['seconds']:.1f}s" + (" *best" if improved else "")


def finish_metrics(run: RunFolder, model, dataset, config: Config, loop: dict, history: dict, train_seconds: float) -> dict:
    """Evaluate the best model on the test set and write metrics.json."""
    metrics = {
        "best_epoch": loop["best_epoch"],
        "epochs_run": loop["epoch"],
        "stopped_early": loop["stopped_early"],
        "train_seconds": round(float(np.sum(history["seconds"])), 2),
        "last_session_seconds": round(train_seconds, 2),
    }
    if loop["best_epoch"] and not math.isnan(history["val_loss"][loop["best_epoch"] - 1]):
        metrics["best_val_loss"] = history["val_loss"][loop["best_epoch"] - 1]
        metrics["best_val_accuracy"] = history["val_accuracy"][loop["best_epoch"] - 1]
    if len(dataset.y_test):
        test_loss, test_accuracy = model.evaluate(batches(dataset.x_test, dataset.y_test, 512), verbose=0)
        metrics.update(test_loss=float(test_loss), test_accuracy=float(test_accuracy))
        print(f"Test: loss {test_loss:.4f} accuracy {test_accuracy:.4f} ({run.path})")
    run.update_metrics(metrics)
    return metrics
