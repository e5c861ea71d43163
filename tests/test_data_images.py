"""Contract tests for image decoding and image folders."""

from __future__ import annotations

import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, features

from convscope.data import images, load_dataset, load_images
from convscope.errors import ConvscopeError


def save(path, array, format="PNG", mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.asarray(array, dtype=np.uint8), mode) if mode is None or mode != "P" else Image.fromarray(array).convert("P")
    image.save(path, format=format)
    return path


def gray(value, size=(6, 5)):
    return np.full(size, value, dtype=np.uint8)


def make_classes(root, per_class=5, classes=("cat", "dog")):
    for label, name in enumerate(sorted(classes)):  # pixel value encodes the sorted class index
        for k in range(per_class):
            save(root / name / f"{k}.png", gray(40 * label + k))


def test_flat_folder_split_80_20_stratified(tmp_path):
    make_classes(tmp_path / "pets", per_class=5, classes=("dog", "cat"))
    data = load_dataset(f"folder:{tmp_path / 'pets'}", val_split=0)
    assert data.class_names == ["cat", "dog"]  # sorted folder names
    assert data.x_train.shape == (8, 6, 5, 1) and data.x_test.shape == (2, 6, 5, 1)
    assert np.bincount(data.y_test).tolist() == [1, 1]
    pixels = data.display_images(data.x_test)[:, 0, 0, 0]
    assert [int(p) // 40 for p in pixels] == data.y_test.tolist()  # every image keeps its own label
    again = load_dataset(f"folder:{tmp_path / 'pets'}", val_split=0)
    np.testing.assert_array_equal(again.x_test, data.x_test)
    assert "stratified 20%" in data.preprocessing["layout"]


def test_train_test_layout(tmp_path):
    make_classes(tmp_path / "set" / "train", per_class=4)
    make_classes(tmp_path / "set" / "test", per_class=2)
    data = load_dataset(f"folder:{tmp_path / 'set'}", val_split=0)
    assert len(data.x_train) == 8 and len(data.x_test) == 4 and data.class_names == ["cat", "dog"]
    save(tmp_path / "set" / "test" / "bird" / "0.png", gray(1))
    with pytest.raises(ConvscopeError, match="class 'bird' is not among the training classes"):
        load_dataset(f"folder:{tmp_path / 'set'}")


def test_mixed_modes_and_sizes(tmp_path):
    root = tmp_path / "mixed"
    save(root / "train" / "a" / "0.png", np.full((10, 12, 3), (255, 0, 0)))  # first image: RGB 10x12
    save(root / "test" / "a" / "1.png", np.full((20, 20, 4), (0, 255, 0, 128)))  # RGBA, other size
    save(root / "train" / "b" / "0.png", gray(200, (7, 7)))  # grayscale
    save(root / "train" / "b" / "1.gif", np.full((8, 8, 3), (0, 0, 255)), format="GIF")  # palette
    save(root / "test" / "b" / "2.bmp", gray(10, (3, 3)), format="BMP")
    data = load_dataset(f"folder:{root}", val_split=0)
    assert data.input_shape == (10, 12, 3) and data.preprocessing["color_mode"] == "rgb"
    shown = data.display_images(np.concatenate([data.x_train, data.x_test]))
    colors = {tuple(image[5, 6]) for image in shown}
    assert {(255, 0, 0), (0, 255, 0), (200, 200, 200), (0, 0, 255), (10, 10, 10)} == colors
    small = load_dataset(f"folder:{root}", image_size=(4, 4), color_mode="grayscale", val_split=0)
    assert small.input_shape == (4, 4, 1) and small.preprocessing["decided_by"] == "config"


@pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")
def test_formats_decoded_by_content_not_extension(tmp_path):
    paths = [
        save(tmp_path / "really_png.jpg", gray(50)),
        save(tmp_path / "really_jpeg.png", gray(100), format="JPEG"),
        save(tmp_path / "image.webp", gray(150), format="WEBP"),
        save(tmp_path / "noext", gray(250), format="BMP"),
    ]
    pixels = load_images(paths)
    assert pixels.shape == (4, 6, 5, 1)
    assert np.abs(pixels[:, 2, 2, 0].astype(int) - [50, 100, 150, 250]).max() <= 2  # JPEG/WebP are lossy


def test_load_images_single_path_resize_and_errors(tmp_path):
    one = save(tmp_path / "one.png", gray(9, (30, 40)))
    assert load_images(one, image_size=(3, 4), color_mode="rgb").shape == (1, 3, 4, 3)
    with pytest.raises(ConvscopeError, match="missing.png: image file not found"):
        load_images([tmp_path / "missing.png"])
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ConvscopeError, match="notes.txt: not a PNG, JPEG, BMP, GIF or WebP image"):
        load_images([tmp_path / "notes.txt"])
    with pytest.raises(ConvscopeError, match="color_mode='cmyk'"):
        load_images([one], color_mode="cmyk")


