"""Comparison contract: ranking, leaderboard numbers from the run folders, dataset checks, a self-contained compare.html."""

import re

import numpy as np
import pytest

from convscope.cli import main
from convscope.compare import compare_runs, expand_run_paths, format_leaderboard, read_run_summary
from convscope.config import Config, save_config
from convscope.errors import ConvscopeError
from convscope.evaluate import evaluate_predictions
from convscope.fileio import write_json
from convscope.html.compare_page import write_compare_html
from convscope.models import create_model, summarize
from convscope.runfolder import RunFolder
from convscope.runfolder import HISTORY_COLUMNS

CLASS_NAMES = ["zero", "one", "two"]


def make_run(folder, name, accuracy, dataset="mnist-sample", model_name="mlp_16x16", with_model=True, epochs=3, seed=0):
    """A run folder as train + evaluate write it, with predictions of the given test accuracy (no training)."""
    run = RunFolder(folder / name)
    config = Config()
    config.data.dataset, config.model.name = dataset, model_name
    config.run.out, config.run.name = str(folder), name
    save_config(config, run.config_path)
    write_json(run.data_path, {"name": dataset, "class_names": CLASS_NAMES, "input_shape": [8, 8, 1], "num_classes": 3})
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), 20)
    right = rng.permutation(60) < round(accuracy * 60)
    predicted = np.where(right, labels, (labels + 1) % 3)
    probabilities = np.full((60, 3), 0.1, dtype=np.float32)
    probabilities[np.arange(60), predicted] = 0.8
    result = evaluate_predictions(probabilities, labels, CLASS_NAMES)
    run.save_evaluation(result)
    history = {column: [float(value) for value in np.linspace(0.5, accuracy, epochs)] for column in HISTORY_COLUMNS}
    history["epoch"] = list(range(1, epochs + 1))
    run.write_history(history)
    run.update_metrics({
        "epochs_run": epochs, "train_seconds": 1.5, "best_val_accuracy": accuracy - 0.01,
        "test_accuracy": result.accuracy, "test_loss": result.loss, "evaluation": result.to_metrics(),
    })
    if with_model:
        run.save_model(create_model(model_name, (8, 8, 1), 3))
    return run.path


@pytest.fixture
def three_runs(tmp_path):
    return [
        make_run(tmp_path, "small", 0.70, seed=1),
        make_run(tmp_path, "best", 0.95, model_name="cnn_single", seed=2),
        make_run(tmp_path, "nomodel", 0.80, with_model=False, seed=3),
    ]


def test_ranked_by_test_accuracy_with_numbers_from_the_folders(three_runs):
    comparison = compare_runs(three_runs)
    runs = comparison.groups["mnist-sample"]
    assert [run.label for run in runs] == ["best", "nomodel", "small"]
    best = runs[0]
    summary = summarize(create_model("cnn_single", (8, 8, 1), 3))
    assert best.params == summary.total_params and best.mflops == pytest.approx(summary.mflops)
    assert best.test_accuracy == pytest.approx(57 / 60)
    assert best.epochs == 3 and best.train_seconds == 1.5 and best.best_val_accuracy == pytest.approx(0.94)
    expected = evaluate_predictions(*_saved(three_runs[1]), CLASS_NAMES)
    assert best.ece == pytest.approx(expected.calibration.ece)
    np.testing.assert_allclose(best.f1, expected.report.f1)
    np.testing.assert_array_equal(best.confusion, expected.confusion)
    assert runs[1].params is None and runs[1].mflops is None  # no model.keras: the rest still compares


def _saved(path):
    with np.load(path / "predictions.npz") as archive:
        return archive["probabilities"], archive["labels"]


def test_leaderboard_text(three_runs):
    text = format_leaderboard(compare_runs(three_runs))
    lines = text.splitlines()
    assert lines[0] == "Dataset mnist-sample: 60 test images"
    for heading in ("params", "MFLOPs", "epochs", "train s", "best val acc", "test acc", "test loss", "ECE"):
        assert heading in lines[1]
    assert [line.split()[1] for line in lines[2:]] == ["best", "nomodel", "small"]
    assert "95.00%" in lines[2] and "–" in lines[3]


def test_different_datasets_refused_or_grouped(tmp_path):
    paths = [make_run(tmp_path, "a", 0.9), make_run(tmp_path, "b", 0.8, dataset="digits")]
    with pytest.raises(ConvscopeError, match=r"different datasets.*mnist-sample: .*a.*digits: .*b.*--group-by-dataset"):
        compare_runs(paths)
    comparison = compare_runs(paths, group_by_dataset=True)
    assert list(comparison.groups) == ["mnist-sample", "digits"]
    html = write_compare_html(comparison, tmp_path / "both.html").read_text()
    assert html.count("<section>") == 2 and 'href="#dataset-2"' in html


def test_compare_html_is_self_contained(three_runs, tmp_path):
    path = write_compare_html(compare_runs(three_runs), tmp_path / "out" / "compare.html")
    html = path.read_text()
    sources = re.findall(r'(?:src|href)="([^"#][^"]*)"', html)
    assert sources and all(source.startswith("data:image/png;base64,") for source in sources)
    assert "<link" not in html and "<script" not in html
    assert html.count("<img") == 2  # overlaid curves, confusion matrices side by side
    f1 = evaluate_predictions(*_saved(three_runs[0]), CLASS_NAMES).report.f1
    assert all(f"{value:.3f}</td>" in html for value in f1)
    ranks = [html.index(f'<td class="name">{name}</td>') for name in ("best", "nomodel", "small")]
    assert ranks == sorted(ranks)


def test_run_paths_from_globs(three_runs, tmp_path):
    (tmp_path / "compare.html").write_text("not a run")
    (tmp_path / "notes").mkdir()
    assert expand_run_paths([str(tmp_path / "*")]) == sorted(three_runs)
    assert expand_run_paths([str(three_runs[1]), str(tmp_path / "*")])[0] == three_runs[1]
    with pytest.raises(ConvscopeError, match="matches no run folder"):
        expand_run_paths([str(tmp_path / "nothing-*")])
    with pytest.raises(ConvscopeError, match="not a run folder"):
        expand_run_paths([str(tmp_path / "notes")])


def test_run_without_evaluation_is_listed_without_its_figures(tmp_path):
    path = make_run(tmp_path, "trained", 0.9, with_model=False)
    (path / "predictions.npz").unlink()
    RunFolder(path).update_metrics({"evaluation": None})
    run = read_run_summary(path)
    assert run.test_accuracy == pytest.approx(0.9) and run.ece is None and run.f1 is None and run.confusion is None
    html = write_compare_html(compare_runs([path]), tmp_path / "c.html").read_text()
    assert "No run has been evaluated yet" in html and html.count("<img") == 1


def test_cli(three_runs, tmp_path, capsys):
    out = tmp_path / "page.html"
    assert main(["compare", str(tmp_path / "*"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Dataset mnist-sample" in printed and out.is_file()
    other = make_run(tmp_path / "elsewhere", "c", 0.5, dataset="digits")
    assert main(["compare", str(three_runs[0]), str(other)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "different datasets" in error
