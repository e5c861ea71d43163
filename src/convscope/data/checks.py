"""Degenerate datasets, refused before anything trains: one line naming the dataset, the counts and the fix.

A classifier needs two classes, and every class needs images in every split it
is scored on: a class never seen in training cannot be learned, one missing
from validation or test is never measured. ``prepare_dataset`` calls both
checks for every source (npz, folders, the named datasets): ``check_classes``
on the labels as the source delivered them, ``check_splits`` on the labels of
each split once the validation (and any --test-split) split is made. Only
labels are read, so a streamed dataset is checked before any image is decoded.

    from convscope.data.checks import check_classes, check_splits
    check_classes("folder:pets", ["cat"], y_train, y_test)            # ConvscopeError: 1 class ...
    check_splits("folder:pets", class_names, y_train, y_val, y_test, config.data)

The cases and their messages are listed in README.md ("Degenerate datasets").
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from convscope.config import DataConfig
from convscope.data.folder import TEST_FRACTION, split_folders
from convscope.errors import ConvscopeError

MAX_NAMED = 3  # classes named in one message; the rest are counted


def _counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    return np.bincount(labels, minlength=num_classes)[:num_classes] if labels.size else np.zeros(num_classes, dtype=np.int64)


def _named(class_names: list[str], labels: np.ndarray) -> str:
    """"'cat'" or "'cat', 'dog' (and 4 more)" for the first few of ``labels``."""
    shown = ", ".join(f"'{class_names[label]}'" for label in labels[:MAX_NAMED])
    return shown + (f" (and {len(labels) - MAX_NAMED} more)" if len(labels) > MAX_NAMED else "")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _folder_root(dataset: str) -> Path | None:
    return Path(dataset[len("folder:"):]).expanduser() if dataset.startswith("folder:") else None


def check_classes(dataset: str, class_names: list[str], train_labels: np.ndarray, test_labels: np.ndarray) -> None:
    """Refuse fewer than two classes, and a listed class with no image at all.

    Args:
        dataset: the dataset as the user named it (``folder:PATH``, ``npz:PATH``, ``mnist``), for the message.
        class_names: one name per class, in label order.
        train_labels, test_labels: the labels as the source delivered them.

    Raises:
        ConvscopeError: one line with the counts and the fix.

    Example:
        >>> check_classes("folder:pets", ["cat"], np.zeros(4, int), np.zeros(1, int))
        Traceback (most recent call last):
        ConvscopeError: folder:pets: 1 class ('cat', 5 images); expected at least 2 classes ...
    """
    counts = _counts(train_labels, len(class_names)) + _counts(test_labels, len(class_names))
    if len(class_names) < 2:
        root = _folder_root(dataset)
        where = f"class folder beside {split_folders(root)[0] / class_names[0]}" if root is not None and class_names else "class, labelled 1, 2, ..."
        found = f"'{class_names[0]}', {_plural(int(counts.sum()), 'image')}" if class_names else "no images"
        raise ConvscopeError(
            f"{dataset}: {len(class_names)} class ({found}); expected at least 2 classes for a classifier to tell apart; "
            f"add images of a second {where}"
        )
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        raise ConvscopeError(
            f"{dataset}: {'class' if len(empty) == 1 else 'classes'} {_named(class_names, empty)} (label {int(empty[0])}{'' if len(empty) == 1 else ', ...'}) "
            f"{'has' if len(empty) == 1 else 'have'} no images in training or test, "
            f"though {len(class_names)} classes are listed; expected images of every class 0..{len(class_names) - 1}; "
            "add images with that label, or renumber the labels (and class_names) without gaps"
        )


def check_splits(
    dataset: str, class_names: list[str], train_labels: np.ndarray, val_labels: np.ndarray, test_labels: np.ndarray, config: DataConfig | None = None
) -> None:
    """Refuse an empty validation split that was asked for, and a class missing from any split.

    Args:
        dataset: the dataset's name, for the message.
        class_names: one name per class.
        train_labels, val_labels, test_labels: the labels of the final splits (after val_first, limit_train, test_split).
        config: the data settings that made the splits, for the fix; None for a caller's own Dataset
            (an empty validation split is then taken as meant).

    Raises:
        ConvscopeError: one line naming the split, the class and its counts per split, what is expected and the fix.
    """
    num_classes = len(class_names)
    on_test = config is not None and config.validation == "test"
    asked = config is not None and not on_test and (config.val_first > 0 or config.val_split > 0)
    if asked and len(val_labels) == 0:
        total = len(train_labels)
        raise ConvscopeError(
            f"{dataset}: val_split {config.val_split:g} of {total} training images holds out no validation images "
            f"({config.validation}: {config.val_split:g} of each class, rounded); expected at least 1; "
            f"raise --val-split to {1 / total:.2g} or more, add images, or pass --val-split 0 to train without validation"
        )
    train, test = _counts(train_labels, num_classes), _counts(test_labels, num_classes)
    val = test if on_test else _counts(val_labels, num_classes)
    checked = [("training", train, _train_fix), ("test", test, _test_fix)]
    if len(val_labels) and not on_test:
        checked.append(("validation", val, _validation_fix))
    for split, counts, fix in checked:
        missing = np.flatnonzero(counts == 0)
        if not len(missing):
            continue
        label = int(missing[0])
        total = int(train[label] + test[label] + (0 if on_test else val[label]))
        name = class_names[label]
        which = f"class {_named(class_names, missing)} has" if len(missing) == 1 else f"classes {_named(class_names, missing)} have"
        raise ConvscopeError(
            f"{dataset}: {which} no {split} images "
            f"('{name}': {_plural(total, 'image')}, train {train[label]}, validation {val[label]}, test {test[label]}); "
            f"expected every class in every split; {fix(dataset, name, label, config)}"
        )


def _train_fix(dataset: str, name: str, label: int, config: DataConfig | None) -> str:
    if config is not None and config.limit_train > 0:
        return f"--limit-train {config.limit_train} keeps only the first {config.limit_train} training images: raise it or drop it"
    if config is not None and config.val_first > 0:
        return f"--val-first {config.val_first} takes every '{name}' image for validation: lower it"
    return f"add training images of '{name}' ({_where(dataset, name, label, 'train')})"


def _validation_fix(dataset: str, name: str, label: int, config: DataConfig) -> str:
    if config.val_first > 0:
        return f"the first {config.val_first} training images hold no '{name}': raise --val-first, or use --val-split with --validation stratified"
    if config.validation != "stratified":
        return f"use --validation stratified (it holds out {config.val_split:g} of each class), add images, or pass --val-split 0"
    needed = math.ceil(1 / config.val_split)
    return (
        f"stratified {config.val_split:g} of a class holds one out from about {needed} images: give '{name}' at least {needed} training images, "
        "raise --val-split, or pass --val-split 0 to train without validation"
    )


def _test_fix(dataset: str, name: str, label: int, config: DataConfig | None) -> str:
    if config is not None and config.test_split > 0:
        return f"raise --test-split (now {config.test_split:g}) so the random test set catches '{name}', or add images of it"
    root = _folder_root(dataset)
    if root is not None and split_folders(root)[1] is None:
        needed = math.ceil(1 / TEST_FRACTION)
        return (
            f"a stratified {TEST_FRACTION:.0%} of each class is held out for testing: give '{name}' at least {needed} images, "
            f"or put your own test images in {root / 'test'}/<class>/ beside {root / 'train'}/<class>/"
        )
    return f"add test images of '{name}' ({_where(dataset, name, label, 'test')})"


def _where(dataset: str, name: str, label: int, split: str) -> str:
    """Where images of one class and split go, for each kind of source."""
    root = _folder_root(dataset)
    if root is not None:
        train_root, test_root = split_folders(root)
        folder = test_root if split == "test" and test_root is not None else train_root
        return f"in {folder / name}/"
    if dataset.startswith("npz:"):
        return f"labelled {label} in x_{split}, y_{split}"
    return f"labelled {label}"


def check_dataset(dataset) -> None:
    """``check_classes`` and ``check_splits`` on a caller's own ``Dataset`` (``train(config, dataset=...)``).

    Raises:
        ConvscopeError: no training images, fewer than two classes, or a class missing from a split.
    """
    if len(dataset.y_train) == 0:
        raise ConvscopeError(f"{dataset.name}: no training images; expected at least one image of each class in x_train")
    check_classes(dataset.name, dataset.class_names, dataset.y_train, np.concatenate([dataset.y_val, dataset.y_test]))
    check_splits(dataset.name, dataset.class_names, dataset.y_train, dataset.y_val, dataset.y_test)
