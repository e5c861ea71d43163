"""A network written as a YAML list of Keras layers (``--model spec.yaml``).

    from convscope.models import create_model
    model = create_model("my_cnn.yaml", (28, 28, 1), num_classes=10)

The file lists layers in order, each a one-key mapping from a Keras layer name
to its arguments, spelled as in Keras::

    layers:
      - Conv2D: {filters: 32, kernel_size: 3, activation: relu}
      - MaxPooling2D: {pool_size: 2}
      - Flatten: {}
      - Dense: {units: num_classes, activation: softmax}

A bare top-level list works too. ``units`` (and ``filters``) may be the string
``num_classes``: the dataset's number of classes. The network must end with
``num_classes`` outputs; nothing is appended. Only the layers in
``ALLOWED_LAYERS`` are accepted, and argument values are plain YAML scalars or
lists, so a spec file cannot name arbitrary Python code. Every mistake is
reported with the file and line it comes from.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path

import keras
import yaml

from convscope.errors import ConvscopeError
from convscope.models.layers import FusedBatchNormalization
from convscope.models.zoo import describe_keras_error

ALLOWED_LAYERS = {
    "Conv2D": keras.layers.Conv2D,
    "MaxPooling2D": keras.layers.MaxPooling2D,
    "AveragePooling2D": keras.layers.AveragePooling2D,
    "GlobalMaxPooling2D": keras.layers.GlobalMaxPooling2D,
    "GlobalAveragePooling2D": keras.layers.GlobalAveragePooling2D,
    "Dropout": keras.layers.Dropout,
    "Flatten": keras.layers.Flatten,
    "Dense": keras.layers.Dense,
    "BatchNormalization": FusedBatchNormalization,  # Keras' layer, trained in one kernel on TensorFlow
    "Activation": keras.layers.Activation,
}

# Readable layer names (conv1, pool2, ...) instead of Keras' global counters
# (conv2d_7), so the summary reads the same every time the file is built.
NAME_PREFIXES = {
    "Conv2D": "conv",
    "MaxPooling2D": "pool",
    "AveragePooling2D": "pool",
    "GlobalMaxPooling2D": "global_pool",
    "GlobalAveragePooling2D": "global_pool",
    "Dropout": "dropout",
    "Flatten": "flatten",
    "Dense": "dense",
    "BatchNormalization": "batchnorm",
    "Activation": "activation",
}

NUM_CLASSES = "num_classes"  # placeholder value for units/filters
NUM_CLASSES_ARGUMENTS = ("units", "filters")


@dataclass
class LayerSpec:
    """One entry of a spec file."""

    layer_type: str  # a key of ALLOWED_LAYERS
    arguments: dict = field(default_factory=dict)  # Keras constructor arguments
    line: int = 0  # 1-based line in the YAML file


def allowed_arguments(layer_type: str) -> list[str]:
    """Return the constructor arguments a spec may give ``layer_type`` (its Keras signature, plus name)."""
    parameters = inspect.signature(ALLOWED_LAYERS[layer_type].__init__).parameters
    names = [
        name
        for name, parameter in parameters.items()
        if name != "self" and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL)
    ]
    return names if "name" in names else [*names, "name"]


def read_spec(path: str | Path) -> list[LayerSpec]:
    """Parse a spec file into LayerSpecs, checking layer and argument names.

    Args:
        path: a .yaml/.yml file holding a layer list.

    Returns:
        The layers in order, each with the line it was written on.

    Raises:
        ConvscopeError: the file is missing or not valid YAML, or names an unknown layer or argument.

    Example:
        >>> [spec.layer_type for spec in read_spec("my_cnn.yaml")]   # doctest: +SKIP
        ['Conv2D', 'MaxPooling2D', 'Flatten', 'Dense']
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConvscopeError(f"{path}: model spec not found; pass a registered model name or an existing .yaml layer list") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConvscopeError(f"{path}: cannot read the model spec ({error})") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error)
        raise ConvscopeError(f"{where}: not valid YAML ({problem}); fix the syntax of the layer list") from None

    example = "expected `layers:` followed by a list like `- Conv2D: {filters: 32, kernel_size: 3}`"
    if root is None:
        raise ConvscopeError(f"{path}: the file is empty; {example}")
    if isinstance(root, yaml.MappingNode):
        for key_node, _ in root.value:
            if _scalar(key_node) != "layers":
                raise ConvscopeError(f"{path}:{_line(key_node)}: unknown top-level key '{_scalar(key_node)}'; {example}")
        if not root.value:
            raise ConvscopeError(f"{path}: no `layers:` key; {example}")
        root = root.value[-1][1]
    if not isinstance(root, yaml.SequenceNode) or not root.value:
        raise ConvscopeError(f"{path}:{_line(root)}: {example}")
    return [_read_layer(path, item) for item in root.value]


