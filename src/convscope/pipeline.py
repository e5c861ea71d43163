"""The one place where stages are chained: train, evaluate, inspect, report — each reading and writing one run folder.

    import convscope
    result = convscope.run()                          # bundled MNIST sample, default model
    print(result.report_path)

    from convscope.pipeline import evaluate_run, inspect_run, report_run
    evaluate_run("runs/mnist-demo")                   # re-run one stage without retraining
    inspect_run("runs/mnist-demo", images=[0, 42])
    report_run("runs/mnist-demo")
    build_report(model, (x_test, y_test), history=history)   # a notebook's model: the same stages, a scratch folder
    imported = import_model(config)                   # a model file made elsewhere -> a new run folder

Each stage locks the folder while it writes (a second writer exits 2) and adds its
wall time to environment.json; `run` holds the lock from the first epoch to the report.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convscope.baseline import fit_baseline, prepare_baseline
from convscope.config import Config
from convscope.data import load_dataset
from convscope.data.augment import augment_examples, parse_augment
from convscope.data.stream import is_streamed
from convscope.errors import ConvscopeError
from convscope.display import drawable_images
from convscope.evaluate import evaluate
from convscope.html.notebook import array_pair, history_columns, notebook_sources
from convscope.html.report import build_run_report, compose_report, write_report
from convscope.inspection import compute_dense_weights, inspect
from convscope.keras_compat import to_channels_last
from convscope.lrfind import LearningRateSweep, check_sweep_settings, read_lr_find
from convscope.plots.augmentation import plot_augmentation
from convscope.plots.common import save_figure
from convscope.plots.evaluation import save_evaluation_figures
from convscope.plots.inspection import plot_dense_weights, save_inspection_figures
from convscope.models import describe_model_file, is_model_file, load_model_for_data
from convscope.plots.lr_find import plot_lr_find
from convscope.runfolder import RunFolder, default_run_name, describe_environment, new_run, open_run, with_run_name
from convscope.lrfind import find_learning_rate_in_run
from convscope.train import prepare_training, train_in_folder, training_folder

DEFAULT_INSPECT_IMAGES = 2  # the report shows one right and one wrong prediction
SAMPLE_IMAGES = 64  # training images handed to the sample figure (it shows the first 25)
AUGMENT_IMAGES, AUGMENT_VERSIONS = 4, 6  # the augmentation grid: rows of training images, augmented versions beside each


@dataclass
class RunResult:
    """Where `run` put everything."""

    run: RunFolder
    metrics: dict
    report_path: Path
    stage_seconds: dict[str, float]


@contextlib.contextmanager
def stage(run: RunFolder, name: str, started: float | None = None):
    """Lock the folder for one stage and record the stage's wall time in environment.json.

    Args:
        started: ``time.perf_counter()`` when the stage began, if before the folder
            existed (training loads the data and builds the model first).
    """
    with run.lock():
        started = time.perf_counter() if started is None else started
        yield run
        run.record_stage_time(name, time.perf_counter() - started)


def run(config: Config | None = None, resume: bool = False, dataset=None, figures=None) -> RunResult:
    """Train, evaluate, inspect and report in one go; the test set is predicted once.

    Args:
        config: the run configuration; None: defaults (bundled mnist-sample, offline).
        resume: continue an interrupted run named by ``config.run``.
        dataset: ``config.data`` already loaded (`convscope run` loads it while TensorFlow imports).
        figures: a ``plots.background.FigureProcess``: it draws the evaluation figures while
            this process inspects the model; None: drawn here, before the inspection.

    Returns:
        RunResult with the run folder, metrics, report path and seconds per stage.

    Example:
        >>> result = run()  # doctest: +SKIP
        >>> result.report_path
        PosixPath('runs/mnist-sample-mnist_convnet-20260101-120000/report.html')
    """
    with trained_and_evaluated(config or Config(), resume, dataset, figures) as trained:
        folder = trained.run
        if not trained.chief:  # another worker of a distributed run: the chief writes the report
            return RunResult(folder, trained.metrics, None, {})
        inspect_run(folder.path, model=trained.model, dataset=trained.dataset)
        if figures is not None and figures.pending:  # not for streamed images, drawn here
            wait_for_figures(folder, figures)
        report_run(folder.path, model=trained.model)
    seconds = folder.read_environment()["stage_seconds"]
    return RunResult(folder, folder.read_metrics(), folder.report_path, {name: seconds[name] for name in ("train", "evaluate", "inspect", "report")})


def train_and_evaluate(config: Config, resume: bool = False):
    """Train into a new (or resumed) run folder and draw the evaluation: a sweep's step for each model.

    Args:
        config: the run configuration (not changed).
        resume: continue the run named by ``config.run``.

    Returns:
        The TrainResult.
    """
    with trained_and_evaluated(config, resume) as trained:
        return trained


@contextlib.contextmanager
def trained_and_evaluated(config: Config, resume: bool = False, dataset=None, figures=None):
    """``train_and_evaluate``, the folder still locked inside for the caller's next stages.

    Yields:
        The TrainResult.

    Example:
        >>> with trained_and_evaluated(config) as trained:  # doctest: +SKIP
        ...     inspect_run(trained.run.path, model=trained.model, dataset=trained.dataset)
    """
    started = time.perf_counter()
    with training_folder(config, dataset=dataset, resume=resume) as (folder, config, model, dataset, cluster):
        if is_streamed(dataset.x_test):  # images read through open files and locks, which another process cannot share
            figures = None
        with stage(folder, "train", started):
            trained = train_in_folder(folder, config, model, dataset, resume, cluster)
        if not trained.chief:  # another worker of a distributed run: the chief evaluates and reports
            yield trained
            return
        evaluate_run(folder.path, model=trained.model, dataset=dataset, evaluation=trained.evaluation, figures=figures)
        yield trained


def evaluate_run(run_dir: str | Path, model=None, dataset=None, evaluation=None, figures=None):
    """Evaluate a run's kept model on its test set; write metrics, predictions and figures.

    Args:
        run_dir: a run folder written by `train`.
        model: the trained model, if already in memory (saves loading model.keras).
        dataset: the run's dataset, if already loaded.
        evaluation: the test set's EvaluationResult, if training just computed and saved it:
            then only the figures are drawn, and the test set is not predicted again.
        figures: a ``plots.background.FigureProcess`` to draw the figures in, while the caller
            goes on (then ``wait_for_figures`` before the report); None: drawn here.

    Returns:
        The EvaluationResult.
    """
    with stage(open_run(run_dir), "evaluate") as run:
        dataset = dataset if dataset is not None else run.load_dataset()
        if evaluation is None:
            model = model if model is not None else run.load_model()
            evaluation = evaluate(model, dataset.x_test, dataset.y_test, class_names=dataset.class_names)
            run.save_evaluation(evaluation)
        draw_evaluation(run, evaluation, dataset, figures)
    return evaluation


def wait_for_figures(run: RunFolder, figures) -> None:
    """Wait for the evaluation figures ``figures`` is drawing; the wait counts as evaluate's time in environment.json.

    Args:
        run: the run folder the figures go to.
        figures: the ``plots.background.FigureProcess`` they were handed to.
    """
    with run.lock():
        started = time.perf_counter()
        figures.wait()
        seconds = run.read_environment().get("stage_seconds", {}).get("evaluate", 0.0)
        run.record_stage_time("evaluate", seconds + time.perf_counter() - started)


def draw_evaluation(run: RunFolder, evaluation, dataset, figures=None) -> None:
    """The evaluation figures of a run, into its plots/: from the evaluation, the folder's history and the data.

    Args:
        run: the run folder.
        evaluation: the test set's EvaluationResult.
        dataset: the run's Dataset (its images, drawn with its own scaling undone).
        figures: a ``plots.background.FigureProcess`` to hand the evaluation figures to; None: drawn here.
    """
    save = save_evaluation_figures if figures is None else figures.start_evaluation_figures
    save(
        evaluation,
        dataset.display_images(dataset.x_test),
        run.plots_dir,
        history=run.read_history() or None,
        train_labels=dataset.y_train,
        val_labels=dataset.y_val,
        train_images=dataset.display_images(dataset.x_train[:SAMPLE_IMAGES]),
    )
    sweep = read_lr_find(run)
    if sweep is not None:  # --learning-rate find recorded its sweep before training
        save_figure(plot_lr_find(sweep), run.plots_dir / "lr_find.png")
    draw_augmentation(run, dataset)


def draw_augmentation(run: RunFolder, dataset) -> None:
    """plots/augmentation.png when the run trained with --augment: the first training images beside augmented versions."""
    config = run.read_config()
    augmentation = parse_augment(config.train.augment)
    if augmentation is None:
        return
    x = dataset.x_train[:AUGMENT_IMAGES]
    originals = dataset.display_images(x)
    versions = augment_examples(x, augmentation, config.train.seed, AUGMENT_VERSIONS, dataset.scaling)
    pixels = dataset.display_images(versions.reshape(-1, *x.shape[1:])).reshape(len(x), AUGMENT_VERSIONS, *originals.shape[1:])
    labels = [str(dataset.class_names[label]) for label in dataset.y_train[:AUGMENT_IMAGES]]
    save_figure(plot_augmentation(originals, pixels, augmentation.describe(), labels), run.plots_dir / "augmentation.png")


def find_learning_rate_run(config: Config, **sweep) -> tuple[RunFolder, LearningRateSweep]:
    """`convscope lr-find`: sweep the rate for a config's model and data into a new run folder.

    The folder gets config.yaml (the config with the suggested rate, so `convscope run
    --config RUN/config.yaml` trains at it), environment.json, data.json, lr_find.csv,
    metrics.json's ``lr_find`` and plots/lr_find.png.

    Args:
        config: the run configuration (not changed); its optimizer and batch size are swept.
        sweep: ``lrfind.find_learning_rate``'s start, end and num_batches.

    Returns:
        (the run folder, the LearningRateSweep).

    Example:
        >>> run, sweep = find_learning_rate_run(Config())  # doctest: +SKIP
        >>> sweep.suggestion
    """
    started = time.perf_counter()
    check_sweep_settings(**sweep)  # before the data is loaded and a folder made
    if config.run.name is None:
        config = dataclasses.replace(config, run=dataclasses.replace(config.run, name=f"lr-find-{default_run_name(config)}"))
    config, model, dataset = prepare_training(config)
    with new_run(config) as folder, stage(folder, "lr_find", started):
        found, result = find_learning_rate_in_run(folder, config, model, dataset, **sweep)
        save_figure(plot_lr_find(result), folder.plots_dir / "lr_find.png")
        # No run name in config.yaml: `convscope run --config RUN/config.yaml` then trains into a new folder, not this one.
        folder.write_config(dataclasses.replace(found, run=dataclasses.replace(found.run, name=None)))
        folder.write_environment(describe_environment(found))
        folder.write_data_description(dataset)
    return folder, result


def choose_inspect_images(run: RunFolder, count: int = DEFAULT_INSPECT_IMAGES) -> list[int]:
    """Test indices to look inside: the first right prediction and the first wrong one."""
    predictions = run.read_predictions()
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
    with stage(open_run(run_dir), "inspect") as run:
        model = model if model is not None else run.load_model()
        dataset = dataset if dataset is not None else run.load_dataset()
        images = images if images is not None else choose_inspect_images(run)
        bad = [i for i in images if not 0 <= i < len(dataset.y_test)]
        if bad:
            raise ConvscopeError(f"--images {','.join(map(str, bad))}: out of range; expected test indices 0..{len(dataset.y_test) - 1}")
        x = dataset.x_test[images]
        return inspect_images(
            run, model, x, images, dataset.class_names, layers=layers,
            display_images=dataset.display_images(x), image_labels=[f"test image {i}" for i in images],
        )


def inspect_images(run: RunFolder, model, x, indices: list[int], class_names, **options):
    """The inspect stage's work: look inside ``model`` on test images, save the figures, record what was shown.

    Args:
        run: the run folder.
        model: the model to look inside.
        x: the test images, as the model takes them.
        indices: their test-set indices (recorded, so the report can caption them).
        class_names: one name per class, for the figures' titles.
        options: ``inspection.inspect``'s layers, display_images and image_labels.

    Returns:
        The InspectionResult.
    """
    result = inspect(model, x, **options)
    previous = run.read_metrics().get("inspection", {}).get("figures", [])
    figures = save_inspection_figures(result, run.plots_dir, class_names=class_names)
    for name in set(previous) - {path.name for path in figures.values()}:
        (run.plots_dir / name).unlink(missing_ok=True)  # figures of images or layers no longer inspected
    run.update_metrics({"inspection": {"images": [int(i) for i in indices], "figures": sorted(p.name for p in figures.values())}})
    return result


def report_run(run_dir: str | Path, model=None) -> Path:
    """Build report.html from what the run folder holds.

    Args:
        run_dir: a run folder.
        model: its model, if already in memory (saves loading model.keras for the summary).

    Returns:
        The path of report.html.
    """
    with stage(open_run(run_dir), "report") as run:
        return build_run_report(run, model)


@dataclass
class ImportedModel:
    """A model file brought into a new run folder, and what the import already holds in memory."""

    run: RunFolder  # the new run folder
    model: object  # the keras.Model, as saved in model.keras
    dataset: object  # the convscope.data.Dataset it was checked against


def import_model(config: Config) -> ImportedModel:
    """Bring a model made outside convscope into a new run folder, so that every stage works on it.

    The folder gets config.yaml, environment.json (with ``imported``: each file's
    format, the Keras version that saved it, its size and SHA-256), data.json and
    model.keras; no history and no checkpoint. Then ``evaluate_run``, ``inspect_run``,
    ``report_run`` and the viewer take it like any run folder.

    Args:
        config: ``model.name``: a .keras file (safe mode), a legacy whole-model
            .h5/.hdf5 (only with ``model.trust_model``), or an architecture (zoo name or
            YAML) with ``model.weights``, an HDF5 weights file. ``data``: the dataset,
            prepared as the model was trained (e.g. ``scale``). ``run``: where the folder
            goes; its default name is ``<dataset>-<file name>-<time>``. Not changed.

    Returns:
        ImportedModel: the run folder, the model and the dataset.

    Raises:
        ConvscopeError: the file is refused or does not load, or the model does not fit
            the data (image shape, class count, weight shapes: one line naming both sides).

    Example:
        >>> config = Config()
        >>> config.model.name = "lesson.keras"
        >>> imported = import_model(config)  # doctest: +SKIP
        >>> evaluate_run(imported.run.path, model=imported.model, dataset=imported.dataset)  # doctest: +SKIP
    """
    started = time.perf_counter()
    config = with_run_name(copy.deepcopy(config))
    dataset = load_dataset(config.data, seed=config.train.seed)
    model_config = config.model
    model = load_model_for_data(
        model_config.name, dataset.input_shape, dataset.num_classes, weights=model_config.weights,
        trust=model_config.trust_model, data_name=f"dataset {config.data.dataset}",
    )
    imported = {}
    if is_model_file(model_config.name):
        imported["model"] = describe_model_file(model_config.name)
    if model_config.weights:
        imported["weights"] = describe_model_file(model_config.weights)
    with new_run(config, resumable=False) as folder:
        with stage(folder, "import", started):
            folder.write_config(config)
            folder.write_environment({**describe_environment(config), "imported": imported})
            folder.write_data_description(dataset)
            folder.save_model(model)
    return ImportedModel(folder, model, dataset)


def report_imported(imported: ImportedModel) -> Path:
    """Evaluate, inspect and report an imported model in one go (`convscope report --model FILE`).

    Returns:
        The path of report.html.
    """
    with imported.run.lock():
        evaluate_run(imported.run.path, model=imported.model, dataset=imported.dataset)
        inspect_run(imported.run.path, model=imported.model, dataset=imported.dataset)
        return report_run(imported.run.path, model=imported.model)


def train_baseline(config: Config, dataset=None, overwrite: bool = False):
    """Fit a scikit-learn baseline into a complete run folder: metrics, predictions, figures.

    Args:
        config: ``model.name`` a baseline name, after ``baseline.baseline_config``.
        dataset: a ``convscope.data.Dataset`` to use instead of loading ``config.data``.
        overwrite: start again in a folder that holds an unfinished baseline.

    Returns:
        baseline.BaselineResult.

    Example:
        >>> result = train_baseline(baseline_config(config))  # doctest: +SKIP
        >>> result.metrics["test_accuracy"]
    """
    config, dataset = prepare_baseline(config, dataset)
    with new_run(config, overwrite=overwrite, resumable=False) as folder:
        result = fit_baseline(folder, config, dataset)
        with stage(folder, "evaluate"):
            if result.evaluation is not None:
                draw_evaluation(folder, result.evaluation, dataset)
            weights = compute_dense_weights(result.model, tuple(dataset.input_shape))
            if weights is not None:  # each first-layer unit's weights as an image, as the lesson draws coefs_[0]
                save_figure(plot_dense_weights(weights), folder.plots_dir / "dense_weights.png")
    return result


def build_report(model, test_data, history=None, class_names=None, out="report.html", train_data=None, title=None) -> Path:
    """Evaluate and look inside a Keras model trained anywhere; write the same report a run gets.

    The evaluate and inspect stages run as for a run, into a temporary run folder,
    and the report is composed from that folder.

    Args:
        model: a trained Keras classifier (softmax probabilities or logits out).
        test_data: ``(x_test, y_test)``: images shaped as the model expects
            ((N, H, W, C) for the figures of the images and of the network's
            inside) and integer labels or one-hot rows.
        history: the ``History`` that ``model.fit`` returned, or its ``.history`` dict.
        class_names: one display name per class; default "0".."n-1".
        out: the HTML file to write.
        train_data: ``(x_train, y_train)``, optional: adds training samples and class counts.
        title: the page title; default: the model's name.

    Returns:
        The path written.

    Example:
        >>> history = model.fit(x_train, y_train, epochs=3, validation_split=0.1)
        >>> build_report(model, (x_test, y_test), history=history, out="report.html")
        PosixPath('report.html')
    """
    x_test, y_test = array_pair(test_data, "test_data")
    x_train, y_train = array_pair(train_data, "train_data") if train_data is not None else (None, None)
    columns = history_columns(history)
    with tempfile.TemporaryDirectory(prefix="convscope-report-") as folder:
        run = RunFolder(Path(folder))
        evaluation = evaluate(model, x_test, y_test, class_names=class_names)
        run.save_evaluation(evaluation)
        # draw_evaluation takes a Dataset, which undoes its known scaling; a notebook's arrays have
        # none, so the figures get them as given and rescale floats themselves.
        save_evaluation_figures(
            evaluation,
            drawable_images(to_channels_last(x_test)),
            run.plots_dir,
            history=columns or None,
            train_labels=y_train,
            train_images=drawable_images(to_channels_last(x_train[:SAMPLE_IMAGES])) if x_train is not None else None,
        )
        if x_test.ndim == 4:  # images with a channel axis: the network's inside can be drawn
            chosen = choose_inspect_images(run)
            inspect_images(run, model, x_test[chosen], chosen, evaluation.class_names)
        sources = notebook_sources(run, model, x_test, columns, len(x_train) if x_train is not None else None, title)
        content = compose_report(sources)  # reads the figures before the folder goes
    return write_report(content, out)
