"""Atomic writes: the old file survives any failure; temp files never keep a final name."""

import errno
import os

import pytest

from convscope.fileio import atomic_path, remove_stale_temps, write_json, write_text


def test_write_replaces_whole_file(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"accuracy": 0.5})
    write_json(target, {"accuracy": 0.9})
    assert target.read_text() == '{\n  "accuracy": 0.9\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_failure_mid_write_keeps_old_file_and_no_temp(tmp_path):
    target = tmp_path / "history.csv"
    write_text(target, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["history.csv"]


def test_disk_full_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "model.keras"
    write_text(target, "good")
    real_replace = os.replace

    def full_disk(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError):
        write_text(target, "new")
    monkeypatch.setattr(os, "replace", real_replace)
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_temp_keeps_suffix_and_stale_temps_are_removed(tmp_path):
    with atomic_path(tmp_path / "model.keras") as tmp:
        assert tmp.suffix == ".keras" and tmp.parent == tmp_path
        tmp.write_bytes(b"x")
    stale = tmp_path / ".model.keras.tmp-99-abcdef.keras"
    stale.write_bytes(b"partial")
    assert remove_stale_temps(tmp_path) == [stale]
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]
