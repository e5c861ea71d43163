"""How fast the listing commands start, beside `python -c "import keras"`.

    python bench/startup.py                      # 5 rounds
    python bench/startup.py --repeats 9
    python bench/startup.py --console-script     # the `convscope` script beside the interpreter, not `python -m convscope`

Each round runs, as fresh processes one after another, `python -c pass` (the
interpreter alone), `python -c "import keras"` (the reference: what a command
that imports Keras, and so TensorFlow, pays before doing anything) and
`python -m convscope --help | models | datasets | lessons`, each as a user types
it; the order is the same every round, so a change in the machine's load hits
every command alike. Printed per command: the median wall time over the rounds,
its ratio to the median of `import keras`, and the target, ratio <= 0.2.
Both convscope and Keras come from this interpreter; src/ beside this script goes
first on PYTHONPATH. The machine may be shared: the load average is printed
before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src"
TARGET_RATIO = 0.2  # issue 19: each listing command <= 0.2x the time of `python -c "import keras"`
COMMANDS = ("--help", "models", "datasets", "lessons")


def timed(command: list[str]) -> float:
    """Wall seconds of a fresh process; a failure stops the bench with its stderr."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SOURCE), os.environ.get("PYTHONPATH")]))}
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True, env=environment)
    seconds = time.perf_counter() - started
    if finished.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{finished.stderr}")
    return seconds


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="rounds; the median of each command is reported")
    parser.add_argument("--console-script", action="store_true", help="run the `convscope` script beside this interpreter instead of `python -m convscope`")
    args = parser.parse_args()

    if args.console_script:
        script = Path(sys.executable).with_name("convscope")
        if not script.is_file():
            sys.exit(f"no console script at {script}; install convscope into this environment (pip install -e .) or leave out --console-script")
        convscope, prefix = [str(script)], "convscope"
    else:
        convscope, prefix = [sys.executable, "-m", "convscope"], "python -m convscope"
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        'python -c "import keras"': [sys.executable, "-c", "import keras"],
        **{f"{prefix} {name}": [*convscope, name] for name in COMMANDS},
    }
    print(f"{sys.executable}, {os.cpu_count()} CPU cores; load average before: {load_average()}")
    seconds: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(args.repeats):
        for label, command in commands.items():
            seconds[label].append(timed(command))
    print(f"load average after: {load_average()}; medians of {args.repeats} rounds\n")

    keras = statistics.median(seconds['python -c "import keras"'])
    width = max(map(len, commands)) + 2
    print(f"{'command':{width}}{'median':>8}{'min':>8}{'/ keras':>9}  target")
    for label in commands:
        median = statistics.median(seconds[label])
        line = f"{label:{width}}{median:7.2f}s{min(seconds[label]):7.2f}s{median / keras:9.3f}"
        if label.split()[-1] in COMMANDS:
            line += f"  <= {TARGET_RATIO}: {'met' if median / keras <= TARGET_RATIO else 'NOT met'}"
        print(line)


if __name__ == "__main__":
    main()
