"""Training: fit a model and write a run folder that survives interruption.

    from convscope.config import Config
    from convscope.train import train
    result = train(Config())                     # mnist-sample, mnist_convnet, 12 epochs
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

After each complete epoch, in this order and each file atomically (runfolder.py):
``model.keras`` when val_loss improved, ``checkpoint/epoch-NNNN.json`` (loop
state and history) and ``epoch-NNNN.keras`` (model + optimizer), ``history.csv``.
The two newest checkpoints are kept; resume falls back to the older one when
the newest does not load. Training ends by predicting the test set once with the
kept weights: predictions.npz and the test metrics, which every later stage reads.

With ``learning_rate: find`` (``--learning-rate find``) the learning-rate finder
(convscope.lrfind) sweeps the fresh model first, restores it, writes lr_find.csv,
and the run trains at its suggestion, which config.yaml then records.

The lines a user sees go to the ``convscope.results`` logger (epochs, test
result) and ``convscope.progress`` (the redrawn progress line); the CLI decides
where they appear.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field

import keras
import numpy as np

from convscope.config import FIND, Config, is_baseline_name
from convscope.data import load_dataset
from convscope.data.augment import augment_batches, resolve_augment
from convscope.data.checks import check_dataset
from convscope.data.source import data_source
from convscope.data.stream import pipeline_errors
from convscope.distribute import (
    Cluster,
    DistributedTrainer,
    check_batch_size,
    check_same_config,
    check_supported,
    finish_distributed,
    join_cluster,
    remove_scratch,
    worker_config,
)
from convscope.errors import ConvscopeError, TrainingInterrupted
from convscope.evaluate import EvaluationResult, evaluate
from convscope.keras_compat import (
    batches_per_call,
    build_training_state,
    create_tensorboard_callback,
    reset_random_state,
    seed_everything,
)
from convscope.lrfind import find_learning_rate_in_run
from convscope.models import create_model, load_model, load_weights
from convscope.optim import compile_model, current_learning_rate
from convscope.runfolder import HISTORY_COLUMNS, RunFolder, describe_environment, new_run, with_run_name

REDUCE_LR_MIN_DELTA = 1e-4  # ReduceLROnPlateau's default: smaller val_loss gains count as no gain
# Batches per call into TensorFlow while training (see keras_compat.batches_per_call). Each call
# costs about 1.5 ms of Python and dispatch here, 10-17% of a small model's step: 8 at a
# time, mnist_fast trained at 10,300 images/s instead of 8,800 (mnist_convnet 3,740 instead
# of 3,500), with identical weights. Callbacks (NaN checks, Ctrl-C, progress) then run once
# per 8 batches.
STEPS_PER_EXECUTION = 8
PROGRESS_SECONDS = 0.2  # the progress line is redrawn at most this often

results = logging.getLogger("convscope.results")  # what a run reports: the CLI prints it on stdout
progress = logging.getLogger("convscope.progress")  # a line redrawn in place: the CLI shows it on a terminal


@dataclass
class TrainResult:
    """What a finished training run produced."""

    run: RunFolder  # the run folder
    config: Config  # the resolved config saved in it
    model: keras.Model  # the model with the kept weights
    history: dict[str, list[float]]  # one list per history.csv column
    metrics: dict  # test_loss, test_accuracy, best_epoch, train_seconds, ...
    dataset: object = field(repr=False, default=None)  # the convscope.data.Dataset used
    evaluation: EvaluationResult | None = field(repr=False, default=None)  # the test set, predicted once
    chief: bool = True  # False: a distributed run's other worker, whose folder is scratch (the chief's is the run's)


@dataclass
class LoopState:
    """The epoch loop's state, saved in every checkpoint so that a resumed run continues it exactly."""

    epoch: int = 0  # complete epochs
    best_value: float = math.inf  # lowest monitored loss so far
    best_epoch: int = 0  # the epoch whose weights are kept (0: none yet)
    stopped_early: bool = False
    stale_epochs: int = 0  # epochs without improvement, for EarlyStopping
    plateau_best: float = math.inf  # ReduceLROnPlateau's reference loss
    plateau_epochs: int = 0  # epochs on the plateau since the last cut


