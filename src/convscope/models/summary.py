"""The explained summary: every layer's shape and parameter count, with the arithmetic.

    from convscope.models import create_model, summarize
    summary = summarize(create_model("mnist_convnet", (28, 28, 1), 10))
    print(summary.to_text())          # `convscope summary`
    summary.to_dict()                 # for the report and metrics.json
    summary.total_params              # 34826

For each layer the summary gives what Keras' own summary gives (output shape,
parameters) plus where the numbers come from, in numbers a learner can check by
hand::

    conv1  Conv2D  (28 - 3)/1 + 1 = 26 (valid)      (3*3*1 + 1) * 32 = 320
    pool1  MaxPooling2D  floor(26/2) = 13
    dense  Dense   1,600*10 + 10 = 16,010

and the cost of one image: multiply-adds (Conv2D: H_out*W_out*C_out*k*k*C_in;
Dense: inputs*units) and activation memory (output elements * bytes per element).

Every formula is checked against Keras (``layer.output.shape``,
``layer.count_params()``); a layer whose formula is unknown or disagrees shows
Keras' numbers with the note "from Keras" instead of a formula.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import keras
import numpy as np

from convscope.models.arithmetic import explain_convolution_size, explain_pooling_size
from convscope.models.loading import ensure_built
from convscope.text import column_widths, format_bytes, format_mflops, format_shape, table_lines

FROM_KERAS = "from Keras"  # marks a number that has no formula here


@dataclass
class LayerSummary:
    """One layer: its output shape and parameters, and the arithmetic behind both."""

    name: str
    layer_type: str  # Keras class name
    output_shape: tuple[int | None, ...]  # one image, no batch axis
    shape_arithmetic: str  # e.g. "(28 - 3)/1 + 1 = 26 (valid); 32 filters"
    params: int
    trainable_params: int
    param_arithmetic: str  # e.g. "(3*3*1 + 1) * 32 = 320"
    macs: int | None  # multiply-adds per image; None: not counted for this layer type
    activation_bytes: int | None  # output elements * bytes per element, per image; None: size unknown


@dataclass
class ModelSummary:
    """Per-layer rows and totals for one model (see ``summarize``)."""

    name: str
    input_shape: tuple[int | None, ...]  # one image, no batch axis
    layers: list[LayerSummary]
    total_params: int
    trainable_params: int
    non_trainable_params: int
    weight_bytes: int  # parameters * bytes per parameter
    macs: int  # multiply-adds per image, forward pass, over the layers that count them
    activation_bytes: int  # sum of every layer's output, per image

    @property
    def mflops(self) -> float:
        """Millions of floating-point operations per image, forward pass (2 per multiply-add)."""
        return 2 * self.macs / 1e6

    def to_dict(self) -> dict:
        """Return plain JSON-ready data: name, input_shape, layers (list of dicts), totals."""
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "layers": [{**asdict(layer), "output_shape": list(layer.output_shape)} for layer in self.layers],
            "totals": {
                "params": self.total_params,
                "trainable_params": self.trainable_params,
                "non_trainable_params": self.non_trainable_params,
                "weight_bytes": self.weight_bytes,
                "macs": self.macs,
                "mflops": self.mflops,
                "activation_bytes": self.activation_bytes,
            },
        }

    def to_text(self) -> str:
        """Return an aligned table, each layer followed by the arithmetic of its shape and parameters."""
        header = ("layer", "type", "output", "params", "multiply-adds", "activations")
        rows = [
            (
                layer.name,
                layer.layer_type,
                format_shape(layer.output_shape),
                f"{layer.params:,}",
                "-" if layer.macs is None else f"{layer.macs:,}",
                "-" if layer.activation_bytes is None else format_bytes(layer.activation_bytes),
            )
            for layer in self.layers
        ]
        table = table_lines(header, rows, align="lllrrr")
        indent = " " * (column_widths(header, rows)[0] + 2)
        values = "variable size" if None in self.input_shape else f"{_count(self.input_shape):,} values per image"
        lines = [
            f"Model '{self.name}': input {format_shape(self.input_shape)} ({values})",
            "",
            table[0],
        ]
        for layer, line in zip(self.layers, table[1:]):
            lines.append(line)
            lines.append(f"{indent}shape   {layer.shape_arithmetic}")
            lines.append(f"{indent}params  {layer.param_arithmetic}")
        lines += [
            "",
            f"Parameters: {self.total_params:,} ({self.trainable_params:,} trainable, "
            f"{self.non_trainable_params:,} non-trainable); weights {format_bytes(self.weight_bytes)}",
            f"Compute: {format_mflops(self.mflops)} MFLOPs per image, forward pass (2 x {self.macs:,} multiply-adds"
            + ("; layers shown with - are not counted)" if any(layer.macs is None for layer in self.layers) else ")"),
            f"Activation memory: {format_bytes(self.activation_bytes)} per image (sum of the layer outputs)",
        ]
        return "\n".join(lines)


def summarize(model: keras.Model, input_shape: tuple | None = None) -> ModelSummary:
    """Explain a model layer by layer: shapes, parameters, multiply-adds, memory.

    Args:
        model: a Sequential or functional keras.Model (a never-called Sequential
            needs ``input_shape``).
        input_shape: one image's shape, e.g. (28, 28, 1); builds the model if needed.

    Returns:
        A ModelSummary; ``.to_text()`` for the terminal, ``.to_dict()`` for the report.

    Example:
        >>> summary = summarize(create_model("cnn_single", (28, 28, 1), 10))
        >>> summary.layers[0].param_arithmetic
        '(3*3*1 + 1) * 32 = 320'
    """
    model = ensure_built(model, input_shape)
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    rows = [summarize_layer(layer) for layer in layers]
    return ModelSummary(
        name=model.name,
        input_shape=tuple(model.inputs[0].shape[1:]),
        layers=rows,
        total_params=model.count_params(),
        trainable_params=_weight_count(model.trainable_weights),
        non_trainable_params=_weight_count(model.non_trainable_weights),
        weight_bytes=sum(_weight_count([weight]) * np.dtype(weight.dtype).itemsize for weight in model.weights),
        macs=sum(row.macs for row in rows if row.macs is not None),
        activation_bytes=sum(row.activation_bytes for row in rows if row.activation_bytes is not None),
    )


def summarize_layer(layer: keras.layers.Layer) -> LayerSummary:
    """Return one layer's row; the formula's numbers are used only if they equal Keras' own."""
    output_shape = _shape_of(layer, "output")
    input_shape = _shape_of(layer, "input")
    params = layer.count_params()
    formula = None
    # A subclass (convscope's FusedBatchNormalization) gets its Keras parent's formula.
    explain = next((_EXPLAINERS[kind.__name__] for kind in type(layer).__mro__ if kind.__name__ in _EXPLAINERS), None)
    if explain and input_shape is not None and output_shape is not None and None not in input_shape:
        try:
            formula = explain(layer, input_shape)
        except (ValueError, TypeError, AttributeError):  # a configuration the formula does not cover
            formula = None
    if formula is not None and (formula.output_shape != output_shape or formula.params != params):
        formula = None  # an option this module does not model (e.g. a subclass); trust Keras
    if formula is None:
        formula = _Formula(output_shape, f"{format_shape(output_shape)} ({FROM_KERAS})", params, f"{params:,} ({FROM_KERAS})", None)
    output_dtype = layer.compute_dtype or "float32"
    elements = _count(output_shape) if output_shape is not None and None not in output_shape else None
    return LayerSummary(
        name=layer.name,
        layer_type=type(layer).__name__,
        output_shape=output_shape if output_shape is not None else (),
        shape_arithmetic=formula.shape_text,
        params=params,
        trainable_params=_weight_count(layer.trainable_weights),
        param_arithmetic=formula.param_text,
        macs=formula.macs,
        activation_bytes=None if elements is None else elements * np.dtype(output_dtype).itemsize,
    )


