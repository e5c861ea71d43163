"""Data-parallel training on tf.distribute: several local devices, several workers.

    convscope train --devices 2                  # MirroredStrategy over 2 GPUs (2 logical CPU devices without GPUs)
    TF_CONFIG='{"cluster": {...}, "task": {"type": "worker", "index": 1}}' convscope train ...   # joins a cluster
    convscope train --local-workers 2 ...        # starts 2 workers on this machine (launcher.py)

``join_cluster(config)`` reads TF_CONFIG (MultiWorkerMirroredStrategy) or
``config.train.devices`` (MirroredStrategy) and returns a Cluster; with neither it
is one process on one device and training stays ``model.fit``'s. Keras 3.15's
``model.fit`` fails under MultiWorkerMirroredStrategy (keras-team/keras#20585), so
a strategy trains with ``train_epoch``: a ``strategy.run`` step (GradientTape, the
Keras optimizer, the loss averaged over the global batch) fed by the same seeded
order and the same global batches as ``model.fit``. Each worker reads only its
slice of each global batch (data_source batches of that slice); each replica
takes its part of its worker's slice. Every worker uses the run's seed, so every
replica draws the same dropout masks and augmentation transforms.

Only the chief (worker 0) writes the run folder; the other workers write into a
scratch folder of their own, which is removed at the end.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convscope.config import FIND
from convscope.errors import ConvscopeError
from convscope.models import load_model

# A collective that waits longer than this for a peer fails instead of hanging. A
# step of the zoo's models on 2 CPU cores takes under 1 s; a dead worker is named
# within this time (plus TensorFlow's health check, which pings peers every 30 s).
COLLECTIVE_TIMEOUT_SECONDS = 30
FINGERPRINT_BYTES = 4096  # room for the config's JSON exchanged at start (about 900 bytes for the default)

results = logging.getLogger("convscope.results")  # what a run reports: the CLI prints it on stdout


@dataclass
class Cluster:
    """Where training runs: one device, several local devices, or several workers."""

    strategy: object | None = None  # a tf.distribute strategy; None: one process on one device (model.fit)
    workers: int = 1  # processes in the cluster
    worker_index: int = 0  # this process's task index; 0 is the chief
    replicas: int = 1  # model copies in sync, over all workers
    devices: list[str] = field(default_factory=list)  # this worker's devices
    addresses: list[str] = field(default_factory=list)  # host:port of every worker (TF_CONFIG)
    scratch: str | None = None  # a non-chief's folder for what it must write

    @property
    def strategy_name(self) -> str | None:
        if self.strategy is None:
            return None
        return "MultiWorkerMirroredStrategy" if self.addresses else "MirroredStrategy"  # TF names the first CollectiveAllReduceStrategy

    @property
    def is_chief(self) -> bool:
        return self.worker_index == 0

    def scope(self):
        """The strategy's scope: variables created inside are replicated. Without a strategy, nothing."""
        import contextlib  # lazy: only used here

        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def describe(self, batch_size: int) -> dict:
        """The environment.json entries of a strategy's run: workers, replica devices, global and per-replica batch ({} without one)."""
        if self.strategy is None:
            return {}
        return {
            "strategy": self.strategy_name,
            "workers": self.workers,
            "worker_addresses": self.addresses or None,
            "replica_devices": self.devices,  # one worker's; every worker has as many
            "replicas": self.replicas,
            "global_batch_size": batch_size,
            "per_replica_batch_size": batch_size / self.replicas,
        }

    def name(self, index: int) -> str:
        address = f" ({self.addresses[index]})" if index < len(self.addresses) else ""
        return f"worker {index}{address}"


