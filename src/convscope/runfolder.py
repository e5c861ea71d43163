"""The run folder: the contract between the pipeline's stages, and its only reader and writer.

    runs/<name>/
      config.yaml        resolved config; `convscope train --config` repeats the run
      environment.json   versions, backend, seed, CPU, command line, seconds per stage
      data.json          dataset: source, class names, input shape, preprocessing, split sizes
      model.keras        the kept weights (lowest val_loss)
      checkpoint/        the last two complete epochs, for --resume
      history.csv        one row per epoch
      lr_find.csv        the learning-rate finder's curve, one row per batch (`convscope lr-find`, --learning-rate find)
      metrics.json       training facts, test metrics, per-class report, confusion matrix
      predictions.npz    test probabilities and labels
      plots/*.png        figures
      report.html        the self-contained report
      tensorboard/       TensorBoard event logs (train/, validation/), with --tensorboard
      export.json        one entry per export format: file, verification figures (convscope export)
      export/            the exported files: model.onnx, model.tflite, savedmodel/
      .lock              held while a process writes the folder

Every stage reads and writes this folder through a RunFolder, and nothing else
knows the file names:

    from convscope.runfolder import open_run
    run = open_run("runs/mnist-demo")
    with run.lock():                  # a second writer exits 2, naming this process
        model = run.load_model()
        history = run.read_history()  # {"epoch": array, "loss": array, ...}
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import fcntl
import io
import json
import math
import os
import platform
import sys
import threading
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from convscope import __version__
from convscope.config import Config, config_to_dict, load_config, save_config
from convscope.errors import ConvscopeError
from convscope.fileio import atomic_path, remove_stale_temps, write_json, write_npz, write_text
from convscope.text import slugify

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds")
CHECKPOINTS_KEPT = 2  # the newest, and one to fall back to if the newest is damaged
_held_locks: dict[tuple[Path, int], int] = {}  # (folder, thread) -> nesting depth: `convscope run`'s stages take it again


@dataclass(frozen=True)
class RunFolder:
    """Paths of one run folder, and the readers and writers of every file in it."""

    path: Path

    config_path = property(lambda self: self.path / "config.yaml")
    environment_path = property(lambda self: self.path / "environment.json")
    data_path = property(lambda self: self.path / "data.json")
    model_path = property(lambda self: self.path / "model.keras")
    checkpoint_dir = property(lambda self: self.path / "checkpoint")
    history_path = property(lambda self: self.path / "history.csv")
    lr_find_path = property(lambda self: self.path / "lr_find.csv")
    metrics_path = property(lambda self: self.path / "metrics.json")
    predictions_path = property(lambda self: self.path / "predictions.npz")
    plots_dir = property(lambda self: self.path / "plots")
    report_path = property(lambda self: self.path / "report.html")
    lock_path = property(lambda self: self.path / ".lock")
    estimator_path = property(lambda self: self.path / "estimator.npz")  # a scikit-learn baseline's own arrays
    tensorboard_dir = property(lambda self: self.path / "tensorboard")  # Keras' TensorBoard callback writes here (--tensorboard)
    exports_path = property(lambda self: self.path / "export.json")
    export_dir = property(lambda self: self.path / "export")

    # ----------------------------------------------------------------------- state

    def holds_run(self) -> bool:
        """True once a run has started here (config.yaml is written before epoch 1)."""
        return any(path.exists() for path in (self.config_path, self.history_path, self.model_path)) or bool(self.list_checkpoints())

    def state(self) -> str:
        """``new``, ``partial`` (training started), ``trained`` (evaluate stage not finished) or ``finished``."""
        if "evaluate" in self.read_environment().get("stage_seconds", {}):  # recorded as the evaluate stage ends
            return "finished"
        if "epochs_run" in self.read_metrics():
            return "trained"
        return "partial" if self.holds_run() or self.checkpoint_dir.exists() else "new"

    @contextlib.contextmanager
    def lock(self):
        """Hold the folder's lock while writing; a live holder elsewhere is an error, a dead one's lock is taken over.

        Re-entrant within a thread, so `convscope run` holds it across its stages.
        The lock is an flock on ``.lock``, which the kernel releases when its holder
        dies (even by SIGKILL); the file's text names the holder for the messages.
        """
        key = (self.path.resolve(), threading.get_ident())
        if key in _held_locks:
            _held_locks[key] += 1
            try:
                yield self
            finally:
                _held_locks[key] -= 1
            return
        handle = self._acquire_lock()
        _held_locks[key] = 1
        try:
            yield self
        finally:
            del _held_locks[key]
            try:
                self.lock_path.unlink(missing_ok=True)  # while still holding it: a waiter then sees a new file
            finally:
                handle.close()

    def _acquire_lock(self):
        """Open and flock ``.lock`` (warning when a dead holder left it), write who holds it; return the open file."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConvscopeError(f"{self.path}: cannot create the run folder ({error.strerror}); pass a writable --out") from None
        while True:
            handle = open(self.lock_path, "a+", encoding="utf-8")
            try:
                if self._lock_open_file(handle):
                    return handle
            except BaseException:
                handle.close()
                raise
            handle.close()  # the holder removed the file as we opened it: lock the new one

    def _lock_open_file(self, handle) -> bool:
        """Lock the open ``.lock``; False when it is no longer the file at that path (try again)."""
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ConvscopeError(
                f"{self.path}: in use by {holder}; wait for it to finish (or stop it) and try again, or write to another folder"
            ) from None
        try:
            if os.fstat(handle.fileno()).st_ino != os.stat(self.lock_path).st_ino:
                return False
        except FileNotFoundError:
            return False
        handle.seek(0)
        previous = handle.read().strip()
        if previous:
            warnings.warn(f"{self.lock_path}: took over the lock of {previous}, which ended without releasing it", stacklevel=2)
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {platform.node()} ({command_line()[:200]}, since {datetime.now():%H:%M:%S})\n")
        handle.flush()
        return True

    # ----------------------------------------------------------------------- config, environment, data

    def read_config(self) -> Config:
        """Return the run's Config."""
        if not self.config_path.is_file():
            raise ConvscopeError(f"{self.path}: no config.yaml; pass a folder written by `convscope train` or `convscope run`")
        return load_config(self.config_path)

    def write_config(self, config: Config) -> None:
        """Write config.yaml (the resolved config, re-runnable with --config)."""
        save_config(config, self.config_path)

    def read_json(self, path: Path) -> dict:
        """Return a JSON file of this folder as a dict; empty dict if missing."""
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ConvscopeError(f"{path}: unreadable JSON ({error}); delete it and re-run the stage that writes it") from None

    def read_environment(self) -> dict:
        """environment.json as a dict; empty if missing."""
        return self.read_json(self.environment_path)

    def write_environment(self, environment: dict) -> None:
        """Write environment.json (``describe_environment``'s layout)."""
        write_json(self.environment_path, environment)

    def record_stage_time(self, stage: str, seconds: float) -> None:
        """Add one stage's wall time to environment.json's ``stage_seconds``."""
        environment = self.read_environment()
        environment.setdefault("stage_seconds", {})[stage] = round(seconds, 2)
        self.write_environment(environment)

    def read_data_description(self) -> dict:
        """data.json; a folder older than data.json: the config's data settings, marked as such."""
        described = self.read_json(self.data_path)
        if described:
            return described
        config = self.read_config()
        described = {"name": config.data.dataset, "note": DATA_FROM_CONFIG}
        predictions = self.read_predictions()
        if predictions is not None:
            described["class_names"] = [str(name) for name in predictions["class_names"]]
        described["preprocessing"] = {key: value for key, value in config_to_dict(config)["data"].items() if key != "dataset"}
        return described

    def write_data_description(self, dataset) -> None:
        """Write data.json: the dataset's source, classes, input shape and preprocessing."""
        write_json(self.data_path, describe_dataset(dataset))

    # ----------------------------------------------------------------------- history, metrics, predictions

    def read_history(self) -> dict[str, np.ndarray]:
        """Return history.csv as columns of floats; empty dict if there is none."""
        if not self.history_path.is_file():
            return {}
        with open(self.history_path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        if not rows:
            return {}
        return {key: np.array([float(row[key]) if row[key] != "" else np.nan for row in rows]) for key in rows[0]}

    def write_history(self, history: dict[str, list[float]]) -> None:
        """Rewrite history.csv atomically with every completed epoch."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(HISTORY_COLUMNS)
        for row in zip(*(history[column] for column in HISTORY_COLUMNS)):
            writer.writerow(["" if isinstance(v, float) and math.isnan(v) else (f"{v:.6g}" if isinstance(v, float) else v) for v in row])
        self._write(self.history_path, lambda path: write_text(path, buffer.getvalue()), "the previous file is intact; free disk space, then resume with --resume")

    def read_lr_find(self) -> dict[str, np.ndarray]:
        """lr_find.csv as columns of floats; empty dict if there is none."""
        if not self.lr_find_path.is_file():
            return {}
        try:
            with open(self.lr_find_path, newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
            return {key: np.array([float(row[key]) for row in rows]) for key in rows[0]} if rows else {}
        except (OSError, UnicodeDecodeError, TypeError, ValueError) as error:
            raise ConvscopeError(f"{self.lr_find_path}: unreadable ({error}); delete it and run `convscope lr-find` again") from None

    def write_lr_find(self, columns: dict[str, list]) -> None:
        """Write lr_find.csv atomically: one row per batch of the sweep (batch, learning_rate, loss, smoothed_loss)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in zip(*columns.values()):
            writer.writerow([f"{value:.8g}" if isinstance(value, float) else value for value in row])
        self._write(self.lr_find_path, lambda path: write_text(path, buffer.getvalue()), "free disk space or pass another --out, then run it again")

    def read_metrics(self) -> dict:
        """metrics.json as a dict; empty if missing."""
        return self.read_json(self.metrics_path)

    def update_metrics(self, values: dict) -> None:
        """Merge ``values`` into metrics.json atomically."""
        write_json(self.metrics_path, {**self.read_metrics(), **values})

    def clear_metrics(self) -> None:
        """Forget an unfinished run's metrics (they are merged into the file, so they would linger)."""
        self.metrics_path.unlink(missing_ok=True)

    def save_evaluation(self, result) -> None:
        """Write an EvaluationResult: predictions.npz (no pickled objects) and metrics.json's test metrics.

        ``test_loss`` and ``test_accuracy`` are the evaluation's own numbers, kept at the
        top level as every earlier run folder has them.
        """
        write_npz(
            self.predictions_path,
            probabilities=result.probabilities.astype(np.float32),
            labels=result.labels.astype(np.int64),
            class_names=np.array(result.class_names, dtype=str),
        )
        self.update_metrics({"test_loss": float(result.loss), "test_accuracy": float(result.accuracy), "evaluation": result.to_metrics()})

    def read_predictions(self) -> dict[str, np.ndarray] | None:
        """Return predictions.npz as arrays, or None when evaluate has not run."""
        if not self.predictions_path.is_file():
            return None
        with np.load(self.predictions_path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}

    def read_exports(self) -> dict[str, dict]:
        """export.json: format name -> its latest export's entry; empty when nothing was exported."""
        return self.read_json(self.exports_path)

    def record_export(self, entry: dict) -> None:
        """Merge one export's entry (keyed by its "format") into export.json atomically."""
        write_json(self.exports_path, {**self.read_exports(), entry["format"]: entry})

    # ----------------------------------------------------------------------- models and checkpoints

    def load_model(self):
        """Load model.keras with safe-mode deserialization."""
        from convscope.models import load_model  # lazy: reading a folder's text files needs no Keras

        if not self.model_path.is_file():
            raise ConvscopeError(
                f"{self.path}: no model.keras in this run folder; train it first with "
                f"`convscope train --out {self.path.parent} --name {self.path.name}` or pass another run folder"
            )
        return load_model(self.model_path, trust=self.read_config().model.trust_model)

    def save_model(self, model, path: Path | None = None) -> None:
        """Save a model (to model.keras by default) atomically; the old file stays intact on failure."""
        def save(target: Path) -> None:
            with atomic_path(target) as tmp:
                model.save(tmp)

        self._write(path or self.model_path, save, "the previous file is intact; free disk space or pass another --out, then resume with --resume")

    def load_dataset(self):
        """Load the run's dataset with the run's own preprocessing and split."""
        from convscope.data import load_dataset  # lazy: reading a folder's text files needs no Keras

        config = self.read_config()
        return load_dataset(config.data, seed=config.train.seed)

    def list_checkpoints(self) -> list[Path]:
        """Checkpoint files, newest first."""
        return sorted(self.checkpoint_dir.glob("epoch-*.keras"), reverse=True)

    def save_checkpoint(self, model, state: dict) -> None:
        """Write epoch-NNNN.json then epoch-NNNN.keras, then drop checkpoints beyond the newest two."""
        stem = self.checkpoint_dir / f"epoch-{state['epoch']:04d}"
        self._write(stem.with_suffix(".json"), lambda path: write_json(path, state), "the previous checkpoint is intact; free disk space, then resume with --resume")
        self.save_model(model, stem.with_suffix(".keras"))
        for old in self.list_checkpoints()[CHECKPOINTS_KEPT:]:
            old.unlink(missing_ok=True)
            old.with_suffix(".json").unlink(missing_ok=True)

    def load_checkpoint(self, trust: bool = False):
        """Load the newest checkpoint that loads; warn about each that does not.

        Args:
            trust: the run's --trust-model (a trusted Lambda layer must resume too).

        Returns:
            (model with its optimizer, loop state), or None when the run has no
            checkpoint (interrupted in its first epoch).
        """
        from convscope.models import load_model  # lazy: reading a folder's text files needs no Keras

        candidates = self.list_checkpoints()
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
                f"{self.checkpoint_dir}: no checkpoint loads ({len(candidates)} damaged); "
                f"delete {self.path} and train again without --resume"
            )
        return None

    def _write(self, path: Path, write, advice: str) -> None:
        """Run ``write(path)``; a full disk or a read-only folder becomes one line with ``advice``."""
        try:
            write(path)
        except OSError as error:
            raise ConvscopeError(f"{path}: cannot write ({error.strerror or error}); {advice}") from None


