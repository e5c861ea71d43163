"""Models made outside convscope: .keras and legacy .h5 files, weights-only checkpoints, TensorBoard logs, Keras 2 histories.

Every file here is written by plain Keras, never by convscope: a Sequential saved
as .keras, a whole model in Keras' legacy HDF5 format with a Keras 2 era config,
weights saved with ``save_weights`` (Keras 3) and in the Keras 2 weights layout.
"""

from __future__ import annotations

import glob
import hashlib
import json

import h5py
import keras
import matplotlib.pyplot as plt
import numpy as np
import pytest
import yaml

from convscope.cli import main
from convscope.config import Config
from convscope.html.notebook import history_columns
from convscope.keras_compat import create_tensorboard_callback
from convscope.pipeline import build_report, import_model
from convscope.plots.evaluation import plot_training_curves
from convscope.runfolder import open_run
from convscope.train import prepare_training, train
from conftest import fit_notebook_model

layers = keras.layers
LIMIT = ["--dataset", "mnist-sample", "--limit-train", "384"]  # the bundled sample: 1,000 test images, few training ones


def lesson_cnn(num_classes: int = 10, input_shape=(28, 28, 1), extra=()) -> keras.Sequential:
    """The Keras mnist_cnn example as a notebook writes it: no layer names, so Keras numbers them."""
    return keras.Sequential([
        keras.Input(input_shape),
        layers.Conv2D(32, 3, activation="relu"),
        *extra,
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ])


def small_cnn(num_classes: int = 10, input_shape=(28, 28, 1)) -> keras.Sequential:
    return keras.Sequential([
        keras.Input(input_shape),
        layers.Conv2D(8, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(num_classes, activation="softmax"),
    ])


def save_keras2_weights(model: keras.Model, path) -> None:
    """``model.save_weights("x.hdf5")`` as Keras 2 wrote it (Keras 3 writes that layout only through its legacy module)."""
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)


def save_whole_h5(model: keras.Model, path) -> None:
    """A whole model in HDF5, as the lessons' ModelCheckpoint("model.weights.best.hdf5") writes it."""
    model.save(path)


def save_keras3_weights(model: keras.Model, path) -> None:
    model.save_weights(path)


WEIGHT_WRITERS = {
    "keras3.weights.h5": save_keras3_weights,
    "keras2.hdf5": save_keras2_weights,
    "model.weights.best.hdf5": save_whole_h5,  # a whole model, used for its weights only
}


def keras2_config() -> dict:
    """small_cnn's architecture as a Keras 2.4 model_config: batch_input_shape, dtype strings, no module keys."""
    glorot, zeros = {"class_name": "GlorotUniform", "config": {"seed": None}}, {"class_name": "Zeros", "config": {}}
    conv = {
        "name": "conv2d", "trainable": True, "batch_input_shape": [None, 28, 28, 1], "dtype": "float32", "filters": 8,
        "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid", "data_format": "channels_last", "dilation_rate": [1, 1],
        "groups": 1, "activation": "relu", "use_bias": True, "kernel_initializer": glorot, "bias_initializer": zeros,
        "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None,
    }
    dense = {
        "name": "dense", "trainable": True, "dtype": "float32", "units": 10, "activation": "softmax", "use_bias": True,
        "kernel_initializer": glorot, "bias_initializer": zeros, "kernel_regularizer": None, "bias_regularizer": None,
        "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None,
    }
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 28, 28, 1], "dtype": "float32", "sparse": False, "ragged": False, "name": "conv2d_input"}},
        {"class_name": "Conv2D", "config": conv},
        {"class_name": "MaxPooling2D", "config": {"name": "max_pooling2d", "trainable": True, "dtype": "float32", "pool_size": [2, 2], "padding": "valid", "strides": [2, 2], "data_format": "channels_last"}},
        {"class_name": "Flatten", "config": {"name": "flatten", "trainable": True, "dtype": "float32", "data_format": "channels_last"}},
        {"class_name": "Dense", "config": dense},
    ]}}