def read_tf_config() -> dict | None:
    """TF_CONFIG as a dict, None when unset; a malformed one is refused naming what is wrong."""
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        tf_config = json.loads(text)
        workers = tf_config["cluster"]["worker"]
        index = int(tf_config["task"]["index"])
        kind = tf_config["task"]["type"]
    except (ValueError, KeyError, TypeError) as error:
        raise ConvscopeError(
            f"TF_CONFIG is not a cluster description ({error}); expected "
            '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}'
        ) from None
    if kind not in ("worker", "chief") or set(tf_config["cluster"]) - {"worker", "chief"}:
        raise ConvscopeError(f"TF_CONFIG: task type {kind!r} and jobs {sorted(tf_config['cluster'])}; convscope runs only 'worker' tasks, worker 0 being the chief")
    if not 0 <= index < len(workers):
        raise ConvscopeError(f"TF_CONFIG: task index {index} but the cluster lists {len(workers)} worker(s); use an index from 0 to {len(workers) - 1}")
    return tf_config


def parse_devices(devices: str | int | None) -> int | str | None:
    """``--devices``: a count of at least 1, or "all"; None: not set."""
    if devices is None or devices == "all":
        return devices
    try:
        count = int(devices)
    except (TypeError, ValueError):
        count = 0
    if count < 1:
        raise ConvscopeError(f"--devices {devices!r}: expected a number of devices (1, 2, ...) or 'all'")
    return count


def configure_devices(devices: str | int | None) -> None:
    """Before TensorFlow starts: without GPUs, ``--devices N`` splits the CPU into N logical devices."""
    count = parse_devices(devices)
    if not isinstance(count, int) or count < 2:
        return
    import tensorflow as tf  # lazy: only distributed training needs TensorFlow itself

    if tf.config.list_physical_devices("GPU"):
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError:  # TensorFlow already started: the logical devices it has stay
        pass


def join_cluster(devices: str | int | None = None) -> Cluster:
    """The Cluster this process trains in: TF_CONFIG's workers, else ``devices`` local devices, else one device.

    Under TF_CONFIG, MultiWorkerMirroredStrategy gives each worker one replica per
    GPU (all of them), or one on its CPU; ``devices`` then plays no part.

    Args:
        devices: ``config.train.devices``: a count, "all", or None (one device).

    Returns:
        Cluster; its ``strategy`` is None for one process on one device.

    Raises:
        ConvscopeError: a malformed TF_CONFIG, or more devices than this machine has.
    """
    tf_config = read_tf_config()
    if tf_config is None and parse_devices(devices) in (None, 1):
        return Cluster()
    if tf_config is None:  # a cluster's worker replicates over all its GPUs (or its CPU), whatever --devices says
        configure_devices(devices)
    import tensorflow as tf  # lazy: only distributed training needs TensorFlow itself

    if tf_config is not None:
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT_SECONDS)
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        workers = tf_config["cluster"]["worker"]
        index = int(tf_config["task"]["index"])
        cluster = Cluster(strategy, len(workers), index, strategy.num_replicas_in_sync, list(strategy.extended.worker_devices), list(workers))
        if not cluster.is_chief:
            cluster.scratch = tempfile.mkdtemp(prefix=f"convscope-worker{index}-")
        return cluster
    gpus = tf.config.list_logical_devices("GPU")
    available = gpus or tf.config.list_logical_devices("CPU")
    count = len(available) if devices == "all" else parse_devices(devices)
    if count > len(available):
        kind = "GPU" if gpus else "CPU (logical)"
        raise ConvscopeError(f"--devices {count}: this machine has {len(available)} {kind} device(s); use --devices {len(available)} or 'all'")
    names = [device.name for device in available[:count]]
    if count == 1:
        return Cluster(devices=names)
    strategy = tf.distribute.MirroredStrategy(names)
    return Cluster(strategy, 1, 0, count, names)


def worker_config(cluster: Cluster, config, resume: bool):
    """The config this worker runs with: a non-chief writes into its scratch folder, a copy of the chief's on resume."""
    if cluster.is_chief:
        return config
    chief_folder = Path(config.run.out) / config.run.name
    if resume:
        if not chief_folder.is_dir():
            raise ConvscopeError(
                f"{cluster.name(cluster.worker_index)}: cannot read the chief's run folder {chief_folder} to resume; "
                "every worker resumes from the chief's checkpoint, which must be readable at the same path (a shared filesystem)"
            )
        shutil.copytree(chief_folder, Path(cluster.scratch) / config.run.name, ignore=shutil.ignore_patterns(".lock", "*.tmp*"))
    return dataclasses.replace(config, run=dataclasses.replace(config.run, out=cluster.scratch))


