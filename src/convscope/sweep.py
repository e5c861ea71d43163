"""The sweep: several models trained in turn on one dataset, then compared.

    from convscope.config import resolve_config
    from convscope.sweep import sweep
    config = resolve_config(overrides={"data": {"dataset": "mnist-sample"}, "train": {"epochs": 3}})
    result = sweep(["mlp_512", "cnn_2conv", "sklearn-mlp-16x16"], config)
    print(result.compare_path)                 # runs/sweep-mnist-sample/compare.html

Each model gets ``<out>/<sweep name>/<model>`` and goes through train then
evaluate; a ``sklearn-*`` name trains a scikit-learn baseline instead
(``convscope.baseline``). A run whose evaluate stage has finished
(``RunFolder.state``) is skipped, so re-running the same command after
Ctrl-C (or a crash) continues where it stopped: a run interrupted during
training resumes from its last complete epoch, a trained but unevaluated run
is only evaluated. A finished run trained with other settings is refused
rather than silently mixed into the comparison.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from convscope.baseline import baseline_config
from convscope.compare import compare_runs, format_leaderboard
from convscope.config import FIND, Config, config_to_dict, is_baseline_name
from convscope.data.augment import resolve_augment
from convscope.errors import ConvscopeError, TrainingInterrupted
from convscope.html.compare_page import write_compare_html
from convscope.pipeline import evaluate_run, train_and_evaluate, train_baseline
from convscope.runfolder import RunFolder
from convscope.text import slugify

logger = logging.getLogger(__name__)

# Settings that may differ between a finished run and the sweep asking for it:
# where the run lives, and what the sweep sets per model.
IGNORED_SETTINGS = {("run", "out"), ("run", "name"), ("model", "name")}


@dataclass
class SweepResult:
    """What a sweep trained, skipped, and where the comparison is."""

    folder: Path  # <out>/<sweep name>
    runs: list[Path]  # one run folder per model, in the order given
    trained: list[str]  # models trained (or resumed, or evaluated) by this call
    skipped: list[str]  # models whose finished run was reused
    compare_path: Path | None  # compare.html, None when there was nothing to compare
    leaderboard: str  # the terminal table


def default_sweep_name(config: Config) -> str:
    """``sweep-<dataset>``: no time stamp, so running the same sweep again finds its runs."""
    dataset = config.data.dataset.split(":", 1)[-1]
    return f"sweep-{slugify(Path(dataset).name, fallback='data')}"


def check_same_settings(run: RunFolder, saved: Config, wanted: Config) -> None:
    """Refuse to reuse a run whose config.yaml (``saved``) differs from what the sweep would train now."""
    saved = config_to_dict(saved)
    current = config_to_dict(wanted)
    differences = [
        f"{section}.{key}: run has {saved[section].get(key)!r}, sweep asks {value!r}"
        for section, values in current.items()
        for key, value in values.items()
        if (section, key) not in IGNORED_SETTINGS and saved[section].get(key) != value
    ]
    if differences:
        raise ConvscopeError(
            f"{run.path}: holds a run with other settings ({'; '.join(differences)}); "
            "re-run with the sweep's original flags, choose another --name, or delete that folder"
        )


def with_found_rate(saved: Config, wanted: Config) -> Config:
    """``--learning-rate find`` asks for the rate a run's finder found: once found, the run's own (``saved``, to skip or resume it)."""
    saved = saved.train
    if wanted.train.learning_rate != FIND or not saved.learning_rate_found:
        return wanted
    return dataclasses.replace(wanted, train=dataclasses.replace(wanted.train, learning_rate=saved.learning_rate, learning_rate_found=True))


def with_resolved_augment(run: RunFolder, wanted: Config) -> Config:
    """``--augment default`` is decided by the images: resolved for the run's own input shape, as its config.yaml holds it."""
    data = run.read_data_description()
    if not wanted.train.augment or not data.get("input_shape"):
        return wanted
    channels_first = (data.get("preprocessing") or {}).get("image_data_format") == "channels_first"
    resolved = resolve_augment(wanted.train.augment, tuple(data["input_shape"]), channels_first)
    return dataclasses.replace(wanted, train=dataclasses.replace(wanted.train, augment=resolved))


