"""Baseline contract: a scikit-learn MLP or logistic regression becomes a run folder like a Keras run's."""

import csv
import json

import keras
import numpy as np
import pytest
import yaml

from convscope.baseline import (
    baseline_config,
    baseline_name,
    create_keras_model,
    estimator_probabilities,
    flatten_images,
    parse_baseline_name,
)
from convscope.cli import main
from convscope.config import Config
from convscope.data import Dataset
from convscope.errors import ConvscopeError
from convscope.models import summarize
from convscope.pipeline import train_baseline


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory, small_data):
    config = Config()
    config.model.name = "sklearn-mlp-16x16"
    config.run.out, config.run.name = str(tmp_path_factory.mktemp("runs")), "mlp"
    return train_baseline(baseline_config(config), dataset=small_data)


def test_names():
    assert baseline_name("sklearn-mlp", (16, 16)) == "sklearn-mlp-16x16"
    assert baseline_name("sklearn-mlp", (40,)) == "sklearn-mlp-40"
    assert baseline_name("logistic") == "sklearn-logistic"
    assert parse_baseline_name("sklearn-mlp-40").hidden_layer_sizes == (40,)
    assert parse_baseline_name("sklearn-logistic").kind == "logistic"
    for bad in ("sklearn-mlp-", "sklearn-mlp-16x0", "sklearn-forest"):
        with pytest.raises(ConvscopeError, match="not a baseline name"):
            parse_baseline_name(bad)


