"""Utilisation and zoo throughput: each zoo model's training GFLOP/s over float32 matmul GFLOP/s; before/after two trees.

    python bench/utilisation.py                                     # every zoo model, one process
    python bench/utilisation.py --models mnist_fast,mnist_convnet --images 20000 --repeats 3
    python bench/utilisation.py --before-src ../base-c233f2d/src --repeats 3   # the same, two source trees side by side

One process (the default): for each zoo model in turn (``--repeats`` rounds,
medians reported), TensorFlow's float32 matmul speed is measured, then the model
is trained by ``convscope.train.train`` (what ``convscope train`` runs: its epoch
loop, ``model.fit`` with 8 batches per call, checkpoints and history after each
epoch), then the matmul again:
  matmul      a 2048x2048 @ 2048x2048 float32 product in a ``tf.function``
              (2 * 2048^3 FLOP), 2 warm-up calls, then 7 timed before and 7 after
              the model's training; the median of the 14;
  training    ``--epochs`` epochs of ``--images`` images each (batch
              ``--batch-size``, Adam, one-cycle, no validation; one test image
              per class, predicted after the epochs). Timed: epochs 2 onwards,
              from the end of epoch 1 to the end of the last, each end being
              train()'s "Epoch N/E" line on the ``convscope.results`` logger,
              logged once the epoch's checkpoint and history are written. So
              images/s covers everything the loop does per epoch; the first
              epoch, which traces the step, is reported on its own (history.csv's
              ``seconds``: its ``model.fit`` call). Also per CPU second (process
              time, all threads, same span): what other jobs on a shared machine
              disturb least. Models whose input is 28x28x1 train on real MNIST
              (the first ``--images`` training images); others (the 32x32x3
              CIFAR ones; no CIFAR files here) on uniform random pixels of their
              input shape with random labels: the same arithmetic, so the same
              speed, but their accuracy means nothing;
  FLOP        forward FLOP per image = 2 x the multiply-adds of
              ``convscope.models.summarize`` (Conv2D H_out*W_out*C_out*k*k*C_in,
              Dense inputs*units; pooling, batch norm, activations, dropout
              counted as 0). Training FLOP per image = 3 x forward (the forward
              product plus two backward products per layer, for the input's and
              the weights' gradients; the first layer needs no input gradient, so
              3x slightly overstates it). Training GFLOP/s = that x images/s.
Utilisation = training GFLOP/s / matmul GFLOP/s, per wall second (the target's
measure; target: mnist_fast >= 0.4), and per CPU second (both clocks count
only the time this process ran, so it is blind to cores left idle).

Before/after (``--before-src PATH``): two worker processes, one with
PYTHONPATH=PATH (the "before" tree's src) and one with this script's tree's src
(or ``--after-src``), each running the measurement above, which lives in this
script and calls only ``convscope.train.train``, ``config_from_dict``,
``load_dataset``, ``list_models`` and ``summarize``. Each model is measured in
the two workers one after the other, the order alternating, ``--repeats``
rounds; medians of each and of the per-round ratios (after / before, wall and
CPU) are reported. A tree compared with itself shows the comparison's noise
floor. Run folders go to a temporary folder and are removed after each
measurement.

The machine may be shared: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from paths import default_data_dir  # bench/paths.py, beside this script

UTILISATION_TARGET = 0.4  # mnist_fast's training GFLOP/s over the same process's matmul GFLOP/s
TARGET_MODEL = "mnist_fast"
MATMUL_SIZE = 2048  # n of the n x n @ n x n float32 product
MATMUL_WARMUP = 2  # untimed calls: the first traces the tf.function
MATMUL_RUNS = 7  # timed calls before and again after each model's training
TRAINING_FLOP_FACTOR = 3  # forward + the input's and the weights' gradients, each one product per layer
LEARNING_RATE = 1e-3  # constant across models; speed does not depend on it, and no zoo model diverges at it
MNIST_SHAPE = (28, 28, 1)
THIS_SRC = Path(__file__).resolve().parents[1] / "src"


# --------------------------------------------------------------------------- what is measured (in each tree)


class Measurer:
    """Measures matmul and model training speed with whichever convscope is importable (PYTHONPATH)."""

    def __init__(self, data_dir: str, images: int, epochs: int, batch_size: int, out: str):
        import convscope  # noqa: F401  # lazy: a before/after run's parent imports neither tree; sets the Keras backend first
        import tensorflow as tf  # lazy: as above

        tf.get_logger().setLevel("ERROR")  # not the retracing warning of predicting the 10 test images after each run
        self.tf, self.out = tf, out
        self.data_dir, self.images, self.epochs, self.batch_size = data_dir, images, epochs, batch_size
        self.datasets = {}  # input shape -> (Dataset, what its pixels are)
        self.product = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
        generator = tf.random.Generator.from_seed(0)
        self.matrices = [generator.normal((MATMUL_SIZE, MATMUL_SIZE), dtype=tf.float32) for _ in range(2)]
        for _ in range(MATMUL_WARMUP):
            self.product(*self.matrices).numpy()

    def describe(self) -> dict:
        import convscope  # lazy: see __init__
        import keras  # lazy: see __init__
        from convscope.models import list_models  # lazy: see __init__

        models = {info.name: list(info.input_shape) for info in list_models()}
        return {"convscope": convscope.__file__, "keras": keras.__version__, "tensorflow": self.tf.__version__, "models": models}

    def matmul_seconds(self) -> list[tuple[float, float]]:
        """(wall, CPU) seconds of each of MATMUL_RUNS timed products."""
        seconds = []
        for _ in range(MATMUL_RUNS):
            clock = (time.perf_counter(), time.process_time())
            self.product(*self.matrices).numpy()
            seconds.append((time.perf_counter() - clock[0], time.process_time() - clock[1]))
        return seconds

    def dataset(self, input_shape: tuple[int, ...]):
        """Real MNIST for 28x28x1, else random pixels of ``input_shape``; (Dataset, a note), loaded once per shape."""
        if input_shape not in self.datasets:
            from convscope.data import load_dataset  # lazy: see __init__

            mnist = load_dataset("mnist", data_dir=self.data_dir, allow_download=False, val_split=0.0, limit_train=self.images)
            # One test image per class: train() predicts the test set after the timed epochs, and every class needs one.
            first = [int(np.flatnonzero(mnist.y_test == label)[0]) for label in range(mnist.num_classes)]
            mnist = dataclasses.replace(mnist, x_test=mnist.x_test[first], y_test=mnist.y_test[first])
            if input_shape == MNIST_SHAPE:
                self.datasets[input_shape] = (mnist, "MNIST")
            else:
                rng = np.random.default_rng(0)
                x_train = rng.random((len(mnist.y_train), *input_shape), dtype=np.float32)
                y_train = rng.integers(0, mnist.num_classes, len(mnist.y_train)).astype(mnist.y_train.dtype)
                x_test = rng.random((len(first), *input_shape), dtype=np.float32)
                random = dataclasses.replace(mnist, x_train=x_train, y_train=y_train, x_test=x_test)
                self.datasets[input_shape] = (random, "random")
        return self.datasets[input_shape]

    def measure(self, name: str, input_shape: tuple[int, ...], seed: int) -> dict:
        """Train ``name`` once between two matmul timings; return the figures as plain JSON-ready data."""
        from convscope.config import config_from_dict  # lazy: see __init__
        from convscope.models import summarize  # lazy: see __init__
        from convscope.train import train  # lazy: see __init__

        data, pixels = self.dataset(tuple(input_shape))
        config = config_from_dict({
            "data": {"dataset": "mnist", "val_split": 0.0},
            "model": {"name": name},
            "train": {"epochs": self.epochs, "batch_size": self.batch_size, "learning_rate": LEARNING_RATE, "schedule": "onecycle", "seed": seed},
            "run": {"out": self.out, "name": f"{name}-{seed}-{time.time_ns()}"},
        })
        matmul = self.matmul_seconds()
        with EpochClock() as clock:
            result = train(config, dataset=data)
        matmul += self.matmul_seconds()
        shutil.rmtree(result.run.path, ignore_errors=True)  # checkpoints of the larger models add up over many runs
        if len(clock.marks) != self.epochs:
            raise RuntimeError(f"{len(clock.marks)} 'Epoch' lines on the convscope.results logger, expected {self.epochs}: cannot time epochs 2 onwards")
        (wall_start, cpu_start), (wall_end, cpu_end) = clock.marks[0], clock.marks[-1]
        fit_seconds = sum(result.history["seconds"][1:])
        if wall_end - wall_start < fit_seconds:  # the lines must bracket the epochs they time
            raise RuntimeError(f"the 'Epoch' lines span {wall_end - wall_start:.2f} s, less than epochs 2-{self.epochs}' fit calls ({fit_seconds:.2f} s)")
        timed_images = len(data.y_train) * (self.epochs - 1)
        summary = summarize(result.model)
        flop = 2 * MATMUL_SIZE**3
        return {
            "model": name,
            "pixels": pixels,
            "params": summary.total_params,
            "forward_flop": 2 * summary.macs,
            "uncounted": sorted({layer.layer_type for layer in summary.layers if layer.macs is None}),
            "first_epoch_seconds": float(result.history["seconds"][0]),
            "images_per_second": timed_images / (wall_end - wall_start),
            "images_per_cpu_second": timed_images / (cpu_end - cpu_start),
            "matmul_gflops": flop / statistics.median(wall for wall, _ in matmul) / 1e9,
            "matmul_cpu_gflops": flop / statistics.median(cpu for _, cpu in matmul) / 1e9,
        }


class EpochClock(logging.Handler):
    """Wall and CPU clocks at each "Epoch N/E" line train() logs, after that epoch's files are written."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.logger = logging.getLogger("convscope.results")
        self.marks: list[tuple[float, float]] = []  # (perf_counter, process_time) per epoch

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Epoch "):
            self.marks.append((time.perf_counter(), time.process_time()))

    def __enter__(self):
        self.level, self.propagate = self.logger.level, self.logger.propagate
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False  # the epoch lines are not printed
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level)
        self.logger.propagate = self.propagate


