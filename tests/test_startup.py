"""The listing commands start without TensorFlow: `convscope --help`, `models`, `datasets`, `lessons`.

Each runs as `python -m convscope ...` in a fresh process (the console script
calls the same ``convscope.cli.main``); when it exits, the process reports which
of its imported modules belong to TensorFlow or Keras. Importing either takes
seconds (bench/startup.py measures it), the listings a fraction of one.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Runs `python -m convscope ARGS` and, as it exits, writes the heavy modules it imported as JSON on stderr's last
# line (in a finally: the command's quick exit skips atexit handlers registered before it).
RUN_AS_MAIN = """
import json, runpy, sys
sys.argv = ["convscope", *sys.argv[1:]]
try:
    runpy.run_module("convscope", run_name="__main__", alter_sys=True)
finally:
    print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in ("tensorflow", "keras"))), file=sys.stderr)
    sys.stderr.flush()
"""


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["--help"], "usage: convscope"),
        (["models"], "mnist_fast                 109,066"),
        (["datasets"], "mnist-sample"),
        (["lessons"], "ex12-cifar-elu"),
    ],
    ids=["help", "models", "datasets", "lessons"],
)
def test_listing_commands_do_not_import_tensorflow_or_keras(command, expected):
    done = subprocess.run([sys.executable, "-c", RUN_AS_MAIN, *command], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout
    assert json.loads(done.stderr.strip().splitlines()[-1]) == []


def test_the_check_sees_tensorflow_when_a_command_imports_it():
    done = subprocess.run([sys.executable, "-c", "import keras\n" + RUN_AS_MAIN, "lessons"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    heavy = json.loads(done.stderr.strip().splitlines()[-1])
    assert "keras" in heavy and "tensorflow" in heavy
