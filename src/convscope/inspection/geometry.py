"""Receptive-field geometry: where each cell of a feature map sits on the input, and maps resampled onto it.

    from convscope.inspection.geometry import cell_centres, resample, compute_output_sizes
    centres = cell_centres(graph.outputs_of["conv2"])   # ((1.0, 2.0), (1.0, 2.0)): cell i on pixel i + 2
    full = resample(coarse_maps, 28, 28, centres)       # (N, 28, 28), each cell at its centre
    [text for text in compute_output_sizes(model, (28, 28, 1))][-1]
    # 'pool1: ⌊(26 + 0 - 2) / 2⌋ + 1 = 13'

Geometry is composed layer by layer from the input through the operations the
model runs (``keras_compat.producer``); where it cannot be derived the caller
stretches the map over the whole input (``resize_bilinear``).
"""

from __future__ import annotations

import keras
import numpy as np

from convscope.inspection.graph import LayerGraph, layer_graph
from convscope.inspection.teaching import worked_output_sizes
from convscope.keras_compat import producer, spatial_size
from convscope.models.arithmetic import explain_padded_size, output_size, same_padding


def resize_bilinear(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear stretch of (N, h, w) maps over the whole image, half-pixel centres (as keras.ops.image.resize).

    The stretch puts cell i at pixel (i + 0.5) * H / h - 0.5: the receptive-field
    centre of a 'same' layer with stride H / h, but not of a 'valid' one (24 cells
    of a 28-pixel input would land up to 2 pixels off at the edges).
    """
    row_stride, column_stride = height / maps.shape[1], width / maps.shape[2]
    return resample(maps, height, width, ((row_stride, (row_stride - 1) / 2), (column_stride, (column_stride - 1) / 2)))


def resample(maps: np.ndarray, height: int, width: int, centres: tuple) -> np.ndarray:
    """Bilinear resampling of (N, h, w) maps onto the input grid, cell i at pixel stride * i + offset.

    ``centres`` is ((stride, offset) of rows, (stride, offset) of columns), as
    ``cell_centres`` derives it. Pixels beyond the outermost cell centres
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


def cell_centres(tensor) -> tuple | None:
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
    fields = receptive_fields(tensor)
    return None if fields is None else tuple((stride, offset) for stride, offset, _ in fields)


def receptive_fields(tensor) -> tuple | None:
    """``cell_centres`` plus the side of each cell's receptive field: ((stride, offset, size) rows, (...) columns).

    Cell i sees input pixels ``stride * i + offset ± (size - 1) / 2`` (some of
    them padding outside the image). A window of k pixels with dilation d adds
    d (k - 1) input steps to the field: size_out = size_in + stride_in * d (k - 1)
    (cnn_2conv's conv2: 1 + 2 + 2 = 5 pixels). Where branches merge, the widest
    field is kept. None where ``cell_centres`` is None.

    Example:
        >>> receptive_fields(graph.outputs_of["conv2"])
        ((1.0, 2.0, 5.0), (1.0, 2.0, 5.0))
    """
    known = {}

    def fields(tensor):
        if id(tensor) not in known:
            known[id(tensor)] = _fields_after(tensor, fields)
        return known[id(tensor)]

    return fields(tensor)


def _fields_after(tensor, fields) -> tuple | None:
    """One step of ``receptive_fields``: the geometry of ``tensor`` from that of its producer's inputs."""
    operation, inputs = producer(tensor)
    if operation is None:
        return ((1.0, 0.0, 1.0), (1.0, 0.0, 1.0))  # the input image itself
    size = spatial_size(tensor)
    if size is None or None in size or isinstance(operation, (keras.Model, keras.layers.Conv2DTranspose)):
        return None
    window = getattr(operation, "kernel_size", None) or getattr(operation, "pool_size", None)
    if window is not None and getattr(operation, "padding", None) in ("valid", "same") and hasattr(operation, "strides"):
        source = inputs[0]
        before, source_size = fields(source), spatial_size(source)
        if before is None or source_size is None or None in source_size:
            return None
        dilation = getattr(operation, "dilation_rate", (1, 1))
        steps = []
        for (stride, offset, field), length, kernel, step, spacing in zip(before, source_size, window, operation.strides, dilation):
            padded = same_padding(length, kernel, step, spacing)[0] if operation.padding == "same" else 0
            steps.append((stride * step, offset + stride * (spacing * (kernel - 1) / 2 - padded), field + stride * spacing * (kernel - 1)))
        return tuple(steps)
    if isinstance(operation, (keras.layers.ZeroPadding2D, keras.layers.Cropping2D)):
        before = fields(inputs[0])
        if before is None:
            return None
        # Output cell i is input cell i - top (padding) or i + top (cropping).
        shifts = [-side[0] for side in operation.padding] if isinstance(operation, keras.layers.ZeroPadding2D) else [
            side[0] for side in operation.cropping
        ]
        return tuple((stride, offset + stride * shift, field) for (stride, offset, field), shift in zip(before, shifts))
    # A layer without a window: only size-keeping ones (activation, dropout, Add, ...) are understood.
    same_size = [item for item in inputs if spatial_size(item) == size]
    if not same_size or any(spatial_size(item) not in (size, (1, 1), None) for item in inputs):
        return None
    found = [fields(item) for item in same_size]
    if any(item is None for item in found):
        return None
    centres = [[axis[:2] for axis in item] for item in found]
    if any(not np.allclose(item, centres[0]) for item in centres):
        return None
    return tuple((stride, offset, max(item[axis][2] for item in found)) for axis, (stride, offset, _) in enumerate(found[0]))


def compute_output_sizes(model=None, input_shape: tuple | None = None, size: int = 5, kernel_size: int = 3) -> list[str]:
    """The output-size formula floor((n + 2p - k) / s) + 1 for the worked example and the model's layers.

    Args:
        model: optional Keras model; its Conv2D and pooling layers are added (height axis).
        input_shape: one image's shape, needed with ``model``.
        size: n of the worked examples.
        kernel_size: k of the worked examples.

    Returns:
        One line per case, every number filled in; each result equals what Keras computes.

    Example:
        >>> compute_output_sizes()[0]
        "5x5, 3x3, stride 1, 'valid': ⌊(5 + 0 - 3) / 1⌋ + 1 = 3"
    """
    rows = worked_output_sizes(size, kernel_size)
    if model is not None:
        rows += layer_output_sizes(layer_graph(model, tuple(input_shape)))
    return rows


def layer_output_sizes(graph: LayerGraph) -> list[str]:
    """The formula for every windowed layer (Conv2D, pooling) of the graph, along the height axis."""
    rows = []
    for layer in graph.layers:
        window = getattr(layer, "kernel_size", None) or getattr(layer, "pool_size", None)
        if window is None or len(graph.inputs_of[layer.name].shape) != 4 or not hasattr(layer, "padding"):
            continue
        size_in = spatial_size(graph.inputs_of[layer.name])[0]
        expected = output_size(size_in, window[0], layer.strides[0], layer.padding)
        assert expected == spatial_size(graph.outputs_of[layer.name])[0] or getattr(layer, "dilation_rate", (1,))[0] != 1
        rows.append(explain_padded_size(layer.name, size_in, window[0], layer.strides[0], layer.padding))
    return rows
