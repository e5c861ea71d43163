"""The lesson presets: each builds the lesson's own layers, trains with its split and keeps its weights.

The expected layer lists below are typed from the lessons' printed code and
model.summary() output (../shared/lessons/), not read from the zoo: a zoo model
that drifts from its lesson fails here.
"""

from __future__ import annotations

import io
import json
import pickle
import tarfile

import numpy as np
import pytest

from convscope.cli import main
from convscope.config import PRESETS, resolve_config
from convscope.data.preprocess import split_validation
from convscope.errors import ConvscopeError
from convscope.lessons import LESSON_PRESETS, LESSON_RUNS, find_lesson_run, format_lessons_table
from convscope.model_catalog import MODEL_CATALOG

MNIST, CIFAR = (28, 28, 1), (32, 32, 3)

# (layer type, output shape without the batch, parameters, settings), per lesson model.
# Conv2D settings: filters, kernel, stride, padding, activation; Dense: units, activation.
LESSON_LAYERS = {
    # Exercise 5, In [14]: "Total params: 216,650"
    "ex5-conv": (MNIST, 216_650, [
        ("Conv2D", (26, 26, 32), 320, (32, 3, 1, "valid", "relu")),
        ("Flatten", (21632,), 0, ()),
        ("Dense", (10,), 216_330, (10, "softmax")),
    ]),
    # Exercise 5, In [19]: "Total params: 2,770,634"
    "ex5-conv-dense": (MNIST, 2_770_634, [
        ("Conv2D", (26, 26, 32), 320, (32, 3, 1, "valid", "relu")),
        ("Dropout", (26, 26, 32), 0, (0.25,)),
        ("Flatten", (21632,), 0, ()),
        ("Dense", (128,), 2_769_024, (128, "relu")),
        ("Dropout", (128,), 0, (0.5,)),
        ("Dense", (10,), 1_290, (10, "softmax")),
    ]),
    # Exercise 5, In [23]: "Total params: 1,199,882"
    "ex5-conv2-pool": (MNIST, 1_199_882, [
        ("Conv2D", (26, 26, 32), 320, (32, 3, 1, "valid", "relu")),
        ("Conv2D", (24, 24, 64), 18_496, (64, 3, 1, "valid", "relu")),
        ("MaxPooling2D", (12, 12, 64), 0, (2,)),
        ("Dropout", (12, 12, 64), 0, (0.25,)),
        ("Flatten", (9216,), 0, ()),
        ("Dense", (128,), 1_179_776, (128, "relu")),
        ("Dropout", (128,), 0, (0.5,)),
        ("Dense", (10,), 1_290, (10, "softmax")),
    ]),
    # CNN intuition lecture, MNIST: "Total params: 220,234"
    "lecture-mnist-cnn": (MNIST, 220_234, [
        ("Conv2D", (28, 28, 32), 320, (32, 3, 1, "same", "relu")),
        ("MaxPooling2D", (14, 14, 32), 0, (2,)),
        ("Conv2D", (14, 14, 64), 18_496, (64, 3, 1, "same", "relu")),
        ("MaxPooling2D", (7, 7, 64), 0, (2,)),
        ("Flatten", (3136,), 0, ()),
        ("Dense", (64,), 200_768, (64, "relu")),
        ("Dense", (10,), 650, (10, "softmax")),
    ]),
    # CNN intuition lecture, CIFAR-10: "Total params: 541,094"
    "lecture-cifar-cnn": (CIFAR, 541_094, [
        ("Conv2D", (32, 32, 16), 448, (16, 3, 1, "same", "relu")),
        ("MaxPooling2D", (16, 16, 16), 0, (2,)),
        ("Conv2D", (16, 16, 32), 4_640, (32, 3, 1, "same", "relu")),
        ("MaxPooling2D", (8, 8, 32), 0, (2,)),
        ("Conv2D", (8, 8, 64), 18_496, (64, 3, 1, "same", "relu")),
        ("MaxPooling2D", (4, 4, 64), 0, (2,)),
        ("Dropout", (4, 4, 64), 0, (0.3,)),
        ("Flatten", (1024,), 0, ()),
        ("Dense", (500,), 512_500, (500, "relu")),
        ("Dropout", (500,), 0, (0.4,)),
        ("Dense", (10,), 5_010, (10, "softmax")),
    ]),
    # Keras intro blog post: "Total params: 54,410.0", two Dropout layers
    "blog-mnist-cnn": (MNIST, 54_410, [
        ("Conv2D", (26, 26, 32), 320, (32, 3, 1, "valid", "relu")),
        ("MaxPooling2D", (13, 13, 32), 0, (2,)),
        ("Dropout", (13, 13, 32), 0, (0.25,)),
        ("Flatten", (5408,), 0, ()),
        ("Dropout", (5408,), 0, (0.5,)),
        ("Dense", (10,), 54_090, (10, "softmax")),
    ]),
    # Neural-networks lesson, CNN: "Total params: 34,826", Dropout(0.2)
    "nn-lesson-cnn": (MNIST, 34_826, [
        ("Conv2D", (26, 26, 32), 320, (32, 3, 1, "valid", "relu")),
        ("MaxPooling2D", (13, 13, 32), 0, (2,)),
        ("Conv2D", (11, 11, 64), 18_496, (64, 3, 1, "valid", "relu")),
        ("MaxPooling2D", (5, 5, 64), 0, (2,)),
        ("Flatten", (1600,), 0, ()),
        ("Dropout", (1600,), 0, (0.2,)),
        ("Dense", (10,), 16_010, (10, "softmax")),
    ]),
    # Neural-networks lesson, MLP: "Total params: 13,002"
    "nn-lesson-mlp": (MNIST, 13_002, [
        ("Flatten", (784,), 0, ()),
        ("Dense", (16,), 12_560, (16, "relu")),
        ("Dense", (16,), 272, (16, "relu")),
        ("Dense", (10,), 170, (10, "softmax")),
    ]),
    # Exercise 12.1, the printed summary (the code cell shows only three of the six convolutions):
    # "Total params: 73,498"; strides from the output shapes, ELU and 5x5 from the code.
    "ex12-cifar-elu": (CIFAR, 73_498, [
        ("Conv2D", (32, 32, 16), 1_216, (16, 5, 1, "same", "elu")),
        ("Conv2D", (32, 32, 16), 2_320, (16, 3, 1, "same", "elu")),
        ("Conv2D", (16, 16, 32), 4_640, (32, 3, 2, "same", "elu")),
        ("Conv2D", (16, 16, 32), 9_248, (32, 3, 1, "same", "elu")),
        ("Conv2D", (8, 8, 64), 18_496, (64, 3, 2, "same", "elu")),
        ("Conv2D", (8, 8, 64), 36_928, (64, 3, 1, "same", "elu")),
        ("GlobalMaxPooling2D", (64,), 0, ()),
        ("Dropout", (64,), 0, (0.5,)),
        ("Dense", (10,), 650, (10, "softmax")),
    ]),
}


