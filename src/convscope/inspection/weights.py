"""What a model learned, read from its weights: first-layer filters, Dense units as images, filter responses.

    from convscope.inspection.weights import compute_dense_weights, compute_first_filters
    filters = compute_first_filters(model, (32, 32, 3))
    filters.rgb.shape                   # (32, 3, 3, 3): each filter as a colour image
    compute_dense_weights(mlp, (28, 28, 1)).images.shape   # (512, 28, 28)

No images are run through the network here except in ``learned_responses``,
which applies the first convolution alone to one image.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from convscope.inspection.graph import LayerGraph, all_layers, first_convolution, layer_graph, shape_of
from convscope.inspection.teaching import KernelResponse
from convscope.keras_compat import to_channels_last
from convscope.models.arithmetic import same_padding


@dataclass
class FirstLayerFilters:
    """The first convolutional layer's kernels."""

    layer_name: str
    kernels: np.ndarray  # (kh, kw, in_channels, out_channels), as Keras stores them
    channel_views: np.ndarray  # (in_channels, out_channels, kh, kw): one 2-D filter per input channel
    rgb: np.ndarray | None  # (out_channels, kh, kw, 3) uint8, each filter min-max rescaled; 3-channel input only


@dataclass
class WorkedOutput:
    """One output value of the first convolution on a real input, worked out: kernel x pixels + bias = value."""

    layer_name: str
    channel: int  # the filter
    row: int  # output cell
    column: int
    top: int  # input row of the window's top-left tap (negative inside 'same' padding)
    left: int
    dilation: tuple[int, int]  # input pixels between taps
    pixels: np.ndarray  # (kh, kw, in_channels) the layer's inputs under the window, 0 where it hangs over the edge
    kernel: np.ndarray  # (kh, kw, in_channels) the filter's weights
    bias: float  # 0.0 without a bias
    total: float  # sum(kernel * pixels) + bias, before the activation
    activation: str  # the layer's activation function, e.g. "relu"
    value: float  # activation(total): what the layer outputs there


@dataclass
class DenseWeightImages:
    """First Dense layer after Flatten on the image: each unit's weights as an image."""

    layer_name: str
    images: np.ndarray  # (units, H, W) or (units, H, W, C)
    vmin: float  # one symmetric colour scale shared by all units
    vmax: float


def compute_first_filters(model, input_shape: tuple) -> FirstLayerFilters | None:
    """The first convolutional layer's kernels, per input channel and as RGB composites.

    Args:
        model: a Keras model.
        input_shape: one image's shape (builds a never-called model).

    Returns:
        ``FirstLayerFilters``, or None when the model has no convolution.

    Example:
        >>> compute_first_filters(model, (32, 32, 3)).rgb.shape
        (32, 3, 3, 3)
    """
    layer_graph(model, tuple(input_shape))  # builds the weights of a never-called model
    return first_filters(model)


def first_filters(model) -> FirstLayerFilters | None:
    """``compute_first_filters`` of a built model."""
    layer = first_convolution(all_layers(model))
    if layer is None:
        return None
    kernels = keras.ops.convert_to_numpy(layer.kernel).astype(np.float32)
    channel_views = np.transpose(kernels, (2, 3, 0, 1))
    rgb = None
    if kernels.ndim == 4 and kernels.shape[2] == 3:
        per_filter = np.transpose(kernels, (3, 0, 1, 2))  # (out, kh, kw, 3)
        low = per_filter.min(axis=(1, 2, 3), keepdims=True)
        span = per_filter.max(axis=(1, 2, 3), keepdims=True) - low
        rgb = np.round(255 * (per_filter - low) / np.where(span > 0, span, 1)).astype(np.uint8)
    return FirstLayerFilters(layer.name, kernels, channel_views, rgb)


def compute_dense_weights(model, input_shape: tuple) -> DenseWeightImages | None:
    """Each unit of a Dense layer that directly follows Flatten on the image, as an image.

    Args:
        model: a Keras model (an MLP on images).
        input_shape: one image's shape.

    Returns:
        ``DenseWeightImages`` with one symmetric scale, or None when no Dense layer reads the flattened image.

    Example:
        >>> compute_dense_weights(mlp, (28, 28, 1)).images.shape
        (512, 28, 28)
    """
    return dense_weights(layer_graph(model, tuple(input_shape)), tuple(input_shape))


