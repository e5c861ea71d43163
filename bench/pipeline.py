"""Wall time per stage and peak memory of `convscope run` on full MNIST; the end-to-end target.

    python bench/pipeline.py                               # --preset fast, full MNIST
    python bench/pipeline.py --preset none --epochs 2      # the default recipe, shortened
    python bench/pipeline.py --data-dir /path/to/mnist --skip-cli
    python bench/pipeline.py --before /tmp/base/src --repeats 3   # the command, this tree vs another, alternating
    python bench/pipeline.py --post-training runs/mnist-run         # evaluate + inspect, one process vs two

Child processes, one after the other:
  stages  what `convscope run` does, in the same order and overlap, each part timed:
          import (convscope + Keras, the garbage collector paused, scikit-learn hidden; meanwhile a thread
          reads the data and a second process starts to import matplotlib), load (the wait for the data after
          the import: the part the import did not hide), train (build, fit,
          checkpoints, test evaluation; the epoch loop shown within), evaluate
          (metrics, the figures handed to the second process), inspect (activations,
          Grad-CAM, their figures, while the other process draws), figures (the
          wait for the evaluation figures after inspect), report (HTML); with the
          peak RSS reached by the end of each (VmHWM);
  cli     the command itself, ``python -m convscope run ...`` with the same flags:
          its wall time and peak RSS (``ru_maxrss`` of the child), and the stage
          seconds it recorded in environment.json.
Targets: peak RSS of a full-MNIST run <= 2.5 GB. End-to-end (issue 19): everything
but training takes <= 1.0x the training time. "Training" is the command's train
stage (build, fit, checkpoints, test evaluation, as environment.json records it);
"everything but training" is the rest of the command's wall time: start-up,
imports, the data, evaluate, inspect, report and the process' exit. The epoch
loop alone is printed beside it. The machine may be shared: the load average is
printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from paths import default_data_dir  # bench/paths.py, beside this script

PEAK_RSS_TARGET_GB = 2.5
END_TO_END_TARGET = 1.0  # everything but training / training
STAGES = ("import", "load", "train", "evaluate", "inspect", "figures", "report")


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
    """Run the pipeline's stages as `convscope run` does; print {stage: [seconds, peak MB]} as one JSON line."""
    timings = {}
    started = time.perf_counter()
    from convscope.cli import build_config, build_parser
    from convscope.keras_import import quick_keras_import
    from convscope.data.background import start_loading
    from convscope.plots.background import FigureProcess

    args = build_parser().parse_args(["run", *flags, "--out", out, "--name", "stages"])
    config = build_config(args)
    loading = start_loading(config.data, seed=config.train.seed)
    with FigureProcess() as figures:
        with quick_keras_import():
            import keras  # noqa: F401

            from convscope.pipeline import evaluate_run, inspect_run, report_run, wait_for_figures
            from convscope.train import train

        timings["import"] = [time.perf_counter() - started, peak_rss_mb()]

        def timed(stage, call):
            stage_started = time.perf_counter()
            value = call()
            timings[stage] = [time.perf_counter() - stage_started, peak_rss_mb()]
            return value

        dataset = timed("load", loading.result)
        trained = timed("train", lambda: train(config, dataset=dataset))
        # Training predicted the test set already; evaluate draws from that, as `convscope run` does.
        timed("evaluate", lambda: evaluate_run(trained.run.path, model=trained.model, dataset=dataset, evaluation=trained.evaluation, figures=figures))
        timed("inspect", lambda: inspect_run(trained.run.path, model=trained.model, dataset=dataset))
        timed("figures", lambda: wait_for_figures(trained.run, figures))
        timed("report", lambda: report_run(trained.run.path, model=trained.model))
    metrics = trained.run.read_metrics()
    timings["test_accuracy"] = metrics.get("test_accuracy")
    timings["training_loop_seconds"] = metrics.get("last_session_seconds")
    print(json.dumps(timings))