def save_keras2_model(model: keras.Model, path) -> None:
    """small_cnn saved as a Keras 2.4 whole-model .h5: Keras 2's config and version attributes, the same weight groups."""
    model.save(path)
    with h5py.File(path, "r+") as handle:
        handle.attrs["model_config"] = json.dumps(keras2_config())
        handle.attrs["keras_version"] = handle["model_weights"].attrs["keras_version"] = "2.4.0"
        handle.attrs["training_config"] = json.dumps({"loss": "categorical_crossentropy", "metrics": ["accuracy"], "optimizer_config": {
            "class_name": "RMSprop", "config": {"name": "RMSprop", "learning_rate": 0.001, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-07, "centered": False}}})


def one_error_line(capsys) -> str:
    """The command's stderr, which must be exactly one line."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture(scope="module")
def test_images(small_data):
    return small_data.x_test[:64]


# ---------------------------------------------------------------- a .keras file made with plain Keras


@pytest.mark.slow
def test_plain_keras_sequential_goes_evaluate_then_report(tmp_path, small_data, capsys):
    model = small_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(small_data.x_train, small_data.y_train, epochs=1, batch_size=64, verbose=0)
    path = tmp_path / "mine.keras"
    model.save(path)

    assert main(["evaluate", "--model", str(path), *LIMIT, "--out", str(tmp_path / "runs"), "--name", "mine"]) == 0
    run = open_run(tmp_path / "runs" / "mine")
    expected = float(np.mean(model.predict(small_data.x_test, verbose=0).argmax(axis=1) == small_data.y_test))
    assert run.read_metrics()["test_accuracy"] == pytest.approx(expected, abs=1e-9)  # the same 1,000 test images
    assert run.state() == "finished"
    assert main(["report", str(run.path)]) == 0
    html = run.report_path.read_text(encoding="utf-8")
    assert "Imported model" in html and hashlib.sha256(path.read_bytes()).hexdigest()[:16] in html
    assert f"convscope report --model {path}" in html  # how to repeat it, not `convscope run` (which cannot train a file)
    assert "Run folder: " in capsys.readouterr().out


def test_import_writes_a_run_folder_every_stage_reads(tmp_path, small_data, test_images):
    model = small_cnn()
    path = tmp_path / "mine.keras"
    model.save(path)
    config = Config()
    config.data.limit_train, config.model.name, config.run.out = 384, str(path), str(tmp_path)

    imported = import_model(config)

    run = imported.run
    assert run.path.name.startswith("mnist-sample-mine-")  # <dataset>-<file name>-<time>
    assert run.read_config().model.name == str(path) and config.run.name is None  # the caller's config is left alone
    assert run.read_data_description()["input_shape"] == [28, 28, 1]
    described = run.read_environment()["imported"]["model"]
    assert described["format"] == "Keras archive" and described["saved_by_keras"] == keras.__version__
    assert described["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    np.testing.assert_array_equal(run.load_model().predict(test_images, verbose=0), model.predict(test_images, verbose=0))
    assert not run.history_path.exists() and not run.checkpoint_dir.exists()


# ---------------------------------------------------------------- a legacy whole-model .h5 from the Keras 2 era


def test_keras2_whole_model_h5_loads_only_with_trust_model(tmp_path, capsys, test_images):
    model = small_cnn()
    path = tmp_path / "lesson.h5"
    save_keras2_model(model, path)
    out = tmp_path / "runs"

    assert main(["inspect", "--model", str(path), *LIMIT, "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert str(path) in line and "--trust-model" in line and "run arbitrary code" in line
    assert not out.exists()  # refused before any folder was made

    config = Config()
    config.data.limit_train, config.model.name, config.model.trust_model, config.run.out = 384, str(path), True, str(out)
    imported = import_model(config)
    assert imported.run.read_environment()["imported"]["model"]["saved_by_keras"] == "2.4.0"
    np.testing.assert_allclose(imported.model.predict(test_images, verbose=0), model.predict(test_images, verbose=0), atol=1e-6)
    # model.keras, saved again by Keras 3, loads in safe mode: the later stages need no trust
    np.testing.assert_allclose(imported.run.load_model().predict(test_images, verbose=0), model.predict(test_images, verbose=0), atol=1e-6)


# ---------------------------------------------------------------- weights-only checkpoints into an architecture


@pytest.mark.parametrize("file_name", list(WEIGHT_WRITERS))
def test_weights_checkpoint_loads_into_cnn_2conv_and_predicts_the_same(tmp_path, file_name, test_images, capsys):
    keras.utils.set_random_seed(1)
    notebook_model = lesson_cnn()  # weights of its own random initialization, unlike any cnn_2conv
    path = tmp_path / file_name
    WEIGHT_WRITERS[file_name](notebook_model, path)

    assert main(["inspect", "--model", "cnn_2conv", "--weights", str(path), *LIMIT, "--out", str(tmp_path), "--name", "ckpt", "--images", "0"]) == 0
    run = open_run(tmp_path / "ckpt")
    assert run.read_config().model.weights == str(path) and run.read_config().model.name == "cnn_2conv"
    expected = notebook_model.predict(test_images, verbose=0)
    np.testing.assert_allclose(run.load_model().predict(test_images, verbose=0), expected, atol=1e-6)
    assert (run.load_model().predict(test_images, verbose=0).argmax(axis=1) == expected.argmax(axis=1)).all()
    assert "--trust-model" not in capsys.readouterr().err  # weights are arrays: nothing to trust


def test_train_starts_from_the_weights_file(tmp_path, small_data, test_images):
    notebook_model = lesson_cnn()
    path = tmp_path / "start.weights.h5"
    notebook_model.save_weights(path)
    config = Config()
    config.model.name, config.model.weights = "cnn_2conv", str(path)

    _, model, _ = prepare_training(config, dataset=small_data)

    np.testing.assert_allclose(model.predict(test_images, verbose=0), notebook_model.predict(test_images, verbose=0), atol=1e-6)


# ---------------------------------------------------------------- bad input: one line naming both sides, exit 2


MISMATCHED_WEIGHTS = {
    # name: (the model that saved the weights, texts the line must hold)
    "class count": (lambda: lesson_cnn(num_classes=3), ["(128, 3)", "(128, 10)", "saved for 3 classes, the data has 10", "'predictions'"]),
    "image size": (lambda: lesson_cnn(input_shape=(32, 32, 1)), ["(12544, 128)", "(9216, 128)", "'dense1'"]),
    "channels": (lambda: lesson_cnn(input_shape=(28, 28, 3)), ["(3, 3, 3, 32)", "(3, 3, 1, 32)", "3 channels, the data has 1"]),
    # Keras 3 alone loads this file without a word, leaving the batch normalization's arrays unused
    "extra layer": (lambda: lesson_cnn(extra=[layers.BatchNormalization()]), ["5 layers", "batch_normalization", "has 4 layers with weights (conv1, conv2, dense1, predictions)"]),
}


@pytest.mark.parametrize("file_name", ["keras3.weights.h5", "keras2.hdf5"])
@pytest.mark.parametrize("case", list(MISMATCHED_WEIGHTS))
def test_mismatched_weights_are_one_line_naming_both_sides(tmp_path, case, file_name, capsys):
    make_model, expected_texts = MISMATCHED_WEIGHTS[case]
    path = tmp_path / file_name
    WEIGHT_WRITERS[file_name](make_model(), path)

    assert main(["evaluate", "--model", "cnn_2conv", "--weights", str(path), *LIMIT, "--out", str(tmp_path / "runs")]) == 2

    line = one_error_line(capsys)
    assert line.startswith(f"convscope: error: {path}: ")
    assert "cnn_2conv (built for (28, 28, 1) images and 10 classes)" in line
    for text in expected_texts:
        assert text in line
    assert not (tmp_path / "runs").exists()


MISMATCHED_MODELS = {
    "class count": (lambda: small_cnn(num_classes=3), "the model gives 3 classes per image, dataset mnist-sample has 10 classes"),
    "input shape": (lambda: small_cnn(input_shape=(32, 32, 3)), "the model takes images of shape (32, 32, 3), dataset mnist-sample has (28, 28, 1)"),
}


@pytest.mark.parametrize("case", list(MISMATCHED_MODELS))
def test_model_file_that_does_not_fit_the_data_is_one_line(tmp_path, case, capsys):
    make_model, expected = MISMATCHED_MODELS[case]
    path = tmp_path / "other.keras"
    make_model().save(path)

    assert main(["report", "--model", str(path), *LIMIT, "--out", str(tmp_path / "runs")]) == 2

    line = one_error_line(capsys)
    assert line == f"convscope: error: {path}: {expected}; pass the dataset it was trained on with --dataset" + (
        " (an image folder: --image-size H,W and --color-mode)" if case == "input shape" else "")
    assert not (tmp_path / "runs").exists()


def bad_inputs(tmp_path) -> dict:
    """(argv, what the one line must say) for each way to get the import wrong."""
    weights = tmp_path / "w.weights.h5"
    lesson_cnn().save_weights(weights)
    text = tmp_path / "notes.h5"
    text.write_text("not HDF5")
    renamed = tmp_path / "renamed.h5"
    renamed.write_bytes(weights.read_bytes())
    keras_file = tmp_path / "m.keras"
    small_cnn().save(keras_file)
    truncated = tmp_path / "truncated.hdf5"
    save_keras2_weights(lesson_cnn(), truncated)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    lying = tmp_path / "lying.hdf5"
    with h5py.File(lying, "w") as handle:
        handle.attrs["layer_names"] = [b"conv2d", b"dense"]  # names groups the file does not have
    return {
        "weights as a model": (["evaluate", "--model", str(weights)], f"{weights}: holds weights only, no architecture; pass the architecture they were saved from and the file as its weights: --model NAME --weights {weights}"),
        "architecture alone": (["evaluate", "--model", "cnn_2conv"], "--model cnn_2conv: an architecture alone has untrained weights; pass the weights it was trained to with --weights FILE, or a saved model file (.keras; .h5 with --trust-model)"),
        "not HDF5": (["evaluate", "--model", "cnn_2conv", "--weights", str(text)], f"{text}: not a readable HDF5 file ("),
        "Keras 3 weights renamed": (["evaluate", "--model", "cnn_2conv", "--weights", str(renamed)], f"{renamed}: holds Keras 3 weights, which Keras reads only from a file whose name ends in .weights.h5; rename it to renamed.weights.h5"),
        ".keras as weights": (["evaluate", "--model", "cnn_2conv", "--weights", str(keras_file)], f"{keras_file}: a .keras file holds its own architecture; pass it as the model (--model {keras_file}), without --weights"),
        "truncated weights": (["evaluate", "--model", "cnn_2conv", "--weights", str(truncated)], f"{truncated}: not a readable HDF5 file ("),
        "damaged weights": (["evaluate", "--model", "cnn_2conv", "--weights", str(lying)], f"{lying}: a damaged Keras 2 weights file (KeyError: "),
        "missing file": (["evaluate", "--model", str(tmp_path / "gone.keras")], f"{tmp_path / 'gone.keras'}: model file not found"),
        "neither": (["evaluate"], "convscope evaluate: pass a run folder, or a model file to import with --model FILE --dataset D"),
        "both": (["inspect", str(tmp_path), "--model", str(keras_file)], f"pass either a run folder ({tmp_path}) or --model {keras_file}, not both"),
        "import flag on a run": (["report", str(tmp_path), "--dataset", "mnist"], "--dataset applies only with --model (importing a model file)"),
    }


def test_bad_import_inputs_are_one_line_each(tmp_path, capsys):
    for name, (argv, expected) in bad_inputs(tmp_path).items():
        assert main([*argv, "--out", str(tmp_path / "runs")] if "--model" in argv else argv) == 2, name
        line = one_error_line(capsys)
        assert line.startswith(f"convscope: error: {expected}"), (name, line)
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- TensorBoard


def read_scalars(log_dir) -> dict[tuple[str, str], dict[int, float]]:
    """(train|validation, tag) -> {step: value} from the event files under ``log_dir``, with TensorFlow's own reader."""
    import tensorflow as tf

    scalars = {}
    for path in sorted(glob.glob(f"{log_dir}/**/events.out.tfevents.*", recursive=True)):
        part = "validation" if "/validation/" in path else "train"
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    scalars.setdefault((part, value.tag), {})[event.step] = float(tf.make_ndarray(value.tensor))
    return scalars


