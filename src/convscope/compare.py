"""Compare runs: read them into one leaderboard, printed in the terminal (compare.html: convscope.html.compare_page).

    convscope compare runs/sweep-mnist/*
    convscope compare runs/a runs/b --group-by-dataset --out both.html

    from convscope.compare import compare_runs, format_leaderboard
    from convscope.html.compare_page import write_compare_html
    comparison = compare_runs(["runs/sweep-mnist/mlp_512", "runs/sweep-mnist/cnn_2conv"])
    print(format_leaderboard(comparison))
    write_compare_html(comparison, "compare.html")

Everything is read from the run folders (config.yaml, data.json, metrics.json,
history.csv, predictions.npz, model.keras for parameters and MFLOPs), so
Keras runs and scikit-learn baselines compare alike. Runs are ranked by test
accuracy. Accuracies of different test sets mean different things, so runs
on different datasets are refused unless ``group_by_dataset`` asks for one
leaderboard per dataset.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convscope.errors import ConvscopeError
from convscope.evaluate import compute_confusion_matrix
from convscope.html.compare_page import COLUMNS, NUMERIC, leaderboard_rows
from convscope.runfolder import RunFolder, open_run
from convscope.text import format_table

GLOB_CHARACTERS = "*?["


@dataclass
class RunSummary:
    """One run's line of the leaderboard, and what its figures need."""

    path: Path
    label: str  # the run folder's name
    dataset: str
    model: str
    params: int | None  # None: no loadable model.keras
    mflops: float | None  # per image, forward pass
    epochs: int | None
    train_seconds: float | None
    best_val_accuracy: float | None
    test_accuracy: float | None
    test_loss: float | None
    ece: float | None  # None until `convscope evaluate` ran
    class_names: list[str]
    num_test: int | None
    history: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    f1: np.ndarray | None = field(repr=False, default=None)  # (num_classes,) per-class F1
    confusion: np.ndarray | None = field(repr=False, default=None)  # (C, C) counts, rows true


@dataclass
class Comparison:
    """Runs grouped by dataset, each group ranked by test accuracy (best first)."""

    groups: dict[str, list[RunSummary]]

    @property
    def runs(self) -> list[RunSummary]:
        return [run for runs in self.groups.values() for run in runs]


# --------------------------------------------------------------------------- reading runs


def expand_run_paths(patterns: list[str]) -> list[Path]:
    """Run folders named or matched by glob patterns (``runs/*``), in order, each once.

    A pattern's matches that are not run folders (compare.html, a folder
    without config.yaml) are skipped; a pattern matching no run folder, or a
    named path that is not one, is an error.

    Example:
        >>> expand_run_paths(["runs/sweep-mnist/*"])
        [PosixPath('runs/sweep-mnist/cnn_2conv'), PosixPath('runs/sweep-mnist/mlp_512')]
    """
    paths: list[Path] = []
    for pattern in patterns:
        if any(character in pattern for character in GLOB_CHARACTERS) and not Path(pattern).exists():
            matches = [Path(match) for match in sorted(glob.glob(pattern)) if RunFolder(Path(match)).config_path.is_file()]
            if not matches:
                raise ConvscopeError(f"{pattern}: matches no run folder; expected folders holding config.yaml, e.g. runs/sweep-mnist/*")
        else:
            run = open_run(pattern)
            if not run.config_path.is_file():
                raise ConvscopeError(f"{pattern}: not a run folder (no config.yaml); pass folders written by `convscope train`, `sweep` or `baseline`")
            matches = [run.path]
        paths.extend(match for match in matches if match not in paths)
    if not paths:
        raise ConvscopeError("no run folders given; pass run folders or a glob such as runs/*")
    return paths


def read_run_summary(path: str | Path) -> RunSummary:
    """Everything the comparison shows about one run folder.

    Example:
        >>> read_run_summary("runs/sweep-mnist/cnn_2conv").test_accuracy
        0.9874
    """
    run = open_run(path)
    config = run.read_config()
    metrics = run.read_metrics()
    data = run.read_data_description()
    evaluation = metrics.get("evaluation") or {}
    class_names = [str(name) for name in data.get("class_names", [])]
    per_class = evaluation.get("per_class") or {}
    f1 = np.array([per_class[name]["f1-score"] for name in class_names]) if per_class and all(name in per_class for name in class_names) else None
    params, mflops = model_cost(run, data)
    history = run.read_history()
    epochs = metrics.get("epochs_run", len(history.get("epoch", [])) or None)
    return RunSummary(
        path=run.path,
        label=run.path.name,
        dataset=str(data.get("name") or config.data.dataset),
        model=config.model.name,
        params=params,
        mflops=mflops,
        epochs=epochs,
        train_seconds=metrics.get("train_seconds"),
        best_val_accuracy=metrics.get("best_val_accuracy"),
        test_accuracy=metrics.get("test_accuracy"),
        test_loss=metrics.get("test_loss"),
        ece=evaluation.get("ece"),
        class_names=class_names,
        num_test=evaluation.get("num_test"),
        history=history,
        f1=f1,
        confusion=read_confusion(run, evaluation),
    )


