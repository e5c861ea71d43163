"""Look inside a network: filters, activations, Grad-CAM, saliency, classic kernels.

Compute only (arrays and small dataclasses); ``convscope.plots.inspection`` draws them.

    from convscope.inspect import inspect
    from convscope.plots.inspection import save_inspection_figures
    result = inspect(model, data.x_test[[0, 42]], display_images=data.display_images(data.x_test[[0, 42]]))
    result.grad_cam.heatmaps.shape        # (2, 28, 28), each in [0, 1]
    result.grad_cam.method                # 'hirescam' behind Flatten -> Dense, else 'gradcam'
    save_inspection_figures(result, "runs/demo/plots", class_names=data.class_names)

Works for any single-input Keras classifier: a zoo model, a YAML one, a user's
functional model, or a ``keras.Sequential([...])`` that has never been called
(the input shape comes from the images). Activations, Grad-CAM and saliency come
from one forward and one backward pass over all images. Every ``compute_*``
function is also usable on its own. Images are preprocessed model inputs, shaped
per ``keras.config.image_data_format()``; every image-like array in the results
is channels-last.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np

from convscope.keras_compat import forward_with_gradients
from convscope.errors import ConvscopeError
from convscope.evaluate import to_probabilities
from convscope.models import ensure_built
from convscope.plots.common import display_image

CONVOLUTION_TYPES = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D", "Conv2DTranspose")
ACTIVATION_TYPES = ("Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax")
GRAD_CAM_METHODS = ("auto", "gradcam", "hirescam")
OPERATION_NAME = "cross-correlation (what keras.layers.Conv2D computes: the kernel is not flipped)"


# ---------------------------------------------------------------- results


@dataclass
class LayerInfo:
    """One row of the layer table; shapes keep the batch axis as None."""

    name: str
    type: str
    input_shape: tuple | list
    output_shape: tuple
    weight_shapes: list  # every variable except the bias, e.g. [(3, 3, 1, 32)]
    bias_shape: tuple | None


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


@dataclass
class LayerActivation:
    """One layer's output for the chosen images."""

    layer_name: str
    layer_type: str
    values: np.ndarray  # (N, H, W, C) channels-last, or (N, units)


@dataclass
class GradCam:
    """Class-activation heatmaps (Grad-CAM or HiResCAM) of one convolutional layer."""

    layer_name: str
    heatmaps: np.ndarray  # (N, H, W) in [0, 1], resampled to the input size
    coarse_heatmaps: np.ndarray  # (N, h, w) before resampling, not normalised
    class_indices: np.ndarray  # (N,) class each heatmap explains
    score_source: str  # which tensor the class score was read from
    method: str  # "gradcam" or "hirescam": what was computed ("auto" resolved)
    method_reason: str  # why, e.g. "auto: flatten after conv2 gives each position its own weights"
    # ((stride, offset) of rows, (stride, offset) of columns): cell i is centred on
    # input pixel stride * i + offset; None when the heatmap was stretched instead.
    cell_centres: tuple | None


@dataclass
class Saliency:
    """Vanilla-gradient saliency: |d score / d input|, max over channels."""

    maps: np.ndarray  # (N, H, W), each divided by its maximum
    class_indices: np.ndarray  # (N,)


@dataclass
class KernelResponse:
    """A kernel and the image it produces."""

    name: str
    kernel: np.ndarray  # (kh, kw), or (kh, kw, C) for learned filters on a C-channel image
    response: np.ndarray  # (H, W)


@dataclass
class ClassicKernels:
    """Hand-made kernels beside the learned first-layer filters, on one image."""

    image_index: int
    grayscale: np.ndarray  # (H, W) floats in [0, 1] the classic kernels are applied to
    classic: list[KernelResponse]  # Sobel x/y, Laplacian, sharpen, box blur, random
    channels: dict[str, np.ndarray] | None  # {"R": (H, W), "G": ..., "B": ...} uint8 for RGB input
    learned_layer_name: str | None
    learned: list[KernelResponse] = field(default_factory=list)  # pre-activation responses


@dataclass
class PixelGrid:
    """Integer pixel values of one image, as the lessons annotate them."""

    image_index: int
    values: np.ndarray  # (h, w) uint8
    top_left: tuple[int, int]  # (row, column) of the crop in the full image
    description: str


@dataclass
class WorkedConvolution:
    """A small convolution worked by hand, every output cell spelled out."""

    input: np.ndarray  # (n, n) integers
    kernel: np.ndarray  # (k, k) integers
    stride: int
    padding: str  # "valid" or "same" (Keras' meaning)
    padded_input: np.ndarray
    pad_before: int  # rows/columns of zeros added above and left
    output: np.ndarray
    sums: list[list[str]]  # sums[i][j] = "1*0 + 2*1 + ... = 7"
    operation: str


@dataclass
class WorkedPooling:
    """A 2x2 max-pooling example: 4x4 input to 2x2, each window listed."""

    input: np.ndarray  # (4, 4)
    output: np.ndarray  # (2, 2)
    windows: list[list[str]]  # windows[i][j] = "max(1, 5, 3, 2) = 5"


@dataclass
class OutputSize:
    """The output-size formula applied once: floor((n + 2p - k) / s) + 1."""

    label: str
    size: int  # n
    kernel_size: int  # k
    stride: int  # s
    total_padding: int  # 2p (Keras 'same' may pad one more on the bottom/right)
    output_size: int
    text: str


