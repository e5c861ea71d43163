"""The model zoo: the classic lessons' architectures and their close relatives, looked up by name.

    from convscope.models import create_model, list_models
    model = create_model("mnist_convnet", (28, 28, 1), num_classes=10)
    [info.name for info in list_models()]

Each architecture is a function ``(input_shape, num_classes) -> keras.Model``
decorated with ``@register_model(name)``, which files it in ``MODELS``. What
`convscope models` lists about it (the input it was designed for, where it comes
from, its layers in words, its parameter count and multiply-adds) is its entry
in ``convscope.model_catalog.MODEL_CATALOG``, a module without Keras, so that
listing the zoo does not import TensorFlow; ``register_model`` refuses a name
the catalog lacks. Every builder returns a ``keras.Sequential`` that starts with
``keras.Input``, so the model has defined inputs and outputs from the start,
and ends in ``Dense(num_classes, softmax)``. Layers carry fixed, readable names
(conv1, pool1, dense1, predictions) so the summary and the report read the same
for every run.

The parameter counts are the ones the lessons printed (10 classes); each
docstring shows the arithmetic and ``tests/test_models.py`` checks it, and the
catalog's declared counts, against the built model. A model that differs from a
lesson's (mlp_512, cnn_small, mnist_convnet) says so in its origin and names the
zoo model that is the lesson's exact one; the lesson presets (``convscope
lessons``) use only the exact ones.
Add a model: its ``ZooEntry`` in model_catalog.py, then its builder here:

    @register_model("my_cnn")
    def my_cnn(input_shape, num_classes):
        return keras.Sequential([keras.Input(input_shape), ...], name="my_cnn")
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import keras
from keras import layers

from convscope.errors import ConvscopeError
from convscope.model_catalog import MODEL_CATALOG
from convscope.models.layers import FusedBatchNormalization


@dataclass(frozen=True)
class ModelInfo:
    """What `convscope models` lists for one architecture, with its input in Keras' image order."""

    name: str
    num_params: int  # for its default input and 10 classes
    mflops: float  # per image, forward pass, for its default input and 10 classes
    input_shape: tuple[int, ...]  # default input, in keras.config.image_data_format() order
    origin: str
    description: str


MODELS: dict[str, Callable[[tuple, int], keras.Model]] = {}  # name -> builder (input_shape, num_classes) -> model


def register_model(name: str):
    """Decorator: file a builder ``(input_shape, num_classes) -> keras.Model`` under ``name``.

    Args:
        name: the name users pass to ``create_model`` and ``--model``; its description,
            default input and counts are its entry in ``convscope.model_catalog.MODEL_CATALOG``.

    Returns:
        The decorator; it returns the builder unchanged.

    Raises:
        ConvscopeError: the catalog has no entry ``name``.

    Example:
        >>> @register_model("mnist_convnet")   # doctest: +SKIP
        ... def mnist_convnet(input_shape, num_classes): ...
    """
    if name not in MODEL_CATALOG:
        raise ConvscopeError(
            f"model '{name}' has no entry in convscope.model_catalog.MODEL_CATALOG; add its ZooEntry "
            "(input shape, parameters, multiply-adds, origin, description) there, then register its builder"
        )

    def decorator(build):
        assert name not in MODELS, f"model {name!r} registered twice"
        MODELS[name] = build
        return build

    return decorator


def image_shape(height: int, width: int, channels: int) -> tuple[int, int, int]:
    """Return an image shape in the order of ``keras.config.image_data_format()``."""
    if keras.config.image_data_format() == "channels_first":
        return (channels, height, width)
    return (height, width, channels)


