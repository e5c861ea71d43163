"""Contract tests for the CIFAR-10 reader: the real batch format, refused pickles, unsafe archives."""

from __future__ import annotations

import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from convscope.data import cifar, load_dataset
from convscope.errors import ConvscopeError

LABEL_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
PER_BATCH = 10  # the test batch holds every class once: a class missing from a split is refused (data/checks.py)

pytestmark = pytest.mark.usefixtures("isolated_locations")


def batch_bytes(seed: int) -> bytes:
    """A batch as the official files hold it: a Python 2 style dict with bytes keys."""
    rng = np.random.default_rng(seed)
    batch = {
        b"batch_label": b"batch %d" % seed,
        b"data": rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8),
        b"labels": [int(label) for label in rng.permutation(PER_BATCH) % 10],
        b"filenames": [b"img_%d.png" % k for k in range(PER_BATCH)],
    }
    return pickle.dumps(batch, protocol=2)


def official_members() -> dict[str, bytes]:
    members = {name: batch_bytes(seed) for seed, name in enumerate((*cifar.TRAIN_BATCHES, "test_batch"))}
    members["batches.meta"] = pickle.dumps({b"label_names": LABEL_NAMES, b"num_vis": 3072}, protocol=2)
    return members


def write_tar(path, members: dict[str, bytes], prefix="cifar-10-batches-py/", extra=()):
    with tarfile.open(path, "w:gz") as archive:
        for member in extra:
            archive.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
        for name, data in members.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_archive_loads_with_official_layout(tmp_path):
    members = official_members()
    write_tar(tmp_path / cifar.ARCHIVE_NAME, members)
    data = load_dataset("cifar10", data_dir=tmp_path, val_split=0, allow_download=False)
    assert data.x_train.shape == (5 * PER_BATCH, 32, 32, 3) and data.x_test.shape == (PER_BATCH, 32, 32, 3)
    assert data.class_names == [name.decode() for name in LABEL_NAMES]
    first = pickle.loads(members["data_batch_1"], encoding="bytes")
    pixels = data.display_images(data.x_train)
    # each row is 1024 red values, then 1024 green, then 1024 blue
    assert pixels[0, 0, 0].tolist() == [first[b"data"][0, 0], first[b"data"][0, 1024], first[b"data"][0, 2048]]
    assert pixels[0, 1, 2, 1] == first[b"data"][0, 1024 + 32 + 2]
    assert data.y_train[:PER_BATCH].tolist() == first[b"labels"]


@pytest.mark.parametrize("where", ["data_dir", "keras"])
def test_extracted_folder_loads(tmp_path, where):
    parent = tmp_path / "mine" if where == "data_dir" else tmp_path / "keras" / "datasets"
    folder = parent / cifar.FOLDER_NAME
    folder.mkdir(parents=True)
    for name, data in official_members().items():
        (folder / name).write_bytes(data)
    data = load_dataset("cifar10", data_dir=parent if where == "data_dir" else None, val_split=0, allow_download=False)
    assert len(data.x_train) == 5 * PER_BATCH and data.source == str(folder)


class Gadget:
    """Pickles as a call to os.system: what a malicious batch would hold."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.mark.parametrize("protocol", [2, 4])
def test_malicious_pickle_refused_and_never_runs(tmp_path, protocol):
    sentinel = tmp_path / "pwned"
    members = official_members()
    members["data_batch_1"] = pickle.dumps({b"data": Gadget(f"touch {sentinel}"), b"labels": []}, protocol=protocol)
    write_tar(tmp_path / cifar.ARCHIVE_NAME, members)
    with pytest.raises(ConvscopeError, match=r"data_batch_1: refused to load the pickled global '(posix|os|nt)\.system'"):
        load_dataset("cifar10", data_dir=tmp_path, allow_download=False)
    assert not sentinel.exists()


@pytest.mark.parametrize(
    "make_member, problem",
    [
        (lambda: tarfile.TarInfo("../escape"), "a '..' path component"),
        (lambda: tarfile.TarInfo("/etc/cron.d/job"), "an absolute path"),
        (lambda: _link("cifar-10-batches-py/link", tarfile.SYMTYPE), "a link"),
        (lambda: _link("cifar-10-batches-py/hard", tarfile.LNKTYPE), "a link"),
        (lambda: _link("cifar-10-batches-py/dev", tarfile.CHRTYPE), "a device"),
    ],
)
def test_unsafe_archive_members_refused_before_reading(tmp_path, make_member, problem):
    write_tar(tmp_path / cifar.ARCHIVE_NAME, official_members(), extra=[make_member()])
    with pytest.raises(ConvscopeError, match=f"has {problem}.*refused before reading anything"):
        load_dataset("cifar10", data_dir=tmp_path, allow_download=False)
    assert not (tmp_path.parent / "escape").exists()


def _link(name, kind):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = "/etc/passwd"
    return info


def test_oversized_member_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar, "MAX_MEMBER_BYTES", 1000)
    write_tar(tmp_path / cifar.ARCHIVE_NAME, official_members())
    with pytest.raises(ConvscopeError, match="declared size of .* bytes \\(limit 1000\\)"):
        load_dataset("cifar10", data_dir=tmp_path, allow_download=False)


BAD_BATCHES = {
    "not-a-pickle": ("test_batch", b"\x80\x02not a pickle", "test_batch: not a readable CIFAR batch"),
    "not-a-dict": ("test_batch", pickle.dumps([1, 2], protocol=2), "test_batch: holds a list; expected a dict batch"),
    "bad-shape": ("data_batch_3", pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}, protocol=2), "expected a uint8 array \\(N, 3072\\)"),
    "bad-label": ("data_batch_2", pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 12]}, protocol=2), "label 12 at index 1 is out of range"),
    "no-names": ("batches.meta", pickle.dumps({b"num_vis": 3072}, protocol=2), "'label_names' is missing"),
}


@pytest.mark.parametrize("name, data, message", BAD_BATCHES.values(), ids=BAD_BATCHES.keys())
def test_bad_batches_named(tmp_path, name, data, message):
    members = official_members()
    members[name] = data
    write_tar(tmp_path / cifar.ARCHIVE_NAME, members)
    with pytest.raises(ConvscopeError, match=message):
        load_dataset("cifar10", data_dir=tmp_path, allow_download=False)


def test_missing_member_and_garbage_archive(tmp_path):
    members = official_members()
    del members["data_batch_5"]
    write_tar(tmp_path / cifar.ARCHIVE_NAME, members)
    with pytest.raises(ConvscopeError, match="archive lacks data_batch_5"):
        load_dataset("cifar10", data_dir=tmp_path, allow_download=False)
    (tmp_path / cifar.ARCHIVE_NAME).write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(ConvscopeError, match="not a readable tar archive"):
        load_dataset("cifar10", data_dir=tmp_path, allow_download=False)