def test_tensorboard_callback_writes_scalars_with_plain_fit(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 8, 8, 1), dtype=np.float32), rng.integers(0, 3, 32)
    model = small_cnn(num_classes=3, input_shape=(8, 8, 1))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=2, validation_data=(x, y), verbose=0, callbacks=[create_tensorboard_callback(tmp_path)]).history

    scalars = read_scalars(tmp_path)
    assert scalars[("train", "epoch_loss")] == pytest.approx(dict(enumerate(history["loss"])), rel=1e-6)
    assert scalars[("validation", "epoch_accuracy")] == pytest.approx(dict(enumerate(history["val_accuracy"])), rel=1e-6)


@pytest.mark.slow
def test_tensorboard_logs_of_a_two_epoch_run_hold_its_loss_and_accuracy(tmp_path, small_data):
    config = Config()
    config.model.name, config.train.epochs, config.train.tensorboard = "mnist_fast", 2, True
    config.run.out, config.run.name = str(tmp_path), "tb"

    result = train(config, dataset=small_data)

    history = result.run.read_history()
    scalars = read_scalars(result.run.tensorboard_dir)
    for part, prefix in (("train", ""), ("validation", "val_")):
        for metric in ("loss", "accuracy"):
            logged = scalars[(part, f"epoch_{metric}")]
            assert sorted(logged) == [0, 1]  # Keras' epoch steps, from 0
            np.testing.assert_allclose([logged[0], logged[1]], history[prefix + metric], rtol=1e-5)  # history.csv keeps 6 digits
    np.testing.assert_allclose([scalars[("train", "epoch_learning_rate")][step] for step in (0, 1)], history["learning_rate"], rtol=1e-5, atol=1e-12)
    assert yaml.safe_load(result.run.config_path.read_text())["train"]["tensorboard"] is True


