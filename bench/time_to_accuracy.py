"""Time to accuracy on full MNIST: `--preset fast` and `--preset best` against the lesson's plain-Keras fit.

    python bench/time_to_accuracy.py                          # fast x5 seeds, best x3, the lesson x3
    python bench/time_to_accuracy.py --recipes fast,lesson --seeds 5
    python bench/time_to_accuracy.py --recipes best,lesson --seeds 3 --lesson-seeds 1
    python bench/time_to_accuracy.py --data-dir /path/to/mnist

Recipes, one process, runs interleaved (seed 0 of every recipe, then seed 1, ...),
so a busy machine slows all of them alike:
  fast, best  ``convscope.train.train`` on the config that
              ``convscope train --dataset mnist --preset P --seed S`` resolves;
              its training time is the epoch loop (``last_session_seconds``:
              tracing, fitting, checkpoints; not the data loading or the final
              test evaluation);
  lesson      the neural-networks lesson's Keras cell, the reference: its
              model (mnist_convnet_dropout02, the lesson's layer list),
              ``compile(optimizer="adam", ...)`` and
              ``model.fit(x, y, batch_size=200, epochs=10, validation_split=0.1)``
              on the same /255 images; its training time is that fit call.
Reported per recipe: training seconds and test accuracy (mean, min over
seeds), and the ratio of each preset's training time to the lesson's fit time
measured beside it (same seed index). Targets: fast mean >= 99.0% over 5 seeds,
none below 98.85%, time <= 0.05x the lesson's; best mean >= 99.4% over 3 seeds,
time <= 1.0x the lesson's. The presets were chosen on validation runs (see
PRESETS in src/convscope/config.py and bench/README.md); the test set is only
scored here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import convscope  # noqa: F401  (sets the Keras backend before keras is imported)
import keras

from convscope.config import resolve_config
from convscope.data import load_dataset
from convscope.keras_compat import seed_everything
from convscope.models import create_model
from convscope.train import train
from paths import default_data_dir  # bench/paths.py, beside this script

PRESET_RECIPES = ("fast", "best")
RECIPES = (*PRESET_RECIPES, "lesson")
TARGETS = {  # recipe: (mean test accuracy, min test accuracy or None, time over the lesson's fit time)
    "fast": (0.990, 0.9885, 0.05),
    "best": (0.994, None, 1.0),
}


def run_preset(preset: str, seed: int, data_dir: str, out: str) -> dict:
    """Train one preset with one seed; return its training seconds and test accuracy."""
    config = resolve_config(overrides={
        "data": {"dataset": "mnist", "data_dir": data_dir, "allow_download": False},
        "train": {"preset": preset, "seed": seed},
        "run": {"out": out, "name": f"{preset}-seed{seed}"},
    })
    result = train(config)
    return {"seconds": result.metrics["last_session_seconds"], "test_accuracy": result.metrics["test_accuracy"],
            "detail": f"{config.model.name}, {result.metrics['epochs_run']} epoch(s)"}


def run_lesson(seed: int, data) -> dict:
    """The lesson's own cell: a plain Keras fit, timed around the call."""
    seed_everything(seed)
    model = create_model("mnist_convnet_dropout02", data.input_shape, data.num_classes)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    started = time.perf_counter()
    model.fit(data.x_train, data.y_train, batch_size=200, epochs=10, validation_split=0.1, verbose=0)
    seconds = time.perf_counter() - started
    _, accuracy = model.evaluate(data.x_test, data.y_test, batch_size=200, verbose=0)
    return {"seconds": seconds, "test_accuracy": float(accuracy), "detail": "mnist_convnet_dropout02, 10 epochs, plain model.fit"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default=default_data_dir(), help="folder with the MNIST IDX files")
    parser.add_argument("--recipes", default=",".join(RECIPES), help=f"comma-separated, from {', '.join(RECIPES)}")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 of fast")
    parser.add_argument("--best-seeds", type=int, default=3, help="seeds 0..N-1 of best")
    parser.add_argument("--lesson-seeds", type=int, default=3, help="seeds 0..N-1 of the lesson's fit")
    args = parser.parse_args()
    recipes = [name.strip() for name in args.recipes.split(",") if name.strip()]
    unknown = [name for name in recipes if name not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
    seeds = {"fast": args.seeds, "best": args.best_seeds, "lesson": args.lesson_seeds}

    print(f"{os.cpu_count()} cores, load average before {' '.join(f'{value:.1f}' for value in os.getloadavg())}")
    lesson_data = load_dataset("mnist", data_dir=args.data_dir, allow_download=False, val_split=0.0) if "lesson" in recipes else None
    results: dict[str, list[dict]] = {name: [] for name in recipes}
    with tempfile.TemporaryDirectory(prefix="convscope-bench-") as out:
        for seed in range(max(seeds[name] for name in recipes)):
            for name in recipes:
                if seed >= seeds[name]:
                    continue
                result = run_lesson(seed, lesson_data) if name == "lesson" else run_preset(name, seed, args.data_dir, out)
                results[name].append(result)
                print(f"  {name:6s} seed {seed}: {result['detail']}, training {result['seconds']:.1f} s, "
                      f"test accuracy {result['test_accuracy']:.4f}", flush=True)

    print(f"\nload average after {' '.join(f'{value:.1f}' for value in os.getloadavg())}")
    print(f"{'recipe':8s} {'runs':>4s} {'train s mean':>12s} {'median':>7s} {'test acc mean':>13s} {'min':>7s}")
    for name, runs in results.items():
        seconds = [run["seconds"] for run in runs]
        accuracies = [run["test_accuracy"] for run in runs]
        print(f"{name:8s} {len(runs):4d} {statistics.mean(seconds):12.1f} {statistics.median(seconds):7.1f} "
              f"{statistics.mean(accuracies):13.4f} {min(accuracies):7.4f}")
    lesson_seconds = statistics.median(run["seconds"] for run in results["lesson"]) if results.get("lesson") else None
    for name in (name for name in recipes if name in TARGETS):
        runs = results[name]
        accuracies = [run["test_accuracy"] for run in runs]
        mean_target, min_target, time_target = TARGETS[name]
        checks = [(f"mean test accuracy {statistics.mean(accuracies):.4f} >= {mean_target} over {len(runs)} seeds",
                   statistics.mean(accuracies) >= mean_target)]
        if min_target is not None:
            checks.append((f"min {min(accuracies):.4f} >= {min_target}", min(accuracies) >= min_target))
        if lesson_seconds is not None:
            pairs = zip(runs, results["lesson"])
            print(f"{name} / lesson training time, same seed side by side: "
                  + ", ".join(f"{run['seconds'] / lesson['seconds']:.3f}" for run, lesson in pairs))
            ratio = statistics.median(run["seconds"] for run in runs) / lesson_seconds
            checks.append((f"median time {ratio:.3f}x the lesson's median fit ({lesson_seconds:.1f} s) <= {time_target}", ratio <= time_target))
        print(f"{name} targets: " + "; ".join(f"{text}: {'met' if ok else 'NOT met'}" for text, ok in checks))


if __name__ == "__main__":
    main()
