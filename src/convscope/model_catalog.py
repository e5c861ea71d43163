"""The zoo's catalog: what `convscope models` lists, without importing Keras.

    convscope models                                    # the table below

    from convscope.model_catalog import MODEL_CATALOG, format_models_table
    MODEL_CATALOG["mnist_convnet"].num_params           # 34826
    print(format_models_table())

One ``ZooEntry`` per architecture of the zoo: the input it was designed for,
where it comes from, its layers in words, and its parameter count and
multiply-adds for that input and 10 classes. The counts are declared here, not
computed, so listing the zoo costs a fraction of a second instead of the five
of importing TensorFlow; ``tests/test_models.py`` builds every model and checks
each count, and that every catalog entry has a builder and every builder an
entry. The builders live in ``convscope.models.zoo``, whose ``@register_model``
takes the description from here. Add a model: its ``ZooEntry`` below, its
builder in zoo.py, and the two counts ``convscope summary NAME`` prints.

Plain data only: this module imports nothing from TensorFlow or Keras.
"""

from __future__ import annotations

from dataclasses import dataclass

from convscope.text import format_mflops, format_table

MNIST_SHAPE = (28, 28, 1)  # height, width, channels
CIFAR_SHAPE = (32, 32, 3)


@dataclass(frozen=True)
class ZooEntry:
    """One architecture of the zoo, as `convscope models` lists it."""

    name: str  # the name users pass to create_model and --model
    input_shape: tuple[int, int, int]  # (height, width, channels) it was designed for
    num_params: int  # parameters for input_shape and 10 classes, as model.count_params() gives them
    macs: int  # multiply-adds per image, forward pass, for input_shape and 10 classes (convscope summary's count)
    origin: str  # where the architecture comes from
    description: str  # one line: the layers in words

    @property
    def mflops(self) -> float:
        """Millions of floating-point operations per image, forward pass (2 per multiply-add)."""
        return 2 * self.macs / 1e6


