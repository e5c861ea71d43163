"""How long ``convscope inspect`` takes: every number and every figure for 2 images of cnn_2conv.

    python bench/inspect_speed.py                         # MNIST test images 0 and 42, untrained cnn_2conv
    python bench/inspect_speed.py --repeats 7 --data-dir /path/to/mnist

Times ``inspect(...)`` (one forward and one backward pass for all activations,
Grad-CAM and saliency) plus ``save_inspection_figures(...)`` (every PNG), as the
CLI runs them after loading the model. The first call builds the probe model and
the backend's gradient function and warms matplotlib's font caches; it is
reported on its own line and left out of the median. Both wall and process CPU
time are printed: CPU time shows the work when other jobs share the cores.
The target is a median under 3 s on 2 CPU cores. Untrained weights take as long
as trained ones; they only change what the figures show.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import convscope  # noqa: F401  (sets the Keras backend before keras is imported)
from convscope.data import load_dataset
from convscope.inspection import inspect
from convscope.models import create_model
from convscope.plots.inspection import save_inspection_figures
from paths import default_data_dir  # bench/paths.py, beside this script

TARGET_SECONDS = 3.0  # 2 images, all layers, numbers and figures, 2 CPU cores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default=default_data_dir(), help="folder with the MNIST IDX files")
    parser.add_argument("--images", default="0,42", help="test-image indices to inspect")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs after the warm-up; the median is reported")
    args = parser.parse_args()

    data = load_dataset("mnist", data_dir=args.data_dir, allow_download=False)
    indices = [int(index) for index in args.images.split(",")]
    images, shown = data.x_test[indices], data.display_images(data.x_test[indices])
    model = create_model("cnn_2conv", data.input_shape, data.num_classes)
    print(f"cnn_2conv (untrained), images {indices}, {os.cpu_count()} CPU cores")

    wall_times, cpu_times = [], []
    with tempfile.TemporaryDirectory() as out_dir:
        for run in range(args.repeats + 1):
            wall, cpu = time.perf_counter(), time.process_time()
            result = inspect(model, images, display_images=shown)
            numbers_seconds = time.perf_counter() - wall
            paths = save_inspection_figures(result, out_dir, class_names=data.class_names)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if run == 0:
                print(f"warm-up   {wall:5.2f} s wall, {cpu:5.2f} s CPU  (first call: builds the probe model, loads fonts)")
                continue
            wall_times.append(wall)
            cpu_times.append(cpu)
            print(f"run {run}     {wall:5.2f} s wall, {cpu:5.2f} s CPU  (inspect {numbers_seconds:.2f} s, {len(paths)} figures)")

    median_wall, median_cpu = statistics.median(wall_times), statistics.median(cpu_times)
    print(f"median    {median_wall:5.2f} s wall, {median_cpu:5.2f} s CPU over {args.repeats} runs after the warm-up")
    verdict = "within" if median_wall <= TARGET_SECONDS else "OVER"
    print(f"{verdict} the {TARGET_SECONDS:.0f} s target (wall) by {abs(TARGET_SECONDS - median_wall):.2f} s")


if __name__ == "__main__":
    main()
