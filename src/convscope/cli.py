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

from convscope.config import LR_FIND_DEFAULTS, Config, is_baseline_name, resolve_config
from convscope.errors import ConvscopeError

# flag -> (config section, field); every flag defaults to None so that only the
# flags a user gives override --config and the defaults.
CONFIG_FLAGS = {
    "dataset": ("data", "dataset"),
    "data_dir": ("data", "data_dir"),
    "scale": ("data", "scale"),
    "val_split": ("data", "val_split"),
    "validation": ("data", "validation"),
    "val_seed": ("data", "val_seed"),
    "val_first": ("data", "val_first"),
    "test_split": ("data", "test_split"),
    "limit_train": ("data", "limit_train"),
    "image_size": ("data", "image_size"),
    "color_mode": ("data", "color_mode"),
    "allow_download": ("data", "allow_download"),
    "model": ("model", "name"),
    "trust_model": ("model", "trust_model"),
    "weights": ("model", "weights"),
    "epochs": ("train", "epochs"),
    "batch_size": ("train", "batch_size"),
    "optimizer": ("train", "optimizer"),
    "learning_rate": ("train", "learning_rate"),
    "schedule": ("train", "schedule"),
    "seed": ("train", "seed"),
    "reduce_lr": ("train", "reduce_lr"),
    "early_stop": ("train", "early_stop"),
    "keep": ("train", "keep"),
    "preset": ("train", "preset"),
    "tensorboard": ("train", "tensorboard"),
    "out": ("run", "out"),
    "name": ("run", "name"),
}


def add_data_flags(parser: argparse.ArgumentParser, defaults) -> None:
    group = parser.add_argument_group("data")
    data = defaults.data
    group.add_argument("--dataset", help=f"mnist-sample, mnist, fashion-mnist, kmnist, cifar10, digits, npz:PATH, folder:PATH (default: {data.dataset})")
    group.add_argument("--data-dir", help="folder holding the dataset files (default: $CONVSCOPE_DATA/<dataset>, then the cache)")
    group.add_argument("--scale", choices=["unit", "minmax", "centered", "standard"], help=f"pixel scaling (default: {data.scale})")
    group.add_argument("--val-split", type=float, help=f"fraction of training images for validation, held out as --validation says (default: {data.val_split})")
    group.add_argument("--validation", choices=["stratified", "random", "last", "test"], help=f"how --val-split is held out: per class, at random (scikit-learn's train_test_split), the last images (Keras' validation_split), or validate on the test set (leaks it into model selection; warned) (default: {data.validation})")
    group.add_argument("--val-seed", type=int, help="seeds the stratified or random split (default: --seed)")
    group.add_argument("--val-first", type=int, help="use the first N training images as validation instead of --val-split")
    group.add_argument("--test-split", type=float, help="pool training and test images and hold out this random fraction as the test set, as openml's mnist_784 with train_test_split (default: the source's own test set)")
    group.add_argument("--limit-train", type=int, help="keep only the first N training images")
    group.add_argument("--image-size", help="H,W to resize folder images to (default: size of the first image)")
    group.add_argument("--color-mode", choices=["grayscale", "rgb"], help="convert folder images to this mode (default: mode of the first image)")
    group.add_argument("--no-download", dest="allow_download", action="store_const", const=False, help="never download missing dataset files")


def add_model_flags(parser: argparse.ArgumentParser, defaults) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", help=f"zoo name (`convscope models`) or a YAML layer list (default: {defaults.model.name})")
    group.add_argument("--trust-model", action="store_const", const=True, help="allow legacy .h5 model files (they can run code)")
    group.add_argument("--weights", help=WEIGHTS_HELP.replace("loaded into --model", "to start from, loaded into --model"))


WEIGHTS_HELP = "HDF5 weights loaded into --model: .weights.h5 (Keras 3 save_weights) or .h5/.hdf5 (Keras 2, e.g. a lesson's model.weights.best.hdf5)"
IMPORT_FLAGS = ("weights", "trust_model", "config", "out", "name")  # with the data flags: only for --model


def add_import_flags(parser: argparse.ArgumentParser, defaults) -> None:
    """RUN, or --model FILE --dataset D: a stage takes a run folder, or imports a model file into a new one (open_or_import)."""
    parser.add_argument("run", nargs="?", help="run folder (or --model to import a model file into a new one)")
    group = parser.add_argument_group("a model made elsewhere, imported into a new run folder (instead of RUN)")
    group.add_argument("--model", help="a .keras file, a whole-model .h5 (with --trust-model), or an architecture (zoo name, YAML) with --weights")
    group.add_argument("--weights", help=WEIGHTS_HELP)
    group.add_argument("--trust-model", action="store_const", const=True, help="allow legacy .h5 model files and Lambda layers (they can run code)")
    add_data_flags(parser, defaults)
    add_output_flags(parser, defaults, "run folder name (default: <dataset>-<model file>-<time>)")


def add_train_flags(parser: argparse.ArgumentParser, defaults) -> None:
    group = parser.add_argument_group("training")
    train = defaults.train
    group.add_argument("--preset", help="a named recipe: fast, or a lesson's run (`convscope lessons`); flags still override it")
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
    group.add_argument("--tensorboard", action="store_const", const=True, help="write TensorBoard event logs into <run>/tensorboard/ (tensorboard --logdir runs)")
    group.add_argument("--keep", choices=["best", "last"], help=f"weights that end training and are evaluated: best val_loss or the last epoch's (default: {train.keep})")


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


def open_or_import(args) -> tuple[Path, object]:
    """The run folder a stage works on: RUN, or a new one that --model imports a model file into.

    Returns:
        (the folder, the pipeline's ImportedModel, whose model and dataset the stage can
        take instead of loading them again; None for RUN).
    """
    if args.model is None:
        if args.run is None:
            raise ConvscopeError(f"convscope {args.command}: pass a run folder, or a model file to import with --model FILE --dataset D")
        data_flags = [flag for flag, (section, _) in CONFIG_FLAGS.items() if section == "data"]
        given = [flag for flag in (*IMPORT_FLAGS, *data_flags) if getattr(args, flag, None) is not None]
        if given:
            raise ConvscopeError(
                f"--{given[0].replace('_', '-')} applies only with --model (importing a model file); "
                f"{args.run} has its own model and data: drop the flag, or pass --model instead of the run folder"
            )
        return Path(args.run), None
    if args.run is not None:
        raise ConvscopeError(f"pass either a run folder ({args.run}) or --model {args.model}, not both")
    from convscope.pipeline import import_model  # lazy: --help starts without TensorFlow

    imported = import_model(build_config(args))
    print(f"Run folder: {imported.run.path} (imported {args.model}{' with ' + args.weights if args.weights else ''})")
    return imported.run.path, imported


def in_memory(imported) -> dict:
    """The model and dataset an import already holds, as a stage's keyword arguments."""
    return {"model": imported.model, "dataset": imported.dataset} if imported is not None else {}


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
    from convscope.models import format_models_table  # lazy: --help starts without TensorFlow

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

    from convscope.view import serve_run  # lazy: --help starts without TensorFlow

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
    args = parser.parse_args(join_kernel_values(sys.argv[1:] if argv is None else list(argv)))
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
