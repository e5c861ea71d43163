"""Contract tests of the report: sections, self-containment, repeatability, both ways in."""

from __future__ import annotations

import base64
import io
import json
import types
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convscope.config import Config, DataConfig, ModelConfig, RunConfig, TrainConfig, save_config
from convscope.errors import ConvscopeError
from convscope.evaluate import evaluate_predictions
from convscope.fileio import write_json, write_text
from convscope.html.notebook import history_columns
from convscope.pipeline import build_report
from convscope.html.render import MAX_FIGURE_BYTES, MAX_FIGURE_WIDTH, Figure, inline_png
from convscope.html.report import SECTIONS, activation_figures, build_run_report
from convscope.runfolder import open_run
from conftest import fit_notebook_model

BUILD_LINE = "Built by convscope"


# --------------------------------------------------------------------------- helpers


class _Page(HTMLParser):
    """Collects what a self-containment check needs: every tag with its attributes, headings, text."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.headings: dict[str, str] = {}
        self._heading: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "h2":
            self._heading = attributes.get("id", "")
            self.headings[self._heading] = ""

    def handle_endtag(self, tag):
        if tag == "h2":
            self._heading = None

    def handle_data(self, data):
        if self._heading is not None:
            self.headings[self._heading] += data


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def assert_self_contained(html: str) -> int:
    """Every image an inline PNG, every link an anchor, nothing loaded from elsewhere; return the image count."""
    page = parse(html)
    assert "@import" not in html and "url(" not in html
    images = 0
    for tag, attributes in page.tags:
        assert tag not in ("link", "iframe", "object", "embed", "base"), tag
        if tag == "script":
            assert "src" not in attributes
        if "href" in attributes:
            assert attributes["href"].startswith("#"), attributes["href"]
        if "src" in attributes:
            assert tag == "img", tag
            source = attributes["src"]
            assert not source.startswith(("http://", "https://", "//", "file:"))
            prefix = "data:image/png;base64,"
            assert source.startswith(prefix), source[:40]
            data = base64.b64decode(source[len(prefix):], validate=True)
            with Image.open(io.BytesIO(data)) as picture:
                assert picture.format == "PNG"
                picture.verify()
            images += 1
    return images


def assert_every_section(html: str) -> None:
    page = parse(html)
    assert [(key, page.headings.get(key)) for key, _ in SECTIONS] == list(SECTIONS)
    assert html.count('<div class="explain">') == len(SECTIONS)
    for key, title in SECTIONS:
        assert f'<a href="#{key}">{title}</a>' in html


def differing_lines(first: str, second: str) -> list[tuple[str, str]]:
    first_lines, second_lines = first.splitlines(), second.splitlines()
    assert len(first_lines) == len(second_lines)
    return [(a, b) for a, b in zip(first_lines, second_lines) if a != b]


def figure_ids(html: str) -> set[str]:
    return {attributes["id"][len("figure-"):] for tag, attributes in parse(html).tags if tag == "figure"}


def save_png(path: Path, size=(40, 30), color=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


@pytest.fixture()
def hand_made_run(tmp_path) -> Path:
    """A run folder written by hand: no model.keras, two figures, predictions, metrics and history of a 3-epoch run."""
    run_dir = tmp_path / "runs" / "hand"
    run_dir.mkdir(parents=True)
    save_config(Config(run=RunConfig(out=str(tmp_path / "runs"), name="hand")), run_dir / "config.yaml")
    write_json(run_dir / "environment.json", {
        "convscope": "0.1.0", "python": "3.11", "backend": "tensorflow", "keras": "3.15", "tensorflow": "2.21",
        "seed": 0, "cpu": "Test CPU", "cpu_count": 2, "command": "convscope run --epochs 3",
        "stage_seconds": {"train": 12.5, "evaluate": 3.25},
    })
    write_text(run_dir / "history.csv", (
        "epoch,loss,accuracy,val_loss,val_accuracy,learning_rate,seconds\n"
        "1,1.2,0.6,0.9,0.7,0.001,4.1\n2,0.6,0.8,0.7,0.75,0.001,3.9\n3,0.4,0.88,0.72,0.76,0.0005,4.0\n"
    ))
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 60)
    probabilities = rng.dirichlet(np.ones(4), 60)
    result = evaluate_predictions(probabilities, labels, class_names=["cat", "dog", "bird", "fish"])
    open_run(run_dir).save_evaluation(result)
    write_json(run_dir / "metrics.json", {
        "best_epoch": 2, "epochs_run": 3, "stopped_early": False, "train_seconds": 12.0,
        "best_val_loss": 0.7, "best_val_accuracy": 0.75, "test_loss": result.loss, "test_accuracy": result.accuracy,
        "evaluation": result.to_metrics(),
    })
    save_png(run_dir / "plots" / "confusion_matrix.png")
    save_png(run_dir / "plots" / "training_curves.png", color=(30, 30, 200))
    return run_dir


# --------------------------------------------------------------------------- a run folder


def test_report_of_a_run_folder_has_every_section_and_only_inline_images(hand_made_run):
    path = build_run_report(open_run(hand_made_run))
    html = path.read_text(encoding="utf-8")

    assert path == hand_made_run / "report.html"
    assert_every_section(html)
    assert assert_self_contained(html) == 2
    assert figure_ids(html) == {"confusion_matrix", "training_curves"}
    # The numbers of the run folder, as a reader sees them.
    assert "convscope run --epochs 3" in html
    assert f"convscope run --config {hand_made_run / 'config.yaml'} --name hand-again" in html
    assert "epoch 3: 0.001 → 0.0005" in html
    assert "Test CPU, 2 cores" in html
    assert "train 12.5 s, evaluate 3.2 s" in html
    assert ">cat</td>" in html and "macro average" in html
    # Missing pieces are named, and their sections still explain themselves.
    assert "has no model.keras" in html
    assert "has no data.json" in html
    assert "No activation maps were drawn" in html


def test_two_builds_differ_only_in_build_time(hand_made_run):
    run = open_run(hand_made_run)
    first = build_run_report(run).read_text(encoding="utf-8")
    # report_run records the report's own wall time after each build; it must not show up in the next one.
    environment = json.loads(run.environment_path.read_text())
    environment["stage_seconds"]["report"] = 0.37
    write_json(run.environment_path, environment)
    second = build_run_report(run).read_text(encoding="utf-8")

    changed = differing_lines(first, second)
    assert len(changed) <= 1
    assert all(BUILD_LINE in a and BUILD_LINE in b for a, b in changed)


def test_a_model_built_in_python_is_repeated_from_python(hand_made_run):
    config = Config(model=ModelConfig(name="python:sequential"), run=RunConfig(name="hand"))  # as train writes it
    save_config(config, hand_made_run / "config.yaml")

    html = build_run_report(open_run(hand_made_run)).read_text(encoding="utf-8")

    assert "config.run.name = &#39;hand-again&#39;\ntrain(config, model=your_model)" in html
    assert "--name hand-again" not in html


def test_report_without_figures_or_evaluation_says_what_is_missing(tmp_path):
    run_dir = tmp_path / "bare"
    run_dir.mkdir()
    save_config(Config(), run_dir / "config.yaml")

    html = build_run_report(open_run(run_dir)).read_text(encoding="utf-8")

    assert_every_section(html)
    assert assert_self_contained(html) == 0
    assert "No training history was given" in html
    assert "has not been evaluated in detail yet" in html
    assert "No figures yet: run `convscope inspect" in html


def test_data_json_describes_the_data_when_train_wrote_it(hand_made_run):
    write_json(hand_made_run / "data.json", {
        "name": "pets", "source": "folder:/data/<pets & co>", "class_names": ["cat", "dog", "bird", "fish"],
        "input_shape": [32, 32, 3],
        "preprocessing": {"scale": "standard", "formula": "(x - 120.0000) / 60.0000", "sizes": {"train": 900, "val": 100, "test": 60}},
    })

    html = build_run_report(open_run(hand_made_run)).read_text(encoding="utf-8")

    assert "folder:/data/&lt;pets &amp; co&gt;" in html and "32 × 32 × 3" in html  # text is escaped, never markup
    assert "train 900, val 100, test 60" in html
    assert "(x - 120.0000) / 60.0000" in html


def test_activation_maps_are_captioned_with_the_inspected_images(hand_made_run):
    run = open_run(hand_made_run)
    predictions = run.read_predictions()
    labels, predicted = predictions["labels"], predictions["probabilities"].argmax(axis=1)
    names = list(predictions["class_names"])
    right, wrong = int(np.flatnonzero(predicted == labels)[0]), int(np.flatnonzero(predicted != labels)[0])
    run.update_metrics({"inspection": {"images": [right, wrong]}})  # what inspect_run records
    for image in (0, 1):
        save_png(run.plots_dir / f"activations_img{image}.png")

    html = build_run_report(run).read_text(encoding="utf-8")

    assert f"Test image {right}: labelled {names[labels[right]]}, predicted {names[labels[right]]} (right)" in html
    assert f"Test image {wrong}: labelled {names[labels[wrong]]}, predicted {names[predicted[wrong]]} (wrong)" in html
    assert {"activations_img0", "activations_img1"} <= figure_ids(html)


def test_a_damaged_figure_is_named(hand_made_run):
    write_text(hand_made_run / "plots" / "grad_cam.png", "not a picture")
    with pytest.raises(ConvscopeError, match="grad_cam.png: not a PNG"):
        build_run_report(open_run(hand_made_run))


# --------------------------------------------------------------------------- pieces


def test_large_figures_are_reduced_before_inlining(tmp_path):
    noise = np.random.default_rng(0).integers(0, 255, (200, 2000, 3), dtype=np.uint8)
    path = tmp_path / "mosaic.png"
    Image.fromarray(noise).save(path)
    assert path.stat().st_size > MAX_FIGURE_BYTES

    figure = inline_png(path)

    data = base64.b64decode(figure.uri.split(",", 1)[1])
    assert len(data) < path.stat().st_size
    with Image.open(io.BytesIO(data)) as picture:
        assert picture.format == "PNG" and picture.size == (figure.width, figure.height)
    assert figure.width == MAX_FIGURE_WIDTH and figure.height == 160


def test_small_figures_are_inlined_unchanged(tmp_path):
    path = save_png(tmp_path / "small.png", size=(30, 20))
    figure = inline_png(path)
    assert base64.b64decode(figure.uri.split(",", 1)[1]) == path.read_bytes()
    assert (figure.name, figure.width, figure.height) == ("small", 30, 20)


def test_history_columns_accepts_history_objects_and_dicts():
    history = types.SimpleNamespace(history={"loss": [0.9, 0.5], "val_loss": [1.0, 0.8]})  # what model.fit returns
    columns = history_columns(history)
    assert list(columns) == ["epoch", "loss", "val_loss"]
    np.testing.assert_array_equal(columns["epoch"], [1, 2])
    assert history_columns(None) == {} and history_columns({}) == {}
    with pytest.raises(ConvscopeError, match="different lengths"):
        history_columns({"loss": [1.0, 0.5], "accuracy": [0.5]})
    with pytest.raises(ConvscopeError, match="History"):
        history_columns([0.9, 0.5])


def test_activation_figures_come_in_image_order_with_their_captions():
    figures = {name: Figure(name, "data:image/png;base64,", 1, 1) for name in ("activations_img1", "filters", "activations_img0", "activations_img2")}

    shown = activation_figures(figures, ["right one", "wrong one"])

    assert [(caption, figure.name) for caption, figure in shown] == [
        ("right one", "activations_img0"), ("wrong one", "activations_img1"), ("Inspected image 3", "activations_img2"),
    ]


# --------------------------------------------------------------------------- the whole pipeline


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from convscope.pipeline import run

    out = tmp_path_factory.mktemp("runs")
    config = Config(
        data=DataConfig(dataset="mnist-sample", limit_train=300),
        model=ModelConfig(name="cnn_single"),
        train=TrainConfig(epochs=1, batch_size=64),
        run=RunConfig(out=str(out), name="tiny"),
    )
    return run(config)


@pytest.mark.slow
def test_report_of_a_trained_run_shows_every_figure(trained_run):
    html = trained_run.report_path.read_text(encoding="utf-8")
    size = trained_run.report_path.stat().st_size
    print(f"report of a 1-epoch cnn_single run on 300 mnist-sample images: {size / 1e6:.2f} MB")

    assert_every_section(html)
    figures = figure_ids(html)
    assert assert_self_contained(html) == len(figures)
    expected = {
        "data_samples", "class_counts", "training_curves", "confusion_matrix", "top_errors_rule", "top_errors_loss",
        "prediction_grid", "sample_grid", "probability_bars", "class_histogram", "confidence", "reliability",
        "pixel_grid", "worked_convolution", "worked_pooling", "classic_kernels", "filters", "grad_cam", "saliency",
    }
    assert expected <= figures
    assert {"activations_img0", "activations_img1"} <= figures
    assert "(3*3*1 + 1) * 32 = 320" in html  # the summary's arithmetic for conv1
    assert size < 8_000_000


@pytest.mark.slow
def test_report_stage_again_changes_only_the_build_time(trained_run):
    from convscope.pipeline import report_run

    first = trained_run.report_path.read_text(encoding="utf-8")
    second = report_run(trained_run.run.path).read_text(encoding="utf-8")
    assert all(BUILD_LINE in a and BUILD_LINE in b for a, b in differing_lines(first, second))


# --------------------------------------------------------------------------- a model from a notebook


@pytest.mark.slow
def test_build_report_for_a_model_trained_with_plain_fit(tmp_path):
    x, y, model, history = fit_notebook_model((12, 12, 1), num_classes=3, filters=4, epochs=1)

    path = build_report(model, (x[48:], y[48:]), history=history, class_names=["a", "b", "c"],
                        out=tmp_path / "notebook.html", train_data=(x[:48], y[:48]), title="My CNN")
    html = path.read_text(encoding="utf-8")

    assert path == tmp_path / "notebook.html"
    assert "<title>My CNN · convscope report</title>" in html
    assert_every_section(html)
    figures = figure_ids(html)
    assert assert_self_contained(html) == len(figures)
    assert {"training_curves", "data_samples", "confusion_matrix", "filters", "grad_cam", "worked_convolution"} <= figures
    assert "trained outside convscope" in html and "optimizer Adam" in html
    assert "train 48, test 32" in html


@pytest.mark.slow
def test_build_report_without_history_or_image_shaped_inputs(tmp_path):
    import keras

    rng = np.random.default_rng(1)
    x = rng.random((40, 16)).astype("float32")  # flat vectors: no image figures, no look inside
    y = rng.integers(0, 2, 40)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(2)])  # logits, never compiled

    html = build_report(model, (x, y), out=tmp_path / "flat.html").read_text(encoding="utf-8")

    assert_every_section(html)
    assert "No training history was given" in html
    assert "needs images with a channel axis" in html
    assert "never compiled" in html
    figures = figure_ids(html)
    assert assert_self_contained(html) == len(figures)
    assert "confusion_matrix" in figures and "grad_cam" not in figures
