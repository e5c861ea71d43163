"""Data-parallel training: TF_CONFIG workers, --devices, --local-workers, a dead worker, a mismatched worker.

The multi-process tests start real workers on localhost ports (python -m convscope),
each under a minute on 2 cores.
"""

import contextlib
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from convscope.config import Config, validate
from convscope.data import load_dataset
from convscope.data.source import data_source
from convscope.distribute import Cluster, check_batch_size, check_supported, parse_devices, read_tf_config, worker_batches, worker_slices
from convscope.errors import ConvscopeError
from convscope.launcher import free_ports, launch_local_workers, tf_config, without_local_workers
from conftest import isolated_env
from test_stream import make_folder

# 1,000 training images, batch 64: 16 steps of 2 epochs, the last batch 40 (20 per worker).
TRAIN_FLAGS = ["--dataset", "mnist-sample", "--limit-train", "1000", "--batch-size", "64", "--epochs", "2", "--seed", "3"]
RUN_FILES = {"config.yaml", "environment.json", "data.json", "history.csv", "metrics.json", "model.keras", "predictions.npz", "checkpoint"}


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    base = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    return {**base, **isolated_env(tmp_path), **extra}


def convscope(args: list[str], tmp_path: Path, timeout: int = 120, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convscope", *args], capture_output=True, text=True, env=environment(tmp_path, **env), timeout=timeout)


def start_workers(args_per_worker: list[list[str]], tmp_path: Path) -> tuple[list[subprocess.Popen], list[Path]]:
    """One `convscope train` process per worker, TF_CONFIG set for each; output into a log file per worker."""
    addresses = [f"localhost:{port}" for port in free_ports(len(args_per_worker))]
    processes, logs = [], []
    for index, args in enumerate(args_per_worker):
        log = tmp_path / f"worker{index}.log"
        with open(log, "w") as handle:
            env = environment(tmp_path, TF_CONFIG=tf_config(addresses, index))
            processes.append(subprocess.Popen([sys.executable, "-m", "convscope", "train", *args], stdout=handle, stderr=subprocess.STDOUT, env=env))
        logs.append(log)
    return processes, logs


@contextlib.contextmanager
def two_workers_in_their_second_epoch(tmp_path: Path, out: Path, name: str):
    """Two local workers of a 4-epoch run named ``name``, yielded (processes, logs) a little after worker 1 logged
    its first epoch (up to 90 s); whichever still runs at the end of the block is killed."""
    flags = [*TRAIN_FLAGS, "--limit-train", "3000", "--epochs", "4", "--out", str(out), "--name", name]
    processes, logs = start_workers([flags, flags], tmp_path)
    try:
        deadline = time.monotonic() + 90
        while "Epoch 1/4" not in logs[1].read_text() and time.monotonic() < deadline:
            assert all(process.poll() is None for process in processes), logs[0].read_text() + logs[1].read_text()
            time.sleep(0.1)
        time.sleep(0.3)  # into epoch 2
        yield processes, logs
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()


def digests(output: str) -> dict[int, str]:
    return {int(index): digest for index, digest in re.findall(r"worker (\d+) \(localhost:\d+\): kept weights sha256 (\w+)", output)}


def history(folder: Path) -> list[dict]:
    with open(folder / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------- no processes


@pytest.mark.parametrize("size,batch,workers", [(1000, 64, 2), (10, 4, 3), (7, 8, 2), (65, 64, 4)])
def test_workers_slices_cover_each_global_batch_in_the_seeded_order(size, batch, workers):
    order = np.random.default_rng([0, 1]).permutation(size)
    slices = [worker_slices(order, batch, workers, index) for index in range(workers)]
    assert all(len(own) == len(slices[0]) for own in slices)  # every worker steps as often
    for step, start in enumerate(range(0, size, batch)):
        joined = np.concatenate([own[step] for own in slices])
        np.testing.assert_array_equal(joined, order[start : start + batch])


@pytest.mark.parametrize("stream", ["on", "off"])
def test_each_worker_reads_its_slice_of_the_global_batches_streamed_or_in_memory(tmp_path, stream):
    root = make_folder(tmp_path / "f", per_class=12)
    dataset = load_dataset(f"folder:{root}", image_size=(8, 8), color_mode="rgb", stream=stream)
    source = data_source(dataset.x_train, dataset.y_train)
    order = np.random.default_rng([0, 0]).permutation(len(dataset.y_train))
    batch_size = 4 if len(order) % 4 else 5  # a short last global batch
    expected = list(source.epoch(order, batch_size))
    workers = [list(worker_batches(source, worker_slices(order, batch_size, 3, index))) for index in range(3)]
    assert [len(batches) for batches in workers] == [len(expected)] * 3
    for step, (x, y) in enumerate(expected):
        np.testing.assert_array_equal(np.concatenate([np.asarray(batches[step][0]) for batches in workers]), np.asarray(x))
        np.testing.assert_array_equal(np.concatenate([np.asarray(batches[step][1]) for batches in workers]), np.asarray(y))


def test_tf_config_is_read_and_a_malformed_one_named(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", tf_config(["localhost:1", "localhost:2"], 1))
    assert read_tf_config()["task"]["index"] == 1
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}')
    with pytest.raises(ConvscopeError, match="task index 3 but the cluster lists 1 worker"):
        read_tf_config()
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConvscopeError, match="TF_CONFIG is not a cluster description"):
        read_tf_config()
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "ps", "index": 0}}')
    with pytest.raises(ConvscopeError, match="only 'worker' tasks"):
        read_tf_config()
    monkeypatch.delenv("TF_CONFIG")
    assert read_tf_config() is None


