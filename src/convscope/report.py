"""The report: one self-contained HTML page per run, readable offline, on a phone and on paper.

    from convscope.report import build_report, build_run_report
    from convscope.runfolder import open_run
    path = build_run_report(open_run("runs/mnist-demo"))      # runs/mnist-demo/report.html

    # A Keras model trained in a notebook, outside convscope:
    history = model.fit(x_train, y_train, epochs=3, validation_split=0.1)
    build_report(model, (x_test, y_test), history=history, class_names=names, out="report.html")

Both ways in gather the same ``ReportSources`` (config, environment, data
description, model summary, history, metrics, a folder of figures), turn them
into one ``ReportContent`` with ``compose_report`` and render
``templates/report.html.j2``. Every figure is inlined as a base64 PNG data URI
and the style sheet is inlined too, so the file makes no request and opens
anywhere. Two builds of the same run folder differ only in the footer's build
time: nothing else reads the clock or draws random numbers, and every table
keeps the order of the file it comes from.
"""

from __future__ import annotations

import base64
import io
import math
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from convscope.errors import ConvscopeError
from convscope.fileio import write_text
from convscope.runfolder import RunFolder

# (anchor, heading) of every section, in order; the template and its table of contents use both.
SECTIONS = (
    ("run", "Run"),
    ("data", "Data"),
    ("model", "Model"),
    ("training", "Training"),
    ("evaluation", "Evaluation"),
    ("inside", "Inside the network"),
)
TEMPLATE = "report.html.j2"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Figures are drawn at 100 dpi (plots.common.DPI) and most weigh 20-150 KB. A larger
# one (a grid of photos, a mosaic of many channels) is reduced to 256 colours and at
# most MAX_FIGURE_WIDTH pixels, which keeps a full-MNIST report far below 8 MB;
# matplotlib's flat colours survive the palette without visible change.
MAX_FIGURE_BYTES = 300_000
MAX_FIGURE_WIDTH = 1600  # px: about twice the report's text column, still sharp on a high-density screen
MAX_HISTORY_ROWS = 100  # epochs listed in the training table; a longer run lists its first and last 50
MAX_CONFUSED_PAIRS = 10
DATA_FROM_CONFIG = "This run folder has no data.json, so these are the data settings of config.yaml, without fitted numbers."
REPORT_STAGES = ("train", "evaluate", "inspect")  # the report's own time changes at every build, so it is left out
SAMPLE_IMAGES = 64  # training images handed to the sample figure (it shows the first 25)


# --------------------------------------------------------------------------- what the report shows


@dataclass(frozen=True)
class Figure:
    """One PNG, ready for an <img> tag."""

    name: str  # file stem, e.g. "confusion_matrix"
    uri: str  # data:image/png;base64,...
    width: int  # pixels
    height: int


@dataclass
class Table:
    """Header, rows of display strings, and which columns hold numbers (right-aligned)."""

    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool]
    footer_rows: int = 0  # the last rows are totals or averages, set apart
    details: list[list[str]] | None = None  # a second, smaller line under each cell ("" for none)


@dataclass
class Headline:
    """A big number with its label and one line on how to read it."""

    label: str
    value: str
    hint: str


@dataclass
class ReportSources:
    """Everything a report is made from, read from a run folder or computed in a notebook."""

    title: str
    subtitle: str
    figures_dir: Path | None  # folder of <name>.png figures
    metrics: dict  # metrics.json layout: test_loss, best_epoch, ..., "evaluation": EvaluationResult.to_metrics()
    history: dict[str, np.ndarray]  # history.csv columns; empty when unknown
    environment: dict  # environment.json layout
    config: dict | None  # config_to_dict layout; None for a model trained outside convscope
    data: dict  # data.json layout: name, source, class_names, input_shape, preprocessing (with sizes)
    summary: dict | None  # convscope.models.summarize(model).to_dict()
    summary_note: str = ""  # why there is no summary
    settings_note: str = ""  # shown when there is no config
    commands: list[tuple[str, str]] = field(default_factory=list)  # (what it does, command line)
    inspected_images: list[str] = field(default_factory=list)  # one caption per inspected image, in order
    inspection_note: str = ""  # why "Inside the network" has no figures


