"""The report: one self-contained HTML page per run, readable offline, on a phone and on paper.

    from convscope.html.report import build_run_report
    from convscope.runfolder import open_run
    path = build_run_report(open_run("runs/mnist-demo"))      # runs/mnist-demo/report.html

A Keras model trained in a notebook, outside convscope, gets the same report
through ``convscope.build_report`` (convscope.html.notebook). Both ways in
gather the same ``ReportSources`` (config, environment, data description,
model summary, history, metrics, a folder of figures), turn them into one
``ReportContent`` with ``compose_report`` (the facts and tables come from
convscope.html.facts) and render ``templates/report.html.j2``. Every figure
is inlined as a base64 PNG data URI and the style sheet is inlined too, so
the file makes no request and opens anywhere. Two builds of the same run
folder differ only in the footer's build time: nothing else reads the clock
or draws random numbers, and every table keeps the order of the file it
comes from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convscope import __version__
from convscope.config import DataConfig, config_to_dict, is_baseline_name
from convscope.data.augment import parse_augment
from convscope.errors import ConvscopeError
from convscope.fileio import write_text
from convscope.html.facts import (
    Headline,
    Table,
    class_report_table,
    confused_pairs_table,
    data_facts,
    headline_numbers,
    headline_sentence,
    history_table,
    imported_facts,
    lr_find_facts,
    preprocessing_facts,
    settings_table,
    summary_table,
    summary_totals,
    training_facts,
    version_facts,
)
from convscope.html.render import Figure, build_time, load_figures, render_template
from convscope.runfolder import RunFolder
from convscope.text import format_seconds

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
REPORT_STAGES = ("train", "evaluate", "inspect")  # the report's own time changes at every build, so it is left out


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
    exports: dict = field(default_factory=dict)  # export.json layout: format -> verified export
    lr_find: dict | None = None  # metrics.json's lr_find, when the folder has lr_find.csv


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
    lr_find: list[tuple[str, str]]  # the learning-rate finder's facts; empty: no finder ran
    headlines: list[Headline]
    class_report: Table | None
    confused_pairs: Table | None
    evaluated: bool
    figures: dict[str, Figure]
    activations: list[tuple[str, Figure]]  # (which image, its activations figure), in inspection order
    inspection_note: str
    version: str
    built_at: str
    exports: Table | None = None  # one row per verified export


# --------------------------------------------------------------------------- entry points


def build_run_report(run: RunFolder, model=None) -> Path:
    """Write RUN/report.html from what the run folder holds.

    Reads config.yaml, environment.json, data.json, history.csv, metrics.json,
    predictions.npz, plots/*.png and model.keras (for the summary). Only
    config.yaml is required; a section whose files are missing says so.

    Args:
        run: the run folder (``convscope.runfolder.open_run(path)``).
        model: the run's model, if already in memory (`convscope run` just trained it):
            its summary is drawn from it instead of loading model.keras again (~0.2 s).

    Returns:
        The path of report.html.

    Example:
        >>> build_run_report(open_run("runs/mnist-demo"))
        PosixPath('runs/mnist-demo/report.html')
    """
    return write_report(compose_report(read_run_sources(run, model)), run.report_path)


def write_report(content: ReportContent, path: str | Path) -> Path:
    """Render ``content`` and write it atomically to ``path``."""
    return write_text(path, render_report(content))


def render_report(content: ReportContent) -> str:
    """Return the report's HTML for ``content`` (templates/report.html.j2, style sheet inlined)."""
    return render_template(TEMPLATE, report=content, figures=content.figures)

# --------------------------------------------------------------------------- sources


def read_run_sources(run: RunFolder, model=None) -> ReportSources:
    """Gather what a report needs from a run folder (see ``build_run_report``); ``model``: the folder's model, if in memory."""
    config = run.read_config()
    environment = run.read_environment()
    metrics = run.read_metrics()
    data = run.read_data_description()
    model_name, dataset_name = config.model.name, config.data.dataset

    summary, summary_note = None, ""
    if model is None and run.model_path.is_file():
        try:
            model = run.load_model()
        except (ValueError, TypeError) as error:  # e.g. custom layers whose code is not importable here
            summary_note = f"model.keras could not be loaded here ({error}); the rest of the report does not need it."
    elif model is None:
        summary_note = "This run folder has no model.keras (training has not finished an epoch)."
    if model is not None:
        summary, summary_note = summarize_model(model, tuple(data["input_shape"]) if data.get("input_shape") else None)

    settings = config_to_dict(config)
    if environment.get("imported"):
        del settings["train"]  # trained elsewhere: convscope's training settings played no part
    return ReportSources(
        title=f"{dataset_name} · {model_name}",
        subtitle=f"Run {run.path.name}",
        figures_dir=run.plots_dir,
        metrics=metrics,
        history=run.read_history(),
        environment=environment,
        config=settings,
        data=data,
        summary=summary,
        summary_note=summary_note,
        commands=reproduce_commands(run, config, environment),
        inspected_images=describe_inspected_images(run, metrics),
        inspection_note="" if run.plots_dir.is_dir() else f"No figures yet: run `convscope inspect {run.path}`.",
        exports=run.read_exports(),
        lr_find=metrics.get("lr_find") if run.lr_find_path.is_file() else None,
    )


def reproduce_commands(run: RunFolder, config, environment: dict) -> list[tuple[str, str]]:
    """The command lines that repeat this run, the recorded one first."""
    commands = []
    if environment.get("command"):
        commands.append(("The command that made this run", environment["command"]))
    if environment.get("imported"):
        commands.append((
            "Import the same model file again, into a new folder (evaluate, inspect and report it)",
            f"convscope report --model {config.model.name} --config {run.config_path} --name {run.path.name}-again",
        ))
    elif config.model.name.startswith("python:"):
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


def summarize_model(model, input_shape) -> tuple[dict | None, str]:
    """(the summary as a dict, "") or (None, why there is none), for ReportSources."""
    from convscope.models import summarize  # here, not at the top: it imports Keras, which a run folder without model.keras never needs

    try:
        return summarize(model, input_shape).to_dict(), ""
    except ConvscopeError as error:
        return None, f"The model summary could not be computed: {error}"


def describe_inspected_images(run: RunFolder, metrics: dict) -> list[str]:
    """One caption per test image the inspect stage recorded: index, label, prediction, right or wrong."""
    indices = metrics.get("inspection", {}).get("images")
    saved = run.read_predictions()
    if indices is None or saved is None:
        return []
    labels, predictions = saved["labels"], saved["probabilities"].argmax(axis=1)
    class_names = [str(name) for name in saved["class_names"]]
    captions = []
    for index in indices:
        label, predicted = int(labels[index]), int(predictions[index])
        verdict = "right" if label == predicted else "wrong"
        captions.append(
            f"Test image {int(index)}: labelled {class_names[label]}, predicted {class_names[predicted]} ({verdict})"
        )
    return captions


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
        lr_find=lr_find_facts(sources.lr_find, sources.config, trained="epochs_run" in sources.metrics),
        headlines=headline_numbers(sources.metrics),
        class_report=class_report_table(evaluation),
        confused_pairs=confused_pairs_table(evaluation),
        evaluated=bool(evaluation),
        figures=figures,
        activations=activation_figures(figures, sources.inspected_images),
        inspection_note=sources.inspection_note,
        version=__version__,
        built_at=built_at or build_time(),
        exports=export_table(sources.exports),
    )


def export_table(exports: dict) -> Table | None:
    """One row per export in export.json: the file, its size, the runtime it was checked in and how it agreed with Keras."""
    if not exports:
        return None
    rows = [
        [name, entry["path"], f"{entry['bytes'] / 1e6:.2f} MB", entry["runtime"], str(entry["images"]), f"{entry['max_abs_difference']:.1e}" if entry["max_abs_difference"] else "0", f"{entry['top1_agreement']:.1%}"]
        for name, entry in exports.items()
    ]
    return Table(["Format", "File", "Size", "Checked in", "Images", "Max abs difference", "Top-1 agreement"], rows, [False, False, True, False, True, True, True])


def recipe_facts(config: dict) -> list[tuple[str, str]]:
    """The preset, the validation set and the evaluated weights (configs older than these keys: the old behaviour)."""
    data, train = config.get("data", {}), config.get("train", {})
    facts = [("Preset", str(train["preset"]))] if train.get("preset") else []
    if data.get("validation") == "test":
        facts.append(("Validation", "the test set (--validation test): it leaks the test set into model selection, as two lessons did"))
    facts.extend(augmentation_facts(config))
    keep = train.get("keep", "best")
    validated = data.get("val_split", DataConfig.val_split) or data.get("val_first") or data.get("validation") == "test"
    lowest = "validation loss" if validated else "training loss (no validation set)"
    facts.append(("Weights evaluated", "the last epoch's (--keep last)" if keep == "last" else f"the epoch with the lowest {lowest} (--keep best)"))
    return facts


def augmentation_facts(config: dict) -> list[tuple[str, str]]:
    """("Augmentation", what --augment did to the training images), or nothing for a run without it."""
    spec = (config.get("train") or {}).get("augment")
    augmentation = parse_augment(spec) if spec else None
    if augmentation is None:
        return []
    return [("Augmentation", f"{augmentation.describe()} (--augment {spec}); training images only, new random transforms every epoch, seeded")]


def distributed_facts(environment: dict) -> list[tuple[str, str]]:
    """Data-parallel training (distribute.py): workers, replica devices, global and per-replica batch."""
    if not environment.get("strategy"):
        return []
    workers = environment.get("workers", 1)
    addresses = f" ({', '.join(environment['worker_addresses'])})" if environment.get("worker_addresses") else ""
    devices = environment.get("replica_devices") or []
    return [
        ("Data parallel", f"{environment['strategy']}: {workers} worker(s){addresses}, {environment.get('replicas')} replica(s)"),
        ("Replica devices", f"{', '.join(devices)} on each worker" if workers > 1 else ", ".join(devices)),
        ("Batch", f"{environment.get('global_batch_size')} global, {environment.get('per_replica_batch_size'):g} per replica"),
    ]


def run_facts(sources: ReportSources) -> list[tuple[str, str]]:
    environment, metrics = sources.environment, sources.metrics
    facts = []
    if sources.config:
        facts.append(("Dataset", str(sources.config["data"]["dataset"])))
        facts.append(("Model", str(sources.config["model"]["name"])))
        if "train" in sources.config:  # an imported model's run has no training settings
            facts.append(("Seed", str(sources.config["train"]["seed"])))
            facts.extend(recipe_facts(sources.config))
    backend = environment.get("backend")
    if backend:
        facts.append(("Backend", f"Keras {environment.get('keras', '?')} on {backend} {environment.get(backend, '')}".strip()))
    if environment.get("cpu"):
        cores = f", {environment['cpu_count']} cores" if environment.get("cpu_count") else ""
        facts.append(("Machine", f"{environment['cpu']}{cores}"))
    if environment.get("devices"):
        facts.append(("Devices", ", ".join(map(str, environment["devices"]))))
    facts.extend(distributed_facts(environment))
    facts.extend(imported_facts(environment))
    if environment.get("started"):
        facts.append(("Started", str(environment["started"])))
    if metrics.get("train_seconds") is not None:
        facts.append(("Training time", f"{format_seconds(metrics['train_seconds'])} (sum of the epochs)"))
    stages = environment.get("stage_seconds") or {}
    timed = [f"{stage} {format_seconds(stages[stage])}" for stage in REPORT_STAGES if stage in stages]
    if timed:
        facts.append(("Wall time by stage", ", ".join(timed)))
    return facts
