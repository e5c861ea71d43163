"""The live viewer's contract: its JSON API gives the inspection package's numbers, refuses bad requests with one line, and guards its door.

Requests go through Starlette's test client (no socket) except where the real
uvicorn server is the point (binding beyond loopback). The browser test is
test_view_browser.py.
"""

from __future__ import annotations

import base64
import io
import shutil
import sys
import types
from pathlib import Path

import httpx
import keras
import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from convscope.config import Config, save_config
from convscope.data import Dataset
from convscope.data.preprocess import fit_scaling
from convscope.evaluate import evaluate
from convscope.inspection import compute_activations
from convscope.inspection.geometry import receptive_fields
from convscope.inspection.graph import layer_graph
from convscope.models import create_model
from convscope.predict import predict_images
from convscope.runfolder import RunFolder
from convscope.viewer import ViewSession, start
from convscope.viewer.app import MAX_BODY_BYTES, create_app
from convscope.viewer.encoding import to_uint8
from convscope.viewer.server import choose_token
from conftest import never_called_sequential

LOCAL = "http://127.0.0.1:8000"


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.ndim == 3 and pixels.shape[-1] == 1 else pixels).save(buffer, "PNG")
    return buffer.getvalue()


def decode(data_url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


def small_cnn(num_classes: int = 10):
    layers = keras.layers
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(6, 3, activation="relu", name="conv1"),
        layers.MaxPooling2D(name="pool1"),
        layers.Conv2D(8, 3, activation="relu", name="conv2"),
        layers.Flatten(name="flatten"),
        layers.Dense(num_classes, activation="softmax", name="predictions"),
    ], name="small_cnn")


def write_run(folder, dataset, model) -> RunFolder:
    """A run folder as train + evaluate leave it: config, data.json, model.keras, predictions.npz, metrics.json."""
    run = RunFolder(folder)
    config = Config()
    config.data.dataset = dataset.name
    save_config(config, run.config_path)
    run.write_data_description(dataset)
    run.save_model(model)
    run.save_evaluation(evaluate(model, dataset.x_test, dataset.y_test, class_names=dataset.class_names))
    return run


def trained_run(folder: Path, data, epochs: int, batch_size: int) -> RunFolder:
    """A run folder of small_cnn trained on ``data``'s training images, evaluated on its test images."""
    keras.utils.set_random_seed(0)
    model = small_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=batch_size, verbose=0)
    return write_run(folder, data, model)


@pytest.fixture(scope="module")
def view_run(tmp_path_factory, small_data):
    """A small CNN trained one epoch on 384 sample digits, evaluated on the 1,000 test digits."""
    return trained_run(tmp_path_factory.mktemp("view") / "run", small_data, epochs=1, batch_size=64)


@pytest.fixture(scope="module")
def session(view_run):
    return ViewSession.from_run(view_run.path)


@pytest.fixture(scope="module")
def client(session):
    return TestClient(create_app(session), base_url=LOCAL)


# ---------------------------------------------------------------- the API's numbers