@dataclass
class ReportContent:
    """The template's whole context: display strings, tables and figures, nothing left to compute."""

    title: str
    subtitle: str
    sections: tuple
    headline: str
    run_facts: list[tuple[str, str]]
    versions: list[tuple[str, str]]
    settings: Table | None
    settings_note: str
    commands: list[tuple[str, str]]
    data_facts: list[tuple[str, str]]
    preprocessing: list[tuple[str, str]]
    preprocessing_note: str
    summary: Table | None
    summary_totals: list[tuple[str, str]]
    summary_note: str
    training_facts: list[tuple[str, str]]
    history: Table | None
    headlines: list[Headline]
    class_report: Table | None
    confused_pairs: Table | None
    evaluated: bool
    figures: dict[str, Figure]
    activations: list[tuple[str, Figure]]  # (which image, its activations figure), in inspection order
    inspection_note: str
    version: str
    built_at: str


# --------------------------------------------------------------------------- entry points


def build_run_report(run: RunFolder) -> Path:
    """Write RUN/report.html from what the run folder holds.

    Reads config.yaml, environment.json, data.json, history.csv, metrics.json,
    predictions.npz, plots/*.png and model.keras (for the summary). Only
    config.yaml is required; a section whose files are missing says so.

    Args:
        run: the run folder (``convscope.runfolder.open_run(path)``).

    Returns:
        The path of report.html.

    Example:
        >>> build_run_report(open_run("runs/mnist-demo"))
        PosixPath('runs/mnist-demo/report.html')
    """
    return write_report(compose_report(read_run_sources(run)), run.report_path)


def build_report(model, test_data, history=None, class_names=None, out="report.html", train_data=None, title=None) -> Path:
    """Evaluate and look inside a Keras model trained anywhere; write the same report a run gets.

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
    from convscope.config import Config
    from convscope.display import drawable_images
    from convscope.evaluate import evaluate
    from convscope.keras_compat import to_channels_last
    from convscope.pipeline import choose_inspect_images, save_predictions
    from convscope.plots.evaluation import save_evaluation_figures
    from convscope.train import describe_environment

    x_test, y_test = _array_pair(test_data, "test_data")
    x_train, y_train = _array_pair(train_data, "train_data") if train_data is not None else (None, None)
    columns = history_columns(history)
    result = evaluate(model, x_test, y_test, class_names=class_names)
    environment = describe_environment(Config())
    for key in ("seed", "command", "started"):  # facts of a convscope run; unknown for a notebook's model
        environment.pop(key, None)
    sizes = {"train": len(x_train)} if x_train is not None else {}

    with tempfile.TemporaryDirectory(prefix="convscope-report-") as folder:
        scratch = RunFolder(Path(folder))  # a run folder's layout, so images are chosen as for a run
        save_evaluation_figures(
            result,
            drawable_images(to_channels_last(x_test)),
            scratch.plots_dir,
            history=columns or None,
            train_labels=y_train,
            train_images=drawable_images(to_channels_last(x_train[:SAMPLE_IMAGES])) if x_train is not None else None,
        )
        inspected, inspection_note = [], ""
        if x_test.ndim == 4:
            save_predictions(scratch, result)
            chosen = choose_inspect_images(scratch)
            _save_inspection_figures(model, x_test[chosen], scratch.plots_dir, result.class_names)
            inspected = describe_inspected_images(chosen, result.labels, result.predictions, result.class_names)
        else:
            inspection_note = (
                f"The test images have shape {tuple(x_test.shape[1:])}; looking inside the network needs "
                "images with a channel axis, shaped (N, height, width, channels)."
            )
        summary, summary_note = _summarize(model, tuple(x_test.shape[1:]))
        sources = ReportSources(
            title=title or model.name,
            subtitle=f"Keras model {model.name!r} evaluated on {len(x_test):,} test images",
            figures_dir=scratch.plots_dir,
            metrics={"evaluation": result.to_metrics()},
            history=columns,
            environment=environment,
            config=None,
            data={
                "name": "arrays passed to build_report",
                "class_names": result.class_names,
                "input_shape": list(x_test.shape[1:]),
                "preprocessing": {
                    "applied": "none by convscope: the arrays were used as given",
                    "dtype": str(x_test.dtype),
                    "value_range": [float(np.min(x_test)), float(np.max(x_test))],
                    "sizes": {**sizes, "test": len(x_test)},
                },
            },
            summary=summary,
            summary_note=summary_note,
            settings_note="The model was trained outside convscope, so its settings are not recorded. "
            + describe_compiled(model),
            inspected_images=inspected,
            inspection_note=inspection_note,
        )
        content = compose_report(sources)  # reads the figures before the folder goes
    return write_report(content, out)


def write_report(content: ReportContent, path: str | Path) -> Path:
    """Render ``content`` and write it atomically to ``path``."""
    return write_text(path, render_report(content))


def render_report(content: ReportContent) -> str:
    """Return the report's HTML for ``content`` (templates/report.html.j2, style sheet inlined)."""
    return render_template(TEMPLATE, report=content, figures=content.figures)


