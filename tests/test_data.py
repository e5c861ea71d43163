"""Contract tests for convscope.data: IDX files, the bundled sample, npz, scaling, splits, downloads."""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import struct
import urllib.error

import keras
import numpy as np
import pytest

from convscope.config import DataConfig
from convscope.data import download, idx, list_datasets, load_dataset, format_datasets_table
from convscope.data.download import RemoteFile
from convscope.data.preprocess import split_validation, stratified_split
from convscope.data.sources import CATALOG
from convscope.errors import ConvscopeError

pytestmark = pytest.mark.usefixtures("isolated_locations")

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def tiny_digits(count: int, seed: int, size: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, size, size), dtype=np.uint8), np.arange(count, dtype=np.uint8) % 10


def write_idx_set(folder, compress=True, dotted=False, train=30, test=10):
    """Write the four IDX files; return the arrays written."""
    arrays = (*tiny_digits(train, 1), *tiny_digits(test, 2))
    for name, array in zip(IDX_NAMES, arrays):
        if dotted:
            name = name.replace("-idx", ".idx")
        idx.write_idx(folder / (name + (".gz" if compress else "")), array, compress=compress)
    return arrays


def idx_bytes(type_code: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return bytes([0, 0, type_code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload


# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("dotted", [False, True])
def test_idx_roundtrip_both_name_forms(tmp_path, compress, dotted):
    x_train, y_train, x_test, y_test = write_idx_set(tmp_path, compress=compress, dotted=dotted)
    data = load_dataset("mnist", data_dir=tmp_path, allow_download=False, val_split=0)
    assert data.x_train.shape == (30, 6, 6, 1) and data.x_train.dtype == np.float32
    np.testing.assert_array_equal(data.x_train[..., 0], x_train.astype(np.float32) / 255)
    np.testing.assert_array_equal(data.y_train, y_train)
    np.testing.assert_array_equal(data.x_test[..., 0], x_test.astype(np.float32) / 255)
    assert data.y_test.dtype == np.int64 and list(data.y_test) == list(y_test)
    assert data.source == str(tmp_path)


def test_idx_gzip_detected_by_content_not_name(tmp_path):
    images, _ = tiny_digits(4, 0)
    gz = gzip.compress(idx_bytes(0x08, images.shape, images.tobytes()))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(gz)  # gzipped, but no .gz in the name
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "train-images-idx3-ubyte", "images"), images)
    (tmp_path / "plain.gz").write_bytes(idx_bytes(0x08, images.shape, images.tobytes()))  # .gz name, raw content
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "plain.gz", "images"), images)


IDX_ERRORS = {
    "empty": (b"", "images", "too short for an IDX header"),
    "labels-as-images": (idx_bytes(0x08, (3,), b"abc"), "images", "expected 0x00000803"),
    "images-as-labels": (idx_bytes(0x08, (2, 2, 2), b"12345678"), "labels", "expected 0x00000801"),
    "bad-magic": (b"\x01\x02\x08\x03" + b"\0" * 12, "images", "magic number 0x01020803"),
    "unknown-type": (idx_bytes(0x42, (1, 1, 1), b"x"), "images", "magic number 0x00004203"),
    "truncated": (idx_bytes(0x08, (2, 2, 2), b"1234567"), "images", "the file is truncated"),
    "extra-bytes": (idx_bytes(0x08, (2, 2, 2), b"123456789"), "images", "extra bytes at the end"),
    "short-header": (bytes([0, 0, 8, 3]) + b"\0\0\0\x02", "images", "header cut short"),
    "truncated-gzip": (gzip.compress(idx_bytes(0x08, (2, 2, 2), b"12345678"))[:-12], "images", "gzip stream ends early"),
    "corrupt-gzip": (b"\x1f\x8b" + b"garbage" * 4, "images", "corrupt gzip data"),
    "nan-images": (idx_bytes(0x0D, (1, 1, 2), struct.pack(">2f", 1.0, float("nan"))), "images", "NaN or Inf at index (0, 0, 1)"),
    "inf-labels": (idx_bytes(0x0E, (2,), struct.pack(">2d", 1.0, float("inf"))), "labels", "NaN or Inf at index (1,)"),
}


