"""What `convscope run` does beside its main line: the data read in a thread, the evaluation figures drawn in a
second process, and the quick exit of a finished command.

Each is checked against the plain way (same arrays, same PNG bytes, same exit code and output), and for how it
fails: an error comes back as the error it was, a dead process is one ConvscopeError, Ctrl-C does not reach the
drawing process, and nothing is left running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from convscope.config import DataConfig
from convscope.data import load_dataset
from convscope.data.background import start_loading
from convscope.errors import ConvscopeError
from convscope.evaluate import evaluate_predictions
from convscope.plots.background import FigureProcess
from convscope.plots.evaluation import save_evaluation_figures

from conftest import random_images
from test_stream import make_folder


# ---------------------------------------------------------------- the data, read in a thread


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_background_load_gives_the_same_dataset(isolated_locations, data_format):
    import keras

    data_config = DataConfig(dataset="mnist-sample", limit_train=300)
    keras.config.set_image_data_format(data_format)
    try:
        loaded = start_loading(data_config, seed=3).result()
        direct = load_dataset(data_config, seed=3)
    finally:
        keras.config.set_image_data_format("channels_last")
    assert loaded.x_train.shape[1 if data_format == "channels_first" else 3] == 1
    for split in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(loaded, split), getattr(direct, split))


def test_background_load_raises_the_loaders_error_in_the_caller(isolated_locations, tmp_path):
    loading = start_loading(DataConfig(dataset="mnist", data_dir=str(tmp_path / "nowhere"), allow_download=False))
    with pytest.raises(ConvscopeError, match="nowhere"):
        loading.result()


# ---------------------------------------------------------------- the figures, drawn in a second process


@pytest.fixture(scope="module")
def evaluation():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 60)
    probabilities = rng.dirichlet(np.ones(4), 60).astype(np.float32)
    probabilities[np.arange(40), labels[:40]] += 2.0  # two thirds right, the rest anywhere
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    images = (random_images(60, (8, 8, 1)) * 255).astype(np.uint8)
    return evaluate_predictions(probabilities, labels, class_names=["a", "b", "c", "d"]), images


@pytest.fixture(scope="module")
def figures():
    with FigureProcess() as process:
        yield process


def test_figures_from_the_process_are_the_bytes_drawn_here(figures, evaluation, tmp_path):
    result, images = evaluation
    history = {"epoch": np.array([1, 2]), "loss": np.array([0.9, 0.5]), "accuracy": np.array([0.6, 0.8])}
    figures.start_evaluation_figures(result, images, tmp_path / "there", history=history, train_labels=result.labels)
    claims = figures._job["claims"]
    assert claims.is_dir()
    there = figures.wait()
    here = save_evaluation_figures(result, images, tmp_path / "here", history=history, train_labels=result.labels)
    assert sorted(there) == sorted(here) and "training_curves" in there
    for name in here:
        assert there[name].read_bytes() == here[name].read_bytes(), name
    assert not claims.exists()  # the claims' scratch folder is gone


def test_an_error_while_drawing_comes_back_as_itself(figures, evaluation, tmp_path):
    result, images = evaluation
    figures.start_evaluation_figures(result, images[:10], tmp_path)  # 10 images for 60 labels
    with pytest.raises(ConvscopeError, match="10 test images given for 60 evaluated labels"):
        figures.wait()
    figures.start_evaluation_figures(result, None, tmp_path / "after")  # the process still serves
    assert figures.wait()["confusion_matrix"] == tmp_path / "after" / "confusion_matrix.png"
    assert (tmp_path / "after" / "confusion_matrix.png").is_file()


def test_ctrl_c_does_not_reach_the_drawing_process(figures, evaluation, tmp_path):
    os.kill(figures._process.pid, signal.SIGINT)
    result, images = evaluation
    figures.start_evaluation_figures(result, None, tmp_path)
    assert "reliability" in figures.wait()
    assert figures._process.poll() is None


def test_a_process_that_died_is_one_clear_error_and_close_leaves_nothing(evaluation, tmp_path):
    result, _ = evaluation
    process = FigureProcess()
    process._process.kill()
    process._process.wait(timeout=30)
    with pytest.raises(ConvscopeError, match="process drawing the evaluation figures ended unexpectedly .*convscope evaluate RUN"):
        process.start_evaluation_figures(result, None, tmp_path)
        process.wait()
    process.close()
    assert process._process.poll() is not None


def test_close_ends_a_process_still_drawing(evaluation, tmp_path):
    result, images = evaluation
    process = FigureProcess()
    process.start_evaluation_figures(result, images, tmp_path)
    started = time.monotonic()
    process.close()
    assert process._process.poll() is not None and time.monotonic() - started < 10


# ---------------------------------------------------------------- the quick exit


QUICK_EXIT = r'''
import logging, sys
from convscope import quick_exit
quick_exit.arm()
log = logging.getLogger("quick-exit-test")
log.addHandler(logging.FileHandler(sys.argv[1]))  # buffered to the file until logging.shutdown flushes it
log.warning("the last log line")
sys.stdout.write("x" * 200_000 + "\nend\n")  # more than a pipe holds: must all arrive
if sys.argv[2] == "raise":
    raise RuntimeError("not a finished command")
quick_exit.exit_with(int(sys.argv[2]))
'''


@pytest.mark.parametrize("code", [0, 2, 130])
def test_quick_exit_keeps_the_code_the_output_and_the_log(tmp_path, code):
    log = tmp_path / "log.txt"
    done = subprocess.run([sys.executable, "-c", QUICK_EXIT, str(log), str(code)], capture_output=True, text=True, timeout=60)
    assert done.returncode == code
    assert done.stdout.endswith("x\nend\n") and len(done.stdout) == 200_005
    assert log.read_text() == "the last log line\n"


def test_an_unfinished_command_exits_the_ordinary_way(tmp_path):
    done = subprocess.run([sys.executable, "-c", QUICK_EXIT, str(tmp_path / "log.txt"), "raise"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "RuntimeError: not a finished command" in done.stderr


@pytest.mark.slow
def test_the_command_exits_with_its_code_through_python_m(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    bad = subprocess.run([sys.executable, "-m", "convscope", "summary", "no_such_model"], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("convscope: error: ")
    listing = subprocess.run([sys.executable, "-m", "convscope", "models"], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert listing.returncode == 0 and "mnist_convnet" in listing.stdout


# ---------------------------------------------------------------- Ctrl-C on the whole command


@pytest.mark.slow
def test_ctrl_c_at_the_terminal_stops_the_run_and_its_helpers(tmp_path):
    # A terminal sends Ctrl-C to the whole process group: the command, its data thread and its figure process.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "CONVSCOPE_CACHE": str(tmp_path / "cache"), "KERAS_HOME": str(tmp_path / "keras")}
    command = [sys.executable, "-m", "convscope", "run", "--limit-train", "2000", "--epochs", "40", "--out", str(tmp_path), "--name", "run"]
    with open(tmp_path / "err.txt", "w") as stderr:
        running = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    deadline = time.monotonic() + 600
    while not (tmp_path / "run" / "checkpoint" / "epoch-0001.keras").exists():
        assert running.poll() is None and time.monotonic() < deadline, (tmp_path / "err.txt").read_text()
        time.sleep(0.05)
    os.killpg(running.pid, signal.SIGINT)
    assert running.wait(timeout=120) == 130
    lines = [line for line in (tmp_path / "err.txt").read_text().splitlines() if line.strip()]
    assert lines and all(line.startswith(("convscope: error: ", "convscope: warning: ")) for line in lines), lines
    assert "interrupted" in lines[-1]
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):  # nothing of the group is left running, not even a zombie
        os.killpg(running.pid, 0)


# ---------------------------------------------------------------- the collector and scikit-learn around the import


COLLECTOR = r'''
import gc, sys, types
from convscope.keras_import import collector_paused
if sys.argv[1] == "loaded":
    sys.modules["tensorflow"] = types.ModuleType("tensorflow")  # as if a notebook had imported it already
with collector_paused():
    inside = gc.isenabled()
    import email.mime.text  # any import
print(inside, gc.isenabled(), gc.get_freeze_count() > 0)
'''


@pytest.mark.parametrize("state, expected", [("fresh", "False True True"), ("loaded", "True True False")])
def test_the_collector_pauses_for_the_first_big_import_only(state, expected):
    done = subprocess.run([sys.executable, "-c", COLLECTOR, state], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == expected.split()


def test_no_figure_process_on_one_core(monkeypatch):
    from convscope.plots import background

    monkeypatch.setattr(background.os, "sched_getaffinity", lambda pid: {0})
    with background.start_figure_process() as figures:
        assert figures is None
    monkeypatch.setattr(background.os, "sched_getaffinity", lambda pid: {0, 1})
    with background.start_figure_process() as figures:
        assert isinstance(figures, FigureProcess) and figures._process.poll() is None
    assert figures._process.poll() is not None


HIDDEN = r'''
import sys
from convscope.keras_import import quick_keras_import
with quick_keras_import():
    import keras
print("sklearn" in sys.modules)
import sklearn.neural_network  # convscope's baselines import it afterwards, as usual
print(sklearn.__name__, "sklearn" in sys.modules)
'''


def test_keras_imports_without_scikit_learn_which_imports_afterwards():
    done = subprocess.run([sys.executable, "-c", HIDDEN], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "sklearn", "True"]


def test_a_thread_reading_scikit_learn_data_keeps_it_importable_during_the_import():
    code = (
        "import sys\nfrom convscope.keras_import import quick_keras_import\n"
        "with quick_keras_import(keep_scikit_learn=True):\n    import sklearn.datasets\nprint('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split() == ["ok"], done.stderr


def test_run_on_a_streamed_folder_draws_its_figures_here(tmp_path, monkeypatch):
    from convscope.cli import main
    from convscope.plots import background

    monkeypatch.setattr(background.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)  # a figure process starts
    root = tmp_path / "photos"
    make_folder(root / "train", per_class=8)
    make_folder(root / "test", per_class=3)
    out = tmp_path / "runs"
    flags = ["--dataset", f"folder:{root}", "--image-size", "8,8", "--color-mode", "rgb", "--model", "cnn_small", "--epochs", "1"]
    code = main(["run", *flags, "--val-split", "0", "--out", str(out), "--name", "streamed"])
    assert code == 0
    run = out / "streamed"
    assert (run / "report.html").exists() and (run / "plots" / "confusion_matrix.png").exists()