def render_template(name: str, **context) -> str:
    """Render one of convscope's HTML templates (report.html.j2, compare.html.j2) with ``context``."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("convscope", "templates"),
        autoescape=jinja2.select_autoescape(["html", "html.j2"]),
        undefined=jinja2.StrictUndefined,  # a misspelt field fails the build instead of vanishing
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return environment.get_template(name).render(**context)


# --------------------------------------------------------------------------- sources


def read_run_sources(run: RunFolder) -> ReportSources:
    """Gather what a report needs from a run folder (see ``build_run_report``)."""
    from convscope.config import config_to_dict

    config = run.read_config()
    environment = run.read_json(run.environment_path)
    metrics = run.read_metrics()
    data = run.read_json(run.data_path) or _data_from_config(run, config)
    model_name, dataset_name = config.model.name, config.data.dataset

    summary, summary_note = None, ""
    if run.model_path.is_file():
        try:
            model = run.load_model()
        except (ValueError, TypeError) as error:  # e.g. custom layers whose code is not importable here
            summary_note = f"model.keras could not be loaded here ({error}); the rest of the report does not need it."
        else:
            summary, summary_note = _summarize(model, tuple(data["input_shape"]) if data.get("input_shape") else None)
    else:
        summary_note = "This run folder has no model.keras (training has not finished an epoch)."

    inspection = metrics.get("inspection", {})
    inspected = []
    if inspection.get("images") is not None:
        from convscope.pipeline import load_predictions

        predictions = load_predictions(run)
        if predictions is not None:
            inspected = describe_inspected_images(
                inspection["images"],
                predictions["labels"],
                predictions["probabilities"].argmax(axis=1),
                [str(name) for name in predictions["class_names"]],
            )
    return ReportSources(
        title=f"{dataset_name} · {model_name}",
        subtitle=f"Run {run.path.name}",
        figures_dir=run.plots_dir,
        metrics=metrics,
        history=run.read_history(),
        environment=environment,
        config=config_to_dict(config),
        data=data,
        summary=summary,
        summary_note=summary_note,
        commands=reproduce_commands(run, config, environment),
        inspected_images=inspected,
        inspection_note="" if run.plots_dir.is_dir() else f"No figures yet: run `convscope inspect {run.path}`.",
    )


def _data_from_config(run: RunFolder, config) -> dict:
    """The data description of a run folder older than data.json: the config's data settings."""
    from convscope.config import config_to_dict
    from convscope.pipeline import load_predictions

    described: dict = {"name": config.data.dataset, "note": DATA_FROM_CONFIG}
    predictions = load_predictions(run)
    if predictions is not None:
        described["class_names"] = [str(name) for name in predictions["class_names"]]
    described["preprocessing"] = {key: value for key, value in config_to_dict(config)["data"].items() if key != "dataset"}
    return described


