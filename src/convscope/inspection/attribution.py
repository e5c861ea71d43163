"""Attribution: what each layer outputs and which pixels the class score depends on (activations, Grad-CAM, saliency).

    from convscope.inspection.attribution import compute_activations, compute_grad_cam, compute_saliency
    cam = compute_grad_cam(model, x[:2])
    cam.heatmaps.shape, cam.method        # ((2, 28, 28), 'hirescam') behind Flatten -> Dense
    compute_saliency(model, x[:2]).maps.shape    # (2, 28, 28)
    [a.layer_name for a in compute_activations(model, x[:2])]

All three come from one forward and one backward pass (``run_network``), which
``inspect`` calls once for everything. Arrays come back channels-last.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from convscope.errors import ConvscopeError
from convscope.inspection.geometry import cell_centres, resample, resize_bilinear
from convscope.inspection.graph import (
    LayerGraph,
    all_layers,
    default_activation_layers,
    find_layer,
    first_convolution,
    grad_cam_layer,
    layer_graph,
    score_head,
    shape_of,
)
from convscope.keras_compat import forward_with_gradients, producer, to_channels_last
from convscope.probabilities import to_probabilities

GRAD_CAM_METHODS = ("auto", "gradcam", "hirescam")


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


def run_network(graph: LayerGraph, images: np.ndarray, activation_layers, cam_layer_name, class_index, grad_cam_method="auto"):
    """One forward and one backward pass: activations, predictions, Grad-CAM, saliency."""
    return build_probe(graph, activation_layers, cam_layer_name).run(images, class_index, grad_cam_method)


@dataclass
class NetworkProbe:
    """A multi-output model over the chosen layers, built once and run on any number of batches.

    ``run_network`` builds one per call; a caller that runs the same model again
    and again (the live viewer) keeps one, so Keras builds the graph once.
    """

    graph: LayerGraph
    model: object  # keras.Model from the input to every probed tensor
    index: dict  # id(tensor) -> position among model's outputs
    activation_layers: list
    cam_layer: object  # layer or None
    score_tensor: object
    dense_head: object  # Dense whose softmax is skipped, or None
    score_source: str
    first_conv: object  # first Conv2D or None

    def forward(self, images: np.ndarray):
        """The probed layers' outputs from one forward pass, without gradients.

        Args:
            images: model inputs (N, ...).

        Returns:
            (activations, (first_conv, first_input)), as ``run`` returns them.
        """
        outputs = [keras.ops.convert_to_numpy(output) for output in self.model(images, training=False)]
        return self._activations(outputs), self._first_conv_input(outputs)

    def _activations(self, outputs) -> list:
        return [
            LayerActivation(layer.name, type(layer).__name__, to_channels_last(outputs[self.index[id(self.graph.outputs_of[layer.name])]]))
            for layer in self.activation_layers
        ]

    def _first_conv_input(self, outputs) -> tuple:
        first_input = None if self.first_conv is None else outputs[self.index[id(self.graph.inputs_of[self.first_conv.name])]]
        return self.first_conv, first_input

    def run(self, images: np.ndarray, class_index=None, grad_cam_method: str = "auto"):
        """``run_network``'s results for ``images``: (probabilities, classes, activations, grad_cam, saliency, (first_conv, first_input))."""
        if grad_cam_method not in GRAD_CAM_METHODS:
            raise ConvscopeError(f"Grad-CAM method {grad_cam_method!r} is unknown; use one of: {', '.join(GRAD_CAM_METHODS)}")
        graph, index, score_tensor, dense_head, cam_layer = self.graph, self.index, self.score_tensor, self.dense_head, self.cam_layer
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
        outputs, input_gradient, feature_gradient = forward_with_gradients(self.model, images, score_function, feature_index)

        probabilities = to_probabilities(outputs[index[id(graph.output)]])
        classes = chosen if class_index is not None else probabilities.argmax(axis=1)
        activations = self._activations(outputs)
        display_shape = to_channels_last(images).shape[1:3]
        grad_cam = None
        if cam_layer is not None:
            features = to_channels_last(outputs[feature_index])
            gradients = to_channels_last(feature_gradient)
            cam_tensor = graph.outputs_of[cam_layer.name]
            method, reason = resolve_cam_method(grad_cam_method, cam_layer, cam_tensor, score_tensor)
            if method == "gradcam":
                gradients = gradients.mean(axis=(1, 2), keepdims=True)  # one weight per channel
            coarse = np.maximum((features * gradients).sum(axis=-1), 0.0)
            centres = cell_centres(cam_tensor)
            # Without a derivable geometry the map is stretched over the whole input.
            full = resize_bilinear(coarse, *display_shape) if centres is None else resample(coarse, *display_shape, centres)
            grad_cam = GradCam(cam_layer.name, normalise(full), coarse, classes, self.score_source, method, reason, centres)
        saliency = Saliency(normalise(np.abs(to_channels_last(input_gradient)).max(axis=-1)), classes)
        return probabilities, classes, activations, grad_cam, saliency, self._first_conv_input(outputs)


