"""Teaching material that needs no model: classic kernels, convolution by hand, pixel grids, worked examples.

    from convscope.inspection.teaching import compute_worked_convolution, convolve2d, CLASSIC_KERNELS
    worked = compute_worked_convolution(stride=2, padding="same")
    worked.sums[0][0]                  # 'a*k + b*l + ... = total': every output cell spelled out
    edges = convolve2d(gray, CLASSIC_KERNELS["Sobel x"])
    compute_pixel_grid(display_images[0]).values   # the integers 0-255 the lessons print

Everything here is NumPy on small arrays: the lessons' hand-made kernels and
worked examples, reproduced for the user's own images. ``inspect`` adds the
learned first-layer filters beside the classic kernels
(``convscope.inspection.weights.learned_responses``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from convscope.errors import ConvscopeError
from convscope.models.arithmetic import PADDINGS, explain_padded_size, output_size, same_padding

OPERATION_NAME = "cross-correlation (what keras.layers.Conv2D computes: the kernel is not flipped)"


@dataclass
class KernelResponse:
    """A kernel and the image it produces."""

    name: str
    kernel: np.ndarray  # (kh, kw), or (kh, kw, C) for learned filters on a C-channel image
    response: np.ndarray  # (H, W)


@dataclass
class ClassicKernels:
    """Hand-made kernels beside the learned first-layer filters, on one image."""

    image_index: int
    grayscale: np.ndarray  # (H, W) floats in [0, 1] the classic kernels are applied to
    classic: list[KernelResponse]  # Sobel x/y, Laplacian, sharpen, box blur, random
    channels: dict[str, np.ndarray] | None  # {"R": (H, W), "G": ..., "B": ...} uint8 for RGB input
    learned_layer_name: str | None
    learned: list[KernelResponse] = field(default_factory=list)  # pre-activation responses


@dataclass
class PixelGrid:
    """Integer pixel values of one image, as the lessons annotate them."""

    image_index: int
    values: np.ndarray  # (h, w) uint8
    top_left: tuple[int, int]  # (row, column) of the crop in the full image
    description: str


@dataclass
class WorkedConvolution:
    """A small convolution worked by hand, every output cell spelled out."""

    input: np.ndarray  # (n, n) integers
    kernel: np.ndarray  # (k, k) integers
    stride: int
    padding: str  # "valid" or "same" (Keras' meaning)
    padded_input: np.ndarray
    pad_before: int  # rows/columns of zeros added above and left
    output: np.ndarray
    sums: list[list[str]]  # sums[i][j] = "1*0 + 2*1 + ... = 7"
    operation: str


@dataclass
class WorkedPooling:
    """A 2x2 max-pooling example: 4x4 input to 2x2, each window listed."""

    input: np.ndarray  # (4, 4)
    output: np.ndarray  # (2, 2)
    windows: list[list[str]]  # windows[i][j] = "max(1, 5, 3, 2) = 5"


# ---------------------------------------------------------------- classic kernels


CLASSIC_KERNELS = {
    # Written for true convolution (kernel flipped), as in image-processing texts:
    # Sobel x is positive where brightness grows to the right.
    "Sobel x": np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float32),
    "Sobel y": np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], np.float32),
    "Laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32),
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32),
    "box blur": np.full((3, 3), 1 / 9, np.float32),
}


def convolve2d(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """True 2-D convolution, output the size of ``image``, symmetric (mirror) boundary.

    Equals ``scipy.signal.convolve2d(image, kernel, boundary='symm', mode='same')``.

    Args:
        image: (H, W) array.
        kernel: (kh, kw) array.

    Returns:
        (H, W) float64 array.

    Example:
        >>> convolve2d(np.eye(4), CLASSIC_KERNELS["box blur"]).shape
        (4, 4)
    """
    image, kernel = np.asarray(image, np.float64), np.asarray(kernel, np.float64)
    kernel_height, kernel_width = kernel.shape
    # 'same' keeps the centre of the full convolution: (k - 1) // 2 cells from its start.
    top, left = (kernel_height - 1) // 2, (kernel_width - 1) // 2
    padded = np.pad(image, ((kernel_height - 1 - top, top), (kernel_width - 1 - left, left)), mode="symmetric")
    windows = np.lib.stride_tricks.sliding_window_view(padded, kernel.shape)
    return np.einsum("ijkl,kl->ij", windows, kernel[::-1, ::-1])


def grayscale(image: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of an (H, W, 3) image: 0.299 R + 0.587 G + 0.114 B (other channel counts: the mean)."""
    image = np.asarray(image, np.float32)
    if image.ndim == 2:
        return image
    if image.shape[-1] == 3:
        return image @ np.array([0.299, 0.587, 0.114], np.float32)
    return image.mean(axis=-1)


def compute_classic_kernels(
    display_image_uint8: np.ndarray, num_random_kernels: int = 4, seed: int = 0, image_index: int = 0
) -> ClassicKernels:
    """Sobel x/y, Laplacian, sharpen, box blur and seeded random 3x3 kernels on one image.

    Args:
        display_image_uint8: (H, W, C) uint8 image as people see it.
        num_random_kernels: how many random kernels (normal, rounded to 0.1) to add.
        seed: seed of the random kernels.
        image_index: which of the inspected images this is (for titles).

    Returns:
        ``ClassicKernels`` without learned filters (``inspect`` adds them).

    Example:
        >>> [r.name for r in compute_classic_kernels(image, 1).classic]
        ['Sobel x', 'Sobel y', 'Laplacian', 'sharpen', 'box blur', 'random 1']
    """
    image = np.asarray(display_image_uint8)
    gray = grayscale(image.astype(np.float32) / 255.0)
    rng = np.random.default_rng(seed)
    kernels = dict(CLASSIC_KERNELS)
    for number in range(1, num_random_kernels + 1):
        kernels[f"random {number}"] = np.round(rng.normal(size=(3, 3)), 1).astype(np.float32)
    classic = [KernelResponse(name, kernel, convolve2d(gray, kernel).astype(np.float32)) for name, kernel in kernels.items()]
    channels = None
    if image.ndim == 3 and image.shape[-1] == 3:
        channels = {name: image[..., position] for position, name in enumerate("RGB")}
    return ClassicKernels(image_index, gray, classic, channels, None)


