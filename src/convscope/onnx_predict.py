"""Predict with an exported .onnx file on onnxruntime, without TensorFlow or Keras.

    convscope predict runs/mnist-demo/export/model.onnx seven.png          # same top-k as `convscope predict runs/mnist-demo seven.png`
    convscope predict model.onnx photos/ --scale standard:33.32,78.57 --class-names cat,dog

    from convscope.onnx_predict import predict_onnx
    result = predict_onnx("runs/mnist-demo/export/model.onnx", ["seven.png"])
    result.top(0)                     # [(7, "7", 0.998), (1, "1", 0.001), (2, "2", 0.0004)]

Images are prepared exactly as ``convscope predict RUN`` prepares them (the same
``prepare_images``), from the first of these that exists:

1. the preprocessing ``convscope export`` stores in the .onnx file's metadata
   (key ``convscope.inputs``: input shape, channel axis, the fitted scaling with
   its numbers, class names), so the file alone is enough on another machine;
2. the data.json of a run folder holding the file, itself or one folder up
   (``RUN/model.onnx``, ``RUN/export/model.onnx``);
3. the model's own input shape (image size, colour mode, channel axis) and the
   flags: ``--scale`` is then required.

Flags (image size, colour mode, scale, class names) override any of them. This
module and everything it imports use NumPy, Pillow and onnxruntime only: a
deployed predictor starts without loading TensorFlow.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np

from convscope.data.preprocess import Scaling, fit_scaling
from convscope.errors import ConvscopeError
from convscope.predict import COLOR_MODES, InputSpec, PredictionResult, expand_image_paths, color_mode_of, image_size_of, prepare_images, read_input_spec
from convscope.probabilities import to_probabilities
from convscope.runfolder import RunFolder

METADATA_KEY = "convscope.inputs"  # the .onnx metadata entry `convscope export` writes
EXTRA = 'pip install "convscope[export]"'
BATCH_SIZE = 256  # images per onnxruntime call, as the Keras path's model.predict


def describe_inputs(input_shape: tuple, channels_first: bool, scaling: Scaling, class_names: list[str]) -> dict:
    """What a predictor needs to turn image files into a model's inputs, as JSON-ready numbers.

    Args:
        input_shape: one image as the model takes it, e.g. (28, 28, 1).
        channels_first: whether the channel axis comes first.
        scaling: the run's fitted scaling (a minmax scaling keeps its per-pixel numbers).
        class_names: in output order.

    Returns:
        The dict ``convscope export`` stores in an .onnx file under METADATA_KEY.
    """
    return {
        "input_shape": [int(size) for size in input_shape],
        "channels_first": bool(channels_first),
        "scaling": {"kind": scaling.kind, "offset": np.asarray(scaling.offset).tolist(), "scale": np.asarray(scaling.scale).tolist()},
        "class_names": [str(name) for name in class_names],
    }


def spec_from_description(described: dict, where: str) -> InputSpec:
    """Rebuild an InputSpec from ``describe_inputs``'s dict; ``where`` names the file in errors.

    Args:
        described: the dict stored under METADATA_KEY, parsed from JSON.
        where: how errors name the file.

    Returns:
        InputSpec: image size, colour mode and channel axis from the input shape, the scaling, class names.

    Raises:
        ConvscopeError: a key missing or a value of the wrong type.
    """
    try:
        shape, channels_first = tuple(described["input_shape"]), bool(described["channels_first"])
        scaling = described["scaling"]
        scaling = Scaling(str(scaling["kind"]), np.asarray(scaling["offset"], np.float32), np.asarray(scaling["scale"], np.float32))
        class_names = [str(name) for name in described["class_names"]]
    except (KeyError, TypeError, ValueError) as error:
        raise ConvscopeError(f"{where}: its {METADATA_KEY} metadata is incomplete ({error}); export the run again with `convscope export`") from None
    return InputSpec(image_size_of(shape, channels_first), color_mode_of(where, shape, channels_first), channels_first, scaling, class_names)


def parse_scale(text: str) -> Scaling:
    """``--scale``: unit (x/255), centered ((x-128)/128) or standard:MEAN,STD ((x-MEAN)/STD).

    Args:
        text: the flag's value.

    Returns:
        The Scaling it names.

    Raises:
        ConvscopeError: any other text, or STD not above 0.

    Example:
        >>> parse_scale("standard:33.32,78.57").describe()["formula"]
        '(x - 33.3200) / 78.5700'
    """
    kind, _, numbers = text.partition(":")
    if kind in ("unit", "centered") and not numbers:
        return fit_scaling(kind, np.zeros((0, 1, 1, 1), dtype=np.uint8))
    if kind == "standard":
        try:
            mean, std = (float(part) for part in numbers.split(","))
        except ValueError:
            pass
        else:
            if std > 0:
                return Scaling("standard", np.float32(mean), np.float32(std))
    raise ConvscopeError(f"--scale {text!r}; expected unit, centered or standard:MEAN,STD with STD > 0 (data.json of the run gives them)")


def predict_onnx(
    model_path: str | Path,
    images: list[str | Path],
    top_k: int = 3,
    image_size: tuple[int, int] | None = None,
    color_mode: str | None = None,
    scale: str | None = None,
    class_names: list[str] | None = None,
) -> PredictionResult:
    """Classify image files (or folders of them) with an .onnx model on onnxruntime.

    Args:
        model_path: an .onnx file, from ``convscope export`` or made elsewhere.
        images: PNG/JPEG/... files of any size and mode, or folders.
        top_k: classes to keep per image.
        image_size, color_mode, scale, class_names: override the preprocessing
            found for the file (see the module docstring); ``scale`` as ``parse_scale`` reads it.

    Returns:
        PredictionResult, whose ``run`` is the .onnx file.

    Raises:
        ConvscopeError: onnxruntime missing, an unreadable model, no preprocessing
            found and no --scale, images prepared to a shape the model does not take.

    Example:
        >>> predict_onnx("runs/mnist-demo/export/model.onnx", ["seven.png"]).top(0)[0]
        (7, '7', 0.998)
    """
    if top_k < 1:
        raise ConvscopeError(f"--top-k {top_k}; expected 1 or more")
    path = Path(model_path)
    session = open_session(path)
    model_input = session.get_inputs()[0]
    spec, source = find_input_spec(path, session, scale_given=scale is not None)
    spec = override_spec(spec, model_input.shape, image_size, color_mode, scale, class_names)
    paths = expand_image_paths(images)
    inputs, _ = prepare_images(paths, spec)
    check_input_shape(path, model_input.shape, inputs.shape, source if image_size is None and color_mode is None else "--image-size/--color-mode")
    probabilities = to_probabilities(run_session(session, inputs))
    if class_names is not None and len(class_names) != probabilities.shape[1]:
        raise ConvscopeError(
            f"--class-names gives {len(class_names)} names, {path} has {probabilities.shape[1]} classes; give one name per class, in output order"
        )
    names = spec.class_names_for(probabilities.shape[1])
    return PredictionResult(path, paths, probabilities, names, min(top_k, probabilities.shape[1]))


def open_session(path: Path):
    """An onnxruntime InferenceSession on the CPU; one clear line for a missing file, runtime or a damaged model.

    Args:
        path: the .onnx file.

    Returns:
        The InferenceSession (CPUExecutionProvider).
    """
    if not path.is_file():
        raise ConvscopeError(f"{path}: no such .onnx file; pass a run folder or an .onnx file made by `convscope export`")
    if importlib.util.find_spec("onnxruntime") is None:
        raise ConvscopeError(f"{path}: predicting from an .onnx file needs onnxruntime, which is not installed; install the export extra: {EXTRA}")
    import onnxruntime  # lazy: part of the export extra, needed only for .onnx files

    try:
        return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph/InvalidProtobuf types
        reason = str(error).splitlines()[0][:300]
        raise ConvscopeError(f"{path}: onnxruntime cannot load this model ({reason}); pass an .onnx file written by `convscope export`") from None


def find_input_spec(path: Path, session, scale_given: bool) -> tuple[InputSpec | None, str]:
    """(the spec, where it came from): the file's own metadata, else a run folder's data.json, else flags only.

    Args:
        path: the .onnx file; its folder and the one above are searched for data.json.
        session: its InferenceSession, for the metadata.
        scale_given: whether --scale was passed (required when neither is found).

    Returns:
        (InputSpec, or None when only the flags and the model's shape are left; a phrase naming the source).

    Raises:
        ConvscopeError: metadata that is not JSON or is incomplete, or nothing found and no --scale.
    """
    stored = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if stored:
        try:
            described = json.loads(stored)
        except ValueError as error:
            raise ConvscopeError(f"{path}: its {METADATA_KEY} metadata is not JSON ({error}); export the run again with `convscope export`") from None
        return spec_from_description(described, str(path)), f"the preprocessing stored in {path.name}"
    run = next((RunFolder(folder) for folder in (path.parent, path.parent.parent) if RunFolder(folder).data_path.is_file()), None)
    if run is not None:
        return read_input_spec(run, None), str(run.data_path)
    if not scale_given:
        raise ConvscopeError(
            f"{path}: holds no convscope preprocessing and sits in no run folder; pass --scale "
            "(unit, centered or standard:MEAN,STD, as the model was trained) and --class-names, "
            "or export the run with `convscope export RUN`"
        )
    return None, "--scale and the model's input shape"


def override_spec(spec: InputSpec | None, model_shape: list, image_size, color_mode, scale, class_names) -> InputSpec:
    """Apply the flags; without a spec, take image size, colour mode and channel axis from the model's input shape.

    Args:
        spec: ``find_input_spec``'s spec, or None.
        model_shape: the model input's shape, batch axis first (symbolic sizes as strings or None).
        image_size, color_mode, scale, class_names: the flags, None when not given; ``scale`` as ``parse_scale`` reads it.

    Returns:
        The InputSpec with the flags applied.

    Raises:
        ConvscopeError: a model of free image size without --image-size, a bad --image-size, or a new
            size or colour mode for a per-pixel (minmax) scaling without --scale.
    """
    if spec is None:
        shape = [size if isinstance(size, int) else None for size in model_shape[1:]]
        channels_first = len(shape) == 3 and shape[-1] not in COLOR_MODES and shape[0] in COLOR_MODES
        height, width, channels = (shape[1], shape[2], shape[0]) if channels_first else (shape + [None] * 3)[:3]
        if (height is None or width is None) and image_size is None:
            raise ConvscopeError(f"the model takes images of any size {tuple(model_shape)}; pass --image-size H,W")
        spec = InputSpec((height, width), COLOR_MODES.get(channels, "rgb"), channels_first, None, [])
    changes = {}
    if image_size is not None:
        if len(image_size) != 2 or min(image_size) < 1:
            raise ConvscopeError(f"--image-size {','.join(map(str, image_size))}; expected two positive sizes H,W, e.g. 28,28")
        changes["image_size"] = tuple(image_size)
    if color_mode is not None:
        changes["color_mode"] = color_mode
    if scale is not None:
        changes["scaling"] = parse_scale(scale)
    if class_names is not None:
        changes["class_names"] = list(class_names)
    changed = dataclasses.replace(spec, **changes)
    scaling = changed.scaling
    if scaling is not None and np.ndim(scaling.offset) > 0 and (changed.image_size, changed.color_mode) != (spec.image_size, spec.color_mode):
        height, width = spec.image_size
        raise ConvscopeError(
            f"--image-size/--color-mode: this model's minmax scaling is per pixel at {height}x{width} {spec.color_mode}; "
            "leave the flags out, or pass --scale for the new size"
        )
    return changed


def check_input_shape(path: Path, model_shape: list, prepared: tuple, source: str) -> None:
    """One line when the prepared images (N, ...) differ from what the model takes (symbolic sizes match anything).

    Args:
        path: the .onnx file, for the message.
        model_shape: the model input's shape, batch axis first.
        prepared: the prepared images' shape, (N, ...).
        source: where the preprocessing came from, for the message.

    Raises:
        ConvscopeError: a different number of axes, or a fixed size that differs.
    """
    expected = tuple(model_shape[1:])
    if len(expected) != len(prepared) - 1 or any(isinstance(m, int) and m != p for m, p in zip(expected, prepared[1:])):
        shown = tuple(size if isinstance(size, int) else None for size in expected)
        raise ConvscopeError(
            f"{path}: the model takes inputs of shape {shown} but the images were prepared as {tuple(prepared[1:])} from {source}; "
            "pass --image-size H,W and --color-mode that match the model, or export the model again with `convscope export RUN`"
        )


def run_session(session, inputs: np.ndarray) -> np.ndarray:
    """Outputs for every input row, in batches; a model with a fixed batch size gets padded batches of that size.

    Args:
        session: an onnxruntime InferenceSession; its first input is fed.
        inputs: (N, ...) model inputs, N > 0.

    Returns:
        The first output, one row per input (BATCH_SIZE rows per call, or the fixed batch size).
    """
    model_input = session.get_inputs()[0]
    fixed = model_input.shape[0] if isinstance(model_input.shape[0], int) else None
    step = fixed or BATCH_SIZE
    outputs = []
    for start in range(0, len(inputs), step):
        batch = inputs[start : start + step]
        count = len(batch)
        if fixed and count < fixed:
            batch = np.concatenate([batch, np.zeros((fixed - count, *batch.shape[1:]), batch.dtype)])
        outputs.append(session.run(None, {model_input.name: batch})[0][:count])
    return np.concatenate(outputs)