def build_probe(graph: LayerGraph, activation_layers=None, cam_layer_name: str | None = None) -> NetworkProbe:
    """The multi-output model ``run_network`` runs: every chosen layer's output, the class score, Grad-CAM's layer.

    Args:
        graph: ``layer_graph(model, input_shape)``.
        activation_layers: layer names to probe; None: ``default_activation_layers``.
        cam_layer_name: Grad-CAM's layer; None: the last convolution.
    """
    activation_layers = (
        default_activation_layers(graph) if activation_layers is None else [find_layer(graph, name) for name in activation_layers]
    )
    cam_layer = grad_cam_layer(graph, cam_layer_name)
    score_tensor, dense_head, score_source = score_head(graph)
    if len(graph.output.shape) != 2:
        raise ConvscopeError(
            f"the model outputs shape {shape_of(graph.output)}; inspection expects a classifier with (N, num_classes) outputs"
        )
    probes = [graph.outputs_of[layer.name] for layer in activation_layers] + [graph.output, score_tensor]
    if cam_layer is not None:
        probes.append(graph.outputs_of[cam_layer.name])
    first_conv = first_convolution(graph.layers)
    if first_conv is not None:
        probes.append(graph.inputs_of[first_conv.name])
    unique = list({id(tensor): tensor for tensor in probes}.values())
    index = {id(tensor): position for position, tensor in enumerate(unique)}
    model = keras.Model(graph.input, unique)
    return NetworkProbe(graph, model, index, activation_layers, cam_layer, score_tensor, dense_head, score_source, first_conv)


def normalise(maps: np.ndarray) -> np.ndarray:
    """Divide each map by its maximum (all-zero maps stay zero)."""
    peak = maps.reshape(len(maps), -1).max(axis=1).reshape(-1, *([1] * (maps.ndim - 1)))
    return np.where(peak > 0, maps / np.where(peak > 0, peak, 1), 0.0).astype(np.float32)


def operations_between(start, end) -> list:
    """Every operation on a path from tensor ``start`` to tensor ``end`` (``end``'s producer included)."""
    reaches, on_path = {}, []

    def visit(tensor) -> bool:
        if tensor is start:
            return True
        if id(tensor) not in reaches:
            operation, inputs = producer(tensor)
            reaches[id(tensor)] = any([visit(item) for item in inputs])  # a list: visit every branch
            if reaches[id(tensor)]:
                on_path.append(operation)
        return reaches[id(tensor)]

    visit(end)
    return on_path


def keeps_positions(operation) -> bool:
    """Flatten (or a reshape) hands each spatial position its own weights downstream."""
    if isinstance(operation, keras.Model):
        return any(keeps_positions(layer) for layer in all_layers(operation))
    return isinstance(operation, (keras.layers.Flatten, keras.layers.Reshape))


def resolve_cam_method(method: str, cam_layer, cam_tensor, score_tensor) -> tuple[str, str]:
    """The method ``auto`` stands for on this model, and why."""
    if method != "auto":
        return method, f"{method}, as asked"
    flatten = next((item for item in operations_between(cam_tensor, score_tensor) if keeps_positions(item)), None)
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
    return run_network(layer_graph(model, tuple(images.shape[1:])), images, layers, None, None)[2]


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
    return run_network(layer_graph(model, tuple(images.shape[1:])), images, [], layer, class_index, method)[3]


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
    return run_network(layer_graph(model, tuple(images.shape[1:])), images, [], None, class_index)[4]