def finish_distributed(cluster: Cluster, model, run, trust: bool = False):
    """After training under a strategy: log the weights' digest (equal on every worker), return the kept model off the strategy.

    Args:
        cluster: where it trained.
        model: the trained model, its variables the strategy's, the kept weights set.
        run: the run folder (the chief's, or a non-chief's scratch), whose model.keras holds the kept weights.
        trust: ``config.model.trust_model`` (a Lambda layer's code may run on loading).

    Returns:
        The model loaded from model.keras (Keras' predict then runs on one device), or ``model`` when no epoch was kept.
    """
    if cluster.workers > 1:
        results.info(f"{cluster.name(cluster.worker_index)}: kept weights sha256 {weights_digest(model)}")
    if not run.model_path.exists():
        return model
    return load_model(run.model_path, trust=trust)


def weights_digest(model) -> str:
    """The sha256 of the model's weights, in order, as bytes: equal weights, equal digests."""
    digest = hashlib.sha256()
    for array in model.get_weights():
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def remove_scratch(cluster: Cluster) -> None:
    if cluster.scratch is not None:
        shutil.rmtree(cluster.scratch, ignore_errors=True)


def check_same_config(cluster: Cluster, settings: dict) -> None:
    """Every worker trains with the chief's settings; a worker whose differ is refused, the difference named.

    The settings' JSON is all-gathered (as bytes) at start, so each worker compares
    every other's with its own.
    """
    if cluster.workers < 2:
        return
    import tensorflow as tf  # lazy: only distributed training needs TensorFlow itself

    text = json.dumps(settings, sort_keys=True, default=str).encode()[:FINGERPRINT_BYTES]
    local = np.zeros(FINGERPRINT_BYTES, dtype=np.int32)
    local[: len(text)] = np.frombuffer(text, dtype=np.uint8)

    def gather():
        context = tf.distribute.get_replica_context()
        return context.all_gather(tf.constant(local[None, :]), axis=0)

    with collective_errors(cluster):
        gathered = cluster.strategy.experimental_local_results(cluster.strategy.run(tf.function(gather)))[0].numpy()
    replicas_per_worker = cluster.replicas // cluster.workers
    for worker in range(cluster.workers):
        row = gathered[worker * replicas_per_worker]
        other = json.loads(bytes(row[row > 0].astype(np.uint8)).decode())
        differences = [f"{key}: {cluster.name(worker)} has {other.get(key)!r}, this worker {settings.get(key)!r}" for key in sorted(settings) if other.get(key) != settings.get(key)]
        if differences:
            raise ConvscopeError(
                f"{cluster.name(cluster.worker_index)}: started with settings that differ from {cluster.name(worker)}'s "
                f"({'; '.join(differences)}); start every worker with the same flags"
            )


def check_supported(cluster: Cluster, config) -> None:
    """Refuse what only ``model.fit`` does, naming the way round it."""
    if cluster.strategy is None:
        return
    if config.train.learning_rate == FIND:
        raise ConvscopeError("--learning-rate find sweeps on one device; run `convscope lr-find` first and train with --learning-rate at its suggestion")
    if config.train.tensorboard:
        raise ConvscopeError("--tensorboard logs through model.fit's callback, which a data-parallel run does not use; drop --tensorboard (history.csv has every epoch)")


def check_batch_size(cluster: Cluster, batch_size: int) -> None:
    """Each replica needs an image of every full global batch."""
    if batch_size < cluster.replicas:
        raise ConvscopeError(
            f"--batch-size {batch_size} is smaller than the {cluster.replicas} replicas it is split over "
            f"({cluster.workers} worker(s)); --batch-size is the global batch: use {cluster.replicas} or more"
        )