@dataclass
class Training:
    """One training run in progress: what every step of the epoch loop reads and updates."""

    run: RunFolder
    config: Config
    model: keras.Model
    dataset: object
    state: LoopState
    history: dict[str, list]  # one list per history.csv column
    best_weights: list  # the kept weights (best val_loss, or the last epoch's with keep last), restored at the end
    fingerprint: dict  # what a resume must match
    steps_per_epoch: int
    cluster: Cluster = field(default_factory=Cluster)  # one device, or the strategy's workers and replicas
    trainer: DistributedTrainer | None = None  # the strategy.run steps; None: model.fit

    @property
    def monitor_key(self) -> str:
        return "val_loss" if len(self.dataset.y_val) else "loss"

    def kept_note(self) -> str:
        return f"the last good checkpoint is kept in {self.run.checkpoint_dir}" if self.state.epoch else "no epoch completed, nothing was saved"


# --------------------------------------------------------------------------- train


def train(config: Config, model: keras.Model | None = None, dataset=None, resume: bool = False) -> TrainResult:
    """Train a model and write its run folder.

    Args:
        config: the run configuration; it is not changed (the result holds the resolved one).
        model: a Keras model (Sequential or functional, called or not) to train
            instead of ``config.model.name``.
        dataset: a ``convscope.data.Dataset`` to use instead of loading ``config.data``.
        resume: continue the run in ``config.run.out/config.run.name`` from its
            last complete epoch.

    Returns:
        TrainResult with the run folder, the kept model, the history and test metrics.

    Raises:
        ConvscopeError: bad input, NaN/Inf loss, a full disk, a folder another process
            is writing, or a resume that does not match the run; TrainingInterrupted on Ctrl-C.

    Example:
        >>> result = train(Config())  # doctest: +SKIP
    """
    with training_folder(config, model, dataset, resume) as (run, config, model, dataset, cluster):
        return train_in_folder(run, config, model, dataset, resume, cluster)


@contextlib.contextmanager
def training_folder(config: Config, model=None, dataset=None, resume: bool = False):
    """Join the cluster (distribute.join_cluster), prepare the training and lock its folder.

    A non-chief worker's folder is a scratch folder of its own, removed at the end.

    Yields:
        (run folder, config, model, dataset, cluster), as ``train_in_folder`` takes them.
    """
    cluster = join_cluster(config.train.devices)  # TF_CONFIG's workers, --devices, or one device
    try:
        with cluster.scope():  # the model's variables are replicated
            config, model, dataset = prepare_training(config, model, dataset, resume)
        if cluster.strategy is not None:
            check_batch_size(cluster, config.train.batch_size)
            check_same_config(cluster, {**dataclasses.asdict(config.train), **fingerprint(config, dataset), "devices": None})
        with new_run(worker_config(cluster, config, resume), resume) as run:
            yield run, config, model, dataset, cluster
    finally:
        remove_scratch(cluster)


def prepare_training(config: Config, model=None, dataset=None, resume: bool = False):
    """The resolved config, the model and the dataset, before any folder: a bad name leaves none behind.

    Args:
        config: the run configuration (not changed).
        model: a Keras model to train instead of ``config.model.name``.
        dataset: a ``convscope.data.Dataset`` to use instead of loading ``config.data``.
        resume: the run continues from its checkpoint, which holds the model.

    Returns:
        (config copy with its run name, model or None when a resume takes it from the checkpoint, dataset).
    """
    config = with_run_name(copy.deepcopy(config))
    if model is None and is_baseline_name(config.model.name):
        preset = f" --preset {config.train.preset}" if config.train.preset else ""
        raise ConvscopeError(
            f"model {config.model.name!r} is a scikit-learn baseline, which `convscope train` and `run` do not fit; "
            f"run `convscope baseline{preset}` instead"
        )
    if dataset is None:
        dataset = load_dataset(config.data, seed=config.train.seed)  # checked there, split by split
    else:
        check_dataset(dataset)
    config.train.augment = resolve_augment(config.train.augment, dataset.input_shape, dataset.channels_first)  # "default" decided by the images
    if "stream" in dataset.preprocessing:  # a folder: config.yaml records how it was read
        config.data.stream, config.data.cache = dataset.preprocessing["stream"], dataset.preprocessing["cache"]
    seed_everything(config.train.seed)
    if model is not None:
        config.model.name = f"python:{model.name}"  # built in Python: config.yaml can name it, not rebuild it
    if config.data.validation == "test":
        warnings.warn(validation_on_test_warning(config), stacklevel=2)
    if model is not None or not resume:  # a resumed run takes its model from the checkpoint
        model = fresh_model(config, dataset, model)
    return config, model, dataset