def build_registered_model(name: str, input_shape: tuple, num_classes: int) -> keras.Model:
    """Build the registered architecture ``name`` for ``input_shape`` and ``num_classes``.

    Raises:
        ConvscopeError: ``name`` is not registered, or the architecture cannot take ``input_shape``.
    """
    if name not in MODELS:
        raise ConvscopeError(
            f"unknown model '{name}'; expected one of {', '.join(sorted(MODELS))} "
            "(see `convscope models`) or a path to a YAML layer list ending in .yaml"
        )
    try:
        return MODELS[name](tuple(input_shape), int(num_classes))
    except (ValueError, TypeError) as error:
        # Keras refuses, e.g., 3 pooling stages on an 8x8 image ("negative dimension").
        raise ConvscopeError(
            f"model '{name}' cannot take input shape {tuple(input_shape)}: {describe_keras_error(error)}; "
            f"it was designed for {image_shape(*MODEL_CATALOG[name].input_shape)}"
        ) from None


def describe_keras_error(error: Exception, limit: int = 300) -> str:
    """One plain line from a Keras exception (which may span lines, carry ANSI colours and a whole config)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and lines[0].startswith("Exception encountered when calling") and len(lines) > 1:
        lines = lines[1:]  # the first line only says which call failed; the reason follows
    message = lines[0].rstrip(".") if lines else type(error).__name__
    return message if len(message) <= limit else message[:limit] + "..."


def list_models() -> list[ModelInfo]:
    """Return every registered architecture, sorted by name.

    Returns:
        One ModelInfo per model: its catalog entry, the input in Keras' image order.

    Example:
        >>> [info.name for info in list_models()][:2]
        ['cifar_cnn', 'cifar_elu']
    """
    infos = []
    for name in sorted(MODELS):
        entry = MODEL_CATALOG[name]
        infos.append(ModelInfo(name, entry.num_params, entry.mflops, image_shape(*entry.input_shape), entry.origin, entry.description))
    return infos

def _mlp_512(input_shape, num_classes, dropout: float | None, name: str) -> keras.Model:
    """Flatten, two Dense 512 relu (each followed by Dropout ``dropout`` unless None), Dense softmax."""
    stack = [keras.Input(input_shape), layers.Flatten(name="flatten")]
    for index in (1, 2):
        stack.append(layers.Dense(512, activation="relu", name=f"dense{index}"))
        if dropout is not None:
            stack.append(layers.Dropout(dropout, name=f"dropout{index}"))
    return keras.Sequential([*stack, layers.Dense(num_classes, activation="softmax", name="predictions")], name=name)


def _cnn_small(input_shape, num_classes, dropouts: tuple[float, float] | None, name: str) -> keras.Model:
    """Conv 32 3x3 relu, MaxPool 2, Flatten, Dense softmax; ``dropouts``: rates after the pooling and after Flatten."""
    conv = [keras.Input(input_shape), layers.Conv2D(32, 3, activation="relu", name="conv1"), layers.MaxPooling2D(2, name="pool1")]
    if dropouts is None:
        head = [layers.Flatten(name="flatten")]
    else:
        head = [layers.Dropout(dropouts[0], name="dropout1"), layers.Flatten(name="flatten"), layers.Dropout(dropouts[1], name="dropout2")]
    return keras.Sequential([*conv, *head, layers.Dense(num_classes, activation="softmax", name="predictions")], name=name)


def _mnist_convnet(input_shape, num_classes, dropout: float, name: str) -> keras.Model:
    """Conv 32 3x3, MaxPool 2, Conv 64 3x3, MaxPool 2, Flatten, Dropout ``dropout``, Dense softmax."""
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Conv2D(32, 3, activation="relu", name="conv1"),
            layers.MaxPooling2D(2, name="pool1"),
            layers.Conv2D(64, 3, activation="relu", name="conv2"),
            layers.MaxPooling2D(2, name="pool2"),
            layers.Flatten(name="flatten"),
            layers.Dropout(dropout, name="dropout1"),
            layers.Dense(num_classes, activation="softmax", name="predictions"),
        ],
        name=name,
    )


# ---------------------------------------------------------------------------
# 28x28x1 (MNIST-style) lessons

@register_model("mlp_512")
def mlp_512(input_shape, num_classes):
    """Two hidden layers of 512: 669,706 parameters on 28x28x1, 10 classes.

    dense1: 784*512 + 512 = 401,920; dense2: 512*512 + 512 = 262,656;
    predictions: 512*10 + 10 = 5,130; total 669,706.
    """
    return _mlp_512(input_shape, num_classes, dropout=0.2, name="mlp_512")


@register_model("mlp_512_nodropout")
def mlp_512_nodropout(input_shape, num_classes):
    """The lecture's MLP, without mnist_mlp.py's Dropout: 669,706 parameters on 28x28x1, 10 classes.

    The arithmetic is mlp_512's (dropout learns nothing): 401,920 + 262,656 + 5,130 = 669,706.
    """
    return _mlp_512(input_shape, num_classes, dropout=None, name="mlp_512_nodropout")


@register_model("mlp_16x16")
def mlp_16x16(input_shape, num_classes):
    """Two hidden layers of 16: 13,002 parameters on 28x28x1, 10 classes.

    dense1: 784*16 + 16 = 12,560; dense2: 16*16 + 16 = 272; predictions: 16*10 + 10 = 170;
    total 13,002.
    """
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Flatten(name="flatten"),
            layers.Dense(16, activation="relu", name="dense1"),
            layers.Dense(16, activation="relu", name="dense2"),
            layers.Dense(num_classes, activation="softmax", name="predictions"),
        ],
        name="mlp_16x16",
    )


@register_model("cnn_single")
def cnn_single(input_shape, num_classes):
    """One convolution straight into the classifier: 216,650 parameters on 28x28x1, 10 classes.

    conv1: (3*3*1 + 1)*32 = 320, output 26x26x32; flatten: 26*26*32 = 21,632;
    predictions: 21,632*10 + 10 = 216,330; total 216,650.
    """
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Conv2D(32, 3, activation="relu", name="conv1"),
            layers.Flatten(name="flatten"),
            layers.Dense(num_classes, activation="softmax", name="predictions"),
        ],
        name="cnn_single",
    )


@register_model("cnn_dropout")
def cnn_dropout(input_shape, num_classes):
    """One convolution and a Dense 128 head with dropout: 2,770,634 parameters on 28x28x1, 10 classes.

    conv1: (3*3*1 + 1)*32 = 320, output 26x26x32; flatten: 26*26*32 = 21,632;
    dense1: 21,632*128 + 128 = 2,769,024; predictions: 128*10 + 10 = 1,290;
    total 2,770,634. Without pooling the flattened map is large, hence the 2.7M.
    """
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Conv2D(32, 3, activation="relu", name="conv1"),
            layers.Dropout(0.25, name="dropout1"),
            layers.Flatten(name="flatten"),
            layers.Dense(128, activation="relu", name="dense1"),
            layers.Dropout(0.5, name="dropout2"),
            layers.Dense(num_classes, activation="softmax", name="predictions"),
        ],
        name="cnn_dropout",
    )


@register_model("cnn_2conv")
def cnn_2conv(input_shape, num_classes):
    """The classic Keras mnist_cnn: 1,199,882 parameters on 28x28x1, 10 classes.

    conv1: (3*3*1 + 1)*32 = 320, 26x26x32; conv2: (3*3*32 + 1)*64 = 18,496, 24x24x64;
    pool1: 12x12x64; flatten: 9,216; dense1: 9,216*128 + 128 = 1,179,776;
    predictions: 128*10 + 10 = 1,290; total 1,199,882.
    """
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Conv2D(32, 3, activation="relu", name="conv1"),
            layers.Conv2D(64, 3, activation="relu", name="conv2"),
            layers.MaxPooling2D(2, name="pool1"),
            layers.Dropout(0.25, name="dropout1"),
            layers.Flatten(name="flatten"),
            layers.Dense(128, activation="relu", name="dense1"),
            layers.Dropout(0.5, name="dropout2"),
            layers.Dense(num_classes, activation="softmax", name="predictions"),
        ],
        name="cnn_2conv",
    )


@register_model("cnn_pool_dense64")
def cnn_pool_dense64(input_shape, num_classes):
    """Two 'same' conv/pool stages and a Dense 64 head: 220,234 parameters on 28x28x1, 10 classes.

    conv1: (3*3*1 + 1)*32 = 320, 28x28x32; pool1: 14x14x32;
    conv2: (3*3*32 + 1)*64 = 18,496, 14x14x64; pool2: 7x7x64; flatten: 3,136;
    dense1: 3,136*64 + 64 = 200,768; predictions: 64*10 + 10 = 650; total 220,234.
    """
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1"),
            layers.MaxPooling2D(2, name="pool1"),
            layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2"),
            layers.MaxPooling2D(2, name="pool2"),
            layers.Flatten(name="flatten"),
            layers.Dense(64, activation="relu", name="dense1"),
            layers.Dense(num_classes, activation="softmax", name="predictions"),
        ],
        name="cnn_pool_dense64",
    )


@register_model("cnn_small")
def cnn_small(input_shape, num_classes):
    """One convolution and one pooling: 54,410 parameters on 28x28x1, 10 classes.

    conv1: (3*3*1 + 1)*32 = 320, 26x26x32; pool1: floor(26/2) = 13, 13x13x32;
    flatten: 5,408; predictions: 5,408*10 + 10 = 54,090; total 54,410.
    """
    return _cnn_small(input_shape, num_classes, dropouts=None, name="cnn_small")


@register_model("cnn_small_dropout")
def cnn_small_dropout(input_shape, num_classes):
    """The blog post's CNN: cnn_small with its two Dropout layers, 54,410 parameters on 28x28x1, 10 classes.

    conv1: (3*3*1 + 1)*32 = 320, 26x26x32; pool1: 13x13x32; flatten: 5,408;
    predictions: 5,408*10 + 10 = 54,090; total 54,410 (dropout learns nothing).
    """
    return _cnn_small(input_shape, num_classes, dropouts=(0.25, 0.5), name="cnn_small_dropout")


@register_model("mnist_convnet")
def mnist_convnet(input_shape, num_classes):
    """The keras.io simple MNIST convnet: 34,826 parameters on 28x28x1, 10 classes.

    conv1: (3*3*1 + 1)*32 = 320, 26x26x32; pool1: 13x13x32;
    conv2: (3*3*32 + 1)*64 = 18,496, 11x11x64; pool2: floor(11/2) = 5, 5x5x64;
    flatten: 1,600; predictions: 1,600*10 + 10 = 16,010; total 34,826.
    """
    return _mnist_convnet(input_shape, num_classes, dropout=0.5, name="mnist_convnet")


@register_model("mnist_convnet_dropout02")
def mnist_convnet_dropout02(input_shape, num_classes):
    """mnist_convnet with the lesson's Dropout 0.2 instead of 0.5: 34,826 parameters on 28x28x1, 10 classes.

    The arithmetic is mnist_convnet's: 320 + 18,496 + 16,010 = 34,826.
    """
    return _mnist_convnet(input_shape, num_classes, dropout=0.2, name="mnist_convnet_dropout02")


@register_model("mnist_fast")
def mnist_fast(input_shape, num_classes):
    """A small conv net that learns MNIST to about 99% in one epoch: 109,066 parameters on 28x28x1, 10 classes.

    conv1: (5*5*1 + 1)*16 = 416, floor((28-5)/2) + 1 = 12, 12x12x16; norm1: 4*16 = 64 (32 trained);
    conv2: (3*3*16 + 1)*32 = 4,640, 10x10x32; pool2: 5x5x32; norm2: 4*32 = 128 (64 trained);
    flatten: 800; dense1: 800*128 + 128 = 102,528; predictions: 128*10 + 10 = 1,290;
    total 109,066.

    Multiply-adds per image: conv1 12*12*16*25 = 57,600; conv2 10*10*32*144 = 460,800;
    dense1 102,400; predictions 1,280; 0.62 M in all, 1.2 MFLOP forward and about
    3.7 MFLOP per training image (forward + backward), against 14.6 for mnist_convnet
    and 72 for cnn_2conv. The stride-2 first convolution never makes a full 26x26 map:
    the ReLU, pooling and their gradients on such maps cost more time than their FLOPs
    suggest. Batch normalization sits after the activation, in TensorFlow's fused kernel
    (FusedBatchNormalization); no dropout: one epoch is too few to overfit, and the best
    preset augments its images instead.
    """
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Conv2D(16, 5, strides=2, activation="relu", name="conv1"),
            # momentum 0.9, not Keras' 0.99: with 0.99 the moving statistics still held 12% of
            # their initial values after 211 steps, and such a 1-epoch run scored 11% on validation.
            FusedBatchNormalization(momentum=0.9, name="norm1"),
            layers.Conv2D(32, 3, activation="relu", name="conv2"),
            layers.MaxPooling2D(2, name="pool2"),
            FusedBatchNormalization(momentum=0.9, name="norm2"),
            layers.Flatten(name="flatten"),
            layers.Dense(128, activation="relu", name="dense1"),
            layers.Dense(num_classes, activation="softmax", name="predictions"),
        ],
        name="mnist_fast",
    )


# ---------------------------------------------------------------------------
# 32x32x3 (CIFAR-10-style) lessons

@register_model("cifar_cnn")
def cifar_cnn(input_shape, num_classes):
    """Three 'same' conv/pool stages doubling the filters: 541,094 parameters on 32x32x3, 10 classes.

    conv1: (3*3*3 + 1)*16 = 448, 32x32x16; pool1: 16x16x16;
    conv2: (3*3*16 + 1)*32 = 4,640, 16x16x32; pool2: 8x8x32;
    conv3: (3*3*32 + 1)*64 = 18,496, 8x8x64; pool3: 4x4x64; flatten: 1,024;
    dense1: 1,024*500 + 500 = 512,500; predictions: 500*10 + 10 = 5,010; total 541,094.
    """
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
            layers.MaxPooling2D(2, name="pool1"),
            layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
            layers.MaxPooling2D(2, name="pool2"),
            layers.Conv2D(64, 3, padding="same", activation="relu", name="conv3"),
            layers.MaxPooling2D(2, name="pool3"),
            layers.Dropout(0.3, name="dropout1"),
            layers.Flatten(name="flatten"),
            layers.Dense(500, activation="relu", name="dense1"),
            layers.Dropout(0.4, name="dropout2"),
            layers.Dense(num_classes, activation="softmax", name="predictions"),
        ],
        name="cifar_cnn",
    )


@register_model("cifar_elu")
def cifar_elu(input_shape, num_classes):
    """Strided convolutions instead of pooling, ELU: 73,498 parameters on 32x32x3, 10 classes.

    conv1: (5*5*3 + 1)*16 = 1,216; conv2: (3*3*16 + 1)*16 = 2,320;
    conv3 (stride 2, 16x16): (3*3*16 + 1)*32 = 4,640; conv4: (3*3*32 + 1)*32 = 9,248;
    conv5 (stride 2, 8x8): (3*3*32 + 1)*64 = 18,496; conv6: (3*3*64 + 1)*64 = 36,928;
    global max pool: 64; predictions: 64*10 + 10 = 650; total 73,498.
    """
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Conv2D(16, 5, padding="same", activation="elu", name="conv1"),
            layers.Conv2D(16, 3, padding="same", activation="elu", name="conv2"),
            layers.Conv2D(32, 3, strides=2, padding="same", activation="elu", name="conv3"),
            layers.Conv2D(32, 3, padding="same", activation="elu", name="conv4"),
            layers.Conv2D(64, 3, strides=2, padding="same", activation="elu", name="conv5"),
            layers.Conv2D(64, 3, padding="same", activation="elu", name="conv6"),
            layers.GlobalMaxPooling2D(name="global_pool"),
            layers.Dropout(0.5, name="dropout1"),
            layers.Dense(num_classes, activation="softmax", name="predictions"),
        ],
        name="cifar_elu",
    )