@dataclass
class InspectionResult:
    """Everything ``inspect`` computed for one model and a few images."""

    model_name: str
    images: np.ndarray  # model inputs as given
    display_images: np.ndarray  # (N, H, W, C) uint8, channels-last, for figures
    image_labels: list[str]  # how figures name each image, e.g. "test image 42"
    probabilities: np.ndarray  # (N, num_classes)
    predicted_classes: np.ndarray  # (N,)
    layers: list[LayerInfo]
    filters: FirstLayerFilters | None  # None when the model has no convolution
    dense_weights: DenseWeightImages | None  # None unless Dense follows Flatten on the image
    activations: list[LayerActivation]
    grad_cam: GradCam | None  # None when no layer has a spatial output
    saliency: Saliency
    classic_kernels: ClassicKernels
    pixel_grid: PixelGrid
    worked_convolution: WorkedConvolution
    worked_pooling: WorkedPooling
    output_sizes: list[OutputSize]


# ---------------------------------------------------------------- the layer graph


@dataclass
class _LayerGraph:
    """Symbolic tensors of every top-level layer, on one input."""

    input: object
    output: object
    layers: list  # top-level layers in call order, InputLayer excluded
    inputs_of: dict  # layer name -> input tensor (or list of them)
    outputs_of: dict  # layer name -> output tensor


def _layer_graph(model, input_shape: tuple) -> _LayerGraph:
    """Symbolic inputs/outputs of every top-level layer in the model's own graph.

    ``ensure_built`` gives a never-called Sequential its graph (the usual
    ``keras.Model(model.inputs, layer.output)`` fails without one) and checks
    that the images fit the model. ``layer.output`` itself is not used: it is the
    layer's first call, and a Sequential loaded from a .keras file calls its
    layers once per rebuild while being assembled (conv1 of a loaded
    mnist_convnet has 7 calls), so the first call can belong to a discarded
    graph: its activations look right, but no gradient flows from the model's
    output back to it. Walking back from the model's outputs finds the calls
    that make up the graph the model actually runs.
    """
    model = ensure_built(model, tuple(input_shape))
    nodes, pending = {}, list(model.outputs)
    while pending:
        operation, node_index, _ = pending.pop()._keras_history
        node = operation._inbound_nodes[node_index]
        if operation.name not in nodes and not isinstance(operation, keras.layers.InputLayer):
            nodes[operation.name] = node
            pending.extend(node.input_tensors)
    layers = [layer for layer in model.layers if layer.name in nodes]
    inputs_of = {layer.name: _one_or_list(nodes[layer.name].input_tensors) for layer in layers}
    outputs_of = {layer.name: _one_or_list(nodes[layer.name].output_tensors) for layer in layers}
    return _LayerGraph(model.inputs[0], model.outputs[0], layers, inputs_of, outputs_of)


def _one_or_list(tensors):
    return tensors[0] if len(tensors) == 1 else list(tensors)


def _shape(tensor) -> tuple | list:
    if isinstance(tensor, (list, tuple)):
        return [_shape(item) for item in tensor]
    return tuple(tensor.shape)


def _channels_last(array: np.ndarray) -> np.ndarray:
    """Move the channel axis of a (N, C, H, W) batch last when Keras runs channels-first."""
    if array.ndim == 4 and keras.config.image_data_format() == "channels_first":
        return np.moveaxis(array, 1, -1)
    return array


def _find_layer(graph: _LayerGraph, name: str):
    for layer in graph.layers:
        if layer.name == name:
            return layer
    names = ", ".join(layer.name for layer in graph.layers)
    raise ConvscopeError(f"no layer named {name!r} in the model; choose one of: {names}")


def _is_convolution(layer) -> bool:
    return type(layer).__name__ in CONVOLUTION_TYPES or isinstance(layer, keras.layers.Conv2D)


