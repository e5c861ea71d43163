"""Sweep contract: one run folder per model, a comparison at the end, finished runs skipped, Ctrl-C keeps them."""

import os
import signal
import subprocess
import sys
import time

import pytest

from convscope.config import resolve_config
from convscope.errors import ConvscopeError
from convscope.runfolder import open_run
from convscope.sweep import default_sweep_name, sweep

TINY = {"data": {"dataset": "mnist-sample", "limit_train": 300}, "train": {"epochs": 1, "batch_size": 64}}


def tiny_config(tmp_path, epochs=1):
    overrides = {section: dict(values) for section, values in TINY.items()}
    overrides["train"]["epochs"] = epochs
    overrides["run"] = {"out": str(tmp_path), "name": "demo"}
    return resolve_config(overrides=overrides)


def test_default_name_has_no_time_stamp():
    assert default_sweep_name(resolve_config(overrides={"data": {"dataset": "folder:/data/my photos"}})) == "sweep-my-photos"


@pytest.mark.slow
def test_sweep_trains_compares_and_skips_finished_runs(tmp_path):
    result = sweep(["mlp_16x16", "sklearn-logistic"], tiny_config(tmp_path))
    assert result.folder == tmp_path / "demo"
    assert result.runs == [tmp_path / "demo" / "mlp_16x16", tmp_path / "demo" / "sklearn-logistic"]
    assert result.trained == ["mlp_16x16", "sklearn-logistic"] and result.skipped == []
    for path in result.runs:
        metrics = open_run(path).read_metrics()
        assert "evaluation" in metrics and (path / "predictions.npz").is_file()
    assert open_run(result.runs[0]).read_config().model.name == "mlp_16x16"
    assert result.compare_path == tmp_path / "demo" / "compare.html" and result.compare_path.is_file()
    assert "mlp_16x16" in result.leaderboard and "sklearn-logistic" in result.leaderboard

    before = {path: (path / "metrics.json").stat().st_mtime_ns for path in result.runs}
    again = sweep(["mlp_16x16", "sklearn-logistic"], tiny_config(tmp_path))
    assert again.trained == [] and again.skipped == ["mlp_16x16", "sklearn-logistic"]
    assert {path: (path / "metrics.json").stat().st_mtime_ns for path in again.runs} == before

    with pytest.raises(ConvscopeError, match=r"mlp_16x16: holds a run with other settings \(train.epochs: run has 1, sweep asks 2\)"):
        sweep(["mlp_16x16"], tiny_config(tmp_path, epochs=2))


def test_bad_model_lists(tmp_path):
    with pytest.raises(ConvscopeError, match="--models is empty"):
        sweep([" ", ""], tiny_config(tmp_path))
    with pytest.raises(ConvscopeError, match="mlp_16x16 more than once"):
        sweep(["mlp_16x16", "cnn_single", "mlp_16x16"], tiny_config(tmp_path))


@pytest.mark.slow
def test_ctrl_c_keeps_finished_runs_and_a_rerun_continues(tmp_path):
    """SIGINT while the second model trains: exit 130, the first run intact; the same command again finishes the sweep."""
    command = [
        sys.executable, "-m", "convscope", "sweep", "--models", "mlp_16x16,cnn_single",
        "--dataset", "mnist-sample", "--limit-train", "300", "--batch-size", "16", "--epochs", "4",
        "--out", str(tmp_path), "--name", "demo",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seen, deadline = [], time.monotonic() + 300
    try:
        for line in process.stdout:
            seen.append(line)
            second_model_started = any("[2/2] cnn_single" in earlier for earlier in seen)
            if second_model_started and line.startswith("Epoch 1/4"):
                process.send_signal(signal.SIGINT)  # during its second epoch: one complete epoch is saved
                break
            assert time.monotonic() < deadline, "".join(seen)
        output = "".join(seen) + process.stdout.read()
        assert process.wait(timeout=120) == 130, output
    finally:
        process.kill()
    assert "sweep interrupted during cnn_single" in output and "finished runs kept" in output
    first = open_run(tmp_path / "demo" / "mlp_16x16")
    assert "evaluation" in first.read_metrics()
    finished_at = first.metrics_path.stat().st_mtime_ns

    result = sweep(["mlp_16x16", "cnn_single"], _cli_like_config(tmp_path))
    assert result.skipped == ["mlp_16x16"] and result.trained == ["cnn_single"]
    assert first.metrics_path.stat().st_mtime_ns == finished_at
    second = open_run(tmp_path / "demo" / "cnn_single")
    assert "evaluation" in second.read_metrics() and list(second.read_history()["epoch"]) == [1, 2, 3, 4]


def _cli_like_config(tmp_path):
    """The config the command line above builds (flags given: dataset, limit, batch size, epochs, out, name)."""
    return resolve_config(overrides={
        "data": {"dataset": "mnist-sample", "limit_train": 300},
        "train": {"batch_size": 16, "epochs": 4},
        "run": {"out": str(tmp_path), "name": "demo"},
    })