def fresh_model(config: Config, dataset, model=None):
    """The model to train from scratch: ``model`` (or the config's architecture) built for the data, with --weights loaded."""
    model = create_model(model if model is not None else config.model.name, dataset.input_shape, dataset.num_classes)
    if config.model.weights:  # e.g. a lesson's checkpoint, trained further
        load_weights(model, config.model.weights)
    return model


def validation_on_test_warning(config: Config) -> str:
    """Why validating on the test set makes the test accuracy optimistic, for this run's settings."""
    uses = [
        *(["--keep best picks the kept epoch by it"] if config.train.keep == "best" else []),
        *(["--reduce-lr cuts the rate by it"] if config.train.reduce_lr is not None else []),
        *(["--early-stop stops by it"] if config.train.early_stop else []),
    ]
    how = ", ".join(uses) if uses else "here it only reports, but settings chosen by watching it are chosen on the test set"
    return (
        f"validating on the test set (--validation test) leaks it into model selection ({how}); "
        "the test accuracy is then no measure on unseen images. The lessons did this; "
        "--validation stratified holds out training images instead"
    )


def train_in_folder(run: RunFolder, config: Config, model, dataset, resume: bool = False, cluster: Cluster | None = None) -> TrainResult:
    """The epoch loop in a locked run folder, then the test set predicted once with the kept weights.

    Args:
        run: the run folder, locked (``runfolder.new_run``).
        config, model, dataset: what ``prepare_training`` returned.
        resume: continue from the folder's newest checkpoint.
        cluster: where it trains (distribute.join_cluster); None: one device.

    Returns:
        TrainResult.
    """
    cluster = cluster or Cluster()
    check_supported(cluster, config)
    if config.train.learning_rate == FIND:
        config, _ = find_learning_rate_in_run(run, config, model, dataset, resume)
    with cluster.scope():  # a resumed model and the optimizer's variables are replicated
        training = start_training(run, config, model, dataset, resume, cluster)
    source = data_source(dataset.x_train, dataset.y_train)  # in memory or streamed from files: the same batches
    validation = data_source(dataset.x_val, dataset.y_val) if len(dataset.y_val) else None
    if validation is not None and training.trainer is None:
        validation = validation.in_order(config.train.batch_size)
    started, first_epoch = time.perf_counter(), training.state.epoch
    with SigintGuard() as guard, batches_per_call(training.model, STEPS_PER_EXECUTION):
        for epoch in range(training.state.epoch, config.train.epochs):
            if training.state.stopped_early:
                break
            row = fit_epoch(training, epoch, source, validation, guard, first_of_session=epoch == first_epoch)
            finish_epoch(training, row)
            if guard.requested and training.trainer is None:  # a strategy's workers stop together, in the next step
                raise TrainingInterrupted(
                    f"interrupted after epoch {epoch + 1}; {training.state.epoch} complete epoch(s) saved; "
                    f"continue with `convscope train --resume {run.path}`"
                )
    training.model.set_weights(training.best_weights)
    finish_metrics(training, time.perf_counter() - started)
    if training.trainer is not None:
        training.model = finish_distributed(training.cluster, training.model, run, training.config.model.trust_model)
        if not cluster.is_chief:  # its scratch folder goes: the chief predicts the test set
            return TrainResult(run, config, training.model, training.history, run.read_metrics(), dataset, None, chief=False)
    evaluation = evaluate_test_set(run, training.model, dataset)
    return TrainResult(run, config, training.model, training.history, run.read_metrics(), dataset, evaluation)