def _all_layers(model):
    """Every layer, nested models' layers included, in order."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        elif not isinstance(layer, keras.layers.InputLayer):
            yield layer


def _default_activation_layers(graph: _LayerGraph) -> list:
    """Conv, pooling and activation layers, and any layer with a non-linear activation."""
    chosen = []
    for layer in graph.layers:
        kind = type(layer).__name__
        activation = getattr(layer, "activation", None)
        nonlinear = activation is not None and getattr(activation, "__name__", "linear") != "linear"
        if _is_convolution(layer) or "Pooling" in kind or kind in ACTIVATION_TYPES or nonlinear:
            chosen.append(layer)
    return chosen


def _grad_cam_layer(graph: _LayerGraph, name: str | None):
    """The chosen layer, else the last convolution, else the last layer with a spatial output."""
    if name is not None:
        layer = _find_layer(graph, name)
        if len(graph.outputs_of[layer.name].shape) != 4:
            raise ConvscopeError(
                f"Grad-CAM needs a layer with a spatial (N, H, W, C) output; {name!r} outputs "
                f"{_shape(graph.outputs_of[layer.name])}; choose a convolutional layer"
            )
        return layer
    spatial = [layer for layer in graph.layers if len(graph.outputs_of[layer.name].shape) == 4]
    convolutions = [layer for layer in spatial if _is_convolution(layer)]
    return (convolutions or spatial or [None])[-1]


def _score_head(graph: _LayerGraph):
    """Where to read the pre-softmax class score: (tensor, dense layer or None, description).

    A softmax squashes the other classes' logits into every score; the logit
    is the quantity the last layer actually computes for the class.
    """
    last = next((layer for layer in reversed(graph.layers) if graph.outputs_of[layer.name] is graph.output), graph.layers[-1])
    kind = type(last).__name__
    activation_name = getattr(getattr(last, "activation", None), "__name__", "")
    if isinstance(last, keras.layers.Dense) and activation_name == "softmax":
        return graph.inputs_of[last.name], last, f"logit of {last.name} (Dense without its softmax)"
    if kind == "Softmax" or (kind == "Activation" and activation_name == "softmax"):
        return graph.inputs_of[last.name], None, f"logit (input of {last.name})"
    return graph.output, None, f"model output ({last.name})"


# ---------------------------------------------------------------- network numbers


def compute_layer_table(model, input_shape: tuple) -> list[LayerInfo]:
    """Every top-level layer's name, type, input/output shapes, weight and bias shapes.

    Args:
        model: a Keras model (a never-called Sequential is fine).
        input_shape: one image's shape, e.g. (28, 28, 1).

    Returns:
        One ``LayerInfo`` per layer, in call order.

    Example:
        >>> [row.output_shape for row in compute_layer_table(model, (28, 28, 1))][:1]
        [(None, 26, 26, 32)]
    """
    return _layer_table(_layer_graph(model, tuple(input_shape)))


def _layer_table(graph: _LayerGraph) -> list[LayerInfo]:
    table = []
    for layer in graph.layers:
        bias = getattr(layer, "bias", None) if not isinstance(layer, keras.Model) else None
        weights = [tuple(weight.shape) for weight in layer.weights if bias is None or weight is not bias]
        table.append(
            LayerInfo(
                name=layer.name,
                type=type(layer).__name__,
                input_shape=_shape(graph.inputs_of[layer.name]),
                output_shape=_shape(graph.outputs_of[layer.name]),
                weight_shapes=weights,
                bias_shape=None if bias is None else tuple(bias.shape),
            )
        )
    return table


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
    _layer_graph(model, tuple(input_shape))  # builds the weights of a never-called model
    return _first_filters(model)


def _first_filters(model) -> FirstLayerFilters | None:
    layer = next((layer for layer in _all_layers(model) if isinstance(layer, keras.layers.Conv2D)), None)
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
    return _dense_weights(_layer_graph(model, tuple(input_shape)), tuple(input_shape))


def _dense_weights(graph: _LayerGraph, input_shape: tuple) -> DenseWeightImages | None:
    for flatten in graph.layers:
        if not isinstance(flatten, keras.layers.Flatten) or _shape(graph.inputs_of[flatten.name])[1:] != input_shape:
            continue
        for dense in graph.layers:
            if isinstance(dense, keras.layers.Dense) and graph.inputs_of[dense.name] is graph.outputs_of[flatten.name]:
                kernel = keras.ops.convert_to_numpy(dense.kernel)  # (H*W*C, units)
                # Flatten always orders values (H, W, C), converting channels-first itself.
                height, width, channels = _channels_last(np.zeros((1, *input_shape))).shape[1:]
                images = kernel.T.reshape(-1, height, width, channels)
                images = images[..., 0] if channels == 1 else images
                limit = float(np.abs(images).max())
                return DenseWeightImages(dense.name, images, -limit, limit)
    return None


def _run_network(graph: _LayerGraph, images: np.ndarray, activation_layers, grad_cam_layer, class_index, grad_cam_method="auto"):
    """One forward and one backward pass: activations, predictions, Grad-CAM, saliency."""
    if grad_cam_method not in GRAD_CAM_METHODS:
        raise ConvscopeError(f"Grad-CAM method {grad_cam_method!r} is unknown; use one of: {', '.join(GRAD_CAM_METHODS)}")
    activation_layers = (
        _default_activation_layers(graph) if activation_layers is None else [_find_layer(graph, name) for name in activation_layers]
    )
    cam_layer = _grad_cam_layer(graph, grad_cam_layer)
    score_tensor, dense_head, score_source = _score_head(graph)
    if len(graph.output.shape) != 2:
        raise ConvscopeError(
            f"the model outputs shape {_shape(graph.output)}; inspection expects a classifier with (N, num_classes) outputs"
        )

    probes = [graph.outputs_of[layer.name] for layer in activation_layers] + [graph.output, score_tensor]
    if cam_layer is not None:
        probes.append(graph.outputs_of[cam_layer.name])
    first_conv = next((layer for layer in graph.layers if isinstance(layer, keras.layers.Conv2D)), None)
    if first_conv is not None:
        probes.append(graph.inputs_of[first_conv.name])
    unique = list({id(tensor): tensor for tensor in probes}.values())
    index = {id(tensor): position for position, tensor in enumerate(unique)}
    probe_model = keras.Model(graph.input, unique)

    num_classes = graph.output.shape[-1]
    if class_index is not None:
        chosen = np.broadcast_to(np.asarray(class_index, dtype=np.int64), (len(images),)).copy()
        if np.any(chosen < 0) or np.any(chosen >= num_classes):
            raise ConvscopeError(f"class_index {class_index} is outside 0..{num_classes - 1}; pass a class of the model")

    def score_function(outputs):
        scores = outputs[index[id(score_tensor)]]
        if dense_head is not None:
            scores = keras.ops.matmul(scores, dense_head.kernel)
            if dense_head.bias is not None:
                scores = scores + dense_head.bias
        target = chosen if class_index is not None else keras.ops.argmax(outputs[index[id(graph.output)]], axis=-1)
        target = keras.ops.expand_dims(keras.ops.cast(target, "int32"), -1)
        return keras.ops.take_along_axis(scores, target, axis=-1)[:, 0]

    feature_index = None if cam_layer is None else index[id(graph.outputs_of[cam_layer.name])]
    outputs, input_gradient, feature_gradient = forward_with_gradients(probe_model, images, score_function, feature_index)

    probabilities = to_probabilities(outputs[index[id(graph.output)]])
    classes = chosen if class_index is not None else probabilities.argmax(axis=1)
    activations = [
        LayerActivation(layer.name, type(layer).__name__, _channels_last(outputs[index[id(graph.outputs_of[layer.name])]]))
        for layer in activation_layers
    ]
    display_shape = _channels_last(images).shape[1:3]
    grad_cam = None
    if cam_layer is not None:
        features = _channels_last(outputs[feature_index])
        gradients = _channels_last(feature_gradient)
        cam_tensor = graph.outputs_of[cam_layer.name]
        method, reason = _resolve_cam_method(grad_cam_method, cam_layer, cam_tensor, score_tensor)
        if method == "gradcam":
            gradients = gradients.mean(axis=(1, 2), keepdims=True)  # one weight per channel
        coarse = np.maximum((features * gradients).sum(axis=-1), 0.0)
        centres = _cell_centres(cam_tensor)
        # Without a derivable geometry the map is stretched over the whole input.
        full = _resize_bilinear(coarse, *display_shape) if centres is None else _resample(coarse, *display_shape, centres)
        grad_cam = GradCam(cam_layer.name, _normalise(full), coarse, classes, score_source, method, reason, centres)
    saliency = Saliency(_normalise(np.abs(_channels_last(input_gradient)).max(axis=-1)), classes)
    first_input = None if first_conv is None else outputs[index[id(graph.inputs_of[first_conv.name])]]
    return probabilities, classes, activations, grad_cam, saliency, (first_conv, first_input)


def _normalise(maps: np.ndarray) -> np.ndarray:
    """Divide each map by its maximum (all-zero maps stay zero)."""
    peak = maps.reshape(len(maps), -1).max(axis=1).reshape(-1, *([1] * (maps.ndim - 1)))
    return np.where(peak > 0, maps / np.where(peak > 0, peak, 1), 0.0).astype(np.float32)


def _resize_bilinear(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear stretch of (N, h, w) maps over the whole image, half-pixel centres (as keras.ops.image.resize).

    The stretch puts cell i at pixel (i + 0.5) * H / h - 0.5: the receptive-field
    centre of a 'same' layer with stride H / h, but not of a 'valid' one (24 cells
    of a 28-pixel input would land up to 2 pixels off at the edges).
    """
    row_stride, column_stride = height / maps.shape[1], width / maps.shape[2]
    return _resample(maps, height, width, ((row_stride, (row_stride - 1) / 2), (column_stride, (column_stride - 1) / 2)))


