"""The one conv/pool output-size formula, and the ways convscope spells it out.

    from convscope.models.arithmetic import explain_convolution_size, output_size, same_padding
    output_size(28, 3, 1, "valid")                 # 26
    output_size(5, 3, 2, "same")                   # 3 = ceil(5 / 2)
    same_padding(5, 3, 2)                          # (1, 1): zeros before and after
    explain_convolution_size(28, 3, 1, 1, "valid")  # (26, '(28 - 3)/1 + 1 = 26 (valid)')

Along one axis, a window of k pixels (dilation d: it spans d (k - 1) + 1) moved
s pixels at a time over n pixels with 2p zeros added gives
floor((n + 2p - k) / s) + 1 cells. Keras' 'valid' adds no zeros; 'same' adds
just enough for ceil(n / s) cells, the odd one at the bottom/right. The model
summary, the inspection's worked examples and the receptive-field geometry all
read it from here. Pure arithmetic: no Keras import.
"""

from __future__ import annotations


PADDINGS = ("valid", "same")  # what Keras' Conv2D and pooling layers accept


def window_span(kernel_size: int, dilation: int = 1) -> int:
    """Pixels a dilated window covers: d (k - 1) + 1."""
    return dilation * (kernel_size - 1) + 1


def same_padding(size: int, kernel_size: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Zeros Keras' 'same' adds before and after one axis: output ceil(n / s); the odd extra zero goes bottom/right.

    Example:
        >>> same_padding(28, 3, 1)
        (1, 1)
    """
    span = window_span(kernel_size, dilation)
    total = max((-(-size // stride) - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def output_size(size: int, kernel_size: int, stride: int, padding: str, dilation: int = 1) -> int:
    """Cells along one axis: floor((n + 2p - k) / s) + 1, 2p being every zero 'same' adds (0 for 'valid').

    Args:
        size: n, the input's length along the axis.
        kernel_size: k, the window (kernel or pool) length.
        stride: s, the step of the window.
        padding: "valid" or "same" (Keras' meaning).
        dilation: spacing of the window's taps.

    Returns:
        The output length, equal to what Keras computes (ceil(n / s) for 'same').

    Example:
        >>> output_size(26, 2, 2, "valid")
        13
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding {padding!r} is not one Keras knows; use 'valid' or 'same'")
    total = sum(same_padding(size, kernel_size, stride, dilation)) if padding == "same" else 0
    return (size + total - window_span(kernel_size, dilation)) // stride + 1


def explain_padded_size(label: str, size: int, kernel_size: int, stride: int, padding: str) -> str:
    """The formula with every number filled in, zeros included, as the worked examples print it.

    Example:
        >>> explain_padded_size("conv1", 5, 3, 2, "same")
        'conv1: ⌊(5 + 2 - 3) / 2⌋ + 1 = 3'
    """
    total = sum(same_padding(size, kernel_size, stride)) if padding == "same" else 0
    return f"{label}: ⌊({size} + {total} - {kernel_size}) / {stride}⌋ + 1 = {output_size(size, kernel_size, stride, padding)}"


def explain_convolution_size(size: int, kernel_size: int, stride: int, dilation: int, padding: str) -> tuple[int, str]:
    """Output length along one axis of a convolution, and how it follows, as the model summary prints it.

    Example:
        >>> explain_convolution_size(26, 3, 2, 1, "valid")
        (12, 'floor((26 - 3)/2) + 1 = 12 (valid, stride 2)')
    """
    value = output_size(size, kernel_size, stride, padding, dilation)
    notes = [padding] + ([f"stride {stride}"] if stride != 1 else []) + ([f"dilation {dilation}"] if dilation != 1 else [])
    if padding == "same":
        return value, f"ceil({size}/{stride}) = {value} ({', '.join(notes)})"
    span = window_span(kernel_size, dilation)
    if stride == 1:
        return value, f"({size} - {span})/1 + 1 = {value} ({', '.join(notes)})"
    return value, f"floor(({size} - {span})/{stride}) + 1 = {value} ({', '.join(notes)})"


def explain_pooling_size(size: int, pool_size: int, stride: int, padding: str) -> tuple[int, str]:
    """Output length along one axis of a pooling window, and how it follows, as the model summary prints it.

    Example:
        >>> explain_pooling_size(26, 2, 2, "valid")
        (13, 'floor(26/2) = 13')
    """
    value = output_size(size, pool_size, stride, padding)
    if padding == "same":
        return value, f"ceil({size}/{stride}) = {value} (same)"
    if pool_size == stride:  # floor((size - p)/p) + 1 == floor(size/p)
        return value, f"floor({size}/{pool_size}) = {value}"
    return value, f"floor(({size} - {pool_size})/{stride}) + 1 = {value}"