class collective_errors:
    """Turns a failed collective (a dead or stuck peer) into one ConvscopeError naming the worker."""

    def __init__(self, cluster: Cluster, where: str = ""):
        self.cluster, self.where = cluster, where

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if error is None:
            return False
        import tensorflow as tf  # lazy: only distributed training needs TensorFlow itself

        if not isinstance(error, tf.errors.OpError):
            return False
        tasks = sorted({int(index) for index in re.findall(r"task:(\d+)", str(error))} - {self.cluster.worker_index})
        peers = [index for index in range(self.cluster.workers) if index != self.cluster.worker_index]
        named = ", ".join(self.cluster.name(index) for index in (tasks or peers))
        raise ConvscopeError(
            f"{self.cluster.name(self.cluster.worker_index)}: lost contact with {named}{self.where} "
            f"({type(error).__name__}: no answer within {COLLECTIVE_TIMEOUT_SECONDS} s or connection closed); "
            "the chief's last complete epoch is kept: restart every worker with --resume RUN"
        ) from None


# --------------------------------------------------------------------------- the distributed step


def worker_slices(order: np.ndarray, batch_size: int, workers: int, worker_index: int) -> list[np.ndarray]:
    """This worker's slice of each global batch of ``order`` (array_split: the last batch's slices may differ by one, or be empty)."""
    slices = []
    for start in range(0, len(order), batch_size):
        slices.append(np.array_split(order[start : start + batch_size], workers)[worker_index])
    return slices