def test_devices_setting_is_checked():
    assert parse_devices("2") == 2 and parse_devices("all") == "all" and parse_devices(None) is None
    with pytest.raises(ConvscopeError, match="--devices 'two'"):
        parse_devices("two")
    config = Config()
    config.train.devices = "0"
    with pytest.raises(ConvscopeError, match="train.devices='0'"):
        validate(config)
    with pytest.raises(ConvscopeError, match="--batch-size 3 is smaller than the 4 replicas"):
        check_batch_size(Cluster(strategy=object(), workers=2, replicas=4), 3)
    config.train.devices, config.train.tensorboard = None, True
    with pytest.raises(ConvscopeError, match="drop --tensorboard"):
        check_supported(Cluster(strategy=object()), config)
    check_supported(Cluster(), config)  # one device: model.fit writes them


def test_launcher_passes_every_flag_but_its_own(monkeypatch):
    assert without_local_workers(["train", "--local-workers", "2", "--epochs", "3", "--local-workers=4"]) == ["train", "--epochs", "3"]
    with pytest.raises(ConvscopeError, match="--local-workers 1: expected 2 or more"):
        launch_local_workers(1, ["train"])
    monkeypatch.setenv("TF_CONFIG", tf_config(["localhost:1"], 0))
    with pytest.raises(ConvscopeError, match="already a cluster's worker"):
        launch_local_workers(2, ["train"])


# --------------------------------------------------------------------------- processes


@pytest.mark.slow
def test_two_local_workers_train_like_one_process(tmp_path):
    out = tmp_path / "runs"
    started = time.perf_counter()
    (tmp_path / "tmp").mkdir()
    done = convscope(["train", "--local-workers", "2", *TRAIN_FLAGS, "--out", str(out), "--name", "pair"], tmp_path, TMPDIR=str(tmp_path / "tmp"))
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert "worker 1: TF_CONFIG='" in done.stdout  # what a user sets on real machines
    # The chief's folder is complete; the other worker wrote nothing under --out, and its scratch folder is gone.
    assert sorted(path.name for path in out.iterdir()) == ["pair"]
    assert RUN_FILES <= {path.name for path in (out / "pair").iterdir()}
    assert not list((tmp_path / "tmp").glob("convscope-worker*"))  # the other worker's scratch folder is removed
    assert "[worker 1] Done; the chief (worker 0) writes the run folder" in done.stdout
    found = digests(done.stdout)
    assert set(found) == {0, 1} and found[0] == found[1]  # bit-identical weights on both workers
    environment_json = json.loads((out / "pair" / "environment.json").read_text())
    assert environment_json["strategy"] == "MultiWorkerMirroredStrategy"
    assert (environment_json["workers"], environment_json["replicas"], environment_json["global_batch_size"], environment_json["per_replica_batch_size"]) == (2, 2, 64, 32)
    assert len(history(out / "pair")) == 2

    single = convscope(["train", *TRAIN_FLAGS, "--out", str(out), "--name", "single"], tmp_path)
    assert single.returncode == 0, single.stderr
    pair_accuracy = json.loads((out / "pair" / "metrics.json").read_text())["test_accuracy"]
    single_accuracy = json.loads((out / "single" / "metrics.json").read_text())["test_accuracy"]
    print(f"test accuracy: 2 workers {pair_accuracy:.4f}, one process {single_accuracy:.4f}; 2 workers took {seconds:.1f} s")
    assert abs(pair_accuracy - single_accuracy) <= 0.01


