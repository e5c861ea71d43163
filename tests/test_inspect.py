"""Contract tests for convscope.inspection: numbers checked against Keras, scipy and closed forms."""

import keras
import numpy as np
import pytest
import scipy.signal

from convscope.errors import ConvscopeError
from convscope.inspection import (
    CLASSIC_KERNELS,
    compute_activations,
    compute_classic_kernels,
    compute_dense_weights,
    compute_first_filters,
    compute_grad_cam,
    compute_output_sizes,
    compute_pixel_grid,
    compute_saliency,
    compute_worked_convolution,
    compute_worked_pooling,
    convolve2d,
    grayscale,
    inspect,
)
from convscope.inspection import attribution
from convscope.inspection.geometry import resize_bilinear
from convscope.inspection.graph import layer_graph, shape_of
from convscope.models import create_model, list_models
from conftest import never_called_sequential, random_images

layers = keras.layers


def functional_with_skip():
    """A user's functional model: a residual connection around the last convolution, logits out."""
    inputs = keras.Input((12, 12, 3))
    first = layers.Conv2D(4, 3, padding="same", activation="relu", name="first")(inputs)
    second = layers.Conv2D(4, 3, padding="same", name="second")(first)
    added = layers.Add(name="add")([first, second])
    pooled = layers.GlobalAveragePooling2D(name="gap")(added)
    outputs = layers.Dense(3, name="logits")(pooled)
    return keras.Model(inputs, outputs, name="user_functional")


def mlp():
    return keras.Sequential([keras.Input((6, 5, 1)), layers.Flatten(), layers.Dense(7, activation="relu"), layers.Dense(4, activation="softmax")])


# ---------------------------------------------------------------- activations


def test_activations_equal_truncated_models_on_functional_model():
    model = functional_with_skip()
    images = random_images(3, (12, 12, 3))
    activations = compute_activations(model, images, ["first", "second", "add", "gap"])
    for activation in activations:
        truncated = keras.Model(model.inputs[0], model.get_layer(activation.layer_name).output)
        np.testing.assert_allclose(activation.values, keras.ops.convert_to_numpy(truncated(images)), rtol=1e-5, atol=1e-6)


def test_activations_of_never_called_sequential_equal_its_layers_applied_in_turn():
    model = never_called_sequential()
    images = random_images(2, (10, 10, 1))
    activations = {item.layer_name: item.values for item in compute_activations(model, images)}
    # Default: conv, pooling, Activation layers and layers with a non-linear activation.
    assert list(activations) == [model.layers[index].name for index in (0, 1, 2, 3, 5)]
    tensor = images
    for layer in model.layers:
        tensor = layer(tensor)
        if layer.name in activations:
            np.testing.assert_allclose(activations[layer.name], keras.ops.convert_to_numpy(tensor), rtol=1e-5, atol=1e-6)
    # The model now has a graph: the usual truncated-model recipe works and agrees.
    truncated = keras.Model(model.inputs[0], model.layers[2].output)
    np.testing.assert_allclose(activations[model.layers[2].name], keras.ops.convert_to_numpy(truncated(images)), rtol=1e-5, atol=1e-6)