def training_gflops(row: dict) -> float:
    """Training GFLOP per wall second: 3 x forward FLOP per image x images/s."""
    return TRAINING_FLOP_FACTOR * row["forward_flop"] * row["images_per_second"] / 1e9


def utilisation(row: dict) -> float:
    """Training GFLOP/s over matmul GFLOP/s, both per wall second: the target's measure."""
    return training_gflops(row) / row["matmul_gflops"]


def cpu_utilisation(row: dict) -> float:
    """The same per CPU second (all threads): what a shared machine disturbs least."""
    return TRAINING_FLOP_FACTOR * row["forward_flop"] * row["images_per_cpu_second"] / 1e9 / row["matmul_cpu_gflops"]


# --------------------------------------------------------------------------- worker processes (before/after)


def serve(measurer: Measurer) -> None:
    """A worker: READY with its facts, then one RESULT (or ERROR) line per request line {"model", "input_shape", "seed"}."""
    print("READY " + json.dumps(measurer.describe()), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = "RESULT " + json.dumps(measurer.measure(request["model"], tuple(request["input_shape"]), request["seed"]))
        except Exception as error:  # reported by the parent against the model; the worker goes on
            reply = "ERROR " + f"{type(error).__name__}: {error}".replace("\n", " ")
        print(reply, flush=True)


class Worker:
    """A child process measuring with one source tree's convscope."""

    def __init__(self, label: str, src: Path, args: argparse.Namespace, out: str):
        self.label, self.src = label, src
        command = [
            sys.executable, __file__, "--worker", "--data-dir", args.data_dir, "--images", str(args.images),
            "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--out", out,
        ]
        environment = {**os.environ, "PYTHONPATH": str(src), "TF_CPP_MIN_LOG_LEVEL": "3"}
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environment)

    def reply(self) -> tuple[str, str]:
        """The next protocol line's (kind, text); other output is passed on, indented."""
        for line in self.process.stdout:
            kind, _, text = line.rstrip("\n").partition(" ")
            if kind in ("READY", "RESULT", "ERROR"):
                return kind, text
            print(f"    [{self.label}] {line.rstrip()}", flush=True)
        raise SystemExit(f"the {self.label} worker ({self.src}) exited with code {self.process.wait()}; its errors are above")

    def ready(self) -> dict:
        kind, text = self.reply()
        facts = json.loads(text)
        if Path(facts["convscope"]).resolve().parent.parent != self.src.resolve():
            raise SystemExit(f"the {self.label} worker imported {facts['convscope']}, not the tree {self.src}; check PYTHONPATH and the editable install")
        return facts

    def measure(self, name: str, input_shape: list[int], seed: int) -> dict | str:
        self.process.stdin.write(json.dumps({"model": name, "input_shape": input_shape, "seed": seed}) + "\n")
        self.process.stdin.flush()
        kind, text = self.reply()
        return json.loads(text) if kind == "RESULT" else text

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