def reproduce_commands(run: RunFolder, config, environment: dict) -> list[tuple[str, str]]:
    """The command lines that repeat this run, the recorded one first."""
    from convscope.baseline import is_baseline_name

    commands = []
    if environment.get("command"):
        commands.append(("The command that made this run", environment["command"]))
    if config.model.name.startswith("python:"):
        commands.append((
            "The model was built in Python, so config.yaml names it but cannot rebuild it; "
            "train the same model again, into a new folder, with",
            "from convscope import train\nfrom convscope.config import load_config\n"
            f"config = load_config('{run.config_path}')\n"
            f"config.run.name = '{run.path.name}-again'\n"
            "train(config, model=your_model)",
        ))
    elif is_baseline_name(config.model.name):
        commands.append((
            "Fit the same baseline again with the same settings, into a new folder",
            f"convscope baseline --config {run.config_path} --name {run.path.name}-again",
        ))
    else:
        commands.append((
            "Train, evaluate, inspect and report again with the same settings, into a new folder",
            f"convscope run --config {run.config_path} --name {run.path.name}-again",
        ))
    return commands


def _summarize(model, input_shape) -> tuple[dict | None, str]:
    from convscope.models import summarize

    try:
        return summarize(model, input_shape).to_dict(), ""
    except ConvscopeError as error:
        return None, f"The model summary could not be computed: {error}"


def _save_inspection_figures(model, images: np.ndarray, out_dir: Path, class_names: list[str]) -> None:
    from convscope.inspection import inspect
    from convscope.plots.inspection import save_inspection_figures

    save_inspection_figures(inspect(model, images), out_dir, class_names=class_names)


def describe_inspected_images(indices, labels, predictions, class_names) -> list[str]:
    """One caption per inspected test image: index, label, prediction, right or wrong."""
    captions = []
    for index in indices:
        label, predicted = int(labels[index]), int(predictions[index])
        verdict = "right" if label == predicted else "wrong"
        captions.append(
            f"Test image {int(index)}: labelled {class_names[label]}, predicted {class_names[predicted]} ({verdict})"
        )
    return captions