def model_config(config: Config, model: str, folder: Path) -> Config:
    """The sweep's config for one model: its own name, the run folder <folder>/<model>.

    A baseline keeps scikit-learn's own recipe (``baseline_config``): the sweep's
    training flags are for the Keras models; only the seed is shared.
    """
    wanted = dataclasses.replace(
        config,
        data=dataclasses.replace(config.data),
        model=dataclasses.replace(config.model, name=model),
        train=dataclasses.replace(config.train),
        run=dataclasses.replace(config.run, out=str(folder), name=_folder_name(model)),
    )
    return baseline_config(wanted) if is_baseline_name(model) else wanted


def _folder_name(model: str) -> str:
    """A zoo name is its own folder name; a YAML layer list becomes its file stem."""
    return Path(model).stem if model.endswith((".yaml", ".yml")) else model


def sweep(models: list[str], config: Config) -> SweepResult:
    """Train and evaluate each model in turn into ``<out>/<name>/<model>``, then compare them.

    Args:
        models: zoo names, YAML layer lists, or baseline names (``sklearn-mlp-16x16``,
            ``sklearn-mlp-40``, ``sklearn-logistic``).
        config: the shared settings (dataset, training recipe); ``config.run.name``
            names the sweep folder (default ``sweep-<dataset>``).

    Returns:
        SweepResult.

    Raises:
        ConvscopeError: no models, a repeated model, a finished run with other
            settings; TrainingInterrupted on Ctrl-C (finished runs are kept).

    Example:
        >>> sweep(["mlp_512", "cnn_single"], resolve_config(overrides={"train": {"epochs": 2}}))  # doctest: +SKIP
    """
    models = [model.strip() for model in models if model.strip()]
    if not models:
        raise ConvscopeError("--models is empty; expected comma-separated model names, e.g. mlp_512,cnn_2conv")
    folders = [_folder_name(model) for model in models]
    repeated = sorted({name for name in folders if folders.count(name) > 1})
    if repeated:
        raise ConvscopeError(f"--models names {', '.join(repeated)} more than once; list each model once")
    folder = Path(config.run.out) / (config.run.name or default_sweep_name(config))
    trained, skipped, runs = [], [], []
    for position, model in enumerate(models, start=1):
        wanted = model_config(config, model, folder)
        run = RunFolder(folder / wanted.run.name)
        runs.append(run.path)
        state = run.state()
        if run.config_path.is_file():
            saved = run.read_config()
            wanted = with_resolved_augment(run, with_found_rate(saved, wanted))
            check_same_settings(run, saved, wanted)
        if state == "finished":
            logger.info("[%d/%d] %s: finished run in %s, skipped", position, len(models), model, run.path)
            skipped.append(model)
            continue
        logger.info("[%d/%d] %s: %s", position, len(models), model, "resuming" if state == "partial" else "training" if state == "new" else "evaluating")
        try:
            finish_run(wanted, run, state)
        except (TrainingInterrupted, KeyboardInterrupt):
            kept = ", ".join(skipped + trained) or "none"
            raise TrainingInterrupted(
                f"sweep interrupted during {model}; finished runs kept in {folder}: {kept}; "
                "run the same command again to continue (finished runs are skipped, an interrupted one resumes)"
            ) from None
        trained.append(model)
    comparison = compare_runs(runs)
    compare_path = write_compare_html(comparison, folder / "compare.html")
    return SweepResult(folder, runs, trained, skipped, compare_path, format_leaderboard(comparison))


def finish_run(config: Config, run: RunFolder, state: str) -> None:
    """Bring one run to ``finished``: train (or resume) unless trained, then evaluate."""
    if is_baseline_name(config.model.name):
        train_baseline(config, overwrite=True)  # fits, evaluates and writes the whole folder in one go: an unfinished one is redone
    elif state in ("new", "partial"):
        train_and_evaluate(config, resume=state == "partial")
    else:
        evaluate_run(run.path)
