"""Export contract: every zoo model, a baseline run and the fused batch-norm model export to ONNX and LiteRT with the
Keras model's probabilities (max abs difference <= 1e-4, same top-1 on 64 images); predicting from the .onnx file gives
the Keras path's top-k without importing TensorFlow; bad inputs are one line and exit 2, and leave nothing written."""

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from conftest import isolated_env, make_run, random_images
from convscope.cli import main
from convscope.config import Config
from convscope.data import load_dataset
from convscope.errors import ConvscopeError
from convscope.export import FORMATS, export_model, export_run
from convscope.fileio import atomic_path
from convscope.models import create_model, list_models
from convscope.models.layers import FusedBatchNormalization
from convscope.onnx_predict import METADATA_KEY, predict_onnx
from convscope.predict import predict_images
from convscope.runfolder import RunFolder

PARITY_IMAGES = 64
PARITY_TOLERANCE = 1e-4  # the bar for ONNX and LiteRT


def run_exported(path, format, inputs):
    """The exported file's outputs, computed here independently of convscope.export."""
    if format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: inputs})[0]
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], inputs.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], inputs)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def assert_parity(model, path, format, inputs):
    expected = model.predict(inputs, verbose=0)
    actual = run_exported(path, format, inputs)
    assert actual.shape == expected.shape
    difference = float(np.abs(actual - expected).max())
    agreement = float(np.mean(actual.argmax(axis=1) == expected.argmax(axis=1)))
    assert difference <= PARITY_TOLERANCE and agreement == 1.0, f"{format}: max abs difference {difference:.3g}, top-1 agreement {agreement:.1%}"
    return difference


def randomize_batch_norm(model, seed=0):
    """Moving statistics and scales far from their initial 0/1, so that inference-mode batch norm is really exercised."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            size = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0, 0.5, size).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.2, 3.0, size).astype("float32"))
            layer.gamma.assign(rng.uniform(0.5, 2.0, size).astype("float32"))
            layer.beta.assign(rng.normal(0, 0.5, size).astype("float32"))


def save_test_images(dataset, folder, count=4):
    folder.mkdir(exist_ok=True)
    pixels = dataset.display_images(dataset.x_test[:count])
    paths = []
    for index, image in enumerate(pixels):
        paths.append(folder / f"{index}.png")
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def standard_data():
    return load_dataset("mnist-sample", limit_train=300, scale="standard")


@pytest.fixture(scope="module")
def exported_run(tmp_path_factory, standard_data):
    """A small CNN's run folder (standard scaling) with its ONNX export."""
    keras.utils.set_random_seed(0)
    model = create_model("cnn_small", standard_data.input_shape, standard_data.num_classes)
    run = make_run(tmp_path_factory.mktemp("run") / "cnn", standard_data, model, scale="standard", limit_train=300)
    export_run(run.path, "onnx")
    return run


# --------------------------------------------------------------------------- parity


@pytest.mark.slow
@pytest.mark.parametrize("format", ["onnx", "litert"])
@pytest.mark.parametrize("name", [info.name for info in list_models()])
def test_every_zoo_model_exports_with_keras_probabilities(name, format, tmp_path):
    info = next(info for info in list_models() if info.name == name)
    keras.utils.set_random_seed(0)
    model = create_model(name, info.input_shape, 10)
    randomize_batch_norm(model)
    inputs = random_images(PARITY_IMAGES, info.input_shape)
    path = tmp_path / FORMATS[format].file_name
    result = export_model(model, path, format, inputs)
    difference = assert_parity(model, path, format, inputs)
    assert result.top1_agreement == 1.0 and result.max_abs_difference == pytest.approx(difference, abs=1e-7)


