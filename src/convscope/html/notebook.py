"""The report of a Keras model trained in a notebook, outside convscope.

    from convscope import build_report
    history = model.fit(x_train, y_train, epochs=3, validation_split=0.1)
    build_report(model, (x_test, y_test), history=history, class_names=names, out="report.html")

``build_report`` evaluates the model, draws its figures into a temporary run
folder and writes the same report a run gets (convscope.html.report). It
chains pipeline stages, so this module is a temporary home: it moves into
pipeline.py (floor 9), and until then it is the one module of html/ that
imports pipeline and train (inside ``build_report``, which keeps that move a
single cut).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from convscope.errors import ConvscopeError
from convscope.html.report import ReportSources, _summarize, compose_report, describe_inspected_images, write_report
from convscope.runfolder import RunFolder

SAMPLE_IMAGES = 64  # training images handed to the sample figure (it shows the first 25)


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
    import keras

    from convscope.config import Config
    from convscope.evaluate import evaluate
    from convscope.pipeline import choose_inspect_images
    from convscope.plots.evaluation import save_evaluation_figures
    from convscope.runfolder import describe_environment

    x_test, y_test = _array_pair(test_data, "test_data")
    x_train, y_train = _array_pair(train_data, "train_data") if train_data is not None else (None, None)
    columns = history_columns(history)
    result = evaluate(model, x_test, y_test, class_names=class_names)
    channels_first = keras.config.image_data_format() == "channels_first"
    environment = describe_environment(Config())
    for key in ("seed", "command", "started"):  # facts of a convscope run; unknown for a notebook's model
        environment.pop(key, None)
    sizes = {"train": len(x_train)} if x_train is not None else {}

    with tempfile.TemporaryDirectory(prefix="convscope-report-") as folder:
        scratch = RunFolder(Path(folder))  # a run folder's layout, so images are chosen as for a run
        save_evaluation_figures(
            result,
            _figure_images(x_test, channels_first),
            scratch.plots_dir,
            history=columns or None,
            train_labels=y_train,
            train_images=_figure_images(x_train[:SAMPLE_IMAGES], channels_first) if x_train is not None else None,
        )
        inspected, inspection_note = [], ""
        if x_test.ndim == 4:
            scratch.save_evaluation(result)
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


def _save_inspection_figures(model, images: np.ndarray, out_dir: Path, class_names: list[str]) -> None:
    from convscope.inspect import inspect
    from convscope.plots.inspection import save_inspection_figures

    save_inspection_figures(inspect(model, images), out_dir, class_names=class_names)


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


def _figure_images(x: np.ndarray, channels_first: bool) -> np.ndarray | None:
    """Model inputs as the figure functions take them: channels last (they rescale floats themselves)."""
    if x.ndim == 4:
        return np.moveaxis(x, 1, -1) if channels_first else x
    return x if x.ndim == 3 else None  # (N, H, W) grayscale is drawable; flat vectors are not

