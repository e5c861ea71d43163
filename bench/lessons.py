"""The lessons' MNIST runs, repeated by their presets: printed test accuracy beside convscope's.

    python bench/lessons.py                                    # every MNIST lesson preset, seed 0
    python bench/lessons.py --presets blog-mnist-cnn,nn-lesson-mlp
    python bench/lessons.py --data-dir /path/to/mnist --seed 1

Each run is ``convscope.train.train`` on the config that
``convscope train --preset P --data-dir DIR --seed S`` resolves (the two
scikit-learn presets: ``convscope baseline --preset P ...``, through
``pipeline.train_baseline``),
one after another in one process, each into a temporary run folder. Reported
per preset: the test accuracy the lesson printed, convscope's test accuracy of
the weights the preset keeps (the lesson's), the epoch those weights come from,
and the wall time of the whole train() call (data, epochs, checkpoints, test
prediction). A line is printed as each run ends, then the table in Markdown for
bench/README.md. The CIFAR-10 presets are not run here: their data is not in
../shared/data (tests/test_lessons.py trains them on a small generated file).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import convscope  # noqa: F401  (sets the Keras backend before keras is imported)

from convscope.baseline import baseline_config
from convscope.config import is_baseline_name, resolve_config
from convscope.lessons import LESSON_RUNS
from convscope.pipeline import train_baseline
from convscope.train import train
from paths import default_data_dir  # bench/paths.py, beside this script

MNIST_PRESETS = [run.preset for run in LESSON_RUNS if run.settings["data"]["dataset"] == "mnist"]


def run_preset(preset: str, seed: int, data_dir: str, out: str) -> dict:
    """Train one lesson preset; return convscope's test accuracy, the kept epoch and the wall time."""
    config = resolve_config(overrides={
        "data": {"data_dir": data_dir, "allow_download": False},
        "train": {"preset": preset, "seed": seed},
        "run": {"out": out, "name": f"{preset}-seed{seed}"},
    })
    started = time.perf_counter()
    result = train_baseline(baseline_config(config)) if is_baseline_name(config.model.name) else train(config)
    return {
        "wall_seconds": time.perf_counter() - started,
        "test_accuracy": result.metrics["test_accuracy"],
        "kept_epoch": result.metrics.get("kept_epoch", result.metrics.get("best_epoch") or result.metrics.get("epochs_run")),
        "epochs": result.metrics["epochs_run"],
        "model": config.model.name,
    }


def format_markdown(rows: list[tuple]) -> str:
    lines = [
        "| preset | model | lesson's test accuracy | convscope's (seed 0) | kept epoch | wall time |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for run, measured in rows:
        lines.append(
            f"| {run.preset} | {run.model} | {run.printed_test_accuracy:.2%} | {measured['test_accuracy']:.2%} | "
            f"{measured['kept_epoch']} of {measured['epochs']} | {measured['wall_seconds'] / 60:.1f} min |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default=default_data_dir(), help="folder with the four MNIST IDX files")
    parser.add_argument("--presets", default=",".join(MNIST_PRESETS), help="comma-separated MNIST lesson presets")
    parser.add_argument("--seed", type=int, default=0, help="training seed (weights, shuffling, dropout)")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.presets.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in MNIST_PRESETS]
    if unknown:
        sys.exit(f"unknown preset(s) {', '.join(unknown)}; expected some of {', '.join(MNIST_PRESETS)}")
    runs = {run.preset: run for run in LESSON_RUNS}
    print(f"load average before: {' '.join(f'{value:.2f}' for value in os.getloadavg())} on {os.cpu_count()} cores", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="convscope-lessons-") as out:
        for preset in chosen:
            measured = run_preset(preset, args.seed, args.data_dir, out)
            run = runs[preset]
            rows.append((run, measured))
            print(
                f"{preset}: lesson {run.printed_test_accuracy:.2%}, convscope {measured['test_accuracy']:.2%} "
                f"(kept epoch {measured['kept_epoch']} of {measured['epochs']}), {measured['wall_seconds']:.0f} s",
                flush=True,
            )
    print(f"load average after: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    print()
    print(format_markdown(rows))


if __name__ == "__main__":
    main()
