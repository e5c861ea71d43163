"""The report's facts and tables: display strings from a run's numbers, one function per block.

    from convscope.html.facts import class_report_table, training_facts
    table = class_report_table(metrics["evaluation"])     # Table(columns, rows, numeric, footer_rows)
    facts = training_facts(metrics, history)              # [("Epochs run", "12"), ...]

Each function takes the dicts of the run folder's files (metrics.json,
history.csv columns, config.yaml as a dict, data.json, the model summary's
``to_dict()``) and returns (label, value) pairs, a ``Table`` or ``Headline``s,
every value already a string; ``convscope.html.report.compose_report`` calls
them and the template only lays them out. Tables keep the order of the file
they come from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from convscope.text import format_bytes, format_percent, format_seconds, format_shape, format_value

MAX_HISTORY_ROWS = 100  # epochs listed in the training table; a longer run lists its first and last 50
MAX_CONFUSED_PAIRS = 10


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


def headline_sentence(metrics: dict, history: dict) -> str:
    """One line under the title: the test accuracy and how long training took."""
    accuracy = metrics.get("test_accuracy")  # written with the evaluation, from the same predictions
    parts = []
    if accuracy is not None:
        parts.append(f"Test accuracy {format_percent(accuracy)}")
    epochs = metrics.get("epochs_run", len(history.get("epoch", [])))
    if epochs:
        parts.append(f"after {epochs} epoch{'s' if epochs != 1 else ''}")
    if metrics.get("train_seconds") is not None:
        parts.append(f"of training ({format_seconds(metrics['train_seconds'])})")
    return " ".join(parts) + "." if parts else ""


def version_facts(environment: dict) -> list[tuple[str, str]]:
    names = ("convscope", "python", "keras", "tensorflow", "torch", "jax", "numpy", "platform", "image_data_format")
    return [(name, str(environment[name])) for name in names if environment.get(name)]


def imported_facts(environment: dict) -> list[tuple[str, str]]:
    """What environment.json's ``imported`` says about a model file brought in from elsewhere (pipeline.import_model)."""
    facts = []
    for key, label in (("model", "Imported model"), ("weights", "Imported weights")):
        described = (environment.get("imported") or {}).get(key)
        if described:
            saved_by = f", saved by Keras {described['saved_by_keras']}" if described.get("saved_by_keras") else ""
            facts.append((label, f"{described['path']} ({described.get('format') or 'unknown format'}{saved_by}, "
                                 f"{format_bytes(described['bytes'])}, SHA-256 {described['sha256'][:16]}…)"))
    return facts


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
        # --keep last: the best epoch is shown, but model.keras holds the last one's weights
        kept_other = metrics.get("kept") == "last" and metrics.get("kept_epoch") != metrics["best_epoch"]
        facts.append(("Best epoch (by validation loss; not kept)" if kept_other else "Best epoch (kept in model.keras)", best))
        if kept_other:
            facts.append(("Kept in model.keras", f"epoch {metrics.get('kept_epoch')}, the last (--keep last)"))
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


LR_FIND_ENDINGS = {"diverged": "then the smoothed loss exceeded 4× its lowest", "not finite": "then the loss became NaN/Inf"}


def lr_find_facts(sweep: dict | None, config: dict | None, trained: bool) -> list[tuple[str, str]]:
    """The learning-rate finder's points and settings (metrics.json's ``lr_find``), and what the run did with them.

    Args:
        sweep: metrics.json's ``lr_find``; None or empty: no facts.
        config: the run's config (config_to_dict layout), or None.
        trained: the run trained after the sweep (else the folder holds the sweep alone).
    """
    if not sweep:
        return []
    train = (config or {}).get("train", {})
    suggested = f"{sweep['suggestion']:.3g} (valley rule)"
    if train.get("learning_rate_found") and math.isclose(float(train.get("learning_rate", 0)), sweep["suggestion"], rel_tol=1e-9):
        use = "as the peak of the one-cycle schedule" if train.get("schedule") == "onecycle" else "as the (initial) constant rate"
        suggested += f"; this run trained with it {use}" if trained else "; config.yaml holds it as learning_rate, so a run with this --config trains at it"
    minimum = sweep["minimum"]["learning_rate"]
    ran = f"all {sweep['batches_run']} ran" if sweep["stop_reason"] == "completed" else (
        f"{sweep['batches_run']} ran, {LR_FIND_ENDINGS.get(sweep['stop_reason'], sweep['stop_reason'])}"
    )
    return [
        ("Suggested learning rate", suggested),
        ("Loss lowest at", f"{minimum:.3g} (fastai's minimum rule suggests a tenth of it, {minimum / 10:.3g})"),
        ("Loss falling fastest at", f"{sweep['steep']['learning_rate']:.3g}"),
        (
            "Sweep",
            f"{sweep['start']:g} to {sweep['end']:g} over {sweep['planned_batches']} batches of {sweep['batch_size']}"
            + (f", {sweep['optimizer']}" if sweep.get("optimizer") else "") + f"; {ran}; {sweep['seconds']:.1f} s",
        ),
    ]


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
    accuracy, loss = metrics.get("test_accuracy"), metrics.get("test_loss")  # written with the evaluation
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