def _resample(maps: np.ndarray, height: int, width: int, centres: tuple) -> np.ndarray:
    """Bilinear resampling of (N, h, w) maps onto the input grid, cell i at pixel stride * i + offset.

    ``centres`` is ((stride, offset) of rows, (stride, offset) of columns), as
    ``_cell_centres`` derives it. Pixels beyond the outermost cell centres
    (the 2-pixel frame of a 28x28 input under two 'valid' 3x3 convolutions)
    take the value of the nearest edge cell: they lie inside that cell's
    receptive field and no other cell is nearer, so it is the best estimate the
    map holds. A zero there would claim the network ignores the frame, which
    no number in the map says (and would push mass into any centred box).
    """

    def axis_weights(source: int, target: int, stride: float, offset: float):
        position = np.clip((np.arange(target) - offset) / stride, 0, source - 1)
        low = np.floor(position).astype(int)
        return low, np.minimum(low + 1, source - 1), position - low

    (row_stride, row_offset), (column_stride, column_offset) = centres
    top, bottom, row_fraction = axis_weights(maps.shape[1], height, row_stride, row_offset)
    left, right, column_fraction = axis_weights(maps.shape[2], width, column_stride, column_offset)
    rows = maps[:, top] * (1 - row_fraction)[:, None] + maps[:, bottom] * row_fraction[:, None]
    return rows[:, :, left] * (1 - column_fraction) + rows[:, :, right] * column_fraction


def _producer(tensor):
    """The operation that made a symbolic tensor and its inputs; (None, []) for the model's input."""
    history = getattr(tensor, "_keras_history", None)
    if history is None or isinstance(history[0], keras.layers.InputLayer):
        return None, []
    operation, node_index, _ = history
    return operation, list(operation._inbound_nodes[node_index].input_tensors)


def _spatial_size(tensor) -> tuple | None:
    """(height, width) of a 4-D tensor per ``keras.config.image_data_format()``; None otherwise."""
    if len(tensor.shape) != 4:
        return None
    return tuple(tensor.shape[2:]) if keras.config.image_data_format() == "channels_first" else tuple(tensor.shape[1:3])


def _cell_centres(tensor) -> tuple | None:
    """Where each cell of a feature map sits on the input: ((stride, offset) rows, (stride, offset) columns).

    Cell i is centred on input pixel ``stride * i + offset`` (pixel centres at
    integers). Composed layer by layer from the input: a window of k pixels with
    dilation d, moved s pixels at a time over an input with p zeros added before
    it, centres output cell i on position s * i - p + d (k - 1) / 2 of its input
    (cnn_2conv's conv2 after conv1, both 3x3 'valid': stride 1, offset 2, so its
    24 cells cover pixels 2..25 of 28). Layers that keep the spatial size without
    a window (activations, normalisation, dropout, Add, Concatenate) keep the
    geometry; the inputs of a merge must agree.

    Returns:
        The pair, or None where the geometry cannot be derived (transposed
        convolution, upsampling, resizing, reshaping, a nested model, merged
        branches that disagree, unknown sizes): the caller then stretches the map.
    """
    known = {}

    def centres(tensor):
        if id(tensor) not in known:
            known[id(tensor)] = _centres_after(tensor, centres)
        return known[id(tensor)]

    return centres(tensor)