@pytest.mark.slow
def test_fused_batch_norm_run_exports(tmp_path):
    """mnist_fast, trained for an epoch (its FusedBatchNormalization layers hold learned moving statistics)."""
    from convscope.train import train

    config = Config()
    config.model.name = "mnist_fast"
    config.train.epochs = 1
    config.data.limit_train = 384
    config.run.out, config.run.name = str(tmp_path), "fast"
    run = train(config).run
    model = run.load_model()
    assert sum(isinstance(layer, FusedBatchNormalization) for layer in model.layers) == 2
    assert float(np.abs(model.get_layer("norm1").moving_mean.numpy()).max()) > 0.01  # trained, not the initial zeros
    inputs = run.load_dataset().x_test[:PARITY_IMAGES]
    for format in ("onnx", "litert"):
        result = export_run(run.path, format)
        assert_parity(model, result.path, format, inputs)
    recorded = run.read_exports()
    assert set(recorded) == {"onnx", "litert"} and all(entry["top1_agreement"] == 1.0 for entry in recorded.values())


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:MLPClassifier stopped at max_iter")  # 20 epochs are enough to export
def test_baseline_run_exports(tmp_path, small_data):
    """A scikit-learn MLP baseline: its run folder's model.keras is the fitted MLP copied into Flatten + Dense layers."""
    from convscope.baseline import baseline_config
    from convscope.pipeline import train_baseline

    config = Config()
    config.model.name = "sklearn-mlp-16x16"
    config.data.limit_train, config.data.val_split = 384, 0.1
    config.run.out, config.run.name = str(tmp_path), "mlp"
    run = train_baseline(baseline_config(config, max_iter=20), dataset=small_data).run
    model = run.load_model()
    inputs = small_data.x_test[:PARITY_IMAGES]
    for format in ("onnx", "litert"):
        result = export_run(run.path, format)
        assert_parity(model, result.path, format, inputs)


# --------------------------------------------------------------------------- the run folder and predict


def test_export_is_recorded_and_onnx_predicts_the_keras_top_k(exported_run, standard_data, tmp_path):
    entry = exported_run.read_exports()["onnx"]
    assert entry["path"] == "export/model.onnx" and entry["images"] == PARITY_IMAGES
    assert entry["max_abs_difference"] <= PARITY_TOLERANCE and entry["top1_agreement"] == 1.0
    assert entry["versions"]["tf2onnx"] and entry["runtime"].startswith("onnxruntime ")
    images = save_test_images(standard_data, tmp_path / "images")
    from_keras = predict_images(exported_run.path, images, top_k=3)
    from_onnx = predict_onnx(exported_run.path / entry["path"], images, top_k=3)
    for index in range(4):
        assert [k for k, _, _ in from_onnx.top(index)] == [k for k, _, _ in from_keras.top(index)]
    np.testing.assert_allclose(from_onnx.probabilities, from_keras.probabilities, atol=1e-5)


def test_report_shows_the_verified_exports(exported_run):
    from convscope.html.report import compose_report, read_run_sources, render_report

    content = compose_report(read_run_sources(exported_run), built_at="now")
    entry = exported_run.read_exports()["onnx"]
    assert content.exports.rows[0][:2] == ["onnx", "export/model.onnx"] and content.exports.rows[0][-1] == "100.0%"
    html = render_report(content)
    assert "Exported models" in html and f"{entry['max_abs_difference']:.1e}" in html


def test_onnx_file_carries_its_preprocessing_away_from_the_run(exported_run, standard_data, tmp_path):
    """Copied elsewhere, the file still prepares images with the run's standard scaling; stripped of it, flags do."""
    import onnx

    model = onnx.load(str(exported_run.export_dir / "model.onnx"))
    stored = json.loads(next(prop.value for prop in model.metadata_props if prop.key == METADATA_KEY))
    assert stored["scaling"]["kind"] == "standard" and stored["input_shape"] == [28, 28, 1]
    images = save_test_images(standard_data, tmp_path / "images")
    expected = predict_images(exported_run.path, images).probabilities
    onnx.save(model, str(tmp_path / "copied.onnx"))
    np.testing.assert_allclose(predict_onnx(tmp_path / "copied.onnx", images).probabilities, expected, atol=1e-5)

    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "bare.onnx"))
    with pytest.raises(ConvscopeError, match="holds no convscope preprocessing and sits in no run folder; pass --scale"):
        predict_onnx(tmp_path / "bare.onnx", images)
    scale = f"standard:{stored['scaling']['offset']},{stored['scaling']['scale']}"
    result = predict_onnx(tmp_path / "bare.onnx", images, scale=scale, class_names=[f"digit {k}" for k in range(10)])
    np.testing.assert_allclose(result.probabilities, expected, atol=1e-5)
    assert result.top(0)[0][1].startswith("digit ")


