"""--augment: the spec, the seeded layers on training batches only, resume, config and report."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from convscope.cli import main
from convscope.config import Config, load_config, save_config
from convscope.data.augment import augment_batches, augment_examples, parse_augment, resolve_augment, value_range
from convscope.data.preprocess import fit_scaling
from convscope.errors import ConvscopeError
from convscope.keras_compat import batches

# --------------------------------------------------------------------------- the spec


@pytest.mark.parametrize("spec, channels, canonical", [
    ("default", 1, "shift=0.1,rotate=10,zoom=0.1,contrast=0.2"),  # grayscale digits: no flip
    ("default", 3, "flip,shift=0.1,rotate=10,zoom=0.1,contrast=0.2"),  # photos: flip
    ("default,flip", 1, "flip,shift=0.1,rotate=10,zoom=0.1,contrast=0.2"),  # flip on request
    ("default,flip=none,contrast=0", 3, "shift=0.1,rotate=10,zoom=0.1"),
    ("rotate=5, FLIP", 1, "flip,rotate=5"),
    ("flip=vertical,zoom", 1, "flip=vertical,zoom=0.1"),
    ("flip=both", 3, "flip=both"),
    ("true", 1, "shift=0.1,rotate=10,zoom=0.1,contrast=0.2"),  # `augment: true` in YAML
    ("none", 3, None),
    (None, 3, None),
    ("shift=0", 1, None),
])
def test_spec_resolves_to_a_canonical_string(spec, channels, canonical):
    assert resolve_augment(spec, (8, 8, channels)) == canonical
    if canonical is not None:
        assert parse_augment(canonical).spec() == canonical  # the canonical form reads back unchanged


def test_default_follows_the_channel_axis_of_channels_first_data():
    assert resolve_augment("default", (3, 8, 8), channels_first=True).startswith("flip,")


@pytest.mark.parametrize("spec, message", [
    ("blur", "--augment 'blur': unknown augmentation 'blur'; expected a comma-separated list of default, flip[=horizontal|vertical|both|none], shift=FRACTION"),
    ("flip,shift=0.1,shift=0.2", "shift given twice; give each augmentation once"),
    ("rotate=400", "rotate=400; expected degrees, 0..180 (0 turns it off), e.g. rotate=10"),
    ("shift=-0.1", "shift=-0.1; expected a fraction of height and width, 0..0.5"),
    ("zoom=big", "zoom=big; expected a fraction, 0..0.9"),
    ("contrast=nan", "contrast=nan; expected a factor, 0..1"),
    ("flip=diagonal", "flip=diagonal; expected flip, flip=horizontal, flip=vertical, flip=both or flip=none"),
    ("flip,,zoom", "unknown augmentation ''"),
])
def test_bad_specs_are_one_clear_line(spec, message):
    with pytest.raises(ConvscopeError) as error:
        parse_augment(spec)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_bad_spec_on_the_command_line_exits_2_before_any_folder(tmp_path, capsys):
    code = main(["train", "--limit-train", "128", "--epochs", "1", "--augment", "rotate=720", "--out", str(tmp_path / "runs")])
    assert code == 2 and "rotate=720" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_config_round_trip(tmp_path):
    config = Config()
    config.train.augment = "flip,rotate=10"
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml").train.augment == "flip,rotate=10"
    assert Config().train.augment is None


# --------------------------------------------------------------------------- the layers


def image_batches(count=24, shape=(12, 12, 1), batch_size=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((count, *shape), dtype=np.float32)
    return x, batches(x, np.arange(count) % 3, batch_size)


def collect(dataset):
    pairs = [(np.asarray(x), np.asarray(y)) for x, y in dataset]
    return np.concatenate([x for x, _ in pairs]), np.concatenate([y for _, y in pairs])


def test_same_seed_and_epoch_same_batches_and_labels_untouched():
    x, plain = image_batches()
    spec = "flip,shift=0.1,rotate=10,zoom=0.1,contrast=0.2"
    first, labels = collect(augment_batches(plain, spec, seed=3, epoch=2))
    again, _ = collect(augment_batches(plain, spec, seed=3, epoch=2))
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(labels, np.arange(24) % 3)
    assert first.shape == x.shape and not np.allclose(first, x)
    for other in (dict(seed=3, epoch=3), dict(seed=4, epoch=2)):
        assert not np.allclose(collect(augment_batches(plain, spec, **other))[0], first)
    # every batch gets transforms of its own: the seed generators advance from batch to batch
    repeated = batches(np.repeat(x[:1], 16, axis=0), np.zeros(16, dtype=np.int64), 8)
    out, _ = collect(augment_batches(repeated, spec, seed=0, epoch=0))
    assert not np.allclose(out[0], out[8]) and not np.allclose(out[0], out[1])


def test_off_returns_the_batches_unchanged():
    _, plain = image_batches()
    assert augment_batches(plain, None, 0, 0) is plain and augment_batches(plain, "none", 0, 0) is plain


def test_flip_alone_mirrors_or_keeps_each_image():
    x, plain = image_batches()
    out, _ = collect(augment_batches(plain, "flip", seed=0, epoch=0))
    mirrored = [np.array_equal(image, original[:, ::-1]) for image, original in zip(out, x)]
    kept = [np.array_equal(image, original) for image, original in zip(out, x)]
    assert all(m or k for m, k in zip(mirrored, kept)) and any(mirrored) and any(kept)


def test_contrast_keeps_the_range_of_standard_scaled_inputs():
    """Keras clips contrast to a value range: the scaled range of pixels 0..255, not 0..255 itself."""
    pixels = np.random.default_rng(0).integers(0, 256, (16, 8, 8, 1)).astype(np.uint8)
    scaling = fit_scaling("standard", pixels)
    low, high = value_range(scaling)
    assert low < -0.5 and high > 0.5
    x = scaling.apply(pixels)
    out, _ = collect(augment_batches(batches(x, np.zeros(16, dtype=np.int64), 8), "contrast=0.5", 0, 0, scaling))
    assert out.min() < -0.5 and out.min() >= low - 1e-5 and out.max() <= high + 1e-5


def test_channels_first_batches_get_the_same_transforms():
    x, plain = image_batches(shape=(10, 10, 3))
    spec = "flip,shift=0.1,rotate=10,zoom=0.1"
    last, _ = collect(augment_batches(plain, spec, seed=1, epoch=0))
    keras.config.set_image_data_format("channels_first")
    try:
        first, _ = collect(augment_batches(batches(np.moveaxis(x, -1, 1).copy(), np.arange(24) % 3, 8), spec, seed=1, epoch=0))
    finally:
        keras.config.set_image_data_format("channels_last")
    np.testing.assert_allclose(np.moveaxis(first, 1, -1), last, atol=1e-5)


def test_examples_are_versions_of_each_image():
    x, _ = image_batches(count=3)
    versions = augment_examples(x, "shift=0.1,rotate=10", seed=0, count=4)
    assert versions.shape == (3, 4, 12, 12, 1)
    assert not np.allclose(versions[0, 0], versions[0, 1])
    np.testing.assert_array_equal(versions, augment_examples(x, "shift=0.1,rotate=10", seed=0, count=4))


# --------------------------------------------------------------------------- training


def small_config(tmp_path, name: str, epochs: int = 2, augment: str | None = "default") -> Config:
    config = Config()
    config.data.limit_train, config.data.val_split = 256, 0.1
    config.model.name = "cnn_single"
    config.train.epochs, config.train.batch_size, config.train.schedule, config.train.learning_rate = epochs, 64, "constant", 1e-3
    config.train.augment = augment
    config.run.out, config.run.name = str(tmp_path), name
    return config


def frozen_model():
    """A model whose weights never change: training moves nothing, so validation and test see one function."""
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model.layers[-1].set_weights([np.random.default_rng(0).normal(0, 0.05, (784, 10)).astype("float32"), np.zeros(10, "float32")])
    model.layers[-1].trainable = False
    return model


@pytest.mark.filterwarnings("ignore:The model does not have any trainable weights")  # frozen on purpose: nothing may change
def test_validation_and_test_images_are_never_augmented(tmp_path):
    from convscope.train import train

    plain = train(small_config(tmp_path, "plain", epochs=1, augment=None), model=frozen_model())
    augmented = train(small_config(tmp_path, "augmented", epochs=1), model=frozen_model())
    # the training loss is measured on the augmented images, so it moves ...
    assert plain.history["loss"][0] != augmented.history["loss"][0]
    # ... while validation and test, the same function on the same images, agree exactly
    assert plain.history["val_loss"] == augmented.history["val_loss"]
    assert plain.metrics["test_loss"] == augmented.metrics["test_loss"]
    np.testing.assert_array_equal(plain.evaluation.probabilities, augmented.evaluation.probabilities)


@pytest.mark.slow
def test_same_seed_same_history_and_resume_equals_uninterrupted(tmp_path):
    from convscope.train import train

    whole = train(small_config(tmp_path, "whole"))
    again = train(small_config(tmp_path, "again"))
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert whole.history[key] == again.history[key], key
    train(small_config(tmp_path, "halves", epochs=1))
    resumed = train(small_config(tmp_path, "halves", epochs=2), resume=True)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert resumed.history[key] == whole.history[key], key
    for mine, theirs in zip(resumed.model.get_weights(), whole.model.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    assert "shift=0.1,rotate=10,zoom=0.1,contrast=0.2" in (tmp_path / "whole" / "config.yaml").read_text()
    # without augmentation the same seed trains otherwise: the transforms were applied
    assert train(small_config(tmp_path, "plain", augment=None)).history["loss"] != whole.history["loss"]


def test_resume_with_another_augmentation_is_refused(tmp_path):
    from convscope.train import train

    train(small_config(tmp_path, "run", epochs=1))
    with pytest.raises(ConvscopeError, match=r"augment: run has 'shift=0.1,rotate=10,zoom=0.1,contrast=0.2', now 'flip'"):
        train(small_config(tmp_path, "run", epochs=2, augment="flip"), resume=True)


def test_report_shows_the_augmentation_grid_and_facts(tmp_path, capsys):
    code = main([
        "run", "--limit-train", "256", "--epochs", "1", "--model", "cnn_single", "--augment", "flip,rotate=15",
        "--out", str(tmp_path), "--name", "aug",
    ])
    assert code == 0
    run = tmp_path / "aug"
    assert (run / "plots" / "augmentation.png").stat().st_size > 5000
    html = (run / "report.html").read_text()
    assert 'id="figure-augmentation"' in html
    assert "horizontal flip, rotation up to ±15° (--augment flip,rotate=15); training images only" in html
    assert "augment: flip,rotate=15" in (run / "config.yaml").read_text()
    assert json.loads((run / "metrics.json").read_text())["epochs_run"] == 1


def test_several_batches_per_call_see_the_same_augmented_batches(tmp_path, monkeypatch):
    """keras_compat.batches_per_call runs 8 batches per call: the map still draws batch by batch, in order."""
    import importlib

    training = importlib.import_module("convscope.train")  # the package's `train` attribute is the function
    train = training.train

    histories = []
    for steps in (1, training.STEPS_PER_EXECUTION):
        monkeypatch.setattr(training, "STEPS_PER_EXECUTION", steps)
        config = small_config(tmp_path, f"steps-{steps}", epochs=1)
        config.data.limit_train, config.train.batch_size = 352, 32  # 11 batches: a group of 8, then a short one of 3
        histories.append(train(config).history)
    for key in ("loss", "accuracy", "val_loss"):
        np.testing.assert_allclose(histories[0][key], histories[1][key], rtol=1e-6, err_msg=key)


def test_sweep_run_again_with_augment_skips_its_finished_run(tmp_path):
    """A sweep's `--augment` (default) matches the spec its finished run recorded once resolved for the images."""
    from convscope.sweep import sweep

    config = small_config(tmp_path, "sweep", epochs=1)
    config.data.limit_train = 128
    assert sweep(["cnn_single"], config).trained == ["cnn_single"]
    again = sweep(["cnn_single"], config)
    assert again.skipped == ["cnn_single"] and not again.trained
    assert "augment: shift=0.1,rotate=10,zoom=0.1,contrast=0.2" in (tmp_path / "sweep" / "cnn_single" / "config.yaml").read_text()