def time_command(flags: list[str], out: str, name: str, source: str | None = None) -> dict:
    """``python -m convscope run`` as a fresh process: wall seconds, the stage seconds and loop seconds it recorded."""
    env = dict(os.environ)
    if source is not None:  # another tree's src/ (e.g. the commit before a change)
        env["PYTHONPATH"] = source
    command = [sys.executable, "-m", "convscope", "run", *flags, "--out", out, "--name", name]
    started, used = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    wall, ended = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ended.ru_utime + ended.ru_stime - used.ru_utime - used.ru_stime  # the command and the processes it waited for
    run = Path(out) / name
    stages = json.loads((run / "environment.json").read_text())["stage_seconds"]
    metrics = json.loads((run / "metrics.json").read_text())
    return {"wall": wall, "cpu": cpu, "stages": stages, "loop": metrics.get("last_session_seconds"), "accuracy": metrics.get("test_accuracy")}


def end_to_end_line(timed: dict) -> str:
    """The target line: everything but training vs training, from one command's figures."""
    training = timed["stages"]["train"]
    rest = timed["wall"] - training
    ratio = rest / training
    verdict = "met" if ratio <= END_TO_END_TARGET else "NOT met"
    return (
        f"everything but training {rest:.1f} s (wall {timed['wall']:.1f} s - train stage {training:.1f} s) "
        f"vs training {training:.1f} s (epoch loop {timed['loop']:.1f} s of it): "
        f"ratio {ratio:.2f} (target <= {END_TO_END_TARGET}: {verdict})"
    )


def describe_command(timed: dict) -> str:
    stages = ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in timed["stages"].items())
    outside = timed["wall"] - sum(timed["stages"].values())
    return f"CPU {timed['cpu']:.1f} s, wall {timed['wall']:.1f} s = stages ({stages}) + {outside:.1f} s outside them (start-up, imports, data, exit)"


def compare_commands(flags: list[str], before: str, repeats: int) -> None:
    """This tree's command and ``before``'s, alternating, ``repeats`` times each; medians side by side."""
    here = str(Path(__file__).resolve().parents[1] / "src")
    results = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="convscope-bench-") as out:
        for repeat in range(repeats):
            for label, source in (("before", before), ("after", here)):
                timed = time_command(flags, out, f"{label}-{repeat}", source)
                results[label].append(timed)
                print(f"  {label:6s} #{repeat + 1}: {describe_command(timed)}; accuracy {timed['accuracy']:.4f}")
    print(f"\nmedians of {repeats} (before: {before}; after: {here}):")
    keys = sorted({key for timed in results["after"] + results["before"] for key in timed["stages"]}, key=lambda key: (key not in STAGES, STAGES.index(key) if key in STAGES else 0))
    print(f"  {'':28s} {'before':>7s} {'after':>7s}")
    rows = [("command CPU, all processes", lambda timed: timed["cpu"]), ("command wall", lambda timed: timed["wall"])]
    rows += [(f"stage {key}", lambda timed, key=key: timed["stages"].get(key, 0.0)) for key in keys]
    rows += [("outside the stages", lambda timed: timed["wall"] - sum(timed["stages"].values()))]
    rows += [("epoch loop", lambda timed: timed["loop"]), ("everything but training", lambda timed: timed["wall"] - timed["stages"]["train"])]
    rows += [("ratio (target <= 1.0)", lambda timed: (timed["wall"] - timed["stages"]["train"]) / timed["stages"]["train"])]
    for label, value in rows:
        print(f"  {label:28s} {statistics.median(map(value, results['before'])):7.2f} {statistics.median(map(value, results['after'])):7.2f}")


