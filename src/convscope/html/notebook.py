"""The report's sources for a Keras model trained in a notebook, outside convscope.

    from convscope import build_report           # convscope.pipeline.build_report chains the stages
    history = model.fit(x_train, y_train, epochs=3, validation_split=0.1)
    build_report(model, (x_test, y_test), history=history, class_names=names, out="report.html")

``pipeline.build_report`` runs the evaluate and inspect stages into a temporary
run folder; ``notebook_sources`` then reads that folder as ``read_run_sources``
reads a run's, and adds what only the notebook knows: the arrays' description,
the compile step's settings, the history that ``model.fit`` returned.
"""

from __future__ import annotations

import numpy as np

from convscope.config import Config
from convscope.errors import ConvscopeError
from convscope.html.report import ReportSources, describe_inspected_images, summarize_model
from convscope.runfolder import RunFolder, describe_environment


def notebook_sources(run: RunFolder, model, x_test: np.ndarray, history: dict, train_size: int | None, title: str | None) -> ReportSources:
    """What the report of a notebook's model is made from: the scratch run folder plus the notebook's facts.

    Args:
        run: the temporary run folder the evaluate and inspect stages wrote.
        model: the notebook's Keras model.
        x_test: the test images as given.
        history: ``history_columns`` of what ``model.fit`` returned (may be empty).
        train_size: how many training images were given, if any.
        title: the page title; default: the model's name.

    Returns:
        ReportSources for ``compose_report``.
    """
    metrics = run.read_metrics()
    environment = describe_environment(Config())
    for key in ("seed", "command", "started"):  # facts of a convscope run; unknown for a notebook's model
        environment.pop(key, None)
    summary, summary_note = summarize_model(model, tuple(x_test.shape[1:]))
    sizes = {"train": train_size} if train_size is not None else {}
    return ReportSources(
        title=title or model.name,
        subtitle=f"Keras model {model.name!r} evaluated on {len(x_test):,} test images",
        figures_dir=run.plots_dir,
        metrics={key: metrics[key] for key in ("test_loss", "test_accuracy", "evaluation")},
        history=history,
        environment=environment,
        config=None,
        data={
            "name": "arrays passed to build_report",
            "class_names": [str(name) for name in run.read_predictions()["class_names"]],
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
        settings_note="The model was trained outside convscope, so its settings are not recorded. " + describe_compiled(model),
        inspected_images=describe_inspected_images(run, metrics),
        inspection_note="" if "inspection" in metrics else (
            f"The test images have shape {tuple(x_test.shape[1:])}; looking inside the network needs "
            "images with a channel axis, shaped (N, height, width, channels)."
        ),
    )


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


# Keras 2 named these history keys differently (the lessons' notebooks print them); read as Keras 3 and history.csv name them.
KERAS2_HISTORY_KEYS = {"acc": "accuracy", "val_acc": "val_accuracy", "lr": "learning_rate"}


def history_columns(history) -> dict[str, np.ndarray]:
    """A Keras ``History``, its ``.history`` dict or history.csv columns -> columns with an ``epoch`` (from 1).

    Keras 2's ``acc``, ``val_acc`` and ``lr`` become ``accuracy``, ``val_accuracy`` and
    ``learning_rate`` (unless the history also has those).

    Example:
        >>> history_columns({"loss": [0.9, 0.5], "acc": [0.7, 0.8]})
        {'epoch': array([1., 2.]), 'loss': array([0.9, 0.5]), 'accuracy': array([0.7, 0.8])}
    """
    if history is None:
        return {}
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict):
        raise ConvscopeError(
            f"history is a {type(history).__name__}; expected the History that model.fit returns or its .history dict"
        )
    try:
        columns = {
            KERAS2_HISTORY_KEYS[key] if key in KERAS2_HISTORY_KEYS and KERAS2_HISTORY_KEYS[key] not in logs else str(key):
            np.asarray(values, dtype=float).ravel()
            for key, values in logs.items()
        }
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


def array_pair(pair, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` as two arrays of equal length; anything else is a clear error naming ``name``."""
    try:
        x, y = pair
    except (TypeError, ValueError):
        raise ConvscopeError(f"{name}: expected a pair (images, labels), got {type(pair).__name__}") from None
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ConvscopeError(f"{name}: {len(x)} images but {len(y)} labels; expected one label per image")
    return x, y