def test_model_loaded_from_file_gives_the_same_grad_cam(tmp_path):
    # A Sequential loaded from .keras calls its layers once per rebuild while it is
    # assembled; the layers' first calls are not in the graph the model runs.
    model = never_called_sequential()
    images = random_images(3, (10, 10, 1))
    before = inspect(model, images)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    after = inspect(loaded, images)
    assert after.grad_cam.coarse_heatmaps.max() > 0
    np.testing.assert_allclose(after.grad_cam.coarse_heatmaps, before.grad_cam.coarse_heatmaps, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(after.saliency.maps, before.saliency.maps, rtol=1e-4, atol=1e-6)
    for first, second in zip(before.activations, after.activations):
        np.testing.assert_allclose(second.values, first.values, rtol=1e-5, atol=1e-6)


def test_inspect_runs_the_network_once_for_activations_grad_cam_and_saliency(monkeypatch):
    calls = []
    original = attribution.forward_with_gradients

    def counting(*args, **kwargs):
        calls.append(args[1].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(attribution, "forward_with_gradients", counting)
    result = inspect(never_called_sequential(), random_images(2, (10, 10, 1)))
    assert calls == [(2, 10, 10, 1)]
    assert len(result.activations) == 5 and result.grad_cam is not None and result.saliency.maps.shape == (2, 10, 10)


def test_unknown_layer_name_and_wrong_image_shape_are_user_errors():
    model = functional_with_skip()
    with pytest.raises(ConvscopeError, match="no layer named 'nope'.*first"):
        compute_activations(model, random_images(1, (12, 12, 3)), ["nope"])
    with pytest.raises(ConvscopeError, match="12, 12, 3"):
        inspect(model, random_images(1, (28, 28, 1)))
    with pytest.raises(ConvscopeError, match="class_index 7"):
        compute_grad_cam(model, random_images(1, (12, 12, 3)), class_index=7)
    with pytest.raises(ConvscopeError, match="2 image_labels for 1 images"):
        inspect(model, random_images(1, (12, 12, 3)), image_labels=["a", "b"])
    with pytest.raises(ConvscopeError, match="spatial"):
        compute_grad_cam(model, random_images(1, (12, 12, 3)), layer="gap")


# ---------------------------------------------------------------- Grad-CAM and saliency


def test_grad_cam_of_gap_dense_model_equals_class_activation_map():
    # Through GlobalAveragePooling then Dense, d logit_c / d A_k(i, j) = W[k, c] / (h w):
    # Grad-CAM's channel weights are W[:, c] / (h w), so the map is ReLU(A @ W[:, c]) / (h w).
    inputs = keras.Input((8, 8, 2))
    features = layers.Conv2D(5, 3, padding="same", name="features")(inputs)
    outputs = layers.Dense(4, activation="softmax", name="head")(layers.GlobalAveragePooling2D()(features))
    model = keras.Model(inputs, outputs)
    images = random_images(3, (8, 8, 2))
    cam = compute_grad_cam(model, images, class_index=[0, 2, 3])
    feature_maps = keras.ops.convert_to_numpy(keras.Model(inputs, features)(images))
    kernel = keras.ops.convert_to_numpy(model.get_layer("head").kernel)
    for index, class_index in enumerate([0, 2, 3]):
        expected = np.maximum(feature_maps[index] @ kernel[:, class_index], 0) / 64
        np.testing.assert_allclose(cam.coarse_heatmaps[index], expected, rtol=1e-4, atol=1e-7)
    assert cam.layer_name == "features" and "logit of head" in cam.score_source
    assert cam.heatmaps.shape == (3, 8, 8)
    assert np.all(cam.heatmaps >= 0) and np.all(cam.heatmaps <= 1)
    assert np.allclose(cam.heatmaps.reshape(3, -1).max(axis=1)[cam.coarse_heatmaps.reshape(3, -1).max(axis=1) > 0], 1.0)


def test_grad_cam_explains_the_predicted_class_by_default():
    model = functional_with_skip()
    images = random_images(4, (12, 12, 3))
    cam = compute_grad_cam(model, images)
    predicted = keras.ops.convert_to_numpy(model(images)).argmax(axis=1)
    np.testing.assert_array_equal(cam.class_indices, predicted)
    assert cam.layer_name == "second"  # the last convolution, inside the residual block
    assert cam.score_source == "model output (logits)"


def flatten_dense_model():
    """A 'valid' convolution read by Flatten -> Dense: every position has its own weights."""
    inputs = keras.Input((6, 6, 1))
    features = layers.Conv2D(3, 3, name="features")(inputs)
    outputs = layers.Dense(4, activation="softmax", name="head")(layers.Flatten()(features))
    return keras.Model(inputs, outputs), keras.Model(inputs, features)


def test_hirescam_of_flatten_dense_model_is_gradient_times_features():
    # logit_c = sum_ijk A[i, j, k] W[(i, j, k), c] + b: d logit_c / d A = W[:, c] as a (4, 4, 3) map.
    model, feature_model = flatten_dense_model()
    images = random_images(3, (6, 6, 1), seed=4)
    classes = [0, 1, 3]
    feature_maps = keras.ops.convert_to_numpy(feature_model(images))
    kernel = keras.ops.convert_to_numpy(model.get_layer("head").kernel)
    hires = compute_grad_cam(model, images, class_index=classes, method="hirescam")
    grad_cam = compute_grad_cam(model, images, class_index=classes, method="gradcam")
    for index, class_index in enumerate(classes):
        gradient = kernel[:, class_index].reshape(4, 4, 3)
        expected_hires = np.maximum((gradient * feature_maps[index]).sum(axis=-1), 0)
        expected_grad_cam = np.maximum(feature_maps[index] @ gradient.mean(axis=(0, 1)), 0)
        np.testing.assert_allclose(hires.coarse_heatmaps[index], expected_hires, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(grad_cam.coarse_heatmaps[index], expected_grad_cam, rtol=1e-4, atol=1e-6)
    assert (hires.method, grad_cam.method) == ("hirescam", "gradcam")
    assert not np.allclose(hires.coarse_heatmaps, grad_cam.coarse_heatmaps)  # the averaging matters here
    # Behind Flatten the default is HiResCAM, and says why.
    default = compute_grad_cam(model, images, class_index=classes)
    assert default.method == "hirescam" and "flatten" in default.method_reason
    np.testing.assert_array_equal(default.heatmaps, hires.heatmaps)


def test_hirescam_equals_grad_cam_behind_global_average_pooling():
    # Through GlobalAveragePooling the gradient is W[k, c] / (h w) at every position,
    # so the element-wise product and the spatial-mean weights give the same map.
    model = functional_with_skip()
    images = random_images(4, (12, 12, 3), seed=5)
    hires = compute_grad_cam(model, images, class_index=[0, 1, 2, 1], method="hirescam")
    grad_cam = compute_grad_cam(model, images, class_index=[0, 1, 2, 1], method="gradcam")
    assert grad_cam.coarse_heatmaps.max() > 0
    # Equal up to float32 rounding of two orders of summation (~1e-5 of the peak).
    np.testing.assert_allclose(hires.coarse_heatmaps, grad_cam.coarse_heatmaps, atol=1e-4 * grad_cam.coarse_heatmaps.max())
    np.testing.assert_allclose(hires.heatmaps, grad_cam.heatmaps, atol=1e-4)
    default = compute_grad_cam(model, images)
    assert default.method == "gradcam" and "no Flatten" in default.method_reason


def test_all_zero_heatmap_stays_zero():
    # Non-negative features and negative weights for class 0: every product is negative.
    model, _ = flatten_dense_model()
    model.get_layer("features").activation = keras.activations.relu
    head = model.get_layer("head")
    kernel = keras.ops.convert_to_numpy(head.kernel)
    kernel[:, 0] = -np.abs(kernel[:, 0]) - 0.01
    head.kernel.assign(kernel)
    for method in ("gradcam", "hirescam"):
        cam = compute_grad_cam(model, random_images(2, (6, 6, 1)), class_index=0, method=method)
        assert cam.coarse_heatmaps.max() == 0 and cam.heatmaps.max() == 0 and np.all(np.isfinite(cam.heatmaps))


def test_unknown_cam_method_is_a_user_error():
    model, _ = flatten_dense_model()
    with pytest.raises(ConvscopeError, match=r"'gradcam\+\+' is unknown.*auto, gradcam, hirescam"):
        compute_grad_cam(model, random_images(1, (6, 6, 1)), method="gradcam++")
    result = inspect(model, random_images(1, (6, 6, 1)), grad_cam_method="gradcam")
    assert result.grad_cam.method == "gradcam" and result.grad_cam.method_reason == "gradcam, as asked"


def one_hot_image(shape, row, column):
    image = np.zeros((1, *shape), np.float32)
    image[0, row, column] = 1.0
    return image


def test_heatmap_of_valid_convolutions_lands_on_the_bright_pixel():
    # Two 3x3 'valid' convolutions that copy their centre pixel: the 8x8 map is the
    # 12x12 image without its 2-pixel frame, cell (i, j) = pixel (i + 2, j + 2).
    # Stretching 8 cells over 12 pixels would put the peak of pixel (2, 9) at (1, 10).
    centre = np.zeros((3, 3, 1, 1), np.float32)
    centre[1, 1] = 1.0
    model = keras.Sequential(
        [
            keras.Input((12, 12, 1)),
            layers.Conv2D(1, 3, use_bias=False, name="copy1"),
            layers.Conv2D(1, 3, use_bias=False, name="copy2"),
            layers.Flatten(),
            layers.Dense(2, activation="softmax", name="head"),
        ]
    )
    for name in ("copy1", "copy2"):
        model.get_layer(name).kernel.assign(centre)
    head = model.get_layer("head")
    head.kernel.assign(np.stack([np.ones(64), np.zeros(64)], axis=1).astype(np.float32))
    for row, column in [(2, 9), (5, 7), (9, 2)]:
        image = one_hot_image((12, 12, 1), row, column)
        # The frame outside the cell centres repeats the edge cells.
        expected = np.pad(image[0, 2:-2, 2:-2, 0], 2, mode="edge")
        for method in ("gradcam", "hirescam"):
            cam = compute_grad_cam(model, image, class_index=0, method=method)
            assert cam.cell_centres == ((1.0, 2.0), (1.0, 2.0))
            assert cam.heatmaps[0, row, column] == 1.0
            np.testing.assert_allclose(cam.heatmaps[0], expected, atol=1e-6)
    interior = compute_grad_cam(model, one_hot_image((12, 12, 1), 5, 7), class_index=0)
    assert np.unravel_index(interior.heatmaps[0].argmax(), (12, 12)) == (5, 7) and interior.heatmaps[0].sum() == 1.0


def test_cell_centres_are_the_receptive_field_centres():
    # Linear layers with positive weights: the input pixels one cell depends on are
    # its receptive field; the middle of that box is where the cell must sit.
    inputs = keras.Input((40, 36, 1))
    tensor = layers.Conv2D(2, 3, name="valid3")(inputs)
    tensor = layers.AveragePooling2D(2, name="pool")(tensor)
    tensor = layers.ZeroPadding2D(((2, 0), (1, 3)), name="pad")(tensor)
    tensor = layers.Conv2D(2, (5, 4), strides=2, padding="same", name="same_strided")(tensor)
    tensor = layers.Cropping2D(((1, 0), (0, 1)), name="crop")(tensor)
    features = layers.Conv2D(2, 3, dilation_rate=2, padding="same", name="dilated")(tensor)
    outputs = layers.Dense(3, activation="softmax")(layers.Flatten()(features))
    model = keras.Model(inputs, outputs)
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            layer.kernel.assign(np.full(layer.kernel.shape, 0.5, np.float32))
    cam = compute_grad_cam(model, random_images(1, (40, 36, 1)), layer="dilated")
    (row_stride, row_offset), (column_stride, column_offset) = cam.cell_centres
    feature_model = keras.Model(inputs, features)
    basis = np.eye(40 * 36, dtype=np.float32).reshape(-1, 40, 36, 1)
    responses = keras.ops.convert_to_numpy(feature_model(basis))[..., 0]  # (pixels, h, w): each pixel's effect
    height, width = responses.shape[1:]
    checked = 0
    for row in range(1, height - 1):
        for column in range(1, width - 1):
            rows, columns = np.nonzero(responses[:, row, column].reshape(40, 36) > 0)
            if rows.min() == 0 or columns.min() == 0 or rows.max() == 39 or columns.max() == 35:
                continue  # the field reaches past the image: its visible part is off-centre
            assert (rows.min() + rows.max()) / 2 == row_stride * row + row_offset
            assert (columns.min() + columns.max()) / 2 == column_stride * column + column_offset
            checked += 1
    assert checked >= 4


def test_stretch_is_kept_for_same_convolutions_and_unknown_geometry():
    # 'same' stride-1 layers centre cell i on pixel i: the stretch of the old resize, unchanged.
    cam = compute_grad_cam(functional_with_skip(), random_images(2, (12, 12, 3)))
    assert cam.cell_centres == ((1.0, 0.0), (1.0, 0.0))
    np.testing.assert_allclose(cam.heatmaps, attribution.normalise(cam.coarse_heatmaps), atol=1e-6)
    # Upsampling has no receptive-field centre: the map is stretched over the input.
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), layers.Conv2D(2, 3), layers.UpSampling2D(name="up"), layers.Flatten(), layers.Dense(2)]
    )
    images = random_images(2, (8, 8, 1))
    cam = compute_grad_cam(model, images, layer="up", method="hirescam")
    assert cam.cell_centres is None and cam.coarse_heatmaps.shape == (2, 12, 12)
    np.testing.assert_allclose(cam.heatmaps, attribution.normalise(resize_bilinear(cam.coarse_heatmaps, 8, 8)), atol=1e-6)


