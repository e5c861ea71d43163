"""The stages chained: train, evaluate, inspect, report — each reading and writing one run folder.

    import convscope
    result = convscope.run()                          # bundled MNIST sample, default model
    print(result.report_path)

    from convscope.pipeline import evaluate_run, inspect_run, report_run
    evaluate_run("runs/mnist-demo")                   # re-run one stage without retraining
    inspect_run("runs/mnist-demo", images=[0, 42])
    report_run("runs/mnist-demo")
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convscope.config import Config
from convscope.errors import ConvscopeError
from convscope.fileio import write_json, write_npz
from convscope.runfolder import RunFolder, open_run

DEFAULT_INSPECT_IMAGES = 2  # the report shows one right and one wrong prediction


@dataclass
class RunResult:
    """Where `run` put everything."""

    run: RunFolder
    metrics: dict
    report_path: Path
    stage_seconds: dict[str, float]


def _record_stage_time(run: RunFolder, stage: str, seconds: float) -> None:
    environment = run.read_json(run.environment_path)
    environment.setdefault("stage_seconds", {})[stage] = round(seconds, 2)
    write_json(run.environment_path, environment)


def save_predictions(run: RunFolder, result) -> Path:
    """Write predictions.npz: test probabilities, labels and class names (no pickled objects)."""
    return write_npz(
        run.predictions_path,
        probabilities=result.probabilities.astype(np.float32),
        labels=result.labels.astype(np.int64),
        class_names=np.array(result.class_names, dtype=str),
    )


def load_predictions(run: RunFolder) -> dict[str, np.ndarray] | None:
    """Return predictions.npz as arrays, or None when evaluate has not run."""
    if not run.predictions_path.is_file():
        return None
    with np.load(run.predictions_path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def _open_stage(run_dir: str | Path, model, dataset) -> tuple[RunFolder, object, object]:
    """The run folder, and its model and dataset unless the caller already has them in memory."""
    run = open_run(run_dir)
    return run, model if model is not None else run.load_model(), dataset if dataset is not None else run.load_dataset()


def evaluate_run(run_dir: str | Path, model=None, dataset=None):
    """Evaluate a run's best model on its test set; write metrics, predictions and figures.

    Args:
        run_dir: a run folder written by `train`.
        model: the trained model, if already in memory (saves loading model.keras).
        dataset: the run's dataset, if already loaded.

    Returns:
        The EvaluationResult.
    """
    from convscope.evaluate import evaluate
    from convscope.plots.evaluation import save_evaluation_figures

    started = time.perf_counter()
    run, model, dataset = _open_stage(run_dir, model, dataset)
    result = evaluate(model, dataset.x_test, dataset.y_test, class_names=dataset.class_names)
    save_predictions(run, result)
    run.update_metrics({"evaluation": result.to_metrics()})
    save_evaluation_figures(
        result,
        dataset.display_images(dataset.x_test),
        run.plots_dir,
        history=run.read_history() or None,
        train_labels=dataset.y_train,
        val_labels=dataset.y_val,
        train_images=dataset.display_images(dataset.x_train[:64]),
    )
    _record_stage_time(run, "evaluate", time.perf_counter() - started)
    return result


def choose_inspect_images(run: RunFolder, count: int = DEFAULT_INSPECT_IMAGES) -> list[int]:
    """Test indices to look inside: the first right prediction and the first wrong one."""
    predictions = load_predictions(run)
    if predictions is None:
        return list(range(count))
    right = predictions["probabilities"].argmax(axis=1) == predictions["labels"]
    chosen = [int(np.flatnonzero(right)[0])] if right.any() else []
    if (~right).any():
        chosen.append(int(np.flatnonzero(~right)[0]))
    extra = [i for i in range(len(right)) if i not in chosen]
    return (chosen + extra)[:count]


def inspect_run(run_dir: str | Path, images: list[int] | None = None, layers: list[str] | None = None, model=None, dataset=None):
    """Look inside a run's model on chosen test images; write the figures into plots/.

    Args:
        run_dir: a run folder written by `train`.
        images: test-set indices; default: one right and one wrong prediction.
        layers: layer names whose activations to show; default: every conv, pooling and activation layer.

    Returns:
        The InspectionResult.
    """
    from convscope.inspection import inspect
    from convscope.plots.inspection import save_inspection_figures

    started = time.perf_counter()
    run, model, dataset = _open_stage(run_dir, model, dataset)
    images = images if images is not None else choose_inspect_images(run)
    bad = [i for i in images if not 0 <= i < len(dataset.y_test)]
    if bad:
        raise ConvscopeError(f"--images {','.join(map(str, bad))}: out of range; expected test indices 0..{len(dataset.y_test) - 1}")
    x = dataset.x_test[images]
    result = inspect(
        model, x, layers=layers, display_images=dataset.display_images(x),
        image_labels=[f"test image {i}" for i in images],
    )
    previous = run.read_metrics().get("inspection", {}).get("figures", [])
    figures = save_inspection_figures(result, run.plots_dir, class_names=dataset.class_names)
    for name in set(previous) - {path.name for path in figures.values()}:
        (run.plots_dir / name).unlink(missing_ok=True)  # figures of images or layers no longer inspected
    run.update_metrics({"inspection": {"images": [int(i) for i in images], "figures": sorted(p.name for p in figures.values())}})
    _record_stage_time(run, "inspect", time.perf_counter() - started)
    return result


def report_run(run_dir: str | Path) -> Path:
    """Build report.html from what the run folder holds."""
    from convscope.report import build_run_report

    started = time.perf_counter()
    run = open_run(run_dir)
    path = build_run_report(run)
    _record_stage_time(run, "report", time.perf_counter() - started)
    return path


def run(config: Config | None = None, resume: bool = False) -> RunResult:
    """Train, evaluate, inspect and report in one go.

    Args:
        config: the run configuration; None: defaults (bundled mnist-sample, offline).
        resume: continue an interrupted run named by ``config.run``.

    Returns:
        RunResult with the run folder, metrics, report path and seconds per stage.

    Example:
        >>> result = run()  # doctest: +SKIP
        >>> result.report_path
        PosixPath('runs/mnist-sample-mnist_convnet-20260101-120000/report.html')
    """
    from convscope.train import train

    config = config or Config()
    seconds = {}
    started = time.perf_counter()
    trained = train(config, resume=resume)
    seconds["train"] = time.perf_counter() - started
    _record_stage_time(trained.run, "train", seconds["train"])
    for stage, call in (
        ("evaluate", lambda: evaluate_run(trained.run.path, model=trained.model, dataset=trained.dataset)),
        ("inspect", lambda: inspect_run(trained.run.path, model=trained.model, dataset=trained.dataset)),
        ("report", lambda: report_run(trained.run.path)),
    ):
        stage_start = time.perf_counter()
        call()
        seconds[stage] = time.perf_counter() - stage_start
    return RunResult(trained.run, trained.run.read_metrics(), trained.run.report_path, seconds)