# ---------------------------------------------------------------------------
# Formulas, one per layer type: (output shape, its arithmetic, params, their arithmetic, multiply-adds)

@dataclass
class _Formula:
    output_shape: tuple
    shape_text: str
    params: int
    param_text: str
    macs: int | None


def _spatial(shape: tuple, data_format: str) -> tuple[int, int, int]:
    """(height, width, channels) of a 3-axis image shape."""
    if data_format == "channels_first":
        channels, height, width = shape
    else:
        height, width, channels = shape
    return height, width, channels


def _image(height: int, width: int, channels: int, data_format: str) -> tuple[int, int, int]:
    return (channels, height, width) if data_format == "channels_first" else (height, width, channels)


def _both_axes(height: tuple[int, str], width: tuple[int, str]) -> str:
    if height[1] == width[1]:
        return height[1]
    return f"height {height[1]}; width {width[1]}"


def _explain_conv2d(layer, input_shape):
    height, width, channels_in = _spatial(input_shape, layer.data_format)
    (kernel_h, kernel_w), (stride_h, stride_w) = layer.kernel_size, layer.strides
    (dilation_h, dilation_w), filters, groups = layer.dilation_rate, layer.filters, layer.groups
    out_h = explain_convolution_size(height, kernel_h, stride_h, dilation_h, layer.padding)
    out_w = explain_convolution_size(width, kernel_w, stride_w, dilation_w, layer.padding)
    per_filter = kernel_h * kernel_w * channels_in // groups
    inputs_text = f"{kernel_h}*{kernel_w}*{channels_in}" + (f"/{groups}" if groups != 1 else "")
    params = (per_filter + int(layer.use_bias)) * filters
    param_text = (
        f"({inputs_text} + 1) * {filters} = {params:,}" if layer.use_bias else f"{inputs_text} * {filters} = {params:,}"
    )
    return _Formula(
        output_shape=_image(out_h[0], out_w[0], filters, layer.data_format),
        shape_text=f"{_both_axes(out_h, out_w)}; {filters} filters",
        params=params,
        param_text=param_text,
        macs=out_h[0] * out_w[0] * filters * per_filter,
    )