def read_confusion(run: RunFolder, evaluation: dict) -> np.ndarray | None:
    """The confusion matrix the evaluation saved; a folder evaluated before metrics.json held it: counted from predictions.npz."""
    if "confusion_matrix" in evaluation:
        return np.array(evaluation["confusion_matrix"], dtype=np.int64)
    predictions = run.read_predictions() if evaluation else None
    if predictions is None:
        return None
    probabilities = predictions["probabilities"]
    return compute_confusion_matrix(predictions["labels"], probabilities.argmax(axis=1), probabilities.shape[1])


def model_cost(run: RunFolder, data: dict) -> tuple[int | None, float | None]:
    """(parameters, MFLOPs per image) of model.keras; (None, None) when it is missing or does not load.

    A scikit-learn baseline's model.keras is the same network as Dense layers,
    so its MFLOPs are 2 * sum(inputs * outputs) over its layers, as for a Keras MLP.
    """
    if not run.model_path.is_file():
        return None, None
    from convscope.models import summarize  # here, not at the top: it imports Keras, which a leaderboard of runs without model.keras never needs

    try:
        summary = summarize(run.load_model(), tuple(data["input_shape"]) if data.get("input_shape") else None)
    except (ValueError, TypeError, OSError):  # custom layers not importable here, a damaged file: the rest still compares
        return None, None
    return summary.total_params, summary.mflops


def compare_runs(paths: list[str | Path], group_by_dataset: bool = False) -> Comparison:
    """Read the runs and rank them by test accuracy, one group per dataset.

    Args:
        paths: run folders (see ``expand_run_paths`` for globs).
        group_by_dataset: allow runs on different datasets, one leaderboard each;
            False: such a mix is refused.

    Returns:
        Comparison.

    Raises:
        ConvscopeError: runs on different datasets (without group_by_dataset), or
            runs of one dataset with different classes.

    Example:
        >>> comparison = compare_runs(expand_run_paths(["runs/sweep-mnist/*"]))
        >>> [run.model for run in comparison.runs]
        ['mnist_convnet', 'cnn_2conv', 'cnn_single', 'mlp_512', 'sklearn-mlp-16x16']
    """
    runs = [read_run_summary(path) for path in paths]
    if not runs:
        raise ConvscopeError("no run folders to compare; pass run folders or a glob such as runs/*")
    groups: dict[str, list[RunSummary]] = {}
    for run in runs:
        groups.setdefault(run.dataset, []).append(run)
    if len(groups) > 1 and not group_by_dataset:
        listing = "; ".join(f"{dataset}: {', '.join(str(run.path) for run in members)}" for dataset, members in groups.items())
        raise ConvscopeError(
            f"runs on different datasets ({listing}); accuracies on different test sets do not compare; "
            "pass runs of one dataset, or --group-by-dataset for one leaderboard per dataset"
        )
    for dataset, members in groups.items():
        names = {tuple(run.class_names) for run in members if run.class_names}
        if len(names) > 1:
            raise ConvscopeError(
                f"runs on {dataset} have different classes ({', '.join(f'{run.label}: {len(run.class_names)}' for run in members)}); "
                "expected the same classes in every run; compare runs made from the same data"
            )
        members.sort(key=lambda run: (-(run.test_accuracy if run.test_accuracy is not None else -1.0), run.label))
    return Comparison(groups)


# --------------------------------------------------------------------------- the leaderboard


def format_leaderboard(comparison: Comparison) -> str:
    """The leaderboard as aligned text, one table per dataset.

    Example:
        >>> print(format_leaderboard(comparison))
        Dataset mnist: 10,000 test images
        #  run        model      params  MFLOPs ...
    """
    headings = ["#", *(heading for heading, _, _ in COLUMNS)]
    align = "".join("r" if right else "l" for right in NUMERIC)
    blocks = []
    for dataset, runs in comparison.groups.items():
        sizes = {run.num_test for run in runs if run.num_test}
        test = f": {sizes.pop():,} test images" if len(sizes) == 1 else ""
        blocks.append(f"Dataset {dataset}{test}\n" + format_table(headings, leaderboard_rows(runs), align=align))
    return "\n\n".join(blocks)
