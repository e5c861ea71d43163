"""Inspecting any image file: figures with and without a run, --kernel, the worked examples on your own matrices, one-line errors."""

import numpy as np
import pytest
from PIL import Image
from scipy import signal

from convscope.cli import main
from convscope.data import load_dataset
from convscope.errors import ConvscopeError
from convscope.inspect_image import inspect_image_files
from convscope.inspection.teaching import (
    check_matrix,
    compute_classic_kernels,
    compute_pixel_grid,
    compute_worked_convolution,
    compute_worked_pooling,
    downsample,
    parse_kernel,
)
from convscope.models import create_model
from convscope.predict import predict_images
from conftest import make_run
from test_data_images import png_declaring

SOBEL_TEXT = "1,0,-1;2,0,-2;1,0,-1"


def colour_photo(path, height: int = 150, width: int = 220):
    """A smooth RGB picture with a bright square: red grows to the right, green downwards, blue constant."""
    rows, columns = np.mgrid[0:height, 0:width]
    pixels = np.stack([255 * columns / width, 255 * rows / height, np.full((height, width), 60.0)], axis=-1)
    pixels[40:90, 60:120] = 250
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


def gray_digit(path, height: int = 20, width: int = 24):
    pixels = np.zeros((height, width), np.uint8)
    pixels[4:16, 10:13] = 255  # a "1"
    Image.fromarray(pixels).save(path)
    return path


# ---------------------------------------------------------------- --kernel


def test_parse_kernel_reads_rows_values_and_a_name():
    name, kernel = parse_kernel(SOBEL_TEXT)
    assert name is None and kernel.dtype == np.float32
    np.testing.assert_array_equal(kernel, [[1, 0, -1], [2, 0, -2], [1, 0, -1]])
    name, kernel = parse_kernel(" edge = 0, 1 ,0 ; 1,-4,1;0,1,0 ")
    assert name == "edge" and kernel[1, 1] == -4
    assert parse_kernel("0.5,-2e-1")[1].shape == (1, 2)  # a 1x2 kernel is a kernel too


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "no values"),
        ("1,2;3", "rows of different lengths (2, 1 values)"),
        ("1,a;2,3", "'a' in row 1 is not a number"),
        ("1,2;", "row 2 is empty"),
        ("1,,2", "row 1 has an empty value"),
        ("nan,1", "NaN or infinity"),
        (";".join([",".join(["1"] * 16)] * 16), "16x16 is too large"),
    ],
)
def test_bad_kernel_names_the_value_and_the_form(text, problem):
    with pytest.raises(ConvscopeError, match="--kernel") as caught:
        parse_kernel(text)
    message = str(caught.value)
    assert problem in message and "rows separated by ';'" in message and "\n" not in message
    assert len(message) < 260  # a 16x16 kernel is shortened, not printed whole


@pytest.mark.parametrize(
    "values, problem",
    [([[1, 2], [3]], "rows of different lengths (2, 1 values)"), ([["a", "b"]], "not all numbers"), ([], "has shape (0,)"),
     (np.zeros((2, 2, 2)), "has shape (2, 2, 2)"), ([[1, float("inf")]], "NaN or infinity"), (np.ones((6, 6)), "too large")],
)
def test_check_matrix_refuses_what_is_not_a_small_matrix(values, problem):
    with pytest.raises(ConvscopeError, match="expected a non-empty rectangular matrix") as caught:
        check_matrix(values, "kernel", 5)
    assert problem in str(caught.value)


def test_user_kernels_are_convolved_like_the_classic_ones():
    image = np.random.default_rng(0).integers(0, 256, (12, 9, 3), dtype=np.uint8)
    mine = {"edge": [[0, 1, 0], [1, -4, 1], [0, 1, 0]], "tall": [[1], [2], [-1], [0.5]]}
    kernels = compute_classic_kernels(image, num_random_kernels=0, user_kernels=mine)
    assert [item.name for item in kernels.user] == ["edge", "tall"]
    gray = image.astype(np.float64) / 255 @ [0.299, 0.587, 0.114]
    for item in kernels.user:
        expected = signal.convolve2d(gray, np.asarray(mine[item.name], float), boundary="symm", mode="same")
        np.testing.assert_allclose(item.response, expected, rtol=1e-4, atol=1e-5)
    assert [item.name for item in compute_classic_kernels(image, 0, user_kernels=[[[1, 2]]]).user] == ["kernel 1"]
    with pytest.raises(ConvscopeError, match="kernel 'bad'"):
        compute_classic_kernels(image, 0, user_kernels={"bad": [[1, 2], [3]]})


