"""Contract tests for convscope.models.arithmetic: the one output-size formula equals what Keras computes."""

import keras
import pytest

from convscope.models.arithmetic import explain_padded_size, output_size, same_padding


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("size, kernel_size, stride, dilation", [(28, 3, 1, 1), (26, 2, 2, 1), (29, 5, 2, 1), (30, 3, 1, 2), (7, 4, 3, 1)])
def test_output_size_equals_keras(size, kernel_size, stride, dilation, padding):
    conv = keras.layers.Conv2D(1, kernel_size, strides=stride, dilation_rate=dilation, padding=padding)
    assert output_size(size, kernel_size, stride, padding, dilation) == conv.compute_output_shape((1, size, size, 1))[1]
    if dilation == 1:
        pool = keras.layers.MaxPooling2D(kernel_size, strides=stride, padding=padding)
        assert output_size(size, kernel_size, stride, padding) == pool.compute_output_shape((1, size, size, 1))[1]


def test_same_padding_puts_the_odd_zero_last_and_the_text_shows_every_number():
    assert same_padding(6, 4, 1) == (1, 2)
    assert same_padding(5, 1, 2) == (0, 0)
    assert explain_padded_size("conv1", 5, 3, 2, "same") == "conv1: ⌊(5 + 2 - 3) / 2⌋ + 1 = 3"