def test_a_fixed_batch_size_is_padded(standard_data, tmp_path):
    """A model exported with batch size 1 (as some tools write them) still predicts a folder of images."""
    model = keras.Sequential([keras.Input((28, 28, 1), batch_size=1), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    export_model(model, tmp_path / "fixed.onnx", "onnx", standard_data.x_test[:5])
    images = save_test_images(standard_data, tmp_path / "images", count=3)
    result = predict_onnx(tmp_path / "fixed.onnx", [tmp_path / "images"], scale=f"standard:{standard_data.scaling.offset},{standard_data.scaling.scale}")
    np.testing.assert_allclose(result.probabilities, model.predict(standard_data.x_test[:3], verbose=0), atol=1e-5)
    assert result.paths == images


def test_minmax_run_exports_its_per_pixel_numbers(tmp_path):
    """A minmax scaling has per-pixel numbers that data.json does not hold: the .onnx file holds them."""
    data = load_dataset("mnist-sample", limit_train=200, scale="minmax")
    model = create_model("mlp_16x16", data.input_shape, 10)
    run = make_run(tmp_path / "run", data, model, scale="minmax", limit_train=200)
    result = export_run(run.path, "onnx")
    images = save_test_images(data, tmp_path / "images")
    moved = tmp_path / "elsewhere.onnx"
    moved.write_bytes(Path(result.path).read_bytes())
    np.testing.assert_allclose(predict_onnx(moved, images).probabilities, predict_images(run.path, images).probabilities, atol=1e-5)
    with pytest.raises(ConvscopeError, match="minmax scaling is per pixel at 28x28 grayscale; leave the flags out"):
        predict_onnx(moved, images, image_size=(32, 32))  # the per-pixel numbers fit 28x28 only


@pytest.mark.slow
def test_onnx_predict_does_not_import_tensorflow(exported_run, standard_data, tmp_path):
    """`convscope predict model.onnx` in a fresh process: the Keras path's top-k, and neither TensorFlow nor Keras loaded."""
    images = save_test_images(standard_data, tmp_path / "images", count=2)
    script = (
        "import json, sys\n"
        "from convscope.cli import main\n"
        f"code = main(['predict', {str(exported_run.export_dir / 'model.onnx')!r}, {str(images[0])!r}, {str(images[1])!r}, '--json'])\n"
        "print(json.dumps({'code': code, 'tensorflow': 'tensorflow' in sys.modules, 'keras': 'keras' in sys.modules}))\n"
    )
    env = {**isolated_env(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)}
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    *printed, last = finished.stdout.strip().splitlines()
    assert json.loads(last) == {"code": 0, "tensorflow": False, "keras": False}, finished.stderr
    from_onnx = json.loads("\n".join(printed))["predictions"]
    from_keras = predict_images(exported_run.path, images).to_dict()["predictions"]
    assert [[k["index"] for k in item["top"]] for item in from_onnx] == [[k["index"] for k in item["top"]] for item in from_keras]


def test_savedmodel_replaces_an_older_one_whole(exported_run):
    first = export_run(exported_run.path, "savedmodel")
    assert (exported_run.export_dir / "savedmodel" / "saved_model.pb").is_file() and first.max_abs_difference <= PARITY_TOLERANCE
    (exported_run.export_dir / "savedmodel" / "stale.txt").write_text("from the old export")
    export_run(exported_run.path, "savedmodel")
    assert not (exported_run.export_dir / "savedmodel" / "stale.txt").exists()
    assert set(exported_run.read_exports()) >= {"onnx", "savedmodel"}


def test_atomic_folder_keeps_the_old_one_on_failure(tmp_path):
    target = tmp_path / "savedmodel"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temp:
            temp.mkdir()
            (temp / "half.txt").write_text("half")
            raise RuntimeError("converter died")
    assert [path.name for path in target.iterdir()] == ["old.txt"]
    assert [path.name for path in tmp_path.iterdir()] == ["savedmodel"]


# --------------------------------------------------------------------------- bad input


def unsupported_layer_run(folder, dataset, interpolation):
    """A run whose model resizes its input with ``interpolation``: lanczos3 becomes ScaleAndTranslate, area ResizeArea."""
    model = keras.Sequential([
        keras.Input(dataset.input_shape),
        keras.layers.Resizing(14, 14, interpolation=interpolation, name="shrink"),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    return make_run(folder, dataset, model, scale="standard", limit_train=300)


@pytest.mark.parametrize("case", ["format name", "converter cannot", "litert converter cannot", "converter wrong", "missing extra", "onnx input shape", "class names", "damaged metadata", "no onnxruntime", "flag on a run"])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, exported_run, standard_data, tmp_path, monkeypatch, capsys):
    image = tmp_path / "digit.png"
    Image.new("L", (28, 28), 40).save(image)
    onnx_path = str(exported_run.export_dir / "model.onnx")
    run = RunFolder(tmp_path / "run")
    if case == "format name":
        args, expected = ["export", str(exported_run.path), "--format", "tflite"], "--format 'tflite' (did you mean litert?); expected one of onnx, litert, savedmodel"
    elif case == "converter cannot":
        run = unsupported_layer_run(run.path, standard_data, "lanczos3")
        args = ["export", str(run.path)]
        expected = "layer 'shrink' (Resizing) becomes the TensorFlow op ScaleAndTranslate, which the ONNX converter (tf2onnx 1."
    elif case == "litert converter cannot":
        run = unsupported_layer_run(run.path, standard_data, "lanczos3")
        args = ["export", str(run.path), "--format", "litert"]
        expected = "layer 'shrink' (Resizing) becomes the TensorFlow op ScaleAndTranslate, which the LiteRT converter (TensorFlow 2."
    elif case == "converter wrong":
        run = unsupported_layer_run(run.path, standard_data, "area")
        args, expected = ["export", str(run.path)], "the ONNX export disagrees with the Keras model on 64 test images (max abs probability difference"
    elif case == "missing extra":
        monkeypatch.setitem(sys.modules, "tf2onnx", None)  # what find_spec sees when the package is not installed
        args, expected = ["export", str(exported_run.path)], 'needs tf2onnx, which is not installed; install the export extra: pip install "convscope[export]"'
    elif case == "onnx input shape":
        args, expected = ["predict", onnx_path, str(image), "--image-size", "32,32"], "the model takes inputs of shape (28, 28, 1) but the images were prepared as (32, 32, 1)"
    elif case == "class names":
        args = ["predict", onnx_path, str(image), "--class-names", "a,b,c"]
        expected = "--class-names gives 3 names, " + onnx_path + " has 10 classes; give one name per class"
    elif case == "damaged metadata":
        import onnx  # here: only this case edits a model file

        damaged = onnx.load(onnx_path)
        next(entry for entry in damaged.metadata_props if entry.key == METADATA_KEY).value = "{not json"
        onnx.save(damaged, str(tmp_path / "damaged.onnx"))
        args, expected = ["predict", str(tmp_path / "damaged.onnx"), str(image)], f"damaged.onnx: its {METADATA_KEY} metadata is not JSON"
    elif case == "no onnxruntime":
        monkeypatch.setitem(sys.modules, "onnxruntime", None)
        args, expected = ["predict", onnx_path, str(image)], 'needs onnxruntime, which is not installed; install the export extra: pip install "convscope[export]"'
    else:
        args, expected = ["predict", str(exported_run.path), str(image), "--scale", "unit"], "--scale is for an .onnx model"
    before = json.dumps(exported_run.read_exports(), sort_keys=True)
    assert main(args) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and expected in error, error
    assert json.dumps(exported_run.read_exports(), sort_keys=True) == before
    if run.path.is_dir():
        assert not run.exports_path.exists() and not run.export_dir.exists(), "a refused export left files"