def test_large_images_are_averaged_down_and_the_grid_is_a_located_crop():
    image = np.random.default_rng(1).integers(0, 256, (427, 640, 3), dtype=np.uint8)
    small, block = downsample(image, 160)
    assert block == (4, 4) and small.shape == (106, 160, 3) and small.dtype == np.uint8
    np.testing.assert_array_equal(small[2, 3], np.round(image[8:12, 12:16].reshape(-1, 3).mean(axis=0)).astype(np.uint8))
    assert downsample(image[:100, :100], 160)[1] == (1, 1)
    thin, block = downsample(image[:3, :, 0], 160)  # 3x640: the 3 rows are averaged whole
    assert block == (3, 4) and thin.shape == (1, 160)
    kernels = compute_classic_kernels(image, 0, max_side=160)
    assert kernels.grayscale.shape == (106, 160) and "mean of 4x4: 106x160 of 427x640" in kernels.scale_note
    grid = compute_pixel_grid(image)
    assert grid.values.shape == (32, 32) and "centre 32x32 of 427x640" in grid.description


# ---------------------------------------------------------------- worked examples on your own matrices


def keras_same_padded(image, kernel_shape, stride):
    """Zeros as Keras' 'same' adds them: ceil(n / s) outputs, the odd zero at the bottom/right."""
    pads = []
    for n, k in zip(image.shape, kernel_shape):
        total = max((-(-n // stride) - 1) * stride + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(image, pads)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_worked_convolution_of_your_matrices_equals_correlate2d(stride, padding):
    # The lessons' 5x5 binary image and its [[1,0,1],[0,1,0],[1,0,1]] kernel, and a rectangular float case.
    cases = [
        ([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]], [[1, 0, 1], [0, 1, 0], [1, 0, 1]]),
        (np.arange(12).reshape(3, 4) / 4, [[0.5, -1], [2, 0.25]]),
    ]
    for image, kernel in cases:
        worked = compute_worked_convolution(stride=stride, padding=padding, image=image, kernel=kernel)
        image, kernel = np.asarray(image, float), np.asarray(kernel, float)
        padded = keras_same_padded(image, kernel.shape, stride) if padding == "same" else image
        expected = signal.correlate2d(padded, kernel, mode="valid")[::stride, ::stride]
        np.testing.assert_allclose(worked.output, expected)
        np.testing.assert_array_equal(worked.input, image)
        for row, column in np.ndindex(worked.output.shape):
            left, value = worked.sums[row][column].split(" = ")
            assert len(left.split(" + ")) == kernel.size
            assert eval(left) == pytest.approx(float(value), abs=1e-3) == pytest.approx(worked.output[row, column], abs=1e-3)


def test_worked_examples_keep_whole_numbers_whole():
    worked = compute_worked_convolution(image=[[1, 2, 3], [4, 5, 6], [7, 8, 9]], kernel=[[1, 0], [0, -1]])
    assert worked.output.dtype == np.int64 and worked.sums[0][0] == "1*1 + 2*0 + 4*0 + 5*(-1) = -4"


def test_worked_pooling_of_your_matrix_equals_a_hand_computation():
    image = np.random.default_rng(2).integers(-5, 20, (7, 9))
    pooling = compute_worked_pooling(image=image, pool_size=3)
    expected = np.array([[image[3 * r : 3 * r + 3, 3 * c : 3 * c + 3].max() for c in range(3)] for r in range(2)])
    np.testing.assert_array_equal(pooling.output, expected)  # the 7th row is dropped, as Keras drops it
    window = image[3:6, 6:9]
    assert pooling.windows[1][2] == f"max({', '.join(str(v) for v in window.ravel())}) = {window.max()}"
    assert compute_worked_pooling(image=[[1, 5, 0], [2, 3, 4]]).windows == [["max(1, 5, 2, 3) = 5"]]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: compute_worked_convolution(image=[[1, 2], [3, 4]], kernel=[[1, 0, 1]] * 3), "kernel 3x3 is larger than the 2x2 input"),
        (lambda: compute_worked_convolution(image=[[1, 2], [3]]), "image [[1, 2], [3]]: rows of different lengths"),
        (lambda: compute_worked_convolution(kernel=np.ones((6, 6))), ": 6x6 is too large; expected a non-empty rectangular matrix of numbers at most 5x5"),
        (lambda: compute_worked_convolution(stride=0), "stride 0"),
        (lambda: compute_worked_convolution(padding="full"), "padding 'full'"),
        (lambda: compute_worked_pooling(image=[[1]], pool_size=2), "image 1x1 is smaller than one 2x2 window"),
        (lambda: compute_worked_pooling(image=[["x"]]), "not all numbers"),
    ],
)
def test_worked_examples_refuse_bad_matrices_clearly(call, message):
    with pytest.raises(ConvscopeError) as caught:
        call()
    assert message in str(caught.value) and "expected" in str(caught.value)