def compare_post_training(run_dir: str, repeats: int) -> None:
    """Evaluate (figures) + inspect of a finished run, drawn in one process vs with the figure process, alternating."""
    from convscope.keras_import import quick_keras_import
    from convscope.plots.background import FigureProcess

    with FigureProcess() as figures, quick_keras_import():
        from convscope.evaluate import evaluate_predictions
        from convscope.pipeline import evaluate_run, inspect_run, wait_for_figures
        from convscope.runfolder import open_run

        run = open_run(run_dir)
        model, dataset, saved = run.load_model(), run.load_dataset(), run.read_predictions()
        evaluation = evaluate_predictions(saved["probabilities"], saved["labels"], class_names=dataset.class_names)
        inspect_run(run.path, model=model, dataset=dataset)  # traces the probe once, as in a run
        times = {"one process": [], "with the figure process": []}
        for _ in range(repeats):
            for label, helper in (("one process", None), ("with the figure process", figures)):
                started = time.perf_counter()
                evaluate_run(run.path, model=model, dataset=dataset, evaluation=evaluation, figures=helper)
                inspect_run(run.path, model=model, dataset=dataset)
                if helper is not None:
                    wait_for_figures(run, helper)
                times[label].append(time.perf_counter() - started)
    for label, values in times.items():
        print(f"  {label:24s} median {statistics.median(values):.2f} s ({', '.join(f'{value:.2f}' for value in values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default=default_data_dir(), help="folder with the MNIST IDX files")
    parser.add_argument("--preset", default="fast", help="training preset, or none for the defaults")
    parser.add_argument("--epochs", type=int, default=0, help="override the recipe's epochs (0: keep them)")
    parser.add_argument("--skip-cli", action="store_true", help="time the stages only, not the command as well")
    parser.add_argument("--before", metavar="SRC", help="only time the command, this tree's and the one in SRC (another tree's src/), alternating")
    parser.add_argument("--repeats", type=int, default=3, help="with --before: commands per tree; with --post-training: rounds")
    parser.add_argument("--post-training", metavar="RUN", help="only time evaluate + inspect of RUN (a finished run folder), one process vs two")
    parser.add_argument("--child", metavar="OUT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    flags = run_flags(args)
    if args.child:
        stages_child(flags, args.child)
        return

    print(f"convscope run {' '.join(flags)}")
    print(f"{os.cpu_count()} cores, load average before {' '.join(f'{value:.1f}' for value in os.getloadavg())}")
    if args.post_training:
        print(f"evaluate + inspect of {args.post_training}, {args.repeats} rounds, alternating:")
        compare_post_training(args.post_training, args.repeats)
        print(f"load average after {' '.join(f'{value:.1f}' for value in os.getloadavg())}")
        return
    if args.before:
        compare_commands(flags, args.before, args.repeats)
        print(f"load average after {' '.join(f'{value:.1f}' for value in os.getloadavg())}")
        return
    with tempfile.TemporaryDirectory(prefix="convscope-bench-") as out:
        started = time.perf_counter()
        output = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--child", out], check=True, capture_output=True, text=True).stdout
        total = time.perf_counter() - started
        timings = json.loads(output.strip().splitlines()[-1])
        print(f"\nstages, one child process ({total:.1f} s in all, its exit included):")
        for stage in STAGES:
            seconds, peak = timings[stage]
            print(f"  {stage:9s} {seconds:6.1f} s   peak RSS so far {peak / 1024:.2f} GB")
        print(f"  (training loop {timings['training_loop_seconds']:.1f} s of train; test accuracy {timings['test_accuracy']:.4f})")
        rest = sum(timings[stage][0] for stage in STAGES if stage != "train")
        print(f"  everything but train: {rest:.1f} s vs train {timings['train'][0]:.1f} s (ratio {rest / timings['train'][0]:.2f}; without the process' start and exit)")
        peak = max(peak for key, value in timings.items() if isinstance(value, list) for peak in value[1:])
        if not args.skip_cli:
            timed = time_command(flags, out, "cli")
            cli_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux; the larger child
            print(f"\n`convscope run` as a command: {timed['wall']:.1f} s wall, peak RSS {cli_peak / 1024:.2f} GB (largest child so far)")
            print(f"  {describe_command(timed)}")
            print(f"  end to end: {end_to_end_line(timed)}")
            peak = max(peak, cli_peak)
    verdict = "met" if peak / 1024 <= PEAK_RSS_TARGET_GB else "NOT met"
    print(f"peak RSS {peak / 1024:.2f} GB (target <= {PEAK_RSS_TARGET_GB} GB: {verdict}); "
          f"load average after {' '.join(f'{value:.1f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
