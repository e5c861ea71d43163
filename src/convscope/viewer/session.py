"""A model opened for the live viewer: its inputs, every layer's output, Grad-CAM, saliency and worked sums, as JSON-ready dicts.

    from convscope.viewer.session import ViewSession
    session = ViewSession.from_run("runs/mnist-demo")
    session.describe()["layers"][0]            # {'name': 'conv1', 'type': 'Conv2D', 'output_shape': [26, 26, 32], ...}
    x, pixels = session.input_from_png(open("seven.png", "rb").read())
    answer = session.predict(x, pixels)        # probabilities, one entry per layer with its tiles, Grad-CAM, saliency
    session.explain(x, "conv1", channel=3, row=10, column=12)["worked"]["total"]

Compute only: the web app (``convscope.viewer.app``) turns requests into these
calls and their dicts into responses. Every number comes from the inspection
package: one ``NetworkProbe`` over all layers, built once, run behind one lock
(Keras models are not safe to call from several threads at once); the
receptive fields from ``inspection.geometry``; the worked sum from
``inspection.weights``. Images are prepared by ``convscope.predict``, exactly as
``convscope predict`` prepares files.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from convscope.data import Dataset, load_dataset
from convscope.data.images import ImageTooLargeError
from convscope.errors import ConvscopeError
from convscope.evaluate import evaluate
from convscope.inspection.attribution import build_probe
from convscope.inspection.geometry import receptive_fields
from convscope.inspection.graph import layer_graph, shape_of
from convscope.inspection.weights import compute_worked_output, first_filters, learned_responses
from convscope.predict import InputSpec, input_spec_from_dataset, prepare_image_bytes, prepare_pixels, read_input_spec
from convscope.runfolder import open_run
from convscope.viewer.encoding import filter_tiles, heat_image, mosaic, overlay, png_data_url, to_uint8

logger = logging.getLogger(__name__)

MAX_UPLOAD_PIXELS = 16_000_000  # a 16 MP photo; a smaller bound than the loaders' 64 MP: each upload is decoded in memory
MAX_VECTOR_BARS = 256  # a longer vector (Flatten's 9216 values) is drawn as a folded image instead of bars
MAX_PAGE = 200  # test images per listing request


class RequestError(ConvscopeError):
    """A bad request: the HTTP status and one line saying what was wrong and what to send instead."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class TestImages:
    """The test set the picker offers, with the evaluation already written for it."""

    inputs: np.ndarray  # model inputs, as the dataset holds them
    labels: np.ndarray  # (N,) int
    display: object  # inputs -> uint8 (N, H, W, C): Dataset.display_images
    probabilities: np.ndarray | None  # (N, num_classes) from the evaluation, None before evaluate ran
    confusion: list | None  # rows true, columns predicted, as metrics.json holds it
    accuracy: float | None  # test accuracy, as metrics.json holds it

    @cached_property
    def predicted(self) -> np.ndarray | None:
        """The predicted class of every test image (computed once: the listings ask on every request)."""
        return None if self.probabilities is None else self.probabilities.argmax(axis=1)


