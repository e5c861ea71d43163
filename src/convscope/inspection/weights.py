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


@dataclass
class FirstLayerFilters:
    """The first convolutional layer's kernels."""

    layer_name: str
    kernels: np.ndarray  # (kh, kw, in_channels, out_channels), as Keras stores them
    channel_views: np.ndarray  # (in_channels, out_channels, kh, kw): one 2-D filter per input channel
    rgb: np.ndarray | None  # (out_channels, kh, kw, 3) uint8, each filter min-max rescaled; 3-channel input only


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
