"""The learning-rate finder on full MNIST: its suggestion, then 2 epochs at it beside 2 epochs at the default rate.

    python bench/lr_find.py                                   # mnist_convnet and mnist_fast, seed 0
    python bench/lr_find.py --models mnist_fast --seeds 3 --out /tmp/lr-find-bench
    python bench/lr_find.py --data-dir /path/to/mnist
    python bench/lr_find.py --minimum                         # a third run at fastai's minimum rule (a tenth of the lowest loss's rate)

For each model: ``convscope lr-find`` (``pipeline.find_learning_rate_run``) on the
model's recipe, then two training runs of that recipe that differ only in the
learning rate (the suggestion against the recipe's own), interleaved, same seed,
one process, so a busy machine slows both alike. The recipes:
mnist_convnet with convscope's defaults (one-cycle, peak 5e-3, batch 128, 10%
stratified validation); mnist_fast with ``--preset fast`` (one-cycle, peak 1e-2,
batch 125, no validation). Both trained for 2 epochs; the suggestion replaces
one-cycle's peak. The test set is scored once per run; nothing is chosen on it.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import convscope  # noqa: F401  (sets the Keras backend before keras is imported)

from convscope.config import resolve_config
from convscope.pipeline import find_learning_rate_run
from convscope.train import train
from paths import default_data_dir  # bench/paths.py, beside this script

RECIPES = {
    "mnist_convnet": {"model": {"name": "mnist_convnet"}},
    "mnist_fast": {"train": {"preset": "fast"}},
}
EPOCHS = 2


def recipe_config(model: str, seed: int, data_dir: str, out: str, name: str, learning_rate=None):
    overrides = {section: dict(values) for section, values in RECIPES[model].items()}
    overrides.setdefault("data", {}).update(dataset="mnist", data_dir=data_dir, allow_download=False)
    overrides.setdefault("train", {}).update(seed=seed, epochs=EPOCHS)
    if learning_rate is not None:
        overrides["train"]["learning_rate"] = learning_rate
    overrides["run"] = {"out": out, "name": name}
    return resolve_config(overrides=overrides)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default=default_data_dir(), help="folder with the MNIST IDX files")
    parser.add_argument("--models", default=",".join(RECIPES), help=f"comma-separated, from {', '.join(RECIPES)}")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1")
    parser.add_argument("--out", help="keep the run folders here (default: a temporary folder)")
    parser.add_argument("--minimum", action="store_true", help="also train at a tenth of the minimum's rate")
    args = parser.parse_args()
    models = [name.strip() for name in args.models.split(",") if name.strip()]
    print(f"{os.cpu_count()} cores, load average before {' '.join(f'{value:.1f}' for value in os.getloadavg())}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="convscope-bench-") as scratch:
        out = args.out or scratch
        for seed in range(args.seeds):
            for model in models:
                run, sweep = find_learning_rate_run(recipe_config(model, seed, args.data_dir, out, f"{model}-seed{seed}-lr-find"))
                points = sweep.points
                print(f"  {model} seed {seed}: {sweep.summary()} ({run.path})", flush=True)
                default = recipe_config(model, seed, args.data_dir, out, f"{model}-seed{seed}-default")
                trained = {}
                runs = [
                    ("default", default),
                    ("found", recipe_config(model, seed, args.data_dir, out, f"{model}-seed{seed}-found", learning_rate=sweep.suggestion)),
                ]
                if args.minimum:
                    tenth = points["minimum"].learning_rate / 10
                    runs.append(("minimum", recipe_config(model, seed, args.data_dir, out, f"{model}-seed{seed}-minimum", learning_rate=tenth)))
                for label, config in runs:
                    result = train(config)
                    trained[label] = result.metrics
                    print(
                        f"    {label:7s} peak {config.train.learning_rate:.3g}: test accuracy {result.metrics['test_accuracy']:.4f}, "
                        f"training {result.metrics['last_session_seconds']:.1f} s",
                        flush=True,
                    )
                rows.append((model, seed, default.train.learning_rate, sweep, trained))

    print(f"\nLoad average after {' '.join(f'{value:.1f}' for value in os.getloadavg())}\n")
    extra = " test acc at minimum/10 |" if args.minimum else ""
    print("| model | seed | finder: batches, seconds | valley (suggested) | minimum | steepest | default peak | test acc at default | test acc at suggested |" + extra)
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if args.minimum else ""))
    for model, seed, default_rate, sweep, trained in rows:
        points = sweep.points
        print(
            f"| {model} | {seed} | {len(sweep.losses)} ({sweep.stop_reason}), {sweep.seconds:.1f} s | {points['valley'].learning_rate:.2e} | "
            f"{points['minimum'].learning_rate:.2e} | {points['steep'].learning_rate:.2e} | {default_rate:g} | "
            f"{trained['default']['test_accuracy']:.4f} | {trained['found']['test_accuracy']:.4f} |"
            + (f" {trained['minimum']['test_accuracy']:.4f} |" if args.minimum else "")
        )


if __name__ == "__main__":
    main()