def dense_weights(graph: LayerGraph, input_shape: tuple) -> DenseWeightImages | None:
    """``compute_dense_weights`` on an already walked graph."""
    for flatten in graph.layers:
        if not isinstance(flatten, keras.layers.Flatten) or shape_of(graph.inputs_of[flatten.name])[1:] != input_shape:
            continue
        for dense in graph.layers:
            if isinstance(dense, keras.layers.Dense) and graph.inputs_of[dense.name] is graph.outputs_of[flatten.name]:
                kernel = keras.ops.convert_to_numpy(dense.kernel)  # (H*W*C, units)
                # Flatten always orders values (H, W, C), converting channels-first itself.
                height, width, channels = to_channels_last(np.zeros((1, *input_shape))).shape[1:]
                images = kernel.T.reshape(-1, height, width, channels)
                images = images[..., 0] if channels == 1 else images
                limit = float(np.abs(images).max())
                return DenseWeightImages(dense.name, images, -limit, limit)
    return None


def learned_responses(first_conv, first_input: np.ndarray, image_index: int) -> list[KernelResponse]:
    """The first convolution's pre-activation output on one image, one response per filter."""
    image = first_input[image_index : image_index + 1]
    response = first_conv.convolution_op(keras.ops.convert_to_tensor(image), first_conv.kernel)
    response = to_channels_last(keras.ops.convert_to_numpy(response))[0]
    if first_conv.use_bias:
        response = response + keras.ops.convert_to_numpy(first_conv.bias)
    kernels = keras.ops.convert_to_numpy(first_conv.kernel)  # (kh, kw, in_channels, filters)
    if kernels.shape[2] == 1:
        kernels = kernels[:, :, 0]  # grayscale input: each filter is one (kh, kw) matrix
    return [
        KernelResponse(f"{first_conv.name} filter {channel}", kernels[..., channel], response[..., channel])
        for channel in range(response.shape[-1])
    ]


def compute_worked_output(first_conv, first_input: np.ndarray, channel: int, row: int, column: int, image_index: int = 0) -> WorkedOutput:
    """The sum behind one output value of a Conv2D, on the input it actually received.

    Args:
        first_conv: a Conv2D layer (``groups`` 1).
        first_input: the batch the layer received, as ``run_network`` returns it (model layout).
        channel, row, column: the output cell (channels-last indices).
        image_index: which image of the batch.

    Returns:
        ``WorkedOutput``; ``value`` equals the layer's own output at that cell.

    Example:
        >>> worked = compute_worked_output(conv1, first_input, channel=3, row=10, column=12)
        >>> float((worked.kernel * worked.pixels).sum() + worked.bias) == worked.total
        True
    """
    image = to_channels_last(np.asarray(first_input, np.float32))[image_index]
    kernel = keras.ops.convert_to_numpy(first_conv.kernel).astype(np.float32)[..., channel]  # (kh, kw, in_channels)
    (kernel_height, kernel_width), strides, dilation = kernel.shape[:2], first_conv.strides, tuple(first_conv.dilation_rate)
    pad = [same_padding(size, k, s, d)[0] if first_conv.padding == "same" else 0
           for size, k, s, d in zip(image.shape[:2], (kernel_height, kernel_width), strides, dilation)]
    top, left = row * strides[0] - pad[0], column * strides[1] - pad[1]
    rows = top + dilation[0] * np.arange(kernel_height)
    columns = left + dilation[1] * np.arange(kernel_width)
    inside = (rows[:, None] >= 0) & (rows[:, None] < image.shape[0]) & (columns[None] >= 0) & (columns[None] < image.shape[1])
    pixels = np.where(inside[..., None], image[np.clip(rows, 0, image.shape[0] - 1)][:, np.clip(columns, 0, image.shape[1] - 1)], 0.0)
    bias = float(keras.ops.convert_to_numpy(first_conv.bias)[channel]) if first_conv.use_bias else 0.0
    total = float((kernel.astype(np.float64) * pixels).sum() + bias)
    activation = first_conv.activation
    value = float(keras.ops.convert_to_numpy(activation(np.array([total], np.float32)))[0])
    name = getattr(activation, "__name__", type(activation).__name__)
    return WorkedOutput(first_conv.name, channel, row, column, int(top), int(left), dilation, pixels.astype(np.float32), kernel, bias, total, name, value)