DATA_FROM_CONFIG = "This run folder has no data.json, so these are the data settings of config.yaml, without fitted numbers."


def open_run(path: str | Path) -> RunFolder:
    """Return the RunFolder at ``path``, or raise if it is not one."""
    path = Path(path)
    if not path.is_dir():
        raise ConvscopeError(f"{path}: run folder not found; pass a folder written by `convscope train` or `convscope run`")
    return RunFolder(path)


NAMED_BY_STEM = (".yaml", ".yml", ".keras", ".h5", ".hdf5")  # a layer list or an imported model file: its name without the folder


def default_run_name(config: Config) -> str:
    """Name a run `<dataset>-<model>-<YYYYmmdd-HHMMSS>`."""

    def stem(text: str) -> str:
        return Path(text.split(":", 1)[-1]).stem if ":" in text or text.endswith(NAMED_BY_STEM) else text

    return f"{slugify(stem(config.data.dataset))}-{slugify(stem(config.model.name))}-{datetime.now():%Y%m%d-%H%M%S}"


def with_run_name(config: Config) -> Config:
    """``config`` with ``run.name`` set (a default name when it has none); the caller's config is left alone."""
    return dataclasses.replace(config, run=dataclasses.replace(config.run, name=config.run.name or default_run_name(config)))


