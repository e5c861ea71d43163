"""Shared by every test module: the network guard, isolated data folders, small inputs and models.

convscope is imported before anything else imports Keras: its process settings
(the Keras backend, TensorFlow's oneDNN kernels) take effect only when it is
imported before TensorFlow, as in the `convscope` command; tests that compare an
in-process run with a `python -m convscope` run need both alike.

What a test receives whole is a fixture (`small_data`, `isolated_locations`);
what it calls with arguments is a plain function, imported by name:

    from conftest import never_called_sequential, random_images

No test reaches the network: `no_network` (autouse, whole session) fails any
test that opens a connection to anything but this machine, before a packet
leaves it. Subprocesses a test starts are not covered; they get an isolated
cache through `isolated_env`.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
from pathlib import Path

import convscope  # noqa: F401  (first: see above)
import numpy as np
import pytest

from convscope.config import Config, save_config
from convscope.data import download, load_dataset
from convscope.runfolder import RunFolder

# ---------------------------------------------------------------- no network

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
# The functions the guard lets through to; test_network_guard.py swaps them for a tripwire.
REAL = {
    "connect": socket.socket.connect,
    "connect_ex": socket.socket.connect_ex,
    "create_connection": socket.create_connection,
    "getaddrinfo": socket.getaddrinfo,
}


def is_loopback(host) -> bool:
    """True for 127.0.0.0/8, ::1 (also IPv4-mapped) and the usual names of this machine; False for any other name."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).split("%")[0]  # an IPv6 scope id: fe80::1%eth0
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # any other name: looking it up would already be a DNS query
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def is_address(host) -> bool:
    """True for a numeric IP address (looking it up sends nothing; connecting to it is guarded)."""
    try:
        ipaddress.ip_address(host.decode() if isinstance(host, bytes) else host)
    except ValueError:
        return False
    return True


def refuse(target) -> None:
    pytest.fail(
        f"tests must not reach the network: the guard in tests/conftest.py refused {target!r} "
        "(only loopback addresses and AF_UNIX sockets are allowed)"
    )


def leaves_this_machine(sock: socket.socket, address) -> bool:
    return sock.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address[0])


def guarded_connect(sock, address):
    if leaves_this_machine(sock, address):
        refuse(address)
    return REAL["connect"](sock, address)


def guarded_connect_ex(sock, address):
    if leaves_this_machine(sock, address):
        refuse(address)
    return REAL["connect_ex"](sock, address)


def guarded_create_connection(address, *args, **kwargs):
    if not is_loopback(address[0]):  # before the name is looked up
        refuse(address)
    return REAL["create_connection"](address, *args, **kwargs)


def guarded_getaddrinfo(host, *args, **kwargs):
    if host is not None and not is_loopback(host) and not is_address(host):
        refuse(host)  # a name lookup can be a DNS query
    return REAL["getaddrinfo"](host, *args, **kwargs)


@pytest.fixture(scope="session", autouse=True)
def no_network():
    """Fail any test that connects beyond this machine. Session-wide, so module fixtures are covered too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", guarded_connect)
        patch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
        patch.setattr(socket, "create_connection", guarded_create_connection)
        patch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
        yield


# ---------------------------------------------------------------- isolated data folders


def isolated_env(folder: Path) -> dict[str, str]:
    """The environment that gives convscope its own empty cache and Keras folder under ``folder``."""
    return {"CONVSCOPE_CACHE": str(folder / "cache"), "KERAS_HOME": str(folder / "keras")}


@pytest.fixture
def isolated_locations(tmp_path, monkeypatch):
    """Own empty cache and Keras folder, no $CONVSCOPE_DATA, and a test that would download fails."""
    for key, value in isolated_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CONVSCOPE_DATA", raising=False)
    monkeypatch.setattr(download, "urlopen", lambda *args, **kwargs: pytest.fail("tests must not touch the network"))


# ---------------------------------------------------------------- data


@pytest.fixture(scope="session")
def small_data():
    """The bundled MNIST sample cut to 384 training images (6 batches of 64); 600 validation, 1,000 test."""
    return load_dataset("mnist-sample", limit_train=384, val_split=0.1)


def random_images(count: int, shape: tuple, seed: int = 0) -> np.ndarray:
    """``count`` float32 images of ``shape``, uniform in [0, 1)."""
    return np.random.default_rng(seed).random((count, *shape), dtype=np.float32)


# ---------------------------------------------------------------- models


def never_called_sequential():
    """A notebook model: no Input, never called, ending in a softmax Dense."""
    import keras  # here, not at the top: test modules without Keras stay quick to collect

    layers = keras.layers
    return keras.Sequential(
        [
            layers.Conv2D(4, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(6, 3, padding="same"),
            layers.Activation("relu"),
            layers.Flatten(),
            layers.Dense(5, activation="softmax"),
        ]
    )


def make_run(folder, dataset, model, **data_fields):
    """A run folder as train leaves it (config, data.json, model.keras), without training."""
    run = RunFolder(folder)
    config = Config()
    config.data.dataset = dataset.name
    for key, value in data_fields.items():
        setattr(config.data, key, value)
    save_config(config, run.config_path)
    run.write_data_description(dataset)
    run.save_model(model)
    return run


def fit_notebook_model(image_shape: tuple, num_classes: int, filters: int, epochs: int):
    """80 random images; a small CNN trained with plain ``model.fit`` on the first 48, as a notebook would.

    Returns (x, y, model, history).
    """
    import keras

    rng = np.random.default_rng(0)
    x = rng.random((80, *image_shape)).astype("float32")
    y = rng.integers(0, num_classes, 80)
    model = keras.Sequential([
        keras.layers.Conv2D(filters, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x[:48], y[:48], epochs=epochs, batch_size=16, validation_split=0.25, verbose=0)
    return x, y, model, history


# ---------------------------------------------------------------- a real browser (the report and viewer tests)

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium() -> str | None:
    for candidate in (os.environ.get("CONVSCOPE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and (shutil.which(candidate) or Path(candidate).is_file()):
            return shutil.which(candidate) or candidate
    return None


CHROMIUM = find_chromium()
NO_CHROMIUM = "no Chromium binary found (install Debian's chromium or set CONVSCOPE_CHROMIUM)"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A headless Chromium context driven by playwright (tests using it skip without Chromium)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install playwright)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as playwright:
        # A persistent context is how Playwright passes --user-data-dir; Chromium's own profile stays out of $HOME.
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS[1:],
        )
        yield context
        context.close()


def save_screenshot(page, tmp_path: Path, name: str, full_page: bool = True) -> Path:
    """A screenshot in tmp_path, copied to $CONVSCOPE_SCREENSHOT_DIR when set (to look at it after the run)."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 0
    if os.environ.get("CONVSCOPE_SCREENSHOT_DIR"):
        folder = Path(os.environ["CONVSCOPE_SCREENSHOT_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / path.name)
    return path