@pytest.mark.slow
def test_a_killed_worker_stops_the_other_and_resume_finishes(tmp_path):
    out = tmp_path / "runs"
    with two_workers_in_their_second_epoch(tmp_path, out, "killed") as (processes, logs):
        processes[1].kill()
        killed = time.monotonic()
        code = processes[0].wait(timeout=60)
        waited = time.monotonic() - killed
    chief_output = logs[0].read_text()
    assert code == 2, chief_output
    assert re.search(r"worker 0 \(localhost:\d+\): lost contact with worker 1 \(localhost:\d+\)", chief_output), chief_output
    assert waited < 60
    complete = len(history(out / "killed"))
    assert 1 <= complete < 4

    resumed = convscope(["train", "--local-workers", "2", "--resume", str(out / "killed")], tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"Resuming {out / 'killed'} after epoch {complete}" in resumed.stdout
    assert [int(row["epoch"]) for row in history(out / "killed")] == [1, 2, 3, 4]
    found = digests(resumed.stdout)
    assert found[0] == found[1]


@pytest.mark.slow
def test_a_worker_with_different_settings_is_refused(tmp_path):
    out = tmp_path / "runs"
    flags = [*TRAIN_FLAGS, "--out", str(out), "--name", "mismatch"]
    processes, logs = start_workers([flags, [*flags, "--learning-rate", "0.01"]], tmp_path)
    codes = [process.wait(timeout=90) for process in processes]
    assert codes == [2, 2]
    chief_output = logs[0].read_text()
    assert re.search(r"worker 0 \(localhost:\d+\): started with settings that differ from worker 1 .*learning_rate: worker 1 \(localhost:\d+\) has 0.01, this worker 0.005", chief_output), chief_output
    assert not out.exists()  # refused before any folder


@pytest.mark.slow
def test_two_logical_devices_train_like_one(tmp_path):
    # No dropout: each replica draws its own masks, so dropout models agree in accuracy, not in weights.
    flags = [*TRAIN_FLAGS, "--model", "mlp_512_nodropout", "--out", str(tmp_path / "runs")]
    mirrored = convscope(["train", *flags, "--devices", "2", "--name", "mirrored"], tmp_path)
    assert mirrored.returncode == 0, mirrored.stderr
    single = convscope(["train", *flags, "--name", "single"], tmp_path)
    assert single.returncode == 0, single.stderr
    runs = tmp_path / "runs"
    environment_json = json.loads((runs / "mirrored" / "environment.json").read_text())
    assert environment_json["strategy"] == "MirroredStrategy"
    assert environment_json["replica_devices"] == ["/device:CPU:0", "/device:CPU:1"]
    assert (environment_json["workers"], environment_json["global_batch_size"], environment_json["per_replica_batch_size"]) == (1, 64, 32)
    for mirrored_row, single_row in zip(history(runs / "mirrored"), history(runs / "single"), strict=True):
        for column in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert float(mirrored_row[column]) == pytest.approx(float(single_row[column]), rel=1e-4, abs=1e-5)
    weights = [np.load(runs / name / "predictions.npz")["probabilities"] for name in ("mirrored", "single")]
    np.testing.assert_allclose(weights[0], weights[1], atol=1e-4)


@pytest.mark.slow
def test_ctrl_c_on_one_worker_stops_every_worker_after_the_same_batch(tmp_path):
    out = tmp_path / "runs"
    with two_workers_in_their_second_epoch(tmp_path, out, "stopped") as (processes, logs):
        processes[1].send_signal(signal.SIGINT)
        codes = [process.wait(timeout=60) for process in processes]
    outputs = [log.read_text() for log in logs]
    assert codes == [130, 130], outputs
    stops = [re.search(r"interrupted at epoch (\d+), batch (\d+)", output).groups() for output in outputs]
    assert stops[0] == stops[1]  # the same step on both: no worker waits for a collective that never comes
    assert len(history(out / "stopped")) == int(stops[0][0]) - 1
