"""Contract tests for the model zoo, create_model, ensure_built and safe loading."""

import json
import zipfile

import keras
import numpy as np
import pytest

from convscope.errors import ConvscopeError
from convscope.model_catalog import MODEL_CATALOG
from convscope.models import MODELS, create_model, ensure_built, format_models_table, list_models, load_model, register_model, summarize

# Totals the lessons printed with model.summary() for 10 classes.
REFERENCE_PARAMS = {
    "mlp_512": 669_706,
    "mlp_512_nodropout": 669_706,
    "mlp_16x16": 13_002,
    "cnn_single": 216_650,
    "cnn_dropout": 2_770_634,
    "cnn_2conv": 1_199_882,
    "cnn_pool_dense64": 220_234,
    "cnn_small": 54_410,
    "cnn_small_dropout": 54_410,
    "mnist_convnet": 34_826,
    "mnist_convnet_dropout02": 34_826,
    "mnist_fast": 109_066,  # not a lesson's: the fast preset's model
    "cifar_cnn": 541_094,
    "cifar_elu": 73_498,
}
DEFAULT_SHAPES = {name: (32, 32, 3) if name.startswith("cifar") else (28, 28, 1) for name in REFERENCE_PARAMS}


def test_registry_holds_exactly_the_lesson_models():
    assert set(MODELS) == set(REFERENCE_PARAMS)


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_zoo_model_contract(name):
    model = create_model(name, DEFAULT_SHAPES[name], 10)
    assert model.count_params() == REFERENCE_PARAMS[name]
    assert model.name == name
    assert tuple(model.inputs[0].shape) == (None, *DEFAULT_SHAPES[name])

    rng = np.random.default_rng(0)
    images = rng.random((4, *DEFAULT_SHAPES[name]), dtype=np.float32)
    labels = np.array([0, 3, 7, 9])
    probabilities = model.predict(images[:1], verbose=0)
    assert probabilities.shape == (1, 10)
    assert np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)  # zoo models end in softmax

    # One training step moves every trainable weight: gradients reach all of them.
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", run_eagerly=True)
    before = [weight.numpy().copy() for weight in model.trainable_weights]
    loss = model.train_on_batch(images, labels)
    assert np.isfinite(loss)
    for weight, old in zip(model.trainable_weights, before):
        assert np.all(np.isfinite(weight.numpy())), weight.path
        assert not np.array_equal(weight.numpy(), old), f"{weight.path} did not change"


def test_zoo_model_takes_other_shapes_and_class_counts():
    model = create_model("mnist_convnet", (32, 32, 3), 4)
    assert tuple(model.outputs[0].shape) == (None, 4)
    # conv1: (3*3*3 + 1)*32 = 896; conv2 18,496; 32->30->15->13->6: 6*6*64 = 2,304; 2,304*4 + 4 = 9,220
    assert model.count_params() == 896 + 18_496 + 9_220


def test_layer_names_are_readable_and_stable():
    first = create_model("cnn_2conv", (28, 28, 1), 10)
    second = create_model("cnn_2conv", (28, 28, 1), 10)
    names = [layer.name for layer in first.layers]
    assert names == [layer.name for layer in second.layers]
    assert names[:3] == ["conv1", "conv2", "pool1"] and names[-1] == "predictions"


def test_unknown_name_lists_the_available_models():
    with pytest.raises(ConvscopeError, match="unknown model 'resnet9000'") as raised:
        create_model("resnet9000", (28, 28, 1), 10)
    for name in REFERENCE_PARAMS:
        assert name in str(raised.value)


def test_too_small_input_is_a_clear_error():
    with pytest.raises(ConvscopeError, match="mnist_convnet.*cannot take input shape"):
        create_model("mnist_convnet", (6, 6, 1), 10)


def test_list_models_and_table():
    infos = list_models()
    assert [info.name for info in infos] == sorted(REFERENCE_PARAMS)
    for info in infos:
        assert info.num_params == REFERENCE_PARAMS[info.name]
        assert info.input_shape == DEFAULT_SHAPES[info.name]
        assert info.origin and info.description and info.mflops > 0
    lines = format_models_table().splitlines()
    assert lines[0].split() == ["name", "params", "MFLOPs", "input", "origin", "description"]
    rows = {line.split()[0]: line.split()[1:4] for line in lines[1:len(REFERENCE_PARAMS) + 1]}
    assert list(rows) == sorted(REFERENCE_PARAMS)
    assert rows["cnn_dropout"] == ["2,770,634", "5.93", "28x28x1"]  # 2 x 2,964,864 multiply-adds
    assert rows["cifar_cnn"] == ["541,094", "6.64", "32x32x3"]


