"""The learning-rate finder: exact restore, true per-batch losses, fastai's rules and stop, the files, --learning-rate find."""

import csv
import math

import keras
import numpy as np
import pytest
import yaml

from convscope.cli import main
from convscope.config import Config, resolve_config
from convscope.errors import ConvscopeError
from convscope.lrfind import (
    LossSmoother,
    batch_losses_from_running_means,
    find_learning_rate,
    minimum_index,
    read_lr_find,
    smooth_losses,
    steep_index,
    suggest_points,
    sweep_learning_rates,
    sweep_order,
    valley_index,
)
from convscope.pipeline import find_learning_rate_run, report_run
from convscope.runfolder import RunFolder
from convscope.train import train


def tiny_data(count=96, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((count, 6, 6, 1), dtype=np.float32), rng.integers(0, 3, count)


def tiny_model(dropout=True, **compile_options):
    """A small CNN with batch norm and dropout (their statistics and seeds must be restored too), compiled with Adam."""
    keras.utils.set_random_seed(0)
    layers = [keras.Input((6, 6, 1)), keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization(), keras.layers.ReLU(), keras.layers.Flatten()]
    if dropout:
        layers.append(keras.layers.Dropout(0.3))
    model = keras.Sequential([*layers, keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), **compile_options)
    return model


def state_of(model):
    return [np.array(variable) for variable in [*model.variables, *model.optimizer.variables]]


def make_config(tmp_path, name, **train_fields):
    config = Config()
    config.data.dataset, config.data.limit_train = "mnist-sample", 384
    config.model.name = "mnist_convnet"
    config.run.out, config.run.name = str(tmp_path), name
    config.train.epochs, config.train.batch_size = 1, 64
    for key, value in train_fields.items():
        setattr(config.train, key, value)
    return config


# --------------------------------------------------------------------------- restore


def test_weights_and_optimizer_state_are_restored_exactly():
    x, y = tiny_data()
    model = tiny_model(steps_per_execution=4)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # momenta, iteration count, batch-norm statistics: all non-zero
    before = state_of(model)
    sweep = find_learning_rate(model, x, y, batch_size=16, num_batches=60)
    assert len(sweep.losses) > 20  # the sweep did train the model
    after = state_of(model)
    assert len(after) == len(before)
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)  # exactly: weights, BN statistics, dropout seeds, Adam's state and rate
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert model.steps_per_execution == 4  # the caller's setting is given back


def test_state_is_restored_when_the_sweep_is_interrupted(monkeypatch):
    from convscope import lrfind

    x, y = tiny_data()
    model = tiny_model()
    before = state_of(model)
    original = lrfind.SweepRecorder.on_train_batch_end

    def interrupt(self, batch, logs=None):
        original(self, batch, logs)
        if batch == 30:
            raise KeyboardInterrupt

    monkeypatch.setattr(lrfind.SweepRecorder, "on_train_batch_end", interrupt)
    with pytest.raises(KeyboardInterrupt):
        find_learning_rate(model, x, y, batch_size=16)
    for old, new in zip(before, state_of(model)):
        np.testing.assert_array_equal(old, new)


def test_model_must_be_compiled_at_a_constant_rate():
    x, y = tiny_data()
    uncompiled = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    with pytest.raises(ConvscopeError, match="not compiled; compile it first"):
        find_learning_rate(uncompiled, x, y)
    scheduled = tiny_model()
    scheduled.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.5)), loss="sparse_categorical_crossentropy")
    before = state_of(scheduled)
    with pytest.raises(ConvscopeError, match="learning rate is a schedule"):
        find_learning_rate(scheduled, x, y)
    for old, new in zip(before, state_of(scheduled)):
        np.testing.assert_array_equal(old, new)


# --------------------------------------------------------------------------- per-batch losses


def test_batch_losses_from_running_means_by_hand():
    # Batches of 4, 4, 2 and 6 images with losses 2, 1, 0.5 and 3. Keras logs the running mean
    # weighted by batch size: 8/4 = 2; (8 + 4)/8 = 1.5; (12 + 1)/10 = 1.3; (13 + 18)/16 = 1.9375.
    recovered = batch_losses_from_running_means([2.0, 1.5, 1.3, 1.9375], [4, 4, 2, 6])
    np.testing.assert_allclose(recovered, [2.0, 1.0, 0.5, 3.0], rtol=1e-12)


def test_recorded_losses_are_each_batchs_own_loss():
    """At a rate too small to move any weight, each recorded loss is the loss of that batch under the starting weights,
    not Keras' running mean, even for a model compiled to run 4 batches per call."""
    x, y = tiny_data(count=40)
    model = tiny_model(dropout=False, steps_per_execution=4)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # batch norm's moving statistics away from their start
    sweep = find_learning_rate(model, x, y, batch_size=8, start=1e-30, end=2e-30, num_batches=30, seed=3)
    order = sweep_order(len(y), 8, 30, seed=3)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    expected = [float(loss(y[chosen], model(x[chosen], training=True))) for chosen in order.reshape(30, 8)]
    assert len(sweep.losses) == 30
    np.testing.assert_allclose(sweep.losses, expected, rtol=2e-5)
    assert np.std(expected) > 0.01  # the batches differ, so a running mean would not match


