"""The `convscope` command: parse flags, build a config, call one library function.

    convscope run                                   # bundled MNIST sample, offline
    convscope train --dataset mnist --data-dir ../shared/data/mnist --model cnn_2conv --epochs 3
    convscope evaluate runs/mnist-cnn_2conv-20260101-120000
    convscope report --model lesson.keras --dataset mnist          # a model file made elsewhere -> a new run folder
    convscope summary cnn_2conv --dataset mnist-sample
    convscope sweep --models mlp_512,cnn_2conv --dataset mnist --data-dir ../shared/data/mnist --epochs 3
    convscope compare 'runs/sweep-mnist/*'
    convscope predict runs/mnist-demo digit.png --json
    convscope view runs/mnist-demo
    convscope export runs/mnist-demo --format onnx

Exit codes: 0 success, 2 bad input (one line on stderr naming the file or value
and the fix), 130 interrupted by Ctrl-C after saving a resumable state.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from convscope.cli_flags import (
    add_data_flags,
    add_distribute_flags,
    add_import_flags,
    add_model_flags,
    add_output_flags,
    add_run_flags,
    add_sweep_flags,
    add_train_flags,
    build_config,
    in_memory,
    open_or_import,
)
from convscope import quick_exit
from convscope.keras_import import quick_keras_import
from convscope.config import Config, is_baseline_name
from convscope.errors import ConvscopeError
from convscope.launcher import launch_local_workers

# --------------------------------------------------------------------------- commands


def command_train(args) -> int:
    if args.local_workers is not None:
        return launch_local_workers(args.local_workers, args.argv)
    from convscope.train import train  # lazy: --help starts without TensorFlow

    config = build_config(args)
    result = train(config, resume=bool(args.resume))
    print(f"Run folder: {result.run.path}" if result.chief else "Done; the chief (worker 0) writes the run folder")
    return 0


def command_run(args) -> int:
    if args.local_workers is not None:
        return launch_local_workers(args.local_workers, args.argv)
    from convscope.data.background import start_loading  # lazy: --help starts without NumPy
    from convscope.plots.background import start_figure_process  # lazy: --help starts without matplotlib

    config = build_config(args)
    # While TensorFlow imports (~3 s of one core), the other core starts the process that draws the
    # evaluation figures beside the inspection, and reads the data (started second: the process
    # starts with Ctrl-C held back, which a thread running meanwhile could receive instead).
    with start_figure_process() as figures:
        loading = start_loading(config.data, seed=config.train.seed)
        with quick_keras_import(keep_scikit_learn=config.data.dataset == "digits"):  # scikit-learn's dataset, read meanwhile
            from convscope.pipeline import run  # lazy: --help starts without TensorFlow

        result = run(config, resume=bool(args.resume), dataset=loading.result(), figures=figures)
    if result.report_path is None:
        print("Done; the chief (worker 0) writes the run folder and its report")
        return 0
    stages = ", ".join(f"{stage} {seconds:.1f}s" for stage, seconds in result.stage_seconds.items())
    print(f"Report: {result.report_path} ({stages})")
    return 0


def command_lr_find(args) -> int:
    from convscope.pipeline import find_learning_rate_run  # lazy: --help starts without TensorFlow

    run, sweep = find_learning_rate_run(build_config(args), start=args.start_lr, end=args.end_lr, num_batches=args.num_batches)
    print(f"Run folder: {run.path} (lr_find.csv, plots/lr_find.png)")
    print(f"Train at the suggested rate: convscope run --config {run.config_path} --name {run.path.name.removeprefix('lr-find-')}-found")
    return 0


def command_evaluate(args) -> int:
    from convscope.pipeline import evaluate_run  # lazy: --help starts without TensorFlow

    run_dir, imported = open_or_import(args)
    result = evaluate_run(run_dir, **in_memory(imported))
    print(f"Test accuracy {result.accuracy:.4f}, loss {result.loss:.4f}; figures in {run_dir}/plots")
    return 0


def command_inspect(args) -> int:
    layers = [name.strip() for name in args.layers.split(",") if name.strip()] if args.layers else None
    if args.image:
        return inspect_image_command(args, layers)
    if args.kernel:
        raise ConvscopeError("--kernel applies to --image FILE; add --image, or leave --kernel out to inspect the run's test images")
    if args.run is None and args.model is None:
        raise ConvscopeError("convscope inspect: nothing to inspect; pass a RUN folder, --image FILE, or both (`convscope inspect RUN --image FILE`)")
    from convscope.pipeline import inspect_run  # lazy: --help starts without TensorFlow

    images = _parse_int_list(args.images, "--images") if args.images else None
    run_dir, imported = open_or_import(args)
    inspect_run(run_dir, images=images, layers=layers, **in_memory(imported))
    print(f"Figures in {run_dir}/plots")
    return 0


def inspect_image_command(args, layers) -> int:
    """`convscope inspect [RUN] --image FILE ...`: the figures of image files, printed file by file."""
    from convscope.inspection.teaching import parse_kernel  # lazy: --help starts without TensorFlow
    from convscope.inspect_image import inspect_image_files  # lazy: --help starts without TensorFlow

    if args.images:
        raise ConvscopeError(f"--images {args.images} picks test images and --image inspects files; give one of them")
    kernels = [parse_kernel(text) for text in args.kernel or []]
    run_dir, out_dir = args.run, args.out
    if args.model is not None:  # the figures go into the new run folder; --out is its parent
        run_dir, _ = open_or_import(args)
        out_dir = None
    result = inspect_image_files(args.image, run_dir=run_dir, out_dir=out_dir, kernels=kernels, layers=layers)
    for image in result.images:
        size = "x".join(str(side) for side in image.shape[:2]) + (" RGB" if image.shape[-1] == 3 else " grayscale")
        top = [f"{name} ({probability:.3f})" for _, name, probability in image.top or []]
        print(f"{image.path} ({size})" + (f": predicted {top[0]}; next {', '.join(top[1:])}" if top else ""))
        print("  " + "  ".join(str(path) for path in image.figures.values()))
    return 0


def command_report(args) -> int:
    from convscope.pipeline import report_imported, report_run  # lazy: --help starts without TensorFlow

    run_dir, imported = open_or_import(args)
    print(f"Report: {report_imported(imported) if imported is not None else report_run(run_dir)}")
    return 0


def command_summary(args) -> int:
    from convscope.data import load_dataset  # lazy: --help starts without TensorFlow
    from convscope.models import create_model, summarize  # lazy: --help starts without TensorFlow

    dataset = load_dataset(args.dataset, data_dir=args.data_dir)
    model = create_model(args.model, dataset.input_shape, dataset.num_classes)
    print(summarize(model).to_text())
    return 0


def command_models(args) -> int:
    from convscope.model_catalog import format_models_table  # lazy: only this command needs it; the catalog imports no Keras

    print(format_models_table())
    return 0


def command_lessons(args) -> int:
    from convscope.lessons import format_lessons_table  # lazy: plain data, but only this command needs it

    print(format_lessons_table())
    return 0


def command_datasets(args) -> int:
    from convscope.data import format_datasets_table  # lazy: --help starts without TensorFlow

    print(format_datasets_table())
    return 0


def command_compare(args) -> int:
    from convscope.compare import compare_runs, expand_run_paths, format_leaderboard  # lazy: --help starts without TensorFlow
    from convscope.html.compare_page import write_compare_html  # lazy: --help starts without TensorFlow

    comparison = compare_runs(expand_run_paths(args.runs), group_by_dataset=args.group_by_dataset)
    print(format_leaderboard(comparison))
    print(f"Comparison: {write_compare_html(comparison, args.out)}")
    return 0


def command_baseline(args) -> int:
    from convscope.baseline import DEFAULT_HIDDEN_LAYERS, baseline_config, baseline_name  # lazy: --help starts without TensorFlow
    from convscope.pipeline import train_baseline  # lazy: --help starts without TensorFlow

    config = build_config(args)
    if args.kind or args.hidden_layers or not is_baseline_name(config.model.name):  # else: repeat --config's baseline
        hidden = _parse_int_list(args.hidden_layers, "--hidden-layers") if args.hidden_layers else DEFAULT_HIDDEN_LAYERS
        config.model.name = baseline_name(args.kind or "sklearn-mlp", hidden)
    result = train_baseline(baseline_config(config, max_iter=args.epochs))
    print(f"Run folder: {result.run.path}")
    return 0


def command_sweep(args) -> int:
    from convscope.sweep import sweep  # lazy: --help starts without TensorFlow

    models = [name.strip() for name in args.models.split(",") if name.strip()]
    result = sweep(models, build_config(args))
    print(result.leaderboard)
    print(f"Comparison: {result.compare_path}")
    return 0


def command_predict(args) -> int:
    import json

    from convscope.predict import format_predictions, predict_images  # lazy: --help starts without TensorFlow

    preparation = {"image_size": args.image_size, "color_mode": args.color_mode, "scale": args.scale, "class_names": args.class_names}
    if Path(args.run).suffix == ".onnx":
        from convscope.onnx_predict import predict_onnx  # lazy: needs onnxruntime, from the export extra

        if args.image_size:
            preparation["image_size"] = _parse_int_list(args.image_size, "--image-size")
        if args.class_names:
            preparation["class_names"] = [name.strip() for name in args.class_names.split(",")]
        result = predict_onnx(args.run, args.images, top_k=args.top_k, **preparation)
    elif given := [flag for flag, value in preparation.items() if value is not None]:
        raise ConvscopeError(f"--{given[0].replace('_', '-')} is for an .onnx model; a run folder prepares images from its own data.json")
    else:
        result = predict_images(args.run, args.images, top_k=args.top_k)
    print(json.dumps(result.to_dict(), indent=2) if args.json else format_predictions(result))
    return 0


def command_view(args) -> int:
    import webbrowser

    from convscope.viewer import serve_run  # lazy: --help starts without TensorFlow

    run_dir, imported = open_or_import(args)
    if imported is not None:
        from convscope.pipeline import evaluate_run  # lazy: --help starts without TensorFlow

        evaluate_run(run_dir, **in_memory(imported))  # the test-image pickers read its predictions

    def ready(url: str) -> None:
        print(f"Serving {run_dir} at {url}", flush=True)
        if not args.no_browser:
            webbrowser.open(url)

    try:
        serve_run(run_dir, host=args.host, port=args.port, on_ready=ready)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how the viewer is stopped
    return 0


def command_export(args) -> int:
    from convscope.export import export_run, format_export  # lazy: --help starts without TensorFlow

    print(format_export(export_run(args.run, args.format, out=args.out)))
    print(f"Recorded in {Path(args.run) / 'export.json'}; `convscope report {args.run}` shows it in report.html")
    return 0


def _parse_int_list(text: str, flag: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConvscopeError(f"{flag} {text!r}: expected comma-separated integers, e.g. 0,42") from None


# --------------------------------------------------------------------------- parser


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the fix, exit code 2."""

    def error(self, message):
        self.exit(2, f"convscope: error: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    defaults = Config()
    parser = Parser(
        prog="convscope",
        description="Train, evaluate and look inside convolutional image classifiers.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Start with `convscope run` (bundled MNIST sample, offline, about a minute on 2 cores).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    def add(name, handler, help_text):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    for name, handler, help_text in (
        ("run", command_run, "train, evaluate, inspect and write report.html"),
        ("train", command_train, "train a model into a run folder"),
    ):
        sub = add(name, handler, help_text)
        add_data_flags(sub, defaults)
        add_model_flags(sub, defaults)
        add_train_flags(sub, defaults)
        add_distribute_flags(sub)
        add_run_flags(sub, defaults)

    sub = add("lr-find", command_lr_find, "learning-rate finder: sweep the rate from 1e-7 to 10 and suggest one (fastai's valley rule)")
    sub.epilog = (
        "The sweep trains the configured model, optimizer and batch size for up to 100 batches, the rate growing "
        "exponentially, and stops when the smoothed loss exceeds 4x its lowest. The run folder gets lr_find.csv, "
        "plots/lr_find.png and a config.yaml whose learning_rate is the suggestion; `convscope run --config "
        "RUN/config.yaml` trains at it (as one-cycle's peak with the default schedule). "
        "`convscope train|run --learning-rate find` does both in one go."
    )
    add_data_flags(sub, defaults)
    add_model_flags(sub, defaults)
    add_train_flags(sub, defaults)
    add_sweep_flags(sub)
    add_output_flags(sub, defaults, "run folder name (default: lr-find-<dataset>-<model>-<time>)")
    sub = add("evaluate", command_evaluate, "compute test metrics and figures for a run folder (or a model file, --model)")
    add_import_flags(sub, defaults)
    sub = add("inspect", command_inspect, "filters, activations, Grad-CAM and kernels for a run folder (or a model file, --model) or any image file")
    add_import_flags(sub, defaults)
    sub.add_argument("--images", help="test-image indices, e.g. 0,42 (default: one right, one wrong prediction)")
    sub.add_argument("--layers", help="layer names whose activations to show (default: conv, pooling, activation layers)")
    group = sub.add_argument_group("any image (RUN is optional: it adds its model's activations and Grad-CAM)")
    group.add_argument("--image", nargs="+", metavar="FILE", help="inspect these image files (PNG, JPEG, ...; any size): channels, pixel grid, kernels; without a run, --out is their folder (default: inspect-<image name>)")
    group.add_argument("--kernel", action="append", metavar="ROWS", help='your own kernel beside the classic ones, e.g. "1,0,-1;2,0,-2;1,0,-1" or "edge=0,1,0;1,-4,1;0,1,0" (repeatable)')
    sub = add("report", command_report, "rebuild report.html from a run folder, without retraining (--model: evaluate, inspect and report a model file)")
    add_import_flags(sub, defaults)
    sub = add("summary", command_summary, "explained model summary: shapes and parameters with their arithmetic")
    sub.add_argument("model", help="zoo name or YAML layer list")
    sub.add_argument("--dataset", default="mnist-sample", help="dataset giving the input shape and classes (default: mnist-sample)")
    sub.add_argument("--data-dir", help="folder holding the dataset files")
    sub = add("compare", command_compare, "leaderboard and compare.html for several run folders")
    sub.add_argument("runs", nargs="+", help="run folders, or glob patterns such as 'runs/sweep-mnist/*'")
    sub.add_argument("--out", default="compare.html", help="HTML file to write (default: compare.html)")
    sub.add_argument("--group-by-dataset", action="store_true", help="one section per dataset instead of refusing runs on different datasets")
    sub = add("baseline", command_baseline, "train a scikit-learn MLP or logistic regression into a run folder")
    group = sub.add_argument_group("baseline")
    group.add_argument("--kind", choices=["sklearn-mlp", "logistic"], help="estimator (default: sklearn-mlp)")
    group.add_argument("--hidden-layers", help="MLP hidden layer sizes; the lesson's presets are 16,16 and 40 (default: 16,16)")
    group.add_argument("--epochs", type=int, help="max_iter: MLP epochs (early stopping usually ends sooner) or solver iterations (default: scikit-learn's, 200 / 100)")
    group.add_argument("--seed", type=int, help="random_state: initial weights, shuffling, early-stopping split (default: 0)")
    group.add_argument("--preset", help="a lesson's scikit-learn run: nn-lesson-sklearn-16x16 or nn-lesson-sklearn-40 (`convscope lessons`)")
    add_data_flags(sub, defaults)
    add_output_flags(sub, defaults, "run folder name (default: <dataset>-<baseline>-<time>)")
    sub = add("sweep", command_sweep, "train several models in turn into <out>/<name>/<model>, then compare them")
    sub.add_argument("--models", required=True, help="comma-separated zoo names, YAML layer lists or baselines (sklearn-mlp-16x16, sklearn-mlp-40, sklearn-logistic)")
    add_data_flags(sub, defaults)
    add_train_flags(sub, defaults)
    add_output_flags(sub, defaults, "sweep folder name; running the same sweep again skips its finished runs (default: sweep-<dataset>)")
    sub = add("predict", command_predict, "top-k classes of image files with a run's model or an exported .onnx file")
    sub.add_argument("run", help="run folder, or an .onnx file (runs on onnxruntime, without TensorFlow)")
    sub.add_argument("images", nargs="+", help="PNG/JPEG files of any size, or folders (every image in them, sorted)")
    sub.add_argument("--top-k", type=int, default=3, help="classes shown per image (default: 3)")
    sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
    group = sub.add_argument_group(".onnx only", "override how images are prepared (default: what `convscope export` stored in the file, else the run folder around it)")
    group.add_argument("--image-size", help="H,W the model takes")
    group.add_argument("--color-mode", choices=["grayscale", "rgb"], help="convert images to this mode")
    group.add_argument("--scale", help="unit, centered or standard:MEAN,STD, as the model was trained")
    group.add_argument("--class-names", help="comma-separated, in output order (default: 0, 1, ...)")
    sub = add("view", command_view, "live viewer in the browser: draw, upload or pick an image and watch every layer (a run folder, or a model file with --model)")
    add_import_flags(sub, defaults)
    sub.add_argument("--host", default="127.0.0.1", help="address to listen on; anything beyond 127.0.0.1 requires the printed token (default: 127.0.0.1)")
    sub.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one (default: 8000)")
    sub.add_argument("--no-browser", action="store_true", help="print the URL without opening a browser")
    sub = add("export", command_export, "export a run's model as ONNX, LiteRT or a SavedModel, verified against Keras")
    sub.add_argument("run", help="run folder")
    sub.add_argument("--format", default="onnx", help="onnx, litert or savedmodel (default: onnx)")
    sub.add_argument("--out", help="file (a folder for savedmodel) to write (default: RUN/export/model.onnx, model.tflite or savedmodel)")
    add("models", command_models, "list the model zoo")
    add("datasets", command_datasets, "list the datasets and whether each is available here")
    add("lessons", command_lessons, "list the lessons' training runs and the preset that repeats each")
    return parser


class ConsoleHandler(logging.Handler):
    """convscope's log records on the terminal.

    A run's results (``convscope.results``: epochs, test metrics) go to stdout as they
    are; the progress line (``convscope.progress``) is redrawn in place, only on a
    terminal; anything else goes to stderr after ``convscope: ``. The streams are looked
    up at each record, so a caller that swaps sys.stdout (pytest) still sees the lines.
    """

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.name == "convscope.progress":
            if sys.stdout.isatty():
                sys.stdout.write("\r" + message if message else "\r" + " " * 90 + "\r")
                sys.stdout.flush()
        elif record.name == "convscope.results":
            print(message, file=sys.stdout, flush=True)
        else:
            print(f"convscope: {message}", file=sys.stderr, flush=True)


def show_warning(message, category, filename, lineno, file=None, line=None, _default=warnings.showwarning):
    """convscope's own warnings as one line; other libraries' as they write them."""
    if "convscope" in str(filename):
        print(f"convscope: warning: {message}", file=sys.stderr)
    else:
        _default(message, category, filename, lineno, file, line)


def configure_output() -> None:
    """Route convscope's logging and warnings to the terminal, each once, however often main() runs."""
    logger = logging.getLogger("convscope")
    if not any(isinstance(handler, ConsoleHandler) for handler in logger.handlers):
        logger.addHandler(ConsoleHandler())
        logger.setLevel(logging.INFO)
    warnings.showwarning = show_warning  # a caller may have restored its own since (pytest does)


NEGATIVE_STARTS = {f"-{character}" for character in "0123456789."}  # "-1,0,1;..." and "-.5,..." are kernels, not flags


def join_kernel_values(argv: list[str]) -> list[str]:
    """``--kernel -1,0,1;...`` as ``--kernel=-1,0,1;...``: argparse takes a value starting with "-" for a flag.

    Lesson kernels often start with a minus (Sobel x as [[-1, 0, 1], ...]).
    """
    joined, index = [], 0
    while index < len(argv):
        if argv[index] == "--kernel" and index + 1 < len(argv) and argv[index + 1][:2] in NEGATIVE_STARTS:
            joined.append(f"--kernel={argv[index + 1]}")
            index += 2
        else:
            joined.append(argv[index])
            index += 1
    return joined


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    argv = join_kernel_values(sys.argv[1:] if argv is None else list(argv))
    args = parser.parse_args(argv)
    args.argv = argv  # --local-workers starts workers with the same flags
    configure_output()
    try:
        return args.handler(args)
    except ConvscopeError as error:
        print(f"convscope: error: {' '.join(str(error).splitlines())}", file=sys.stderr)  # one line, even for a path with a newline
        return getattr(error, "exit_code", 2)
    except OSError as error:  # a full disk or a read-only folder where no stage has a more specific message
        where = f"{error.filename}: " if error.filename else ""
        print(f"convscope: error: {where}{error.strerror or error}; check that the folder exists, is writable and has free space", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("convscope: interrupted", file=sys.stderr)
        return 130


def run_command() -> None:
    """The `convscope` command (``python -m convscope``, the console script): ``main``, then a quick exit.

    A finished command skips the interpreter's teardown, ~1 s once TensorFlow is loaded (see quick_exit).
    """
    quick_exit.arm()
    quick_exit.exit_with(main())


if __name__ == "__main__":
    run_command()