# ---------------------------------------------------------------- Keras 2 history keys


def test_keras2_history_keys_draw_accuracy_curves():
    keras2 = {"loss": [0.9, 0.5, 0.4], "acc": [0.6, 0.8, 0.85], "val_loss": [0.8, 0.6, 0.5], "val_acc": [0.7, 0.78, 0.81]}

    figure = plot_training_curves(history_columns(keras2))

    accuracy_axes = figure.axes[1]
    title, texts = accuracy_axes.get_title(), accuracy_axes.texts
    drawn = {line.get_label(): list(line.get_ydata()) for line in accuracy_axes.get_lines()}
    plt.close(figure)
    assert title == "Accuracy" and not texts  # not "no accuracy recorded"
    assert drawn["train"] == keras2["acc"] and drawn["validation"] == keras2["val_acc"]


@pytest.mark.slow
def test_build_report_with_keras2_history_shows_accuracy(tmp_path):
    x, y, model, history = fit_notebook_model((12, 12, 1), num_classes=3, filters=4, epochs=2)
    renamed = {{"accuracy": "acc", "val_accuracy": "val_acc"}.get(key, key): values for key, values in history.history.items()}

    html = build_report(model, (x[48:], y[48:]), history=renamed, out=tmp_path / "report.html").read_text(encoding="utf-8")

    assert 'scope="col">Accuracy</th>' in html and 'scope="col">Validation accuracy</th>' in html  # not "acc", "val acc"
    assert f"{renamed['val_acc'][-1]:.4f}" in html
