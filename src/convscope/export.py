"""Export: a run's model as ONNX, LiteRT or a TensorFlow SavedModel, checked against Keras.

    convscope export runs/mnist-demo                            # runs/mnist-demo/export/model.onnx
    convscope export runs/mnist-demo --format litert            # runs/mnist-demo/export/model.tflite
    convscope export runs/mnist-demo --format savedmodel --out deploy/mnist

    from convscope.export import export_run
    result = export_run("runs/mnist-demo", "onnx")
    result.max_abs_difference, result.top1_agreement      # 3e-08, 1.0

The file is written by Keras' own ``model.export`` (ONNX through tf2onnx, as
Keras does it). Every export is then verified before it is kept: the exported
file runs on the first 64 test images in its own runtime (onnxruntime, the
LiteRT interpreter, TensorFlow) and its class probabilities are compared with
the Keras model's: the maximum absolute difference and the share of images
whose top-1 class agrees go into the run's export.json and its report. An
export that differs by more than TOLERANCE, or that its runtime cannot load,
is refused and nothing is written: the file appears under its final name only
after it has passed.

An ONNX file also carries the run's preprocessing in its metadata (see
convscope.onnx_predict), so `convscope predict model.onnx img.png` prepares
images as training did, without TensorFlow.

ONNX and LiteRT need the export extra: ``pip install "convscope[export]"``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import logging
import re
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from convscope.errors import ConvscopeError
from convscope.fileio import atomic_path, remove_stale_temps
from convscope.onnx_predict import EXTRA, METADATA_KEY, describe_inputs, run_session
from convscope.probabilities import to_probabilities
from convscope.runfolder import RunFolder, open_run
from convscope.startup import filtered_stderr

logger = logging.getLogger(__name__)

VERIFY_IMAGES = 64  # test images every export is checked on
# Largest probability difference an export may show: float32 re-orderings of the same
# sums stay under 1e-6 on every zoo model (tests/test_export.py); a wrong conversion
# is far above it (tf2onnx's ResizeArea: 0.1).
TOLERANCE = 1e-4
RUNTIME_NOISE = ("Created TensorFlow Lite XNNPACK delegate",)  # the LiteRT interpreter's start-up line on stderr


@dataclass(frozen=True)
class ExportFormat:
    """One export format: how Keras names it, where it goes, what runs it."""

    name: str  # what --format takes
    title: str  # how messages name it
    keras_format: str  # what model.export calls it
    file_name: str  # default name inside RUN/export/
    suffix: str  # the file name must end with it ("" for a folder)
    runtime: str  # the package the check runs it in
    packages: tuple[tuple[str, str], ...]  # (import name, pip name) the export and its check need


FORMATS = {
    "onnx": ExportFormat("onnx", "ONNX", "onnx", "model.onnx", ".onnx", "onnxruntime", (("tf2onnx", "tf2onnx"), ("onnx", "onnx"), ("onnxruntime", "onnxruntime"))),
    "litert": ExportFormat("litert", "LiteRT", "litert", "model.tflite", ".tflite", "ai-edge-litert", (("ai_edge_litert", "ai-edge-litert"),)),
    "savedmodel": ExportFormat("savedmodel", "SavedModel", "tf_saved_model", "savedmodel", "", "tensorflow", ()),
}
ALIASES = {"tflite": "litert", "tf_saved_model": "savedmodel", "saved_model": "savedmodel", "tf": "savedmodel"}


@dataclass
class ExportResult:
    """One verified export: where it is and how closely it agrees with the Keras model."""

    format: str
    path: str  # relative to the run folder when inside it
    bytes: int  # file size, or the folder's total
    images: int  # test images compared
    max_abs_difference: float  # largest |p_export - p_keras| over every image and class
    top1_agreement: float  # share of images whose most probable class is the same
    tolerance: float
    runtime: str  # "onnxruntime 1.32.0"
    versions: dict  # keras, tensorflow and the converter
    seconds: float  # export + check

    def to_dict(self) -> dict:
        return asdict(self)


def check_format(name: str) -> ExportFormat:
    """The ExportFormat called ``name``; one line naming the choices otherwise.

    Args:
        name: onnx, litert or savedmodel (an alias such as tflite is refused with a hint).

    Returns:
        The ExportFormat from FORMATS.
    """
    if name in FORMATS:
        return FORMATS[name]
    hint = f" (did you mean {ALIASES[name]}?)" if name in ALIASES else ""
    raise ConvscopeError(f"--format {name!r}{hint}; expected one of {', '.join(FORMATS)}")


def check_extra(export_format: ExportFormat) -> None:
    """One line naming the export extra when a package the format needs is not installed.

    Args:
        export_format: the format whose ``packages`` are looked for (not imported).
    """
    missing = [pip_name for module, pip_name in export_format.packages if importlib.util.find_spec(module) is None]
    if missing:
        raise ConvscopeError(
            f"--format {export_format.name} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed; "
            f"install the export extra: {EXTRA}"
        )


def export_run(run_dir: str | Path, format: str = "onnx", out: str | Path | None = None, images: int = VERIFY_IMAGES) -> ExportResult:
    """Export a run's model.keras, verify it on the run's test images and record it in export.json.

    Args:
        run_dir: a run folder with model.keras (a Keras run or a baseline).
        format: onnx, litert or savedmodel.
        out: the file (a folder for savedmodel) to write; default RUN/export/<model.onnx|model.tflite|savedmodel>.
        images: test images to verify on.

    Returns:
        ExportResult (absolute path), also merged into RUN/export.json under its format
        (path relative to the run folder when inside it).

    Raises:
        ConvscopeError: unknown format, missing extra, a layer the converter cannot
            handle, an export that disagrees with Keras. Nothing is written then.

    Example:
        >>> export_run("runs/mnist-demo", "litert").top1_agreement
        1.0
    """
    export_format = check_format(format)
    check_extra(export_format)
    run = open_run(run_dir)
    target = export_target(run, export_format, out)
    with run.lock(), removed_if_empty(run.export_dir):
        model = run.load_model()
        dataset = run.load_dataset()
        metadata = None
        if len(dataset.input_shape) == 3 and dataset.input_shape[0 if dataset.channels_first else -1] in (1, 3):
            metadata = describe_inputs(dataset.input_shape, dataset.channels_first, dataset.scaling, dataset.class_names)
        if target.parent == run.export_dir.resolve():
            remove_stale_temps(run.export_dir)  # left by an export that was killed
        result = export_model(model, target, export_format.name, dataset.x_test[:images], metadata=metadata, label=str(run.model_path))
        entry = result.to_dict()
        if target.is_relative_to(run.path.resolve()):
            entry["path"] = str(target.relative_to(run.path.resolve()))  # the folder stays valid when moved
        run.record_export(entry)
    return result


@contextlib.contextmanager
def removed_if_empty(folder: Path):
    """Leave no empty RUN/export/ behind when the first export there is refused."""
    existed = folder.is_dir()
    try:
        yield
    finally:
        if not existed and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def export_target(run: RunFolder, export_format: ExportFormat, out: str | Path | None) -> Path:
    """The absolute path to write: --out (a folder gets the default name inside it), else RUN/export/<default name>.

    Args:
        run: the run folder.
        export_format: the format, for its default file name and suffix.
        out: --out, or None.

    Returns:
        The resolved path (nothing is created).

    Raises:
        ConvscopeError: a file name without the format's suffix, or a SavedModel --out that
            exists and is not a SavedModel folder.
    """
    if out is None:
        return (run.export_dir / export_format.file_name).resolve()
    target = Path(out)
    if export_format.suffix and target.is_dir():
        target = target / export_format.file_name
    if export_format.suffix and target.suffix != export_format.suffix:
        raise ConvscopeError(f"--out {out}: {export_format.title} file names end in {export_format.suffix}; pass e.g. --out {target.with_suffix(export_format.suffix)}")
    if not export_format.suffix and target.exists() and not (target / "saved_model.pb").is_file():
        raise ConvscopeError(f"--out {out}: exists and is not a SavedModel folder; pass a new folder name (an old SavedModel there is replaced)")
    return target.resolve()


def export_model(model, path: str | Path, format: str, inputs: np.ndarray, metadata: dict | None = None, label: str = "the model") -> ExportResult:
    """Export any Keras model with ``model.export`` and verify it on ``inputs``; nothing is written unless it passes.

    Args:
        model: a Keras model, built or not (it is called on ``inputs`` first, which export needs).
        path: the file (folder for savedmodel) to write.
        format: onnx, litert or savedmodel.
        inputs: model inputs to compare the export with Keras on, (N, ...) float32.
        metadata: ``onnx_predict.describe_inputs`` of the model, stored in an ONNX file.
        label: how errors name the model (its file).

    Returns:
        ExportResult with the absolute path.
    """
    export_format = check_format(format)
    check_extra(export_format)
    from convscope.keras_compat import predict_outputs  # lazy: imports Keras, which the caller's model already loaded

    started = time.perf_counter()
    try:
        expected = to_probabilities(predict_outputs(model, inputs, batch_size=len(inputs)))
    except ValueError as error:  # Keras: the inputs do not fit the model
        reason = " ".join(str(error).split())[:300]
        raise ConvscopeError(f"{label}: the model cannot take the {inputs.shape[1:]} test images ({reason}); export a model trained on this dataset") from None
    path = Path(path)
    with atomic_path(path) as temp:
        convert(model, temp, export_format, label)
        if export_format.name == "onnx":
            check_onnx_ops(temp, model, label)
            if metadata is not None:
                store_onnx_metadata(temp, metadata)
        actual = to_probabilities(run_export(temp, export_format, inputs, label))
        difference = float(np.abs(actual - expected).max())
        agreement = float(np.mean(actual.argmax(axis=1) == expected.argmax(axis=1)))
        if difference > TOLERANCE:
            raise ConvscopeError(
                f"{label}: the {export_format.title} export disagrees with the Keras model on {len(inputs)} test images "
                f"(max abs probability difference {difference:.3g}, tolerance {TOLERANCE:g}; top-1 agreement {agreement:.1%}); "
                "nothing was written; a layer converts to different arithmetic: try another --format or replace the layer"
            )
    size = path.stat().st_size if path.is_file() else sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
    return ExportResult(
        format=export_format.name, path=str(path), bytes=size, images=len(inputs),
        max_abs_difference=difference, top1_agreement=agreement, tolerance=TOLERANCE,
        runtime=f"{export_format.runtime} {_version(export_format.runtime)}", versions=export_versions(export_format),
        seconds=round(time.perf_counter() - started, 2),
    )


def convert(model, path: Path, export_format: ExportFormat, label: str) -> None:
    """``model.export``, with the converters' log lines held back and their failures as one line.

    Args:
        model: the Keras model.
        path: where ``model.export`` writes (the temporary name).
        export_format: the format, for its Keras name.
        label: how errors name the model.

    Raises:
        ConvscopeError: any export failure; a TensorFlow op LiteRT cannot convert is named with its layer.
    """
    converter_log = logging.getLogger("tf2onnx")
    level = converter_log.level
    converter_log.setLevel(logging.CRITICAL)  # it logs each unsupported op as ERROR; check_onnx_ops says it in one line
    try:
        # The LiteRT converter writes its MLIR diagnostics straight to stderr, and the error it raises holds
        # them too: its stderr is held back whole. Only LiteRT's: a native crash inside a converter would
        # otherwise die with its last words in the held-back file.
        held_back = filtered_stderr(("",)) if export_format.name == "litert" else contextlib.nullcontext()
        with warnings.catch_warnings(), held_back:
            warnings.filterwarnings("ignore", message="In the future `np.object`", category=FutureWarning)  # Keras' tf2onnx patch probing NumPy 2
            model.export(str(path), format=export_format.keras_format, verbose=False)
    except Exception as error:  # Keras and the converters raise ValueError, RuntimeError, ConverterError ...
        text = " ".join(str(error).split())
        unsupported = re.search(r"'tf\.(\w+)' op is neither a custom op nor a flex op", text)
        if unsupported:
            node = re.search(r'fused\["\w+:", "([^"@]+)', text)
            raise unsupported_op_error(label, model, node.group(1) if node else "", unsupported.group(1), f"the LiteRT converter (TensorFlow {_version('tensorflow')})")
        raise ConvscopeError(f"{label}: Keras could not export it as {export_format.title} ({type(error).__name__}: {text[:300]}); nothing was written; try another --format") from None
    finally:
        converter_log.setLevel(level)


def unsupported_op_error(label: str, model, node_name: str, op: str, converter: str) -> ConvscopeError:
    """One line naming the layer (when it can be told from the node's scope), the op and the converter that cannot handle it.

    Args:
        label: how the message names the model.
        model: the Keras model, searched for the layer.
        node_name: the converted node's name ("" when unknown).
        op: the TensorFlow op.
        converter: how the message names the converter, with its version.

    Returns:
        The ConvscopeError, for the caller to raise.
    """
    layer = layer_of_node(model, node_name)
    where = f"layer {layer.name!r} ({type(layer).__name__})" if layer is not None else f"node {node_name!r}"
    return ConvscopeError(
        f"{label}: {where} becomes the TensorFlow op {op}, which {converter} cannot convert; "
        "nothing was written; replace that layer, or export with --format savedmodel, which keeps every TensorFlow op"
    )


def check_onnx_ops(path: Path, model, label: str) -> None:
    """Refuse an ONNX graph that still holds TensorFlow ops: tf2onnx leaves an op it cannot convert in place and carries on.

    Args:
        path: the .onnx file (read without external data).
        model: the Keras model, to name the layer in the error.
        label: how the error names the model.

    Raises:
        ConvscopeError: for the first node of the default domain that ONNX does not define.
    """
    import onnx  # lazy: part of the export extra

    graph = onnx.load(str(path), load_external_data=False).graph
    unknown = [node for node in graph.node if node.domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type)]
    if not unknown:
        return
    node = unknown[0]
    raise unsupported_op_error(label, model, node.name, node.op_type, f"the ONNX converter (tf2onnx {_version('tf2onnx')})")


def layer_of_node(model, node_name: str):
    """The model layer a converted node came from: tf2onnx names nodes by their TensorFlow scope, e.g. model_1/resizing_1/resize/Op.

    Args:
        model: the Keras model.
        node_name: the node's name; its scopes after the first are matched with layer names.

    Returns:
        The layer with the longest matching name, or None.
    """
    scopes = node_name.split("/")
    candidates = [layer for layer in model.layers if any(scope == layer.name or scope.startswith(layer.name + "_") for scope in scopes[1:])]
    return max(candidates, key=lambda layer: len(layer.name), default=None)


def store_onnx_metadata(path: Path, metadata: dict) -> None:
    """Write the predictor's preprocessing into the ONNX file's metadata_props.

    Args:
        path: the .onnx file, rewritten in place.
        metadata: ``onnx_predict.describe_inputs``'s dict, stored as JSON under METADATA_KEY.
    """
    import onnx  # lazy: part of the export extra

    model = onnx.load(str(path))
    model.metadata_props.add(key=METADATA_KEY, value=json.dumps(metadata))
    onnx.save(model, str(path))


def run_export(path: Path, export_format: ExportFormat, inputs: np.ndarray, label: str) -> np.ndarray:
    """The exported model's outputs on ``inputs``, computed by its own runtime.

    Args:
        path: the exported file or folder.
        export_format: picks the runner in RUNNERS.
        inputs: (N, ...) float32 model inputs.
        label: how errors name the model.

    Returns:
        The runtime's first output, one row per input.

    Raises:
        ConvscopeError: the runtime cannot load or run the export.
    """
    try:
        with filtered_stderr(RUNTIME_NOISE):
            return RUNNERS[export_format.name](path, inputs)
    except Exception as error:  # each runtime has its own error types
        reason = " ".join(str(error).split())[:300]
        raise ConvscopeError(
            f"{label}: {export_format.runtime} cannot run the {export_format.title} export ({reason}); "
            "nothing was written; try another --format"
        ) from None


def run_onnx(path: Path, inputs: np.ndarray) -> np.ndarray:
    """onnxruntime on the CPU, batched as `convscope predict model.onnx` runs it.

    Args:
        path: the .onnx file.
        inputs: (N, ...) model inputs.

    Returns:
        The model's first output for every input (``onnx_predict.run_session``).
    """
    import onnxruntime  # lazy: part of the export extra

    return run_session(onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]), inputs)


def run_litert(path: Path, inputs: np.ndarray) -> np.ndarray:
    """The LiteRT interpreter (ai-edge-litert), all inputs in one batch.

    Args:
        path: the .tflite file.
        inputs: (N, ...) model inputs; the input tensor is resized to their shape.

    Returns:
        The first output tensor, one row per input.
    """
    from ai_edge_litert.interpreter import Interpreter  # lazy: part of the export extra

    interpreter = Interpreter(model_path=str(path))
    model_input = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(model_input["index"], inputs.shape)  # exported with a free batch size (-1)
    interpreter.allocate_tensors()
    interpreter.set_tensor(model_input["index"], inputs)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def run_savedmodel(path: Path, inputs: np.ndarray) -> np.ndarray:
    """TensorFlow's SavedModel loader, through the ``serve`` endpoint Keras writes.

    Args:
        path: the SavedModel folder.
        inputs: (N, ...) model inputs, in one call.

    Returns:
        ``serve``'s output as a NumPy array.
    """
    import tensorflow as tf  # lazy: loaded already by Keras, named here for the SavedModel API

    loaded = tf.saved_model.load(str(path))  # held: its functions need the object alive while they run
    return np.asarray(loaded.serve(tf.constant(inputs)))


RUNNERS = {"onnx": run_onnx, "litert": run_litert, "savedmodel": run_savedmodel}


def export_versions(export_format: ExportFormat) -> dict:
    """Versions of what wrote and ran the file, for export.json.

    Args:
        export_format: adds its packages to keras and tensorflow.

    Returns:
        Package name -> installed version ("?" when not installed).
    """
    names = ["keras", "tensorflow", *(pip_name for _, pip_name in export_format.packages)]
    return {name: _version(name) for name in names}


def _version(package: str) -> str:
    for name in (package, f"{package}-cpu"):  # tensorflow is installed as tensorflow-cpu here
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "?"


def format_export(result: ExportResult) -> str:
    """One line for the terminal: where it went and how it agreed with Keras.

    Args:
        result: a verified export.

    Returns:
        The line, without a newline.
    """
    return (
        f"{result.format}: {result.path} ({result.bytes / 1e6:.2f} MB); on {result.images} test images in {result.runtime}: "
        f"max abs probability difference {result.max_abs_difference:.2g}, top-1 agreement {result.top1_agreement:.1%}"
    )
