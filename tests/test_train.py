"""Training contract: the run folder, same seed same history, exact resume, callbacks, NaN stop."""

import csv
import json
import zipfile

import keras
import numpy as np
import pytest

from convscope.config import Config
from convscope.data import load_dataset
from convscope.errors import ConvscopeError
from convscope.train import train


def make_config(tmp_path, name="run", **train_fields):
    config = Config()
    config.model.name = "mnist_convnet"  # has dropout: resume must restore its random masks too
    config.run.out, config.run.name = str(tmp_path), name
    config.train.epochs, config.train.batch_size = 3, 64
    for key, value in train_fields.items():
        setattr(config.train, key, value)
    return config


def history_without_time(result):
    return {key: values for key, values in result.history.items() if key != "seconds"}


def test_run_folder_contents(tmp_path, small_data):
    result = train(make_config(tmp_path), dataset=small_data)
    folder = result.run.path
    for name in ("config.yaml", "environment.json", "data.json", "model.keras", "history.csv", "metrics.json"):
        assert (folder / name).is_file(), name
    with open(folder / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]
    assert set(rows[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds"}
    assert 0.0 <= result.metrics["test_accuracy"] <= 1.0
    reloaded = keras.saving.load_model(folder / "model.keras", safe_mode=True)
    best = result.metrics["best_epoch"]
    assert result.metrics["best_val_loss"] == pytest.approx(min(result.history["val_loss"]))
    assert best == int(np.argmin(result.history["val_loss"])) + 1
    for saved, restored in zip(reloaded.get_weights(), result.model.get_weights()):
        np.testing.assert_array_equal(saved, restored)  # model.keras holds the best weights, restored at the end
    assert sorted(p.name for p in (folder / "checkpoint").iterdir()) == [
        "epoch-0002.json", "epoch-0002.keras", "epoch-0003.json", "epoch-0003.keras"
    ]


def test_same_seed_same_history_and_weights(tmp_path, small_data):
    first = train(make_config(tmp_path, "a"), dataset=small_data)
    second = train(make_config(tmp_path, "b"), dataset=small_data)
    assert history_without_time(first) == history_without_time(second)
    for a, b in zip(first.model.get_weights(), second.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_resume_matches_uninterrupted_run(tmp_path, small_data):
    whole = train(make_config(tmp_path, "whole", epochs=3, schedule="constant"), dataset=small_data)
    train(make_config(tmp_path, "parts", epochs=2, schedule="constant"), dataset=small_data)
    resumed = train(make_config(tmp_path, "parts", epochs=3, schedule="constant"), dataset=small_data, resume=True)
    assert history_without_time(resumed) == history_without_time(whole)
    for a, b in zip(whole.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_existing_run_is_not_overwritten(tmp_path, small_data):
    train(make_config(tmp_path, "taken", epochs=1), dataset=small_data)
    with pytest.raises(ConvscopeError, match="already holds a run.*--resume"):
        train(make_config(tmp_path, "taken", epochs=1), dataset=small_data)


def test_nan_loss_names_epoch_and_batch_and_keeps_good_checkpoint(tmp_path, small_data):
    config = make_config(tmp_path, "nan", epochs=2, schedule="constant")
    poisoned = load_dataset("mnist-sample", limit_train=384, val_split=0.1)
    poisoned.x_train[200] = np.nan  # batch 4 of 64 images, in epoch 2's seeded order somewhere
    train(make_config(tmp_path, "nan", epochs=1, schedule="constant"), dataset=small_data)
    good = (tmp_path / "nan" / "model.keras").read_bytes()
    with pytest.raises(ConvscopeError, match=r"epoch 2, (batch \d+|batches \d+-\d+)"):
        train(config, dataset=poisoned, resume=True)
    assert (tmp_path / "nan" / "model.keras").read_bytes() == good
    assert not (tmp_path / "nan" / "checkpoint" / "epoch-0002.keras").exists()


def test_early_stop_and_reduce_lr(tmp_path, small_data):
    # A learning rate of 0 never improves val_loss: early stopping fires after its patience,
    # and ReduceLROnPlateau halves the rate after each plateau of 1 epoch.
    stopped = train(make_config(tmp_path, "stop", epochs=6, learning_rate=1e-12, schedule="constant", early_stop=2), dataset=small_data)
    assert stopped.metrics["stopped_early"] and stopped.metrics["epochs_run"] == 3
    reduced = train(
        make_config(tmp_path, "reduce", epochs=3, learning_rate=1e-12, schedule="constant", reduce_lr=(0.5, 1, 1e-14)),
        dataset=small_data,
    )
    rates = reduced.history["learning_rate"]
    assert rates[1] == pytest.approx(rates[0] / 2) and rates[2] == pytest.approx(rates[0] / 4)


def test_onecycle_warms_up_then_anneals(tmp_path, small_data):
    result = train(make_config(tmp_path, "cycle", epochs=3, schedule="onecycle", learning_rate=0.01), dataset=small_data)
    rates = result.history["learning_rate"]
    assert rates[0] > rates[1] > rates[2] >= 0.0 and max(rates) <= 0.01


def test_monitor_names_the_group_of_batches_a_nan_came_from():
    from convscope.train import EpochMonitor

    class Model:
        stop_training = False

    monitor = EpochMonitor(epoch=0, epochs=1, steps=12)
    monitor.set_model(Model())
    monitor.on_train_batch_end(7, {"loss": 0.5})  # Keras names a group of 8 by its last batch
    assert monitor.bad_loss is None and not monitor.model.stop_training
    monitor.on_train_batch_end(15, {"loss": float("nan")})  # 4 batches left: Keras counts past the end
    assert monitor.bad_loss[0] == "batches 9-12" and monitor.model.stop_training
    single = EpochMonitor(epoch=0, epochs=1, steps=12)
    single.set_model(Model())
    single.on_train_batch_end(0, {"loss": float("inf")})
    assert single.bad_loss[0] == "batch 1"


def test_optimizer_and_metrics_exist_before_the_first_step(tmp_path, small_data):
    # Built before fit: TensorFlow would otherwise trace the first step twice (1 s per run).
    from convscope.models import create_model
    from convscope.keras_compat import build_training_state
    from convscope.optim import compile_model

    config = make_config(tmp_path)
    model = create_model(config.model.name, small_data.input_shape, small_data.num_classes)
    compile_model(model, config, steps_per_epoch=6)
    assert not model.optimizer.built and not all(metric.variables for metric in model.metrics)
    build_training_state(model, small_data.x_train[:1], small_data.y_train[:1])
    assert model.optimizer.built and len(model.optimizer.variables) > 1
    assert model.metrics and all(metric.variables for metric in model.metrics)  # the accuracy's too


def test_batches_per_call_is_a_training_setting_only(tmp_path, small_data):
    # 8 batches per call while fitting; predict afterwards must not retrace for every new
    # size of its last group, and model.keras must not carry the setting into evaluate.
    result = train(make_config(tmp_path, "spe", epochs=1), dataset=small_data)
    assert result.model.steps_per_execution == 1 and result.model.train_function is None
    saved = json.loads(zipfile.ZipFile(tmp_path / "spe" / "model.keras").read("config.json"))
    assert saved["compile_config"]["steps_per_execution"] == 1


def traced_step(optimizer, variable):
    import tensorflow as tf

    return tf.function(lambda gradient: optimizer.apply([gradient], [variable]))


def test_fused_adam_steps_like_keras_adam_and_saves_loadably(tmp_path, monkeypatch):
    import tensorflow as tf

    from convscope import keras_compat
    from convscope.models import create_model
    from convscope.models.loading import load_model
    from convscope.optim import FusedAdam

    fused_update, taken = keras_compat.fused_adam_update, []
    monkeypatch.setattr(keras_compat, "fused_adam_update", lambda *args: taken.append(fused_update(*args)) or taken[-1])
    rng = np.random.default_rng(0)
    start = rng.normal(size=(40, 12)).astype("float32")
    results = []
    for optimizer in (FusedAdam(learning_rate=1e-2), keras.optimizers.Adam(learning_rate=1e-2)):
        variable = keras.Variable(start.copy())
        optimizer.build([variable])
        step = traced_step(optimizer, variable)
        for index in range(25):  # inside a traced function, as fit runs it
            step(tf.constant(np.sin(start * (index + 1)).astype("float32")))
        results.append((variable.numpy(), [slot.numpy() for slot in optimizer.variables]))
    (ours, our_slots), (theirs, their_slots) = results
    assert taken == [True]  # traced once: the fused kernel, not Keras' update
    assert np.abs(ours - start).max() > 0.1  # the steps moved the variable
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    for our_slot, their_slot in zip(our_slots, their_slots):  # iterations, m and v alike
        np.testing.assert_allclose(our_slot, their_slot, rtol=1e-5, atol=1e-7)
    variable = tf.Variable(start)
    assert keras_compat.fused_adam_update(variable, variable, variable, tf.constant(start), 1e-3, 0.9, 0.999, 1e-7, 1)
    assert not keras_compat.fused_adam_update(variable, variable, variable, tf.IndexedSlices(tf.constant(start[:1]), tf.constant([0])), 1e-3, 0.9, 0.999, 1e-7, 1)

    model = create_model("mnist_fast", (28, 28, 1), 10)
    model.compile(optimizer=FusedAdam(learning_rate=1e-3), loss="sparse_categorical_crossentropy")
    model.fit(rng.random((8, 28, 28, 1), dtype=np.float32), np.arange(8) % 10, verbose=0)
    model.save(tmp_path / "fused.keras")
    loaded = load_model(tmp_path / "fused.keras", compile=True)  # as a checkpoint loads; safe mode allows a registered class
    assert type(loaded.optimizer) is FusedAdam
    for saved, restored in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(saved.numpy(), restored.numpy())