def test_saliency_of_linear_model_is_the_class_weights():
    # logit_c = x . W[:, c] + b: the gradient with respect to the image is W[:, c] itself.
    model = keras.Sequential([keras.Input((4, 3, 2)), layers.Flatten(), layers.Dense(3, activation="softmax")])
    images = random_images(2, (4, 3, 2))
    saliency = compute_saliency(model, images, class_index=1)
    weights = np.abs(keras.ops.convert_to_numpy(model.layers[-1].kernel)[:, 1].reshape(4, 3, 2)).max(axis=-1)
    for index in range(2):
        np.testing.assert_allclose(saliency.maps[index], weights / weights.max(), rtol=1e-5)


def test_bilinear_upsampling_matches_keras_resize():
    maps = random_images(2, (3, 5))
    expected = keras.ops.convert_to_numpy(keras.ops.image.resize(maps[..., None], (11, 17), interpolation="bilinear", antialias=False))[..., 0]
    np.testing.assert_allclose(resize_bilinear(maps, 11, 17), expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- weights and the layer graph


def test_layer_graph_has_every_layer_with_its_input_and_output_shapes():
    graph = layer_graph(never_called_sequential(), (10, 10, 1))
    assert [type(layer).__name__ for layer in graph.layers] == ["Conv2D", "MaxPooling2D", "Conv2D", "Activation", "Flatten", "Dense"]
    first, last = graph.layers[0].name, graph.layers[-1].name
    assert shape_of(graph.inputs_of[first]) == (None, 10, 10, 1) and shape_of(graph.outputs_of[first]) == (None, 8, 8, 4)
    assert shape_of(graph.inputs_of[last]) == (None, 96)


def test_first_filters_views_and_rgb_composites():
    model = functional_with_skip()
    filters = compute_first_filters(model, (12, 12, 3))
    kernel = keras.ops.convert_to_numpy(model.get_layer("first").kernel)
    np.testing.assert_array_equal(filters.kernels, kernel)
    np.testing.assert_array_equal(filters.channel_views[2, 1], kernel[:, :, 2, 1])
    assert filters.rgb.shape == (4, 3, 3, 3) and filters.rgb.dtype == np.uint8
    assert filters.rgb.reshape(4, -1).min(axis=1).tolist() == [0] * 4
    assert filters.rgb.reshape(4, -1).max(axis=1).tolist() == [255] * 4
    assert compute_first_filters(never_called_sequential(), (10, 10, 1)).rgb is None
    assert compute_first_filters(mlp(), (6, 5, 1)) is None


def test_dense_weights_are_unit_images_on_one_symmetric_scale():
    model = mlp()
    weights = compute_dense_weights(model, (6, 5, 1))
    kernel = keras.ops.convert_to_numpy(model.layers[1].kernel)
    assert weights.images.shape == (7, 6, 5)
    np.testing.assert_array_equal(weights.images[3], kernel[:, 3].reshape(6, 5))
    assert weights.vmin == -weights.vmax == -np.abs(kernel).max()
    colour = keras.Sequential([keras.Input((4, 4, 3)), layers.Flatten(), layers.Dense(2)])
    colour_weights = compute_dense_weights(colour, (4, 4, 3))
    np.testing.assert_array_equal(colour_weights.images[1], keras.ops.convert_to_numpy(colour.layers[1].kernel)[:, 1].reshape(4, 4, 3))
    assert compute_dense_weights(never_called_sequential(), (10, 10, 1)) is None  # its Flatten reads feature maps


# ---------------------------------------------------------------- classic kernels and pixels


@pytest.mark.parametrize("shape", [(9, 7), (4, 12), (1, 5)])
def test_convolve2d_equals_scipy_symmetric_same(shape):
    image = np.random.default_rng(1).normal(size=shape)
    kernels = list(CLASSIC_KERNELS.values()) + [np.arange(6.0).reshape(2, 3), np.arange(20.0).reshape(4, 5)]
    for kernel in kernels:
        np.testing.assert_allclose(convolve2d(image, kernel), scipy.signal.convolve2d(image, kernel, boundary="symm", mode="same"), atol=1e-10)


def test_classic_kernels_on_rgb_image():
    image = np.random.default_rng(2).integers(0, 256, (9, 8, 3), dtype=np.uint8)
    kernels = compute_classic_kernels(image, num_random_kernels=3, seed=5)
    names = [item.name for item in kernels.classic]
    assert names == ["Sobel x", "Sobel y", "Laplacian", "sharpen", "box blur", "random 1", "random 2", "random 3"]
    expected_gray = (0.299 * image[..., 0] + 0.587 * image[..., 1] + 0.114 * image[..., 2]) / 255
    np.testing.assert_allclose(kernels.grayscale, expected_gray, rtol=1e-5)
    for item in kernels.classic:
        np.testing.assert_allclose(item.response, scipy.signal.convolve2d(kernels.grayscale, item.kernel, boundary="symm", mode="same"), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(kernels.channels["G"], image[..., 1])
    again = compute_classic_kernels(image, num_random_kernels=3, seed=5)
    np.testing.assert_array_equal(again.classic[-1].kernel, kernels.classic[-1].kernel)  # seeded
    assert compute_classic_kernels(image[..., :1]).channels is None
    np.testing.assert_array_equal(grayscale(image[..., 0]), image[..., 0])


def test_learned_responses_are_the_first_convolution_before_activation():
    model = never_called_sequential()
    images = random_images(2, (10, 10, 1))
    result = inspect(model, images)
    first = model.layers[0]
    assert result.classic_kernels.learned_layer_name == first.name
    kernel = keras.ops.convert_to_numpy(first.kernel)[:, :, 0, :]
    bias = keras.ops.convert_to_numpy(first.bias)
    # Keras convolution is cross-correlation: output(i, j) = sum image(i + a, j + b) kernel(a, b).
    windows = np.lib.stride_tricks.sliding_window_view(images[0, :, :, 0], (3, 3))
    expected = np.einsum("ijab,abk->ijk", windows, kernel) + bias
    for channel, item in enumerate(result.classic_kernels.learned):
        np.testing.assert_allclose(item.response, expected[..., channel], rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(item.kernel, kernel[..., channel])


def test_pixel_grid_values_and_centre_crop():
    image = np.arange(40 * 36, dtype=np.int64).reshape(40, 36, 1) % 256
    grid = compute_pixel_grid(image.astype(np.uint8), max_size=32)
    assert grid.values.shape == (32, 32) and grid.top_left == (4, 2)
    np.testing.assert_array_equal(grid.values, image[4:36, 2:34, 0])
    assert "centre 32x32 of 40x36" in grid.description
    assert compute_pixel_grid(np.zeros((28, 28, 1), np.uint8)).values.shape == (28, 28)


def test_display_images_from_zero_one_inputs_recover_the_integers():
    pixels = np.random.default_rng(3).integers(0, 256, (1, 6, 6, 1)).astype(np.uint8)
    pixels[0, 0, 0, 0], pixels[0, 0, 1, 0] = 0, 255
    model = keras.Sequential([keras.Input((6, 6, 1)), layers.Conv2D(2, 3), layers.Flatten(), layers.Dense(2, activation="softmax")])
    result = inspect(model, pixels.astype(np.float32) / 255)
    np.testing.assert_array_equal(result.display_images, pixels)
    np.testing.assert_array_equal(result.pixel_grid.values, pixels[0, :, :, 0])


# ---------------------------------------------------------------- worked examples


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_worked_convolution_equals_keras_conv2d(stride, padding):
    worked = compute_worked_convolution(stride=stride, padding=padding, seed=3)
    conv = layers.Conv2D(1, 3, strides=stride, padding=padding, use_bias=False)
    conv.build((1, 5, 5, 1))
    conv.kernel.assign(worked.kernel.reshape(3, 3, 1, 1).astype("float32"))
    expected = keras.ops.convert_to_numpy(conv(worked.input.reshape(1, 5, 5, 1).astype("float32")))[0, :, :, 0]
    np.testing.assert_array_equal(worked.output, expected)
    for row, column in np.ndindex(worked.output.shape):
        left, value = worked.sums[row][column].split(" = ")
        assert len(left.split(" + ")) == 9
        assert eval(left) == int(value) == worked.output[row, column]  # the spelled sum is the arithmetic


def test_worked_pooling_equals_keras_max_pooling():
    pooling = compute_worked_pooling(seed=4)
    expected = keras.ops.convert_to_numpy(layers.MaxPooling2D(2)(pooling.input.reshape(1, 4, 4, 1).astype("float32")))[0, :, :, 0]
    np.testing.assert_array_equal(pooling.output, expected)
    window = pooling.input[:2, 2:]
    assert pooling.windows[0][1] == f"max({', '.join(str(v) for v in window.ravel())}) = {window.max()}"


def test_output_size_formula_matches_keras_shapes():
    rows = compute_output_sizes()
    sizes = [int(text.rsplit("= ", 1)[1]) for text in rows]  # each line ends with "= <output size>"
    assert sizes == [3, 5, 2, 3]
    for size, (stride, padding) in zip(sizes, [(1, "valid"), (1, "same"), (2, "valid"), (2, "same")]):
        shape = layers.Conv2D(1, 3, strides=stride, padding=padding).compute_output_shape((1, 5, 5, 1))
        assert shape[1] == size
    model = never_called_sequential()
    model_rows = compute_output_sizes(model, (10, 10, 1))[4:]
    assert [(text.split(":")[0], int(text.rsplit("= ", 1)[1])) for text in model_rows] == [
        (model.layers[0].name, 8), (model.layers[1].name, 4), (model.layers[2].name, 4)
    ]


# ---------------------------------------------------------------- every model


USER_MODELS = {
    "never_called_sequential": (never_called_sequential, (10, 10, 1)),
    "user_functional": (functional_with_skip, (12, 12, 3)),
    "mlp": (mlp, (6, 5, 1)),
}


def check_result(result, model, shape, count):
    assert result.probabilities.shape[0] == count and np.allclose(result.probabilities.sum(axis=1), 1, atol=1e-5)
    assert result.saliency.maps.shape == (count, *shape[:2])
    assert all(np.all(np.isfinite(item.values)) for item in result.activations)
    graph_layers = layer_graph(model, shape).layers  # the layers inspection reads tensors from
    assert [layer.name for layer in graph_layers] == [layer.name for layer in model.layers if not isinstance(layer, layers.InputLayer)]
    has_convolution = any(isinstance(layer, layers.Conv2D) for layer in model.layers)
    assert (result.grad_cam is not None) == has_convolution
    if has_convolution:
        assert result.grad_cam.heatmaps.shape == (count, *shape[:2]) and np.all(np.isfinite(result.grad_cam.heatmaps))
        assert result.filters.kernels.shape[2] == shape[-1]
    assert result.display_images.shape == (count, *shape[:2], shape[-1]) and result.display_images.dtype == np.uint8


@pytest.mark.parametrize("name", [info.name for info in list_models()])
def test_inspect_every_zoo_model(name):
    info = next(info for info in list_models() if info.name == name)
    model = create_model(name, info.input_shape, 10)
    images = random_images(2, info.input_shape)
    result = inspect(model, images, seed=1)
    check_result(result, model, info.input_shape, 2)
    assert (result.dense_weights is not None) == name.startswith("mlp")
    truncated = keras.Model(model.inputs[0], [model.get_layer(item.layer_name).output for item in result.activations])
    for item, expected in zip(result.activations, truncated(images)):
        np.testing.assert_allclose(item.values, keras.ops.convert_to_numpy(expected), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(USER_MODELS))
def test_inspect_user_models(name):
    build, shape = USER_MODELS[name]
    model = build()
    result = inspect(model, random_images(2, shape))
    check_result(result, model, shape, 2)
    assert (result.dense_weights is not None) == (name == "mlp")
