"""Reliability and security: faults survived, bad files refused, nothing lost.

Every scenario of the reliability contract has a test here, in the contract's order:

    Faults
     1 kill -9 at a random point, then --resume      test_kill_at_random_points_then_resume_equals_uninterrupted_run
                                                     (arrays in memory, and a PNG folder streamed with the disk cache)
     2 kill -9 during a checkpoint write             test_kill_during_a_write_keeps_previous_files
                                                     test_stale_temps_and_a_folder_killed_before_the_first_epoch
     3 newest checkpoint corrupted                   test_damaged_newest_checkpoint_falls_back_to_the_previous
                                                     test_no_checkpoint_loads_is_a_clear_error
     4 disk full while writing                       test_disk_full_is_a_clear_error_and_nothing_is_lost
     5 NaN or Inf loss                               test_nan_weights_are_never_saved_over_good_ones
                                                     (and tests/test_train.py::test_nan_loss_names_epoch_and_batch_and_keeps_good_checkpoint)
     6 resume with another model, dataset, classes   test_resume_with_other_settings_is_refused
                                                     test_resume_with_another_class_list_is_refused
     7 Ctrl-C                                        test_sigint_at_a_random_point_saves_a_resumable_state
                                                     test_sigint_while_the_epoch_files_are_written
     (2b) two writers in one run folder              test_two_trainings_into_one_folder_one_exits_2_naming_the_other
                                                     test_the_lock_is_reentrant_in_one_process_and_exclusive_across_processes
                                                     (a killed writer's lock taken over: test_kill_at_random_points_then_resume_equals_uninterrupted_run)
    Bad and hostile files
     8 pickle gadgets                                test_pickle_gadgets_are_refused_and_never_run
                                                     (test_gadgets_run_under_plain_pickle: the payloads are live)
     9 .npz object arrays                            test_npz_object_arrays_are_refused_and_never_run
                                                     test_npz_labels_implying_absurd_class_counts_are_refused
    10 unsafe model files                            test_unsafe_model_files_are_refused
    11 unsafe archives                               test_unsafe_archive_members_are_refused_before_reading
    12 odd and hostile images                        test_truncated_jpeg_is_an_error_naming_it, test_image_kinds_in_a_class_folder,
                                                     test_decompression_bomb_is_an_error_not_a_warning
    13 bad IDX files                                 test_bad_idx_files_are_refused
    14 fuzzing every loader                          test_fuzz_*
    Every error: one line, exit 2                    test_command_line_error_is_one_line (one case per scenario, 3-13)
                                                     test_any_error_is_one_line

Faults drive the real command line (``python -m convscope``) in a subprocess on
512 images of the bundled MNIST sample, 4 epochs; a fault that must strike at
an exact instruction is injected by a small driver script that replaces
``keras.Model.save`` in the subprocess and then runs ``convscope.cli.main``.
Hostile files are crafted in tmp_path; nothing here touches the network.
"""

from __future__ import annotations

import csv
import errno
import gzip
import io
import json
import os
import pickle
import random
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from convscope import fileio
from convscope.cli import build_config, build_parser
from convscope.data import cifar, idx, load_dataset, load_images
from convscope.data.npz import load_npz_dataset
from convscope.errors import ConvscopeError
from convscope.models import load_model
from convscope.train import train
from conftest import isolated_env
from test_data import idx_bytes, write_idx_set
from test_data_cifar import official_members, write_tar
from test_data_images import make_classes, png_declaring, save

# 512 training images, 8 steps per epoch: an epoch takes about a second, so a
# random kill lands in an epoch, between epochs or during a checkpoint write.
TRAIN_ARGS = ["--dataset", "mnist-sample", "--limit-train", "512", "--model", "mnist_convnet", "--epochs", "4", "--batch-size", "64"]
EPOCHS = 4
# The same training on a folder of 640 sample digits as PNGs, streamed with the disk cache:
# 461 training images (80% held for training, 10% of those for validation), 8 steps per epoch.
FOLDER_IMAGES = 640
KILL_SEED = 2024  # seeds the moments of the random kills; any seed must pass
SUBPROCESS_TIMEOUT = 600  # seconds; a run takes 15-40 s on 2 busy cores, most of it importing TensorFlow

pytestmark = pytest.mark.usefixtures("isolated_locations")


# --------------------------------------------------------------------------- helpers: runs