# --------------------------------------------------------------------------- printing


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def median_row(rows: list[dict]) -> dict:
    """One row with the medians of ``rows`` (one model's repeats): speeds, clocks and both utilisations."""
    keys = ("images_per_second", "images_per_cpu_second", "first_epoch_seconds", "matmul_gflops", "matmul_cpu_gflops")
    medians = {key: statistics.median(row[key] for row in rows) for key in keys}
    return {
        **rows[0],
        **medians,
        "utilisation": statistics.median(utilisation(row) for row in rows),
        "cpu_utilisation": statistics.median(cpu_utilisation(row) for row in rows),
    }


def print_utilisation_table(rows: list[dict]) -> None:
    print(
        f"{'model':24s} {'data':6s} {'params':>10s} {'fwd MFLOP':>9s} {'train img/s':>11s} {'img/CPU-s':>9s} {'1st epoch':>9s} "
        f"{'train GFLOP/s':>13s} {'matmul GFLOP/s':>14s} {'utilisation':>11s} {'per CPU-s':>9s}"
    )
    for row in rows:
        print(
            f"{row['model']:24s} {row['pixels']:6s} {row['params']:10,d} {row['forward_flop'] / 1e6:9.2f} {row['images_per_second']:11,.0f} "
            f"{row['images_per_cpu_second']:9,.0f} {row['first_epoch_seconds']:8.1f}s {training_gflops(row):13.1f} {row['matmul_gflops']:14.0f} "
            f"{row['utilisation']:11.3f} {row['cpu_utilisation']:9.3f}"
            + (f"  (not counted: {', '.join(row['uncounted'])})" if row["uncounted"] else "")
        )
    print("(utilisation: the median of each run's ratio to the matmul timed around it, so not the ratio of the medians shown)")
    for row in rows:
        if row["model"] == TARGET_MODEL:
            verdict = "met" if row["utilisation"] >= UTILISATION_TARGET else "NOT met"
            print(f"\n{TARGET_MODEL}: utilisation {row['utilisation']:.3f} (target >= {UTILISATION_TARGET}): {verdict}; per CPU second {row['cpu_utilisation']:.3f}")
    if os.getloadavg()[0] > os.cpu_count():
        print(
            f"Load average {load_average()} on {os.cpu_count()} cores: other jobs took CPU time from the matmul and the training "
            "at different moments, so the wall-clock utilisations are disturbed; the per-CPU-second ones much less"
        )


