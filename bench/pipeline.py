"""Wall time per stage and peak memory of `convscope run` on full MNIST.

    python bench/pipeline.py                               # --preset fast, full MNIST
    python bench/pipeline.py --preset none --epochs 2      # the default recipe, shortened
    python bench/pipeline.py --data-dir /path/to/mnist --skip-cli

Two child processes, one after the other:
  stages  the library calls ``convscope.pipeline.run`` makes, timed one by one:
          import (convscope + Keras), load (``load_dataset``), train (build,
          fit, checkpoints, test evaluation), evaluate (metrics, predictions,
          figures), inspect (activations, Grad-CAM, figures), report (HTML);
          with the peak RSS reached by the end of each stage (VmHWM);
  cli     the command itself, ``python -m convscope run ...`` with the same
          flags: its wall time and peak RSS (``ru_maxrss`` of the child).
Target: peak RSS of a full-MNIST run <= 2.5 GB. The machine may be shared: the
load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from paths import default_data_dir  # bench/paths.py, beside this script

PEAK_RSS_TARGET_GB = 2.5


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (VmHWM), in MB."""
    with open("/proc/self/status", encoding="ascii") as handle:
        line = next(line for line in handle if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def run_flags(args) -> list[str]:
    """The `convscope run` flags both children use."""
    flags = ["--dataset", "mnist", "--data-dir", args.data_dir, "--no-download"]
    if args.preset != "none":
        flags += ["--preset", args.preset]
    if args.epochs:
        flags += ["--epochs", str(args.epochs)]
    return flags


def stages_child(flags: list[str], out: str) -> None:
    """Run the pipeline's stages one by one; print {stage: [seconds, peak MB]} as one JSON line."""
    timings = {}
    started = time.perf_counter()
    import convscope  # noqa: F401
    import keras  # noqa: F401

    from convscope.cli import build_config, build_parser
    from convscope.data import load_dataset
    from convscope.pipeline import evaluate_run, inspect_run, report_run
    from convscope.train import train

    timings["import"] = [time.perf_counter() - started, peak_rss_mb()]
    args = build_parser().parse_args(["run", *flags, "--out", out, "--name", "stages"])
    config = build_config(args)

    def timed(stage, call):
        stage_started = time.perf_counter()
        value = call()
        timings[stage] = [time.perf_counter() - stage_started, peak_rss_mb()]
        return value

    dataset = timed("load", lambda: load_dataset(config.data, seed=config.train.seed))
    trained = timed("train", lambda: train(config, dataset=dataset))
    # Training predicted the test set already; evaluate draws from that, as `convscope run` does.
    timed("evaluate", lambda: evaluate_run(trained.run.path, model=trained.model, dataset=dataset, evaluation=trained.evaluation))
    timed("inspect", lambda: inspect_run(trained.run.path, model=trained.model, dataset=dataset))
    timed("report", lambda: report_run(trained.run.path))
    metrics = trained.run.read_metrics()
    timings["test_accuracy"] = metrics.get("test_accuracy")
    timings["training_loop_seconds"] = metrics.get("last_session_seconds")
    print(json.dumps(timings))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default=default_data_dir(), help="folder with the MNIST IDX files")
    parser.add_argument("--preset", default="fast", help="training preset, or none for the defaults")
    parser.add_argument("--epochs", type=int, default=0, help="override the recipe's epochs (0: keep them)")
    parser.add_argument("--skip-cli", action="store_true", help="time the stages only, not the command as well")
    parser.add_argument("--child", metavar="OUT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    flags = run_flags(args)
    if args.child:
        stages_child(flags, args.child)
        return

    print(f"convscope run {' '.join(flags)}")
    print(f"{os.cpu_count()} cores, load average before {' '.join(f'{value:.1f}' for value in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="convscope-bench-") as out:
        started = time.perf_counter()
        output = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--child", out], check=True, capture_output=True, text=True).stdout
        total = time.perf_counter() - started
        timings = json.loads(output.strip().splitlines()[-1])
        print(f"\nstages, one child process ({total:.1f} s in all):")
        for stage in ("import", "load", "train", "evaluate", "inspect", "report"):
            seconds, peak = timings[stage]
            print(f"  {stage:9s} {seconds:6.1f} s   peak RSS so far {peak / 1024:.2f} GB")
        print(f"  (training loop {timings['training_loop_seconds']:.1f} s of train; test accuracy {timings['test_accuracy']:.4f})")
        peak = max(peak for key, value in timings.items() if isinstance(value, list) for peak in value[1:])
        if not args.skip_cli:
            started = time.perf_counter()
            command = [sys.executable, "-m", "convscope", "run", *flags, "--out", out, "--name", "cli"]
            subprocess.run(command, check=True, capture_output=True, text=True)
            cli_seconds = time.perf_counter() - started
            cli_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux; the larger child
            print(f"\n`convscope run` as a command: {cli_seconds:.1f} s wall, peak RSS {cli_peak / 1024:.2f} GB (largest child so far)")
            peak = max(peak, cli_peak)
    verdict = "met" if peak / 1024 <= PEAK_RSS_TARGET_GB else "NOT met"
    print(f"peak RSS {peak / 1024:.2f} GB (target <= {PEAK_RSS_TARGET_GB} GB: {verdict}); "
          f"load average after {' '.join(f'{value:.1f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