# ---------------------------------------------------------------- figures without a run


def test_colour_and_grayscale_files_without_a_run(tmp_path):
    photo = colour_photo(tmp_path / "photo.jpg", 300, 500)
    digit = gray_digit(tmp_path / "one.png")
    (tmp_path / "other").mkdir()
    same_stem = gray_digit(tmp_path / "other" / "one.png", 28, 28)
    result = inspect_image_files([photo, digit, same_stem], out_dir=tmp_path / "out", kernels=[("edge", [[0, 1, 0], [1, -4, 1], [0, 1, 0]])])
    assert result.run is None and result.out_dir == tmp_path / "out"
    assert [image.name for image in result.images] == ["photo", "one", "one-2"]
    assert [image.shape for image in result.images] == [(300, 500, 3), (20, 24, 1), (28, 28, 1)]
    for image in result.images:
        assert set(image.figures) == {"channels", "pixel_grid", "kernels"} and image.top is None
        for key, path in image.figures.items():
            assert path == tmp_path / "out" / f"{image.name}_{key}.png"
            with Image.open(path) as png:
                assert png.format == "PNG" and png.width > 300 and png.height > 200
    with Image.open(result.images[0].figures["channels"]) as png:
        colour_width = png.width
    with Image.open(result.images[1].figures["channels"]) as png:
        assert png.width < colour_width / 2  # one gray channel, not R, G, B


@pytest.mark.parametrize("shape", [(1, 1), (3, 900), (900, 3), (40, 30, 4)], ids=["1x1", "strip", "column", "rgba"])
def test_odd_shapes_still_draw(shape, tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "odd.png")
    image = inspect_image_files([tmp_path / "odd.png"], out_dir=tmp_path / "out", kernels=[np.ones((15, 15))]).images[0]
    assert image.shape == shape[:2] + ((3,) if len(shape) == 3 else (1,))  # RGBA becomes RGB
    assert all(path.stat().st_size > 2000 for path in image.figures.values())


