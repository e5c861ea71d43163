"""Process settings made by `import convscope`, and the batches the training loop feeds to fit()."""

import os
import subprocess
import sys
import types

import numpy as np
import pytest

from convscope import startup
from convscope.keras_compat import ArrayBatches, batches


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key not in ("TF_ENABLE_ONEDNN_OPTS", "KERAS_BACKEND")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**environment, **env}, timeout=120)


def test_import_turns_on_onednn_and_tensorflow_starts_silently():
    result = run_python(
        "import convscope, keras, tensorflow as tf, os\n"
        "tf.constant([1.0]) * 2\n"
        "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], keras.backend.backend())"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "tensorflow"]
    assert result.stderr == ""


def test_a_users_own_setting_wins():
    result = run_python("import convscope, os; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])", TF_ENABLE_ONEDNN_OPTS="0")
    assert result.stdout.strip() == "0"


def test_quiet_loader_drops_only_the_banner_lines(capfd):
    class NoisyLoader:
        def create_module(self, spec):
            return None

        def exec_module(self, module):
            os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on. You may see ...\n")
            os.write(2, b"a real problem\n")
            module.loaded = True

    module = types.ModuleType("noisy")
    startup.QuietLoader(NoisyLoader()).exec_module(module)
    assert module.loaded
    assert capfd.readouterr().err == "a real problem\n"


def test_quiet_loader_keeps_the_lines_when_loading_fails(capfd):
    class BrokenLoader:
        def exec_module(self, module):
            os.write(2, b"missing libcudart.so\n")
            raise ImportError("broken")

    with pytest.raises(ImportError):
        startup.QuietLoader(BrokenLoader()).exec_module(types.ModuleType("broken"))
    assert capfd.readouterr().err == "missing libcudart.so\n"


@pytest.mark.parametrize("make", [batches, ArrayBatches], ids=["backend", "array-batches"])
def test_batches_keep_the_order_and_the_last_partial_batch(make):
    x = np.arange(10 * 2, dtype="float32").reshape(10, 2)
    y = np.arange(10, dtype="int32")
    made = make(x, y, 4)
    got = list(made) if make is batches else [made[index] for index in range(len(made))]
    assert [len(labels) for _, labels in got] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([np.asarray(images) for images, _ in got]), x)
    np.testing.assert_array_equal(np.concatenate([np.asarray(labels) for _, labels in got]), y)
