"""Config: YAML round-trip, precedence of preset < YAML < flags, unknown keys named."""

import pytest

from convscope.config import PRESETS, Config, config_from_dict, load_config, resolve_config, save_config
from convscope.errors import ConvscopeError


def test_yaml_round_trip(tmp_path):
    config = resolve_config(overrides={"train": {"epochs": 3, "schedule": "constant", "reduce_lr": "0.5,2,1e-5"}, "data": {"image_size": "32,32"}})
    path = save_config(config, tmp_path / "config.yaml")
    assert load_config(path) == config
    assert config.train.reduce_lr == (0.5, 2, 1e-5)
    assert config.data.image_size == (32, 32)


def test_flags_override_yaml_which_overrides_defaults(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  epochs: 4\n  batch_size: 64\nmodel:\n  name: cnn_2conv\n")
    config = resolve_config(path, {"train": {"epochs": 9}})
    assert (config.train.epochs, config.train.batch_size, config.model.name) == (9, 64, "cnn_2conv")
    assert config.data == Config().data


def test_preset_sits_between_defaults_and_yaml(tmp_path, monkeypatch):
    monkeypatch.setitem(PRESETS, "quick", {"train": {"epochs": 2, "batch_size": 512}})
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  preset: quick\n  batch_size: 32\n")
    config = resolve_config(path)
    assert (config.train.epochs, config.train.batch_size) == (2, 32)


@pytest.mark.parametrize(
    "raw, named",
    [
        ({"train": {"epoch": 3}}, "train.epoch"),
        ({"training": {}}, "training"),
        ({"train": {"epochs": "many"}}, "train.epochs"),
        ({"data": {"scale": "zscore"}}, "data.scale"),
        ({"train": {"reduce_lr": [0.5, 2]}}, "train.reduce_lr"),
        ({"train": {"schedule": "onecycle", "reduce_lr": [0.5, 2, 0.0]}}, "train.reduce_lr"),
    ],
)
def test_bad_keys_and_values_are_named(raw, named):
    with pytest.raises(ConvscopeError, match=named.replace(".", r"\.")):
        config_from_dict(raw)


def test_unknown_preset_lists_choices():
    with pytest.raises(ConvscopeError, match="unknown preset 'warp'"):
        resolve_config(overrides={"train": {"preset": "warp"}})


def test_missing_and_broken_yaml_files(tmp_path):
    with pytest.raises(ConvscopeError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [epochs: 3\n")
    with pytest.raises(ConvscopeError, match="broken.yaml"):
        load_config(broken)