class ViewSession:
    """One model, the way to prepare its inputs, and (optionally) its test set and run figures."""

    def __init__(self, model, spec: InputSpec, title: str, test: TestImages | None = None, figures_dir: Path | None = None):
        self.model = model
        self.spec = spec
        self.title = title
        self.test = test
        self.figures_dir = figures_dir
        height, width = spec.image_size
        channels = spec.channels
        self.input_shape = (channels, height, width) if spec.channels_first else (height, width, channels)
        self.graph = layer_graph(model, self.input_shape)
        shown = [layer.name for layer in self.graph.layers if not isinstance(self.graph.outputs_of[layer.name], list)]
        self.probe = build_probe(self.graph, shown)  # the multi-output model over every layer, built once
        self.filters = first_filters(model)
        self.lock = threading.Lock()  # one model call at a time
        num_classes = int(self.graph.output.shape[-1])
        names = spec.class_names_for(num_classes)
        self.class_names = list(names)
        self._description = self._describe()

    # ----------------------------------------------------------------------- opening

    @classmethod
    def from_run(cls, run_dir: str | Path) -> "ViewSession":
        """A run folder's model (safe mode), its input preparation, test set, evaluation and figures."""
        run = open_run(run_dir)
        model = run.load_model()
        spec = read_input_spec(run, model)
        test = None
        try:
            dataset = run.load_dataset()
        except ConvscopeError as error:
            logger.warning("the test-image picker is off: %s", error)
        else:
            predictions = run.read_predictions()
            probabilities = None if predictions is None else predictions["probabilities"]
            if probabilities is not None and not np.array_equal(predictions["labels"], dataset.y_test):
                # the same count is not enough: a folder whose files changed would pair predictions with other images
                logger.warning("%s: predictions.npz was made for other test images (%d labels, the dataset has %d); errors and the "
                               "confusion matrix are off until `convscope evaluate %s` runs again",
                               run.path, len(probabilities), len(dataset.y_test), run.path)
                probabilities = None
            metrics = run.read_metrics() if probabilities is not None else {}
            confusion = metrics.get("evaluation", {}).get("confusion_matrix")
            test = TestImages(dataset.x_test, dataset.y_test, dataset.display_images, probabilities, confusion, metrics.get("test_accuracy"))
        return cls(model, spec, str(run.path), test, run.plots_dir)

    @classmethod
    def from_model(cls, model, data) -> "ViewSession":
        """A Keras model in memory and the dataset it takes (a name for ``load_dataset``, or a ``Dataset``).

        The test set is predicted once here, for the error and confusion-matrix pickers.
        """
        dataset = load_dataset(data) if isinstance(data, str) else data
        if not isinstance(dataset, Dataset):
            raise ConvscopeError(f"data is a {type(data).__name__}; expected a dataset name (`convscope datasets`) or a convscope Dataset")
        spec = input_spec_from_dataset(dataset)
        layer_graph(model, tuple(dataset.input_shape))  # a never-called model gets its graph before predicting
        evaluation = evaluate(model, dataset.x_test, dataset.y_test, class_names=dataset.class_names)
        test = TestImages(
            dataset.x_test, dataset.y_test, dataset.display_images, evaluation.probabilities, evaluation.confusion.tolist(), evaluation.accuracy
        )
        return cls(model, spec, f"{model.name} on {dataset.name}", test)

    # ----------------------------------------------------------------------- what the page asks once

    def describe(self) -> dict:
        """GET /api/model: the model, its layers, classes, first-layer filters, test set and figures."""
        return self._description

    def _describe(self) -> dict:
        layers = []
        for layer in self.probe.activation_layers:
            shape = list(shape_of(self.graph.outputs_of[layer.name]))[1:]
            channels_last = shape[1:] + shape[:1] if self.spec.channels_first and len(shape) == 3 else shape
            layers.append({"name": layer.name, "type": type(layer).__name__, "output_shape": channels_last, "kind": _kind(channels_last)})
        first = None
        if self.filters is not None:
            kernel_shape = list(self.filters.kernels.shape)
            first = {"layer": self.filters.layer_name, "kernel_shape": kernel_shape, "filters": [png_data_url(tile) for tile in filter_tiles(self.filters)]}
        test = None
        if self.test is not None:
            predicted = self.test.predicted
            test = {
                "count": int(len(self.test.labels)),
                "evaluated": predicted is not None,
                "errors": None if predicted is None else int((predicted != self.test.labels).sum()),
                "accuracy": None if self.test.accuracy is None else round(float(self.test.accuracy), 6),
                "confusion_matrix": self.test.confusion,
            }
        height, width = self.spec.image_size
        return {
            "title": self.title,
            "model": self.model.name,
            "input": {"height": height, "width": width, "channels": self.spec.channels,
                      "color_mode": self.spec.color_mode},
            "classes": self.class_names,
            "layers": layers,
            "grad_cam_layer": None if self.probe.cam_layer is None else self.probe.cam_layer.name,
            "first_layer": first,
            "test": test,
            "figures": self.figure_names(),
        }

    def figure_names(self) -> list[str]:
        """The run's figures (plots/*.png) the app may serve; nothing else of the folder is reachable."""
        if self.figures_dir is None or not self.figures_dir.is_dir():
            return []
        return sorted(path.name for path in self.figures_dir.glob("*.png") if path.is_file())

    # ----------------------------------------------------------------------- inputs

    def input_from_png(self, data: bytes) -> tuple[np.ndarray, np.ndarray]:
        """Image file bytes (an upload or the drawing canvas) -> (model input (1, ...), uint8 pixels (1, H, W, C)), as `convscope predict` prepares files."""
        try:
            return prepare_image_bytes(data, self.spec, label="uploaded image", max_pixels=MAX_UPLOAD_PIXELS)
        except ImageTooLargeError as error:
            raise RequestError(str(error), 413) from None
        except ConvscopeError as error:
            raise RequestError(str(error), 400) from None

    def input_from_pixels(self, values) -> tuple[np.ndarray, np.ndarray]:
        """Raw pixel values 0-255 at the model's size, (H, W) or (H, W, C), e.g. from a script's JSON."""
        height, width = self.spec.image_size
        channels = self.spec.channels
        expected = f"({height}, {width})" + (f" or ({height}, {width}, 1)" if channels == 1 else f", {channels})")
        try:
            pixels = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise RequestError(f"\"pixels\" is not a rectangular array of numbers; expected {expected} values 0-255") from None
        if pixels.ndim == 2 and channels == 1:
            pixels = pixels[..., None]
        if pixels.ndim != 3 or pixels.shape[:2] != (height, width):
            raise RequestError(f"\"pixels\" has shape {pixels.shape}; expected {expected} values 0-255 (the model's input size)", 422)
        if pixels.shape[2] != channels:
            raise RequestError(
                f"\"pixels\" has {pixels.shape[2]} channels; the model takes {channels} ({self.spec.color_mode}); send {expected} values 0-255", 422
            )
        if not np.isfinite(pixels).all() or pixels.min() < 0 or pixels.max() > 255:
            raise RequestError("\"pixels\" holds values outside 0-255; send 8-bit pixel values", 422)
        pixels = np.round(pixels).astype(np.uint8)[np.newaxis]
        return prepare_pixels(pixels, self.spec), pixels

    def input_from_test(self, index) -> tuple[np.ndarray, np.ndarray]:
        """Test image ``index``, exactly as the evaluation saw it, and its pixels."""
        test = self._require_test()
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(test.labels):
            raise RequestError(f"test image {index!r} does not exist; expected an index 0..{len(test.labels) - 1}", 404)
        x = test.inputs[index : index + 1]
        return x, test.display(x)

    # ----------------------------------------------------------------------- per request

    def class_index(self, value) -> int | None:
        """A class named by index or name, None for the predicted class; a bad one is a RequestError."""
        if value in (None, "", "predicted"):
            return None
        text = str(value)
        if text in self.class_names:
            return self.class_names.index(text)
        if text.isascii() and text.isdigit() and int(text) < len(self.class_names):  # isdigit alone admits "²", which int() refuses
            return int(text)
        raise RequestError(f"class {text!r} is unknown; expected an index 0..{len(self.class_names) - 1} or one of the names {', '.join(self.class_names[:20])}")

    def predict(self, x: np.ndarray, pixels: np.ndarray, class_index: int | None = None) -> dict:
        """POST /api/predict: probabilities, every layer's output, Grad-CAM and saliency, first-layer responses.

        Args:
            x: one model input (1, ...).
            pixels: its uint8 pixels (1, H, W, C), what the overlays are drawn on.
            class_index: the class Grad-CAM and saliency explain; None: the predicted one.
        """
        started = time.perf_counter()
        with self.lock:
            model_started = time.perf_counter()
            probabilities, classes, activations, grad_cam, saliency, (first_conv, first_input) = self.probe.run(x, class_index)
            responses = None if first_conv is None else learned_responses(first_conv, first_input, 0)
            model_seconds = time.perf_counter() - model_started
        if not np.isfinite(probabilities).all():  # JSON has no NaN: say why rather than fail to encode the answer
            raise RequestError("the model outputs NaN or Inf for this input; its weights are not finite or it overflows on this input", 422)
        image = pixels[0]
        layers = [_layer_entry(activation.layer_name, activation.layer_type, activation.values[0]) for activation in activations]
        answer = {
            "predicted": int(probabilities[0].argmax()),
            "explained_class": int(classes[0]),
            "probabilities": [round(float(p), 6) for p in probabilities[0]],
            "input": png_data_url(image),
            "layers": layers,
            "grad_cam": None,
            "saliency": {"overlay": png_data_url(overlay(image, saliency.maps[0], "viridis")),
                         "heatmap": png_data_url(heat_image(saliency.maps[0], "viridis"))},
            "first_layer": None,
        }
        if grad_cam is not None:
            answer["grad_cam"] = {"layer": grad_cam.layer_name, "method": grad_cam.method, "reason": grad_cam.method_reason,
                                  "all_zero": bool(grad_cam.heatmaps[0].max() == 0),
                                  "overlay": png_data_url(overlay(image, grad_cam.heatmaps[0])),
                                  "heatmap": png_data_url(heat_image(grad_cam.heatmaps[0]))}
        if responses is not None:
            stacked = np.stack([response.response for response in responses], axis=-1)
            picture, layout = mosaic(stacked, diverging=True)
            answer["first_layer"] = {"layer": first_conv.name, "what": "pre-activation responses (kernel x pixels + bias)",
                                     "responses": {"image": png_data_url(picture), **layout}}
        answer["seconds"] = {"model": round(model_seconds, 4), "total": round(time.perf_counter() - started, 4)}
        return answer

    def explain(self, x: np.ndarray, layer_name: str, channel: int, row: int, column: int) -> dict:
        """POST /api/explain: the receptive field of one feature-map cell, and for the first convolution its worked sum.

        Args:
            x: one model input (1, ...), from an ``input_from_*`` method.
            layer_name: a layer with (height, width, channels) output.
            channel, row, column: the cell, each inside that output.

        Returns:
            JSON-ready dict: the cell, its ``value``, ``receptive_field`` (centre, size and the clipped
            box; None when it cannot be traced) and ``worked`` (the first convolution only, else None).

        Raises:
            RequestError: an unknown layer (404), a layer without feature maps or a cell outside
                them (400), a NaN/Inf value at the cell (422).
        """
        layer = next((item for item in self.probe.activation_layers if item.name == layer_name), None)
        if layer is None:
            names = ", ".join(item.name for item in self.probe.activation_layers)
            raise RequestError(f"layer {layer_name!r} is unknown; expected one of: {names}", 404)
        entry = next(item for item in self._description["layers"] if item["name"] == layer_name)
        if entry["kind"] != "maps":
            raise RequestError(f"layer {layer_name!r} outputs {tuple(entry['output_shape'])}, not feature maps; pick a cell of a layer with (height, width, channels) output")
        height, width, channels = entry["output_shape"]
        for name, value, limit in (("channel", channel, channels), ("row", row, height), ("column", column, width)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < limit:
                raise RequestError(f"{name} {value!r} is outside the output {tuple(entry['output_shape'])} of layer {layer_name!r}; expected 0..{limit - 1}")
        with self.lock:
            activations, (first_conv, first_input) = self.probe.forward(x)  # one value and its inputs: no gradients needed
        values = next(item.values for item in activations if item.layer_name == layer_name)
        if not np.isfinite(values[0, row, column, channel]):
            raise RequestError(f"layer {layer_name!r} outputs NaN or Inf at this cell; the model's weights are not finite or it overflows on this input", 422)
        answer = {"layer": layer_name, "channel": channel, "row": row, "column": column,
                  "value": round(float(values[0, row, column, channel]), 6), "receptive_field": None, "worked": None}
        fields = receptive_fields(self.graph.outputs_of[layer_name])
        if fields is not None:
            answer["receptive_field"] = _field_box(fields, row, column, self.spec.image_size)
        if first_conv is not None and layer_name == first_conv.name:
            worked = compute_worked_output(first_conv, first_input, channel, row, column)
            answer["worked"] = {
                "top": worked.top, "left": worked.left, "dilation": list(worked.dilation),
                "kernel": np.round(worked.kernel.astype(np.float64), 6).tolist(), "pixels": np.round(worked.pixels.astype(np.float64), 6).tolist(),
                "bias": round(worked.bias, 6), "total": round(worked.total, 6), "activation": worked.activation,
                "value": round(worked.value, 6), "network_value": answer["value"],
            }
        return answer

    def test_images(self, which: str = "all", true: int | None = None, predicted: int | None = None, offset: int = 0, limit: int = 48) -> dict:
        """GET /api/test-images: a page of test images (all, errors only, or one confusion-matrix cell) with thumbnails.

        Args:
            which: "all", "errors" or "cell".
            true, predicted: the cell's true and predicted class (``which="cell"`` only).
            offset: images of the selection to skip.
            limit: images in the page, 1..MAX_PAGE.

        Returns:
            JSON-ready dict: filter, total (the selection's size), offset, and images (index, label,
            PNG data-URL thumbnail; predicted and confidence when the run has predictions).

        Raises:
            RequestError: no test images or, for errors/cell, no predictions (404); a bad filter,
                page or class (400).
        """
        test = self._require_test()
        if which not in ("all", "errors", "cell"):
            raise RequestError(f"filter {which!r} is unknown; expected all, errors or cell")
        if not 1 <= limit <= MAX_PAGE or offset < 0:
            raise RequestError(f"offset {offset}, limit {limit}; expected offset >= 0 and limit 1..{MAX_PAGE}")
        guesses = test.predicted
        if which != "all" and guesses is None:
            raise RequestError("this run has no predictions.npz yet; run `convscope evaluate RUN` for errors and the confusion matrix", 404)
        if which == "all":
            chosen = np.arange(len(test.labels))
        elif which == "errors":
            chosen = np.flatnonzero(guesses != test.labels)
        else:
            if true is None or predicted is None:
                raise RequestError("filter=cell needs true=K and predicted=K (a confusion-matrix cell: row, column)")
            for name, value in (("true", true), ("predicted", predicted)):
                if not 0 <= value < len(self.class_names):
                    raise RequestError(f"{name}={value} is not a class; expected 0..{len(self.class_names) - 1}")
            chosen = np.flatnonzero((test.labels == true) & (guesses == predicted))
        page = chosen[offset : offset + limit]
        pictures = test.display(test.inputs[page]) if len(page) else []
        images = []
        for index, picture in zip(page, pictures):
            item = {"index": int(index), "label": int(test.labels[index]), "thumbnail": png_data_url(picture)}
            if guesses is not None:
                item["predicted"] = int(guesses[index])
                item["confidence"] = round(float(test.probabilities[index].max()), 4)
            images.append(item)
        return {"filter": which, "total": int(len(chosen)), "offset": offset, "images": images}

    def _require_test(self) -> TestImages:
        if self.test is None:
            raise RequestError("no test images: the run's dataset could not be loaded here (see the server's log); draw or upload an image instead", 404)
        return self.test


def _kind(shape: list) -> str:
    """How the page draws a layer's output: 'maps' (H, W, C) as tiles, anything else as a vector."""
    return "maps" if len(shape) == 3 else "vector"


def _layer_entry(name: str, layer_type: str, values: np.ndarray) -> dict:
    """One layer's output for one image: shape, summary numbers and what the page draws (tiles or bars)."""
    entry = {
        "name": name, "type": layer_type, "output_shape": list(values.shape),
        "summary": {"min": round(float(values.min()), 6), "max": round(float(values.max()), 6),
                    "mean": round(float(values.mean()), 6), "zero_fraction": round(float((values == 0).mean()), 4)},
    }
    if values.ndim == 3:
        picture, layout = mosaic(values)
        entry["kind"], entry["tiles"] = "maps", {"image": png_data_url(picture), **layout}
        return entry
    flat = values.reshape(-1)
    entry["kind"] = "vector"
    if len(flat) <= MAX_VECTOR_BARS:
        entry["values"] = [round(float(v), 5) for v in flat]
    else:  # folded into a near-square image, row by row
        columns = int(np.ceil(np.sqrt(len(flat))))
        padded = np.full(columns * int(np.ceil(len(flat) / columns)), np.nan, np.float32)
        padded[: len(flat)] = flat
        grid = padded.reshape(-1, columns)
        picture = np.where(np.isnan(grid), 0, to_uint8(np.nan_to_num(grid, nan=float(flat.min())), float(flat.min()), float(flat.max())))
        entry["folded"] = {"image": png_data_url(picture.astype(np.uint8)), "rows": grid.shape[0], "columns": columns,
                           "low": round(float(flat.min()), 6), "high": round(float(flat.max()), 6)}
    return entry


def _field_box(fields: tuple, row: int, column: int, image_size: tuple[int, int]) -> dict:
    """The input pixels one cell sees: centre, and the box clipped to the image (inclusive bounds)."""
    (row_stride, row_offset, row_size), (column_stride, column_offset, column_size) = fields
    centre_row, centre_column = row_stride * row + row_offset, column_stride * column + column_offset
    top, left = centre_row - (row_size - 1) / 2, centre_column - (column_size - 1) / 2
    bottom, right = top + row_size - 1, left + column_size - 1
    height, width = image_size
    return {
        "centre": [centre_row, centre_column], "size": [row_size, column_size],
        "top": int(max(np.floor(top), 0)), "left": int(max(np.floor(left), 0)),
        "bottom": int(min(np.ceil(bottom), height - 1)), "right": int(min(np.ceil(right), width - 1)),
    }
