"""Contract tests for convscope.plots.inspection and convscope.plots.teaching: every figure draws, saves, and says what it shows."""

import keras
import matplotlib.pyplot as plt
import pytest
from PIL import Image

from convscope.errors import ConvscopeError
from convscope.inspection import inspect
from convscope.models import create_model, list_models
from convscope.plots import inspection as plots
from conftest import random_images
from convscope.plots import teaching

layers = keras.layers


def gray_cnn():
    return keras.Sequential(
        [layers.Conv2D(40, 3, activation="relu"), layers.MaxPooling2D(), layers.Flatten(), layers.Dense(3, activation="softmax")]
    )


@pytest.fixture(scope="module")
def gray_result():
    return inspect(gray_cnn(), random_images(2, (12, 12, 1)), image_labels=["test image 7", "test image 42"])


@pytest.fixture(scope="module")
def rgb_result():
    inputs = keras.Input((10, 10, 3))
    hidden = layers.Conv2D(5, 3, activation="relu", name="first")(inputs)
    hidden = layers.Conv2D(4, 3, name="second")(hidden)
    outputs = layers.Dense(3, name="logits")(layers.GlobalAveragePooling2D()(hidden))
    return inspect(keras.Model(inputs, outputs), random_images(3, (10, 10, 3)))


@pytest.fixture(scope="module")
def mlp_result():
    model = keras.Sequential([keras.Input((6, 6, 1)), layers.Flatten(), layers.Dense(40, activation="relu"), layers.Dense(3, activation="softmax")])
    return inspect(model, random_images(2, (6, 6, 1)))


def assert_png(path):
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100


def test_saves_every_figure_for_gray_cnn(gray_result, tmp_path):
    paths = plots.save_inspection_figures(gray_result, tmp_path, class_names=["zero", "one", "two"])
    expected = {"filters", "grad_cam", "saliency", "classic_kernels", "pixel_grid", "worked_convolution", "worked_pooling"}
    expected |= {"activations_img0", "activations_img1"}
    assert set(paths) == expected  # no RGB figures, no dense weights for a CNN
    for key, path in paths.items():
        assert path == tmp_path / f"{key}.png"
        assert_png(path)
    assert not list(tmp_path.glob(".*"))  # written atomically: no temp files left
    assert not plt.get_fignums()  # every figure closed


def test_saves_rgb_figures_for_colour_model(rgb_result, tmp_path):
    paths = plots.save_inspection_figures(rgb_result, tmp_path)
    assert {"filters_rgb", "channel_split", "activations_img2"} <= set(paths)
    assert "dense_weights" not in paths
    for path in paths.values():
        assert_png(path)


def test_saves_dense_weights_and_no_convolution_figures_for_mlp(mlp_result, tmp_path):
    paths = plots.save_inspection_figures(mlp_result, tmp_path)
    assert "dense_weights" in paths and not {"filters", "grad_cam", "filters_rgb"} & set(paths)
    assert {"saliency", "pixel_grid", "classic_kernels"} <= set(paths)


@pytest.mark.parametrize("name", [info.name for info in list_models()])
def test_saves_figures_for_every_zoo_model(name, tmp_path):
    info = next(info for info in list_models() if info.name == name)
    result = inspect(create_model(name, info.input_shape, 10), random_images(1, info.input_shape))
    paths = plots.save_inspection_figures(result, tmp_path, class_names=[str(digit) for digit in range(10)])
    assert ("grad_cam" in paths) == (result.grad_cam is not None)
    assert ("filters_rgb" in paths) == (info.input_shape[-1] == 3)
    for path in paths.values():
        assert path.stat().st_size > 1000


def titles(figure):
    texts = [axes.get_title() for axes in figure.axes] + ([figure._suptitle.get_text()] if figure._suptitle else [])
    return " | ".join(texts)


