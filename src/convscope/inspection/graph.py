"""The layer graph a model runs: each layer's input and output tensors, and which layers inspection looks at.

    from convscope.inspection.graph import layer_graph, score_head
    graph = layer_graph(model, (28, 28, 1))     # builds a never-called Sequential
    [layer.name for layer in graph.layers]      # top-level layers in call order
    graph.outputs_of["conv1"].shape             # (None, 26, 26, 32)
    score_tensor, dense_head, description = score_head(graph)

Internal to ``convscope.inspection``: the other modules read tensors from here
so the graph is walked once per call. The walk itself (private Keras
attributes) is ``keras_compat.graph_calls``.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from convscope.errors import ConvscopeError
from convscope.keras_compat import graph_calls
from convscope.models import ensure_built

CONVOLUTION_TYPES = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D", "Conv2DTranspose")
ACTIVATION_TYPES = ("Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax")


@dataclass
class LayerGraph:
    """Symbolic tensors of every top-level layer, on one input."""

    input: object
    output: object
    layers: list  # top-level layers in call order, InputLayer excluded
    inputs_of: dict  # layer name -> input tensor (or list of them)
    outputs_of: dict  # layer name -> output tensor


def layer_graph(model, input_shape: tuple) -> LayerGraph:
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
    calls = graph_calls(model)
    layers = [layer for layer in model.layers if layer.name in calls]
    inputs_of = {layer.name: one_or_list(calls[layer.name][0]) for layer in layers}
    outputs_of = {layer.name: one_or_list(calls[layer.name][1]) for layer in layers}
    return LayerGraph(model.inputs[0], model.outputs[0], layers, inputs_of, outputs_of)


def one_or_list(tensors):
    """One tensor as itself, several as a list (a merge layer's inputs)."""
    return tensors[0] if len(tensors) == 1 else list(tensors)


def shape_of(tensor) -> tuple | list:
    """A tensor's shape as a tuple (a list of them for a list of tensors), batch axis None."""
    if isinstance(tensor, (list, tuple)):
        return [shape_of(item) for item in tensor]
    return tuple(tensor.shape)


def find_layer(graph: LayerGraph, name: str):
    """The top-level layer called ``name``; a user error naming every layer when there is none."""
    for layer in graph.layers:
        if layer.name == name:
            return layer
    names = ", ".join(layer.name for layer in graph.layers)
    raise ConvscopeError(f"no layer named {name!r} in the model; choose one of: {names}")


def is_convolution(layer) -> bool:
    """Any 2-D convolution, Keras' own kinds or a subclass of Conv2D."""
    return type(layer).__name__ in CONVOLUTION_TYPES or isinstance(layer, keras.layers.Conv2D)


def first_convolution(layers):
    """The first Conv2D (or subclass) of ``layers``, or None."""
    return next((layer for layer in layers if isinstance(layer, keras.layers.Conv2D)), None)


def all_layers(model):
    """Every layer, nested models' layers included, in order."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)
        elif not isinstance(layer, keras.layers.InputLayer):
            yield layer


def default_activation_layers(graph: LayerGraph) -> list:
    """Conv, pooling and activation layers, and any layer with a non-linear activation."""
    chosen = []
    for layer in graph.layers:
        kind = type(layer).__name__
        activation = getattr(layer, "activation", None)
        nonlinear = activation is not None and getattr(activation, "__name__", "linear") != "linear"
        if is_convolution(layer) or "Pooling" in kind or kind in ACTIVATION_TYPES or nonlinear:
            chosen.append(layer)
    return chosen


def grad_cam_layer(graph: LayerGraph, name: str | None):
    """The chosen layer, else the last convolution, else the last layer with a spatial output."""
    if name is not None:
        layer = find_layer(graph, name)
        if len(graph.outputs_of[layer.name].shape) != 4:
            raise ConvscopeError(
                f"Grad-CAM needs a layer with a spatial (N, H, W, C) output; {name!r} outputs "
                f"{shape_of(graph.outputs_of[layer.name])}; choose a convolutional layer"
            )
        return layer
    spatial = [layer for layer in graph.layers if len(graph.outputs_of[layer.name].shape) == 4]
    convolutions = [layer for layer in spatial if is_convolution(layer)]
    return (convolutions or spatial or [None])[-1]


def score_head(graph: LayerGraph):
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
