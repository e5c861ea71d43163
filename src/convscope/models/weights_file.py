"""Weights files: what an HDF5 file holds, and loading its weights into an architecture.

    from convscope.models import create_model, load_weights
    model = create_model("cnn_pool_dense64", (28, 28, 1), 10)
    load_weights(model, "model.weights.best.hdf5")        # the CNN lesson's ModelCheckpoint file

Three kinds of HDF5 file carry a model's weights; they are told apart by what
they hold, not by their names:

- Keras 3 ``model.save_weights("x.weights.h5")``: groups ``layers/<layer>/vars``;
- Keras 2 ``model.save_weights("x.h5")`` (or ``.hdf5``): a ``layer_names``
  attribute and one group per layer;
- a whole model saved in HDF5 (Keras 2, or Keras 3's legacy ``model.save("x.h5")``):
  the same layer groups under ``model_weights``, beside the architecture in the
  ``model_config`` attribute. The lessons' ``ModelCheckpoint("model.weights.best.hdf5")``
  writes this kind, despite its name, since it does not pass ``save_weights_only``.

Reading weights runs nothing from the file: h5py reads arrays and attributes, and
the architecture JSON of a whole model is not deserialized, so no --trust-model
is needed. Before Keras assigns anything, the file's arrays are matched with the
architecture's layers: a mismatch is one line naming the layer and both shapes
(Keras' own message prints the whole variable), and arrays the architecture has
no place for are an error (Keras 3 skips them without a word).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import h5py
import keras

from convscope.errors import ConvscopeError
from convscope.keras_compat import saved_weight_layout
from convscope.models.zoo import describe_keras_error

KERAS3_WEIGHTS = "Keras 3 weights"  # model.save_weights("x.weights.h5")
LEGACY_WEIGHTS = "Keras 2 weights"  # model.save_weights("x.h5") before Keras 3
LEGACY_MODEL = "HDF5 whole model"  # model.save("x.h5"): architecture and weights
KERAS_ARCHIVE = "Keras archive"  # model.save("x.keras")
MAX_LAYERS_LISTED = 8  # a message names at most this many layers of each side


def read_hdf5_kind(path: str | Path) -> str:
    """Which kind of Keras HDF5 file ``path`` is: KERAS3_WEIGHTS, LEGACY_WEIGHTS or LEGACY_MODEL.

    Raises:
        ConvscopeError: the file is missing, not HDF5, or HDF5 without Keras weights.

    Example:
        >>> read_hdf5_kind("model.weights.best.hdf5")   # doctest: +SKIP
        'HDF5 whole model'
    """
    path = Path(path)
    if not path.is_file():
        raise ConvscopeError(f"{path}: file not found; pass the path of a Keras weights or model file")
    try:
        with h5py.File(path, "r") as handle:
            if "model_config" in handle.attrs:
                return LEGACY_MODEL
            if _has_attribute(handle.attrs, "layer_names"):
                return LEGACY_WEIGHTS
            if isinstance(handle.get("layers"), h5py.Group) or isinstance(handle.get("vars"), h5py.Group):
                return KERAS3_WEIGHTS
    except OSError as error:
        raise ConvscopeError(
            f"{path}: not a readable HDF5 file ({' '.join(str(error).split())[:120]}); "
            "pass a file written by Keras' model.save_weights or model.save"
        ) from None
    raise ConvscopeError(
        f"{path}: an HDF5 file without Keras weights (no layer_names attribute, no layers/ group); "
        "pass a file written by Keras' model.save_weights or model.save"
    )


def load_weights(model: keras.Model, path: str | Path) -> keras.Model:
    """Load the weights of an HDF5 file into ``model``, after checking every layer's shapes.

    Args:
        model: a built architecture (``create_model(name, input_shape, num_classes)``).
        path: a Keras 3 ``.weights.h5``, a Keras 2 weights ``.h5``/``.hdf5``, or a
            whole model saved in HDF5 (only its weights are read).

    Returns:
        ``model``, its weights replaced.

    Raises:
        ConvscopeError: the file is not a weights file, or its layers or shapes do not
            fit ``model`` (one line naming the layer and both shapes).

    Example:
        >>> load_weights(create_model("cnn_2conv", (28, 28, 1), 10), "mnist.weights.h5")  # doctest: +SKIP
    """
    path = Path(path)
    if path.suffix.lower() == ".keras":
        raise ConvscopeError(
            f"{path}: a .keras file holds its own architecture; pass it as the model (--model {path}), without --weights"
        )
    kind = read_hdf5_kind(path)
    keras3_name = path.name.lower().endswith(".weights.h5")
    if kind == KERAS3_WEIGHTS and not keras3_name:
        raise ConvscopeError(
            f"{path}: holds Keras 3 weights, which Keras reads only from a file whose name ends in .weights.h5; "
            f"rename it to {path.stem}.weights.h5"
        )
    if kind != KERAS3_WEIGHTS and (keras3_name or path.suffix.lower() not in (".h5", ".hdf5")):
        raise ConvscopeError(
            f"{path}: holds {kind} in the Keras 2 layout, which Keras reads only from a file whose name ends in .h5 or .hdf5 "
            f"(not .weights.h5); rename it to {path.name.split('.')[0]}.hdf5"
        )
    check_weights_fit(model, path, kind)
    try:
        model.load_weights(path)
    except Exception as error:  # noqa: BLE001 - Keras raises ValueError, KeyError, OSError... for a file it cannot use
        raise ConvscopeError(
            f"{path}: Keras could not load these weights into {describe_architecture(model)} ({describe_keras_error(error)}); "
            "pass the architecture the file was saved from as --model"
        ) from None
    return model


def check_weights_fit(model: keras.Model, path: Path, kind: str) -> None:
    """Raise unless the file holds exactly one array of the right shape for every weight of ``model``.

    A model with nested layers (no flat layout) is not checked: Keras' loader judges it.

    Args:
        model: the built architecture.
        path: the HDF5 file.
        kind: ``read_hdf5_kind``'s answer; Keras 2 files are matched by layer order, Keras 3 by path.

    Raises:
        ConvscopeError: a damaged file, other layers than the model's, or a layer whose arrays
            differ in number or shape (with a hint for a class-count or channel mismatch).
    """
    legacy = kind != KERAS3_WEIGHTS
    layout = saved_weight_layout(model, legacy=legacy)
    if layout is None:
        return  # a layer with layers of its own: Keras' loader is the only judge
    try:
        saved = read_saved_shapes(path, kind)
    except (KeyError, ValueError, TypeError, OSError) as error:  # h5py's errors for a group or array that is not there
        raise ConvscopeError(
            f"{path}: a damaged {kind} file ({type(error).__name__}: {' '.join(str(error).split())[:120]}); "
            "save the weights again with Keras' model.save_weights"
        ) from None
    expected = [(where, layer, [tuple(weight.shape) for weight in layer.trainable_weights + layer.non_trainable_weights]) for where, layer in layout]
    if legacy:
        ours, theirs = [where for where, _, _ in expected], list(saved)
        pairs = list(zip(expected, saved.items())) if len(ours) == len(theirs) else None
    else:
        ours, theirs = [where for where, _, _ in expected], sorted(saved)
        pairs = [(entry, (entry[0], saved[entry[0]])) for entry in expected] if set(ours) == set(theirs) else None
    if pairs is None:
        raise ConvscopeError(
            f"{path}: holds weights for {len(theirs)} layers ({_list_layers(theirs)}), "
            f"{describe_architecture(model)} has {len(ours)} layers with weights ({_list_layers([layer.name for _, layer, _ in expected])}); "
            "pass the architecture the file was saved from as --model"
        )
    last = len(pairs) - 1
    for index, ((_, layer, shapes), (saved_name, saved_shapes)) in enumerate(pairs):
        if shapes == saved_shapes:
            continue
        if len(shapes) != len(saved_shapes):
            raise ConvscopeError(
                f"{path}: layer '{_display(saved_name)}' holds {len(saved_shapes)} arrays {_shapes(saved_shapes)}, "
                f"layer '{layer.name}' ({type(layer).__name__}) of {describe_architecture(model)} has {len(shapes)} {_shapes(shapes)}; "
                "pass the architecture the file was saved from as --model"
            )
        position = next(i for i, (ours_shape, theirs_shape) in enumerate(zip(shapes, saved_shapes)) if ours_shape != theirs_shape)
        weight_name = (layer.trainable_weights + layer.non_trainable_weights)[position].name
        ours_shape, theirs_shape = shapes[position], saved_shapes[position]
        hint, fix = "", "pass the architecture the file was saved from as --model, built for the images it was trained on (--dataset, --image-size)"
        if index == last and len(ours_shape) == len(theirs_shape) and ours_shape[:-1] == theirs_shape[:-1]:
            hint = f" (the file was saved for {theirs_shape[-1]} classes, the data has {ours_shape[-1]})"
            fix = "pass the dataset the weights were trained on with --dataset"
        elif index == 0 and len(ours_shape) == 4 and len(theirs_shape) == 4 and ours_shape[-2] != theirs_shape[-2]:
            hint = f" (the file was saved for images with {theirs_shape[-2]} channels, the data has {ours_shape[-2]})"
            fix = "pass the dataset the weights were trained on, or --color-mode for an image folder"
        raise ConvscopeError(
            f"{path}: layer '{_display(saved_name)}' holds a {weight_name} of shape {theirs_shape}, "
            f"layer '{layer.name}' of {describe_architecture(model)} needs {ours_shape}{hint}; {fix}"
        )


def read_saved_shapes(path: Path, kind: str) -> dict[str, list[tuple]]:
    """Where each layer's arrays sit in the file -> their shapes, for layers that hold any.

    Keras 2 layout: in the file's layer order (``layer_names``), each layer's arrays in
    ``weight_names`` order. Keras 3 layout: by path (``layers/conv2d``), each layer's
    arrays in ``vars/0, vars/1, ...`` order.

    Args:
        path: the HDF5 file.
        kind: ``read_hdf5_kind``'s answer.

    Returns:
        Layer name (Keras 2) or path (Keras 3) -> the shapes of its arrays, in file order.

    Raises:
        KeyError, ValueError, TypeError, OSError: h5py's, for a damaged file.
    """
    with h5py.File(path, "r") as handle:
        if kind != KERAS3_WEIGHTS:
            group = handle["model_weights"] if kind == LEGACY_MODEL else handle
            layers = {}
            for name in _read_names(group.attrs, "layer_names"):
                weight_names = _read_names(group[name].attrs, "weight_names")
                if weight_names:
                    layers[name] = [tuple(group[name][weight].shape) for weight in weight_names]
            return layers
        layers = {}

        def visit(name, item):
            if isinstance(item, h5py.Group) and (name == "vars" or name.endswith("/vars")) and len(item):
                keys = sorted(item, key=lambda key: int(key) if key.isdigit() else -1)
                layers[name[: -len("/vars")] if name != "vars" else ""] = [tuple(item[key].shape) for key in keys]

        handle.visititems(visit)
        return layers


def describe_architecture(model: keras.Model) -> str:
    """'cnn_2conv (built for (28, 28, 1) images and 10 classes)' for messages."""
    try:
        return f"{model.name} (built for {tuple(model.inputs[0].shape[1:])} images and {model.outputs[0].shape[-1]} classes)"
    except (AttributeError, IndexError, TypeError):
        return model.name


def describe_model_file(path: str | Path) -> dict:
    """What environment.json records about an imported file: path, format, the Keras that saved it, size, SHA-256.

    Example:
        >>> describe_model_file("lesson.keras")["format"]   # doctest: +SKIP
        'Keras archive'
    """
    path = Path(path)
    described = {"path": str(path), "format": None, "saved_by_keras": None, "bytes": path.stat().st_size}
    try:
        if path.suffix.lower() == ".keras":
            described["format"] = KERAS_ARCHIVE
            with zipfile.ZipFile(path) as archive:
                described["saved_by_keras"] = json.loads(archive.read("metadata.json")).get("keras_version")
        else:
            described["format"] = read_hdf5_kind(path)
            with h5py.File(path, "r") as handle:
                version = handle.attrs.get("keras_version") or handle.get("model_weights", handle).attrs.get("keras_version")
                described["saved_by_keras"] = version.decode() if isinstance(version, bytes) else (str(version) if version else None)
    except (KeyError, ValueError, OSError, zipfile.BadZipFile, ConvscopeError):
        pass  # the file loaded, so what it cannot tell about itself is left unknown
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    described["sha256"] = digest.hexdigest()
    return described


def _has_attribute(attrs, name: str) -> bool:
    return name in attrs or f"{name}0" in attrs  # Keras splits a long attribute into name0, name1, ...


def _read_names(attrs, name: str) -> list[str]:
    """A list-of-names attribute as Keras 2 wrote it: whole, or split into ``name0``, ``name1``, ... when long."""
    if name in attrs:
        values = list(attrs[name])
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in attrs:
            values.extend(attrs[f"{name}{chunk}"])
            chunk += 1
    return [value.decode("utf8") if isinstance(value, bytes) else str(value) for value in values]


def _display(saved_name: str) -> str:
    """A Keras 3 path ``layers/sequential/layers/dense`` as ``sequential/dense``; a Keras 2 group name as it is."""
    return saved_name.replace("layers/", "") or "(the model itself)"


def _list_layers(names: list[str]) -> str:
    shown = [_display(name) for name in names[:MAX_LAYERS_LISTED]]
    return ", ".join(shown) + (f", ... {len(names) - MAX_LAYERS_LISTED} more" if len(names) > MAX_LAYERS_LISTED else "")


def _shapes(shapes: list[tuple]) -> str:
    return "[" + ", ".join(str(shape) for shape in shapes) + "]"