def test_non_image_skipped_with_warning(tmp_path):
    make_classes(tmp_path / "d")
    (tmp_path / "d" / "cat" / "readme.txt").write_text("not an image")
    (tmp_path / "d" / "cat" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    with pytest.warns(UserWarning, match=r"readme.txt: not a PNG, JPEG, BMP, GIF or WebP image .*skipped") as record:
        data = load_dataset(f"folder:{tmp_path / 'd'}", val_split=0)
    assert len(data.x_train) + len(data.x_test) == 10
    assert not any(".DS_Store" in str(warning.message) for warning in record)


@pytest.mark.parametrize("stream", ["off", "on"])
def test_truncated_image_is_an_error_naming_it(tmp_path, stream):
    # Decoded up front (off) the load fails; streamed (on), the first read of it does.
    make_classes(tmp_path / "d", per_class=12)  # enough for a validation and a test image of each class
    big = save(tmp_path / "d" / "dog" / "big.png", np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8))
    big.write_bytes(big.read_bytes()[:300])
    with pytest.raises(ConvscopeError, match=r"big.png: cannot decode this PNG image .*truncated or corrupt"):
        data = load_dataset(f"folder:{tmp_path / 'd'}", image_size=(6, 5), stream=stream)
        np.asarray(data.x_train), np.asarray(data.x_test)


def test_empty_class_folder_and_missing_folder(tmp_path):
    make_classes(tmp_path / "d")
    (tmp_path / "d" / "empty").mkdir()
    with pytest.raises(ConvscopeError, match=r"d/empty: class folder holds no PNG, JPEG, BMP, GIF or WebP images"):
        load_dataset(f"folder:{tmp_path / 'd'}")
    with pytest.raises(ConvscopeError, match="image folder not found"):
        load_dataset(f"folder:{tmp_path / 'nowhere'}")
    (tmp_path / "d" / "empty" / "notes.txt").write_text("only a non-image")
    with pytest.warns(UserWarning), pytest.raises(ConvscopeError, match=r"d/empty: class folder holds no"):
        load_dataset(f"folder:{tmp_path / 'd'}")
    (tmp_path / "flat").mkdir()
    save(tmp_path / "flat" / "0.png", gray(1))
    with pytest.raises(ConvscopeError, match="no class folders"):
        load_dataset(f"folder:{tmp_path / 'flat'}")


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels: a decompression bomb's signature."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = lambda kind, body: struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))  # noqa: E731
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")


def test_decompression_bomb_refused(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(100_000, 100_000))
    with pytest.raises(ConvscopeError, match="bomb.png: .*decompression bomb"):
        load_images([bomb])
    make_classes(tmp_path / "d")
    (tmp_path / "d" / "cat" / "bomb.png").write_bytes(bomb.read_bytes())
    with pytest.raises(ConvscopeError, match="bomb.png: .*decompression bomb"):
        load_dataset(f"folder:{tmp_path / 'd'}")
    # Pillow's own warning is an error too, whatever our limit
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 10**12)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ConvscopeError, match="decompression bomb"):
            load_images([save(tmp_path / "big.png", gray(1, (40, 40)))])
