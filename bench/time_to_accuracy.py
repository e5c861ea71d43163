"""Time to accuracy on full MNIST: `--preset fast` against the lessons' recipes, several seeds each.

    python bench/time_to_accuracy.py                       # fast + the three lesson recipes, seeds 0, 1, 2
    python bench/time_to_accuracy.py --recipes fast --seeds 5
    python bench/time_to_accuracy.py --lesson-seeds 1     # the lessons' long recipes on seed 0 only
    python bench/time_to_accuracy.py --data-dir /path/to/mnist

Each run is ``convscope.train.train`` on a config resolved exactly as
``convscope train --dataset mnist --preset fast --seed S`` resolves it (the
lessons' recipes are written out as their flags below). Runs are interleaved
(seed 0 of every recipe, then seed 1, ...), one process, so a busy machine
slows all recipes alike. Reported per recipe: training seconds (the epoch loop:
fitting, validation, checkpoints; not the data loading or the final test
evaluation) and test accuracy of the kept model, mean and min over seeds.
Targets for fast: mean test accuracy >= 99.0%, no seed below 98.9%, median
training time <= 15 s on 2 CPU cores. The test set is only scored here: the
fast recipe's epochs and schedule were chosen on validation runs (see PRESETS
in src/convscope/config.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import convscope  # noqa: F401  (sets the Keras backend before keras is imported)

from convscope.config import resolve_config
from convscope.train import train
from paths import default_data_dir  # bench/paths.py, beside this script

# The lessons' fit calls as convscope settings: Adam at Keras' default 1e-3, constant
# rate, batch 128, the last 10% of the training images held out for validation.
LESSON = {"batch_size": 128, "learning_rate": 1e-3, "schedule": "constant", "optimizer": "adam"}
RECIPES = {
    "fast": {"train": {"preset": "fast"}},
    # keras.io "Simple MNIST convnet": 15 epochs, validation_split 0.1
    "mnist_convnet": {"model": {"name": "mnist_convnet"}, "data": {"val_split": 0.1}, "train": {**LESSON, "epochs": 15}},
    # the MNIST lesson's two conv/pool stages with a Dense 64 head: 10 epochs
    "cnn_pool_dense64": {"model": {"name": "cnn_pool_dense64"}, "data": {"val_split": 0.1}, "train": {**LESSON, "epochs": 10}},
    # Keras' mnist_cnn.py: 12 epochs (its Adadelta replaced by Adam, which convscope offers)
    "cnn_2conv": {"model": {"name": "cnn_2conv"}, "data": {"val_split": 0.1}, "train": {**LESSON, "epochs": 12}},
}
TARGET_MEAN, TARGET_MIN, TARGET_SECONDS = 0.990, 0.989, 15.0


def run_recipe(recipe: str, seed: int, data_dir: str, out: str) -> dict:
    """Train one recipe with one seed; return its training seconds and test accuracy."""
    overrides = {section: dict(values) for section, values in RECIPES[recipe].items()}
    overrides.setdefault("data", {}).update(dataset="mnist", data_dir=data_dir, allow_download=False)
    overrides.setdefault("train", {})["seed"] = seed
    overrides["run"] = {"out": out, "name": f"{recipe}-seed{seed}"}
    config = resolve_config(overrides=overrides)
    started = time.perf_counter()
    result = train(config)
    return {
        "train_seconds": result.metrics["last_session_seconds"],
        "call_seconds": time.perf_counter() - started,
        "test_accuracy": result.metrics["test_accuracy"],
        "model": config.model.name,
        "epochs": result.metrics["epochs_run"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default=default_data_dir(), help="folder with the MNIST IDX files")
    parser.add_argument("--recipes", default=",".join(RECIPES), help=f"comma-separated, from {', '.join(RECIPES)}")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 of each recipe")
    parser.add_argument("--lesson-seeds", type=int, default=0, help="seeds 0..N-1 of the lessons' recipes (0: as --seeds)")
    args = parser.parse_args()
    recipes = [name.strip() for name in args.recipes.split(",") if name.strip()]
    unknown = [name for name in recipes if name not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe {', '.join(unknown)}; choose from {', '.join(RECIPES)}")

    print(f"{os.cpu_count()} cores, load average before {' '.join(f'{value:.1f}' for value in os.getloadavg())}")
    results: dict[str, list[dict]] = {name: [] for name in recipes}
    with tempfile.TemporaryDirectory(prefix="convscope-bench-") as out:
        for seed in range(args.seeds):
            for name in recipes:
                if name != "fast" and args.lesson_seeds and seed >= args.lesson_seeds:
                    continue
                result = run_recipe(name, seed, args.data_dir, out)
                results[name].append(result)
                print(
                    f"  {name:16s} seed {seed}: {result['model']}, {result['epochs']} epochs, training {result['train_seconds']:.1f} s "
                    f"(train() call {result['call_seconds']:.1f} s), test accuracy {result['test_accuracy']:.4f}",
                    flush=True,
                )

    print(f"\nOver the seeds run, load average after {' '.join(f'{value:.1f}' for value in os.getloadavg())}:")
    print(f"{'recipe':16s} {'model':16s} {'train s mean':>12s} {'median':>7s} {'min':>6s} {'test acc mean':>13s} {'min':>7s}")
    for name, runs in results.items():
        seconds = [run["train_seconds"] for run in runs]
        accuracies = [run["test_accuracy"] for run in runs]
        print(
            f"{name:16s} {runs[0]['model']:16s} {statistics.mean(seconds):12.1f} {statistics.median(seconds):7.1f} {min(seconds):6.1f} "
            f"{statistics.mean(accuracies):13.4f} {min(accuracies):7.4f}"
        )
    for name, runs in results.items():
        if name != "fast" and "fast" in results:
            ratios = [results["fast"][seed]["train_seconds"] / run["train_seconds"] for seed, run in enumerate(runs)]
            print(f"fast / {name} training time, same seeds side by side: {', '.join(f'{ratio:.3f}' for ratio in ratios)}")
    if "fast" in results:
        seconds = statistics.median(run["train_seconds"] for run in results["fast"])
        accuracies = [run["test_accuracy"] for run in results["fast"]]
        checks = [
            (f"mean test accuracy {statistics.mean(accuracies):.4f} >= {TARGET_MEAN}", statistics.mean(accuracies) >= TARGET_MEAN),
            (f"min test accuracy {min(accuracies):.4f} >= {TARGET_MIN}", min(accuracies) >= TARGET_MIN),
            (f"median training {seconds:.1f} s <= {TARGET_SECONDS:.0f} s", seconds <= TARGET_SECONDS),
        ]
        print("fast targets: " + "; ".join(f"{text}: {'met' if ok else 'NOT met'}" for text, ok in checks))


if __name__ == "__main__":
    main()
