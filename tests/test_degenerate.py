"""Degenerate datasets are refused before anything trains: one line, exit 2, no run folder left behind.

Each case of data/checks.py (and the older split checks it sits beside) is run
through the command line on tiny generated data, for train and for the other
commands that fit something (baseline, lr-find, sweep).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from convscope.cli import main
from convscope.data import load_dataset
from convscope.errors import ConvscopeError


def write_npz(path, y_train, y_test, class_names=None):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (len(y_train), 6, 6), dtype=np.uint8),
        "y_train": np.asarray(y_train),
        "x_test": rng.integers(0, 256, (len(y_test), 6, 6), dtype=np.uint8),
        "y_test": np.asarray(y_test),
    }
    if class_names is not None:
        arrays["class_names"] = np.array(class_names)
    np.savez(path, **arrays)
    return f"npz:{path}"


def write_folder(root, counts: dict[str, int]):
    """``counts`` maps "class" or "train/class", "test/class" to a number of 6x6 PNGs."""
    rng = np.random.default_rng(1)
    for folder, count in counts.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            Image.fromarray(rng.integers(0, 256, (6, 6), dtype=np.uint8)).save(root / folder / f"{index}.png")
    return f"folder:{root}"


def refused(tmp_path, capsys, arguments: list[str], message: str, command: str = "train") -> str:
    """Run the command; expect exit 2, one line on stderr holding ``message``, and nothing written."""
    out = tmp_path / "runs"
    code = main([command, *arguments, "--out", str(out)])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2, error
    assert error[-1].startswith("convscope: error: ") and message in error[-1], error[-1]
    assert not out.exists(), sorted(out.rglob("*"))
    return error[-1]


# Each case: (name, data, extra flags, message); data is built in tmp_path by the test.
CASES = {
    "one class folder": (
        lambda tmp: write_folder(tmp / "d", {"cat": 6}), [],
        "1 class ('cat', 6 images); expected at least 2 classes for a classifier to tell apart; add images of a second class folder beside",
    ),
    "one label in an npz": (
        lambda tmp: write_npz(tmp / "d.npz", [0] * 8, [0] * 4), [],
        "1 class ('0', 12 images); expected at least 2 classes",
    ),
    "a listed class without images": (
        lambda tmp: write_npz(tmp / "d.npz", [0, 1] * 10, [0, 1] * 5, ["a", "b", "c"]), [],
        "class 'c' (label 2) has no images in training or test, though 3 classes are listed",
    ),
    "validation split rounds to nothing": (
        lambda tmp: write_npz(tmp / "d.npz", [0, 1, 0, 1], [0, 1]), ["--val-split", "0.1"],
        "val_split 0.1 of 4 training images holds out no validation images (stratified: 0.1 of each class, rounded); expected at least 1; raise --val-split to 0.25 or more",
    ),
    "limit-train cuts a class": (
        lambda tmp: write_npz(tmp / "d.npz", [0] * 10 + [1] * 10, [0, 1] * 3), ["--val-split", "0", "--limit-train", "5"],
        "class '1' has no training images ('1': 3 images, train 0, validation 0, test 3); expected every class in every split; --limit-train 5 keeps only the first 5 training images: raise it or drop it",
    ),
    "val-first takes a whole class": (
        lambda tmp: write_npz(tmp / "d.npz", [1] * 5 + [0] * 15, [0, 1] * 3), ["--val-first", "5"],
        "class '1' has no training images ('1': 8 images, train 0, validation 5, test 3); expected every class in every split; --val-first 5 takes every '1' image for validation: lower it",
    ),
    "a class only in the test set": (
        lambda tmp: write_npz(tmp / "d.npz", [0, 1] * 10, [0, 1, 2] * 2, ["a", "b", "c"]), ["--val-split", "0"],
        "class 'c' has no training images ('c': 2 images, train 0, validation 0, test 2); expected every class in every split; add training images of 'c' (labelled 2 in x_train, y_train)",
    ),
    "a class missing from the npz test set": (
        lambda tmp: write_npz(tmp / "d.npz", [0, 1] * 10, [0, 0]), ["--val-split", "0"],
        "class '1' has no test images ('1': 10 images, train 10, validation 0, test 0); expected every class in every split; add test images of '1' (labelled 1 in x_test, y_test)",
    ),
    "a class too small for a stratified validation image": (
        lambda tmp: write_npz(tmp / "d.npz", [0] * 30 + [1] * 3, [0, 1]), ["--val-split", "0.1"],
        "class '1' has no validation images ('1': 4 images, train 3, validation 0, test 1); expected every class in every split; stratified 0.1 of a class holds one out from about 10 images: give '1' at least 10 training images",
    ),
    "Keras' last-images validation misses a class": (
        lambda tmp: write_npz(tmp / "d.npz", [1] * 2 + [0] * 18, [0, 1]), ["--val-split", "0.1", "--validation", "last"],
        "class '1' has no validation images ('1': 3 images, train 2, validation 0, test 1); expected every class in every split; use --validation stratified",
    ),
    "val-first holds no image of a class": (
        lambda tmp: write_npz(tmp / "d.npz", [0] * 2 + [0, 1] * 9, [0, 1]), ["--val-first", "2"],
        "class '1' has no validation images ('1': 10 images, train 9, validation 0, test 1); expected every class in every split; the first 2 training images hold no '1': raise --val-first",
    ),
    "the validation set is the test set, which misses a class": (
        lambda tmp: write_npz(tmp / "d.npz", [0, 1] * 10, [0, 0]), ["--validation", "test"],
        "class '1' has no test images ('1': 10 images, train 10, validation 0, test 0)",
    ),
    "a folder class too small for the 20% test split": (
        lambda tmp: write_folder(tmp / "d", {"a": 10, "b": 2}), ["--val-split", "0"],
        "class 'b' has no test images ('b': 2 images, train 2, validation 0, test 0); expected every class in every split; a stratified 20% of each class is held out for testing: give 'b' at least 5 images, or put your own test images in",
    ),
    "a test folder without a class": (
        lambda tmp: write_folder(tmp / "d", {"train/a": 4, "train/b": 4, "test/a": 2}), ["--val-split", "0"],
        "class 'b' has no test images ('b': 4 images, train 4, validation 0, test 0); expected every class in every split; add test images of 'b' (in",
    ),
    "test-split too small to hold every class": (
        lambda tmp: "mnist-sample", ["--test-split", "0.0002"],
        "have no test images",
    ),
    # The split checks that already existed, listed here so the table is complete:
    "an empty folder": (
        lambda tmp: (tmp / "d").mkdir() or f"folder:{tmp / 'd'}", [],
        "no class folders; expected",
    ),
    "a class folder without images": (
        lambda tmp: write_folder(tmp / "d", {"a": 5, "b": 5}) and (tmp / "d" / "c").mkdir() or f"folder:{tmp / 'd'}", [],
        "class folder holds no",
    ),
    "too few images for any test image": (
        lambda tmp: write_folder(tmp / "d", {"a": 1, "b": 1}), [],
        "2 images are too few to hold out a test set; add images or a test/ folder",
    ),
    "val-first takes every training image": (
        lambda tmp: write_npz(tmp / "d.npz", [0, 1] * 3, [0, 1]), ["--val-first", "6"],
        "val_first=6 but there are only 6 training images",
    ),
    "val-split leaves no training image": (
        lambda tmp: write_npz(tmp / "d.npz", [0, 1] * 2, [0, 1]), ["--val-split", "0.9"],
        "val_split=0.9 leaves no training images out of 4",
    ),
    "no test images in an npz": (
        lambda tmp: write_npz(tmp / "d.npz", [0, 1] * 3, []), [],
        "x_test: no images",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_degenerate_dataset_refused_by_train(case, tmp_path, capsys, isolated_locations):
    build, flags, message = CASES[case]
    refused(tmp_path, capsys, ["--dataset", build(tmp_path), *flags, "--epochs", "1"], message)


@pytest.mark.parametrize("command, flags", [
    ("baseline", ["--kind", "logistic"]),
    ("lr-find", []),
    ("sweep", ["--models", "mlp_16x16,sklearn-logistic"]),
    ("run", []),
])
def test_every_command_that_fits_refuses_before_writing(command, flags, tmp_path, capsys):
    dataset = write_folder(tmp_path / "d", {"cat": 6})
    refused(tmp_path, capsys, ["--dataset", dataset, *flags], "1 class ('cat', 6 images)", command=command)


def test_a_callers_own_dataset_is_checked(tmp_path):
    from convscope.config import Config
    from convscope.train import train

    data = load_dataset("mnist-sample", limit_train=300)
    data.y_train = np.where(data.y_train == 9, 8, data.y_train)  # no 9 left to train on
    config = Config()
    config.run.out, config.run.name = str(tmp_path), "own"
    with pytest.raises(ConvscopeError, match=r"mnist-sample: class '9' has no training images \('9': \d+ images, train 0, validation \d+, test \d+\)"):
        train(config, dataset=data)
    assert not (tmp_path / "own").exists()


def test_healthy_small_datasets_still_load(tmp_path):
    """Just enough images: every class in every split, nothing refused."""
    data = load_dataset(write_folder(tmp_path / "d", {"a": 13, "b": 13}))  # 20% test, then 10% validation, of each class
    for labels in (data.y_train, data.y_val, data.y_test):
        assert sorted(set(labels.tolist())) == [0, 1]
    assert len(load_dataset(write_npz(tmp_path / "d.npz", [0, 1] * 10, [0, 1]), val_split=0).y_train) == 20
