"""Look inside a network: filters, activations, Grad-CAM, saliency, classic kernels.

Compute only (arrays and small dataclasses); ``convscope.plots.inspection`` and
``convscope.plots.teaching`` draw them.

    from convscope.inspection import inspect
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

Modules: ``graph`` (the layer tensors a model runs), ``attribution``
(activations, Grad-CAM, saliency), ``geometry`` (receptive fields, output
sizes), ``weights`` (filters, Dense weights), ``teaching`` (classic kernels and
your own, pixel grid, worked examples on seeded or your own matrices; no model
needed). ``convscope.inspect_image`` applies all of it to any image file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convscope.display import display_uint8
from convscope.errors import ConvscopeError
from convscope.inspection.attribution import (
    GRAD_CAM_METHODS,
    GradCam,
    LayerActivation,
    Saliency,
    compute_activations,
    compute_grad_cam,
    compute_saliency,
    run_network,
)
from convscope.inspection.geometry import compute_output_sizes, layer_output_sizes
from convscope.inspection.graph import layer_graph
from convscope.inspection.teaching import (
    CLASSIC_KERNELS,
    ClassicKernels,
    KernelResponse,
    PixelGrid,
    WorkedConvolution,
    WorkedPooling,
    check_matrix,
    compute_classic_kernels,
    compute_pixel_grid,
    compute_worked_convolution,
    compute_worked_pooling,
    convolve2d,
    downsample,
    grayscale,
    parse_kernel,
    worked_output_sizes,
)
from convscope.inspection.weights import (
    DenseWeightImages,
    FirstLayerFilters,
    compute_dense_weights,
    compute_first_filters,
    dense_weights,
    first_filters,
    learned_responses,
)
from convscope.keras_compat import to_channels_last

__all__ = [
    "CLASSIC_KERNELS",
    "GRAD_CAM_METHODS",
    "ClassicKernels",
    "DenseWeightImages",
    "FirstLayerFilters",
    "GradCam",
    "InspectionResult",
    "KernelResponse",
    "LayerActivation",
    "PixelGrid",
    "Saliency",
    "WorkedConvolution",
    "WorkedPooling",
    "check_matrix",
    "compute_activations",
    "compute_classic_kernels",
    "compute_dense_weights",
    "compute_first_filters",
    "compute_grad_cam",
    "compute_output_sizes",
    "compute_pixel_grid",
    "compute_saliency",
    "compute_worked_convolution",
    "compute_worked_pooling",
    "convolve2d",
    "downsample",
    "grayscale",
    "inspect",
    "parse_kernel",
]


@dataclass
class InspectionResult:
    """Everything ``inspect`` computed for one model and a few images."""

    model_name: str
    images: np.ndarray  # model inputs as given
    display_images: np.ndarray  # (N, H, W, C) uint8, channels-last, for figures
    image_labels: list[str]  # how figures name each image, e.g. "test image 42"
    probabilities: np.ndarray  # (N, num_classes)
    predicted_classes: np.ndarray  # (N,)
    filters: FirstLayerFilters | None  # None when the model has no convolution
    dense_weights: DenseWeightImages | None  # None unless Dense follows Flatten on the image
    activations: list[LayerActivation]
    grad_cam: GradCam | None  # None when no layer has a spatial output
    saliency: Saliency
    classic_kernels: ClassicKernels
    pixel_grid: PixelGrid
    worked_convolution: WorkedConvolution
    worked_pooling: WorkedPooling
    output_sizes: list[str]  # the output-size formula, filled in: worked example, then the model's windowed layers


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
    shown = display_uint8(to_channels_last(images)) if display_images is None else np.asarray(display_images)
    if shown.dtype != np.uint8 or shown.shape[:3] != to_channels_last(images).shape[:3]:
        raise ConvscopeError(
            f"display_images have shape {shown.shape} and dtype {shown.dtype}; expected uint8 {to_channels_last(images).shape[:3]} + (C,), "
            "e.g. Dataset.display_images(images)"
        )
    labels = [f"image {index}" for index in range(len(images))] if image_labels is None else [str(label) for label in image_labels]
    if len(labels) != len(images):
        raise ConvscopeError(f"got {len(labels)} image_labels for {len(images)} images; pass one label per image")
    graph = layer_graph(model, input_shape)
    probabilities, classes, activations, grad_cam, saliency, (first_conv, first_input) = run_network(
        graph, images, layers, grad_cam_layer, class_index, grad_cam_method
    )
    classic = compute_classic_kernels(shown[0], num_random_kernels, seed, image_index=0)
    if first_conv is not None:
        classic.learned_layer_name = first_conv.name
        classic.learned = learned_responses(first_conv, first_input, 0)
    return InspectionResult(
        model_name=model.name,
        images=images,
        display_images=shown,
        image_labels=labels,
        probabilities=probabilities,
        predicted_classes=probabilities.argmax(axis=1),
        filters=first_filters(model),
        dense_weights=dense_weights(graph, input_shape),
        activations=activations,
        grad_cam=grad_cam,
        saliency=saliency,
        classic_kernels=classic,
        pixel_grid=compute_pixel_grid(shown[0], 0),
        worked_convolution=compute_worked_convolution(seed=seed),
        worked_pooling=compute_worked_pooling(seed),
        output_sizes=worked_output_sizes() + layer_output_sizes(graph),
    )