def cli_config(*argv: str):
    """The Config the command line builds for ``argv``."""
    return build_config(build_parser().parse_args(list(argv)))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run (the same config the command line builds), for every fault to match."""
    out = tmp_path_factory.mktemp("reference")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in isolated_env(out).items():
            patch.setenv(key, value)
        train(cli_config("train", *TRAIN_ARGS, "--out", str(out), "--name", "run"))
    return out / "run"


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory) -> Path:
    """640 bundled sample digits as PNGs, one folder per class."""
    root = tmp_path_factory.mktemp("digits") / "digits"
    data = load_dataset("mnist-sample", val_split=0)
    for index, (image, label) in enumerate(zip(data.display_images(data.x_train[:FOLDER_IMAGES]), data.y_train)):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[..., 0]).save(root / str(label) / f"{index:04d}.png")
    return root


def streamed_args(folder: Path) -> list[str]:
    return ["--dataset", f"folder:{folder}", "--model", "mnist_convnet", "--epochs", str(EPOCHS), "--batch-size", "64", "--cache", "disk"]


@pytest.fixture(scope="module")
def streamed_reference(tmp_path_factory, digit_folder) -> Path:
    """An uninterrupted run on the streamed folder."""
    out = tmp_path_factory.mktemp("streamed-reference")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in isolated_env(out).items():
            patch.setenv(key, value)
        train(cli_config("train", *streamed_args(digit_folder), "--out", str(out), "--name", "run"))
    return out / "run"


def copy_run(run: Path, folder: Path, drop_epoch: int | None = None) -> Path:
    """Copy a run folder; ``drop_epoch`` removes that checkpoint, as if killed before writing it."""
    copy = folder / "run"
    shutil.copytree(run, copy)
    if drop_epoch is not None:
        for path in (copy / "checkpoint").glob(f"epoch-{drop_epoch:04d}.*"):
            path.unlink()
    return copy


def history_rows(run: Path) -> list[dict]:
    """history.csv rows without the wall-clock column."""
    with open(run / "history.csv", encoding="utf-8") as handle:
        return [{key: value for key, value in row.items() if key != "seconds"} for row in csv.DictReader(handle)]


def saved_weights(path: Path) -> list[np.ndarray]:
    return keras.saving.load_model(path, compile=False, safe_mode=True).get_weights()


def assert_same_run(run: Path, reference: Path) -> None:
    """Same epochs, same history rows, bit-identical best weights."""
    assert history_rows(run) == history_rows(reference)
    assert json.loads((run / "metrics.json").read_text())["epochs_run"] == EPOCHS
    for resumed, whole in zip(saved_weights(run / "model.keras"), saved_weights(reference / "model.keras"), strict=True):
        np.testing.assert_array_equal(resumed, whole)


def assert_no_partial_files(run: Path) -> None:
    """Every file under a final name is complete: models load, JSON and CSV parse."""
    for path in [*run.iterdir(), *(run / "checkpoint").iterdir()]:
        if fileio.TEMP_MARKER in path.name or path.is_dir():
            continue
        if path.suffix == ".keras":
            saved_weights(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".csv":
            rows = list(csv.reader(path.open()))
            assert all(len(row) == len(rows[0]) for row in rows), path


def temp_files(run: Path) -> list[Path]:
    return [path for folder in (run, run / "checkpoint") if folder.is_dir() for path in folder.iterdir() if fileio.TEMP_MARKER in path.name]


def snapshot(run: Path) -> dict[str, bytes]:
    return {str(path.relative_to(run)): path.read_bytes() for path in run.rglob("*") if path.is_file()}


def truncate(path: Path, keep: float = 0.5) -> None:
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


# --------------------------------------------------------------------------- helpers: subprocesses

# Runs `convscope ARGS` with one model save made to fail:  python driver.py MODE NAME[@N] ARGS...
# The N-th save whose temp file name contains NAME (default the first) is cut short:
#   kill    half the file written, then SIGKILL (power cut, OOM killer)
#   enospc  half the file written, then OSError(ENOSPC) (disk full)
#   sigint  Ctrl-C arrives just before the save; the save itself completes
DRIVER = r'''
import errno, os, signal, sys
from convscope import cli  # first, as `python -m convscope` does: it quiets TensorFlow's log before Keras loads it
import keras

mode, target = sys.argv[1], sys.argv[2]
name, _, nth = target.partition("@")
hits = [0]
real_save = keras.Model.save

def faulty_save(self, filepath, *args, **kwargs):
    if name in os.path.basename(str(filepath)):
        hits[0] += 1
    if hits[0] != int(nth or 1) or name not in os.path.basename(str(filepath)):
        return real_save(self, filepath, *args, **kwargs)
    if mode == "sigint":
        os.kill(os.getpid(), signal.SIGINT)
        return real_save(self, filepath, *args, **kwargs)
    real_save(self, filepath, *args, **kwargs)
    with open(filepath, "r+b") as handle:
        handle.truncate(os.path.getsize(filepath) // 2)
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(filepath))

keras.Model.save = faulty_save
sys.exit(cli.main(sys.argv[3:]))
'''


def convscope_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "convscope", *args]


def driver_command(folder: Path, mode: str, target: str, *args: str) -> list[str]:
    driver = folder / "driver.py"
    driver.write_text(DRIVER)
    return [sys.executable, str(driver), mode, target, *args]


def subprocess_env(folder: Path) -> dict[str, str]:
    env = {**os.environ, **isolated_env(folder)}
    # Importing convscope here set these; the command must set them itself (no TensorFlow log on stderr).
    for inherited in ("CONVSCOPE_DATA", "TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND"):
        env.pop(inherited, None)
    return env


def run_command(command: list[str], folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=folder, env=subprocess_env(folder), capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)


class Background:
    """A command running in the background, its output in files (a pipe could fill and block it)."""

    def __init__(self, command: list[str], folder: Path, label: str):
        self.stdout_path, self.stderr_path = folder / f"{label}.out", folder / f"{label}.err"
        with open(self.stdout_path, "w") as stdout, open(self.stderr_path, "w") as stderr:
            self.process = subprocess.Popen(command, cwd=folder, env=subprocess_env(folder), stdout=stdout, stderr=stderr)

    def wait_for(self, condition, timeout: float = SUBPROCESS_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.process.poll() is None, f"exited with {self.process.returncode} too early:\n{self.stderr_path.read_text()}"
            assert time.monotonic() < deadline, "timed out waiting"
            time.sleep(0.02)

    def signal(self, number: int) -> None:
        assert self.process.poll() is None, "finished before the signal; the test needs a slower run"
        self.process.send_signal(number)

    def finish(self) -> tuple[int, str, str]:
        returncode = self.process.wait(timeout=SUBPROCESS_TIMEOUT)
        return returncode, self.stdout_path.read_text(), self.stderr_path.read_text()


def stderr_lines(stderr: str) -> list[str]:
    """Non-empty stderr lines, each checked to be convscope's own (no traceback, no TensorFlow log)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    strangers = [line for line in lines if not line.startswith(("convscope: error: ", "convscope: warning: "))]
    assert not strangers, "\n".join(lines)
    return lines


