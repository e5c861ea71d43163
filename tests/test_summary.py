"""Contract tests for the explained summary: every number equals Keras' own."""

import json

import keras
import numpy as np
import pytest

from convscope.models import create_model, list_models, summarize
from convscope.models.summary import FROM_KERAS


def assert_matches_keras(model, summary):
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    assert [row.name for row in summary.layers] == [layer.name for layer in layers]
    for layer, row in zip(layers, summary.layers):
        assert row.output_shape == tuple(layer.output.shape[1:]), layer.name
        assert row.params == layer.count_params(), layer.name
        assert row.activation_bytes == 4 * int(np.prod(layer.output.shape[1:])), layer.name
    assert summary.total_params == model.count_params() == sum(row.params for row in summary.layers)
    assert summary.weight_bytes == 4 * model.count_params()


@pytest.mark.parametrize("info", list_models(), ids=lambda info: info.name)
def test_zoo_summary_equals_keras_and_explains_every_layer(info):
    model = create_model(info.name, info.input_shape, 10)
    summary = summarize(model)
    assert_matches_keras(model, summary)
    for row in summary.layers:
        # Every zoo layer type has a formula, and the formula's result is the number shown.
        assert FROM_KERAS not in row.shape_arithmetic + row.param_arithmetic, row.name
        if row.params:
            assert row.param_arithmetic.split(" = ")[-1].split(":")[0] == f"{row.params:,}", row.name


def test_mnist_convnet_numbers_by_hand():
    summary = summarize(create_model("mnist_convnet", (28, 28, 1), 10))
    rows = {row.name: row for row in summary.layers}
    assert rows["conv1"].param_arithmetic == "(3*3*1 + 1) * 32 = 320"
    assert rows["conv1"].shape_arithmetic.startswith("(28 - 3)/1 + 1 = 26 (valid)")
    assert rows["pool1"].shape_arithmetic.startswith("floor(26/2) = 13")
    assert rows["pool2"].shape_arithmetic.startswith("floor(11/2) = 5")
    assert rows["flatten"].shape_arithmetic == "5*5*64 = 1,600"
    assert rows["predictions"].param_arithmetic == "1,600*10 + 10 = 16,010"
    # Multiply-adds per image: H_out*W_out*C_out*k*k*C_in for Conv2D, inputs*units for Dense.
    assert rows["conv1"].macs == 26 * 26 * 32 * 3 * 3 * 1 == 194_688
    assert rows["conv2"].macs == 11 * 11 * 64 * 3 * 3 * 32
    assert rows["predictions"].macs == 1600 * 10
    assert summary.macs == 194_688 + 2_230_272 + 16_000
    assert summary.mflops == pytest.approx(2 * summary.macs / 1e6)
    assert rows["conv1"].activation_bytes == 26 * 26 * 32 * 4


def test_arithmetic_of_other_lesson_layers():
    dense = summarize(create_model("mlp_512", (28, 28, 1), 10)).layers
    assert dense[0].shape_arithmetic == "28*28*1 = 784"
    assert dense[1].param_arithmetic == "784*512 + 512 = 401,920"
    single = summarize(create_model("cnn_single", (28, 28, 1), 10)).layers
    assert single[1].shape_arithmetic == "26*26*32 = 21,632"
    strided = {row.name: row for row in summarize(create_model("cifar_elu", (32, 32, 3), 10)).layers}
    assert strided["conv3"].shape_arithmetic.startswith("ceil(32/2) = 16 (same, stride 2)")
    assert strided["global_pool"].shape_arithmetic == "max over 8x8 per channel -> 64"


def test_yaml_model_with_batch_normalization(tmp_path):
    path = tmp_path / "bn.yaml"
    path.write_text(
        "- Conv2D: {filters: 8, kernel_size: 3, strides: 2, use_bias: false}\n"
        "- BatchNormalization: {}\n"
        "- Activation: {activation: relu}\n"
        "- AveragePooling2D: {pool_size: 3, strides: 2, padding: same}\n"
        "- Flatten: {}\n"
        "- Dense: {units: num_classes}\n",
        encoding="utf-8",
    )
    model = create_model(path, (15, 15, 1), 3)
    summary = summarize(model)
    assert_matches_keras(model, summary)
    conv, norm, _, pool, _, _ = summary.layers
    assert conv.param_arithmetic == "3*3*1 * 8 = 72"
    assert conv.shape_arithmetic.startswith("floor((15 - 3)/2) + 1 = 7 (valid, stride 2)")
    assert pool.shape_arithmetic.startswith("ceil(7/2) = 4 (same)")
    assert norm.params == 4 * 8 and norm.trainable_params == 2 * 8
    assert norm.param_arithmetic.startswith("4*8 = 32: 16 trainable (gamma, beta); 16 non-trainable")
    assert summary.trainable_params == model.count_params() - 16 and summary.non_trainable_params == 16


def test_user_functional_model_with_layers_without_a_formula():
    inputs = keras.Input((12, 12, 3))
    scaled = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    left = keras.layers.Conv2D(4, 3, padding="same", name="left")(scaled)
    right = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(scaled)
    joined = keras.layers.Concatenate(name="join")([left, right])
    outputs = keras.layers.Dense(5, name="head")(keras.layers.GlobalAveragePooling2D(name="gap")(joined))
    model = keras.Model(inputs, outputs, name="branches")
    summary = summarize(model)
    assert_matches_keras(model, summary)
    rows = {row.name: row for row in summary.layers}
    assert rows["left"].param_arithmetic == "(3*3*3 + 1) * 4 = 112"
    assert rows["depthwise"].param_arithmetic == f"{3 * 3 * 3 + 3} ({FROM_KERAS})"
    assert rows["depthwise"].macs is None
    assert rows["join"].output_shape == (12, 12, 7) and FROM_KERAS in rows["join"].shape_arithmetic
    assert summary.input_shape == (12, 12, 3)


def test_never_called_sequential_with_input_shape():
    model = keras.Sequential([keras.layers.Conv2D(6, 5), keras.layers.MaxPooling2D(), keras.layers.Flatten(), keras.layers.Dense(10)])
    summary = summarize(model, (28, 28, 1))
    assert_matches_keras(model, summary)
    assert summary.layers[1].output_shape == (12, 12, 6)


def test_to_dict_is_json_ready_and_to_text_shows_every_layer():
    summary = summarize(create_model("cnn_pool_dense64", (28, 28, 1), 10))
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["totals"]["params"] == 220_234
    assert data["layers"][0]["output_shape"] == [28, 28, 32]
    assert data["layers"][0]["param_arithmetic"] == "(3*3*1 + 1) * 32 = 320"
    text = summary.to_text()
    for row in summary.layers:
        assert row.name in text and row.param_arithmetic in text and row.shape_arithmetic in text
    assert "Parameters: 220,234 (220,234 trainable, 0 non-trainable)" in text
    assert f"{summary.mflops:.2f} MFLOPs per image" in text


def test_channels_first_shapes():
    keras.config.set_image_data_format("channels_first")
    try:
        model = create_model("cnn_pool_dense64", (1, 28, 28), 10)
        summary = summarize(model)
    finally:
        keras.config.set_image_data_format("channels_last")
    assert_matches_keras(model, summary)
    assert summary.layers[0].output_shape == (32, 28, 28)
    assert all(FROM_KERAS not in row.shape_arithmetic for row in summary.layers)
    assert summary.total_params == 220_234
