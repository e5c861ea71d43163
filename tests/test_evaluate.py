"""Contract tests for convscope.evaluate: every number against a reference or a hand computation."""

import json

import numpy as np
import pytest
from sklearn.metrics import classification_report, confusion_matrix

from convscope.errors import ConvscopeError
from convscope.evaluate import (
    ConfusedPair,
    compute_accuracy,
    compute_calibration,
    compute_class_counts,
    compute_class_probabilities,
    compute_classification_report,
    compute_confidence,
    compute_confused_classes,
    compute_confusion_matrix,
    compute_loss,
    compute_most_confused,
    compute_top_errors,
    compute_top_k_accuracy,
    evaluate,
    evaluate_predictions,
    normalize_confusion,
)


def random_predictions(num_images=300, num_classes=6, seed=0):
    """Probabilities that mostly favour the label, so every cell of the confusion matrix has a chance."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, num_images)
    logits = rng.normal(size=(num_images, num_classes))
    logits[np.arange(num_images), labels] += 1.5
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probabilities.astype(np.float32), labels


def labels_with_gaps(num_classes=7, seed=1):
    """Labels missing class 5 and predictions never choosing class 2: both zero-division cases."""
    rng = np.random.default_rng(seed)
    labels = rng.choice([0, 1, 2, 3, 4, 6], size=200)
    predictions = rng.choice([0, 1, 3, 4, 5, 6], size=200)
    return labels, predictions, num_classes


def test_classification_report_equals_sklearn_on_random_data():
    probabilities, labels = random_predictions()
    predictions = probabilities.argmax(axis=1)
    names = [f"class {i}" for i in range(6)]
    ours = compute_classification_report(labels, predictions, 6, names).to_dict()
    reference = classification_report(labels, predictions, labels=range(6), target_names=names, output_dict=True, zero_division=0)
    assert ours == reference


def test_classification_report_equals_sklearn_with_absent_and_never_predicted_classes():
    labels, predictions, num_classes = labels_with_gaps()
    ours = compute_classification_report(labels, predictions, num_classes).to_dict()
    reference = classification_report(
        labels, predictions, labels=range(num_classes), target_names=[str(i) for i in range(num_classes)], output_dict=True, zero_division=0
    )
    assert ours == reference
    assert ours["2"]["precision"] == 0.0 and ours["5"]["support"] == 0.0


def test_confusion_matrix_equals_sklearn_counts_and_normalized():
    labels, predictions, num_classes = labels_with_gaps()
    counts = compute_confusion_matrix(labels, predictions, num_classes)
    np.testing.assert_array_equal(counts, confusion_matrix(labels, predictions, labels=range(num_classes)))
    np.testing.assert_allclose(
        normalize_confusion(counts), confusion_matrix(labels, predictions, labels=range(num_classes), normalize="true"), rtol=0, atol=1e-15
    )


def test_most_confused_sorted_by_count_off_diagonal_with_ties_in_row_major_order():
    confusion = np.array([[50, 3, 7], [3, 40, 0], [1, 9, 30]])
    assert compute_most_confused(confusion) == [
        ConfusedPair(2, 1, 9),
        ConfusedPair(0, 2, 7),
        ConfusedPair(0, 1, 3),
        ConfusedPair(1, 0, 3),
        ConfusedPair(2, 0, 1),
    ]
    assert compute_most_confused(confusion, min_count=3) == compute_most_confused(confusion)[:4]
    assert compute_confused_classes(compute_most_confused(confusion), max_classes=2).tolist() == [1, 2]


@pytest.mark.parametrize("ranking", ["rule", "loss"])
def test_top_errors_match_brute_force_ordering(ranking):
    probabilities, labels = random_predictions(num_images=200, num_classes=5, seed=3)
    errors = compute_top_errors(probabilities, labels, ranking=ranking)
    expected = []
    for index in range(len(labels)):
        predicted = int(np.argmax(probabilities[index]))
        if predicted == labels[index]:
            continue
        p_true = float(probabilities[index, labels[index]])
        score = float(probabilities[index, predicted]) - p_true if ranking == "rule" else -np.log(max(p_true, 1e-7))
        expected.append((-score, index))
    expected_indices = [index for _, index in sorted(expected)]
    assert errors.indices.tolist() == expected_indices
    assert np.all(errors.predicted_labels != errors.true_labels)
    np.testing.assert_allclose(errors.p_true, probabilities[errors.indices, errors.true_labels])
    np.testing.assert_allclose(errors.p_pred, probabilities[errors.indices].max(axis=1))
    np.testing.assert_allclose(errors.loss, -np.log(errors.p_true.astype(np.float64)))
    assert len(compute_top_errors(probabilities, labels, ranking=ranking, count=4)) == 4


def test_top_errors_by_loss_can_include_correct_predictions():
    probabilities = np.array([[0.4, 0.3, 0.3], [0.1, 0.9, 0.0], [0.05, 0.9, 0.05]], dtype=np.float32)
    labels = np.array([0, 1, 0])
    assert compute_top_errors(probabilities, labels, "loss").indices.tolist() == [2]
    assert compute_top_errors(probabilities, labels, "loss", errors_only=False).indices.tolist() == [2, 0, 1]


def test_loss_accuracy_top_k_against_hand_values():
    probabilities = np.array([[0.7, 0.2, 0.1, 0.0], [0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25]])
    labels = np.array([0, 1, 3])
    assert compute_loss(probabilities, labels) == pytest.approx(-(np.log(0.7) + np.log(0.2) + np.log(0.25)) / 3)
    assert compute_accuracy(probabilities, labels) == pytest.approx(1 / 3)
    # image 2 ties every class: counted in the top 1, like tf.math.in_top_k.
    assert compute_top_k_accuracy(probabilities, labels, 1) == pytest.approx(2 / 3)
    assert compute_top_k_accuracy(probabilities, labels, 2) == pytest.approx(2 / 3)
    assert compute_top_k_accuracy(probabilities, labels, 3) == pytest.approx(1.0)
    assert np.isfinite(compute_loss(np.array([[1.0, 0.0]]), np.array([1])))


def test_calibration_against_hand_computation():
    # Four images, confidences 0.95 (right), 0.92 (wrong), 0.42 -> 0.58 (right), 0.52 (right), 10 bins:
    # bin (0.9, 1] holds 0.95 and 0.92 (accuracy 0.5, confidence 0.935), bin (0.5, 0.6] holds 0.58 and 0.52
    # (accuracy 1, confidence 0.55); ECE = 2/4 * |0.5 - 0.935| + 2/4 * |1 - 0.55| = 0.4425.
    probabilities = np.array([[0.95, 0.05], [0.92, 0.08], [0.42, 0.58], [0.52, 0.48]])
    labels = np.array([0, 1, 1, 0])
    calibration = compute_calibration(probabilities, labels, n_bins=10)
    assert calibration.counts.tolist() == [0, 0, 0, 0, 0, 2, 0, 0, 0, 2]
    assert calibration.accuracy[9] == pytest.approx(0.5) and calibration.mean_confidence[9] == pytest.approx(0.935)
    assert calibration.accuracy[5] == pytest.approx(1.0) and calibration.mean_confidence[5] == pytest.approx(0.55)
    assert np.isnan(calibration.accuracy[0])
    assert calibration.ece == pytest.approx(0.4425)
    np.testing.assert_allclose(calibration.bin_edges, np.linspace(0, 1, 11))
    # A confidence exactly on an edge belongs to the bin it closes: 0.6 -> (0.5, 0.6].
    on_edge = compute_calibration(np.array([[0.6, 0.4]]), np.array([0]), n_bins=10)
    assert on_edge.counts[5] == 1


def test_class_probabilities_and_confidence_split_images():
    probabilities = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([1, 1, 0])
    split = compute_class_probabilities(probabilities, labels, 1)
    np.testing.assert_allclose(split.in_class, [0.2, 0.7])
    np.testing.assert_allclose(split.out_of_class, [0.4])
    confidence = compute_confidence(probabilities, labels)
    np.testing.assert_allclose(confidence.all, [0.8, 0.7, 0.6])
    np.testing.assert_allclose(confidence.wrong, [0.8])
    with pytest.raises(ConvscopeError, match="class index 2"):
        compute_class_probabilities(probabilities, labels, 2)


def test_logits_are_turned_into_probabilities():
    probabilities, labels = random_predictions(num_images=50, num_classes=4)
    logits = np.log(probabilities) + 3.0  # softmax of these equals probabilities
    from_logits = evaluate_predictions(logits, labels)
    from_probabilities = evaluate_predictions(probabilities, labels)
    np.testing.assert_allclose(from_logits.probabilities, probabilities, rtol=1e-5)
    assert from_logits.loss == pytest.approx(from_probabilities.loss, rel=1e-5)
    negative = evaluate_predictions(np.array([[-1.0, 2.0], [3.0, -0.5]]), np.array([1, 0]))
    np.testing.assert_allclose(negative.probabilities.sum(axis=1), 1.0, rtol=1e-6)


def test_evaluate_predictions_fills_result_and_json_metrics(tmp_path):
    probabilities, labels = random_predictions(num_images=120, num_classes=4, seed=5)
    result = evaluate_predictions(probabilities, labels, class_names=["cat", "dog", "car", "ship"], top_k=(2, 3, 5))
    assert set(result.top_k) == {2, 3}  # k=5 >= 4 classes is skipped
    assert result.confusion.sum() == 120 and result.num_errors == int(np.sum(result.predictions != labels))
    assert result.class_probabilities.class_index == int(np.argmax(result.confusion.sum(axis=1) - np.diag(result.confusion)))
    metrics = result.to_metrics()
    assert metrics["accuracy"] == pytest.approx(np.mean(probabilities.argmax(1) == labels))
    assert set(metrics["per_class"]) == {"cat", "dog", "car", "ship"}
    assert metrics["most_confused"][0]["count"] == result.most_confused[0].count
    json.loads(json.dumps(metrics))  # plain Python types only
    one_hot = evaluate_predictions(probabilities, np.eye(4)[labels])
    np.testing.assert_array_equal(one_hot.labels, labels)


@pytest.mark.parametrize(
    "probabilities, labels, message",
    [
        (np.zeros((0, 3)), np.zeros(0, dtype=int), "empty test set"),
        (np.full((2, 3), 1 / 3), np.array([0, 3]), "label 3 is outside the model's 3 outputs"),
        (np.full((2, 3), 1 / 3), np.array([0, -1]), "label -1"),
        (np.full((2, 3), 1 / 3), np.array([0, 1, 2]), r"labels have shape \(3,\) but there are 2 predictions"),
        (np.full(3, 1 / 3), np.array([0]), "expected \\(N, num_classes\\)"),
        (np.array([[np.nan, 1.0]]), np.array([0]), "NaN"),
        (np.full((1, 2), 0.5), np.array([0.5]), "non-integer"),
    ],
)
def test_bad_predictions_raise_convscope_error(probabilities, labels, message):
    with pytest.raises(ConvscopeError, match=message):
        evaluate_predictions(probabilities, labels)


def test_wrong_number_of_class_names_raises():
    with pytest.raises(ConvscopeError, match="2 class names given for a model with 3 outputs"):
        evaluate_predictions(np.full((1, 3), 1 / 3), np.array([0]), class_names=["a", "b"])


def test_class_counts_per_split():
    counts = compute_class_counts({"train": np.array([0, 0, 2]), "val": None, "test": np.array([1])}, 3)
    assert {split: values.tolist() for split, values in counts.items()} == {"train": [2, 0, 1], "test": [0, 1, 0]}
    with pytest.raises(ConvscopeError, match="expected 0..2"):
        compute_class_counts({"train": np.array([3])}, 3)


def test_evaluate_with_a_keras_model_predicts_once_and_checks_inputs():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    rng = np.random.default_rng(0)
    images = rng.random((20, 4, 4, 1)).astype(np.float32)
    labels = rng.integers(0, 3, 20)
    result = evaluate(model, images, labels, class_names=["a", "b", "c"], batch_size=8)
    np.testing.assert_allclose(result.probabilities, model.predict(images, verbose=0), rtol=1e-5)
    assert result.top_k == {}  # k=3 and 5 are not below 3 classes
    with pytest.raises(ConvscopeError, match="empty test set"):
        evaluate(model, images[:0], labels[:0])
    with pytest.raises(ConvscopeError, match="20 images but y_test has 19 labels"):
        evaluate(model, images, labels[:19])
    with pytest.raises(ConvscopeError, match="label 3 is outside the model's 3 outputs"):
        evaluate(model, images, np.where(labels == 0, 3, labels))


def test_outputs_that_are_not_class_scores_are_a_clear_error():
    from convscope.evaluate import to_probabilities

    with pytest.raises(ConvscopeError, match=r"model outputs have shape \(2, 3, 4\); expected \(N, num_classes\)"):
        to_probabilities(np.zeros((2, 3, 4)))
