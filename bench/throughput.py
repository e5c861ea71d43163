"""Training and inference images/s: `convscope train` vs a bare `model.fit` vs PyTorch eager.

    python bench/throughput.py                            # cnn_2conv and mnist_convnet, full MNIST, batch 128
    python bench/throughput.py --models mnist_convnet --epochs 2 --repeats 5
    python bench/throughput.py --limit-train 20000        # quicker, fixed costs weigh more
    python bench/throughput.py --inference-only --repeats 7   # inference alone, untrained models

Needs PyTorch for the third column (`pip install torch`, CPU wheel); without it
that column is skipped. For each model, side by side in one process, repeats
interleaved (the order of the three rotates each repeat) and medians reported:
  convscope  ``convscope.train.train`` with the same arrays (val_split 0, no
             validation), constant Adam 1e-3, --epochs epochs: images / seconds
             of its epoch loop (per-epoch shuffling, 8 batches per call into
             TensorFlow, NaN and Ctrl-C checks, checkpoints and history written
             after every epoch);
  keras      a fresh copy of the same Keras model, compiled alike, one
             ``model.fit(x, y, epochs=E, shuffle=True)`` call: images / seconds;
  torch      the same layers in PyTorch eager (NCHW), Adam 1e-3, cross-entropy,
             a seeded permutation per epoch, accuracy counted as Keras does.
Both timings include the first step's tracing or warm-up.

Inference, after training (or instead of it: --inference-only, untrained models; the
speed does not depend on the weights), on the 10,000 test images at batch
--predict-batch-size, repeats interleaved, medians:
  convscope  ``keras_compat.predict_outputs``, what evaluate, predict and export run
             (one traced while loop over the batches, ~32 MB of images per call);
  predict    a bare ``model.predict`` of the same model, for reference;
  torch      the torch model in eval mode under ``inference_mode``, softmax per batch,
             with all cores and with 1 thread; ratios are taken against the faster.
The first call of each is timed apart ("first call": convscope and predict trace their
function then; a `convscope evaluate` process pays that once) and is not in the medians.
After training, train()'s own test evaluation has already traced convscope's function:
first-call figures come from --inference-only.
Targets: convscope / keras >= 0.97; convscope training >= 1.0x torch (a guard: the
earlier 1.4x was retired, both use the same oneDNN kernels); convscope inference >= 1.0x torch.
The machine may be shared: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time

import numpy as np

import convscope  # noqa: F401  (sets the Keras backend before keras is imported)
import keras

from convscope.keras_compat import predict_outputs, seed_everything
from convscope.config import config_from_dict
from convscope.data import load_dataset
from convscope.models import create_model
from convscope.train import train
from paths import default_data_dir  # bench/paths.py, beside this script

OVERHEAD_TARGET = 0.97  # convscope train images/s over bare model.fit images/s
TORCH_TARGET = 1.0  # convscope training images/s over PyTorch eager images/s: a guard (1.4x was retired: the same oneDNN kernels)
INFERENCE_TARGET = 1.0  # convscope's inference images/s over PyTorch eager images/s
LEARNING_RATE = 1e-3


# --------------------------------------------------------------------------- the three ways to train


def time_convscope(name: str, data, epochs: int, batch_size: int, seed: int, out: str) -> tuple[float, keras.Model]:
    """Seconds of convscope's epoch loop (metrics last_session_seconds) and the trained model."""
    config = config_from_dict({
        "data": {"dataset": "mnist", "val_split": 0.0},
        "model": {"name": name},
        "train": {"epochs": epochs, "batch_size": batch_size, "learning_rate": LEARNING_RATE, "schedule": "constant", "seed": seed},
        "run": {"out": out, "name": f"{name}-{seed}-{time.time_ns()}"},
    })
    result = train(config, dataset=data)
    return result.metrics["last_session_seconds"], result.model


def time_keras(name: str, data, epochs: int, batch_size: int, seed: int) -> float:
    """Seconds of one bare model.fit call over ``epochs`` on a freshly compiled model."""
    seed_everything(seed)
    model = create_model(name, data.input_shape, data.num_classes)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    started = time.perf_counter()
    model.fit(data.x_train, data.y_train, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
    return time.perf_counter() - started


def create_torch_model(name: str):
    """The zoo architecture in PyTorch layers (NCHW; the flatten order differs, the arithmetic does not)."""
    from torch import nn

    if name == "cnn_2conv":
        return nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
            nn.Flatten(), nn.Linear(12 * 12 * 64, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10),
        )
    if name == "mnist_convnet":
        return nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.5), nn.Linear(5 * 5 * 64, 10),
        )
    raise SystemExit(f"no PyTorch version of {name}; choose cnn_2conv or mnist_convnet")