@pytest.mark.slow
def test_mlp_run_folder_has_what_a_keras_run_has(mlp_run):
    folder = mlp_run.run.path
    for name in ("config.yaml", "environment.json", "data.json", "history.csv", "metrics.json", "predictions.npz",
                 "model.keras", "estimator.npz", "plots/dense_weights.png", "plots/confusion_matrix.png", "plots/training_curves.png"):
        assert (folder / name).is_file(), name
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["model"]["name"] == "sklearn-mlp-16x16"
    assert config["train"]["batch_size"] == 200 and config["train"]["early_stop"] == 10  # scikit-learn's defaults, recorded
    environment = json.loads((folder / "environment.json").read_text())
    assert environment["estimator"]["class"] == "MLPClassifier"
    assert environment["estimator"]["params"]["hidden_layer_sizes"] == [16, 16]
    assert environment["estimator"]["params"]["early_stopping"] is True
    metrics = mlp_run.metrics
    for key in ("test_loss", "test_accuracy", "best_val_accuracy", "train_seconds", "epochs_run", "best_epoch", "evaluation"):
        assert key in metrics, key
    estimator = mlp_run.estimator
    assert metrics["epochs_run"] == estimator.n_iter_
    assert metrics["best_epoch"] == int(np.argmax(estimator.validation_scores_)) + 1
    with open(folder / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == estimator.n_iter_
    np.testing.assert_allclose([float(row["loss"]) for row in rows], estimator.loss_curve_, rtol=1e-5)
    np.testing.assert_allclose([float(row["val_accuracy"]) for row in rows], estimator.validation_scores_, rtol=1e-5)


@pytest.mark.slow
def test_metrics_are_scikit_learns(mlp_run, small_data):
    estimator, metrics = mlp_run.estimator, mlp_run.metrics
    x_test = flatten_images(small_data.x_test, small_data.channels_first)
    assert metrics["test_accuracy"] == pytest.approx(estimator.score(x_test, small_data.y_test))
    assert metrics["evaluation"]["accuracy"] == pytest.approx(metrics["test_accuracy"])
    x_val = flatten_images(small_data.x_val, small_data.channels_first)
    assert metrics["best_val_accuracy"] == pytest.approx(estimator.score(x_val, small_data.y_val))
    from sklearn.metrics import log_loss

    assert metrics["test_loss"] == pytest.approx(log_loss(small_data.y_test, estimator.predict_proba(x_test)), rel=1e-4)


@pytest.mark.slow
def test_keras_copy_computes_the_estimator(mlp_run, small_data):
    model = keras.saving.load_model(mlp_run.run.model_path, safe_mode=True)
    expected = estimator_probabilities(mlp_run.estimator, small_data, small_data.x_test)
    np.testing.assert_allclose(model.predict(small_data.x_test, verbose=0), expected, atol=1e-5)
    with np.load(mlp_run.run.predictions_path, allow_pickle=False) as saved:
        np.testing.assert_allclose(saved["probabilities"], expected, atol=1e-5)
    with np.load(mlp_run.run.path / "estimator.npz", allow_pickle=False) as arrays:  # plain arrays, nothing pickled
        for index, kernel in enumerate(mlp_run.estimator.coefs_):
            np.testing.assert_array_equal(arrays[f"coefs_{index}"], kernel)
        assert str(arrays["estimator"]) == "MLPClassifier"


@pytest.mark.slow
def test_mflops_are_twice_the_weight_products(mlp_run):
    model = keras.saving.load_model(mlp_run.run.model_path, safe_mode=True)
    assert summarize(model).mflops == pytest.approx(2 * (784 * 16 + 16 * 16 + 16 * 10) / 1e6)


@pytest.mark.slow
def test_report_of_a_baseline(mlp_run):
    from convscope.html.report import build_run_report

    html = build_run_report(mlp_run.run).read_text()
    assert "sklearn-mlp-16x16" in html and 'id="figure-dense_weights"' in html
    assert f"convscope baseline --config {mlp_run.run.config_path}" in html  # config.yaml repeats the baseline, not a Keras run


@pytest.mark.slow
def test_logistic_on_two_classes_has_one_logit_and_copies_exactly(tmp_path):
    """A two-class estimator has one logit; the Keras copy gives both classes' probabilities."""
    rng = np.random.default_rng(0)
    x = rng.random((90, 4, 4, 1)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype(np.int64)
    empty = np.zeros((0,), dtype=np.int64)
    dataset = Dataset("toy", x[:60], y[:60], x[:0], empty, x[60:], y[60:], ["a", "b"], {}, "generated")
    config = Config()
    config.model.name = "sklearn-logistic"
    config.run.out, config.run.name = str(tmp_path), "logistic"
    result = train_baseline(baseline_config(config), dataset=dataset)
    assert result.estimator.coef_.shape[0] == 1  # scikit-learn's one logit for two classes
    probabilities = result.model.predict(x[60:], verbose=0)
    np.testing.assert_allclose(probabilities, result.estimator.predict_proba(x[60:].reshape(30, -1)), atol=1e-5)
    assert not result.run.history_path.exists()  # lbfgs has no epochs to record
    with pytest.raises(ConvscopeError, match="already holds a run"):
        train_baseline(baseline_config(config), dataset=dataset)


def test_tanh_mlp_is_copied_with_its_activation(small_data):
    from sklearn.neural_network import MLPClassifier

    estimator = MLPClassifier((8,), activation="tanh", max_iter=5, random_state=0)
    with pytest.warns(Warning):  # ConvergenceWarning after 5 epochs
        estimator.fit(flatten_images(small_data.x_train[:200], False), small_data.y_train[:200])
    model = create_keras_model(estimator, small_data.input_shape, small_data.num_classes, "tanh")
    np.testing.assert_allclose(
        model.predict(small_data.x_test[:50], verbose=0), estimator_probabilities(estimator, small_data, small_data.x_test[:50]), atol=1e-5
    )


@pytest.mark.slow
def test_cli(tmp_path, capsys):
    arguments = ["baseline", "--kind", "logistic", "--epochs", "30", "--dataset", "mnist-sample", "--limit-train", "300",
                 "--out", str(tmp_path), "--name", "cli"]
    assert main(arguments) == 0
    assert "Run folder:" in capsys.readouterr().out
    config = yaml.safe_load((tmp_path / "cli" / "config.yaml").read_text())
    assert config["model"]["name"] == "sklearn-logistic" and config["train"]["epochs"] == 30
    assert main(["baseline", "--hidden-layers", "16,x", "--out", str(tmp_path)]) == 2
    assert "--hidden-layers" in capsys.readouterr().err
