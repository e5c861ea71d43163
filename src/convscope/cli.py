"""The `convscope` command: parse flags, build a config, call one library function.

    convscope run                                   # bundled MNIST sample, offline
    convscope train --dataset mnist --data-dir ../shared/data/mnist --model cnn_2conv --epochs 3
    convscope evaluate runs/mnist-cnn_2conv-20260101-120000
    convscope summary cnn_2conv --dataset mnist-sample
    convscope sweep --models mlp_512,cnn_2conv --dataset mnist --data-dir ../shared/data/mnist --epochs 3
    convscope compare 'runs/sweep-mnist/*'
    convscope predict runs/mnist-demo digit.png --json

Exit codes: 0 success, 2 bad input (one line on stderr naming the file or value
and the fix), 130 interrupted by Ctrl-C after saving a resumable state.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from convscope.config import LR_FIND_DEFAULTS, Config, is_baseline_name, resolve_config
from convscope.errors import ConvscopeError

# flag -> (config section, field); every flag defaults to None so that only the
# flags a user gives override --config and the defaults.
CONFIG_FLAGS = {
    "dataset": ("data", "dataset"),
    "data_dir": ("data", "data_dir"),
    "scale": ("data", "scale"),
    "val_split": ("data", "val_split"),
    "val_first": ("data", "val_first"),
    "limit_train": ("data", "limit_train"),
    "image_size": ("data", "image_size"),
    "color_mode": ("data", "color_mode"),
    "allow_download": ("data", "allow_download"),
    "model": ("model", "name"),
    "trust_model": ("model", "trust_model"),
    "epochs": ("train", "epochs"),
    "batch_size": ("train", "batch_size"),
    "optimizer": ("train", "optimizer"),
    "learning_rate": ("train", "learning_rate"),
    "schedule": ("train", "schedule"),
    "seed": ("train", "seed"),
    "reduce_lr": ("train", "reduce_lr"),
    "early_stop": ("train", "early_stop"),
    "preset": ("train", "preset"),
    "out": ("run", "out"),
    "name": ("run", "name"),
}


def add_data_flags(parser: argparse.ArgumentParser, defaults) -> None:
    group = parser.add_argument_group("data")
    data = defaults.data
    group.add_argument("--dataset", help=f"mnist-sample, mnist, fashion-mnist, kmnist, cifar10, digits, npz:PATH, folder:PATH (default: {data.dataset})")
    group.add_argument("--data-dir", help="folder holding the dataset files (default: $CONVSCOPE_DATA/<dataset>, then the cache)")
    group.add_argument("--scale", choices=["unit", "minmax", "centered", "standard"], help=f"pixel scaling (default: {data.scale})")
    group.add_argument("--val-split", type=float, help=f"fraction of training images for validation, stratified (default: {data.val_split})")
    group.add_argument("--val-first", type=int, help="use the first N training images as validation instead of --val-split")
    group.add_argument("--limit-train", type=int, help="keep only the first N training images")
    group.add_argument("--image-size", help="H,W to resize folder images to (default: size of the first image)")
    group.add_argument("--color-mode", choices=["grayscale", "rgb"], help="convert folder images to this mode (default: mode of the first image)")
    group.add_argument("--no-download", dest="allow_download", action="store_const", const=False, help="never download missing dataset files")


def add_model_flags(parser: argparse.ArgumentParser, defaults) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", help=f"zoo name (`convscope models`) or a YAML layer list (default: {defaults.model.name})")
    group.add_argument("--trust-model", action="store_const", const=True, help="allow legacy .h5 model files (they can run code)")


def add_train_flags(parser: argparse.ArgumentParser, defaults) -> None:
    group = parser.add_argument_group("training")
    train = defaults.train
    group.add_argument("--preset", help="a named recipe, e.g. fast (flags still override it)")
    group.add_argument("--epochs", type=int, help=f"passes over the training set (default: {train.epochs})")
    group.add_argument("--batch-size", type=int, help=f"images per step (default: {train.batch_size})")
    group.add_argument("--optimizer", choices=["adam", "rmsprop", "sgd"], help=f"(default: {train.optimizer})")
    group.add_argument(
        "--learning-rate", type=learning_rate_value, metavar="RATE|find",
        help=f"the constant rate, or one-cycle's peak; find: run the learning-rate finder first and use its suggestion as that rate (default: {train.learning_rate})",
    )
    group.add_argument("--schedule", choices=["constant", "onecycle"], help=f"learning-rate schedule (default: {train.schedule})")
    group.add_argument("--seed", type=int, help=f"seeds weights, shuffling, dropout, validation split (default: {train.seed})")
    group.add_argument("--reduce-lr", metavar="FACTOR,PATIENCE,MIN_LR", help="ReduceLROnPlateau on val_loss, e.g. 0.5,2,1e-5")
    group.add_argument("--early-stop", type=int, metavar="PATIENCE", help="stop after PATIENCE epochs without val_loss improving")


def learning_rate_value(text: str):
    """--learning-rate: a positive number, or "find"."""
    if text.strip().lower() == "find":
        return "find"
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive number such as 1e-3, or find")
    return value


def add_sweep_flags(parser: argparse.ArgumentParser) -> None:
    start, end, batches = LR_FIND_DEFAULTS
    group = parser.add_argument_group("sweep")
    group.add_argument("--start-lr", type=float, default=start, help=f"first rate of the sweep (default: {start:g})")
    group.add_argument("--end-lr", type=float, default=end, help=f"last rate of the sweep (default: {end:g})")
    group.add_argument("--num-batches", type=int, default=batches, help=f"batches the sweep runs unless the loss diverges first (default: {batches})")


def add_run_flags(parser: argparse.ArgumentParser, defaults) -> None:
    group = parser.add_argument_group("run folder")
    group.add_argument("--config", help="YAML config (e.g. a run's config.yaml); flags override it")
    group.add_argument("--out", help=f"parent folder of run folders (default: {defaults.run.out})")
    group.add_argument("--name", help="run folder name (default: <dataset>-<model>-<time>)")
    group.add_argument("--resume", metavar="RUN", help="continue the interrupted run in folder RUN from its last complete epoch")


def add_output_flags(parser: argparse.ArgumentParser, defaults, name_help: str) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("--config", help="YAML config (e.g. a run's config.yaml); flags override it")
    group.add_argument("--out", help=f"parent folder (default: {defaults.run.out})")
    group.add_argument("--name", help=name_help)


def build_config(args: argparse.Namespace):
    """Defaults < preset < --config (or the resumed run's config.yaml) < flags."""
    overrides: dict[str, dict] = {}
    for flag, (section, key) in CONFIG_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides.setdefault(section, {})[key] = value
    if "reduce_lr" in overrides.get("train", {}) and "schedule" not in overrides["train"]:
        overrides["train"]["schedule"] = "constant"  # --reduce-lr alone means: constant rate, cut on plateaus
    config_path = args.config
    if getattr(args, "resume", None):
        from convscope.runfolder import RunFolder  # lazy: --help starts without NumPy

        run = RunFolder(Path(args.resume))
        if not run.config_path.is_file():
            raise ConvscopeError(
                f"{run.path}: no config.yaml; --resume takes a run folder written by `convscope train` "
                "(a run stopped before its first epoch began has none: start it again without --resume)"
            )
        config_path = config_path or run.config_path
        overrides.setdefault("run", {}).update(out=str(run.path.parent), name=run.path.name)
    return resolve_config(config_path, overrides)


# --------------------------------------------------------------------------- commands


def command_train(args) -> int:
    from convscope.train import train  # lazy: --help starts without TensorFlow

    config = build_config(args)
    result = train(config, resume=bool(args.resume))
    print(f"Run folder: {result.run.path}")
    return 0


def command_run(args) -> int:
    from convscope.pipeline import run  # lazy: --help starts without TensorFlow

    config = build_config(args)
    result = run(config, resume=bool(args.resume))
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

    result = evaluate_run(args.run)
    print(f"Test accuracy {result.accuracy:.4f}, loss {result.loss:.4f}; figures in {args.run}/plots")
    return 0


def command_inspect(args) -> int:
    from convscope.pipeline import inspect_run  # lazy: --help starts without TensorFlow

    images = _parse_int_list(args.images, "--images") if args.images else None
    layers = [name.strip() for name in args.layers.split(",") if name.strip()] if args.layers else None
    inspect_run(args.run, images=images, layers=layers)
    print(f"Figures in {args.run}/plots")
    return 0


def command_report(args) -> int:
    from convscope.pipeline import report_run  # lazy: --help starts without TensorFlow

    print(f"Report: {report_run(args.run)}")
    return 0


def command_summary(args) -> int:
    from convscope.data import load_dataset  # lazy: --help starts without TensorFlow
    from convscope.models import create_model, summarize  # lazy: --help starts without TensorFlow

    dataset = load_dataset(args.dataset, data_dir=args.data_dir)
    model = create_model(args.model, dataset.input_shape, dataset.num_classes)
    print(summarize(model).to_text())
    return 0


def command_models(args) -> int:
    from convscope.models import format_models_table  # lazy: --help starts without TensorFlow

    print(format_models_table())
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

    result = predict_images(args.run, args.images, top_k=args.top_k)
    print(json.dumps(result.to_dict(), indent=2) if args.json else format_predictions(result))
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
    sub = add("evaluate", command_evaluate, "compute test metrics and figures for a run folder")
    sub.add_argument("run", help="run folder")
    sub = add("inspect", command_inspect, "filters, activations, Grad-CAM and kernels for a run folder")
    sub.add_argument("run", help="run folder")
    sub.add_argument("--images", help="test-image indices, e.g. 0,42 (default: one right, one wrong prediction)")
    sub.add_argument("--layers", help="layer names whose activations to show (default: conv, pooling, activation layers)")
    sub = add("report", command_report, "rebuild report.html from a run folder, without retraining")
    sub.add_argument("run", help="run folder")
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
    add_data_flags(sub, defaults)
    add_output_flags(sub, defaults, "run folder name (default: <dataset>-<baseline>-<time>)")
    sub = add("sweep", command_sweep, "train several models in turn into <out>/<name>/<model>, then compare them")
    sub.add_argument("--models", required=True, help="comma-separated zoo names, YAML layer lists or baselines (sklearn-mlp-16x16, sklearn-mlp-40, sklearn-logistic)")
    add_data_flags(sub, defaults)
    add_train_flags(sub, defaults)
    add_output_flags(sub, defaults, "sweep folder name; running the same sweep again skips its finished runs (default: sweep-<dataset>)")
    sub = add("predict", command_predict, "top-k classes of image files with a run's model")
    sub.add_argument("run", help="run folder")
    sub.add_argument("images", nargs="+", help="PNG/JPEG files of any size, or folders (every image in them, sorted)")
    sub.add_argument("--top-k", type=int, default=3, help="classes shown per image (default: 3)")
    sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add("models", command_models, "list the model zoo")
    add("datasets", command_datasets, "list the datasets and whether each is available here")
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


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
