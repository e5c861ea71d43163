"""keras_compat.predict_outputs: the outputs of model.predict, from one traced loop over many batches."""

import gc
import weakref

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import never_called_sequential, random_images
from convscope import keras_compat
from convscope.errors import ConvscopeError
from convscope.keras_compat import predict_outputs
from convscope.models import create_model


def batch_norm_model(input_shape, num_classes: int) -> keras.Model:
    """Conv, Keras BatchNormalization with moving statistics far from a batch's own, Dropout, softmax."""
    model = keras.Sequential([
        keras.Input(input_shape),
        keras.layers.Conv2D(4, 3, name="conv"),
        keras.layers.BatchNormalization(name="norm"),
        keras.layers.ReLU(),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])
    norm = model.get_layer("norm")
    rng = np.random.default_rng(1)
    norm.moving_mean.assign(rng.normal(0.0, 0.3, 4).astype("float32"))
    norm.moving_variance.assign(rng.uniform(0.2, 2.0, 4).astype("float32"))
    return model


def build(name: str, data) -> keras.Model:
    keras.utils.set_random_seed(0)
    if name == "batch_norm":
        return batch_norm_model(data.input_shape, data.num_classes)
    return create_model(name, data.input_shape, data.num_classes)


@pytest.mark.parametrize("name", ["mnist_convnet", "mnist_fast", "batch_norm"])
@pytest.mark.parametrize("batch_size", [64, 96])
def test_outputs_equal_predicts_with_a_last_partial_batch(small_data, name, batch_size):
    model = build(name, small_data)
    x = small_data.x_test[:1000]  # 1000 = 15 x 64 + 40 = 10 x 96 + 40: the last batch is short
    expected = model.predict(x, batch_size=batch_size, verbose=0)
    outputs = predict_outputs(model, x, batch_size=batch_size)
    assert outputs.shape == expected.shape and outputs.dtype == expected.dtype
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-6)
    # the model runs in inference mode: in training mode Dropout and batch statistics change the outputs
    training_outputs = keras.ops.convert_to_numpy(model(x[:batch_size], training=True))
    assert np.abs(training_outputs - expected[:batch_size]).max() > 1e-3


def test_several_groups_keep_the_order_and_trace_once(small_data, monkeypatch):
    model = build("batch_norm", small_data)
    x = small_data.x_test[:700]
    expected = model.predict(x, batch_size=32, verbose=0)
    # 3 batches of 32 images per group: 700 images are 7 full groups and one of 28 (a partial batch)
    monkeypatch.setattr(keras_compat, "PREDICT_GROUP_BYTES", 3 * 32 * x[0].nbytes + 1)
    np.testing.assert_allclose(predict_outputs(model, x, batch_size=32), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predict_outputs(model, x[:5], batch_size=32), expected[:5], rtol=1e-5, atol=1e-6)
    assert keras_compat._forward_function(model, 32).experimental_get_tracing_count() == 1


def test_float64_inputs_are_cast_as_predict_casts_them(small_data):
    model = build("mnist_convnet", small_data)
    x = small_data.x_test[:100].astype(np.float64)
    np.testing.assert_allclose(predict_outputs(model, x, 32), model.predict(x, batch_size=32, verbose=0), rtol=1e-5, atol=1e-6)


def test_batches_from_a_dataset_give_the_same_outputs(small_data):
    model = build("mnist_convnet", small_data)
    x = small_data.x_test[:300]
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(128)
    np.testing.assert_allclose(predict_outputs(model, dataset, 128), model.predict(x, batch_size=128, verbose=0), rtol=1e-5, atol=1e-6)


def test_models_without_one_defined_input_use_predict():
    model = never_called_sequential()
    x = random_images(50, (12, 12, 3))
    outputs = predict_outputs(model, x, 16)  # no inputs before the first call: model.predict builds it
    assert outputs.shape == (50, 5)
    np.testing.assert_allclose(outputs, model.predict(x, batch_size=16, verbose=0), rtol=1e-5, atol=1e-6)


def test_a_missing_channel_axis_is_adapted_as_predict_adapts_it(small_data):
    model = build("mnist_convnet", small_data)
    x = small_data.x_test[:40, :, :, 0]  # (40, 28, 28) for a (28, 28, 1) model
    np.testing.assert_allclose(predict_outputs(model, x, 16), model.predict(x, batch_size=16, verbose=0), rtol=1e-5, atol=1e-6)


def test_no_inputs_is_one_clear_error(small_data):
    model = build("mnist_convnet", small_data)
    with pytest.raises(ConvscopeError, match="0 inputs"):
        predict_outputs(model, small_data.x_test[:0], 16)


def test_the_kept_function_does_not_keep_the_model_alive(small_data):
    model = build("mnist_convnet", small_data)
    predict_outputs(model, small_data.x_test[:10], 4)
    assert model in keras_compat._forward_functions
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None