def compute_pixel_grid(display_image_uint8: np.ndarray, image_index: int = 0, max_size: int = 32) -> PixelGrid:
    """Integer pixel values 0-255 (grayscale for colour images), centre-cropped to ``max_size``.

    Args:
        display_image_uint8: (H, W, C) uint8 image.
        image_index: which of the inspected images this is.
        max_size: largest side shown; numbers stop being readable beyond ~32.

    Returns:
        ``PixelGrid``.

    Example:
        >>> compute_pixel_grid(mnist_digit).values.shape
        (28, 28)
    """
    image = np.asarray(display_image_uint8)
    if image.ndim == 3 and image.shape[-1] == 1:
        values, description = image[..., 0], "pixel values 0-255"
    elif image.ndim == 3:
        values, description = np.round(grayscale(image)).astype(np.uint8), "grayscale 0.299R + 0.587G + 0.114B, 0-255"
    else:
        values, description = image, "pixel values 0-255"
    top = max(0, (values.shape[0] - max_size) // 2)
    left = max(0, (values.shape[1] - max_size) // 2)
    crop = values[top : top + max_size, left : left + max_size]
    if crop.shape != values.shape:
        description += f", centre {crop.shape[0]}x{crop.shape[1]} of {values.shape[0]}x{values.shape[1]}"
    return PixelGrid(image_index, crop.astype(np.uint8), (top, left), description)


# ---------------------------------------------------------------- worked examples


def _term(value) -> str:
    return f"({value})" if value < 0 else f"{value}"


def compute_worked_convolution(
    stride: int = 1, padding: str = "valid", size: int = 5, kernel_size: int = 3, seed: int = 0
) -> WorkedConvolution:
    """A small integer convolution worked by hand, as keras.layers.Conv2D computes it.

    Args:
        stride: step of the window, in pixels.
        padding: "valid" (no padding) or "same" (zeros so the output is ceil(n / stride)).
        size: side of the square input.
        kernel_size: side of the square kernel.
        seed: seed of the small integers (input 0..3, kernel -1..1).

    Returns:
        ``WorkedConvolution`` with every output cell's sum spelled out.

    Example:
        >>> compute_worked_convolution().sums[0][0]
        '3*1 + 2*0 + 2*(-1) + 0*1 + 0*1 + 0*1 + 2*(-1) + 3*(-1) + 2*1 = -2'
    """
    if padding not in PADDINGS:
        raise ConvscopeError(f"padding {padding!r} is not one Keras knows; use 'valid' or 'same'")
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 4, size=(size, size))
    kernel = rng.integers(-1, 2, size=(kernel_size, kernel_size))
    before, after = same_padding(size, kernel_size, stride) if padding == "same" else (0, 0)
    padded = np.pad(image, ((before, after), (before, after)))
    cells = output_size(size, kernel_size, stride, padding)
    output = np.zeros((cells, cells), dtype=np.int64)
    sums = []
    for row in range(cells):
        sums.append([])
        for column in range(cells):
            window = padded[row * stride : row * stride + kernel_size, column * stride : column * stride + kernel_size]
            output[row, column] = int((window * kernel).sum())
            terms = " + ".join(f"{_term(a)}*{_term(b)}" for a, b in zip(window.ravel(), kernel.ravel()))
            sums[-1].append(f"{terms} = {output[row, column]}")
    # Cross-correlation is convolution with the flipped kernel; the centre of a
    # 'same' convolution of the padded input is untouched by its boundary rule.
    half, valid = kernel_size // 2, padded.shape[0] - kernel_size + 1
    check = convolve2d(padded, kernel[::-1, ::-1])[half : half + valid, half : half + valid]
    assert np.array_equal(output, np.round(check[::stride, ::stride]).astype(np.int64)), "worked example disagrees with convolve2d"
    return WorkedConvolution(image, kernel, stride, padding, padded, before, output, sums, OPERATION_NAME)


def compute_worked_pooling(seed: int = 0) -> WorkedPooling:
    """2x2 max-pooling with stride 2 on a 4x4 integer input, each window listed.

    Example:
        >>> compute_worked_pooling().windows[0][0]
        'max(8, 6, 3, 0) = 8'
    """
    image = np.random.default_rng(seed).integers(0, 10, size=(4, 4))
    output = image.reshape(2, 2, 2, 2).max(axis=(1, 3))
    windows = [
        [f"max({', '.join(str(v) for v in image[2 * r : 2 * r + 2, 2 * c : 2 * c + 2].ravel())}) = {output[r, c]}" for c in range(2)]
        for r in range(2)
    ]
    return WorkedPooling(image, output, windows)


def worked_output_sizes(size: int = 5, kernel_size: int = 3) -> list[str]:
    """The output-size formula on the worked example, for strides 1 and 2 and paddings 'valid' and 'same'.

    Example:
        >>> worked_output_sizes()[3]
        "5x5, 3x3, stride 2, 'same': ⌊(5 + 2 - 3) / 2⌋ + 1 = 3"
    """
    return [
        explain_padded_size(f"{size}x{size}, {kernel_size}x{kernel_size}, stride {stride}, '{padding}'", size, kernel_size, stride, padding)
        for stride in (1, 2)
        for padding in ("valid", "same")
    ]