# ---------------------------------------------------------------------------
# The catalog: what `convscope models` lists without importing Keras


def test_catalog_describes_exactly_the_registered_models():
    assert set(MODEL_CATALOG) == set(MODELS)
    assert all(name == entry.name for name, entry in MODEL_CATALOG.items())


@pytest.mark.parametrize("name", sorted(MODEL_CATALOG))
def test_catalog_counts_are_the_built_models(name):
    entry = MODEL_CATALOG[name]
    model = create_model(name, entry.input_shape, 10)
    assert tuple(model.inputs[0].shape) == (None, *entry.input_shape)
    assert model.count_params() == entry.num_params
    assert summarize(model).macs == entry.macs


def test_register_model_refuses_a_name_the_catalog_lacks():
    with pytest.raises(ConvscopeError, match="'my_cnn' has no entry in convscope.model_catalog.MODEL_CATALOG"):
        register_model("my_cnn")
    assert "my_cnn" not in MODELS


# ---------------------------------------------------------------------------
# The user's own models


def one_conv_sequential():
    """Never called, and small enough to count its parameters by hand (conftest's never_called_sequential is larger)."""
    return keras.Sequential(
        [keras.layers.Conv2D(8, 3, activation="relu"), keras.layers.Flatten(), keras.layers.Dense(10)]
    )


def test_ensure_built_makes_a_never_called_sequential_usable():
    model = one_conv_sequential()
    conv = model.layers[0]
    with pytest.raises(AttributeError):  # what users hit in the lessons
        model.inputs
    built = ensure_built(model, (28, 28, 1))
    assert built is model and built.layers[0] is conv
    extractor = keras.Model(built.inputs, conv.output)  # how activation maps are read
    images = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    maps = extractor.predict(images, verbose=0)
    assert maps.shape == (2, 26, 26, 8)
    expected = keras.ops.convert_to_numpy(keras.activations.relu(keras.ops.conv(images, conv.kernel) + conv.bias))
    np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-5)


def test_ensure_built_keeps_weights_of_a_sequential_called_eagerly():
    model = one_conv_sequential()
    images = np.random.default_rng(1).random((2, 28, 28, 1), dtype=np.float32)
    before = keras.ops.convert_to_numpy(model(images))
    assert ensure_built(model, (28, 28, 1)) is model
    np.testing.assert_allclose(model.predict(images, verbose=0), before, rtol=1e-5, atol=1e-6)


def test_ensure_built_errors():
    with pytest.raises(ConvscopeError, match="never been called.*input_shape"):
        ensure_built(one_conv_sequential())
    with pytest.raises(ConvscopeError, match="cannot take images of shape"):
        ensure_built(keras.Sequential([keras.layers.Conv2D(8, 5), keras.layers.Conv2D(8, 5)]), (4, 4, 1))

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(10)

        def call(self, inputs):
            return self.dense(inputs)

    with pytest.raises(ConvscopeError, match="subclassed"):
        ensure_built(Subclassed(), (28, 28, 1))


def test_create_model_accepts_a_user_functional_model():
    inputs = keras.Input((28, 28, 1))
    features = keras.layers.Conv2D(4, 3)(inputs)
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(features))
    model = keras.Model(inputs, outputs)
    assert create_model(model, (28, 28, 1), 3) is model
    with pytest.raises(ConvscopeError, match=r"outputs \(3,\).*expected \(10,\)"):
        create_model(model, (28, 28, 1), 10)
    with pytest.raises(ConvscopeError, match=r"expects images of shape \(28, 28, 1\).*\(32, 32, 3\)"):
        create_model(model, (32, 32, 3), 3)


def test_create_model_accepts_a_never_called_sequential():
    model = create_model(one_conv_sequential(), (28, 28, 1), 10)
    assert tuple(model.outputs[0].shape) == (None, 10)
    assert model.count_params() == (9 + 1) * 8 + 26 * 26 * 8 * 10 + 10


# ---------------------------------------------------------------------------
# Loading saved models


def test_load_model_round_trip(tmp_path):
    model = create_model("cnn_small", (28, 28, 1), 10)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = load_model(path)
    images = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-6)