def describe_layer(layer) -> tuple:
    """(type, output shape, parameters, settings) of a built Keras layer, in LESSON_LAYERS' terms."""
    kind = type(layer).__name__
    config = layer.get_config()
    if kind == "Conv2D":
        assert config["kernel_size"][0] == config["kernel_size"][1] and config["strides"][0] == config["strides"][1]
        settings = (config["filters"], config["kernel_size"][0], config["strides"][0], config["padding"], config["activation"])
    elif kind == "Dense":
        settings = (config["units"], config["activation"])
    elif kind == "MaxPooling2D":
        assert tuple(config["strides"]) == tuple(config["pool_size"]) and config["padding"] == "valid"
        settings = (config["pool_size"][0],)
    elif kind == "Dropout":
        settings = (config["rate"],)
    else:
        settings = ()
    return (kind, tuple(layer.output.shape[1:]), layer.count_params(), settings)


# The neural-networks lesson's scikit-learn MLPs: hidden layers, parameters (784*16+16 + 16*16+16 + 16*10+10;
# 784*40+40 + 40*10+10), early_stopping, max_iter, as its MLPClassifier(...) calls and defaults give them.
LESSON_SKLEARN = {
    "nn-lesson-sklearn-16x16": ((16, 16), 13_002, False, 50),
    "nn-lesson-sklearn-40": ((40,), 31_810, True, 200),
}


def test_every_lesson_preset_has_an_expected_layer_list():
    assert set(LESSON_LAYERS) | set(LESSON_SKLEARN) == set(LESSON_PRESETS)
    assert set(LESSON_PRESETS) <= set(PRESETS)