def time_torch(name: str, x_train, y_train, epochs: int, batch_size: int, seed: int):
    """Seconds of an eager PyTorch training loop over ``epochs``, and the trained model."""
    import torch

    torch.manual_seed(seed)
    model = create_torch_model(name)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_function = torch.nn.CrossEntropyLoss()
    model.train()
    started = time.perf_counter()
    for epoch in range(epochs):
        order = torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(len(y_train)))
        correct = torch.zeros((), dtype=torch.int64)
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            images, labels = x_train[index], y_train[index]
            optimizer.zero_grad(set_to_none=True)
            logits = model(images)
            loss = loss_function(logits, labels)
            loss.backward()
            optimizer.step()
            correct += (logits.detach().argmax(1) == labels).sum()
        if not torch.isfinite(loss):
            raise RuntimeError("torch loss diverged")
    return time.perf_counter() - started, model


# --------------------------------------------------------------------------- inference


def time_inference(keras_model: keras.Model, torch_model, x_test, torch_x_test, batch_size: int, repeats: int):
    """(seconds of each method's first call, seconds of each later call) over ``x_test``; methods interleaved, order rotating."""
    runs = {
        "convscope": lambda: predict_outputs(keras_model, x_test, batch_size),
        "predict": lambda: keras_model.predict(x_test, batch_size=batch_size, verbose=0),
    }
    if torch_model is not None:
        runs["torch"] = lambda: predict_torch(torch_model, torch_x_test, batch_size)
        runs["torch 1 thread"] = lambda: predict_torch(torch_model, torch_x_test, batch_size, threads=1)
    first, outputs = {}, {}
    for method, run in runs.items():  # convscope first: it pays any one-time set-up of the process
        started = time.perf_counter()
        outputs[method] = run()
        first[method] = time.perf_counter() - started
    difference = float(np.abs(outputs["convscope"] - outputs["predict"]).max())
    seconds = {method: [] for method in runs}
    for repeat in range(repeats):
        methods = list(runs)
        for method in methods[repeat % len(methods):] + methods[: repeat % len(methods)]:
            started = time.perf_counter()
            runs[method]()
            seconds[method].append(time.perf_counter() - started)
    return first, seconds, difference


def predict_torch(model, x_test, batch_size: int, threads: int | None = None):
    """Softmax outputs of ``model`` in eval mode under inference_mode; ``threads``: torch's thread count meanwhile."""
    import torch

    model.eval()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or previous)
    try:
        with torch.inference_mode():
            return torch.cat([torch.softmax(model(x_test[start : start + batch_size]), dim=1) for start in range(0, len(x_test), batch_size)])
    finally:
        torch.set_num_threads(previous)