def print_comparison(names: list[str], results: dict, labels: tuple[str, str]) -> None:
    """Per model: median images/s (wall and per CPU second) of each tree, and the median of the per-round ratios."""
    before, after = labels
    print(
        f"{'model':24s} {before + ' img/s':>12s} {after + ' img/s':>11s} {'ratio':>6s} {'per round':>16s}   "
        f"{before + ' img/CPU-s':>16s} {after + ' img/CPU-s':>15s} {'ratio':>6s} {'per round':>16s}   {'util ' + before:>11s} {'util ' + after:>10s}"
    )
    ratios = {"images_per_second": [], "images_per_cpu_second": []}
    for name in names:
        pairs = [(b, a) for b, a in zip(results[(name, before)], results[(name, after)]) if isinstance(b, dict) and isinstance(a, dict)]
        if not pairs:
            print(f"{name:24s} no measurement in both trees: {before} {results[(name, before)][:1]}, {after} {results[(name, after)][:1]}")
            continue
        row_before, row_after = median_row([b for b, _ in pairs]), median_row([a for _, a in pairs])
        line = f"{name:24s}"
        for key, widths in (("images_per_second", (12, 11)), ("images_per_cpu_second", (16, 15))):
            per_round = [a[key] / b[key] for b, a in pairs]
            ratios[key].append(statistics.median(per_round))
            line += (
                f" {row_before[key]:{widths[0]},.0f} {row_after[key]:{widths[1]},.0f} {ratios[key][-1]:6.3f} "
                f"{' '.join(f'{value:.2f}' for value in per_round):>16s}  "
            )
        line += f" {row_before['utilisation']:11.3f} {row_after['utilisation']:10.3f}"
        if row_before["forward_flop"] != row_after["forward_flop"]:
            line += f"  (model changed: {row_before['forward_flop'] / 1e6:.2f} -> {row_after['forward_flop'] / 1e6:.2f} MFLOP)"
        print(line)
    for key, what in (("images_per_second", "images/s"), ("images_per_cpu_second", "images per CPU second")):
        if ratios[key]:
            values = ratios[key]
            geometric = float(np.exp(np.mean(np.log(values))))
            print(
                f"{after}/{before} {what} over {len(values)} models: geometric mean {geometric:.3f}, "
                f"median {statistics.median(values):.3f}, range {min(values):.3f}-{max(values):.3f}"
            )


# --------------------------------------------------------------------------- main