def test_default_folder_is_named_after_the_image(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    gray_digit(tmp_path / "my digit.png")
    # A kernel starting with a minus is a value, not a flag: the lessons' Sobel x is [[-1, 0, 1], ...].
    assert main(["inspect", "--image", "my digit.png", "--kernel", f"sobel={SOBEL_TEXT}", "--kernel", "-1,0,1;-2,0,2;-1,0,1"]) == 0
    printed = capsys.readouterr().out
    assert sorted(path.name for path in (tmp_path / "inspect-my-digit").iterdir()) == [
        "my-digit_channels.png", "my-digit_kernels.png", "my-digit_pixel_grid.png",
    ]
    assert "my digit.png (20x24 grayscale)" in printed and "inspect-my-digit/my-digit_kernels.png" in printed


# ---------------------------------------------------------------- with a run


@pytest.fixture(scope="module")
def digit_run(tmp_path_factory):
    """A run folder as train leaves it (config, data.json, model.keras), with test-set figures already in plots/."""
    data = load_dataset("mnist-sample", limit_train=200, scale="standard")
    run = make_run(tmp_path_factory.mktemp("run"), data, create_model("mnist_convnet", data.input_shape, data.num_classes), scale="standard")
    run.plots_dir.mkdir()
    for name in ("grad_cam.png", "activations_img0.png", "classic_kernels.png"):
        (run.plots_dir / name).write_bytes(b"test-set figure")
    return run


def test_with_a_run_the_model_sees_what_predict_feeds_it(digit_run, tmp_path):
    photo = colour_photo(tmp_path / "photo.png")
    digit = gray_digit(tmp_path / "digit.png")
    result = inspect_image_files([photo, digit], run_dir=digit_run.path, layers=["conv1", "pool1"])
    assert result.run == digit_run.path and result.out_dir == digit_run.plots_dir / "images"
    expected = predict_images(digit_run.path, [photo, digit], top_k=3)
    for index, image in enumerate(result.images):
        assert set(image.figures) == {"channels", "pixel_grid", "kernels", "activations", "prediction"}
        assert all(path.parent == digit_run.plots_dir / "images" and path.stat().st_size > 5000 for path in image.figures.values())
        assert [(k, name) for k, name, _ in image.top] == [(k, name) for k, name, _ in expected.top(index)]
        np.testing.assert_allclose([p for *_, p in image.top], [p for *_, p in expected.top(index)], rtol=1e-4)
    for name in ("grad_cam.png", "activations_img0.png", "classic_kernels.png"):
        assert (digit_run.plots_dir / name).read_bytes() == b"test-set figure"  # the test-set figures are not touched


def test_a_colour_run_takes_a_grayscale_file_as_predict_does(tmp_path):
    """An RGB model (16x16x3, 3 classes): a gray PNG becomes three equal channels, as `convscope predict` makes it."""
    import keras  # here, not at the top: the other tests need no model built in the test

    rng = np.random.default_rng(0)
    arrays = {name: rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8) for name in ("x_train", "x_test")}
    np.savez(tmp_path / "rgb.npz", y_train=np.arange(12) % 3, y_test=np.arange(12) % 3, **arrays)
    data = load_dataset(f"npz:{tmp_path / 'rgb.npz'}", val_split=0)
    model = keras.Sequential([
        keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax"),
    ])
    run = make_run(tmp_path / "run", data, model)
    digit = gray_digit(tmp_path / "digit.png")
    result = inspect_image_files([digit], run_dir=run.path, out_dir=tmp_path / "out")
    image = result.images[0]
    assert image.shape == (20, 24, 1) and set(image.figures) >= {"activations", "prediction"}
    expected = predict_images(run.path, [digit], top_k=3).top(0)
    assert [k for k, *_ in image.top] == [k for k, *_ in expected]
    np.testing.assert_allclose([p for *_, p in image.top], [p for *_, p in expected], rtol=1e-4)


def test_cli_with_a_run_prints_the_prediction_and_where(digit_run, tmp_path, capsys):
    digit = gray_digit(tmp_path / "seven.png")
    assert main(["inspect", str(digit_run.path), "--image", str(digit), "--out", str(tmp_path / "figures")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"{digit} (20x24 grayscale): predicted ") and "; next " in printed[0]
    assert str(tmp_path / "figures" / "seven_prediction.png") in printed[1]


# ---------------------------------------------------------------- one-line errors, exit 2


@pytest.mark.parametrize(
    "case", ["missing", "not an image", "bomb", "folder", "bad kernel", "kernel without image", "nothing", "images and image", "out is a file"]
)
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, capsys):
    image = gray_digit(tmp_path / "digit.png")
    arguments = ["inspect", "--image", str(image), "--out", str(tmp_path / "out")]
    if case == "missing":
        arguments[2], expected = str(tmp_path / "nope.png"), f"{tmp_path / 'nope.png'}: image file not found"
    elif case == "not an image":
        (tmp_path / "fake.png").write_text("this is text, not a PNG")
        arguments[2], expected = str(tmp_path / "fake.png"), f"{tmp_path / 'fake.png'}: not a PNG, JPEG"
    elif case == "bomb":
        (tmp_path / "bomb.png").write_bytes(png_declaring(100_000, 100_000))
        arguments[2], expected = str(tmp_path / "bomb.png"), "decompression bomb"
    elif case == "folder":
        arguments[2], expected = str(tmp_path), "a run folder goes before --image"
    elif case == "bad kernel":
        arguments += ["--kernel", "1,2;3"]
        expected = "--kernel '1,2;3': rows of different lengths (2, 1 values); expected rows of equal length"
    elif case == "kernel without image":
        arguments, expected = ["inspect", str(tmp_path), "--kernel", SOBEL_TEXT], "--kernel applies to --image FILE"
    elif case == "nothing":
        arguments, expected = ["inspect"], "nothing to inspect; pass a RUN folder, --image FILE"
    elif case == "images and image":
        arguments += ["--images", "0,1"]
        expected = "--images 0,1 picks test images and --image inspects files"
    else:
        (tmp_path / "out").write_text("a file")
        expected = "exists and is not a folder"
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and expected in error, error
    assert case == "out is a file" or not (tmp_path / "out").exists()  # nothing drawn before the error