@contextlib.contextmanager
def new_run(config: Config, resume: bool = False, overwrite: bool = False, resumable: bool = True):
    """Create (or, when resuming, check) the folder of ``config.run``, lock it, clean what a killed run left.

    Args:
        config: a config whose ``run.name`` is set (``with_run_name``).
        resume: the folder must exist and is continued.
        overwrite: a folder holding an unfinished run is started again (its metrics forgotten).
        resumable: the run can be continued with --resume (a baseline cannot: it is fitted in one go).

    Yields:
        The locked RunFolder.
    """
    run = RunFolder(Path(config.run.out) / config.run.name)
    if resume and not run.path.is_dir():
        raise ConvscopeError(f"{run.path}: no run folder to resume; check the path or start a new run without --resume")
    with run.lock():
        if run.holds_run() and not (resume or overwrite):
            advice = f"continue it with `convscope train --resume {run.path}` or choose another --name" if resumable else (
                "choose another --name or delete that folder"
            )
            raise ConvscopeError(f"{run.path}: already holds a run; {advice}")
        if overwrite:
            run.clear_metrics()
        for folder in (run.path, run.checkpoint_dir):
            for stale in remove_stale_temps(folder):
                warnings.warn(f"removed {stale}, a partial file left by an interrupted run", stacklevel=3)
        yield run


def command_line() -> str:
    """This process's command line, as `convscope ...` when it is convscope's (also under `python -m convscope`)."""
    program = Path(sys.argv[0]).name
    return " ".join(["convscope" if program in ("convscope", "__main__.py") else program, *sys.argv[1:]])


def describe_environment(config: Config) -> dict:
    """Versions, seed, machine and command line, for environment.json."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    from convscope.keras_compat import describe_backend  # lazy: reading a run folder's files needs no Keras

    return {
        "convscope": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        **describe_backend(),
        "seed": config.train.seed,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "command": command_line() if Path(sys.argv[0]).name == "convscope" else None,  # a library caller's argv is not a command
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