# --------------------------------------------------------------------------- smoothing and the stop rule


def test_smoothing_is_the_debiased_moving_average():
    losses = np.array([2.0, 1.0, 4.0, 3.0, 0.5])
    beta = 0.98
    expected = [
        sum(beta ** (k - i) * (1 - beta) * losses[i] for i in range(k + 1)) / (1 - beta ** (k + 1)) for k in range(len(losses))
    ]
    np.testing.assert_allclose(smooth_losses(losses), expected, rtol=1e-12)
    assert smooth_losses([7.0])[0] == pytest.approx(7.0)  # debiased: the first value is the first loss


def test_stop_rule_fires_at_four_times_the_best():
    # A flat loss of 1 (smoothed: 1, the best), then batches of loss 10. By hand, the smoothed loss after
    # n flat batches and k batches of 10 is (10 - 9 b^k - b^(n+k)) / (1 - b^(n+k)), b = 0.98: with
    # n = 40 it first exceeds 4 at k = 13 (4.163; k = 12: 3.980).
    smoother = LossSmoother()
    stopped_at = None
    for index, loss in enumerate([1.0] * 40 + [10.0] * 100):
        reason = smoother.stop_reason(smoother.add(loss))
        if reason is not None:
            stopped_at = (index, reason)
            break
    assert stopped_at == (40 + 13 - 1, "diverged")
    smoother = LossSmoother()
    smoother.add(1.0)
    assert smoother.stop_reason(smoother.add(math.nan)) == "not finite"


def test_sweep_stops_when_the_loss_diverges():
    x, y = tiny_data()
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    sweep = find_learning_rate(model, x, y, batch_size=16, start=1e-4, end=1e6, num_batches=100)
    assert sweep.stop_reason in ("diverged", "not finite")
    assert len(sweep.losses) < 100
    smoothed = sweep.smoothed
    assert not (smoothed[-1] <= 4 * np.min(smoothed[:-1]))  # the last batch broke the rule (or is NaN)
    assert all(smoothed[k] <= 4 * np.min(smoothed[: k + 1]) for k in range(len(smoothed) - 1))  # no batch before it did
    np.testing.assert_allclose(sweep.learning_rates, sweep_learning_rates(1e-4, 1e6, 100)[: len(sweep.losses)])


# --------------------------------------------------------------------------- the rules


def test_valley_on_a_u_shaped_curve():
    # Flat at 5 (10 points), strictly down from 4.92 to 1 (indices 10..59), then up. The longest strictly
    # decreasing subsequence: one 5.0 and the 50 falling points, 51 long, ending at index 59; it starts
    # at 59 - 51 = 8 and the rule goes 51 // 3 + 17 // 2 = 17 + 8 into it: index 33.
    curve = np.concatenate([np.full(10, 5.0), np.linspace(5.0, 1.0, 51)[1:], np.linspace(1.1, 8.0, 30)])
    assert valley_index(curve) == 33
    assert minimum_index(curve) == 59


def test_valley_edge_cases():
    assert valley_index([5.0, 4.0, 4.5, 3.0, 2.0, 1.0, 1.5, 8.0]) == 1  # run 5,4,3,2,1 ends at 5: start 0, 0 + 1 + 0
    assert valley_index([1.0, 2.0, 3.0]) == 0  # nothing falls: the first point
    assert valley_index([2.0, 1.0]) == 0  # fastai would index -1 here, the curve's last point


def test_steep_is_the_fastest_fall_per_decade():
    rates = np.array([1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1e0])
    assert steep_index(rates, [5.0, 4.9, 4.5, 2.0, 1.8, 9.0]) == 2  # 4.5 -> 2.0 is the steepest drop
    # Per unit of log(rate): a fall of 1 over one decade is steeper than a fall of 1.5 over two.
    uneven = np.array([1e-5, 1e-3, 1e-2, 1e-1])
    assert steep_index(uneven, [5.0, 3.5, 2.5, 2.4]) == 1


def test_rules_read_only_their_window():
    rates = sweep_learning_rates(1e-7, 10, 100)
    curve = np.linspace(3.0, 2.0, 100)
    curve[3] = curve[97] = 0.1  # lower than anything, but in the skipped first tenth and last five
    curve[60] = 1.0
    points = suggest_points(rates, curve, planned_batches=100)
    assert points["minimum"].batch == 61  # counted from 1, as lr_find.csv counts
    assert points["minimum"].learning_rate == rates[60] and points["minimum"].loss == 1.0
    curve[50] = math.nan  # from a NaN on, nothing is read
    assert suggest_points(rates, curve, 100)["minimum"].batch <= 50
    with pytest.raises(ConvscopeError, match="too few for its rules"):
        suggest_points(rates[:16], curve[:16], planned_batches=100)  # 10 skipped at the start, 5 at the end: 1 left