def _centres_after(tensor, centres) -> tuple | None:
    """One step of ``_cell_centres``: the geometry of ``tensor`` from that of its producer's inputs."""
    operation, inputs = _producer(tensor)
    if operation is None:
        return ((1.0, 0.0), (1.0, 0.0))  # the input image itself
    size = _spatial_size(tensor)
    if size is None or None in size or isinstance(operation, (keras.Model, keras.layers.Conv2DTranspose)):
        return None
    window = getattr(operation, "kernel_size", None) or getattr(operation, "pool_size", None)
    if window is not None and getattr(operation, "padding", None) in ("valid", "same") and hasattr(operation, "strides"):
        source = inputs[0]
        before, source_size = centres(source), _spatial_size(source)
        if before is None or source_size is None or None in source_size:
            return None
        dilation = getattr(operation, "dilation_rate", (1, 1))
        steps = []
        for (stride, offset), length, kernel, step, spacing in zip(before, source_size, window, operation.strides, dilation):
            span = spacing * (kernel - 1) + 1  # pixels the dilated window covers
            padded = _same_padding(length, span, step)[0] if operation.padding == "same" else 0
            steps.append((stride * step, offset + stride * (spacing * (kernel - 1) / 2 - padded)))
        return tuple(steps)
    if isinstance(operation, (keras.layers.ZeroPadding2D, keras.layers.Cropping2D)):
        before = centres(inputs[0])
        if before is None:
            return None
        # Output cell i is input cell i - top (padding) or i + top (cropping).
        shifts = [-side[0] for side in operation.padding] if isinstance(operation, keras.layers.ZeroPadding2D) else [
            side[0] for side in operation.cropping
        ]
        return tuple((stride, offset + stride * shift) for (stride, offset), shift in zip(before, shifts))
    # A layer without a window: only size-keeping ones (activation, dropout, Add, ...) are understood.
    same_size = [item for item in inputs if _spatial_size(item) == size]
    if not same_size or any(_spatial_size(item) not in (size, (1, 1), None) for item in inputs):
        return None
    found = [centres(item) for item in same_size]
    if any(item is None for item in found) or any(not np.allclose(item, found[0]) for item in found):
        return None
    return found[0]


def _operations_between(start, end) -> list:
    """Every operation on a path from tensor ``start`` to tensor ``end`` (``end``'s producer included)."""
    reaches, on_path = {}, []

    def visit(tensor) -> bool:
        if tensor is start:
            return True
        if id(tensor) not in reaches:
            operation, inputs = _producer(tensor)
            reaches[id(tensor)] = any([visit(item) for item in inputs])  # a list: visit every branch
            if reaches[id(tensor)]:
                on_path.append(operation)
        return reaches[id(tensor)]

    visit(end)
    return on_path


def _keeps_positions(operation) -> bool:
    """Flatten (or a reshape) hands each spatial position its own weights downstream."""
    if isinstance(operation, keras.Model):
        return any(_keeps_positions(layer) for layer in _all_layers(operation))
    return isinstance(operation, (keras.layers.Flatten, keras.layers.Reshape))


def _resolve_cam_method(method: str, cam_layer, cam_tensor, score_tensor) -> tuple[str, str]:
    """The method ``auto`` stands for on this model, and why."""
    if method != "auto":
        return method, f"{method}, as asked"
    flatten = next((item for item in _operations_between(cam_tensor, score_tensor) if _keeps_positions(item)), None)
    if flatten is not None:
        return "hirescam", f"auto: {flatten.name} after {cam_layer.name} gives each position its own weights"
    return "gradcam", f"auto: no Flatten after {cam_layer.name}"


def compute_activations(model, images: np.ndarray, layers: list[str] | None = None) -> list[LayerActivation]:
    """Outputs of the chosen layers (default: conv, pooling, activations) from one run of the network.

    Args:
        model: a Keras model (a never-called Sequential is fine).
        images: preprocessed batch.
        layers: layer names, or None for every conv, pooling and activation layer
            and every layer with a non-linear activation.

    Returns:
        One ``LayerActivation`` per layer, values channels-last.

    Example:
        >>> [a.values.shape for a in compute_activations(model, x[:2], ["conv2d"])]
        [(2, 26, 26, 32)]
    """
    images = np.asarray(images, np.float32)
    return _run_network(_layer_graph(model, tuple(images.shape[1:])), images, layers, None, None)[2]


def compute_grad_cam(model, images: np.ndarray, class_index=None, layer: str | None = None, method: str = "auto") -> GradCam | None:
    """Class-activation heatmaps (Grad-CAM or HiResCAM) for the predicted (or chosen) class.

    Both read the chosen layer's feature maps A (h, w, K) and the gradient G of
    the class score with respect to them; the score is the pre-softmax logit
    where the model ends in softmax.

    * Grad-CAM (Selvaraju et al. 2017): ReLU(sum_k mean_ij(G_k) A_k), one weight per channel.
    * HiResCAM (Draelos & Carin 2020): ReLU(sum_k G_k * A_k), the element-wise product.
      Behind global average pooling G_k is the same at every position, so the two
      maps are identical; behind Flatten -> Dense every position has its own
      weights, and averaging them away can make Grad-CAM point at the wrong place,
      or nowhere: when every channel-weighted sum is negative the ReLU leaves an
      all-zero map. HiResCAM's cells sum to the first-order contribution of the
      layer to the score, so they keep where the evidence is.
    * "auto" (the default) is HiResCAM when a Flatten (or Reshape) lies between the
      layer and the score, Grad-CAM otherwise (identical behind global average
      pooling). Measured by ``bench/gradcam_mass.py`` on cnn_2conv (conv2 -> pool ->
      Flatten -> Dense), 2 epochs on MNIST, first 100 test images, share of the
      heatmap's mass inside the digit's bounding box, all-zero maps counted as 0:
      HiResCAM 0.886 (no all-zero map), Grad-CAM 0.711 (11 all-zero maps, 10 of
      them 9s); a uniform map would score 0.383. On mnist_convnet (1 epoch) the
      same: HiResCAM 0.843, Grad-CAM 0.583 (11 all-zero maps).

    The coarse map is resampled to the input with each cell at its receptive-field
    centre (``GradCam.cell_centres``), or stretched over the input where the
    layers' geometry cannot be derived, then divided by its maximum. An all-zero
    map stays all zero.

    Args:
        model: a Keras classifier.
        images: preprocessed batch.
        class_index: class to explain (int or one per image); None means the predicted class.
        layer: layer name; None means the last convolutional layer.
        method: "auto", "gradcam" or "hirescam".

    Returns:
        ``GradCam`` (its ``method`` says what was computed), or None when no layer
        has a spatial output (an MLP).

    Example:
        >>> cam = compute_grad_cam(model, x[:2])
        >>> cam.heatmaps.shape, cam.method
        ((2, 28, 28), 'hirescam')
    """
    images = np.asarray(images, np.float32)
    return _run_network(_layer_graph(model, tuple(images.shape[1:])), images, [], layer, class_index, method)[3]


