"""How big and how slow report.html is for a finished run, and which figures weigh the most.

    convscope run --dataset mnist --data-dir /path/to/mnist --model cnn_2conv --epochs 1 --name full
    python bench/report_size.py runs/full
    python bench/report_size.py runs/full --top 10

Builds the report as `convscope report RUN` does and prints its size, the build
time (the first build includes importing Keras and loading model.keras) and the
largest inlined figures. The limit is 8 MB for a cnn_2conv run on full MNIST;
every figure is a PNG at 100 dpi, and figures over ``MAX_FIGURE_BYTES`` are
reduced to 256 colours before they are inlined.
"""

from __future__ import annotations

import argparse
import time

import convscope  # noqa: F401  (sets the Keras backend before keras is imported)
from convscope.html.render import MAX_FIGURE_BYTES, inline_png
from convscope.html.report import build_run_report
from convscope.runfolder import open_run

LIMIT_BYTES = 8_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run folder written by `convscope run`")
    parser.add_argument("--top", type=int, default=5, help="how many of the largest figures to list")
    args = parser.parse_args()

    run = open_run(args.run)
    timings = []
    for _ in range(2):
        started = time.perf_counter()
        path = build_run_report(run)
        timings.append(time.perf_counter() - started)
    size = path.stat().st_size
    print(f"{path}: {size / 1e6:.2f} MB ({100 * size / LIMIT_BYTES:.0f}% of the 8 MB limit)")
    print(f"build: {timings[0]:.2f} s first (imports Keras, loads the model), {timings[1]:.2f} s again")

    figures = sorted(run.plots_dir.glob("*.png"), key=lambda figure: figure.stat().st_size, reverse=True)
    print(f"{len(figures)} figures, {sum(figure.stat().st_size for figure in figures) / 1e6:.2f} MB of PNG on disk; largest:")
    for figure in figures[: args.top]:
        inlined = len(inline_png(figure).uri)
        reduced = " (reduced)" if figure.stat().st_size > MAX_FIGURE_BYTES else ""
        print(f"  {figure.name:32s} {figure.stat().st_size / 1e3:8.1f} KB on disk, {inlined / 1e3:8.1f} KB inlined{reduced}")


if __name__ == "__main__":
    main()