def test_lr_find_sweeps_augmented_batches_and_restores_the_model():
    from convscope.lrfind import find_learning_rate

    rng = np.random.default_rng(0)
    x, y = rng.random((96, 12, 12, 1), dtype=np.float32), np.arange(96) % 3
    model = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(), keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [np.array(weight) for weight in model.get_weights()]
    plain = find_learning_rate(model, x, y, batch_size=16, num_batches=30)
    augmented = find_learning_rate(model, x, y, batch_size=16, num_batches=30, augment="shift=0.2,rotate=30")
    again = find_learning_rate(model, x, y, batch_size=16, num_batches=30, augment="shift=0.2,rotate=30")
    assert not np.allclose(plain.losses[:10], augmented.losses[:10])  # the first batches already see other images
    np.testing.assert_array_equal(augmented.losses, again.losses)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("scale", ["unit", "standard", None])
def test_grayscale_corners_are_filled_with_black(scale):
    """Digits lie on black: what a shift uncovers is pixel 0 as the model sees it (0 when no scaling is known)."""
    pixels = np.full((8, 10, 10, 1), 255, dtype=np.uint8)
    pixels[:4] = 40
    scaling = fit_scaling(scale, pixels) if scale else None
    x = scaling.apply(pixels) if scaling else pixels.astype(np.float32)
    black = float(scaling.apply(np.zeros((1, 1, 1, 1), np.uint8))[0, 0, 0, 0]) if scaling else 0.0
    out, _ = collect(augment_batches(batches(x, np.zeros(8, dtype=np.int64), 8), "shift=0.5", 0, 0, scaling))
    assert np.isfinite(out).all() and out.min() >= min(black, x.min()) - 1e-5 and out.max() <= x.max() + 1e-5  # blends of black and image
    assert np.isclose(out, black, atol=1e-6).any()