def _explain_pooling2d(layer, input_shape):
    height, width, channels = _spatial(input_shape, layer.data_format)
    (pool_h, pool_w), (stride_h, stride_w) = layer.pool_size, layer.strides
    out_h = explain_pooling_size(height, pool_h, stride_h, layer.padding)
    out_w = explain_pooling_size(width, pool_w, stride_w, layer.padding)
    return _Formula(
        output_shape=_image(out_h[0], out_w[0], channels, layer.data_format),
        shape_text=f"{_both_axes(out_h, out_w)}; {channels} channels kept",
        params=0,
        param_text="no weights",
        macs=0,
    )


def _explain_global_pooling2d(layer, input_shape):
    height, width, channels = _spatial(input_shape, layer.data_format)
    operation = "max" if "Max" in type(layer).__name__ else "mean"
    shape = _image(1, 1, channels, layer.data_format) if layer.keepdims else (channels,)
    return _Formula(shape, f"{operation} over {height}x{width} per channel -> {channels}", 0, "no weights", 0)


def _explain_flatten(layer, input_shape):
    size = _count(input_shape)
    text = f"{'*'.join(str(axis) for axis in input_shape)} = {size:,}" if len(input_shape) > 1 else f"{size:,}"
    return _Formula((size,), text, 0, "no weights", 0)


def _explain_dense(layer, input_shape):
    inputs, units = input_shape[-1], layer.units
    params = inputs * units + (units if layer.use_bias else 0)
    param_text = f"{inputs:,}*{units:,} + {units:,} = {params:,}" if layer.use_bias else f"{inputs:,}*{units:,} = {params:,}"
    positions = _count(input_shape[:-1])  # Dense acts on the last axis at every other position
    return _Formula((*input_shape[:-1], units), f"{inputs:,} inputs -> {units:,} units", params, param_text, positions * inputs * units)


def _explain_batch_normalization(layer, input_shape):
    axis = layer.axis if layer.axis < 0 else layer.axis - 1  # Keras counts the batch axis
    channels = input_shape[axis]
    learned = [name for name, used in (("gamma", layer.scale), ("beta", layer.center)) if used]
    per_channel = len(learned) + 2
    params = per_channel * channels
    trainable = f"{len(learned) * channels:,} trainable ({', '.join(learned)})" if learned else "0 trainable"
    return _Formula(
        tuple(input_shape),
        "same as input, normalized per channel",
        params,
        f"{per_channel}*{channels} = {params:,}: {trainable}; {2 * channels:,} non-trainable (moving mean, variance)",
        0,
    )


def _explain_elementwise(layer, input_shape):
    return _Formula(tuple(input_shape), "same as input", 0, "no weights", 0)


_EXPLAINERS = {
    "Conv2D": _explain_conv2d,
    "MaxPooling2D": _explain_pooling2d,
    "AveragePooling2D": _explain_pooling2d,
    "GlobalMaxPooling2D": _explain_global_pooling2d,
    "GlobalAveragePooling2D": _explain_global_pooling2d,
    "Flatten": _explain_flatten,
    "Dense": _explain_dense,
    "BatchNormalization": _explain_batch_normalization,
    "Dropout": _explain_elementwise,
    "Activation": _explain_elementwise,
    "ReLU": _explain_elementwise,
    "ELU": _explain_elementwise,
    "LeakyReLU": _explain_elementwise,
    "Softmax": _explain_elementwise,
    "SpatialDropout2D": _explain_elementwise,
    "GaussianNoise": _explain_elementwise,
}


# ---------------------------------------------------------------------------
# Small helpers

def _shape_of(layer, attribute: str) -> tuple | None:
    """Shape of ``layer.input`` or ``layer.output`` without the batch axis; None if not one tensor."""
    try:
        tensor = getattr(layer, attribute)
    except (AttributeError, ValueError):  # e.g. a nested model that was never called on its own
        return None
    if isinstance(tensor, (list, tuple)) or not hasattr(tensor, "shape"):
        return None
    return tuple(tensor.shape[1:])


def _count(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


def _weight_count(weights) -> int:
    return sum(_count(tuple(weight.shape)) for weight in weights)