def compute_saliency(model, images: np.ndarray, class_index=None) -> Saliency:
    """Vanilla-gradient saliency: |d score / d input|, max over channels, per image scaled to [0, 1].

    Args:
        model: a Keras classifier.
        images: preprocessed batch.
        class_index: class to explain; None means the predicted class.

    Returns:
        ``Saliency`` with (N, H, W) maps.

    Example:
        >>> compute_saliency(model, x[:2]).maps.max()
        1.0
    """
    images = np.asarray(images, np.float32)
    return _run_network(_layer_graph(model, tuple(images.shape[1:])), images, [], None, class_index)[4]


# ---------------------------------------------------------------- classic kernels


CLASSIC_KERNELS = {
    # Written for true convolution (kernel flipped), as in image-processing texts:
    # Sobel x is positive where brightness grows to the right.
    "Sobel x": np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float32),
    "Sobel y": np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], np.float32),
    "Laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32),
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32),
    "box blur": np.full((3, 3), 1 / 9, np.float32),
}


def convolve2d(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """True 2-D convolution, output the size of ``image``, symmetric (mirror) boundary.

    Equals ``scipy.signal.convolve2d(image, kernel, boundary='symm', mode='same')``.

    Args:
        image: (H, W) array.
        kernel: (kh, kw) array.

    Returns:
        (H, W) float64 array.

    Example:
        >>> convolve2d(np.eye(4), CLASSIC_KERNELS["box blur"]).shape
        (4, 4)
    """
    image, kernel = np.asarray(image, np.float64), np.asarray(kernel, np.float64)
    kernel_height, kernel_width = kernel.shape
    # 'same' keeps the centre of the full convolution: (k - 1) // 2 cells from its start.
    top, left = (kernel_height - 1) // 2, (kernel_width - 1) // 2
    padded = np.pad(image, ((kernel_height - 1 - top, top), (kernel_width - 1 - left, left)), mode="symmetric")
    windows = np.lib.stride_tricks.sliding_window_view(padded, kernel.shape)
    return np.einsum("ijkl,kl->ij", windows, kernel[::-1, ::-1])


def grayscale(image: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of an (H, W, 3) image: 0.299 R + 0.587 G + 0.114 B (other channel counts: the mean)."""
    image = np.asarray(image, np.float32)
    if image.ndim == 2:
        return image
    if image.shape[-1] == 3:
        return image @ np.array([0.299, 0.587, 0.114], np.float32)
    return image.mean(axis=-1)


def compute_classic_kernels(
    display_image_uint8: np.ndarray, num_random_kernels: int = 4, seed: int = 0, image_index: int = 0
) -> ClassicKernels:
    """Sobel x/y, Laplacian, sharpen, box blur and seeded random 3x3 kernels on one image.

    Args:
        display_image_uint8: (H, W, C) uint8 image as people see it.
        num_random_kernels: how many random kernels (normal, rounded to 0.1) to add.
        seed: seed of the random kernels.
        image_index: which of the inspected images this is (for titles).

    Returns:
        ``ClassicKernels`` without learned filters (``inspect`` adds them).

    Example:
        >>> [r.name for r in compute_classic_kernels(image, 1).classic]
        ['Sobel x', 'Sobel y', 'Laplacian', 'sharpen', 'box blur', 'random 1']
    """
    image = np.asarray(display_image_uint8)
    gray = grayscale(image.astype(np.float32) / 255.0)
    rng = np.random.default_rng(seed)
    kernels = dict(CLASSIC_KERNELS)
    for number in range(1, num_random_kernels + 1):
        kernels[f"random {number}"] = np.round(rng.normal(size=(3, 3)), 1).astype(np.float32)
    classic = [KernelResponse(name, kernel, convolve2d(gray, kernel).astype(np.float32)) for name, kernel in kernels.items()]
    channels = None
    if image.ndim == 3 and image.shape[-1] == 3:
        channels = {name: image[..., position] for position, name in enumerate("RGB")}
    return ClassicKernels(image_index, gray, classic, channels, None)


def _learned_responses(first_conv, first_input: np.ndarray, image_index: int) -> list[KernelResponse]:
    """The first convolution's pre-activation output on one image, one response per filter."""
    image = first_input[image_index : image_index + 1]
    response = first_conv.convolution_op(keras.ops.convert_to_tensor(image), first_conv.kernel)
    response = _channels_last(keras.ops.convert_to_numpy(response))[0]
    if first_conv.use_bias:
        response = response + keras.ops.convert_to_numpy(first_conv.bias)
    kernels = keras.ops.convert_to_numpy(first_conv.kernel)  # (kh, kw, in_channels, filters)
    if kernels.shape[2] == 1:
        kernels = kernels[:, :, 0]  # grayscale input: each filter is one (kh, kw) matrix
    return [
        KernelResponse(f"{first_conv.name} filter {channel}", kernels[..., channel], response[..., channel])
        for channel in range(response.shape[-1])
    ]


def compute_pixel_grid(display_image_uint8: np.ndarray, image_index: int = 0, max_size: int = 32) -> PixelGrid:
    """Integer pixel values 0-255 (grayscale for colour images), centre-cropped to ``max_size``.

    Args:
        display_image_uint8: (H, W, C) uint8 image.
        image_index: which of the inspected images this is.
        max_size: largest side shown; numbers stop being readable beyond ~32.

    Returns:
        ``PixelGrid``.

    Example:
        >>> compute_pixel_grid(mnist_digit).values.shape
        (28, 28)
    """
    image = np.asarray(display_image_uint8)
    if image.ndim == 3 and image.shape[-1] == 1:
        values, description = image[..., 0], "pixel values 0-255"
    elif image.ndim == 3:
        values, description = np.round(grayscale(image)).astype(np.uint8), "grayscale 0.299R + 0.587G + 0.114B, 0-255"
    else:
        values, description = image, "pixel values 0-255"
    top = max(0, (values.shape[0] - max_size) // 2)
    left = max(0, (values.shape[1] - max_size) // 2)
    crop = values[top : top + max_size, left : left + max_size]
    if crop.shape != values.shape:
        description += f", centre {crop.shape[0]}x{crop.shape[1]} of {values.shape[0]}x{values.shape[1]}"
    return PixelGrid(image_index, crop.astype(np.uint8), (top, left), description)


# ---------------------------------------------------------------- worked examples


def _term(value) -> str:
    return f"({value})" if value < 0 else f"{value}"


def _same_padding(size: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """Keras 'same': output ceil(n / s); the odd extra zero goes bottom/right."""
    total = max((-(-size // stride) - 1) * stride + kernel_size - size, 0)
    return total // 2, total - total // 2


def compute_worked_convolution(
    stride: int = 1, padding: str = "valid", size: int = 5, kernel_size: int = 3, seed: int = 0
) -> WorkedConvolution:
    """A small integer convolution worked by hand, as keras.layers.Conv2D computes it.

    Args:
        stride: step of the window, in pixels.
        padding: "valid" (no padding) or "same" (zeros so the output is ceil(n / stride)).
        size: side of the square input.
        kernel_size: side of the square kernel.
        seed: seed of the small integers (input 0..3, kernel -1..1).

    Returns:
        ``WorkedConvolution`` with every output cell's sum spelled out.

    Example:
        >>> compute_worked_convolution().sums[0][0]
        '3*1 + 2*0 + 2*(-1) + 0*1 + 0*1 + 0*1 + 2*(-1) + 3*(-1) + 2*1 = -2'
    """
    if padding not in ("valid", "same"):
        raise ConvscopeError(f"padding {padding!r} is not one Keras knows; use 'valid' or 'same'")
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 4, size=(size, size))
    kernel = rng.integers(-1, 2, size=(kernel_size, kernel_size))
    before, after = _same_padding(size, kernel_size, stride) if padding == "same" else (0, 0)
    padded = np.pad(image, ((before, after), (before, after)))
    output_size = (padded.shape[0] - kernel_size) // stride + 1
    output = np.zeros((output_size, output_size), dtype=np.int64)
    sums = []
    for row in range(output_size):
        sums.append([])
        for column in range(output_size):
            window = padded[row * stride : row * stride + kernel_size, column * stride : column * stride + kernel_size]
            output[row, column] = int((window * kernel).sum())
            terms = " + ".join(f"{_term(a)}*{_term(b)}" for a, b in zip(window.ravel(), kernel.ravel()))
            sums[-1].append(f"{terms} = {output[row, column]}")
    # Cross-correlation is convolution with the flipped kernel; the centre of a
    # 'same' convolution of the padded input is untouched by its boundary rule.
    half, valid = kernel_size // 2, padded.shape[0] - kernel_size + 1
    check = convolve2d(padded, kernel[::-1, ::-1])[half : half + valid, half : half + valid]
    assert np.array_equal(output, np.round(check[::stride, ::stride]).astype(np.int64)), "worked example disagrees with convolve2d"
    return WorkedConvolution(image, kernel, stride, padding, padded, before, output, sums, OPERATION_NAME)


def compute_worked_pooling(seed: int = 0) -> WorkedPooling:
    """2x2 max-pooling with stride 2 on a 4x4 integer input, each window listed.

    Example:
        >>> compute_worked_pooling().windows[0][0]
        'max(8, 6, 3, 0) = 8'
    """
    image = np.random.default_rng(seed).integers(0, 10, size=(4, 4))
    output = image.reshape(2, 2, 2, 2).max(axis=(1, 3))
    windows = [
        [f"max({', '.join(str(v) for v in image[2 * r : 2 * r + 2, 2 * c : 2 * c + 2].ravel())}) = {output[r, c]}" for c in range(2)]
        for r in range(2)
    ]
    return WorkedPooling(image, output, windows)


def _output_size(label: str, size: int, kernel_size: int, stride: int, padding: str) -> OutputSize:
    total = sum(_same_padding(size, kernel_size, stride)) if padding == "same" else 0
    result = (size + total - kernel_size) // stride + 1
    text = f"{label}: ⌊({size} + {total} - {kernel_size}) / {stride}⌋ + 1 = {result}"
    return OutputSize(label, size, kernel_size, stride, total, result, text)


def compute_output_sizes(model=None, input_shape: tuple | None = None, size: int = 5, kernel_size: int = 3) -> list[OutputSize]:
    """The output-size formula floor((n + 2p - k) / s) + 1 for the worked example and the model's layers.

    Args:
        model: optional Keras model; its Conv2D and pooling layers are added (height axis).
        input_shape: one image's shape, needed with ``model``.
        size: n of the worked examples.
        kernel_size: k of the worked examples.

    Returns:
        One ``OutputSize`` per case; each equals what Keras computes.

    Example:
        >>> [row.output_size for row in compute_output_sizes()]
        [3, 5, 2, 3]
    """
    rows = [
        _output_size(f"{size}x{size}, {kernel_size}x{kernel_size}, stride {stride}, '{padding}'", size, kernel_size, stride, padding)
        for stride in (1, 2)
        for padding in ("valid", "same")
    ]
    if model is not None:
        rows += _layer_output_sizes(_layer_graph(model, tuple(input_shape)))
    return rows


def _layer_output_sizes(graph: _LayerGraph) -> list[OutputSize]:
    rows = []
    height_axis = 2 if keras.config.image_data_format() == "channels_first" else 1
    for layer in graph.layers:
        window = getattr(layer, "kernel_size", None) or getattr(layer, "pool_size", None)
        if window is None or len(graph.inputs_of[layer.name].shape) != 4 or not hasattr(layer, "padding"):
            continue
        size_in = graph.inputs_of[layer.name].shape[height_axis]
        row = _output_size(layer.name, size_in, window[0], layer.strides[0], layer.padding)
        assert row.output_size == graph.outputs_of[layer.name].shape[height_axis] or getattr(layer, "dilation_rate", (1,))[0] != 1
        rows.append(row)
    return rows


# ---------------------------------------------------------------- everything at once


def _display_uint8(images: np.ndarray) -> np.ndarray:
    """Preprocessed inputs back to (N, H, W, C) uint8 (min-max per image unless already in [0, 1])."""
    images = _channels_last(np.asarray(images, np.float32))
    shown = [display_image(image) for image in images]
    shown = np.stack([image[..., None] if image.ndim == 2 else image for image in shown])
    return np.round(shown * 255).astype(np.uint8)


def inspect(
    model,
    images: np.ndarray,
    layers: list[str] | None = None,
    class_index=None,
    grad_cam_layer: str | None = None,
    num_random_kernels: int = 4,
    seed: int = 0,
    display_images: np.ndarray | None = None,
    image_labels: list[str] | None = None,
    grad_cam_method: str = "auto",
) -> InspectionResult:
    """Compute every inspection number for a few images.

    Args:
        model: any single-input Keras classifier (zoo, YAML, functional, never-called Sequential).
        images: preprocessed model inputs, (N, H, W, C) or per ``keras.config.image_data_format()``.
        layers: layer names whose activations to keep; None means every conv, pooling and
            activation layer and every layer with a non-linear activation.
        class_index: class Grad-CAM and saliency explain (int or one per image); None: predicted.
        grad_cam_layer: layer name for Grad-CAM; None: the last convolutional layer.
        num_random_kernels: random 3x3 kernels shown beside the classic ones.
        seed: seed of the random kernels and worked examples.
        display_images: the same images as people see them, (N, H, W, C) uint8
            (``Dataset.display_images``); None rescales ``images`` to 0-255.
        image_labels: names of the images in figure titles, e.g. ["test image 0", "test image 42"];
            None: "image 0", "image 1", ...
        grad_cam_method: "auto", "gradcam" or "hirescam"; see ``compute_grad_cam``.

    Returns:
        ``InspectionResult``.

    Example:
        >>> result = inspect(model, data.x_test[:2])
        >>> result.grad_cam.heatmaps.shape, len(result.activations)
        ((2, 28, 28), 5)
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or len(images) == 0:
        raise ConvscopeError(f"images have shape {images.shape}; expected a non-empty batch (N, H, W, C) of preprocessed images")
    input_shape = tuple(images.shape[1:])
    shown = _display_uint8(images) if display_images is None else np.asarray(display_images)
    if shown.dtype != np.uint8 or shown.shape[:3] != _channels_last(images).shape[:3]:
        raise ConvscopeError(
            f"display_images have shape {shown.shape} and dtype {shown.dtype}; expected uint8 {_channels_last(images).shape[:3]} + (C,), "
            "e.g. Dataset.display_images(images)"
        )
    labels = [f"image {index}" for index in range(len(images))] if image_labels is None else [str(label) for label in image_labels]
    if len(labels) != len(images):
        raise ConvscopeError(f"got {len(labels)} image_labels for {len(images)} images; pass one label per image")
    graph = _layer_graph(model, input_shape)
    probabilities, classes, activations, grad_cam, saliency, (first_conv, first_input) = _run_network(
        graph, images, layers, grad_cam_layer, class_index, grad_cam_method
    )
    classic = compute_classic_kernels(shown[0], num_random_kernels, seed, image_index=0)
    if first_conv is not None:
        classic.learned_layer_name = first_conv.name
        classic.learned = _learned_responses(first_conv, first_input, 0)
    return InspectionResult(
        model_name=model.name,
        images=images,
        display_images=shown,
        image_labels=labels,
        probabilities=probabilities,
        predicted_classes=probabilities.argmax(axis=1),
        layers=_layer_table(graph),
        filters=_first_filters(model),
        dense_weights=_dense_weights(graph, input_shape),
        activations=activations,
        grad_cam=grad_cam,
        saliency=saliency,
        classic_kernels=classic,
        pixel_grid=compute_pixel_grid(shown[0], 0),
        worked_convolution=compute_worked_convolution(seed=seed),
        worked_pooling=compute_worked_pooling(seed),
        output_sizes=compute_output_sizes() + _layer_output_sizes(graph),
    )