def start_training(run: RunFolder, config: Config, model, dataset, resume: bool, cluster: Cluster | None = None) -> Training:
    """A new run's first files, or a resumed run's state from its newest checkpoint."""
    current, cluster = fingerprint(config, dataset), cluster or Cluster()
    steps_per_epoch = math.ceil(len(dataset.y_train) / config.train.batch_size)
    state, history = LoopState(), {column: [] for column in HISTORY_COLUMNS}
    checkpoint = run.load_checkpoint(trust=config.model.trust_model) if resume else None
    if checkpoint is not None:
        model, saved = checkpoint
        check_same_run(saved.get("fingerprint", {}), current, run)
        state = LoopState(**{key.name: saved[key.name] for key in dataclasses.fields(LoopState)})
        history = {column: list(values) for column, values in saved["history"].items()}
        run.write_history(history)  # a kill between checkpoint and history write left it one epoch behind
        results.info(f"Resuming {run.path} after epoch {state.epoch}")
    else:
        if resume:
            results.info(f"Resuming {run.path}: no complete epoch was saved, starting from epoch 1")
            if model is None:
                model = fresh_model(config, dataset)
        compile_model(model, config, steps_per_epoch)
        run.write_config(config)
        run.write_environment({**describe_environment(config), **cluster.describe(config.train.batch_size)})
        run.write_data_description(dataset)
    build_training_state(model, dataset.x_train[:1], dataset.y_train[:1])
    best_weights = model.get_weights()
    if resume and run.model_path.exists() and state.best_epoch > 0:
        best_weights = load_model(run.model_path, trust=config.model.trust_model).get_weights()
    trainer = DistributedTrainer(cluster, model) if cluster.strategy is not None else None
    return Training(run, config, model, dataset, state, history, best_weights, current, steps_per_epoch, cluster, trainer)


def fit_epoch(training: Training, epoch: int, source, validation, guard: SigintGuard, first_of_session: bool = False) -> dict:
    """One epoch of ``model.fit`` over ``source`` (data.source) in the seeded order; return its history row, or raise on NaN/Inf or Ctrl-C."""
    config, model = training.config, training.model
    order = np.random.default_rng([config.train.seed, epoch]).permutation(len(training.dataset.y_train))
    reset_random_state(model, config.train.seed, epoch)
    monitor = guard.watch(EpochMonitor(epoch, config.train.epochs, training.steps_per_epoch))
    callbacks = [monitor]
    if config.train.tensorboard:  # Keras steps it at epoch (0-based), as a plain model.fit would; the graph once per session
        callbacks.append(create_tensorboard_callback(training.run.tensorboard_dir, write_graph=first_of_session))
    epoch_start = time.perf_counter()
    with pipeline_errors(training.dataset.x_train, training.dataset.x_val):  # a corrupt streamed file: one line naming it
        if training.trainer is not None:  # a strategy: its own step (model.fit fails under MultiWorkerMirroredStrategy)
            augment = lambda batches: augment_batches(batches, config.train.augment, config.train.seed, epoch, training.dataset.scaling)  # noqa: E731
            guard.watch(None)  # a Ctrl-C reaches every worker with the step's sums, so all stop after the same batch
            logs = training.trainer.fit_epoch(source, order, config.train.batch_size, augment, validation, monitor, lambda: guard.requested)
        else:
            logs = model.fit(
                augment_batches(source.epoch(order, config.train.batch_size), config.train.augment, config.train.seed, epoch, training.dataset.scaling),
                epochs=epoch + 1, initial_epoch=epoch, shuffle=False, validation_data=validation,
                callbacks=callbacks, verbose=0,
            ).history
    guard.watch(None)
    monitor.finish()
    if monitor.bad_loss is not None:
        where, value = monitor.bad_loss
        raise ConvscopeError(
            f"training diverged: loss became {value} at epoch {epoch + 1}, {where}; "
            f"{training.kept_note()}; lower --learning-rate or check the data for NaN/Inf"
        )
    if monitor.interrupted_at is not None:
        raise TrainingInterrupted(
            f"interrupted at epoch {epoch + 1}, batch {monitor.interrupted_at}; "
            f"{training.state.epoch} complete epoch(s) saved; continue with `convscope train --resume {training.run.path}`"
        )
    has_validation = validation is not None
    return {
        "epoch": epoch + 1,
        "loss": float(logs["loss"][-1]),
        "accuracy": float(logs["accuracy"][-1]),
        "val_loss": float(logs["val_loss"][-1]) if has_validation else math.nan,
        "val_accuracy": float(logs["val_accuracy"][-1]) if has_validation else math.nan,
        "learning_rate": current_learning_rate(model),
        "seconds": round(time.perf_counter() - epoch_start, 3),
    }


