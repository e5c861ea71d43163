"""Predict: a run's model on image files, prepared exactly like its training images.

    convscope predict runs/mnist-demo seven.png photo.jpg
    convscope predict runs/mnist-demo my_digits/ --top-k 5 --json

    from convscope.predict import predict_images, format_predictions
    result = predict_images("runs/mnist-demo", ["seven.png"])
    print(format_predictions(result))
    result.top(0)                     # [(7, "7", 0.998), (1, "1", 0.001), (2, "2", 0.0004)]

An image of any size and mode goes through the same steps as the training
images: ``data.load_images`` decodes it and converts it to the model's colour
mode (grayscale for one channel, RGB for three) and size (bilinear resize), the
run's own scaling (data.json's preprocessing: x/255, the fitted mean and std,
...) turns pixels into inputs, and the channel axis goes where the model
expects it. The scaling is rebuilt from data.json; only a ``minmax`` run,
whose per-pixel numbers data.json does not hold, loads its dataset to refit it.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convscope.data.images import FORMATS_TEXT, decode_image_bytes, load_images, read_header
from convscope.data.preprocess import scaling_from_description
from convscope.errors import ConvscopeError
from convscope.probabilities import to_probabilities
from convscope.runfolder import RunFolder, open_run
from convscope.text import format_table

logger = logging.getLogger(__name__)

COLOR_MODES = {1: "grayscale", 3: "rgb"}  # channels -> the colour mode load_images converts to


@dataclass
class InputSpec:
    """How to turn image files into one run's model inputs."""

    image_size: tuple[int, int]  # (height, width)
    color_mode: str  # grayscale or rgb
    channels_first: bool
    scaling: object  # convscope.data.preprocess.Scaling
    class_names: list[str]

    @property
    def channels(self) -> int:
        """Channels per pixel the model takes: 1 for grayscale, 3 for RGB."""
        return 1 if self.color_mode == "grayscale" else 3

    def class_names_for(self, num_classes: int) -> list[str]:
        """The class names, or "0".."N-1" when the spec holds none (or not one per class) for ``num_classes`` outputs."""
        return list(self.class_names) if len(self.class_names) == num_classes else [str(k) for k in range(num_classes)]


@dataclass
class PredictionResult:
    """Class probabilities of each image."""

    run: Path  # the run folder, or the .onnx file
    paths: list[Path]
    probabilities: np.ndarray  # (N, num_classes), rows sum to 1
    class_names: list[str]
    top_k: int

    def top(self, index: int) -> list[tuple[int, str, float]]:
        """(class index, class name, probability) of image ``index``'s top_k classes, most probable first."""
        row = self.probabilities[index]
        order = np.argsort(-row, kind="stable")[: self.top_k]
        return [(int(k), self.class_names[k], float(row[k])) for k in order]

    def to_dict(self) -> dict:
        """JSON-ready: the run (or the .onnx model) and, per image, its top classes with probabilities."""
        return {
            "model" if self.run.suffix == ".onnx" else "run": str(self.run),
            "predictions": [
                {
                    "image": str(path),
                    "top": [{"class": name, "index": k, "probability": round(p, 6)} for k, name, p in self.top(index)],
                }
                for index, path in enumerate(self.paths)
            ],
        }


def expand_image_paths(inputs: list[str | Path]) -> list[Path]:
    """Files as given; a folder becomes every image file in it, sorted by name.

    Files in a folder that are not images (judged by content) are skipped with a
    warning; a file named on its own must be an image (load_images says so).

    Example:
        >>> expand_image_paths(["digits/", "seven.png"])
        [PosixPath('digits/0.png'), PosixPath('digits/1.png'), PosixPath('seven.png')]
    """
    paths: list[Path] = []
    for item in map(Path, inputs):
        if not item.is_dir():
            paths.append(item)  # a missing file or a non-image is reported by load_images, naming it
            continue
        found = []
        for path in sorted(child for child in item.iterdir() if child.is_file() and not child.name.startswith(".")):
            if read_header(path) is None:
                warnings.warn(f"{path}: not a {FORMATS_TEXT} image (judged by content); skipped", stacklevel=2)
            else:
                found.append(path)
        if not found:
            raise ConvscopeError(f"{item}: folder holds no {FORMATS_TEXT} image; pass image files or a folder of images")
        paths.extend(found)
    if not paths:
        raise ConvscopeError("no images given; pass image files or folders")
    return paths


def read_input_spec(run: RunFolder, model) -> InputSpec:
    """The image size, colour mode, channel axis, scaling and class names the run's model was trained with."""
    data = run.read_json(run.data_path)
    dataset = None
    if data.get("input_shape"):
        preprocessing = data.get("preprocessing") or {}
        channels_first = preprocessing.get("image_data_format") == "channels_first"
        input_shape = tuple(data["input_shape"])
        class_names = [str(name) for name in data.get("class_names") or []]
        scaling = scaling_from_description(preprocessing)
    else:  # a run folder older than data.json: its dataset gives the same facts
        dataset = run.load_dataset()
        channels_first, input_shape, class_names, scaling = dataset.channels_first, dataset.input_shape, dataset.class_names, dataset.scaling
    if scaling is None:
        logger.info("%s: minmax scaling has per-pixel numbers that data.json does not hold; loading the dataset to refit them", run.path)
        scaling = (dataset or run.load_dataset()).scaling
    model_shape = tuple(model.input_shape[1:]) if isinstance(getattr(model, "input_shape", None), tuple) else input_shape
    if len(model_shape) == len(input_shape) and any(m is not None and m != d for m, d in zip(model_shape, input_shape)):
        raise ConvscopeError(
            f"{run.path}: model.keras takes inputs {model_shape} but data.json says {input_shape}; "
            "the folder mixes files of two runs; train the run again"
        )
    color_mode = color_mode_of(run.path, input_shape, channels_first)
    return InputSpec(image_size_of(input_shape, channels_first), color_mode, channels_first, scaling, list(class_names))


