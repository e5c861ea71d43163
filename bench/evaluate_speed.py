"""How long evaluation takes on top of the model's own predict: numbers and every figure.

    python bench/evaluate_speed.py                       # untrained cnn_2conv, MNIST test set (10,000 images)
    python bench/evaluate_speed.py --epochs 1            # train one epoch first (figures then look realistic)
    python bench/evaluate_speed.py --data-dir /path/to/mnist --repeats 5

Times, side by side in one process (median of --repeats runs each):
  predict   a bare ``model.predict`` on the test set;
  evaluate  what ``convscope evaluate RUN`` does after loading: ``evaluate(model, ...)``
            (which predicts once), ``display_images`` and ``save_evaluation_figures``;
  and the numbers and figures alone (from the predicted probabilities), wall and CPU time.
The target is evaluate <= predict + 10 s on 2 CPU cores. Untrained weights predict
as fast as trained ones; they only change what the figures show.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

import convscope  # noqa: F401  (sets the Keras backend before keras is imported)
from convscope.data import load_dataset
from convscope.evaluate import evaluate, evaluate_predictions
from convscope.models import create_model
from convscope.plots.evaluation import save_evaluation_figures
from paths import default_data_dir  # bench/paths.py, beside this script

TARGET_SECONDS = 10.0  # evaluation may add at most this to a bare predict (10,000 MNIST images, 2 cores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default=default_data_dir(), help="folder with the MNIST IDX files")
    parser.add_argument("--epochs", type=int, default=0, help="epochs to train first; 0 times untrained weights")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement; the median is reported")
    parser.add_argument("--batch-size", type=int, default=256, help="predict batch size (evaluate's default)")
    args = parser.parse_args()

    data = load_dataset("mnist", data_dir=args.data_dir, allow_download=False)
    model = create_model("cnn_2conv", data.input_shape, data.num_classes)
    history = None  # without training there are no curves to draw: 11 figures instead of 12
    if args.epochs:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        fit = model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val), epochs=args.epochs, batch_size=128, verbose=2)
        history = {"epoch": np.arange(1, args.epochs + 1), **{key: np.array(values) for key, values in fit.history.items()}}
    weights = f"trained {args.epochs} epoch(s)" if args.epochs else "untrained weights"
    print(f"cnn_2conv ({weights}), {len(data.x_test)} test images, {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}")
    model.predict(data.x_test[:512], batch_size=args.batch_size, verbose=0)  # build the predict function once

    predict_times, evaluate_times, after_times, after_cpu_times, figure_counts = [], [], [], [], []
    with tempfile.TemporaryDirectory() as out_dir:

        def draw_figures(result):
            return save_evaluation_figures(
                result,
                data.display_images(data.x_test),
                out_dir,
                history=history,
                train_labels=data.y_train,
                val_labels=data.y_val,
                train_images=data.display_images(data.x_train[:64]),
            )

        for _ in range(args.repeats):
            started = time.perf_counter()
            model.predict(data.x_test, batch_size=args.batch_size, verbose=0)
            predict_times.append(time.perf_counter() - started)

            started = time.perf_counter()
            result = evaluate(model, data.x_test, data.y_test, class_names=data.class_names, batch_size=args.batch_size)
            paths = draw_figures(result)
            evaluate_times.append(time.perf_counter() - started)
            figure_counts.append(len(paths))

            # The part evaluation adds, alone: its wall time moves with other processes on the
            # cores, its CPU time (single-threaded matplotlib) much less.
            started, started_cpu = time.perf_counter(), time.process_time()
            draw_figures(evaluate_predictions(result.probabilities, data.y_test, class_names=data.class_names))
            after_times.append(time.perf_counter() - started)
            after_cpu_times.append(time.process_time() - started_cpu)

    predict_seconds, evaluate_seconds = statistics.median(predict_times), statistics.median(evaluate_times)
    overhead = evaluate_seconds - predict_seconds
    print(f"predict   median {predict_seconds:6.2f} s   runs {_list(predict_times)}")
    print(f"evaluate  median {evaluate_seconds:6.2f} s   runs {_list(evaluate_times)}  (predict + numbers + {figure_counts[0]} figures)")
    print(f"numbers + figures alone: median {statistics.median(after_times):.2f} s wall, {statistics.median(after_cpu_times):.2f} s CPU")
    print(f"load average at the end {os.getloadavg()[0]:.1f} (other processes on these cores slow every timing)")
    verdict = "within" if overhead <= TARGET_SECONDS else "OVER"
    print(f"evaluate - predict = {overhead:.2f} s: {verdict} the {TARGET_SECONDS:.0f} s target by {abs(TARGET_SECONDS - overhead):.2f} s")


def _list(times: list[float]) -> str:
    return ", ".join(f"{seconds:.2f}" for seconds in times)


if __name__ == "__main__":
    main()
