"""Every evaluation figure draws for grayscale and RGB images and for 3, 10 and 100 classes."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from convscope.errors import ConvscopeError
from convscope.evaluate import compute_class_counts, evaluate_predictions
from convscope.plots.evaluation import (
    plot_class_counts,
    plot_class_histogram,
    plot_confidence,
    plot_confusion_matrix,
    plot_confusion_top,
    plot_data_samples,
    plot_prediction_grid,
    plot_probability_bars,
    plot_reliability,
    plot_sample_grid,
    plot_top_errors,
    plot_training_curves,
    save_evaluation_figures,
)

HISTORY = {
    "epoch": np.arange(5.0),
    "loss": np.array([1.0, 0.6, 0.4, 0.3, 0.25]),
    "accuracy": np.array([0.7, 0.8, 0.85, 0.9, 0.92]),
    "val_loss": np.array([0.8, 0.5, 0.45, 0.47, 0.5]),
    "val_accuracy": np.array([0.75, 0.82, 0.86, 0.86, 0.85]),
    "learning_rate": np.array([1e-3, 1e-3, 1e-3, 5e-4, 5e-4]),
    "seconds": np.ones(5),
}


def make_case(num_classes, num_images=60, rgb=False, names=None, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, num_images)
    logits = rng.normal(size=(num_images, num_classes))
    logits[np.arange(num_images), labels] += 2.0
    result = evaluate_predictions(logits, labels, class_names=names)
    shape = (num_images, 8, 8, 3) if rgb else (num_images, 8, 8, 1)
    images = (rng.random(shape) * 255).astype(np.uint8) if rgb else rng.random(shape).astype(np.float32)
    return result, images


CASES = {
    "10 classes grayscale": lambda: make_case(10),
    "3 classes RGB with names": lambda: make_case(3, rgb=True, names=["airplane", "automobile", "bird"]),
}


def drew_something(figure):
    assert isinstance(figure, Figure)
    assert any(ax.has_data() or ax.texts or ax.images for ax in figure.axes)
    figure.canvas.draw()  # layout and rendering must not fail either
    import matplotlib.pyplot as plt

    plt.close(figure)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_plot_function_draws(case):
    result, images = CASES[case]()
    names = result.class_names
    index = int(result.top_errors_rule.indices[0])
    figures = [
        plot_training_curves(HISTORY),
        plot_confusion_matrix(result),
        plot_confusion_matrix(result.confusion, class_names=names),
        plot_confusion_top(result),
        plot_top_errors(result.top_errors_rule, images, names),
        plot_top_errors(result.top_errors_loss, images, names, count=7),
        plot_prediction_grid(images, result.predictions, names),
        plot_sample_grid(images, result.predictions, result.labels, names, seed=3),
        plot_probability_bars(result.probabilities[index], int(result.labels[index]), images[index], names),
        plot_probability_bars(result.probabilities[0], int(result.labels[0])),
        plot_class_histogram(result.class_probabilities, names),
        plot_confidence(result.confidence),
        plot_reliability(result.calibration),
        plot_data_samples(images, result.labels, names),
        plot_class_counts(compute_class_counts({"train": result.labels, "test": result.labels[:10]}, result.num_classes), names),
    ]
    for figure in figures:
        drew_something(figure)


def test_confusion_matrix_shows_counts_with_contrasting_colours_for_10_classes():
    result, _ = make_case(10, num_images=200)
    figure = plot_confusion_matrix(result)
    texts = figure.axes[0].texts
    assert len(texts) == 100
    darkest = np.unravel_index(np.argmax(result.confusion_normalized), result.confusion.shape)
    cell = texts[darkest[0] * 10 + darkest[1]]
    assert cell.get_text() == str(result.confusion[darkest]) and cell.get_color() == "white"
    assert [label.get_text() for label in figure.axes[0].get_xticklabels()] == result.class_names
    drew_something(figure)


def test_100_classes_hide_counts_and_the_top_subset_shows_them():
    result, images = make_case(100, num_images=400, rgb=True)
    full = plot_confusion_matrix(result)
    assert len(full.axes[0].texts) == 0 and max(full.get_size_inches()) <= 16
    drew_something(full)
    top = plot_confusion_top(result, max_classes=12)
    shown = len(top.axes[0].get_xticklabels())
    assert 2 <= shown <= 12 and len(top.axes[0].texts) == shown * shown
    drew_something(top)
    bars = plot_probability_bars(result.probabilities[0], int(result.labels[0]), images[0], result.class_names)
    assert len(bars.axes[1].patches) <= 11  # the 10 most probable classes and the true one
    drew_something(bars)


def test_top_error_titles_name_prediction_and_truth_with_probabilities():
    result, images = make_case(3, names=["cat", "dog", "eel"])
    figure = plot_top_errors(result.top_errors_rule, images, result.class_names, count=4)
    first = result.top_errors_rule
    title = figure.axes[0].texts[0].get_text()  # the grid is one axes, titles in reading order
    predicted, true = result.class_names[first.predicted_labels[0]], result.class_names[first.true_labels[0]]
    assert title.startswith(f"pred {predicted} (p={first.p_pred[0]:.2f})\ntrue {true} (p=")
    assert len(figure.axes[0].texts) == 4
    drew_something(figure)


def test_sample_grid_colours_right_blue_and_wrong_red():
    result, images = make_case(4, num_images=40)
    figure = plot_sample_grid(images, result.predictions, result.labels, result.class_names, count=40)
    colors = [text.get_color() for text in figure.axes[0].texts]
    right = int(np.sum(result.predictions == result.labels))
    assert colors.count("tab:blue") == right and colors.count("tab:red") == 40 - right
    drew_something(figure)


def test_training_curves_without_validation_and_with_bad_history():
    figure = plot_training_curves({"epoch": np.arange(3.0), "loss": np.array([1.0, 0.5, 0.4]), "accuracy": np.array([0.5, 0.7, 0.8])})
    assert len(figure.axes[0].lines) == 1
    drew_something(figure)
    # train writes NaN validation columns when there is no validation data: drawn as missing.
    no_validation = {"epoch": np.arange(1.0, 4.0), "loss": np.array([1.0, 0.5, 0.4]), "val_loss": np.full(3, np.nan)}
    figure = plot_training_curves(no_validation)
    assert [line.get_label() for line in figure.axes[0].lines] == ["train"]
    assert not figure.axes[1].axison
    drew_something(figure)
    with pytest.raises(ConvscopeError, match="expected at least 'loss' or 'accuracy'"):
        plot_training_curves({"epoch": np.arange(3.0)})


def test_training_curves_mark_best_epoch_and_learning_rate_change():
    figure = plot_training_curves(HISTORY)
    loss_ax = figure.axes[0]
    vertical = [line.get_xdata()[0] for line in loss_ax.lines if len(set(np.atleast_1d(line.get_xdata()))) == 1 and line.get_linestyle() != "None"]
    assert 3 in vertical  # best epoch: the 3rd (lowest val_loss 0.45), counted from 1
    assert 4 in vertical  # learning rate drops before the 4th epoch
    assert any("lr 0.0005" in text.get_text() for text in loss_ax.texts)
    drew_something(figure)


def test_save_evaluation_figures_writes_every_png(tmp_path):
    result, images = make_case(10)
    paths = save_evaluation_figures(
        result, images, tmp_path / "plots", history=HISTORY, train_labels=result.labels, val_labels=result.labels[:20], train_images=images
    )
    expected = {
        "training_curves", "confusion_matrix", "top_errors_rule", "top_errors_loss", "prediction_grid", "sample_grid",
        "probability_bars", "class_histogram", "confidence", "reliability", "data_samples", "class_counts",
    }
    assert set(paths) == expected
    for path in paths.values():
        assert path.parent == tmp_path / "plots"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
    assert sorted(file.name for file in (tmp_path / "plots").iterdir()) == sorted(f"{name}.png" for name in expected)


def test_save_evaluation_figures_without_images_and_with_many_classes(tmp_path):
    result, _ = make_case(40, num_images=200)
    paths = save_evaluation_figures(result, None, tmp_path)
    assert set(paths) == {"confusion_matrix", "confusion_top", "class_histogram", "confidence", "reliability", "class_counts"}
    with pytest.raises(ConvscopeError, match="3 test images given for 200 evaluated labels"):
        save_evaluation_figures(result, np.zeros((3, 8, 8, 1)), tmp_path)


def test_figures_when_the_model_makes_no_error(tmp_path):
    labels = np.array([0, 1, 2, 1])
    result = evaluate_predictions(np.eye(3)[labels] * 0.9 + 0.1 / 3, labels)
    paths = save_evaluation_figures(result, np.zeros((4, 5, 5)), tmp_path)
    assert paths["top_errors_rule"].stat().st_size > 1000


def test_one_epoch_curves_sit_on_that_epochs_tick():
    from convscope.plots.evaluation import plot_training_curves

    import matplotlib.pyplot as plt

    figure = plot_training_curves({"epoch": np.array([1]), "loss": np.array([0.5]), "accuracy": np.array([0.85])})
    ticks = [(list(ax.get_xticks()), ax.get_xlim()) for ax in figure.axes]
    plt.close(figure)
    assert ticks == [([1], (0.5, 1.5))] * 2