@pytest.mark.parametrize("preset", sorted(LESSON_SKLEARN))
def test_sklearn_preset_is_the_lessons_mlpclassifier(preset):
    from convscope.baseline import baseline_config, create_estimator, parse_baseline_name

    hidden, total, early_stopping, max_iter = LESSON_SKLEARN[preset]
    config = baseline_config(resolve_config(overrides={"train": {"preset": preset}}))
    spec = parse_baseline_name(config.model.name)
    assert spec.hidden_layer_sizes == hidden and find_lesson_run(preset).params == total
    sizes = [784, *hidden, 10]
    assert sum(n_in * n_out + n_out for n_in, n_out in zip(sizes, sizes[1:])) == total
    params = create_estimator(spec, config).get_params()
    assert (params["early_stopping"], params["max_iter"], params["batch_size"], params["learning_rate_init"]) == (early_stopping, max_iter, 200, 1e-3)
    assert params["n_iter_no_change"] == 10 and config.data.test_split == 0.2 and config.train.preset == preset


def test_train_refuses_a_sklearn_preset_naming_the_command(tmp_path, capsys):
    assert main(["train", "--preset", "nn-lesson-sklearn-40", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "run `convscope baseline --preset nn-lesson-sklearn-40` instead" in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())


def test_baseline_refuses_a_keras_preset_naming_the_command(tmp_path, capsys):
    assert main(["baseline", "--preset", "ex5-conv", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--preset ex5-conv trains the Keras model cnn_single" in err and "`convscope run --preset ex5-conv`" in err
    assert err.count("\n") == 1 and not any(tmp_path.iterdir())


@pytest.mark.slow
def test_sklearn_preset_runs_as_a_baseline_on_openmls_80_20(tmp_path):
    code = main(["baseline", "--preset", "nn-lesson-sklearn-16x16", "--dataset", "mnist-sample", "--epochs", "2", "--out", str(tmp_path), "--name", "mlp"])
    assert code == 0
    environment = json.loads((tmp_path / "mlp" / "environment.json").read_text())
    assert environment["estimator"]["params"]["early_stopping"] is False
    data = json.loads((tmp_path / "mlp" / "data.json").read_text())
    assert data["preprocessing"]["sizes"] == {"train": 5600, "val": 0, "test": 1400}
    assert "pooled" in data["preprocessing"]["test_split"]


@pytest.mark.parametrize("preset", sorted(LESSON_LAYERS))
def test_preset_model_is_the_lessons_layer_list(preset):
    from convscope.models import create_model

    input_shape, total, expected = LESSON_LAYERS[preset]
    config = resolve_config(overrides={"train": {"preset": preset}})
    model = create_model(config.model.name, input_shape, 10)
    assert [describe_layer(layer) for layer in model.layers] == expected
    assert model.count_params() == total == find_lesson_run(preset).params


# --------------------------------------------------------------------------- presets as configs


def test_lesson_presets_fix_the_recipe_not_convscope_defaults():
    for run in LESSON_RUNS:
        config = resolve_config(overrides={"train": {"preset": run.preset}})
        assert config.train.schedule == "constant" and config.train.learning_rate == 1e-3, run.preset
        assert config.train.early_stop == (10 if run.preset == "nn-lesson-sklearn-40" else 0), run.preset  # MLPClassifier's n_iter_no_change
        assert config.data.dataset in ("mnist", "cifar10"), run.preset
    ex5 = resolve_config(overrides={"train": {"preset": "ex5-conv"}})
    assert (ex5.data.scale, ex5.data.validation, ex5.data.val_split, ex5.data.val_seed) == ("minmax", "random", 0.3, 1338)
    assert (ex5.train.optimizer, ex5.train.batch_size, ex5.train.epochs, ex5.train.keep) == ("adam", 256, 10, "last")
    lecture = resolve_config(overrides={"train": {"preset": "lecture-mnist-cnn"}})
    assert (lecture.data.validation, lecture.train.optimizer, lecture.train.batch_size, lecture.train.keep) == ("test", "rmsprop", 64, "best")
    blog = resolve_config(overrides={"train": {"preset": "blog-mnist-cnn"}})
    assert (blog.data.limit_train, blog.data.validation, blog.train.epochs, blog.train.batch_size) == (20000, "test", 6, 128)
    ex12 = resolve_config(overrides={"train": {"preset": "ex12-cifar-elu"}})
    assert (ex12.data.scale, ex12.data.validation, ex12.data.val_split) == ("centered", "last", 0.1)
    assert ex12.train.reduce_lr == (0.5, 3, 1e-5) and (ex12.train.epochs, ex12.train.batch_size, ex12.train.keep) == (30, 32, "last")
    cifar = resolve_config(overrides={"train": {"preset": "lecture-cifar-cnn"}})
    assert (cifar.data.val_first, cifar.train.epochs, cifar.train.batch_size, cifar.train.keep) == (5000, 1, 32, "best")


def test_flags_override_a_lesson_preset():
    config = resolve_config(overrides={"train": {"preset": "ex5-conv", "epochs": 1, "keep": "best"}, "data": {"val_seed": 7}})
    assert (config.train.epochs, config.train.keep, config.data.val_seed, config.train.batch_size) == (1, "best", 7, 256)


def test_lessons_table_lists_every_preset_with_its_printed_result():
    text = format_lessons_table()
    for run in LESSON_RUNS:
        row = next(line for line in text.splitlines() if line.startswith(run.preset + " "))
        assert run.model in row and f"{run.params:,}" in row and run.printed in row
    assert "73,498" in text and "printed summary" in text  # Exercise 12.1 says which of code and summary it follows


def test_lesson_parameter_counts_are_the_zoo_catalogs():
    # `convscope lessons` and `convscope models` both print them; tests/test_models.py checks the catalog against Keras.
    zoo_runs = [run for run in LESSON_RUNS if run.model in MODEL_CATALOG]
    assert len(zoo_runs) == len(LESSON_RUNS) - len(LESSON_SKLEARN)
    for run in zoo_runs:
        assert run.params == MODEL_CATALOG[run.model].num_params, run.preset


# --------------------------------------------------------------------------- splits


def test_random_split_is_scikit_learns_train_test_split():
    from sklearn.model_selection import train_test_split

    labels = np.arange(1000) % 10
    train_index, val_index, rule = split_validation(labels, 0.3, 0, 0, seed=1338, method="random")
    kept, held = train_test_split(np.arange(1000), test_size=0.3, random_state=1338)
    assert np.array_equal(train_index, np.sort(kept)) and np.array_equal(val_index, np.sort(held))
    assert "seed 1338" in rule


def test_last_split_is_keras_validation_split():
    train_index, val_index, rule = split_validation(np.zeros(1005), 0.1, 0, 0, seed=0, method="last")
    split_at = int(1005 * 0.9)  # Keras: x[:split_at] trains, x[split_at:] validates
    assert np.array_equal(train_index, np.arange(split_at)) and np.array_equal(val_index, np.arange(split_at, 1005))
    assert "last" in rule


def test_test_split_pools_training_and_test_images_as_train_test_split():
    from sklearn.model_selection import train_test_split

    from convscope.data import load_dataset

    whole = load_dataset("mnist-sample", val_split=0)
    pooled = load_dataset("mnist-sample", val_split=0, test_split=0.2, val_seed=3)
    all_x = np.concatenate([whole.x_train, whole.x_test])
    kept, held = train_test_split(np.arange(len(all_x)), test_size=0.2, random_state=3)
    np.testing.assert_array_equal(pooled.x_test, all_x[np.sort(held)])
    np.testing.assert_array_equal(pooled.x_train, all_x[np.sort(kept)])
    assert (len(pooled.y_train), len(pooled.y_test)) == (5600, 1400)


def test_validation_on_the_test_set_uses_the_test_images(small_data):
    from convscope.data import load_dataset

    data = load_dataset("mnist-sample", validation="test", limit_train=200)
    assert data.x_val is data.x_test and np.array_equal(data.y_val, data.y_test)
    assert data.preprocessing["sizes"] == {"train": 200, "val": 1000, "test": 1000}
    assert "leaks" in data.preprocessing["validation"]


# --------------------------------------------------------------------------- bad values


@pytest.mark.parametrize("flags, expected", [
    (["--keep", "worst"], "argument --keep: invalid choice: 'worst'"),
    (["--validation", "holdout"], "argument --validation: invalid choice: 'holdout'"),
    (["--preset", "ex99"], "unknown preset 'ex99'"),
    (["--validation", "test", "--val-first", "5"], "data.validation=test with data.val_first=5"),
])
def test_bad_lesson_flags_are_one_line_exit_2(flags, expected, tmp_path, capsys):
    try:
        code = main(["train", *flags, "--out", str(tmp_path)])
    except SystemExit as stop:  # argparse refuses a bad choice itself
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2
    assert expected in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("yaml_text, expected", [
    ("train:\n  keep: worst\n", "train.keep='worst'; expected best or last"),
    ("data:\n  validation: holdout\n", "data.validation='holdout'; expected one of stratified, random, last, test"),
])
def test_bad_values_in_config_yaml(yaml_text, expected, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConvscopeError, match=expected.replace("(", r"\(")):
        resolve_config(path)


# --------------------------------------------------------------------------- keep last / best


def reversed_validation_dataset():
    """Training and validation images alike, validation labels shifted by one: the more the network
    learns, the worse its validation loss, so the best val_loss epoch is the first and never the last."""
    from convscope.data.dataset import Dataset

    rng = np.random.default_rng(0)
    patterns = rng.random((4, 8, 8, 1)).astype("float32")

    def images(labels):
        return (patterns[labels] + 0.1 * rng.standard_normal((len(labels), 8, 8, 1))).astype("float32")

    y_train, y_val, y_test = rng.integers(0, 4, 256), rng.integers(0, 4, 64), rng.integers(0, 4, 64)
    return Dataset(
        name="shifted", x_train=images(y_train), y_train=y_train, x_val=images(y_val), y_val=(y_val + 1) % 4,
        x_test=images(y_test), y_test=y_test, class_names=["a", "b", "c", "d"], preprocessing={"scale": "none"}, source="test",
    )


@pytest.mark.slow
@pytest.mark.parametrize("keep", ["best", "last"])
def test_keep_decides_which_epochs_weights_are_evaluated(keep, tmp_path):
    import keras

    from convscope.config import Config
    from convscope.models import load_model
    from convscope.train import train

    config = Config()
    config.model.name = "mlp_16x16"
    config.train.epochs, config.train.batch_size, config.train.schedule, config.train.learning_rate = 2, 32, "constant", 1e-2
    config.train.keep = keep
    config.run.out, config.run.name = str(tmp_path), keep
    result = train(config, dataset=reversed_validation_dataset())
    history, metrics = result.history, result.metrics
    assert history["val_loss"][0] < history["val_loss"][1]  # the data makes epoch 1 the best
    assert metrics["best_epoch"] == 1 and metrics["kept"] == keep
    kept_epoch = 1 if keep == "best" else 2
    assert metrics["kept_epoch"] == kept_epoch
    checkpoint = keras.saving.load_model(result.run.checkpoint_dir / f"epoch-{kept_epoch:04d}.keras")
    saved = load_model(result.run.model_path)
    for expected, evaluated, on_disk in zip(checkpoint.get_weights(), result.model.get_weights(), saved.get_weights()):
        np.testing.assert_array_equal(evaluated, expected)
        np.testing.assert_array_equal(on_disk, expected)
    x_test = result.dataset.x_test
    probabilities = np.load(result.run.path / "predictions.npz")["probabilities"]
    np.testing.assert_allclose(probabilities, checkpoint.predict(x_test, verbose=0), atol=1e-6)


def test_validation_test_warns_and_the_report_says_so(tmp_path, capsys):
    from convscope.html.report import read_run_sources, run_facts
    from convscope.runfolder import RunFolder

    code = main([
        "train", "--validation", "test", "--keep", "last", "--limit-train", "128", "--epochs", "1",
        "--model", "mlp_16x16", "--out", str(tmp_path), "--name", "leak",
    ])
    assert code == 0
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if "leaks it into model selection" in line]
    assert len(warning) == 1 and warning[0].startswith("convscope: warning: validating on the test set")
    run = RunFolder(tmp_path / "leak")
    data = json.loads((run.path / "data.json").read_text())
    assert "test set" in json.dumps(data)
    facts = dict(run_facts(read_run_sources(run)))
    assert "leaks the test set into model selection" in facts["Validation"]
    assert facts["Weights evaluated"] == "the last epoch's (--keep last)"
    assert "keep: last" in (run.path / "config.yaml").read_text()


def test_training_facts_say_which_epoch_was_kept():
    from convscope.html.facts import training_facts

    metrics = {"epochs_run": 3, "best_epoch": 1, "best_val_loss": 0.5, "kept": "last", "kept_epoch": 3}
    facts = dict(training_facts(metrics, {}))
    assert facts["Kept in model.keras"] == "epoch 3, the last (--keep last)"
    assert facts["Best epoch (by validation loss; not kept)"].startswith("epoch 1")
    for same in ({**metrics, "kept": "best", "kept_epoch": 1}, {**metrics, "best_epoch": 3}):  # kept best, or the last was the best
        facts = dict(training_facts(same, {}))
        assert "Kept in model.keras" not in facts and facts["Best epoch (kept in model.keras)"].startswith(f"epoch {same['best_epoch']}")


def test_report_facts_of_an_old_config_keep_the_old_behaviour():
    from convscope.html.report import recipe_facts

    old = {"data": {"dataset": "mnist"}, "model": {"name": "mnist_convnet"}, "train": {"seed": 0, "preset": None}}
    assert recipe_facts(old) == [("Weights evaluated", "the epoch with the lowest validation loss (--keep best)")]
    unvalidated = {**old, "data": {"dataset": "mnist", "val_split": 0.0, "val_first": 0, "validation": "stratified"}}
    assert recipe_facts(unvalidated) == [("Weights evaluated", "the epoch with the lowest training loss (no validation set) (--keep best)")]


# --------------------------------------------------------------------------- CIFAR presets


def write_cifar_archive(folder, per_batch: int = 40):
    """A small cifar-10-python.tar.gz in the official layout: five training batches and a test batch."""
    from convscope.data import cifar

    rng = np.random.default_rng(0)
    members = {}
    for name in (*cifar.TRAIN_BATCHES, "test_batch"):
        batch = {
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"labels": [index % 10 for index in range(per_batch)],  # every 10 in a row hold each class: every split has all ten
        }
        members[name] = pickle.dumps(batch, protocol=2)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    members["batches.meta"] = pickle.dumps({b"label_names": names}, protocol=2)
    with tarfile.open(folder / cifar.ARCHIVE_NAME, "w:gz") as archive:
        for name, payload in members.items():
            info = tarfile.TarInfo("cifar-10-batches-py/" + name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))


@pytest.mark.usefixtures("isolated_locations")
@pytest.mark.parametrize("preset, flags", [
    ("lecture-cifar-cnn", ["--val-first", "20"]),  # the lesson's 5,000 scaled to the 200-image file
    ("ex12-cifar-elu", ["--epochs", "2"]),
])
def test_cifar_preset_trains_on_a_small_cifar_file(preset, flags, tmp_path):
    data_dir = tmp_path / "cifar"
    data_dir.mkdir()
    write_cifar_archive(data_dir)
    code = main(["train", "--preset", preset, "--data-dir", str(data_dir), "--no-download", *flags, "--out", str(tmp_path), "--name", preset])
    assert code == 0
    run = tmp_path / preset
    metrics = json.loads((run / "metrics.json").read_text())
    data = json.loads((run / "data.json").read_text())
    config = (run / "config.yaml").read_text()
    lesson = find_lesson_run(preset)
    assert f"name: {lesson.model}" in config and f"preset: {preset}" in config
    assert metrics["kept"] == lesson.settings["train"]["keep"]
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    sizes = json.dumps(data)
    if preset == "ex12-cifar-elu":  # Keras' validation_split=0.1: the last 20 of 200
        assert '"train": 180' in sizes and '"val": 20' in sizes and "(x - 128) / 128" in sizes
    else:
        assert '"train": 180' in sizes and '"val": 20' in sizes and "x / 255" in sizes


@pytest.mark.slow
def test_keep_last_survives_a_resume(tmp_path):
    import dataclasses

    from convscope.config import Config
    from convscope.train import train

    def config_for(name: str, epochs: int) -> Config:
        config = Config()
        config.model.name = "mlp_16x16"
        config.train = dataclasses.replace(config.train, epochs=epochs, batch_size=32, schedule="constant", learning_rate=1e-2, keep="last")
        config.run.out, config.run.name = str(tmp_path), name
        return config

    whole = train(config_for("whole", 2), dataset=reversed_validation_dataset())
    train(config_for("halves", 1), dataset=reversed_validation_dataset())
    resumed = train(config_for("halves", 2), dataset=reversed_validation_dataset(), resume=True)
    assert resumed.metrics["best_epoch"] == 1 and resumed.metrics["kept_epoch"] == 2
    for expected, actual in zip(whole.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_array_equal(actual, expected)
