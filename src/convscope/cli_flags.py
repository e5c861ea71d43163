"""The command line's flags, shared by its commands, and how they become a config.

Every flag defaults to None, so only the flags a user gives override --config and
the defaults (`build_config`). A stage that takes RUN also takes a model file to
import instead (`add_import_flags`, `open_or_import`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from convscope.config import LR_FIND_DEFAULTS, resolve_config
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
    "stream": ("data", "stream"),
    "cache": ("data", "cache"),
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
    "augment": ("train", "augment"),
    "devices": ("train", "devices"),
    "out": ("run", "out"),
    "name": ("run", "name"),
}


def add_data_flags(parser: argparse.ArgumentParser, defaults) -> None:
    """Add the "data" group to ``parser``: --dataset, --data-dir, --scale, --val-split, --validation, --val-seed,
    --val-first, --test-split, --limit-train, --image-size, --color-mode, --stream, --cache, --no-download.

    Args:
        parser: the command's parser.
        defaults: the default Config, shown in the help.
    """
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
    group.add_argument("--stream", choices=["auto", "on", "off"], help="read images as training asks for them, in bounded memory: folders (auto, on) and .npz files of uncompressed uint8 images (on; auto above 512 MB); off: all loaded up front (default: auto)")
    group.add_argument("--cache", choices=["auto", "memory", "disk", "none"], help="keep streamed images once decoded: in memory, in a file under $CONVSCOPE_CACHE/images, or not at all; auto: memory when the decoded images take up to 512 MB, else disk (default: auto)")
    group.add_argument("--no-download", dest="allow_download", action="store_const", const=False, help="never download missing dataset files")


def add_model_flags(parser: argparse.ArgumentParser, defaults) -> None:
    """Add the "model" group to ``parser``: --model, --trust-model, --weights.

    Args:
        parser: the command's parser.
        defaults: the default Config, shown in the help.
    """
    group = parser.add_argument_group("model")
    group.add_argument("--model", help=f"zoo name (`convscope models`) or a YAML layer list (default: {defaults.model.name})")
    group.add_argument("--trust-model", action="store_const", const=True, help="allow legacy .h5 model files (they can run code)")
    group.add_argument("--weights", help=WEIGHTS_HELP.replace("loaded into --model", "to start from, loaded into --model"))


WEIGHTS_HELP = "HDF5 weights loaded into --model: .weights.h5 (Keras 3 save_weights) or .h5/.hdf5 (Keras 2, e.g. a lesson's model.weights.best.hdf5)"
IMPORT_FLAGS = ("weights", "trust_model", "config", "out", "name")  # with the data flags: only for --model


def add_import_flags(parser: argparse.ArgumentParser, defaults) -> None:
    """RUN, or --model FILE --dataset D: a stage takes a run folder, or imports a model file into a new one (open_or_import).

    Adds the optional positional RUN, --model, --weights, --trust-model, the data flags and the output flags.

    Args:
        parser: the stage's parser.
        defaults: the default Config, shown in the help.
    """
    parser.add_argument("run", nargs="?", help="run folder (or --model to import a model file into a new one)")
    group = parser.add_argument_group("a model made elsewhere, imported into a new run folder (instead of RUN)")
    group.add_argument("--model", help="a .keras file, a whole-model .h5 (with --trust-model), or an architecture (zoo name, YAML) with --weights")
    group.add_argument("--weights", help=WEIGHTS_HELP)
    group.add_argument("--trust-model", action="store_const", const=True, help="allow legacy .h5 model files and Lambda layers (they can run code)")
    add_data_flags(parser, defaults)
    add_output_flags(parser, defaults, "run folder name (default: <dataset>-<model file>-<time>)")


def add_train_flags(parser: argparse.ArgumentParser, defaults) -> None:
    """Add the "training" group to ``parser``: --preset, --epochs, --batch-size, --optimizer, --learning-rate,
    --schedule, --seed, --reduce-lr, --early-stop, --tensorboard, --augment, --keep.

    Args:
        parser: the command's parser.
        defaults: the default Config, shown in the help.
    """
    group = parser.add_argument_group("training")
    train = defaults.train
    group.add_argument("--preset", help="a named recipe: fast (about 99%% MNIST in one epoch), best (16 augmented epochs), or a lesson's run (`convscope lessons`); flags still override it")
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
    group.add_argument(
        "--augment", nargs="?", const="default", metavar="SPEC",
        help="augment training images on the fly (never validation or test): alone, the default set (shift=0.1,rotate=10,zoom=0.1,contrast=0.2, "
        "plus flip for RGB images only: a mirrored digit is no digit); or a list such as flip,shift=0.1,rotate=10,zoom=0.1,contrast=0.2; none: off",
    )
    group.add_argument("--keep", choices=["best", "last"], help=f"weights that end training and are evaluated: best val_loss or the last epoch's (default: {train.keep})")


def add_distribute_flags(parser: argparse.ArgumentParser) -> None:
    """Add the "several devices or workers" group to ``parser``: --devices, --local-workers.

    Args:
        parser: the train or run command's parser.
    """
    group = parser.add_argument_group("several devices or workers (README: Training on several machines)")
    group.add_argument(
        "--devices", metavar="N|all",
        help="train data-parallel over N of this machine's GPUs, or all (MirroredStrategy; without GPUs, N logical CPU devices); "
        "--batch-size stays the global batch. Across machines, set TF_CONFIG on each (see README)",
    )
    group.add_argument(
        "--local-workers", type=int, metavar="N",
        help="start N worker processes on this machine as a cluster (MultiWorkerMirroredStrategy on localhost ports) and "
        "print the TF_CONFIG each would get on real machines; worker 0 writes the run folder",
    )


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
    """Add the "sweep" group to ``parser``: --start-lr, --end-lr, --num-batches, defaulting to LR_FIND_DEFAULTS.

    Args:
        parser: the lr-find command's parser.
    """
    start, end, batches = LR_FIND_DEFAULTS
    group = parser.add_argument_group("sweep")
    group.add_argument("--start-lr", type=float, default=start, help=f"first rate of the sweep (default: {start:g})")
    group.add_argument("--end-lr", type=float, default=end, help=f"last rate of the sweep (default: {end:g})")
    group.add_argument("--num-batches", type=int, default=batches, help=f"batches the sweep runs unless the loss diverges first (default: {batches})")


def add_run_flags(parser: argparse.ArgumentParser, defaults) -> None:
    """Add the "run folder" group to ``parser``: --config, --out, --name, --resume.

    Args:
        parser: the command's parser.
        defaults: the default Config, shown in the help.
    """
    group = parser.add_argument_group("run folder")
    group.add_argument("--config", help="YAML config (e.g. a run's config.yaml); flags override it")
    group.add_argument("--out", help=f"parent folder of run folders (default: {defaults.run.out})")
    group.add_argument("--name", help="run folder name (default: <dataset>-<model>-<time>)")
    group.add_argument("--resume", metavar="RUN", help="continue the interrupted run in folder RUN from its last complete epoch")


def add_output_flags(parser: argparse.ArgumentParser, defaults, name_help: str) -> None:
    """Add the "output" group to ``parser``: --config, --out, --name.

    Args:
        parser: the command's parser.
        defaults: the default Config, shown in the help.
        name_help: the help of --name.
    """
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