def test_titles_say_what_is_shown_and_what_was_capped(gray_result, rgb_result):
    filters = plots.plot_filters(gray_result.filters)
    assert "32 of 40 filters" not in titles(filters) and "40 filters 3x3" in titles(filters)  # 40 <= 64 shown
    activation = plots.plot_activations(
        gray_result.activations, gray_result.activations[0].layer_name, 1, max_channels=8, image_label=gray_result.image_labels[1]
    )
    assert "channels 0-7 of 40" in titles(activation) and "test image 42" in titles(activation) and "10x10x40" in titles(activation)
    overview = plots.plot_activations_of_image(gray_result.activations, 1)
    assert len(overview.axes) == len(gray_result.activations)
    for item in gray_result.activations:
        assert f"{item.layer_name} ({item.layer_type}) output" in titles(overview)
    assert "channels 0-31 of 40" in titles(overview)  # capped at 32 channels per layer
    cam = plots.plot_grad_cam(rgb_result.grad_cam, rgb_result.display_images, rgb_result.probabilities, class_names=["cat", "dog", "ship"])
    predicted = ["cat", "dog", "ship"][rgb_result.predicted_classes[0]]
    assert f"image 0: {predicted}" in titles(cam) and "second" in titles(cam)
    assert "0.299R" in titles(teaching.plot_channel_split(rgb_result.classic_kernels, rgb_result.display_images[0]))
    saliency = plots.plot_saliency(gray_result.saliency, gray_result.display_images, gray_result.probabilities, image_labels=gray_result.image_labels)
    assert "test image 7: " in titles(saliency)
    assert "test image 7: pixel values" in titles(teaching.plot_pixel_grid(gray_result.pixel_grid, image_label=gray_result.image_labels[0]))
    plt.close("all")


def test_filter_values_are_printed_for_small_kernels(gray_result):
    figure = plots.plot_filters(gray_result.filters)
    glyphs = [collection for collection in figure.axes[0].collections if len(collection.get_paths())]
    assert sum(len(collection.get_offsets()) for collection in glyphs) == 40 * 9  # one number per weight
    quiet = plots.plot_filters(gray_result.filters, show_values=False)
    assert not quiet.axes[0].collections
    plt.close("all")


def test_asking_for_a_layer_without_activations_is_a_user_error(gray_result):
    with pytest.raises(ConvscopeError, match="no activations of layer 'flatten'"):
        plots.plot_activations(gray_result.activations, "flatten")


def test_pixel_grid_writes_one_number_per_pixel(gray_result):
    figure = teaching.plot_pixel_grid(gray_result.pixel_grid)
    assert sum(len(collection.get_offsets()) for collection in figure.axes[0].collections) == 12 * 12
    plt.close(figure)


def test_every_plot_draws_into_a_given_axes(gray_result, rgb_result, mlp_result):
    drawings = [
        lambda ax: plots.plot_filters(gray_result.filters, ax=ax),
        lambda ax: plots.plot_filters_rgb(rgb_result.filters, ax=ax),
        lambda ax: plots.plot_dense_weights(mlp_result.dense_weights, ax=ax),
        lambda ax: plots.plot_activations(gray_result.activations, gray_result.activations[0].layer_name, ax=ax),
        lambda ax: plots.plot_activations(gray_result.activations, gray_result.activations[-1].layer_name, ax=ax),
        lambda ax: plots.plot_activations_of_image(rgb_result.activations, 2, layer_names=["first", "second"], ax=ax),
        lambda ax: plots.plot_grad_cam(gray_result.grad_cam, gray_result.display_images, gray_result.probabilities, ax=ax),
        lambda ax: plots.plot_saliency(rgb_result.saliency, rgb_result.display_images, rgb_result.probabilities, ax=ax),
        lambda ax: teaching.plot_classic_kernels(rgb_result.classic_kernels, rgb_result.display_images[0], ax=ax),
        lambda ax: teaching.plot_channel_split(rgb_result.classic_kernels, rgb_result.display_images[0], ax=ax),
        lambda ax: teaching.plot_pixel_grid(gray_result.pixel_grid, ax=ax),
        lambda ax: teaching.plot_worked_convolution(gray_result.worked_convolution, gray_result.output_sizes, ax=ax),
        lambda ax: teaching.plot_worked_pooling(gray_result.worked_pooling, ax=ax),
    ]
    for draw in drawings:
        figure, (left, right) = plt.subplots(1, 2, figsize=(8, 4), layout="constrained")
        assert draw(right) is figure
        figure.canvas.draw()
        plt.close(figure)