def the_error_line(stderr: str) -> str:
    """The single error line, which must come last (warnings may precede it)."""
    lines = stderr_lines(stderr)
    errors = [line for line in lines if line.startswith("convscope: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], "\n".join(lines)
    return errors[0]


def checkpoint_exists(run: Path, epoch: int):
    return lambda: (run / "checkpoint" / f"epoch-{epoch:04d}.keras").exists()


def signal_at_random_moment(running: Background, run: Path, rng: random.Random, number: int) -> None:
    """Send signal ``number`` at a random moment of epochs 3 and 4, timed by how long epoch 2 took."""
    running.wait_for(checkpoint_exists(run, 1))
    started = time.monotonic()
    running.wait_for(checkpoint_exists(run, 2))
    delay = rng.uniform(0.0, 1.5 * (time.monotonic() - started))
    print(f"signal {number} sent {delay:.2f} s after the second checkpoint")  # shown if the test fails
    time.sleep(delay)
    running.signal(number)


# =========================================================================== 1. kill -9, then --resume


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["arrays", "streamed-folder"])
def test_kill_at_random_points_then_resume_equals_uninterrupted_run(tmp_path, request, layout):
    # arrays: the sample in memory; streamed-folder: a PNG folder read through tf.data with a disk cache
    streamed = layout == "streamed-folder"
    reference = request.getfixturevalue("streamed_reference" if streamed else "reference")
    train_args = streamed_args(request.getfixturevalue("digit_folder")) if streamed else TRAIN_ARGS
    run, rng = tmp_path / "run", random.Random(KILL_SEED)
    args = [*train_args, "--out", str(tmp_path), "--name", "run"]
    # Killed before any checkpoint: config.yaml is written just before epoch 1 starts.
    first = Background(convscope_command("train", *args), tmp_path, "first")
    first.wait_for(lambda: (run / "config.yaml").exists())
    first.signal(signal.SIGKILL)
    assert first.finish()[0] == -signal.SIGKILL
    assert not list((run / "checkpoint").glob("epoch-*.keras"))
    # Resumed, then killed at a random moment (in an epoch, between epochs or while writing a checkpoint).
    second = Background(convscope_command("train", "--resume", str(run)), tmp_path, "second")
    signal_at_random_moment(second, run, rng, signal.SIGKILL)
    assert second.finish()[0] == -signal.SIGKILL
    assert_no_partial_files(run)
    assert f"process {second.process.pid} " in (run / ".lock").read_text()  # the dead writer's lock stays behind
    # Resumed to the end: the same run as one never interrupted, the stale lock taken over with a warning.
    resumed = run_command(convscope_command("train", "--resume", str(run)), tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    warnings = [line for line in stderr_lines(resumed.stderr) if "took over the lock" in line]  # only convscope's own warnings
    assert len(warnings) == 1 and f"process {second.process.pid} " in warnings[0], resumed.stderr
    assert "Resuming" in resumed.stdout
    assert_same_run(run, reference)
    assert not temp_files(run) and not (run / ".lock").exists()
    if streamed:  # the killed runs' partial cache files were removed, the finished run's file completed
        cache = tmp_path / "cache" / "images"
        assert not list(cache.glob("*.partial-*")) and len(list(cache.glob("*.u8"))) == 1


# =========================================================================== 2. kill -9 during a write


@pytest.mark.slow
@pytest.mark.parametrize("target", ["epoch-0002.keras", "model.keras@2"], ids=["checkpoint", "best-model"])
def test_kill_during_a_write_keeps_previous_files(tmp_path, reference, target):
    # Killed half-way through writing epoch 2's checkpoint, or epoch 2's model.keras (written just before it).
    run = tmp_path / "run"
    args = ["train", *TRAIN_ARGS, "--out", str(tmp_path), "--name", "run"]
    assert run_command(driver_command(tmp_path, "kill", target, *args), tmp_path).returncode == -signal.SIGKILL
    assert temp_files(run), "the kill should leave the half-written temp file"
    assert not (run / "checkpoint" / "epoch-0002.keras").exists()  # never a partial file under a final name
    assert_no_partial_files(run)  # epoch 1's checkpoint and model.keras load
    if target.startswith("model.keras"):
        for kept, epoch_1 in zip(saved_weights(run / "model.keras"), saved_weights(run / "checkpoint" / "epoch-0001.keras"), strict=True):
            np.testing.assert_array_equal(kept, epoch_1)

    resumed = run_command(convscope_command("train", "--resume", str(run)), tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    stderr_lines(resumed.stderr)  # only convscope's own warnings
    assert "a partial file left by an interrupted run" in resumed.stderr
    assert not temp_files(run)
    assert_same_run(run, reference)


def test_stale_temps_and_a_folder_killed_before_the_first_epoch(tmp_path, recwarn):
    # Killed after the run folder was made but before config.yaml: nothing to
    # resume, so a new start must be allowed, and must clean the temp files.
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    stale = [run / f".model.keras{fileio.TEMP_MARKER}99-abcdef.keras", run / "checkpoint" / f".epoch-0001.json{fileio.TEMP_MARKER}99-abcdef.json"]
    for path in stale:
        path.write_bytes(b"half a file")
    config = cli_config("train", *TRAIN_ARGS, "--epochs", "1", "--limit-train", "128", "--out", str(tmp_path), "--name", "run")
    train(config)
    assert not any(path.exists() for path in stale)
    assert any("partial file left by an interrupted run" in str(warning.message) for warning in recwarn)


# =========================================================================== 2b. two writers, one folder


@pytest.mark.slow
def test_two_trainings_into_one_folder_one_exits_2_naming_the_other(tmp_path):
    # Started at once with the same --name: the folder's lock lets one train; the other
    # exits 2 naming the process that holds it (before the lock, both ran, and one could
    # fail on the other's missing temp file).
    args = ["train", *TRAIN_ARGS, "--epochs", "6", "--out", str(tmp_path), "--name", "run"]
    both = [Background(convscope_command(*args), tmp_path, label) for label in ("a", "b")]
    outcomes = sorted((process.finish() for process in both), key=lambda outcome: outcome[0])
    (won, _, _), (lost, _, lost_stderr) = outcomes
    assert (won, lost) == (0, 2), lost_stderr
    line = the_error_line(lost_stderr)
    assert re_search(r"run: in use by process \d+ on .* \(convscope train .*\); wait for it to finish", line), line
    assert_no_partial_files(tmp_path / "run")
    assert not (tmp_path / "run" / ".lock").exists()  # released by the winner


def test_the_lock_is_reentrant_in_one_process_and_exclusive_across_processes(tmp_path):
    from convscope.runfolder import RunFolder

    run = RunFolder(tmp_path / "run")
    holder = "import sys, time; from convscope.runfolder import RunFolder\nwith RunFolder(__import__('pathlib').Path(sys.argv[1])).lock():\n    print('held', flush=True); time.sleep(60)"
    with run.lock(), run.lock():  # `convscope run` takes it again in each stage
        assert run.lock_path.is_file()
    assert not run.lock_path.exists()
    other = subprocess.Popen([sys.executable, "-c", holder, str(run.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "held"
        with pytest.raises(ConvscopeError, match=rf"run: in use by process {other.pid} "):
            with run.lock():
                pass
    finally:
        other.kill()
        other.wait()
    with pytest.warns(UserWarning, match=rf"took over the lock of process {other.pid} "):
        with run.lock():
            pass


# =========================================================================== 3. damaged newest checkpoint


@pytest.mark.slow
@pytest.mark.parametrize("damaged", ["epoch-0004.keras", "epoch-0004.json"])
def test_damaged_newest_checkpoint_falls_back_to_the_previous(tmp_path, reference, damaged):
    run = copy_run(reference, tmp_path)
    truncate(run / "checkpoint" / damaged)
    with pytest.warns(UserWarning, match=f"{damaged}: damaged checkpoint .*trying an older one"):
        train(cli_config("train", "--resume", str(run)), resume=True)
    assert_same_run(run, reference)  # epoch 4 trained again from epoch 3's checkpoint


def test_no_checkpoint_loads_is_a_clear_error(tmp_path, reference):
    run = copy_run(reference, tmp_path)
    for path in (run / "checkpoint").glob("*.keras"):
        truncate(path)
    with pytest.warns(UserWarning, match="damaged checkpoint"):
        with pytest.raises(ConvscopeError, match=r"checkpoint: no checkpoint loads \(2 damaged\); delete .* train again without --resume"):
            train(cli_config("train", "--resume", str(run)), resume=True)


# =========================================================================== 4. disk full


def disk_full(path) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


@pytest.fixture
def full_disk(monkeypatch):
    """``full_disk("history.csv")``: writes of files whose name contains that text fail with ENOSPC after a few bytes."""
    real_save, real_open, failing = keras.Model.save, open, {"name": None}

    def hit(file) -> bool:
        return failing["name"] is not None and failing["name"] in Path(file).name

    def failing_save(self, filepath, *args, **kwargs):
        if not hit(filepath):
            return real_save(self, filepath, *args, **kwargs)
        Path(filepath).write_bytes(b"PK\x03\x04")  # a few bytes land, then the disk is full
        raise disk_full(filepath)

    def failing_open(file, mode="r", *args, **kwargs):
        if hit(file) and "w" in mode:
            with real_open(file, mode, *args, **kwargs) as handle:
                handle.write(b"{")
            raise disk_full(file)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save", failing_save)
    monkeypatch.setattr(fileio, "open", failing_open, raising=False)  # fileio's own writes (JSON, CSV)
    return lambda name: failing.update(name=name)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["epoch-0004.keras", "epoch-0004.json", "model.keras", "history.csv"])
def test_disk_full_is_a_clear_error_and_nothing_is_lost(tmp_path, reference, full_disk, name):
    run = copy_run(reference, tmp_path, drop_epoch=4)
    before = snapshot(run)
    full_disk(name)
    with pytest.raises(ConvscopeError, match=rf"{name}: cannot write \(No space left on device\); .*intact.*--resume"):
        train(cli_config("train", "--resume", str(run)), resume=True)
    after = snapshot(run)
    for kept in ("checkpoint/epoch-0003.json", "checkpoint/epoch-0003.keras", "config.yaml"):
        assert after[kept] == before[kept]
    if name == "model.keras":
        assert after["model.keras"] == before["model.keras"]
    assert not temp_files(run)
    assert_no_partial_files(run)
    # Space freed: the run resumes and ends as if nothing had happened.
    full_disk(None)
    train(cli_config("train", "--resume", str(run)), resume=True)
    assert_same_run(run, reference)


# =========================================================================== 5. NaN or Inf


@pytest.mark.slow
@pytest.mark.parametrize("val_split", ["0.1", "0"], ids=["validation", "no-validation"])
def test_nan_weights_are_never_saved_over_good_ones(tmp_path, monkeypatch, val_split):
    # The loss of a batch is computed before its update, so an update that
    # breaks the weights on an epoch's last batch leaves every logged loss
    # finite; without a validation set nothing else would notice. Simulate it:
    # epoch 2's fit returns finite logs (loss and val_loss) and one kernel full of NaN.
    run, saved = tmp_path / "run", {}
    real_fit = keras.Model.fit

    def fit_breaking_weights(self, *args, **kwargs):
        if kwargs.get("initial_epoch") != 1:
            return real_fit(self, *args, **kwargs)
        saved.update(snapshot(run))  # the files as epoch 1 left them
        history = real_fit(self, *args, **kwargs)
        kernel = self.trainable_weights[0]
        kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))
        return history

    monkeypatch.setattr(keras.Model, "fit", fit_breaking_weights)
    args = [*TRAIN_ARGS, "--limit-train", "128", "--epochs", "2", "--val-split", val_split]
    with pytest.raises(ConvscopeError, match=r"training diverged: .* at epoch 2\b.*lower --learning-rate"):
        train(cli_config("train", *args, "--out", str(tmp_path), "--name", "run"))
    after = snapshot(run)
    for kept in ("model.keras", "checkpoint/epoch-0001.json", "checkpoint/epoch-0001.keras", "history.csv"):
        assert after[kept] == saved[kept], kept
    assert not (run / "checkpoint" / "epoch-0002.keras").exists()
    assert all(np.isfinite(weights).all() for weights in saved_weights(run / "model.keras"))


# =========================================================================== 6. resume with other settings


@pytest.mark.parametrize(
    "change, message",
    [
        (["--model", "cnn_small"], "model: run has 'mnist_convnet', now 'cnn_small'"),
        (["--dataset", "digits"], "dataset: run has 'mnist-sample', now 'digits'; input_shape: run has [28, 28, 1], now [8, 8, 1]"),
        (["--limit-train", "256"], "train_size: run has 512, now 256"),
        (["--scale", "standard"], "scale: run has 'unit', now 'standard'"),
    ],
    ids=["model", "dataset", "train-size", "scale"],
)
def test_resume_with_other_settings_is_refused(tmp_path, reference, change, message):
    run = copy_run(reference, tmp_path)
    before = snapshot(run)
    with pytest.raises(ConvscopeError, match="cannot resume with different settings") as caught:
        train(cli_config("train", "--resume", str(run), *change), resume=True)
    assert message in str(caught.value) and "start a new run" in str(caught.value)
    assert snapshot(run) == before


def test_resume_with_another_class_list_is_refused(tmp_path, reference):
    run = copy_run(reference, tmp_path)
    config = cli_config("train", "--resume", str(run))
    data = load_dataset(config.data, seed=config.train.seed)
    data.class_names = ["zero", *data.class_names[1:]]  # same count, another list
    with pytest.raises(ConvscopeError, match=r"class_names: run has \['0', '1'.*now \['zero', '1'"):
        train(config, dataset=data, resume=True)


# =========================================================================== 7. Ctrl-C


@pytest.mark.slow
def test_sigint_at_a_random_point_saves_a_resumable_state(tmp_path, reference):
    run, rng = tmp_path / "run", random.Random(KILL_SEED + 1)
    running = Background(convscope_command("train", *TRAIN_ARGS, "--out", str(tmp_path), "--name", "run"), tmp_path, "sigint")
    signal_at_random_moment(running, run, rng, signal.SIGINT)
    returncode, _, stderr = running.finish()
    assert returncode == 130, stderr
    line = the_error_line(stderr)
    assert "interrupted" in line and f"continue with `convscope train --resume {run}`" in line
    assert_no_partial_files(run)
    resumed = run_command(convscope_command("train", "--resume", str(run)), tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    stderr_lines(resumed.stderr)  # only convscope's own warnings
    assert_same_run(run, reference)


@pytest.mark.slow
def test_sigint_while_the_epoch_files_are_written(tmp_path):
    # Ctrl-C between two epochs, while the checkpoint is being written: the
    # write completes, then training stops with that epoch saved.
    run = tmp_path / "run"
    args = ["train", *TRAIN_ARGS, "--out", str(tmp_path), "--name", "run"]
    interrupted = run_command(driver_command(tmp_path, "sigint", "epoch-0002.keras", *args), tmp_path)
    assert interrupted.returncode == 130, interrupted.stderr
    line = the_error_line(interrupted.stderr)
    assert "2 complete epoch(s) saved" in line and f"--resume {run}" in line
    assert len(history_rows(run)) == 2
    saved_weights(run / "checkpoint" / "epoch-0002.keras")
    assert not temp_files(run)


# =========================================================================== 8. pickle gadgets


def protocol0(value) -> str:
    """A str, a list of str or an empty dict in pickle protocol 0."""
    if isinstance(value, str):
        return f"V{value}\n"
    if isinstance(value, list):
        return "(l" + "".join(protocol0(item) + "a" for item in value)
    assert value == {}
    return "(d"


def gadget_pickle(module: str, name: str, *args) -> bytes:
    """A CIFAR-like batch {'data': module.name(*args)}: the call runs when plain pickle loads it."""
    call = f"c{module}\n{name}\n(" + "".join(protocol0(arg) for arg in args) + "tR"
    return f"(dS'data'\n{call}s.".encode()


def gadget_args(args: tuple, sentinel: Path) -> tuple:
    fill = lambda value: value.format(sentinel=sentinel) if isinstance(value, str) else [fill(v) for v in value] if isinstance(value, list) else value  # noqa: E731
    return tuple(fill(arg) for arg in args)


# Globals a hostile pickle calls; those with a sentinel in their arguments create it when they run.
GADGETS = {
    "os.system": ("os", "system", ("touch {sentinel}",)),
    "posix.system": ("posix", "system", ("touch {sentinel}",)),
    "subprocess.check_call": ("subprocess", "check_call", (["touch", "{sentinel}"],)),
    "builtins.eval": ("builtins", "eval", ("open('{sentinel}', 'w')",)),
    "builtins.exec": ("builtins", "exec", ("open('{sentinel}', 'w')",)),
    "numpy-runstring": ("numpy.testing._private.utils", "runstring", ("open('{sentinel}', 'w')", {})),
    "builtins.getattr": ("builtins", "getattr", ("x", "upper")),
    "builtins.__import__": ("builtins", "__import__", ("os",)),
    "numpy.load": ("numpy", "load", ("{sentinel}",)),
    "pickle.loads": ("pickle", "loads", ("x",)),
}
LIVE_GADGETS = ["os.system", "posix.system", "subprocess.check_call", "builtins.eval", "builtins.exec", "numpy-runstring"]


@pytest.mark.parametrize("gadget", LIVE_GADGETS)
def test_gadgets_run_under_plain_pickle(tmp_path, gadget):
    # What the restricted unpickler protects against: plain pickle runs each payload.
    module, name, args = GADGETS[gadget]
    sentinel = tmp_path / "payload-ran"
    pickle.loads(gadget_pickle(module, name, *gadget_args(args, sentinel)), encoding="bytes")
    assert sentinel.exists()


@pytest.mark.parametrize("module, name, args", GADGETS.values(), ids=GADGETS.keys())
@pytest.mark.parametrize("layout", ["archive", "folder"])
def test_pickle_gadgets_are_refused_and_never_run(tmp_path, module, name, args, layout):
    sentinel = tmp_path / "payload-ran"
    payload = gadget_pickle(module, name, *gadget_args(args, sentinel))
    members = {**official_members(), "data_batch_3": payload}
    if layout == "archive":
        write_tar(tmp_path / cifar.ARCHIVE_NAME, members)
    else:
        (tmp_path / cifar.FOLDER_NAME).mkdir()
        for member, data in members.items():
            (tmp_path / cifar.FOLDER_NAME / member).write_bytes(data)
    with pytest.raises(ConvscopeError, match=rf"data_batch_3: refused to load the pickled global '{module}\.{name}'.*may be malicious"):
        load_dataset("cifar10", data_dir=tmp_path, allow_download=False)
    assert not sentinel.exists()


# =========================================================================== 9. npz object arrays


class Payload:
    """Pickles as a call to os.system: what an object array in a hostile .npz holds."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def hostile_npz(path: Path, sentinel: Path, key: str = "y_train") -> Path:
    arrays = {"x_train": np.zeros((4, 6, 6), np.uint8), "y_train": np.arange(4) % 2, "x_test": np.zeros((2, 6, 6), np.uint8), "y_test": np.arange(2)}
    objects = np.empty(len(arrays[key]), dtype=object)
    objects[:] = [Payload(f"touch {sentinel}")] * len(objects)
    np.savez(path, **{**arrays, key: objects})  # numpy pickles object arrays when saving
    return path


@pytest.mark.parametrize("key", ["x_train", "y_train", "y_test"])
def test_npz_object_arrays_are_refused_and_never_run(tmp_path, key):
    sentinel = tmp_path / "payload-ran"
    path = hostile_npz(tmp_path / "hostile.npz", sentinel, key)
    with pytest.raises(ConvscopeError, match=rf"hostile.npz: array '{key}' holds Python objects \(dtype object\); refused"):
        load_npz_dataset(path)
    assert not sentinel.exists()


def test_npz_labels_implying_absurd_class_counts_are_refused(tmp_path):
    # Without class_names, names "0".."K-1" are made from the largest label: 2**40 would never finish.
    path = tmp_path / "labels.npz"
    np.savez(path, x_train=np.zeros((2, 4, 4), np.uint8), y_train=np.array([0, 2**40]), x_test=np.zeros((1, 4, 4), np.uint8), y_test=np.array([0]))
    with pytest.raises(ConvscopeError, match=r"labels.npz: y_train, y_test: largest label 1099511627776 implies 1099511627777 classes; expected at most 100000"):
        load_npz_dataset(path)


# =========================================================================== 10. unsafe model files


def lambda_model_file(path: Path) -> Path:
    inputs = keras.Input((28, 28, 1))
    flat = keras.layers.Flatten()(keras.layers.Lambda(lambda x: x * 2, name="double")(inputs))
    keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(flat)).save(path)
    return path


def model_file_with_config(path: Path, config: dict) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("metadata.json", json.dumps({"keras_version": keras.__version__}))
    return path


def test_unsafe_model_files_are_refused(tmp_path):
    sentinel = tmp_path / "payload-ran"
    with pytest.raises(ConvscopeError, match=r"model.keras: holds a Lambda layer 'double', whose Python code would run on loading.*--trust-model"):
        load_model(lambda_model_file(tmp_path / "model.keras"))
    for module, class_name in [("os", "system"), ("subprocess", "Popen"), ("numpy.testing._private.utils", "runstring")]:
        config = {"module": module, "class_name": class_name, "config": {"args": f"touch {sentinel}"}, "registered_name": None}
        with pytest.raises(ConvscopeError, match=rf"names class '{class_name}' from module '{module}', which is not part of Keras"):
            load_model(model_file_with_config(tmp_path / "evil.keras", config))
    nested = {"module": "keras", "class_name": "Sequential", "config": {"layers": [{"module": "os", "class_name": "system", "config": {}}]}}
    with pytest.raises(ConvscopeError, match="from module 'os'"):
        load_model(model_file_with_config(tmp_path / "nested.keras", nested))
    legacy = tmp_path / "legacy.h5"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(legacy)
    with pytest.raises(ConvscopeError, match=r"legacy.h5: legacy HDF5 model files can run arbitrary code.*--trust-model"):
        load_model(legacy)
    assert load_model(legacy, trust=True).count_params() == 10  # the user vouches for it: --trust-model
    assert not sentinel.exists()


# =========================================================================== 11. unsafe archives


def tar_member(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, linkname
    return info


def tar_bytes(members: dict[str, bytes], header: tarfile.TarInfo | None = None) -> bytes:
    """An uncompressed tar of the batches; ``header`` first may declare data that is not there."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(f"{cifar.FOLDER_NAME}/{name}")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return (header.tobuf(format=tarfile.GNU_FORMAT) if header else b"") + buffer.getvalue()


def tar_with_header(path: Path, header: tarfile.TarInfo) -> Path:
    path.write_bytes(gzip.compress(tar_bytes(official_members(), header)))
    return path


def zip_declaring(path: Path, member: str, declared_size: int) -> Path:
    """Rewrite a zip's central directory so ``member`` declares ``declared_size`` bytes (a zip64 field)."""
    data = bytearray(path.read_bytes())
    end = data.rindex(b"PK\x05\x06")
    directory_size, directory_offset = struct.unpack_from("<II", data, end + 12)
    entries, position = [], directory_offset
    while position < directory_offset + directory_size:
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", data, position + 28)
        length = 46 + name_length + extra_length + comment_length
        entry = bytearray(data[position : position + length])
        if entry[46 : 46 + name_length].decode() == member:
            struct.pack_into("<I", entry, 24, 0xFFFFFFFF)  # "see the zip64 field"
            struct.pack_into("<H", entry, 30, extra_length + 12)
            entry[46 + name_length + extra_length : 46 + name_length + extra_length] = struct.pack("<HHQ", 1, 8, declared_size)
        entries.append(bytes(entry))
        position += length
    directory = b"".join(entries)
    tail = bytearray(data[end:])
    struct.pack_into("<I", tail, 12, len(directory))
    path.write_bytes(bytes(data[:directory_offset]) + directory + bytes(tail))
    return path


def valid_npz(path: Path) -> Path:
    np.savez(path, x_train=np.zeros((4, 6, 6), np.uint8), y_train=np.arange(4) % 2, x_test=np.zeros((2, 6, 6), np.uint8), y_test=np.arange(2))
    return path


def zip_with_member(path: Path, info: zipfile.ZipInfo) -> Path:
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(info, b"/etc/passwd")
    return path


def symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system, info.external_attr = 3, (0o120777 << 16)  # a Unix symbolic link
    return info


def keras_file(path: Path) -> Path:
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(path)
    return path


ARCHIVES = {
    "tar-dotdot": (lambda d: write_tar(d / cifar.ARCHIVE_NAME, official_members(), extra=[tar_member("../escape")]), "'..' path component"),
    "tar-absolute": (lambda d: write_tar(d / cifar.ARCHIVE_NAME, official_members(), extra=[tar_member("/etc/cron.d/job")]), "an absolute path"),
    "tar-symlink": (lambda d: write_tar(d / cifar.ARCHIVE_NAME, official_members(), extra=[tar_member("x/link", tarfile.SYMTYPE, linkname="/etc/passwd")]), "a link"),
    "tar-hardlink": (lambda d: write_tar(d / cifar.ARCHIVE_NAME, official_members(), extra=[tar_member("x/hard", tarfile.LNKTYPE, linkname="/etc/passwd")]), "a link"),
    "tar-device": (lambda d: write_tar(d / cifar.ARCHIVE_NAME, official_members(), extra=[tar_member("x/dev", tarfile.CHRTYPE)]), "a device"),
    "tar-absurd-size": (lambda d: tar_with_header(d / cifar.ARCHIVE_NAME, tar_member("cifar-10-batches-py/data_batch_0", size=10**12)), "declared size of 1000000000000 bytes"),
    "npz-dotdot": (lambda d: zip_with_member(valid_npz(d / "data.npz"), zipfile.ZipInfo("../escape.npy")), "'..' path component"),
    "npz-absolute": (lambda d: zip_with_member(valid_npz(d / "data.npz"), zipfile.ZipInfo("/etc/passwd.npy")), "an absolute path"),
    "npz-symlink": (lambda d: zip_with_member(valid_npz(d / "data.npz"), symlink_info("link.npy")), "a link"),
    "npz-absurd-size": (lambda d: zip_declaring(valid_npz(d / "data.npz"), "x_train.npy", 10**12), "declared size of 1000000000000 bytes"),
    "keras-dotdot": (lambda d: zip_with_member(keras_file(d / "model.keras"), zipfile.ZipInfo("assets/../../escape")), "'..' path component"),
    "keras-symlink": (lambda d: zip_with_member(keras_file(d / "model.keras"), symlink_info("assets/link")), "a link"),
    "keras-absurd-size": (lambda d: zip_declaring(keras_file(d / "model.keras"), "model.weights.h5", 10**12), "declared size of 1000000000000 bytes"),
    "keras-config-size": (lambda d: zip_declaring(keras_file(d / "model.keras"), "config.json", 10**8), "declared size of 100000000 bytes"),
}


def load_archive(path: Path):
    if path.suffix == ".keras":
        return load_model(path)
    if path.suffix == ".npz":
        return load_npz_dataset(path)
    return cifar.load_cifar10(path)


@pytest.mark.parametrize("make, problem", ARCHIVES.values(), ids=ARCHIVES.keys())
def test_unsafe_archive_members_are_refused_before_reading(tmp_path, make, problem):
    (tmp_path / "data").mkdir()
    path = make(tmp_path / "data")
    with pytest.raises(ConvscopeError, match=rf"{path.name}: member .* {problem}.*refused before reading anything"):
        load_archive(path)
    assert not (tmp_path / "escape").exists() and not (tmp_path / "data" / "escape").exists()


# =========================================================================== 12. images


def jpeg_bytes(size=(48, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.95])
def test_truncated_jpeg_is_an_error_naming_it(tmp_path, keep):
    make_classes(tmp_path / "d", per_class=12)  # enough for a validation and a test image of each class
    data = jpeg_bytes()
    broken = tmp_path / "d" / "dog" / "broken.jpg"
    broken.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ConvscopeError, match=r"broken.jpg: cannot (read|decode this JPEG image) .*(truncated|Truncated)"):
        data = load_dataset(f"folder:{tmp_path / 'd'}", image_size=(6, 5), color_mode="grayscale")  # the scan reads headers
        np.asarray(data.x_train), np.asarray(data.x_test)  # a streamed folder decodes the pixels when they are read


def image_of_mode(mode: str) -> Image.Image:
    """A 9x7 image of ``mode`` whose pixel (2, 3) shows a known color."""
    rgb = Image.new("RGB", (7, 9), (200, 40, 10))
    if mode == "P-transparent":
        image = rgb.convert("P")
        image.info["transparency"] = 255  # an unused index: nothing is transparent
        return image
    if mode == "I;16":
        return Image.fromarray(np.full((9, 7), 120 * 257, dtype=np.uint16))
    return rgb.convert(mode)


@pytest.mark.parametrize("color_mode", ["grayscale", "rgb"])
def test_image_kinds_in_a_class_folder(tmp_path, color_mode):
    root = tmp_path / "d"
    make_classes(root, per_class=2)  # 6x5 grayscale PNGs in cat/ and dog/
    for number, mode in enumerate(["L", "LA", "RGB", "RGBA", "P", "P-transparent", "1", "I;16", "CMYK"]):
        image = image_of_mode(mode)
        image.save(root / "cat" / f"kind-{number}.{'jpg' if mode == 'CMYK' else 'png'}")
    save(root / "dog" / "really-a-png.jpg", np.full((12, 12), 77))  # a .jpg that is a PNG: decoded by content
    (root / "dog" / "notes.txt").write_text("not an image")  # skipped with a warning
    with pytest.warns(UserWarning, match=r"notes.txt: not a PNG, JPEG, BMP, GIF or WebP image \(judged by content\); skipped"):
        data = load_dataset(f"folder:{root}", image_size=(4, 3), color_mode=color_mode, val_split=0)
    channels = 1 if color_mode == "grayscale" else 3
    assert data.input_shape == (4, 3, channels)  # every kind and size converted and resized as configured
    assert len(data.x_train) + len(data.x_test) == 2 * 2 + 9 + 1
    assert np.asarray(data.x_train).shape[1:] == np.asarray(data.x_test).shape[1:] == (4, 3, channels)  # every kind decodes
    pixels = load_images(sorted((root / "dog").glob("really-a-png.jpg")), image_size=(4, 3), color_mode=color_mode)
    assert pixels.shape == (1, 4, 3, channels) and (pixels == 77).all()


def test_decompression_bomb_is_an_error_not_a_warning(tmp_path):
    make_classes(tmp_path / "d", per_class=2)
    (tmp_path / "d" / "dog" / "bomb.png").write_bytes(png_declaring(100_000, 100_000))
    with pytest.raises(ConvscopeError, match=r"bomb.png: .*decompression bomb.*resize"):
        load_dataset(f"folder:{tmp_path / 'd'}", image_size=(6, 5), color_mode="grayscale")


# =========================================================================== 13. IDX files


def idx_folder(folder: Path, replace: dict[str, bytes]) -> Path:
    """The four IDX files of a tiny dataset, some replaced by crafted bytes."""
    write_idx_set(folder, compress=False)
    for name, data in replace.items():
        (folder / name).write_bytes(data)
    return folder


IDX_PROBLEMS = {
    "wrong-magic": ({"train-images-idx3-ubyte": b"\x00\x00\x08\x01" + bytes(40)}, r"train-images-idx3-ubyte: IDX magic number 0x00000801; expected 0x00000803"),
    "dims-vs-length": ({"t10k-images-idx3-ubyte": idx_bytes(0x08, (10, 6, 7), bytes(360))}, r"header declares 10 x 6 x 7 uint8 values = 420 bytes but the file holds 360; the file is truncated"),
    "count-mismatch": ({"train-labels-idx1-ubyte": idx_bytes(0x08, (29,), bytes(29))}, r"train-labels-idx1-ubyte: 29 labels but train-images-idx3-ubyte holds 30 images"),
    "negative-label": ({"t10k-labels-idx1-ubyte": idx_bytes(0x09, (10,), bytes(9) + b"\xff")}, r"t10k-labels-idx1-ubyte: label -1 at index 9 is out of range; expected 0..9"),
    "label-too-large": ({"t10k-labels-idx1-ubyte": idx_bytes(0x08, (10,), bytes(3) + b"\x0a" + bytes(6))}, r"label 10 at index 3 is out of range; expected 0..9 \(10 classes\)"),
    "nan-pixels": ({"train-images-idx3-ubyte": idx_bytes(0x0D, (30, 6, 6), struct.pack(">1080f", *([0.5] * 1079 + [float("nan")])))}, r"train-images-idx3-ubyte: NaN or Inf at index \(29, 5, 5\)"),
    "inf-labels": ({"train-labels-idx1-ubyte": idx_bytes(0x0E, (30,), struct.pack(">30d", *([1.0] * 29 + [float("inf")])))}, r"NaN or Inf at index \(29,\)"),
}


@pytest.mark.parametrize("replace, message", IDX_PROBLEMS.values(), ids=IDX_PROBLEMS.keys())
def test_bad_idx_files_are_refused(tmp_path, replace, message):
    folder = idx_folder(tmp_path / "mnist", replace)
    with pytest.raises(ConvscopeError, match=message):
        load_dataset("mnist", data_dir=folder, allow_download=False)


# =========================================================================== 14. fuzzing

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@st.composite
def mutations(draw, original: bytes) -> bytes:
    """``original`` with a few bytes changed and possibly cut short: what corruption and crafting produce."""
    data = bytearray(original)
    for _ in range(draw(st.integers(0, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def result_or_clear_error(load, path: Path):
    """Call ``load``; the only failure allowed is a one-line ConvscopeError naming ``path``."""
    try:
        return load()
    except ConvscopeError as error:
        message = str(error)
        assert "\n" not in message and path.name in message, message
        return None


@FUZZ
@given(data=st.data())
def test_fuzz_idx(tmp_path, data):
    kind = data.draw(st.sampled_from(["images", "labels"]))
    dims = data.draw(st.lists(st.integers(0, 6), min_size=1, max_size=4))
    type_code = data.draw(st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x42]))
    crafted = idx_bytes(type_code, tuple(dims), data.draw(st.binary(max_size=200)))
    content = data.draw(st.one_of(st.just(crafted), mutations(crafted), st.binary(max_size=64)))
    if data.draw(st.booleans()):
        content = data.draw(mutations(gzip.compress(content)))
    path = tmp_path / "fuzz-idx3-ubyte"
    path.write_bytes(content)
    result_or_clear_error(lambda: idx.read_idx(path, kind), path)


@FUZZ
@given(data=st.data())
def test_fuzz_cifar_batches_and_archives(tmp_path, data):
    members = official_members()
    name = data.draw(st.sampled_from(sorted(members)))
    if data.draw(st.booleans()):
        folder = tmp_path / cifar.FOLDER_NAME
        folder.mkdir(exist_ok=True)
        for member, content in members.items():
            (folder / member).write_bytes(content)
        (folder / name).write_bytes(data.draw(st.one_of(mutations(members[name]), st.binary(max_size=100))))
        result_or_clear_error(lambda: cifar.load_cifar10(folder), folder)
    else:
        path = tmp_path / cifar.ARCHIVE_NAME
        path.write_bytes(data.draw(mutations(tar_bytes(members))))  # plain tar: mutations reach the headers
        result_or_clear_error(lambda: cifar.load_cifar10(path), path)


@FUZZ
@given(data=st.data())
def test_fuzz_npz_bytes(tmp_path, data):
    path = tmp_path / "fuzz.npz"
    valid_npz(path)
    path.write_bytes(data.draw(mutations(path.read_bytes())))
    result_or_clear_error(lambda: load_npz_dataset(path), path)


ARRAY_DTYPES = st.one_of(hnp.scalar_dtypes(), hnp.byte_string_dtypes(max_len=3), hnp.unicode_string_dtypes(max_len=3))


@FUZZ
@given(data=st.data())
def test_fuzz_npz_arrays(tmp_path, data):
    # Arrays of any dtype and shape; half the time the images are valid, so that the labels' checks are reached.
    arrays, valid_images = {}, data.draw(st.booleans())
    for split in ("train", "test"):
        if valid_images:
            arrays[f"x_{split}"] = np.zeros((data.draw(st.integers(1, 4)), 3, 3), np.uint8)
            label_shape = st.one_of(st.just((len(arrays[f"x_{split}"]),)), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
        else:
            arrays[f"x_{split}"] = data.draw(hnp.arrays(ARRAY_DTYPES, hnp.array_shapes(min_dims=1, max_dims=5, min_side=0, max_side=4)))
            label_shape = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
        arrays[f"y_{split}"] = data.draw(hnp.arrays(ARRAY_DTYPES, data.draw(label_shape)))
    if data.draw(st.booleans()):
        arrays["class_names"] = data.draw(hnp.arrays(ARRAY_DTYPES, data.draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3))))
    path = tmp_path / "arrays.npz"
    np.savez(path, **arrays)
    raw = result_or_clear_error(lambda: load_npz_dataset(path), path)
    if raw is not None:
        assert raw.x_train.ndim == 4 and raw.y_train.dtype == np.int64 and len(raw.y_train) == len(raw.x_train)
        assert raw.y_train.min(initial=0) >= 0 and raw.y_train.max(initial=0) < len(raw.class_names)


def image_bytes(format: str, mode: str) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(1).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(buffer, format)
    return buffer.getvalue()


IMAGE_SEEDS = [image_bytes(format, mode) for format, mode in [("PNG", "RGB"), ("PNG", "P"), ("JPEG", "L"), ("GIF", "P"), ("BMP", "RGB"), ("WEBP", "RGB")]]


@FUZZ
@given(data=st.data())
def test_fuzz_images(tmp_path, data):
    path = tmp_path / "fuzz.png"
    path.write_bytes(data.draw(st.one_of(st.sampled_from(IMAGE_SEEDS).flatmap(mutations), st.binary(max_size=64))))
    size = data.draw(st.sampled_from([None, (5, 4)]))
    mode = data.draw(st.sampled_from([None, "grayscale", "rgb"]))
    pixels = result_or_clear_error(lambda: load_images([path], image_size=size, color_mode=mode), path)
    if pixels is not None:
        assert pixels.dtype == np.uint8 and pixels.ndim == 4 and pixels.shape[-1] in (1, 3)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["class_name", "module", "config", "name", "layers", "registered_name", "build_config", "inbound_nodes"]), children, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def model_file_bytes(tmp_path_factory) -> bytes:
    """One small .keras file for every example (each save differs: date, layer names)."""
    return keras_file(tmp_path_factory.mktemp("model") / "seed.keras").read_bytes()


@pytest.mark.slow
@FUZZ
@given(data=st.data())
def test_fuzz_model_files(tmp_path, model_file_bytes, data):
    path = tmp_path / "fuzz.keras"
    if data.draw(st.booleans()):
        path.write_bytes(data.draw(mutations(model_file_bytes)))
    else:  # a readable archive whose config.json is anything
        with zipfile.ZipFile(io.BytesIO(model_file_bytes)) as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
        config = json.loads(members["config.json"])
        config[data.draw(st.sampled_from(sorted(config)))] = data.draw(JSON_VALUES)
        with zipfile.ZipFile(path, "w") as archive:
            for name, content in {**members, "config.json": json.dumps(config).encode()}.items():
                archive.writestr(name, content)
    result_or_clear_error(lambda: load_model(path), path)


# =========================================================================== every error: one line, exit 2


def cli_damaged_checkpoints(folder, reference):
    run = copy_run(reference, folder)
    for path in (run / "checkpoint").glob("*.keras"):
        truncate(path)
    return convscope_command("train", "--resume", str(run)), r"no checkpoint loads \(2 damaged\)"


def cli_disk_full(folder, reference):
    run = copy_run(reference, folder, drop_epoch=4)
    return driver_command(folder, "enospc", "epoch-0004.keras", "train", "--resume", str(run)), r"epoch-0004.keras: cannot write \(No space left on device\)"


def cli_diverging(folder, reference):
    args = [*TRAIN_ARGS, "--learning-rate", "1e30", "--schedule", "constant", "--out", str(folder), "--name", "nan"]
    return convscope_command("train", *args), r"training diverged: loss became nan at epoch 1, (batch \d+|batches \d+-\d+)"


def cli_other_model(folder, reference):
    run = copy_run(reference, folder)
    return convscope_command("train", "--resume", str(run), "--model", "cnn_small"), "model: run has 'mnist_convnet', now 'cnn_small'"


def cli_pickle_gadget(folder, reference):
    write_tar(folder / cifar.ARCHIVE_NAME, {**official_members(), "data_batch_1": gadget_pickle("os", "system", f"touch {folder / 'payload-ran'}")})
    return convscope_command("train", "--dataset", "cifar10", "--data-dir", str(folder), "--no-download", "--out", str(folder)), r"refused to load the pickled global '(os|posix)\.system'"


def cli_npz_objects(folder, reference):
    hostile_npz(folder / "hostile.npz", folder / "payload-ran")
    return convscope_command("train", "--dataset", f"npz:{folder / 'hostile.npz'}", "--out", str(folder)), r"array 'y_train' holds Python objects"


def cli_lambda_model(folder, reference):
    run = copy_run(reference, folder)
    lambda_model_file(run / "model.keras")
    return convscope_command("evaluate", str(run)), r"model.keras: holds a Lambda layer 'double'"


def cli_archive_escape(folder, reference):
    write_tar(folder / cifar.ARCHIVE_NAME, official_members(), extra=[tar_member("../escape")])
    return convscope_command("train", "--dataset", "cifar10", "--data-dir", str(folder), "--no-download", "--out", str(folder)), r"member '../escape' has a '..' path component"


def cli_truncated_jpeg(folder, reference):
    make_classes(folder / "d", per_class=12)
    (folder / "d" / "dog" / "broken.jpg").write_bytes(jpeg_bytes()[:1000])
    return convscope_command("train", "--dataset", f"folder:{folder / 'd'}", "--image-size", "28,28", "--out", str(folder)), r"broken.jpg: cannot decode this JPEG image"


def cli_idx_magic(folder, reference):
    idx_folder(folder / "mnist", IDX_PROBLEMS["wrong-magic"][0])
    return convscope_command("train", "--dataset", "mnist", "--data-dir", str(folder / "mnist"), "--no-download", "--out", str(folder)), r"IDX magic number 0x00000801"


CLI_CASES = {
    "3-damaged-checkpoints": cli_damaged_checkpoints,
    "4-disk-full": cli_disk_full,
    "5-diverging": cli_diverging,
    "6-other-model": cli_other_model,
    "8-pickle-gadget": cli_pickle_gadget,
    "9-npz-objects": cli_npz_objects,
    "10-lambda-model": cli_lambda_model,
    "11-archive-escape": cli_archive_escape,
    "12-truncated-jpeg": cli_truncated_jpeg,
    "13-idx-magic": cli_idx_magic,
}


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory, reference) -> dict:
    """Run every case's command at once, three at a time (most of each is importing TensorFlow)."""
    cases = {}
    for case, make in CLI_CASES.items():
        folder = tmp_path_factory.mktemp(case)
        command, message = make(folder, reference)
        cases[case] = (folder, command, message)
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {case: pool.submit(run_command, command, folder) for case, (folder, command, _) in cases.items()}
        return {case: (cases[case][0], cases[case][2], future.result()) for case, future in futures.items()}


@pytest.mark.slow
@pytest.mark.parametrize("case", CLI_CASES)
def test_command_line_error_is_one_line(cli_results, case):
    folder, message, result = cli_results[case]
    assert result.returncode == 2, result.stderr
    line = the_error_line(result.stderr)
    assert re_search(message, line), line
    expected_warnings = 2 if case == "3-damaged-checkpoints" else 0  # one per damaged checkpoint
    assert len(stderr_lines(result.stderr)) == 1 + expected_warnings, result.stderr
    assert not (folder / "payload-ran").exists()
    assert not [path for path in folder.rglob("*") if fileio.TEMP_MARKER in path.name]


def re_search(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text) is not None


@pytest.mark.parametrize(
    "error, line",
    [
        (disk_full("out/run/environment.json"), "out/run/environment.json: No space left on device; check that the folder exists, is writable and has free space"),
        (ConvscopeError("out/two\nlines: not a readable file"), "out/two lines: not a readable file"),
    ],
    ids=["os-error", "newline-in-a-path"],
)
def test_any_error_is_one_line(monkeypatch, capsys, error, line):
    # Errors no stage words itself (a full disk while writing environment.json), and
    # messages holding a path with a newline in it, still print one line.
    import importlib
    import logging
    import warnings

    from convscope import cli

    def failing_train(config, resume=False):
        raise error

    logger = logging.getLogger("convscope")
    monkeypatch.setattr(logger, "handlers", list(logger.handlers))  # main() adds one for this call only
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    monkeypatch.setattr(importlib.import_module("convscope.train"), "train", failing_train)  # convscope.train is the function
    assert cli.main(["train", "--epochs", "1"]) == 2
    assert capsys.readouterr().err == f"convscope: error: {line}\n"
