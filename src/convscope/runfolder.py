"""The run folder: the contract between the pipeline's stages.

    runs/<name>/
      config.yaml        resolved config; `convscope train --config` repeats the run
      environment.json   versions, backend, seed, CPU, command line, wall times
      data.json          dataset: source, class names, input shape, preprocessing, split sizes
      model.keras        best weights (lowest val_loss)
      checkpoint/        last complete epoch, for --resume
      history.csv        one row per epoch
      metrics.json       test metrics (train writes loss/accuracy; evaluate adds the rest)
      predictions.npz    test probabilities and labels
      plots/*.png        figures
      report.html        the self-contained report

Every stage reads and writes only this folder:

    from convscope.runfolder import open_run
    run = open_run("runs/mnist-demo")
    model = run.load_model()
    data = run.load_dataset()
    history = run.read_history()      # {"epoch": array, "loss": array, ...}
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convscope.errors import ConvscopeError


@dataclass(frozen=True)
class RunFolder:
    """Paths of one run folder and readers for what is in it."""

    path: Path

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def environment_path(self) -> Path:
        return self.path / "environment.json"

    @property
    def data_path(self) -> Path:
        return self.path / "data.json"

    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoint"

    @property
    def history_path(self) -> Path:
        return self.path / "history.csv"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    @property
    def predictions_path(self) -> Path:
        return self.path / "predictions.npz"

    @property
    def plots_dir(self) -> Path:
        return self.path / "plots"

    @property
    def report_path(self) -> Path:
        return self.path / "report.html"

    def read_config(self):
        """Return the run's Config."""
        from convscope.config import load_config

        if not self.config_path.is_file():
            raise ConvscopeError(f"{self.path}: no config.yaml; pass a folder written by `convscope train` or `convscope run`")
        return load_config(self.config_path)

    def load_model(self):
        """Load model.keras with safe-mode deserialization."""
        from convscope.models import load_model

        if not self.model_path.is_file():
            raise ConvscopeError(
                f"{self.path}: no model.keras in this run folder; train it first with "
                f"`convscope train --out {self.path.parent} --name {self.path.name}` or pass another run folder"
            )
        config = self.read_config()
        return load_model(self.model_path, trust=config.model.trust_model)

    def load_dataset(self):
        """Load the run's dataset with the run's own preprocessing and split."""
        from convscope.data import load_dataset

        config = self.read_config()
        return load_dataset(config.data, seed=config.train.seed)

    def read_history(self) -> dict[str, np.ndarray]:
        """Return history.csv as columns of floats; empty dict if there is none."""
        if not self.history_path.is_file():
            return {}
        with open(self.history_path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        if not rows:
            return {}
        return {key: np.array([float(row[key]) if row[key] != "" else np.nan for row in rows]) for key in rows[0]}

    def read_json(self, path: Path) -> dict:
        """Return a JSON file of this folder as a dict; empty dict if missing."""
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ConvscopeError(f"{path}: unreadable JSON ({error}); delete it and re-run the stage that writes it") from None

    def read_metrics(self) -> dict:
        return self.read_json(self.metrics_path)

    def read_predictions(self) -> dict[str, np.ndarray] | None:
        """Return predictions.npz as arrays, or None when evaluate has not run."""
        if not self.predictions_path.is_file():
            return None
        with np.load(self.predictions_path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}

    def update_metrics(self, values: dict) -> None:
        """Merge ``values`` into metrics.json atomically."""
        from convscope.fileio import write_json

        write_json(self.metrics_path, {**self.read_metrics(), **values})


def open_run(path: str | Path) -> RunFolder:
    """Return the RunFolder at ``path``, or raise if it is not one."""
    path = Path(path)
    if not path.is_dir():
        raise ConvscopeError(f"{path}: run folder not found; pass a folder written by `convscope train` or `convscope run`")
    return RunFolder(path)
