"""Presets: every named recipe is a valid config naming a registered model; fast trains end to end."""

import json

import pytest

from convscope.cli import main
from convscope.baseline import parse_baseline_name
from convscope.config import PRESETS, config_from_dict, is_baseline_name, resolve_config
from convscope.models import create_model, list_models


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_is_a_valid_config_with_a_registered_model(name):
    config = config_from_dict(PRESETS[name], source=f"preset {name}")
    if is_baseline_name(config.model.name):  # a lesson's scikit-learn MLP (`convscope baseline --preset`)
        assert parse_baseline_name(config.model.name).kind == "mlp"
        return
    assert config.model.name in {info.name for info in list_models()}
    model = create_model(config.model.name, (28, 28, 1), 10)
    assert model.output_shape == (None, 10)


def test_fast_preset_resolves_from_flags_and_yaml(tmp_path):
    from_flags = resolve_config(overrides={"train": {"preset": "fast"}})
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  preset: fast\n")
    from_yaml = resolve_config(path)
    assert from_flags.train == from_yaml.train
    assert from_flags.model.name == PRESETS["fast"]["model"]["name"]
    for key, value in PRESETS["fast"]["train"].items():
        assert getattr(from_flags.train, key) == value, key
    assert from_flags.data.val_split == PRESETS["fast"]["data"]["val_split"]


def test_flags_override_the_fast_preset():
    config = resolve_config(overrides={"train": {"preset": "fast", "epochs": 3}, "model": {"name": "cnn_small"}})
    assert (config.train.epochs, config.model.name) == (3, "cnn_small")
    assert config.train.batch_size == PRESETS["fast"]["train"]["batch_size"]


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["fast", "best"])
def test_preset_trains_on_a_slice_of_the_sample(tmp_path, preset):
    code = main(["train", "--preset", preset, "--limit-train", "256", "--epochs", "1", "--out", str(tmp_path), "--name", preset])
    assert code == 0
    run = tmp_path / preset
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_run"] == 1
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    saved = (run / "config.yaml").read_text()
    assert f"preset: {preset}" in saved and PRESETS[preset]["model"]["name"] in saved
    assert ("augment: shift=0.1,rotate=10" in saved) == (preset == "best")
