"""Streamed image folders: the same pixels, batches, weights and history as the in-memory path.

Every test builds its own tiny folder of generated PNGs (never /work/shared).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from convscope.config import Config
from convscope.data import imagecache, load_dataset
from convscope.data.source import data_source
from convscope.data.stream import StoredPixels, StreamedImages
from convscope.errors import ConvscopeError
from convscope.train import train

pytestmark = pytest.mark.usefixtures("isolated_locations")


def make_folder(root: Path, per_class: int = 12, classes=("a", "b", "c"), size=(10, 12)) -> Path:
    """RGB PNGs of different sizes (so the resize runs), each class brighter in its own channel."""
    rng = np.random.default_rng(7)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            pixels = rng.integers(0, 120, (size[0] + index % 3, size[1], 3), dtype=np.uint8)
            pixels[..., label % 3] += 100
            Image.fromarray(pixels).save(root / name / f"{index:03d}.png")
    return root


def folder_config(root: Path, out: Path, name: str, **data) -> Config:
    config = Config()
    config.data.dataset = f"folder:{root}"
    config.data.image_size, config.data.color_mode, config.data.scale = (8, 8), "rgb", "standard"
    for key, value in data.items():
        setattr(config.data, key, value)
    config.model.name = "cnn_small_dropout"  # dropout: the seeded masks must match too
    config.train.epochs, config.train.batch_size = 2, 8
    config.run.out, config.run.name = str(out), name
    return config


@pytest.mark.parametrize("scale", ["standard", "minmax", "unit"])
def test_streamed_values_equal_in_memory_values(tmp_path, scale):
    root = make_folder(tmp_path / "f")
    memory = load_dataset(f"folder:{root}", image_size=(8, 8), color_mode="rgb", scale=scale, stream="off")
    streamed = load_dataset(f"folder:{root}", image_size=(8, 8), color_mode="rgb", scale=scale, stream="on")
    assert isinstance(streamed.x_train, StreamedImages) and isinstance(memory.x_train, np.ndarray)
    for name in ("x_train", "x_val", "x_test"):
        # bit-identical float32, whichever way the streamed images are indexed
        np.testing.assert_array_equal(np.asarray(getattr(streamed, name)), getattr(memory, name))
    np.testing.assert_array_equal(streamed.x_test[[4, 1]], memory.x_test[[4, 1]])
    np.testing.assert_array_equal(streamed.x_test[3], memory.x_test[3])
    np.testing.assert_array_equal(streamed.display_images(streamed.x_test)[:, 0, 0], memory.display_images(memory.x_test)[:, 0, 0])
    same = {key: value for key, value in memory.preprocessing.items() if key not in ("stream", "cache")}
    assert {key: streamed.preprocessing[key] for key in same} == same  # the fitted numbers too
    assert (streamed.preprocessing["stream"], memory.preprocessing["stream"]) == ("on", "off")


def test_epoch_batches_follow_the_seeded_order(tmp_path):
    root = make_folder(tmp_path / "f")
    memory = load_dataset(f"folder:{root}", image_size=(8, 8), color_mode="rgb", stream="off")
    streamed = load_dataset(f"folder:{root}", image_size=(8, 8), color_mode="rgb", stream="on", cache="none")
    order = np.random.default_rng([0, 1]).permutation(len(memory.y_train))
    got = list(data_source(streamed.x_train, streamed.y_train).epoch(order, 5).as_numpy_iterator())
    want = list(data_source(memory.x_train, memory.y_train).epoch(order, 5).as_numpy_iterator())
    assert [len(y) for _, y in got] == [len(y) for _, y in want] and len(got) == -(-len(order) // 5)
    for (x, y), (x_ref, y_ref) in zip(got, want):
        np.testing.assert_array_equal(x, x_ref)
        np.testing.assert_array_equal(y, y_ref)


def test_disk_cache_is_completed_reused_and_replaced_when_a_file_changes(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "f", per_class=12)
    data = load_dataset(f"folder:{root}", image_size=(8, 8), color_mode="rgb", cache="disk")
    folder = imagecache.cache_folder()
    assert len(list(folder.glob("*.partial-*"))) == 1 and not list(folder.glob("*.u8"))
    pixels = np.asarray(data.x_train), np.asarray(data.x_val), np.asarray(data.x_test)  # every image read once
    assert not list(folder.glob("*.partial-*")) and len(list(folder.glob("*.u8"))) == 1
    first_cache = next(folder.glob("*.u8"))
    assert first_cache.stat().st_size == 36 * 8 * 8 * 3

    # A second load reads the completed file and never decodes.
    with monkeypatch.context() as patch:
        patch.setattr(imagecache, "_decode", lambda *args, **kwargs: pytest.fail("decoded although the disk cache is complete"))
        again = load_dataset(f"folder:{root}", image_size=(8, 8), color_mode="rgb", cache="disk")
        for before, after in zip(pixels, (again.x_train, again.x_val, again.x_test)):
            np.testing.assert_array_equal(np.asarray(after), before)

    # A changed file names a new cache; once it is complete, the stale one is removed.
    changed = root / "a" / "000.png"
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(changed)
    os.utime(changed, ns=(1, 1))
    renewed = load_dataset(f"folder:{root}", image_size=(8, 8), color_mode="rgb", cache="disk")
    np.asarray(renewed.x_train), np.asarray(renewed.x_val), np.asarray(renewed.x_test)
    assert [path.name for path in folder.glob("*.u8")] != [first_cache.name] and len(list(folder.glob("*.u8"))) == 1


def test_abandoned_partial_cache_of_a_dead_process_is_removed(tmp_path):
    root = make_folder(tmp_path / "f", per_class=12)
    data = load_dataset(f"folder:{root}", image_size=(8, 8), color_mode="rgb", cache="disk")  # kept: its partial file stays
    partial = next(imagecache.cache_folder().glob("*.partial-*"))
    dead = partial.with_name(partial.name.rsplit("-", 1)[0] + "-999999999.0")  # no such process
    dead.write_bytes(b"half")
    load_dataset(f"folder:{root}", image_size=(8, 8), color_mode="rgb", cache="disk")
    assert not dead.exists() and partial.exists() and data.num_classes == 3  # a running process's partial file stays


def test_cache_auto_is_memory_for_small_folders_and_disk_beyond_the_limit(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "f", per_class=12)
    assert load_dataset(f"folder:{root}", image_size=(8, 8), color_mode="rgb").preprocessing["cache"] == "memory"
    monkeypatch.setattr(imagecache, "CACHE_MEMORY_BYTES", 36 * 8 * 8 * 3 - 1)  # one byte short of the 36 images
    assert load_dataset(f"folder:{root}", image_size=(8, 8), color_mode="rgb").preprocessing["cache"] == "disk"
    with pytest.raises(ConvscopeError, match="cache='ram'; expected one of auto, memory, disk, none"):
        imagecache.choose_cache("ram", 1)


def test_scan_and_first_decode_show_progress(tmp_path, monkeypatch, caplog):
    from convscope.data import folder as folder_module

    monkeypatch.setattr(folder_module, "PROGRESS_SECONDS", -1.0)
    monkeypatch.setattr(imagecache, "PROGRESS_SECONDS", -1.0)
    root = make_folder(tmp_path / "f", per_class=12)
    with caplog.at_level(logging.INFO, logger="convscope.progress"):
        data = load_dataset(f"folder:{root}", image_size=(8, 8), color_mode="rgb", scale="standard")  # the fit reads every training image
    lines = [record.getMessage() for record in caplog.records if record.name == "convscope.progress"]
    assert any(line.startswith(f"Scanning {root}: ") for line in lines), lines
    assert any(line.startswith("Decoding 36 images: ") for line in lines), lines
    assert isinstance(data.x_train.pixels, StoredPixels)


@pytest.mark.slow
def test_training_streamed_or_in_memory_gives_identical_history_and_weights(tmp_path):
    root = make_folder(tmp_path / "f")
    runs = {}
    for name, data in {"memory": {"stream": "off"}, "stream": {"cache": "memory"}, "disk": {"cache": "disk"}, "none": {"cache": "none"}}.items():
        runs[name] = train(folder_config(root, tmp_path / "runs", name, **data))
    reference = runs.pop("memory")
    for name, result in runs.items():
        for column in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
            assert result.history[column] == reference.history[column], (name, column)
        for got, want in zip(result.model.get_weights(), reference.model.get_weights()):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(result.evaluation.probabilities, reference.evaluation.probabilities)
        recorded = yaml.safe_load((result.run.path / "config.yaml").read_text())["data"]
        assert (recorded["stream"], recorded["cache"]) == ("on", name if name != "stream" else "memory")
    assert yaml.safe_load((reference.run.path / "config.yaml").read_text())["data"]["stream"] == "off"


@pytest.mark.slow
def test_a_corrupt_file_found_mid_epoch_is_one_line_naming_it(tmp_path):
    root = make_folder(tmp_path / "f")
    broken = root / "b" / "005.png"
    broken.write_bytes(broken.read_bytes()[:120])  # the header survives the scan, the pixels do not
    config = folder_config(root, tmp_path / "runs", "broken", scale="unit")
    with pytest.raises(ConvscopeError, match=r"005.png: cannot decode this PNG image .*truncated or corrupt") as caught:
        train(config)
    assert "\n" not in str(caught.value)


def save_digits_npz(path: Path, compressed: bool = False, channel_axis: bool = False) -> Path:
    rng = np.random.default_rng(3)
    shape = (40, 9, 7, 1) if channel_axis else (40, 9, 7)
    arrays = {
        "x_train": rng.integers(0, 256, shape, dtype=np.uint8),
        "y_train": np.arange(40) % 4,
        "x_test": rng.integers(0, 256, (12, *shape[1:]), dtype=np.uint8),
        "y_test": np.arange(12) % 4,
    }
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


@pytest.mark.parametrize("channel_axis", [False, True])
def test_large_npz_is_read_in_place_with_the_same_values(tmp_path, monkeypatch, channel_axis):
    from convscope.data import npzmap

    path = save_digits_npz(tmp_path / "digits.npz", channel_axis=channel_axis)
    memory = load_dataset(f"npz:{path}", scale="standard")
    assert isinstance(memory.x_train, np.ndarray) and "stream" not in memory.preprocessing  # small: loaded whole
    monkeypatch.setattr(npzmap, "NPZ_STREAM_BYTES", 0)  # every file counts as large
    streamed = load_dataset(f"npz:{path}", scale="standard")
    assert isinstance(streamed.x_train, StreamedImages) and streamed.preprocessing["stream"] == "on"
    for name in ("x_train", "x_val", "x_test"):
        np.testing.assert_array_equal(np.asarray(getattr(streamed, name)), getattr(memory, name))
    assert streamed.preprocessing["formula"] == memory.preprocessing["formula"]


def test_compressed_npz_asked_to_stream_is_loaded_whole_with_a_warning(tmp_path):
    path = save_digits_npz(tmp_path / "digits.npz", compressed=True)
    with pytest.warns(UserWarning, match=r"digits.npz: x_train/x_test are compressed or not uint8 images, so they are loaded whole"):
        data = load_dataset(f"npz:{path}", stream="on")
    assert isinstance(data.x_train, np.ndarray) and data.preprocessing["stream"] == "off"


def test_a_full_disk_while_caching_is_one_line(tmp_path, monkeypatch):
    import errno

    root = make_folder(tmp_path / "f", per_class=12)
    data = load_dataset(f"folder:{root}", image_size=(8, 8), color_mode="rgb", cache="disk")

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(imagecache.os, "pwrite", full)
    with pytest.raises(ConvscopeError, match=r"\.partial-.*: cannot write the image cache \(No space left on device\); free disk space, pass --cache memory or none"):
        data.x_train[:2]