def test_load_model_refuses_a_lambda_layer(tmp_path):
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2)(keras.layers.Lambda(lambda x: x * 2, name="double")(inputs))
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(ConvscopeError, match="Lambda layer 'double'.*--trust-model"):
        load_model(path)
    trusted = load_model(path, trust=True)  # the user vouches for the file
    np.testing.assert_allclose(trusted.layers[1](np.ones((1, 4), np.float32)), 2.0)


def test_load_model_refuses_a_class_from_outside_keras(tmp_path):
    marker = tmp_path / "ran"
    config = {"module": "os", "class_name": "system", "config": f"touch {marker}", "registered_name": None}
    path = tmp_path / "evil.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("metadata.json", json.dumps({"keras_version": keras.__version__}))
    with pytest.raises(ConvscopeError, match="'system' from module 'os'"):
        load_model(path)
    assert not marker.exists()


def test_load_model_refuses_legacy_h5_unless_trusted(tmp_path):
    model = create_model("mlp_16x16", (28, 28, 1), 10)
    path = tmp_path / "model.h5"
    model.save(path)
    with pytest.raises(ConvscopeError, match="model.h5.*--trust-model"):
        load_model(path)
    assert load_model(path, trust=True).count_params() == 13_002


def test_load_model_missing_or_corrupt_file(tmp_path):
    with pytest.raises(ConvscopeError, match="nothing.keras: model file not found"):
        load_model(tmp_path / "nothing.keras")
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"not a zip archive")
    with pytest.raises(ConvscopeError, match="corrupt.keras: not a readable .keras file"):
        load_model(corrupt)
    truncated = tmp_path / "truncated.keras"
    create_model("cnn_small", (28, 28, 1), 10).save(truncated)
    with zipfile.ZipFile(truncated) as archive:
        config = archive.read("config.json")
    with zipfile.ZipFile(truncated, "w") as archive:  # config without its weights
        archive.writestr("config.json", config)
    with pytest.raises(ConvscopeError, match="truncated.keras: cannot load the model"):
        load_model(truncated)
    other = tmp_path / "weights.npz"
    other.write_bytes(b"")
    with pytest.raises(ConvscopeError, match="expected a .keras model file"):
        load_model(other)


@pytest.mark.parametrize("arguments", [{}, {"scale": False, "momentum": 0.9}, {"center": False, "epsilon": 1e-5}])
def test_fused_batch_norm_trains_like_keras_batch_norm(arguments):
    import tensorflow as tf

    from convscope import keras_compat
    from convscope.models.layers import FusedBatchNormalization

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2.0, 3.0, (16, 7, 7, 5)).astype("float32"))
    assert keras_compat.fused_batch_norm(x, tf.ones(5), tf.zeros(5), 1e-3) is not None  # the fused path is taken
    ours, theirs = FusedBatchNormalization(**arguments), keras.layers.BatchNormalization(**arguments)
    for layer in (ours, theirs):
        layer.build(x.shape)
        layer.set_weights([np.linspace(0.5, 1.5, 5).astype("float32") + index for index in range(len(layer.weights))])
    results = []
    for layer in (ours, theirs):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * tf.sin(y))
        gradients = tape.gradient(loss, [x, *layer.trainable_weights])
        results.append((y, gradients, [w.numpy() for w in layer.non_trainable_weights], layer(x, training=False)))
    (y, gradients, moving, inferred), (y_keras, gradients_keras, moving_keras, inferred_keras) = results
    np.testing.assert_allclose(y, y_keras, atol=1e-5)
    for ours_gradient, keras_gradient in zip(gradients, gradients_keras):
        np.testing.assert_allclose(ours_gradient, keras_gradient, rtol=1e-4, atol=1e-4 * np.abs(keras_gradient).max())
    for ours_moving, keras_moving in zip(moving, moving_keras):  # the batch variance without Bessel's correction
        np.testing.assert_allclose(ours_moving, keras_moving, rtol=1e-6)
    np.testing.assert_allclose(inferred, inferred_keras, atol=1e-5)


def test_fused_batch_norm_model_saves_loads_and_explains(tmp_path):
    from convscope.models import summarize
    from convscope.models.layers import FusedBatchNormalization

    model = create_model("mnist_fast", (28, 28, 1), 10)
    assert any(isinstance(layer, FusedBatchNormalization) for layer in model.layers)
    model.save(tmp_path / "fast.keras")
    loaded = load_model(tmp_path / "fast.keras")  # safe mode: a registered convscope class is allowed
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    x = np.random.default_rng(1).random((4, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    norm = next(row for row in summarize(model).layers if row.name == "norm1")
    assert "from Keras" not in norm.param_arithmetic and norm.params == 64