def report_inference(name: str, first: dict, seconds: dict, difference: float, count: int, batch_size: int) -> str:
    rate = {method: count / statistics.median(values) for method, values in seconds.items()}
    line = (
        f"{name:14s} inference images/s (batch {batch_size}, {count:,} images, median of {len(seconds['convscope'])}): "
        + ", ".join(f"{method} {rate[method]:,.0f} (first call {first[method]:.2f} s)" for method in rate)
        + f"; convscope vs predict max |difference| {difference:.1e}"
    )
    if "torch" in rate:
        # against the faster torch: with all cores, OpenMP's waiting threads lose most on a shared machine
        torch_rate = max(rate["torch"], rate["torch 1 thread"])
        ratio = rate["convscope"] / torch_rate
        cold = (count / first["convscope"]) / torch_rate
        verdict = "met" if ratio >= INFERENCE_TARGET else "NOT met"
        line += (
            f"\n{'':14s} convscope/torch {ratio:.2f}x (target >= {INFERENCE_TARGET}: {verdict}; the faster torch); first call included "
            f"{cold:.2f}x; predict/torch {rate['predict'] / torch_rate:.2f}x; convscope/predict {rate['convscope'] / rate['predict']:.2f}x"
        )
    return line


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default=default_data_dir(), help="folder with the MNIST IDX files")
    parser.add_argument("--models", default="cnn_2conv,mnist_convnet", help="comma-separated zoo names")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per timed training run")
    parser.add_argument("--batch-size", type=int, default=128, help="training batch size")
    parser.add_argument("--predict-batch-size", type=int, default=256, help="inference batch size")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each; the median is reported")
    parser.add_argument("--limit-train", type=int, default=0, help="train on the first N images only (0: all 60,000)")
    parser.add_argument("--inference-only", action="store_true", help="no training: time inference of untrained models")
    args = parser.parse_args()

    try:
        import torch

        torch.set_num_threads(os.cpu_count())
    except ImportError:
        torch = None
        print("PyTorch is not installed: the torch column is skipped (pip install torch)")

    data = load_dataset("mnist", data_dir=args.data_dir, allow_download=False, val_split=0.0, limit_train=args.limit_train)
    # train() evaluates its test set after the timed loop: 1,000 images (every class; an empty set is refused)
    data = dataclasses.replace(data, x_test=data.x_test[:1000], y_test=data.y_test[:1000])
    x_test = load_dataset("mnist", data_dir=args.data_dir, allow_download=False, val_split=0.0).x_test
    images = len(data.y_train) * args.epochs
    if torch is not None:
        torch_x_train = torch.from_numpy(np.ascontiguousarray(data.x_train.transpose(0, 3, 1, 2)))
        torch_y_train = torch.from_numpy(data.y_train)
        torch_x_test = torch.from_numpy(np.ascontiguousarray(x_test.transpose(0, 3, 1, 2)))

    what = "inference only, untrained models" if args.inference_only else f"{len(data.y_train)} training images x {args.epochs} epochs, batch {args.batch_size}"
    print(
        f"{what}, {args.repeats} repeats interleaved; "
        f"{os.cpu_count()} cores, load average before {' '.join(f'{value:.1f}' for value in os.getloadavg())}; "
        f"keras {keras.__version__} ({keras.backend.backend()})" + (f", torch {torch.__version__}" if torch else "")
    )
    methods = ["convscope", "keras"] + (["torch"] if torch is not None else [])
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    train_seconds = {(name, method): [] for name in names for method in methods}
    trained = {}  # (name, "keras" or "torch") -> the last model trained, timed for inference after training
    with tempfile.TemporaryDirectory(prefix="convscope-bench-") as out:
        for repeat in range(0 if args.inference_only else args.repeats):
            for name in names:
                rotated = methods[repeat % len(methods):] + methods[: repeat % len(methods)]
                for method in rotated:
                    if method == "convscope":
                        seconds, trained[(name, "keras")] = time_convscope(name, data, args.epochs, args.batch_size, repeat, out)
                    elif method == "keras":
                        seconds = time_keras(name, data, args.epochs, args.batch_size, repeat)
                    else:
                        seconds, trained[(name, "torch")] = time_torch(name, torch_x_train, torch_y_train, args.epochs, args.batch_size, repeat)
                    train_seconds[(name, method)].append(seconds)
                    print(f"  repeat {repeat + 1} {name:14s} {method:9s} {images / seconds:7,.0f} images/s ({seconds:.1f} s)", flush=True)

    inference = {}
    for name in names:
        if args.inference_only:
            seed_everything(0)
            trained[(name, "keras")] = create_model(name, data.input_shape, data.num_classes)
            trained[(name, "torch")] = create_torch_model(name) if torch is not None else None
        inference[name] = time_inference(
            trained[(name, "keras")], trained.get((name, "torch")), x_test, torch_x_test if torch is not None else None,
            args.predict_batch_size, args.repeats,
        )

    print(f"\nMedians ({args.repeats} repeats), load average after {' '.join(f'{value:.1f}' for value in os.getloadavg())}:")
    for name in names:
        print(report_inference(name, *inference[name], len(x_test), args.predict_batch_size))
        if args.inference_only:
            continue
        rate = {method: images / statistics.median(train_seconds[(name, method)]) for method in methods}
        line = f"{name:14s} train images/s: " + ", ".join(f"{method} {rate[method]:,.0f}" for method in methods)
        line += f"; convscope/keras {rate['convscope'] / rate['keras']:.3f} (target >= {OVERHEAD_TARGET})"
        if "torch" in rate:
            line += f"; keras/torch {rate['keras'] / rate['torch']:.2f}x, convscope/torch {rate['convscope'] / rate['torch']:.2f}x (target >= {TORCH_TARGET}x)"
        print(line)


if __name__ == "__main__":
    main()