@pytest.mark.parametrize("content, kind, message", IDX_ERRORS.values(), ids=IDX_ERRORS.keys())
def test_idx_errors_name_the_file_and_expectation(tmp_path, content, kind, message):
    path = tmp_path / "broken-idx"
    path.write_bytes(content)
    with pytest.raises(ConvscopeError, match=re.escape(message)) as caught:
        idx.read_idx(path, kind)
    assert str(path) in str(caught.value) and "re-download" in str(caught.value)


def test_idx_float_images_in_unit_range_become_pixels(tmp_path):
    path = tmp_path / "float-images"
    path.write_bytes(idx_bytes(0x0D, (1, 1, 2), struct.pack(">2f", 0.5, 1.0)))
    assert idx.read_idx(path, "images").tolist() == [[[0.5, 1.0]]]


def test_idx_image_and_label_counts_must_match(tmp_path):
    write_idx_set(tmp_path, train=30)
    idx.write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(29, np.uint8))
    with pytest.raises(ConvscopeError, match="29 labels but train-images-idx3-ubyte.gz holds 30 images") as caught:
        load_dataset("mnist", data_dir=tmp_path, allow_download=False)
    assert str(tmp_path / "train-labels-idx1-ubyte.gz") in str(caught.value)


def test_idx_labels_out_of_range(tmp_path):
    write_idx_set(tmp_path)
    labels = np.zeros(10, np.uint8)
    labels[7] = 10
    idx.write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    with pytest.raises(ConvscopeError, match=r"t10k-labels-idx1-ubyte.gz: label 10 at index 7 is out of range; expected 0..9"):
        load_dataset("fashion-mnist", data_dir=tmp_path, allow_download=False)


# ---------------------------------------------------------------- bundled sample, digits, listing


def test_bundled_sample_is_stratified_and_offline():
    data = load_dataset("mnist-sample", val_split=0.1, seed=0)
    assert data.class_names == [str(digit) for digit in range(10)]
    assert data.x_train.shape == (5400, 28, 28, 1) and data.x_val.shape == (600, 28, 28, 1) and data.x_test.shape == (1000, 28, 28, 1)
    assert np.bincount(data.y_train).tolist() == [540] * 10
    assert np.bincount(data.y_val).tolist() == [60] * 10
    assert np.bincount(data.y_test).tolist() == [100] * 10
    assert 0.0 <= data.x_train.min() and data.x_train.max() == 1.0
    whole = load_dataset("mnist-sample", val_split=0)
    assert np.bincount(whole.y_train).tolist() == [600] * 10 and len(whole.x_val) == 0
    # the sample's order mixes digits, so first-N subsets (val_first, limit_train) hold every class
    assert len(set(whole.y_train[:100].tolist())) == 10


def test_digits_scaled_to_pixels_and_split_deterministically():
    first, second = load_dataset("digits", val_split=0), load_dataset("digits", val_split=0)
    assert first.x_train.shape == (1438, 8, 8, 1) and first.x_test.shape == (359, 8, 8, 1)
    np.testing.assert_array_equal(first.y_test, second.y_test)
    assert first.display_images(first.x_train).max() == 255  # 0..16 stretched to 0..255
    assert np.bincount(first.y_test).min() >= 35


def test_list_datasets_reports_where_data_is(tmp_path):
    write_idx_set(tmp_path / "mine")
    infos = {info.name: info for info in list_datasets(data_dir=str(tmp_path / "mine"))}
    assert set(CATALOG) | {"npz:PATH", "folder:PATH"} == set(infos)
    assert infos["mnist-sample"].available and infos["mnist-sample"].train_size == 6000
    assert infos["mnist"].available and infos["mnist"].location == str(tmp_path / "mine")
    assert infos["cifar10"].available is False and infos["cifar10"].image_shape == (32, 32, 3)
    assert infos["cifar10"].source.startswith("https://www.cs.toronto.edu/")
    table = format_datasets_table(list(infos.values()))
    assert all(name in table for name in infos) and "28x28x1" in table


def test_convscope_data_folder_is_searched(tmp_path, monkeypatch):
    write_idx_set(tmp_path / "shared" / "kmnist")
    monkeypatch.setenv("CONVSCOPE_DATA", str(tmp_path / "shared"))
    data = load_dataset("kmnist", allow_download=False, val_split=0)
    assert data.class_names[:3] == ["o", "ki", "su"] and len(data.x_train) == 30