MODEL_CATALOG: dict[str, ZooEntry] = {
    entry.name: entry
    for entry in (
        # 28x28x1 (MNIST-style) lessons
        ZooEntry(
            "mlp_512", MNIST_SHAPE, 669_706, 668_672,
            "Keras example mnist_mlp.py (the CNN lecture's MLP has no Dropout: mlp_512_nodropout)",
            "Flatten, Dense 512 relu, Dropout .2, Dense 512 relu, Dropout .2, Dense softmax",
        ),
        ZooEntry(
            "mlp_512_nodropout", MNIST_SHAPE, 669_706, 668_672,
            "CNN intuition lecture: the MLP before the convolutions",
            "Flatten, Dense 512 relu, Dense 512 relu, Dense softmax",
        ),
        ZooEntry(
            "mlp_16x16", MNIST_SHAPE, 13_002, 12_960,
            "MNIST lesson: smallest MLP",
            "Flatten, Dense 16 relu, Dense 16 relu, Dense softmax",
        ),
        ZooEntry(
            "cnn_single", MNIST_SHAPE, 216_650, 411_008,
            "MNIST lesson: one convolution",
            "Conv 32 3x3 valid relu, Flatten, Dense softmax",
        ),
        ZooEntry(
            "cnn_dropout", MNIST_SHAPE, 2_770_634, 2_964_864,
            "MNIST lesson: one convolution, dense head with dropout",
            "Conv 32 3x3 valid relu, Dropout .25, Flatten, Dense 128 relu, Dropout .5, Dense softmax",
        ),
        ZooEntry(
            "cnn_2conv", MNIST_SHAPE, 1_199_882, 11_992_448,
            "Keras example mnist_cnn.py",
            "Conv 32 3x3, Conv 64 3x3, MaxPool 2, Dropout .25, Flatten, Dense 128, Dropout .5, Dense softmax",
        ),
        ZooEntry(
            "cnn_pool_dense64", MNIST_SHAPE, 220_234, 4_039_808,
            "MNIST lesson: two conv/pool stages, small dense head",
            "Conv 32 3x3 same, MaxPool 2, Conv 64 3x3 same, MaxPool 2, Flatten, Dense 64 relu, Dense softmax",
        ),
        ZooEntry(
            "cnn_small", MNIST_SHAPE, 54_410, 248_768,
            "the Keras intro blog post's CNN without its two Dropout layers (exact: cnn_small_dropout)",
            "Conv 32 3x3 valid relu, MaxPool 2, Flatten, Dense softmax",
        ),
        ZooEntry(
            "cnn_small_dropout", MNIST_SHAPE, 54_410, 248_768,
            "Keras intro blog post: one conv/pool stage with dropout",
            "Conv 32 3x3 valid relu, MaxPool 2, Dropout .25, Flatten, Dropout .5, Dense softmax",
        ),
        ZooEntry(
            "mnist_convnet", MNIST_SHAPE, 34_826, 2_440_960,
            "keras.io example 'Simple MNIST convnet' (the neural-networks lesson uses Dropout .2: mnist_convnet_dropout02)",
            "Conv 32 3x3, MaxPool 2, Conv 64 3x3, MaxPool 2, Flatten, Dropout .5, Dense softmax",
        ),
        ZooEntry(
            "mnist_convnet_dropout02", MNIST_SHAPE, 34_826, 2_440_960,
            "neural-networks lesson: the simple MNIST convnet with Dropout .2",
            "Conv 32 3x3, MaxPool 2, Conv 64 3x3, MaxPool 2, Flatten, Dropout .2, Dense softmax",
        ),
        ZooEntry(
            "mnist_fast", MNIST_SHAPE, 109_066, 622_080,
            "convscope: the fast and best presets' model",
            "Conv 16 5x5 stride 2, BatchNorm, Conv 32 3x3, MaxPool 2, BatchNorm, Flatten, Dense 128 relu, Dense softmax",
        ),
        # 32x32x3 (CIFAR-10-style) lessons
        ZooEntry(
            "cifar_cnn", CIFAR_SHAPE, 541_094, 3_318_664,
            "CIFAR-10 lesson: three conv/pool stages, Dense 500",
            "Conv 16/32/64 3x3 same each + MaxPool 2, Dropout .3, Flatten, Dense 500 relu, Dropout .4, Dense softmax",
        ),
        ZooEntry(
            "cifar_elu", CIFAR_SHAPE, 73_498, 10_666_624,
            "CIFAR-10 lesson: all-convolutional with ELU",
            "Conv 16 5x5, 16, 32/2, 32, 64/2, 64 (3x3 same ELU), GlobalMaxPool, Dropout .5, Dense softmax",
        ),
    )
}


def format_models_table(entries: list[ZooEntry] | None = None) -> str:
    """Return `convscope models`: one row per zoo architecture, sorted by name, then how to use one.

    Args:
        entries: the entries to list; None: every entry of ``MODEL_CATALOG``.

    Example:
        >>> print(format_models_table().splitlines()[0])   # doctest: +SKIP
        name  params  MFLOPs  input  origin  description
    """
    entries = sorted(MODEL_CATALOG.values(), key=lambda entry: entry.name) if entries is None else entries
    header = ("name", "params", "MFLOPs", "input", "origin", "description")
    rows = [
        (entry.name, f"{entry.num_params:,}", format_mflops(entry.mflops), "x".join(map(str, entry.input_shape)), entry.origin, entry.description)
        for entry in entries
    ]
    return (
        format_table(header, rows, align="lrrlll")
        + "\n(params and MFLOPs per image, forward pass, for the default input, height x width x channels, and 10 classes)"
        + "\n\nUse one: convscope run --model NAME --dataset D; its shapes and parameters explained: convscope summary NAME --dataset D"
    )