def run_one_process(args: argparse.Namespace, names: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="convscope-bench-") as out:
        measurer = Measurer(args.data_dir, args.images, args.epochs, args.batch_size, out)
        facts = measurer.describe()
        names = names or list(facts["models"])
        unknown = [name for name in names if name not in facts["models"]]
        if unknown:
            raise SystemExit(f"unknown model(s) {', '.join(unknown)}; `convscope models` lists them")
        print(f"keras {facts['keras']}, tensorflow {facts['tensorflow']}; convscope from {Path(facts['convscope']).parent}")
        rows = {name: [] for name in names}
        for repeat in range(args.repeats):
            for name in names:
                row = measurer.measure(name, tuple(facts["models"][name]), repeat)
                rows[name].append(row)
                print(
                    f"  repeat {repeat + 1} {name:24s} {row['images_per_second']:7,.0f} images/s (first epoch {row['first_epoch_seconds']:.1f} s), "
                    f"{row['images_per_cpu_second']:,.0f} per CPU second, matmul {row['matmul_gflops']:.0f} GFLOP/s, utilisation {utilisation(row):.3f}",
                    flush=True,
                )
    print(f"\nMedians of {args.repeats} repeat(s), load average after {load_average()}:")
    print_utilisation_table([median_row(rows[name]) for name in names])


def run_before_after(args: argparse.Namespace, names: list[str]) -> None:
    labels = ("before", "after")
    sources = {"before": Path(args.before_src), "after": Path(args.after_src)}
    for label, src in sources.items():
        if not (src / "convscope" / "__init__.py").is_file():
            raise SystemExit(f"--{label}-src {src}: no convscope/__init__.py there; pass a tree's src folder, e.g. ../base-c233f2d/src")
    with tempfile.TemporaryDirectory(prefix="convscope-bench-") as out:
        workers = {label: Worker(label, sources[label], args, out) for label in labels}
        try:
            facts = {label: worker.ready() for label, worker in workers.items()}
            for label in labels:
                print(f"{label}: convscope from {Path(facts[label]['convscope']).parent} (keras {facts[label]['keras']}, tensorflow {facts[label]['tensorflow']})")
            common = [name for name in facts["after"]["models"] if name in facts["before"]["models"]]
            only = {label: sorted(set(facts[label]["models"]) - set(common)) for label in labels}
            for label in labels:
                if only[label]:
                    print(f"only in {label} (not compared): {', '.join(only[label])}")
            names = [name for name in names if name in common] if names else common
            results = {(name, label): [] for name in names for label in labels}
            for repeat in range(args.repeats):
                for index, name in enumerate(names):
                    order = labels if (repeat + index) % 2 == 0 else labels[::-1]
                    for label in order:
                        row = workers[label].measure(name, facts[label]["models"][name], repeat)
                        results[(name, label)].append(row)
                        shown = f"{row['images_per_second']:7,.0f} images/s, {row['images_per_cpu_second']:7,.0f} per CPU second (first epoch {row['first_epoch_seconds']:.1f} s)" if isinstance(row, dict) else f"failed: {row}"
                        print(f"  round {repeat + 1} {name:24s} {label:6s} {shown}", flush=True)
        finally:
            for worker in workers.values():
                worker.close()
    print(f"\nMedians of {args.repeats} round(s), load average after {load_average()}:")
    print_comparison(names, results, labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default=default_data_dir(), help="folder with the MNIST IDX files")
    parser.add_argument("--models", default="", help="comma-separated zoo names (default: every zoo model)")
    parser.add_argument("--images", type=int, default=10000, help="training images per epoch (a multiple of 8 x --batch-size avoids a retraced last call)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per training run; the first (tracing) is reported apart, the rest timed")
    parser.add_argument("--batch-size", type=int, default=125, help="training batch size (the fast preset's)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds over the models; medians reported")
    parser.add_argument("--before-src", help="compare: the src folder of the 'before' tree (e.g. ../base-c233f2d/src)")
    parser.add_argument("--after-src", default=str(THIS_SRC), help="compare: the src folder of the 'after' tree")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch traces the step and is not timed")
    if args.worker:
        serve(Measurer(args.data_dir, args.images, args.epochs, args.batch_size, args.out))
        return
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    mode = f"before/after, {args.repeats} round(s)" if args.before_src else f"one process, {args.repeats} repeat(s)"
    print(
        f"{args.images} images x {args.epochs} epochs per run (epoch 1 untimed), batch {args.batch_size}, {mode}; "
        f"{os.cpu_count()} cores, load average before {load_average()}",
        flush=True,
    )
    started = time.perf_counter()
    if args.before_src:
        run_before_after(args, names)
    else:
        run_one_process(args, names)
    print(f"({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