def test_missing_data_dir_is_a_clear_error(tmp_path):
    with pytest.raises(ConvscopeError, match=r"data_dir .*nowhere: folder not found"):
        load_dataset("mnist", data_dir=tmp_path / "nowhere")


def test_unknown_dataset_and_unknown_override():
    with pytest.raises(ConvscopeError, match="'imagenet' is unknown; expected one of mnist-sample"):
        load_dataset("imagenet")
    with pytest.raises(ConvscopeError, match="unknown key 'data.scaling'"):
        load_dataset("mnist-sample", scaling="unit")
    with pytest.raises(ConvscopeError, match="data.scale='log'"):
        load_dataset(DataConfig(scale="log"))


# ---------------------------------------------------------------- npz


def save_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_npz_dataset_uint8_and_float(tmp_path):
    x_train, y_train = tiny_digits(20, 0)
    x_test, y_test = tiny_digits(10, 1)
    names = np.array([f"class {k}" for k in range(10)])
    path = save_npz(tmp_path / "d.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, class_names=names)
    data = load_dataset(f"npz:{path}", val_split=0)
    assert data.class_names[3] == "class 3" and data.input_shape == (6, 6, 1)
    np.testing.assert_array_equal(data.display_images(data.x_train)[..., 0], x_train)
    # floats already divided by 255 are recognised and give the same inputs
    floats = save_npz(tmp_path / "f.npz", x_train=x_train / 255.0, y_train=y_train, x_test=x_test / 255.0, y_test=y_test)
    again = load_dataset(f"npz:{floats}", val_split=0)
    np.testing.assert_allclose(again.x_train, data.x_train, atol=1e-6)
    assert again.class_names == [str(k) for k in range(10)]


def test_npz_object_array_refused(tmp_path):
    x, y = tiny_digits(4, 0)
    path = tmp_path / "evil.npz"
    np.savez(path, x_train=x, y_train=np.array([1, "a", None, 3], dtype=object), x_test=x, y_test=y)
    with pytest.raises(ConvscopeError, match=r"evil.npz: array 'y_train' holds Python objects"):
        load_dataset(f"npz:{path}")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"y_train": None}, "missing array\\(s\\) y_train"),
        ({"x_train": np.zeros((4, 6), np.uint8)}, "x_train: images have shape \\(4, 6\\)"),
        ({"x_train": np.full((4, 6, 6), 300, np.int32)}, "integer pixels range 300..300"),
        ({"x_train": np.full((4, 6, 6), -2.0)}, "float pixels range -2..-2"),
        ({"x_train": np.full((4, 6, 6), np.nan)}, "NaN or Inf pixel at index \\(0, 0, 0, 0\\)"),
        ({"y_train": np.array([0, 1, 2])}, "3 labels for 4 images"),
        ({"y_test": np.array([0, -1, 2, 3])}, "label -1 at index 1 is out of range"),
        ({"x_test": np.zeros((4, 5, 5), np.uint8)}, "x_test images are \\(5, 5, 1\\) but x_train images are \\(6, 6, 1\\)"),
    ],
)
def test_npz_bad_arrays(tmp_path, change, message):
    x, y = tiny_digits(4, 0)
    arrays = {"x_train": x, "y_train": y, "x_test": x, "y_test": y, **change}
    path = save_npz(tmp_path / "bad.npz", **{key: value for key, value in arrays.items() if value is not None})
    with pytest.raises(ConvscopeError, match=message):
        load_dataset(f"npz:{path}")


def test_npz_not_a_zip(tmp_path):
    path = tmp_path / "random.npz"
    path.write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(ConvscopeError, match="random.npz: not a readable .npz file"):
        load_dataset(f"npz:{path}")
    with pytest.raises(ConvscopeError, match="npz file not found"):
        load_dataset(f"npz:{tmp_path / 'missing.npz'}")