class DistributedTrainer:
    """``strategy.run`` training and evaluation steps for one compiled model."""

    def __init__(self, cluster: Cluster, model):
        import tensorflow as tf  # lazy: only distributed training needs these

        self.cluster, self.model, self.tf = cluster, model, tf
        loss = model.loss
        self.loss_function = type(loss)(**{**loss.get_config(), "reduction": None})
        local_replicas = cluster.replicas // cluster.workers

        def part(x, count):
            """This replica's part of the worker's batch (array_split over the worker's replicas)."""
            context = tf.distribute.get_replica_context()
            local = context.replica_id_in_sync_group % local_replicas
            size = tf.shape(x)[0]
            start = (size * local) // local_replicas
            end = (size * (local + 1)) // local_replicas
            return x[start:end]

        def train_replica(x, y, global_size, stop):
            x, y = part(x, local_replicas), part(y, local_replicas)
            with tf.GradientTape() as tape:
                outputs = model(x, training=True)
                per_example = self.loss_function(y, outputs)
                loss = tf.reduce_sum(per_example) / tf.cast(global_size, per_example.dtype)
            gradients = tape.gradient(loss, model.trainable_variables)
            model.optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            return tf.reduce_sum(per_example), count_correct(outputs, y), tf.identity(stop)  # one per replica: summed like the rest

        def evaluate_replica(x, y):
            x, y = part(x, local_replicas), part(y, local_replicas)
            outputs = model(x, training=False)
            return tf.reduce_sum(self.loss_function(y, outputs)), count_correct(outputs, y)

        def count_correct(outputs, y):
            predicted = tf.argmax(outputs, axis=-1, output_type=tf.int64)
            return tf.reduce_sum(tf.cast(tf.equal(predicted, tf.cast(tf.reshape(y, [-1]), tf.int64)), tf.float32))

        def reduce(values):
            return [cluster.strategy.reduce("SUM", value, axis=None) for value in values]

        self.train_step = tf.function(lambda x, y, size, stop: reduce(cluster.strategy.run(train_replica, args=(x, y, size, stop))), reduce_retracing=True)
        self.evaluate_step = tf.function(lambda x, y: reduce(cluster.strategy.run(evaluate_replica, args=(x, y))), reduce_retracing=True)

    def fit_epoch(self, source, order: np.ndarray, batch_size: int, augment, validation, monitor, requested=None) -> dict:
        """One epoch and its validation, as ``model.fit(...).history`` reports them (one value per key).

        Args:
            source, order, batch_size, augment, monitor, requested: as ``train_epoch`` takes them.
            validation: the validation data_source, or None.

        Returns:
            {"loss": [..], "accuracy": [..], "val_loss": [..], "val_accuracy": [..]} (no val_* without validation).
        """
        monitor.set_model(self.model)
        row = self.train_epoch(source, order, batch_size, augment, monitor, requested)
        logs = {"loss": [row["loss"]], "accuracy": [row["accuracy"]]}
        if validation is not None and not self.model.stop_training:
            checked = self.evaluate(validation, len(validation.y), batch_size)
            logs.update(val_loss=[checked["loss"]], val_accuracy=[checked["accuracy"]])
        elif validation is not None:
            logs.update(val_loss=[math.nan], val_accuracy=[math.nan])
        return logs

    def train_epoch(self, source, order: np.ndarray, batch_size: int, augment, monitor=None, requested=None) -> dict:
        """One epoch over this worker's slices of the global batches of ``order``; the global mean loss and accuracy.

        Args:
            source: the training data_source.
            order: the epoch's seeded permutation of the training set (the same on every worker).
            batch_size: the global batch.
            augment: a function taking the batches' tf.data.Dataset and returning it augmented.
            monitor: an EpochMonitor-like object: ``on_train_batch_end(batch, logs)`` after every step,
                ``model.stop_training`` read after it.
            requested: returns True once this worker was asked to stop (Ctrl-C); the request is summed
                with the step's results, and the monitor told, on every worker after the same step.

        Returns:
            {"loss": ..., "accuracy": ...}: the means over the whole global epoch.
        """
        slices = worker_slices(order, batch_size, self.cluster.workers, self.cluster.worker_index)
        global_sizes = [min(batch_size, len(order) - start) for start in range(0, len(order), batch_size)]
        total_loss = total_correct = 0.0
        self.model.stop_training = False
        with collective_errors(self.cluster, " while training"):
            for step, (x, y) in enumerate(worker_batches(source, slices, augment)):
                # A Ctrl-C on any worker travels with the step's sums: every worker stops after the same step.
                stop = self.tf.constant(float(requested is not None and requested()))
                loss_sum, correct, stopping = self.train_step(x, y, self.tf.constant(global_sizes[step], self.tf.int64), stop)
                total_loss += float(loss_sum)
                total_correct += float(correct)
                seen = sum(global_sizes[: step + 1])
                if monitor is not None:
                    monitor.interrupt_requested = float(stopping) > 0
                    monitor.on_train_batch_end(step, {"loss": total_loss / seen})
                    if self.model.stop_training:  # NaN loss or Ctrl-C: every worker sees the same reduced loss
                        break
        seen = max(1, sum(global_sizes[: step + 1]))
        return {"loss": total_loss / seen, "accuracy": total_correct / seen}

    def evaluate(self, source, size: int, batch_size: int) -> dict:
        """The global mean loss and accuracy over ``source`` in order, each worker evaluating its slices."""
        order = np.arange(size)
        slices = worker_slices(order, batch_size, self.cluster.workers, self.cluster.worker_index)
        total_loss = total_correct = 0.0
        with collective_errors(self.cluster, " while validating"):
            for x, y in worker_batches(source, slices):
                loss_sum, correct = self.evaluate_step(x, y)
                total_loss += float(loss_sum)
                total_correct += float(correct)
        return {"loss": total_loss / max(1, size), "accuracy": total_correct / max(1, size)}


def worker_batches(source, slices: list[np.ndarray], augment=None):
    """A worker's batches: one per global batch, its slice of it (an empty batch when its slice is).

    Args:
        source: a data_source (in memory or streamed).
        slices: ``worker_slices`` of the epoch's order.
        augment: a function taking a tf.data.Dataset of batches and returning it augmented, or None.

    Yields:
        (x, y) tensors, ``len(slices)`` of them.
    """
    import tensorflow as tf  # lazy: only distributed training needs TensorFlow itself

    # Every slice but the last global batch's has the same size for a given worker.
    head, last = slices[:-1], slices[-1]
    dataset = source.epoch(np.concatenate(head), len(head[0])) if head else None
    if len(last):
        tail = source.epoch(last, len(last))
        dataset = tail if dataset is None else dataset.concatenate(tail)
    if augment is not None:
        dataset = augment(dataset)
    iterator = iter(dataset)
    for piece in slices:
        if len(piece):
            yield next(iterator)
        else:  # fewer images than workers in the last global batch: this worker steps with none, in sync
            yield tuple(tf.zeros([0, *item.shape[1:]], item.dtype) for item in dataset.element_spec)