def test_model_lists_every_layer_in_order_with_the_run_evaluation(client, view_run):
    described = client.get("/api/model").json()
    assert [(layer["name"], layer["type"], layer["output_shape"]) for layer in described["layers"]] == [
        ("conv1", "Conv2D", [26, 26, 6]), ("pool1", "MaxPooling2D", [13, 13, 6]), ("conv2", "Conv2D", [11, 11, 8]),
        ("flatten", "Flatten", [968]), ("predictions", "Dense", [10]),
    ]
    assert described["classes"] == [str(k) for k in range(10)]
    assert described["input"] == {"height": 28, "width": 28, "channels": 1, "color_mode": "grayscale"}
    assert described["grad_cam_layer"] == "conv2" and described["first_layer"]["layer"] == "conv1"
    assert len(described["first_layer"]["filters"]) == 6
    metrics = view_run.read_metrics()
    assert described["test"]["confusion_matrix"] == metrics["evaluation"]["confusion_matrix"]
    assert described["test"]["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)


def test_an_uploaded_png_is_prepared_as_convscope_predict_prepares_it(client, view_run, small_data, tmp_path):
    """Same probabilities as `convscope predict` on the same file, and as the model on the test image itself."""
    pixels = small_data.display_images(small_data.x_test[7:8])[0]
    data = png(pixels)
    (tmp_path / "seven.png").write_bytes(data)
    answer = client.post("/api/predict", content=data, headers={"Content-Type": "image/png"}).json()
    expected = predict_images(view_run.path, [tmp_path / "seven.png"]).probabilities[0]
    np.testing.assert_allclose(answer["probabilities"], expected, atol=2e-6)
    np.testing.assert_allclose(answer["probabilities"], view_run.read_predictions()["probabilities"][7], atol=2e-6)
    np.testing.assert_array_equal(decode(answer["input"]), pixels[..., 0])
    assert answer["predicted"] == int(np.argmax(expected)) == answer["explained_class"]


def test_every_layer_comes_back_as_its_real_activations(client, view_run, small_data):
    """Each feature-map tile is the layer's own output on the layer's shared scale; vectors are the values."""
    answer = client.post("/api/predict", json={"test_index": 3}).json()
    model = view_run.load_model()
    expected = {item.layer_name: item.values[0] for item in compute_activations(model, small_data.x_test[3:4], [l.name for l in model.layers])}
    assert [layer["name"] for layer in answer["layers"]] == list(expected)
    for layer in answer["layers"]:
        values = expected[layer["name"]]
        assert layer["output_shape"] == list(values.shape)
        assert layer["summary"]["max"] == pytest.approx(float(values.max()), abs=1e-5)
        if layer["kind"] == "maps":
            tiles, mosaic = layer["tiles"], decode(layer["tiles"]["image"])
            step = tiles["tile_width"] + tiles["gap"]
            for channel in (0, values.shape[-1] - 1):
                row, column = divmod(channel, tiles["columns"])
                tile = mosaic[row * (tiles["tile_height"] + tiles["gap"]) :][: tiles["tile_height"], column * step :][:, : tiles["tile_width"]]
                reference = to_uint8(values[..., channel], float(values.min()), float(values.max()))
                assert np.abs(tile.astype(int) - reference).max() <= 1
        elif "values" in layer:
            np.testing.assert_allclose(layer["values"], values, atol=1e-4)
        else:
            assert layer["folded"]["rows"] * layer["folded"]["columns"] >= values.size
    assert answer["grad_cam"]["layer"] == "conv2" and answer["first_layer"]["responses"]["channels"] == 6


def test_a_chosen_class_changes_what_grad_cam_explains(client):
    predicted = client.post("/api/predict", json={"test_index": 0}).json()
    other = (predicted["predicted"] + 1) % 10
    chosen = client.post(f"/api/predict?class={other}", json={"test_index": 0}).json()
    assert chosen["explained_class"] == other and chosen["predicted"] == predicted["predicted"]
    assert chosen["saliency"]["overlay"] != predicted["saliency"]["overlay"]
    by_name = client.post("/api/predict", json={"test_index": 0, "class": str(other)}).json()
    assert by_name["explained_class"] == other


def test_raw_pixels_give_the_same_answer_as_their_png(client, small_data):
    pixels = small_data.display_images(small_data.x_test[5:6])[0]
    from_json = client.post("/api/predict", json={"pixels": pixels[..., 0].tolist()}).json()
    from_png = client.post("/api/predict", content=png(pixels), headers={"Content-Type": "image/png"}).json()
    assert from_json["probabilities"] == from_png["probabilities"]


def test_a_first_layer_cell_is_worked_out_on_the_real_input(client):
    for channel, row, column in [(0, 0, 0), (3, 12, 14), (5, 25, 25)]:
        answer = client.post("/api/explain", json={"test_index": 11, "layer": "conv1", "channel": channel, "row": row, "column": column}).json()
        worked = answer["worked"]
        kernel, pixels = np.array(worked["kernel"]), np.array(worked["pixels"])
        assert kernel.shape == pixels.shape == (3, 3, 1)
        assert (kernel * pixels).sum() + worked["bias"] == pytest.approx(worked["total"], abs=1e-4)
        assert worked["value"] == pytest.approx(max(worked["total"], 0.0), abs=1e-6)  # relu
        assert worked["value"] == pytest.approx(worked["network_value"], abs=1e-5)
        field = answer["receptive_field"]
        assert (field["top"], field["left"], field["bottom"], field["right"]) == (row, column, row + 2, column + 2)


def test_a_deeper_cell_sees_the_composed_receptive_field(client):
    """conv2 after 2x2 pooling: 3 + 1 (pool) + 2 * 2 (conv2) = 8 pixels; cell i starts at pixel 2 i."""
    answer = client.post("/api/explain", json={"test_index": 11, "layer": "conv2", "channel": 1, "row": 4, "column": 0}).json()
    assert answer["worked"] is None
    assert answer["receptive_field"]["size"] == [8.0, 8.0]
    field = answer["receptive_field"]
    assert (field["top"], field["left"], field["bottom"], field["right"]) == (8, 0, 15, 7)


def test_receptive_fields_are_where_the_gradient_reaches():
    """On a linear network with positive weights every pixel of the field, and no other, moves the cell."""
    import tensorflow as tf

    inputs = keras.Input((17, 17, 1))
    hidden = keras.layers.Conv2D(1, 3, strides=2, padding="same", use_bias=False, kernel_initializer="ones")(inputs)
    hidden = keras.layers.AveragePooling2D(2, strides=1)(hidden)
    outputs = keras.layers.Conv2D(1, 3, dilation_rate=2, use_bias=False, kernel_initializer="ones")(hidden)
    model = keras.Model(inputs, outputs)
    (row_stride, row_offset, size), _ = receptive_fields(layer_graph(model, (17, 17, 1)).outputs_of[model.layers[-1].name])
    x = tf.convert_to_tensor(np.random.default_rng(0).random((1, 17, 17, 1), dtype=np.float32))
    for cell in range(model.output.shape[1]):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = model(x)[0, cell, cell, 0]
        reached = np.flatnonzero((tape.gradient(value, x).numpy()[0, :, :, 0] != 0).any(axis=1))  # rows
        centre = row_stride * cell + row_offset
        low, high = int(np.floor(centre - (size - 1) / 2)), int(np.ceil(centre + (size - 1) / 2))
        assert (reached.min(), reached.max()) == (max(low, 0), min(high, 16))


def test_test_images_by_errors_and_by_confusion_cell(client, view_run, small_data):
    metrics = view_run.read_metrics()["evaluation"]
    confusion = np.array(metrics["confusion_matrix"])
    errors = client.get("/api/test-images?filter=errors&limit=5").json()
    assert errors["total"] == confusion.sum() - np.trace(confusion)
    assert all(item["label"] != item["predicted"] for item in errors["images"])
    true, predicted = np.unravel_index(np.argmax(confusion - np.diag(np.diag(confusion))), confusion.shape)
    cell = client.get(f"/api/test-images?filter=cell&true={true}&predicted={predicted}&limit=200").json()
    assert cell["total"] == confusion[true, predicted] == len(cell["images"])
    first = cell["images"][0]
    assert (first["label"], first["predicted"]) == (true, predicted)
    np.testing.assert_array_equal(decode(first["thumbnail"]), small_data.display_images(small_data.x_test[first["index"]])[..., 0])
    everything = client.get("/api/test-images?offset=990&limit=48").json()
    assert everything["total"] == 1000 and [item["index"] for item in everything["images"]] == list(range(990, 1000))


# ---------------------------------------------------------------- bad requests


def bomb_png() -> bytes:
    """A few-kB PNG declaring 5000 x 4000 pixels: past the 16 MP upload limit."""
    return png(np.zeros((4000, 5000), np.uint8))


BAD_REQUESTS = [
    # (what, method, path, request arguments, status, words of the one-line message)
    ("not an image", "post", "/api/predict", {"content": b"hello, not an image", "headers": {"Content-Type": "image/png"}}, 400, "not a PNG, JPEG"),
    ("truncated PNG", "post", "/api/predict", {"content": "TRUNCATED", "headers": {"Content-Type": "image/png"}}, 400, "cannot decode"),
    ("empty body", "post", "/api/predict", {"content": b"", "headers": {"Content-Type": "image/png"}}, 400, "empty request body"),
    ("too many bytes", "post", "/api/predict", {"content": b"\0" * (MAX_BODY_BYTES + 1), "headers": {"Content-Type": "image/png"}}, 413, "too large"),
    ("too many pixels", "post", "/api/predict", {"content": "BOMB", "headers": {"Content-Type": "image/png"}}, 413, "decompression bomb"),
    ("wrong channel count", "post", "/api/predict", {"json": {"pixels": np.zeros((28, 28, 3)).tolist()}}, 422, "has 3 channels; the model takes 1"),
    ("wrong pixel size", "post", "/api/predict", {"json": {"pixels": np.zeros((20, 28)).tolist()}}, 422, "expected (28, 28)"),
    ("pixels out of range", "post", "/api/predict", {"json": {"pixels": np.full((28, 28), 300).tolist()}}, 422, "outside 0-255"),
    ("malformed JSON", "post", "/api/predict", {"content": b'{"test_index": ', "headers": {"Content-Type": "application/json"}}, 400, "malformed JSON"),
    ("JSON not an object", "post", "/api/predict", {"json": [1, 2]}, 400, "expected an object"),
    ("JSON without an input", "post", "/api/predict", {"json": {"nothing": 1}}, 400, "exactly one of"),
    ("bad base64 image", "post", "/api/predict", {"json": {"image": "%%%"}}, 400, "not valid base64"),
    ("unknown class", "post", "/api/predict?class=42", {"json": {"test_index": 0}}, 400, "class '42' is unknown"),
    ("unknown class name", "post", "/api/predict?class=cat", {"json": {"test_index": 0}}, 400, "class 'cat' is unknown"),
    ("class a digit only to Unicode", "post", "/api/predict?class=%C2%B2", {"json": {"test_index": 0}}, 400, "class '²' is unknown"),
    ("test index out of range", "post", "/api/predict", {"json": {"test_index": 1000}}, 404, "test image 1000 does not exist"),
    ("unknown layer", "post", "/api/explain", {"json": {"test_index": 0, "layer": "conv9", "channel": 0, "row": 0, "column": 0}}, 404, "layer 'conv9' is unknown"),
    ("no layer", "post", "/api/explain", {"json": {"test_index": 0}}, 400, '"layer" (a layer name) is required'),
    ("cell outside the map", "post", "/api/explain", {"json": {"test_index": 0, "layer": "conv1", "channel": 0, "row": 26, "column": 0}}, 400, "row 26 is outside the output (26, 26, 6)"),
    ("a vector layer's cell", "post", "/api/explain", {"json": {"test_index": 0, "layer": "flatten", "channel": 0, "row": 0, "column": 0}}, 400, "not feature maps"),
    ("unknown filter", "get", "/api/test-images?filter=best", {}, 400, "filter 'best' is unknown"),
    ("a cell without its class", "get", "/api/test-images?filter=cell&true=1", {}, 400, "needs true=K and predicted=K"),
    ("a cell outside the matrix", "get", "/api/test-images?filter=cell&true=1&predicted=10", {}, 400, "predicted=10 is not a class"),
    ("too many per page", "get", "/api/test-images?limit=500", {}, 400, "limit 1..200"),
    ("non-integer offset", "get", "/api/test-images?offset=x", {}, 400, "offset='x' is not an integer"),
    ("unknown page", "get", "/api/nothing", {}, 404, "no such page"),
    ("wrong method", "get", "/api/predict", {}, 405, "GET is not allowed"),
    ("static path traversal", "get", "/static/..%2Fapp.py", {}, 404, "no such page '/static/../app.py'"),
    ("static file not shipped", "get", "/static/session.py", {}, 404, "no static file 'session.py'"),
    ("figure path traversal", "get", "/figures/..%2Fmodel.keras", {}, 404, "no such page"),
    ("figure not in plots", "get", "/figures/model.keras", {}, 404, "no figure"),
]


def test_a_model_that_outputs_nan_gets_a_422_not_an_encoding_failure(view_run):
    session = ViewSession.from_run(view_run.path)
    session.model.set_weights([np.full_like(weights, np.nan) for weights in session.model.get_weights()])  # after its evaluation
    client = TestClient(create_app(session), base_url=LOCAL)
    for path, body in (("/api/predict", {"test_index": 0}), ("/api/explain", {"test_index": 0, "layer": "conv1", "channel": 0, "row": 0, "column": 0})):
        response = client.post(path, json=body)
        assert response.status_code == 422 and "NaN or Inf" in response.json()["error"], response.text


def test_predictions_of_other_test_images_turn_the_pickers_off(view_run, small_data, tmp_path):
    other = RunFolder(tmp_path / "other")
    shutil.copytree(view_run.path, other.path)
    saved = dict(np.load(other.path / "predictions.npz"))
    np.savez(other.path / "predictions.npz", probabilities=saved["probabilities"], labels=np.roll(saved["labels"], 1))  # same count
    described = ViewSession.from_run(other.path).describe()["test"]
    assert described["evaluated"] is False and described["confusion_matrix"] is None


@pytest.mark.parametrize("what, method, path, arguments, status, words", BAD_REQUESTS, ids=[case[0] for case in BAD_REQUESTS])
def test_a_bad_request_gets_its_4xx_and_one_line_and_the_server_keeps_serving(client, small_data, what, method, path, arguments, status, words):
    arguments = dict(arguments)
    if arguments.get("content") == "BOMB":
        arguments["content"] = bomb_png()
    if arguments.get("content") == "TRUNCATED":
        arguments["content"] = png(small_data.display_images(small_data.x_test[0]))[:60]
    response = getattr(client, method)(path, **arguments)
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert words in message and "\n" not in message
    assert client.post("/api/predict", json={"test_index": 1}).status_code == 200


# ---------------------------------------------------------------- the door


def test_beyond_loopback_every_request_needs_the_token(session):
    token = choose_token("0.0.0.0", None)
    assert token and choose_token("127.0.0.1", None) is None
    guarded = TestClient(create_app(session, token=token), base_url=LOCAL)
    for path in ("/", "/api/model", "/static/app.js"):
        refused = guarded.get(path)
        assert refused.status_code == 403 and "token" in refused.json()["error"]
    assert guarded.get(f"/api/model?token={token}").status_code == 200
    assert guarded.get("/api/model", headers={"Authorization": f"token {token}"}).status_code == 200
    assert guarded.get("/api/model", headers={"Authorization": "token wrong"}).status_code == 403
    page = guarded.get(f"/?token={token}").text
    assert f"/static/app.js?token={token}" in page and f"/static/app.css?token={token}" in page


def test_a_foreign_host_header_is_refused(client):
    refused = client.get("/api/model", headers={"Host": "attacker.example:8000"})
    assert refused.status_code == 403 and "DNS-rebinding" in refused.json()["error"]
    for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000"):
        assert client.get("/api/model", headers={"Host": host}).status_code == 200
    cross = client.post("/api/predict", json={"test_index": 0}, headers={"Origin": "http://attacker.example"})
    assert cross.status_code == 403 and "cross-origin" in cross.json()["error"]
    same = client.post("/api/predict", json={"test_index": 0}, headers={"Origin": LOCAL})
    assert same.status_code == 200


def test_the_real_server_on_every_interface_refuses_requests_without_the_token(session):
    running = start(session, host="0.0.0.0")
    try:
        assert "?token=" in running.url and running.url.startswith("http://127.0.0.1:")
        base, token = running.url.split("?token=")
        assert httpx.get(base + "api/model").status_code == 403
        assert httpx.get(base + "api/model", params={"token": token}).status_code == 200
    finally:
        running.stop()
    assert not running.thread.is_alive()


# ---------------------------------------------------------------- which models


def toy_dataset(channels: int, num_classes: int = 3) -> Dataset:
    """16 x 16 images in memory (the way a notebook builds a Dataset), unit scaling."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (40, 16, 16, channels), dtype=np.uint8)
    labels = rng.integers(0, num_classes, 40)
    scaling = fit_scaling("unit", pixels)
    x = scaling.apply(pixels)
    return Dataset("toy", x[:30], labels[:30], x[:0], labels[:0], x[30:], labels[30:], [f"c{k}" for k in range(num_classes)], {}, "generated", scaling)


def functional_rgb(num_classes: int = 3):
    inputs = keras.Input((16, 16, 3))
    branch = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    other = keras.layers.Conv2D(4, 1, padding="same")(inputs)
    merged = keras.layers.Add()([branch, other])
    pooled = keras.layers.GlobalAveragePooling2D()(merged)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(pooled), name="functional_rgb")


def yaml_model(folder, channels):
    spec = folder / "net.yaml"
    spec.write_text("layers:\n  - Conv2D: {filters: 3, kernel_size: 3, activation: relu}\n  - Flatten: {}\n  - Dense: {units: num_classes, activation: softmax}\n")
    return create_model(str(spec), (16, 16, channels), 3)


MODELS = {
    "never-called Sequential, grayscale": (lambda folder: never_called_sequential(), 1, 5),
    "functional with a merge, RGB": (lambda folder: functional_rgb(), 3, 3),
    "zoo model, never trained, RGB": (lambda folder: create_model("cnn_2conv", (16, 16, 3), 3), 3, 3),
    "YAML model, grayscale": (lambda folder: yaml_model(folder, 1), 1, 3),
}


@pytest.mark.parametrize("kind", list(MODELS))
def test_any_model_can_be_viewed(kind, tmp_path):
    build, channels, num_classes = MODELS[kind]
    session = ViewSession.from_model(build(tmp_path), toy_dataset(channels, num_classes))
    client = TestClient(create_app(session), base_url=LOCAL)
    described = client.get("/api/model").json()
    assert described["input"]["channels"] == channels and len(described["classes"]) == num_classes
    assert [layer["name"] for layer in described["layers"]] == [layer.name for layer in session.graph.layers]
    picture = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)  # any size, any mode
    answer = client.post("/api/predict", content=png(picture), headers={"Content-Type": "image/png"}).json()
    assert len(answer["layers"]) == len(described["layers"]) and sum(answer["probabilities"]) == pytest.approx(1, abs=1e-4)
    assert decode(answer["input"]).shape[:2] == (16, 16)
    first = described["first_layer"]["layer"]
    cell = client.post("/api/explain", json={"test_index": 0, "layer": first, "channel": 0, "row": 1, "column": 1}).json()
    assert cell["worked"]["value"] == pytest.approx(cell["worked"]["network_value"], abs=1e-5)
    assert np.array(cell["worked"]["kernel"]).shape[-1] == channels


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:LogisticRegression stopped at max_iter")  # 20 iterations are enough to view
def test_a_baseline_run_can_be_viewed(tmp_path, small_data):
    from convscope.baseline import baseline_config
    from convscope.pipeline import train_baseline

    config = Config()
    config.model.name = "sklearn-logistic"
    config.run.out, config.run.name = str(tmp_path), "logistic"
    result = train_baseline(baseline_config(config, max_iter=20), dataset=small_data)
    client = TestClient(create_app(ViewSession.from_run(result.run.path)), base_url=LOCAL)
    described = client.get("/api/model").json()
    assert described["grad_cam_layer"] is None and described["first_layer"] is None
    answer = client.post("/api/predict", json={"test_index": 0}).json()
    assert answer["grad_cam"] is None and answer["saliency"]["overlay"].startswith("data:image/png")
    np.testing.assert_allclose(answer["probabilities"], result.run.read_predictions()["probabilities"][0], atol=2e-6)


# ---------------------------------------------------------------- from Python


def test_view_from_python_returns_the_url_and_shows_an_iframe_in_jupyter(monkeypatch):
    import convscope
    from convscope.viewer import stop_view

    shown = []
    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: types.SimpleNamespace(config={"IPKernelApp": {}})
    display = types.ModuleType("IPython.display")
    display.IFrame = lambda url, width, height: ("iframe", url, width, height)
    display.display = shown.append
    monkeypatch.setitem(sys.modules, "IPython", fake)
    monkeypatch.setitem(sys.modules, "IPython.display", display)
    url = convscope.view(never_called_sequential(), toy_dataset(1, 5))
    try:
        assert url.startswith("http://127.0.0.1:") and shown == [("iframe", url, "100%", 900)]
        described = httpx.get(url + "api/model").json()
        assert described["model"].startswith("sequential") and described["test"]["count"] == 10
    finally:
        stop_view(url)


def test_view_refuses_what_is_not_a_dataset():
    from convscope.errors import ConvscopeError

    with pytest.raises(ConvscopeError, match="expected a dataset name"):
        ViewSession.from_model(never_called_sequential(), 42)


# ---------------------------------------------------------------- the real server


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))


@pytest.mark.slow
def test_concurrent_clients_all_get_answers_and_memory_stays_flat(session, small_data):
    """bench/view_latency.py's load test, smaller: 4 clients x 15 requests at once, none fails, RSS grows < 50 MB."""
    import threading

    body = png(small_data.display_images(small_data.x_test[2]))
    running = start(session)
    try:
        with httpx.Client(base_url=running.url) as warm:
            for _ in range(5):
                warm.post("api/predict", content=body).raise_for_status()
        before, answers = rss_mb(), []

        def worker():
            with httpx.Client(base_url=running.url, timeout=120) as client:
                for _ in range(15):
                    response = client.post("api/predict", content=body, headers={"Content-Type": "image/png"})
                    answers.append((response.status_code, response.json().get("predicted")))

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        grown = rss_mb() - before
    finally:
        running.stop()
    assert len(answers) == 60 and {status for status, _ in answers} == {200}
    assert len({predicted for _, predicted in answers}) == 1  # the lock keeps concurrent calls from mixing inputs
    assert grown < 50, f"RSS grew {grown:.1f} MB over 60 requests"


@pytest.mark.slow
@pytest.mark.parametrize("source", ["run folder", "model file"])
def test_convscope_view_prints_the_url_and_serves_until_interrupted(source, view_run, tmp_path):
    import os
    import signal
    import subprocess

    from conftest import isolated_env

    if source == "run folder":
        what, served = [str(view_run.path)], view_run.path
    else:  # imported into a new run folder, evaluated for the test-image pickers, then served
        what = ["--model", str(view_run.model_path), "--dataset", "mnist-sample", "--out", str(tmp_path / "runs"), "--name", "imported"]
        served = tmp_path / "runs" / "imported"
    command = [sys.executable, "-m", "convscope", "view", *what, "--port", "0", "--no-browser"]
    environment = {**os.environ, **isolated_env(tmp_path), "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    try:
        line = next(line for line in process.stdout if line.startswith("Serving")).strip()
        assert line.startswith(f"Serving {served} at http://127.0.0.1:") and line.endswith("/"), line
        url = line.split(" at ", 1)[1]
        assert httpx.get(url + "api/model", timeout=60).json()["model"] == "small_cnn"
        assert httpx.get(url + "api/model", headers={"Host": "attacker.example"}).status_code == 403
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