def test_keras_mnist_npz_is_used(tmp_path):
    x, y = tiny_digits(12, 0)
    (tmp_path / "keras" / "datasets").mkdir(parents=True)
    save_npz(tmp_path / "keras" / "datasets" / "mnist.npz", x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    data = load_dataset("mnist", val_split=0)
    assert len(data.x_train) == 12 and data.source.endswith("mnist.npz")


# ---------------------------------------------------------------- scaling and splits


@pytest.fixture
def train_test_npz(tmp_path):
    rng = np.random.default_rng(3)
    x_train = rng.integers(10, 200, (40, 4, 4), dtype=np.uint8)
    x_train[:, 0, 0] = 77  # a pixel constant in training
    x_test = rng.integers(0, 256, (8, 4, 4), dtype=np.uint8)
    return save_npz(tmp_path / "s.npz", x_train=x_train, y_train=np.arange(40) % 4, x_test=x_test, y_test=np.arange(8) % 4), x_train, x_test


def test_unit_and_centered_formulas(train_test_npz):
    path, x_train, x_test = train_test_npz
    unit = load_dataset(f"npz:{path}", scale="unit", val_split=0)
    np.testing.assert_array_equal(unit.x_test[..., 0], x_test.astype(np.float32) / 255)  # exactly the lessons' x / 255
    centered = load_dataset(f"npz:{path}", scale="centered", val_split=0)
    np.testing.assert_array_equal(centered.x_test[..., 0], (x_test.astype(np.float32) - 128) / 128)


def test_standard_fitted_on_training_images_only(train_test_npz):
    path, x_train, x_test = train_test_npz
    data = load_dataset(f"npz:{path}", scale="standard", val_split=0.25, seed=5)
    train_index, _, _ = split_validation(np.arange(40) % 4, 0.25, 0, 0, seed=5)
    kept = x_train[train_index].astype(np.float64)
    assert data.preprocessing["mean"] == pytest.approx(kept.mean(), rel=1e-6)
    assert data.preprocessing["std"] == pytest.approx(kept.std(), rel=1e-6)
    assert data.preprocessing["formula"] == f"({kept.mean():.4f}) / {kept.std():.4f}".replace("(", "(x - ", 1)
    np.testing.assert_allclose(data.x_test[..., 0], (x_test - kept.mean()) / kept.std(), rtol=1e-5, atol=1e-5)


def test_minmax_per_pixel_and_constant_pixels(train_test_npz):
    path, x_train, x_test = train_test_npz
    data = load_dataset(f"npz:{path}", scale="minmax", val_split=0)
    low, high = x_train.min(axis=0).astype(np.float32), x_train.max(axis=0).astype(np.float32)
    expected = (x_test - low) / np.where(high > low, high - low, 1)
    expected[:, 0, 0] = 0.0
    np.testing.assert_allclose(data.x_test[..., 0], expected, rtol=1e-6)
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0
    assert data.preprocessing["constant_pixels"] == 1 and x_test[:, 0, 0].max() != 77


@pytest.mark.parametrize("scale", ["unit", "centered", "standard", "minmax"])
def test_display_images_inverts_every_scale(train_test_npz, scale):
    path, x_train, x_test = train_test_npz
    data = load_dataset(f"npz:{path}", scale=scale, val_split=0)
    shown = data.display_images(data.x_train)
    assert shown.dtype == np.uint8 and shown.shape == (40, 4, 4, 1)
    np.testing.assert_array_equal(shown[..., 0], x_train)
    assert data.display_images(data.x_train[0]).shape == (4, 4, 1)


def test_channels_first_layout(train_test_npz):
    path, x_train, _ = train_test_npz
    keras.config.set_image_data_format("channels_first")
    try:
        data = load_dataset(f"npz:{path}", val_split=0.25)
    finally:
        keras.config.set_image_data_format("channels_last")
    assert data.x_train.shape == (30, 1, 4, 4) and data.x_val.shape == (10, 1, 4, 4) and data.input_shape == (1, 4, 4)
    assert data.display_images(data.x_train).shape == (30, 4, 4, 1)
    assert data.preprocessing["image_data_format"] == "channels_first"


def test_stratified_split_deterministic_by_seed():
    labels = np.repeat(np.arange(4), [50, 30, 15, 5])
    kept, held = stratified_split(labels, 0.2, seed=7)
    again_kept, again_held = stratified_split(labels, 0.2, seed=7)
    np.testing.assert_array_equal(held, again_held)
    assert not np.array_equal(held, stratified_split(labels, 0.2, seed=8)[1])
    assert np.bincount(labels[held]).tolist() == [10, 6, 3, 1]
    assert sorted(np.concatenate([kept, held]).tolist()) == list(range(100))


def test_val_first_limit_train_and_empty_validation(train_test_npz):
    path, x_train, _ = train_test_npz
    data = load_dataset(f"npz:{path}", val_first=5, val_split=0.5, limit_train=12)
    np.testing.assert_array_equal(data.display_images(data.x_val)[..., 0], x_train[:5])
    np.testing.assert_array_equal(data.display_images(data.x_train)[..., 0], x_train[5:17])
    assert "first 5 training images" in data.preprocessing["validation"]
    assert data.preprocessing["sizes"] == {"train": 12, "val": 5, "test": 8}
    empty = load_dataset(f"npz:{path}", val_split=0, val_first=0)
    assert empty.x_val.shape == (0, 4, 4, 1) and empty.x_val.dtype == np.float32
    assert empty.y_val.shape == (0,) and empty.y_val.dtype == np.int64
    with pytest.raises(ConvscopeError, match="val_first=40 but there are only 40"):
        load_dataset(f"npz:{path}", val_first=40)


# ---------------------------------------------------------------- downloads (urlopen replaced; never the network)


def serve(monkeypatch, files: dict[str, bytes], calls: list):
    def fake_urlopen(url, timeout=None):
        calls.append(url)
        return io.BytesIO(files[url])

    monkeypatch.setattr(download, "urlopen", fake_urlopen)


def test_download_checks_md5_and_caches(tmp_path, monkeypatch):
    write_idx_set(tmp_path / "published")
    remotes, files = {}, {}
    for name in IDX_NAMES:
        content = (tmp_path / "published" / f"{name}.gz").read_bytes()
        url = f"https://mirror.test/{name}.gz"
        remotes[f"{name}.gz"] = RemoteFile(url, hashlib.md5(content).hexdigest())
        files[url] = content
    entry = CATALOG["fashion-mnist"]
    monkeypatch.setitem(CATALOG, "fashion-mnist", type(entry)(**{**entry.__dict__, "remotes": remotes}))
    calls = []
    serve(monkeypatch, files, calls)
    data = load_dataset("fashion-mnist", val_split=0)
    assert len(calls) == 4 and data.class_names[0] == "T-shirt/top" and len(data.x_train) == 30
    assert sorted(path.name for path in (tmp_path / "cache" / "fashion-mnist").iterdir()) == sorted(f"{n}.gz" for n in IDX_NAMES)
    load_dataset("fashion-mnist", val_split=0)  # 30 images: too few for a validation image of every class
    assert len(calls) == 4  # second load comes from the cache


def test_download_md5_mismatch_leaves_nothing(tmp_path, monkeypatch):
    calls = []
    serve(monkeypatch, {remote.url: b"not the real file" for remote in CATALOG["mnist"].remotes.values()}, calls)
    with pytest.raises(ConvscopeError, match="downloaded file has MD5 .*, expected f68b3c2dcbeaaa9fbdd348bbdeb94873"):
        load_dataset("mnist")
    assert calls and not any((tmp_path / "cache" / "mnist").iterdir())


def test_download_accepts_recompressed_file_with_official_content(tmp_path, monkeypatch):
    content = b"IDX content"
    recompressed = gzip.compress(content, mtime=123)
    remote = RemoteFile("https://mirror.test/a.gz", md5="0" * 32, content_md5=hashlib.md5(content).hexdigest())
    serve(monkeypatch, {remote.url: recompressed}, [])
    assert download.download_file(remote, tmp_path / "a.gz").read_bytes() == recompressed


def test_offline_error_lists_searched_folders_and_files(tmp_path, monkeypatch):
    def offline(url, timeout=None):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(download, "urlopen", offline)
    monkeypatch.setenv("CONVSCOPE_DATA", str(tmp_path / "shared"))
    (tmp_path / "mine").mkdir()
    with pytest.raises(ConvscopeError) as caught:
        load_dataset("mnist", data_dir=tmp_path / "mine")
    message = str(caught.value)
    for expected in (tmp_path / "mine", tmp_path / "shared" / "mnist", tmp_path / "cache" / "mnist", tmp_path / "keras" / "datasets" / "mnist.npz"):
        assert str(expected) in message
    assert "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message and "name resolution" in message
    assert "\n" not in message


def test_allow_download_false_never_downloads(tmp_path):
    with pytest.raises(ConvscopeError, match="downloading is off .*cifar-10-python.tar.gz"):
        load_dataset("cifar10", allow_download=False)  # isolated_locations fails the test on any urlopen call