def input_spec_from_dataset(dataset) -> InputSpec:
    """``read_input_spec`` for a model trained on a ``convscope.data.Dataset`` in memory (a notebook's model)."""
    shape = tuple(dataset.input_shape)
    color_mode = color_mode_of(f"dataset {dataset.name}", shape, dataset.channels_first)
    return InputSpec(image_size_of(shape, dataset.channels_first), color_mode, dataset.channels_first, dataset.scaling, list(dataset.class_names))


def image_size_of(input_shape: tuple, channels_first: bool) -> tuple[int, int]:
    """(height, width) of one image's input shape, channels first or last."""
    height, width = input_shape[1:3] if channels_first else input_shape[0:2]
    return int(height), int(width)


def color_mode_of(source, input_shape: tuple, channels_first: bool) -> str:
    """The colour mode ("grayscale" or "rgb") images must take for a model input shape; ``source`` names the model in errors."""
    if len(input_shape) != 3:
        raise ConvscopeError(f"{source}: the model takes inputs of shape {tuple(input_shape)}; predict needs an image model, (height, width, channels)")
    channels = int(input_shape[0] if channels_first else input_shape[-1])
    if channels not in COLOR_MODES:
        raise ConvscopeError(
            f"{source}: the model takes {channels}-channel images; image files convert only to grayscale (1 channel) "
            "or RGB (3 channels); predict with arrays of the right shape in Python instead (model.predict)"
        )
    return COLOR_MODES[channels]


def prepare_images(paths: list[Path], spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
    """(model inputs float32, the uint8 pixels they came from (N, H, W, C)) for image files."""
    pixels = load_images(paths, image_size=spec.image_size, color_mode=spec.color_mode)
    return prepare_pixels(pixels, spec), pixels


def prepare_image_bytes(data: bytes, spec: InputSpec, label: str = "upload", max_pixels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``prepare_images`` for one image file held in memory (an upload): (model input (1, ...), its uint8 pixels (1, H, W, C))."""
    options = {} if max_pixels is None else {"max_pixels": max_pixels}
    pixels = decode_image_bytes(data, spec.image_size, spec.color_mode, label, **options)
    return prepare_pixels(pixels, spec), pixels


def prepare_pixels(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 (N, H, W, C) pixels at the model's size and colour mode -> float32 model inputs (the run's scaling, channel axis)."""
    return spec.scaling.apply(pixels, None, spec.channels_first)


def predict_images(run_dir: str | Path, images: list[str | Path], top_k: int = 3) -> PredictionResult:
    """Classify image files (or folders of them) with a run's model.

    Args:
        run_dir: a run folder with model.keras (a Keras run or a baseline).
        images: PNG/JPEG/... files of any size and mode, or folders.
        top_k: classes to keep per image (at most the number of classes).

    Returns:
        PredictionResult.

    Raises:
        ConvscopeError: no model.keras, a file that is not an image, a model whose
            channel count image files cannot be converted to.

    Example:
        >>> result = predict_images("runs/mnist-demo", ["seven.png"])
        >>> result.top(0)[0]
        (7, '7', 0.998)
    """
    if top_k < 1:
        raise ConvscopeError(f"--top-k {top_k}; expected 1 or more")
    run = open_run(run_dir)
    model = run.load_model()
    spec = read_input_spec(run, model)
    paths = expand_image_paths(images)
    inputs, _ = prepare_images(paths, spec)
    from convscope.keras_compat import predict_outputs  # lazy: predicting from an .onnx file imports this module without Keras

    probabilities = to_probabilities(predict_outputs(model, inputs, batch_size=256))
    names = spec.class_names_for(probabilities.shape[1])
    return PredictionResult(run.path, paths, probabilities, names, min(top_k, probabilities.shape[1]))


def format_predictions(result: PredictionResult) -> str:
    """One line per image: the file, then its top classes as ``name probability``, most probable first.

    Example:
        >>> print(format_predictions(result))
        image      1st          2nd          3rd
        seven.png  7  0.9981    1  0.0010    2  0.0004
    """
    ordinals = ["1st", "2nd", "3rd"] + [f"{k}th" for k in range(4, result.top_k + 1)]
    rows = [[str(path)] + [f"{name}  {p:.4f}" for _, name, p in result.top(index)] for index, path in enumerate(result.paths)]
    headings = ["image", *ordinals[: result.top_k]]
    return format_table(headings, rows, separator="    ")