# --------------------------------------------------------------------------- files, report, command line


def test_lr_find_run_writes_csv_png_and_a_config_at_the_suggestion(tmp_path):
    run, sweep = find_learning_rate_run(make_config(tmp_path, "finder"))
    assert run.path == tmp_path / "finder"
    with open(run.path / "lr_find.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["batch", "learning_rate", "loss", "smoothed_loss"]
    assert len(rows) == len(sweep.losses) and float(rows[0]["learning_rate"]) == pytest.approx(1e-7)
    np.testing.assert_allclose([float(row["smoothed_loss"]) for row in rows], sweep.smoothed, rtol=1e-7)
    assert (run.plots_dir / "lr_find.png").read_bytes().startswith(b"\x89PNG")
    config = yaml.safe_load((run.path / "config.yaml").read_text())
    assert config["train"]["learning_rate"] == sweep.suggestion and config["train"]["learning_rate_found"] is True
    # `convscope run --config RUN/config.yaml` trains into a new folder, not into this one
    assert config["run"]["name"] is None and resolve_config(run.path / "config.yaml").run.name is None
    again = read_lr_find(RunFolder(run.path))
    assert again.suggestion == sweep.suggestion and again.points["steep"] == sweep.points["steep"]
    assert again.to_metrics() == RunFolder(run.path).read_metrics()["lr_find"]
    steep = sweep.points["steep"]
    assert float(rows[steep.batch - 1]["learning_rate"]) == pytest.approx(steep.learning_rate)
    html = report_run(run.path).read_text()
    assert 'id="lr-find"' in html and 'id="figure-lr_find"' in html and f"{sweep.suggestion:.3g} (valley rule)" in html


@pytest.mark.slow
def test_learning_rate_find_records_the_rate_and_trains_as_at_that_rate(tmp_path, small_data):
    found = train(make_config(tmp_path, "found", learning_rate="find"), dataset=small_data)
    config = yaml.safe_load((found.run.path / "config.yaml").read_text())
    suggestion = found.run.read_metrics()["lr_find"]["suggestion"]
    assert config["train"]["learning_rate"] == suggestion and config["train"]["learning_rate_found"] is True
    assert found.run.lr_find_path.is_file()
    # The sweep restored the model: training at the found rate, given by hand, is the same run.
    given = train(make_config(tmp_path, "given", learning_rate=suggestion), dataset=small_data)
    assert {k: v for k, v in found.history.items() if k != "seconds"} == {k: v for k, v in given.history.items() if k != "seconds"}
    assert yaml.safe_load((given.run.path / "config.yaml").read_text())["train"]["learning_rate_found"] is False


@pytest.mark.slow
def test_sweep_with_learning_rate_find_skips_its_finished_runs_when_run_again(tmp_path):
    from convscope.sweep import sweep

    config = make_config(tmp_path, "sweep", learning_rate="find")
    first = sweep(["mnist_convnet"], config)
    assert first.trained == ["mnist_convnet"] and (first.runs[0] / "lr_find.csv").is_file()
    again = sweep(["mnist_convnet"], config)  # the run's config.yaml holds the found rate, not "find"
    assert again.skipped == ["mnist_convnet"] and again.trained == []


def test_config_accepts_find_and_forgets_found_when_a_rate_is_given(tmp_path):
    assert resolve_config(overrides={"train": {"learning_rate": "FIND"}}).train.learning_rate == "find"
    saved = tmp_path / "config.yaml"
    saved.write_text(yaml.safe_dump({"train": {"learning_rate": 0.002, "learning_rate_found": True}}))
    assert resolve_config(saved).train.learning_rate_found is True
    assert resolve_config(saved, {"train": {"learning_rate": 0.01}}).train.learning_rate_found is False


@pytest.mark.parametrize("value", ["fast", "0", "-1", "nan", "inf", ""])
def test_bad_learning_rate_is_one_line_and_exit_2(value, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["train", f"--learning-rate={value}"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--learning-rate" in err and "expected a positive number such as 1e-3, or find" in err


def test_bad_values_in_a_config_file_and_sweep_flags_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {learning_rate: fast}\n")
    assert main(["train", "--config", str(bad), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"convscope: error: {bad}: train.learning_rate: cannot use 'fast' (could not convert string to float: 'fast'); expected a number or 'find'\n"
    assert main(["lr-find", "--num-batches", "5", "--out", str(tmp_path)]) == 2
    assert "(--num-batches): expected at least 10" in capsys.readouterr().err
    assert main(["lr-find", "--start-lr", "1", "--end-lr", "1e-3", "--out", str(tmp_path)]) == 2
    assert "expected 0 < start < end" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bad.yaml"]  # no run folder was started