def finish_epoch(training: Training, row: dict) -> None:
    """Check the epoch's result, apply the callbacks, write model.keras, the checkpoint and history.csv."""
    state, epoch = training.state, row["epoch"]
    value = row[training.monitor_key]
    if not math.isfinite(value):
        raise ConvscopeError(
            f"training diverged: {training.monitor_key} became {value} at epoch {epoch}; "
            f"{training.kept_note()}; lower --learning-rate or check the data"
        )
    # A batch's loss is computed before its update: an update that breaks the
    # weights on the epoch's last batch leaves every logged loss finite.
    weights = training.model.get_weights()
    if not all(np.isfinite(array).all() for array in weights):
        raise ConvscopeError(
            f"training diverged: weights became NaN or Inf at epoch {epoch}, batch {training.steps_per_epoch} "
            f"(the epoch's last, whose loss was still finite); {training.kept_note()}; lower --learning-rate or check the data"
        )
    for column in HISTORY_COLUMNS:
        training.history[column].append(row[column])
    improved = value < state.best_value
    if improved:
        state.best_value, state.best_epoch = value, epoch
    kept = improved or training.config.train.keep == "last"
    if kept:
        training.best_weights = weights
    update_callbacks(training.model, training.config, state, value, improved)
    state.epoch = epoch
    if kept:  # before the checkpoint: a resume never sees a kept epoch newer than model.keras
        training.run.save_model(training.model)
    training.run.save_checkpoint(training.model, {**dataclasses.asdict(state), "fingerprint": training.fingerprint, "history": training.history})
    training.run.write_history(training.history)
    results.info(format_epoch(row, training.config.train.epochs, improved))


# --------------------------------------------------------------------------- callbacks


class EpochMonitor(keras.callbacks.Callback):
    """Stops on NaN/Inf loss or SIGINT, naming the batches, and shows progress.

    Keras calls it once per STEPS_PER_EXECUTION batches, with the epoch's running mean
    loss: a NaN batch makes that mean NaN, so divergence is caught in the group of batches
    that caused it. Reading the loss costs about 7 microseconds per call (Keras' conversion
    of the logs included), against 10+ ms per training step: TensorFlow runs each CPU step
    to completion before returning, so there is nothing to wait for.
    """

    def __init__(self, epoch: int, epochs: int, steps: int):
        super().__init__()
        self.epoch, self.epochs, self.steps = epoch, epochs, steps
        self.shows_progress = progress.isEnabledFor(logging.INFO)  # no one listening: no line to format
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
        elif self.shows_progress and (time.perf_counter() - self.drawn > PROGRESS_SECONDS or done == self.steps):
            self.drawn = time.perf_counter()
            bar = "=" * int(30 * done / self.steps)
            progress.info(
                f"Epoch {self.epoch + 1}/{self.epochs} [{bar:<30}] {done}/{self.steps} "
                f"loss {loss:.4f} {self.drawn - self.started:.0f}s"
            )

    def finish(self) -> None:
        """The epoch is over: an empty progress record clears the line."""
        if self.shows_progress:
            progress.info("")


