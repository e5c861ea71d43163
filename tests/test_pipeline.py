"""The chained stages: one `run` writes a complete folder, predicting the test set once."""

import json

import keras
import numpy as np
import pytest
from sklearn.metrics import confusion_matrix

from convscope import keras_compat
from convscope.config import Config
from convscope.pipeline import run


def image_count(x) -> int | None:
    """Images in an array, or in a dataset of (x, y) batches; None for Keras' cached validation set."""
    if x is None:
        return None
    if hasattr(x, "shape"):
        return len(x)
    return sum(int(batch[0].shape[0]) for batch in x)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A whole `run` on 256 sample images, recording the images of every predict, evaluate and predict_outputs call."""
    config = Config()
    config.model.name, config.train.epochs = "cnn_single", 1
    config.data.limit_train = 256
    config.run.out, config.run.name = str(tmp_path_factory.mktemp("runs")), "run"
    calls = []

    def recorded(owner, name):
        original = getattr(owner, name)

        def call(model, x=None, *args, **kwargs):
            calls.append((name, image_count(x)))
            return original(model, x, *args, **kwargs)

        return call

    with pytest.MonkeyPatch.context() as patch:
        for name in ("predict", "evaluate"):
            patch.setattr(keras.Model, name, recorded(keras.Model, name))
        patch.setattr(keras_compat, "predict_outputs", recorded(keras_compat, "predict_outputs"))
        result = run(config)
    return result, calls


def test_the_test_set_is_predicted_once(finished):
    # Before, training scored the test set with Keras' evaluate and the evaluate stage predicted it again.
    result, calls = finished
    num_test = result.metrics["evaluation"]["num_test"]
    assert [name for name, count in calls if count == num_test] == ["predict_outputs"], calls
    assert result.metrics["test_accuracy"] == result.metrics["evaluation"]["accuracy"]  # one computation


def test_metrics_json_confusion_matrix_equals_scikit_learns_on_the_saved_predictions(finished):
    folder = finished[0].run
    saved = json.loads(folder.metrics_path.read_text())["evaluation"]["confusion_matrix"]
    with np.load(folder.predictions_path) as predictions:
        labels, predicted = predictions["labels"], predictions["probabilities"].argmax(axis=1)
        num_classes = predictions["probabilities"].shape[1]
    assert saved == confusion_matrix(labels, predicted, labels=range(num_classes)).tolist()


def test_stage_seconds_come_from_the_folder_and_the_lock_is_released(finished):
    result = finished[0]
    recorded = json.loads(result.run.environment_path.read_text())["stage_seconds"]
    assert result.stage_seconds == {stage: recorded[stage] for stage in ("train", "evaluate", "inspect", "report")}
    assert result.report_path.is_file() and not result.run.lock_path.exists()


def test_a_folder_evaluated_before_the_matrix_was_saved_counts_it_from_its_predictions(finished, tmp_path):
    import shutil

    from convscope.compare import read_run_summary
    from convscope.runfolder import RunFolder

    old = RunFolder(tmp_path / "old")
    shutil.copytree(finished[0].run.path, old.path)
    metrics = old.read_metrics()
    saved = metrics["evaluation"].pop("confusion_matrix")
    old.metrics_path.write_text(json.dumps(metrics))
    assert read_run_summary(old.path).confusion.tolist() == saved


def test_the_callers_config_is_not_changed(tmp_path):
    import copy

    from convscope.baseline import baseline_config
    from convscope.train import train

    config = Config()
    config.model.name, config.train.epochs, config.data.limit_train = "cnn_single", 1, 64
    config.run.out = str(tmp_path)
    before = copy.deepcopy(config)
    result = train(config)
    assert config == before and result.config.run.name.startswith("mnist-sample-cnn_single-")
    config.model.name = "sklearn-logistic"
    before = copy.deepcopy(config)
    assert baseline_config(config).train.schedule == "constant" and config == before
