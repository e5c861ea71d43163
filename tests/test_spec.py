"""Contract tests for YAML layer lists (``--model spec.yaml``)."""

import keras
import numpy as np
import pytest

from convscope.errors import ConvscopeError
from convscope.models import ALLOWED_LAYERS, create_model, read_spec

EXAMPLE = """\
layers:
  - Conv2D: {filters: 32, kernel_size: 3, activation: relu}
  - MaxPooling2D: {pool_size: 2}
  - Flatten: {}
  - Dense: {units: 10, activation: softmax}
"""


def write(tmp_path, text, name="net.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_example_spec_builds_the_expected_network(tmp_path):
    model = create_model(write(tmp_path, EXAMPLE), (28, 28, 1), 10)
    # Same stack as the zoo's cnn_small: 320 + 5,408*10 + 10 = 54,410.
    assert model.count_params() == 54_410
    assert [layer.name for layer in model.layers[1:]] == ["conv1", "pool1", "flatten1", "dense1"]
    assert model.name == "net"
    probabilities = model.predict(np.zeros((2, 28, 28, 1), np.float32), verbose=0)
    assert probabilities.shape == (2, 10)
    # Every layer has one defined output, so activation maps can be read.
    for layer in model.layers[1:]:
        keras.Model(model.inputs, layer.output)


def test_bare_list_and_num_classes_placeholder(tmp_path):
    path = write(
        tmp_path,
        "- Conv2D: {filters: 8, kernel_size: [3, 3], padding: same}\n"
        "- BatchNormalization: {}\n"
        "- Activation: {activation: relu}\n"
        "- GlobalAveragePooling2D:\n"
        "- Dropout: {rate: 0.5}\n"
        "- Dense: {units: num_classes}\n",
    )
    model = create_model(path, (16, 16, 3), 4)
    assert tuple(model.outputs[0].shape) == (None, 4)
    # (3*3*3 + 1)*8 = 224; batchnorm 4*8 = 32; dense 8*4 + 4 = 36
    assert model.count_params() == 224 + 32 + 36


def test_every_allowed_layer_is_accepted(tmp_path):
    lines = {
        "Conv2D": "{filters: 4, kernel_size: 3, padding: same}",
        "BatchNormalization": "{}",
        "Activation": "{activation: relu}",
        "MaxPooling2D": "{pool_size: 2}",
        "AveragePooling2D": "{pool_size: 2}",
        "Dropout": "{rate: 0.1}",
        "GlobalMaxPooling2D": "{keepdims: true}",
        "GlobalAveragePooling2D": "{}",
        "Flatten": "{}",
        "Dense": "{units: num_classes, activation: softmax}",
    }
    assert set(lines) == set(ALLOWED_LAYERS)
    path = write(tmp_path, "layers:\n" + "".join(f"  - {name}: {args}\n" for name, args in lines.items()))
    assert [spec.layer_type for spec in read_spec(path)] == list(lines)
    assert tuple(create_model(path, (8, 8, 1), 3).outputs[0].shape) == (None, 3)


def test_unknown_layer_names_line_and_allowed_layers(tmp_path):
    path = write(tmp_path, EXAMPLE.replace("  - Flatten: {}", "  - Reshape: {target_shape: [10]}"))
    with pytest.raises(ConvscopeError, match=r"net.yaml:4: unknown layer 'Reshape'; allowed layers: Conv2D, ") as raised:
        create_model(path, (28, 28, 1), 10)
    assert "BatchNormalization" in str(raised.value)


def test_unknown_argument_names_line_and_allowed_arguments(tmp_path):
    path = write(
        tmp_path,
        "layers:\n"
        "  - Conv2D:\n"
        "      filters: 32\n"
        "      kernel: 3\n"
        "  - Flatten: {}\n"
        "  - Dense: {units: 10}\n",
    )
    with pytest.raises(ConvscopeError, match=r"net.yaml:4: unknown argument 'kernel' for Conv2D; allowed: filters, kernel_size"):
        create_model(path, (28, 28, 1), 10)


def test_bad_argument_value_names_layer_and_line(tmp_path):
    path = write(tmp_path, EXAMPLE.replace("{pool_size: 2}", "{pool_size: 2, padding: sideways}"))
    with pytest.raises(ConvscopeError, match=r"net.yaml:3: MaxPooling2D: .*padding.*sideways") as raised:
        create_model(path, (28, 28, 1), 10)
    assert "\n" not in str(raised.value) and "\x1b" not in str(raised.value)
    path = write(tmp_path, EXAMPLE.replace("filters: 32", "filters: many"))
    with pytest.raises(ConvscopeError, match=r"net.yaml:2: Conv2D: Keras refused the arguments"):
        create_model(path, (28, 28, 1), 10)
    path = write(tmp_path, EXAMPLE.replace("kernel_size: 3", "kernel_size: 40"))
    with pytest.raises(ConvscopeError, match=r"net.yaml:2: Conv2D: fails on its input of shape \(28, 28, 1\)"):
        create_model(path, (28, 28, 1), 10)
    path = write(tmp_path, EXAMPLE.replace("kernel_size: 3", "kernel_size: {nested: 1}"))
    with pytest.raises(ConvscopeError, match=r"net.yaml:2: Conv2D.kernel_size must be a number"):
        create_model(path, (28, 28, 1), 10)


def test_output_size_must_match_the_classes(tmp_path):
    with pytest.raises(ConvscopeError, match=r"net.yaml:5: the last Dense has 10 units but the dataset has 3 classes.*num_classes"):
        create_model(write(tmp_path, EXAMPLE), (28, 28, 1), 3)
    no_head = write(tmp_path, "- Conv2D: {filters: 4, kernel_size: 3}\n- Flatten:\n")
    with pytest.raises(ConvscopeError, match=r"outputs shape \(2704,\).*expected \(10,\)"):
        create_model(no_head, (28, 28, 1), 10)


def test_missing_file(tmp_path):
    with pytest.raises(ConvscopeError, match="missing.yaml: model spec not found"):
        create_model(tmp_path / "missing.yaml", (28, 28, 1), 10)


@pytest.mark.parametrize("text, message", [
    ("layers:\n  - Conv2D: {filters: 32\n  - Flatten: {}\n", r"net.yaml:3: not valid YAML"),
    ("layers:\n  - Flatten: {}\noptimizer: adam\n", r"net.yaml:3: unknown top-level key 'optimizer'"),
    ("layers:\n  - Flatten\n  - Lambda\n", r"net.yaml:3: unknown layer 'Lambda'"),
    ("- Dropout:\n    rate: !!python/object/apply:os.system [ls]\n", r"net.yaml:2: Dropout.rate: could not determine a constructor"),
    ("layers:\n  - {Flatten: {}, Dense: {units: 10}}\n", r"net.yaml:2: each list item must be one layer"),
    ("", r"net.yaml: the file is empty"),
])
def test_syntax_errors(tmp_path, text, message):
    with pytest.raises(ConvscopeError, match=message):
        create_model(write(tmp_path, text), (28, 28, 1), 10)


def test_layer_name_used_twice(tmp_path):
    path = write(tmp_path, "- Flatten: {name: features}\n- Dense: {units: 10, name: features}\n")
    with pytest.raises(ConvscopeError, match=r"net.yaml:2: Dense: layer name 'features' already used on line 1"):
        create_model(path, (28, 28, 1), 10)
