"""The chained stages: one `run` writes a complete folder, predicting the test set once."""

import json

import keras
import numpy as np
import pytest
from sklearn.metrics import confusion_matrix

from convscope.config import Config
from convscope.pipeline import run


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A whole `run` on 256 sample images, counting the model's predict calls over the test set."""
    config = Config()
    config.model.name, config.train.epochs = "cnn_single", 1
    config.data.limit_train = 256
    config.run.out, config.run.name = str(tmp_path_factory.mktemp("runs")), "run"
    calls = []
    original = keras.Model.predict

    def counted(self, x, *args, **kwargs):
        calls.append(len(x))
        return original(self, x, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keras.Model, "predict", counted)
        result = run(config)
    return result, calls


def test_the_test_set_is_predicted_once(finished):
    result, calls = finished
    num_test = result.metrics["evaluation"]["num_test"]
    assert calls.count(num_test) == 1, calls
    assert result.metrics["test_accuracy"] == result.metrics["evaluation"]["accuracy"]  # one source


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


def test_the_callers_config_is_not_changed(tmp_path):
    from convscope.train import prepare_training

    config = Config()
    config.run.out = str(tmp_path)
    resolved, _, _ = prepare_training(config)
    assert config.run.name is None and resolved.run.name.startswith("mnist-sample-mnist_convnet-")