def describe_compiled(model) -> str:
    """What the model's compile step tells: optimizer, learning rate, loss."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return "The model was never compiled."
    parts = [f"optimizer {type(optimizer).__name__}"]
    rate = getattr(optimizer, "learning_rate", None)
    try:
        parts.append(f"learning rate {float(np.asarray(rate)):.3g} at the end of training")
    except (TypeError, ValueError):  # a schedule object has no single value
        pass
    loss = getattr(model, "loss", None)
    if loss is not None:
        parts.append(f"loss {loss if isinstance(loss, str) else type(loss).__name__}")
    return "Its compile step says: " + ", ".join(parts) + "."


def history_columns(history) -> dict[str, np.ndarray]:
    """A Keras ``History``, its ``.history`` dict or history.csv columns -> columns with an ``epoch`` (from 1).

    Example:
        >>> history_columns({"loss": [0.9, 0.5]})
        {'epoch': array([1., 2.]), 'loss': array([0.9, 0.5])}
    """
    if history is None:
        return {}
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict):
        raise ConvscopeError(
            f"history is a {type(history).__name__}; expected the History that model.fit returns or its .history dict"
        )
    try:
        columns = {str(key): np.asarray(values, dtype=float).ravel() for key, values in logs.items()}
    except (TypeError, ValueError):
        raise ConvscopeError("history holds values that are not numbers; expected one number per epoch for each metric") from None
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise ConvscopeError(f"history columns have different lengths {sorted(lengths)}; expected one value per epoch in each")
    if not columns or not lengths.pop():
        return {}
    if "epoch" not in columns:
        columns = {"epoch": np.arange(1, len(next(iter(columns.values()))) + 1, dtype=float), **columns}
    return columns


def _array_pair(pair, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        x, y = pair
    except (TypeError, ValueError):
        raise ConvscopeError(f"{name}: expected a pair (images, labels), got {type(pair).__name__}") from None
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ConvscopeError(f"{name}: {len(x)} images but {len(y)} labels; expected one label per image")
    return x, y


# --------------------------------------------------------------------------- figures


def load_figures(folder: Path | None) -> dict[str, Figure]:
    """Every PNG in ``folder`` as an inline Figure, by file stem (sorted by name)."""
    if folder is None or not Path(folder).is_dir():
        return {}
    return {path.stem: inline_png(path) for path in sorted(Path(folder).glob("*.png")) if not path.name.startswith(".")}


def inline_png(path: Path) -> Figure:
    """Read a PNG (downsized when large, see MAX_FIGURE_BYTES) and return it as a data URI."""
    from PIL import Image

    data = Path(path).read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise ConvscopeError(f"{path}: not a PNG file; delete it and re-run `convscope evaluate` or `convscope inspect`")
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        if len(data) > MAX_FIGURE_BYTES:
            data, width, height = _shrink_png(image, data)
    return Figure(Path(path).stem, "data:image/png;base64," + base64.b64encode(data).decode("ascii"), width, height)


def _shrink_png(image, data: bytes) -> tuple[bytes, int, int]:
    from PIL import Image

    picture = image.convert("RGB")
    if picture.width > MAX_FIGURE_WIDTH:
        height = round(picture.height * MAX_FIGURE_WIDTH / picture.width)
        picture = picture.resize((MAX_FIGURE_WIDTH, height), Image.Resampling.LANCZOS)
    palette = picture.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG", optimize=True)
    if buffer.tell() >= len(data):
        return data, image.width, image.height
    return buffer.getvalue(), picture.width, picture.height


def activation_figures(figures: dict[str, Figure], captions: list[str]) -> list[tuple[str, Figure]]:
    """The activations_img<i> figures (one per inspected image, a row per layer) in image order, with captions."""
    pattern = re.compile(r"activations_img(?P<image>\d+)$")
    found = sorted((int(match["image"]), figure) for name, figure in figures.items() if (match := pattern.match(name)))
    return [(captions[index] if index < len(captions) else f"Inspected image {index + 1}", figure) for index, figure in found]


# --------------------------------------------------------------------------- composing


def compose_report(sources: ReportSources, built_at: str | None = None) -> ReportContent:
    """Turn the sources into display strings, tables and inline figures.

    Args:
        sources: what ``read_run_sources`` or ``build_report`` gathered.
        built_at: the footer's build time; default now (local time, seconds).

    Returns:
        ReportContent for ``render_report``.
    """
    from convscope import __version__

    figures = load_figures(sources.figures_dir)
    evaluation = sources.metrics.get("evaluation") or {}
    return ReportContent(
        title=sources.title,
        subtitle=sources.subtitle,
        sections=SECTIONS,
        headline=headline_sentence(sources.metrics, sources.history),
        run_facts=run_facts(sources),
        versions=version_facts(sources.environment),
        settings=settings_table(sources.config),
        settings_note=sources.settings_note,
        commands=sources.commands,
        data_facts=data_facts(sources.data, sources.metrics),
        preprocessing=preprocessing_facts(sources.data.get("preprocessing") or {}),
        preprocessing_note=str(sources.data.get("note", "")),
        summary=summary_table(sources.summary),
        summary_totals=summary_totals(sources.summary),
        summary_note=sources.summary_note,
        training_facts=training_facts(sources.metrics, sources.history),
        history=history_table(sources.history),
        headlines=headline_numbers(sources.metrics),
        class_report=class_report_table(evaluation),
        confused_pairs=confused_pairs_table(evaluation),
        evaluated=bool(evaluation),
        figures=figures,
        activations=activation_figures(figures, sources.inspected_images),
        inspection_note=sources.inspection_note,
        version=__version__,
        built_at=built_at or datetime.now().astimezone().isoformat(sep=" ", timespec="seconds"),
    )


def headline_sentence(metrics: dict, history: dict) -> str:
    """One line under the title: the test accuracy and how long training took."""
    evaluation = metrics.get("evaluation") or {}
    accuracy = evaluation.get("accuracy", metrics.get("test_accuracy"))
    parts = []
    if accuracy is not None:
        parts.append(f"Test accuracy {format_percent(accuracy)}")
    epochs = metrics.get("epochs_run", len(history.get("epoch", [])))
    if epochs:
        parts.append(f"after {epochs} epoch{'s' if epochs != 1 else ''}")
    if metrics.get("train_seconds") is not None:
        parts.append(f"of training ({format_seconds(metrics['train_seconds'])})")
    return " ".join(parts) + "." if parts else ""


def run_facts(sources: ReportSources) -> list[tuple[str, str]]:
    environment, metrics = sources.environment, sources.metrics
    facts = []
    if sources.config:
        facts.append(("Dataset", str(sources.config["data"]["dataset"])))
        facts.append(("Model", str(sources.config["model"]["name"])))
        facts.append(("Seed", str(sources.config["train"]["seed"])))
    backend = environment.get("backend")
    if backend:
        facts.append(("Backend", f"Keras {environment.get('keras', '?')} on {backend} {environment.get(backend, '')}".strip()))
    if environment.get("cpu"):
        cores = f", {environment['cpu_count']} cores" if environment.get("cpu_count") else ""
        facts.append(("Machine", f"{environment['cpu']}{cores}"))
    if environment.get("devices"):
        facts.append(("Devices", ", ".join(map(str, environment["devices"]))))
    if environment.get("started"):
        facts.append(("Started", str(environment["started"])))
    if metrics.get("train_seconds") is not None:
        facts.append(("Training time", f"{format_seconds(metrics['train_seconds'])} (sum of the epochs)"))
    stages = environment.get("stage_seconds") or {}
    timed = [f"{stage} {format_seconds(stages[stage])}" for stage in REPORT_STAGES if stage in stages]
    if timed:
        facts.append(("Wall time by stage", ", ".join(timed)))
    return facts


def version_facts(environment: dict) -> list[tuple[str, str]]:
    names = ("convscope", "python", "keras", "tensorflow", "torch", "jax", "numpy", "platform", "image_data_format")
    return [(name, str(environment[name])) for name in names if environment.get(name)]


def settings_table(config: dict | None) -> Table | None:
    if not config:
        return None
    rows = [[section, key, format_value(value)] for section, values in config.items() for key, value in values.items()]
    return Table(["Section", "Setting", "Value"], rows, [False, False, False])


def data_facts(data: dict, metrics: dict) -> list[tuple[str, str]]:
    facts = [("Dataset", str(data.get("name", "unknown")))]
    if data.get("source"):
        facts.append(("Source", str(data["source"])))
    if data.get("input_shape"):
        facts.append(("Image shape (model input)", " × ".join(str(size) for size in data["input_shape"])))
    names = data.get("class_names") or []
    if names:
        shown = ", ".join(map(str, names[:30])) + (f", … ({len(names) - 30} more)" if len(names) > 30 else "")
        facts.append((f"Classes ({len(names)})", shown))
    sizes = (data.get("preprocessing") or {}).get("sizes") or data.get("sizes") or {}
    if not sizes and (metrics.get("evaluation") or {}).get("num_test"):
        sizes = {"test": metrics["evaluation"]["num_test"]}
    if sizes:
        facts.append(("Images per split", ", ".join(f"{split} {format_value(count)}" for split, count in sizes.items())))
    return facts


def preprocessing_facts(preprocessing: dict) -> list[tuple[str, str]]:
    skipped = {"sizes", "dataset", "source"}  # shown among the data facts
    return [(key.replace("_", " "), format_value(value)) for key, value in preprocessing.items() if key not in skipped]


def summary_table(summary: dict | None) -> Table | None:
    """One row per layer; under each number, the arithmetic that gives it (from ``summarize(model).to_dict()``)."""
    if not summary or not summary.get("layers"):
        return None
    from convscope.models.summary import format_bytes, format_shape  # imports Keras: only when there is a model

    rows, details = [], []
    for layer in summary["layers"]:
        macs, memory = layer.get("macs"), layer.get("activation_bytes")
        rows.append([
            str(layer["name"]),
            format_shape(layer["output_shape"]),
            f"{layer['params']:,}",
            "–" if macs is None else f"{macs:,}",
            "–" if memory is None else format_bytes(memory),
        ])
        details.append([str(layer.get("layer_type", "")), layer.get("shape_arithmetic", ""), layer.get("param_arithmetic", ""), "", ""])
    input_shape = summary.get("input_shape")
    if input_shape:
        rows.insert(0, ["input", format_shape(input_shape), "0", "–", "–"])
        details.insert(0, ["the image", f"{math.prod(size or 0 for size in input_shape):,} values per image", "", "", ""])
    columns = ["Layer", "Output shape", "Parameters", "Multiply-adds", "Output memory"]
    return Table(columns, rows, [False, False, True, True, True], details=details)


def summary_totals(summary: dict | None) -> list[tuple[str, str]]:
    totals = (summary or {}).get("totals") or {}
    if not totals:
        return []
    from convscope.models.summary import format_bytes

    facts = []
    if "params" in totals:
        facts.append(("Parameters", f"{totals['params']:,} ({totals.get('trainable_params', totals['params']):,} trainable)"))
    if "weight_bytes" in totals:
        facts.append(("Weights in memory", format_bytes(totals["weight_bytes"])))
    if "macs" in totals:
        facts.append(("Multiply-adds per image", f"{totals['macs']:,} ({totals.get('mflops', 2 * totals['macs'] / 1e6):,.2f} MFLOPs)"))
    if "activation_bytes" in totals:
        facts.append(("Layer outputs per image", format_bytes(totals["activation_bytes"])))
    return facts


def training_facts(metrics: dict, history: dict) -> list[tuple[str, str]]:
    facts = []
    if metrics.get("epochs_run") is not None:
        facts.append(("Epochs run", str(metrics["epochs_run"])))
    if metrics.get("best_epoch"):
        best = f"epoch {metrics['best_epoch']}"
        if metrics.get("best_val_loss") is not None:
            best += f": validation loss {metrics['best_val_loss']:.4f}"
        if metrics.get("best_val_accuracy") is not None:
            best += f", validation accuracy {format_percent(metrics['best_val_accuracy'])}"
        facts.append(("Best epoch (kept in model.keras)", best))
    if metrics.get("stopped_early"):
        facts.append(("Early stop", f"yes: validation loss stopped improving, training ended after epoch {metrics.get('epochs_run')}"))
    elif "stopped_early" in metrics:
        facts.append(("Early stop", "no: every planned epoch ran"))
    changes = learning_rate_changes(history)
    if changes:
        facts.append(("Learning-rate changes", "; ".join(changes)))
    elif "learning_rate" in history and len(history["learning_rate"]):
        facts.append(("Learning rate", f"{history['learning_rate'][0]:.3g}, unchanged"))
    seconds = history.get("seconds")
    if seconds is not None and len(seconds) and np.all(np.isfinite(seconds)):
        facts.append(("Seconds per epoch", f"{np.mean(seconds):.1f} on average ({np.min(seconds):.1f} to {np.max(seconds):.1f})"))
    return facts


def learning_rate_changes(history: dict) -> list[str]:
    """'epoch 5: 0.001 → 0.0005' for each epoch whose learning rate differs from the one before."""
    rates, epochs = history.get("learning_rate"), history.get("epoch")
    if rates is None or epochs is None:
        return []
    return [
        f"epoch {epochs[index]:g}: {rates[index - 1]:.3g} → {rates[index]:.3g}"
        for index in range(1, len(rates))
        if np.isfinite(rates[index]) and np.isfinite(rates[index - 1]) and not math.isclose(rates[index], rates[index - 1], rel_tol=1e-6)
    ]


HISTORY_HEADINGS = {
    "epoch": "Epoch",
    "loss": "Loss",
    "accuracy": "Accuracy",
    "val_loss": "Validation loss",
    "val_accuracy": "Validation accuracy",
    "learning_rate": "Learning rate",
    "seconds": "Seconds",
}


def history_table(history: dict) -> Table | None:
    if not history or not len(history.get("epoch", [])):
        return None
    columns = list(history)
    count = len(history["epoch"])
    shown = range(count) if count <= MAX_HISTORY_ROWS else [*range(MAX_HISTORY_ROWS // 2), *range(count - MAX_HISTORY_ROWS // 2, count)]
    rows = [[format_history_value(column, history[column][index]) for column in columns] for index in shown]
    headings = [HISTORY_HEADINGS.get(column, column.replace("_", " ")) for column in columns]
    return Table(headings, rows, [True] * len(columns))


def format_history_value(column: str, value: float) -> str:
    if not np.isfinite(value):
        return "–"
    if column == "epoch":
        return f"{value:g}"
    if column == "learning_rate":
        return f"{value:.3g}"
    if column == "seconds":
        return f"{value:.1f}"
    return f"{value:.4f}"


def headline_numbers(metrics: dict) -> list[Headline]:
    evaluation = metrics.get("evaluation") or {}
    accuracy = evaluation.get("accuracy", metrics.get("test_accuracy"))
    loss = evaluation.get("loss", metrics.get("test_loss"))
    numbers = []
    if accuracy is not None:
        hint = "share of test images whose most probable class is the right one"
        if evaluation.get("num_test"):
            hint = f"{evaluation['num_test'] - evaluation.get('num_errors', 0):,} of {evaluation['num_test']:,} test images right"
        numbers.append(Headline("Test accuracy", format_percent(accuracy), hint))
    if loss is not None:
        numbers.append(Headline("Test loss", f"{loss:.4f}", "mean cross-entropy, −log p(true class); lower is better"))
    for k, value in (evaluation.get("top_k_accuracy") or {}).items():
        numbers.append(Headline(f"Top-{k} accuracy", format_percent(value), f"the true class is among the {k} most probable"))
    if evaluation.get("ece") is not None:
        numbers.append(Headline("ECE", f"{evaluation['ece']:.3f}", "expected calibration error: 0 means confidence matches accuracy"))
    return numbers


def class_report_table(evaluation: dict) -> Table | None:
    per_class = evaluation.get("per_class")
    if not per_class:
        return None
    rows = [_report_row(name, values) for name, values in per_class.items()]
    for name, key in (("macro average", "macro_avg"), ("weighted average", "weighted_avg")):
        if evaluation.get(key):
            rows.append(_report_row(name, evaluation[key]))
    return Table(["Class", "Precision", "Recall", "F1", "Support"], rows, [False, True, True, True, True], footer_rows=len(rows) - len(per_class))


def _report_row(name: str, values: dict) -> list[str]:
    return [
        str(name),
        f"{values['precision']:.3f}",
        f"{values['recall']:.3f}",
        f"{values['f1-score']:.3f}",
        f"{int(values['support']):,}",
    ]


def confused_pairs_table(evaluation: dict) -> Table | None:
    pairs = (evaluation.get("most_confused") or [])[:MAX_CONFUSED_PAIRS]
    if not pairs:
        return None
    per_class = evaluation.get("per_class") or {}
    rows = []
    for pair in pairs:
        support = (per_class.get(pair["true"]) or {}).get("support")
        share = f"{100 * pair['count'] / support:.1f}%" if support else "–"
        rows.append([str(pair["true"]), str(pair["predicted"]), f"{pair['count']:,}", share])
    return Table(["True class", "Predicted as", "Images", "Share"], rows, [False, False, True, True])


# --------------------------------------------------------------------------- formatting


def format_percent(fraction: float) -> str:
    return f"{100 * float(fraction):.2f}%"


def format_seconds(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)} min {rest:.0f} s" if minutes < 60 else f"{int(minutes // 60)} h {int(minutes % 60)} min"


def format_value(value) -> str:
    """A config, summary or preprocessing value as short text."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    if isinstance(value, dict):
        return "; ".join(f"{key}: {format_value(item)}" for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(format_value(item) if item is not None else "None" for item in value) + ")"
    return str(value)