class SigintGuard:
    """While active, Ctrl-C asks training to stop at the end of the current batch, or, between
    epochs, once the epoch's files are written; a second Ctrl-C stops at once."""

    def __init__(self):
        self.monitor: EpochMonitor | None = None
        self.previous = None
        self.requested = False

    def watch(self, monitor: EpochMonitor | None) -> EpochMonitor | None:
        """Route Ctrl-C to ``monitor`` (None between epochs); a Ctrl-C already pressed reaches it at once."""
        self.monitor = monitor
        if monitor is not None:
            monitor.interrupt_requested = self.requested
        return monitor

    def __enter__(self):
        if hasattr(signal, "SIGINT") and threading.current_thread() is threading.main_thread():
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
        "keep": config.train.keep,
        "augment": config.train.augment,  # the epoch's transforms are drawn from it
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


# --------------------------------------------------------------------------- callbacks and results


def update_callbacks(model: keras.Model, config: Config, state: LoopState, value: float, improved: bool) -> None:
    """ReduceLROnPlateau and EarlyStopping with Keras' rules, their state kept in ``state`` for resume."""
    if config.train.reduce_lr is not None:
        factor, patience, min_lr = config.train.reduce_lr
        gained = value < state.plateau_best - REDUCE_LR_MIN_DELTA
        if gained:
            state.plateau_best, state.plateau_epochs = value, 0
        else:
            state.plateau_epochs += 1
            if state.plateau_epochs >= patience:
                new_rate = max(current_learning_rate(model) * factor, min_lr)
                model.optimizer.learning_rate.assign(new_rate)
                state.plateau_epochs = 0
    if config.train.early_stop > 0:
        state.stale_epochs = 0 if improved else state.stale_epochs + 1
        if state.stale_epochs >= config.train.early_stop:
            state.stopped_early = True


def format_epoch(row: dict, epochs: int, improved: bool) -> str:
    text = f"Epoch {row['epoch']}/{epochs}: loss {row['loss']:.4f} accuracy {row['accuracy']:.4f}"
    if not math.isnan(row["val_loss"]):
        text += f" val_loss {row['val_loss']:.4f} val_accuracy {row['val_accuracy']:.4f}"
    return text + f" lr {row['learning_rate']:.2g} {row['seconds']:.1f}s" + (" *best" if improved else "")


def finish_metrics(training: Training, session_seconds: float) -> None:
    """Write the training facts into metrics.json: kept epoch, epochs run, seconds, validation at the kept epoch."""
    state, history = training.state, training.history
    metrics = {
        "best_epoch": state.best_epoch,
        "kept": training.config.train.keep,
        "kept_epoch": state.best_epoch if training.config.train.keep == "best" else state.epoch,
        "epochs_run": state.epoch,
        "stopped_early": state.stopped_early,
        "train_seconds": round(float(np.sum(history["seconds"])), 2),
        "last_session_seconds": round(session_seconds, 2),
    }
    if state.best_epoch and not math.isnan(history["val_loss"][state.best_epoch - 1]):
        metrics["best_val_loss"] = history["val_loss"][state.best_epoch - 1]
        metrics["best_val_accuracy"] = history["val_accuracy"][state.best_epoch - 1]
    training.run.update_metrics(metrics)


def evaluate_test_set(run: RunFolder, model: keras.Model, dataset) -> EvaluationResult | None:
    """Predict the test set once with the kept weights; write predictions.npz and the test metrics."""
    if not len(dataset.y_test):
        return None
    return record_test_evaluation(run, evaluate(model, dataset.x_test, dataset.y_test, class_names=dataset.class_names))


def record_test_evaluation(run: RunFolder, evaluation: EvaluationResult) -> EvaluationResult:
    """Write a test-set evaluation into the run folder (predictions.npz, test metrics) and report its line; return it."""
    run.save_evaluation(evaluation)
    results.info(f"Test: loss {evaluation.loss:.4f} accuracy {evaluation.accuracy:.4f} ({run.path})")
    return evaluation