def _read_layer(path: Path, node: yaml.Node) -> LayerSpec:
    allowed = ", ".join(ALLOWED_LAYERS)
    if isinstance(node, yaml.ScalarNode):  # "- Flatten" with no arguments
        if node.value not in ALLOWED_LAYERS:
            raise ConvscopeError(f"{path}:{_line(node)}: unknown layer '{node.value}'; allowed layers: {allowed}")
        return LayerSpec(node.value, {}, _line(node))
    if not isinstance(node, yaml.MappingNode) or len(node.value) != 1:
        raise ConvscopeError(
            f"{path}:{_line(node)}: each list item must be one layer, e.g. `- Dense: {{units: 10}}`; "
            f"allowed layers: {allowed}"
        )
    key_node, arguments_node = node.value[0]
    layer_type = _scalar(key_node)
    if layer_type not in ALLOWED_LAYERS:
        raise ConvscopeError(f"{path}:{_line(key_node)}: unknown layer '{layer_type}'; allowed layers: {allowed}")
    if isinstance(arguments_node, yaml.ScalarNode) and arguments_node.value in ("", "~", "null"):
        return LayerSpec(layer_type, {}, _line(key_node))  # "- Flatten:" with nothing after it
    if not isinstance(arguments_node, yaml.MappingNode):
        raise ConvscopeError(
            f"{path}:{_line(arguments_node)}: arguments of {layer_type} must be a mapping like {{name: value}}"
        )
    names = allowed_arguments(layer_type)
    arguments = {}
    for argument_node, value_node in arguments_node.value:
        argument = _scalar(argument_node)
        if argument not in names:
            raise ConvscopeError(
                f"{path}:{_line(argument_node)}: unknown argument '{argument}' for {layer_type}; "
                f"allowed: {', '.join(names)}"
            )
        if argument in arguments:
            raise ConvscopeError(f"{path}:{_line(argument_node)}: argument '{argument}' of {layer_type} given twice")
        if isinstance(value_node, yaml.MappingNode) or (
            isinstance(value_node, yaml.SequenceNode) and not all(isinstance(item, yaml.ScalarNode) for item in value_node.value)
        ):
            raise ConvscopeError(
                f"{path}:{_line(value_node)}: {layer_type}.{argument} must be a number, a string or a list of numbers"
            )
        try:
            arguments[argument] = yaml.constructor.SafeConstructor().construct_object(value_node, deep=True)
        except yaml.YAMLError as error:  # e.g. a !!python/... tag, which safe loading refuses
            problem = getattr(error, "problem", None) or str(error)
            raise ConvscopeError(f"{path}:{_line(value_node)}: {layer_type}.{argument}: {problem}") from None
    return LayerSpec(layer_type, arguments, _line(key_node))


def _scalar(node: yaml.Node) -> str:
    return node.value if isinstance(node, yaml.ScalarNode) else f"<{type(node).__name__}>"


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def build_model_from_specs(
    layer_specs: list[LayerSpec], input_shape: tuple, num_classes: int, name: str = "spec", source: str = "spec"
) -> keras.Model:
    """Build a functional model from LayerSpecs for ``input_shape`` and ``num_classes``.

    Args:
        layer_specs: from ``read_spec``.
        input_shape: one image's shape, e.g. (28, 28, 1).
        num_classes: replaces the value ``num_classes`` and must equal the model's output size.
        name: the model's name.
        source: the file the specs came from, for error messages.

    Returns:
        A built, uncompiled functional keras.Model.

    Raises:
        ConvscopeError: Keras refuses an argument value, a layer cannot take its input,
            or the output size is not ``num_classes``; the message names the line.
    """
    inputs = keras.Input(tuple(input_shape))
    outputs = inputs
    name_lines: dict[str, int] = {}  # layer name -> line, to refuse a name used twice
    counters: dict[str, int] = {}
    for spec in layer_specs:
        where = f"{source}:{spec.line}: {spec.layer_type}"
        arguments = {
            key: num_classes if key in NUM_CLASSES_ARGUMENTS and value == NUM_CLASSES else value
            for key, value in spec.arguments.items()
        }
        if "name" not in arguments:
            prefix = NAME_PREFIXES[spec.layer_type]
            counters[prefix] = counters.get(prefix, 0) + 1
            arguments["name"] = f"{prefix}{counters[prefix]}"
        try:
            layer = ALLOWED_LAYERS[spec.layer_type](**arguments)
        except (ValueError, TypeError) as error:
            raise ConvscopeError(
                f"{where}: Keras refused the arguments {spec.arguments}: {describe_keras_error(error)}"
            ) from None
        if layer.name in name_lines:
            raise ConvscopeError(
                f"{where}: layer name '{layer.name}' already used on line {name_lines[layer.name]}; "
                "give each layer its own name"
            )
        name_lines[layer.name] = spec.line
        try:
            outputs = layer(outputs)
        except (ValueError, TypeError) as error:
            raise ConvscopeError(
                f"{where}: fails on its input of shape {tuple(outputs.shape[1:])}: {describe_keras_error(error)}"
            ) from None

    output_shape = tuple(outputs.shape[1:])
    if output_shape != (num_classes,):
        last = layer_specs[-1]
        if last.layer_type == "Dense" and len(output_shape) == 1:
            raise ConvscopeError(
                f"{source}:{last.line}: the last Dense has {output_shape[0]} units but the dataset has "
                f"{num_classes} classes; write `units: num_classes`"
            )
        raise ConvscopeError(
            f"{source}: the model outputs shape {output_shape} per image, expected ({num_classes},) "
            "(one score per class); end the list with `- Dense: {units: num_classes, activation: softmax}`"
        )
    # Functional rather than Sequential: each layer has been called exactly once,
    # so layer.output is defined for activation maps.
    return keras.Model(inputs, outputs, name=name)


def create_model_from_spec(path: str | Path, input_shape: tuple, num_classes: int) -> keras.Model:
    """Read a YAML layer list and build it (see the module docstring for the format).

    Example:
        >>> model = create_model_from_spec("my_cnn.yaml", (28, 28, 1), 10)   # doctest: +SKIP
    """
    path = Path(path)
    name = "".join(character if character.isalnum() else "_" for character in path.stem)
    return build_model_from_specs(read_spec(path), input_shape, num_classes, name=name, source=str(path))
