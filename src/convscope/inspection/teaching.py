"""Teaching material that needs no model: classic kernels, convolution by hand, pixel grids, worked examples.

    from convscope.inspection.teaching import compute_worked_convolution, convolve2d, CLASSIC_KERNELS
    worked = compute_worked_convolution(stride=2, padding="same")
    worked.sums[0][0]                  # 'a*k + b*l + ... = total': every output cell spelled out
    worked = compute_worked_convolution(image=[[0, 1, 1], [1, 0, 1], [1, 1, 0]], kernel=[[1, 0], [0, 1]])  # your own matrices
    edges = convolve2d(gray, CLASSIC_KERNELS["Sobel x"])
    compute_pixel_grid(display_images[0]).values   # the integers 0-255 the lessons print
    name, kernel = parse_kernel("emboss=-2,-1,0;-1,1,1;0,1,2")   # what `--kernel` takes

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
    user: list[KernelResponse] = field(default_factory=list)  # the caller's own kernels, same convolution as classic
    scale_note: str = ""  # e.g. "each pixel the mean of 4x4: 106x160 of 427x640"; empty at full size


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

    input: np.ndarray  # (h, w) integers, or floats when given floats
    kernel: np.ndarray  # (kh, kw)
    stride: int
    padding: str  # "valid" or "same" (Keras' meaning)
    padded_input: np.ndarray
    pad_before: tuple[int, int]  # (rows of zeros added above, columns added on the left)
    output: np.ndarray
    sums: list[list[str]]  # sums[i][j] = "1*0 + 2*1 + ... = 7"
    operation: str


@dataclass
class WorkedPooling:
    """A max-pooling example (2x2 windows, stride 2, unless given otherwise), each window listed."""

    input: np.ndarray  # (h, w), e.g. (4, 4)
    output: np.ndarray  # (h // p, w // p)
    windows: list[list[str]]  # windows[i][j] = "max(1, 5, 3, 2) = 5"
    pool_size: int = 2  # window side p, also the stride (Keras' MaxPooling2D default)


# ---------------------------------------------------------------- your own matrices


MAX_KERNEL_SIDE = 15  # a kernel wider than 15 pixels blurs a 28x28 digit away; the figure prints numbers up to 5x5
MAX_WORKED_SIDE = 10  # worked examples spell out every output cell: a 10x10 input already gives up to 100 sums
MAX_WORKED_KERNEL_SIDE = 5  # a spelled-out sum of more than 25 products no longer fits on a line
KERNEL_FORM = "rows separated by ';' and values by ',', optionally NAME= first, e.g. \"1,0,-1;2,0,-2;1,0,-1\""


def _reject(what: str, value, problem: str, expected: str):
    shown = value if isinstance(value, _Shown) else repr(value)
    shown = shown if len(shown) <= 60 else shown[:56] + " ..."  # a 15x15 kernel is 450 characters
    raise ConvscopeError(f"{what} {shown}: {problem}; expected {expected}")


class _Shown(str):
    """A value already written as the message should show it (not repr'd again)."""


def check_matrix(
    values, what: str, max_side: int, example: str = "[[1, 0, -1], [2, 0, -2], [1, 0, -1]]", shown: str | None = None, expected: str | None = None
) -> np.ndarray:
    """A 2-D array of finite numbers from a list of rows or an array; anything else is a ConvscopeError.

    Args:
        values: nested lists, tuples or an array.
        what: how the message names it, e.g. "kernel".
        max_side: largest number of rows or columns accepted.
        example: shown in the message as the expected form.
        shown: how the message shows the value (default: its repr), e.g. the text it was parsed from.
        expected: the message's "expected ..." part (default: a matrix of at most max_side, like ``example``).

    Returns:
        int64 when every value is a whole number, else float64.

    Example:
        >>> check_matrix([[1, 0], [0, 1]], "kernel", 5).dtype
        dtype('int64')
    """
    expected = expected or f"a non-empty rectangular matrix of numbers at most {max_side}x{max_side}, e.g. {example}"
    if shown is None:
        shown = values.tolist() if isinstance(values, np.ndarray) and values.size <= 100 else values
    else:
        shown = _Shown(repr(shown))
    try:
        matrix = np.asarray(values)
    except ValueError:  # NumPy refuses ragged nested lists
        lengths = [len(row) if isinstance(row, (list, tuple, np.ndarray)) else 1 for row in values]
        _reject(what, shown, f"rows of different lengths ({', '.join(map(str, lengths))} values)", expected)
    if matrix.dtype.kind not in "biuf":
        _reject(what, shown, "not all numbers" if matrix.dtype.kind in "OUS" else f"holds {matrix.dtype} values", expected)
    if matrix.ndim != 2 or matrix.size == 0:
        _reject(what, shown, f"has shape {matrix.shape}", expected)
    if not np.isfinite(matrix).all():
        _reject(what, shown, "holds NaN or infinity", expected)
    if max(matrix.shape) > max_side:
        _reject(what, shown, f"{matrix.shape[0]}x{matrix.shape[1]} is too large", expected)
    whole = np.array_equal(matrix, np.round(matrix)) and np.abs(matrix).max() < 2**53
    return matrix.astype(np.int64) if whole else matrix.astype(np.float64)


def parse_kernel(text: str, flag: str = "--kernel") -> tuple[str | None, np.ndarray]:
    """A kernel written on the command line: ``"1,0,-1;2,0,-2;1,0,-1"``, optionally named ``"edge=..."``.

    Args:
        text: rows separated by ";", values by ","; spaces are ignored.
        flag: how the message names the value.

    Returns:
        (name or None, (rows, columns) float32 kernel).

    Raises:
        ConvscopeError: empty, a value that is not a number, rows of different lengths, larger than 15x15.

    Example:
        >>> parse_kernel("edge=0,1,0;1,-4,1;0,1,0")[0]
        'edge'
    """
    name, _, body = str(text).rpartition("=")
    name = name.strip() or None
    rows = [[value.strip() for value in row.split(",")] for row in body.split(";")]
    if not body.strip():
        _reject(flag, text, "no values", KERNEL_FORM)
    numbers = []
    for row_number, row in enumerate(rows, start=1):
        if row == [""]:
            _reject(flag, text, f"row {row_number} is empty", KERNEL_FORM)
        try:
            numbers.append([float(value) for value in row])
        except ValueError:
            bad = next(value for value in row if not _is_number(value))
            _reject(flag, text, f"{bad!r} in row {row_number} is not a number" if bad else f"row {row_number} has an empty value", KERNEL_FORM)
    expected = f"rows of equal length, at most {MAX_KERNEL_SIDE}x{MAX_KERNEL_SIDE}: {KERNEL_FORM}"
    return name, check_matrix(numbers, flag, MAX_KERNEL_SIDE, shown=text, expected=expected).astype(np.float32)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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


def downsample(image: np.ndarray, max_side: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Shrink an (H, W[, C]) image by a whole factor until its longer side is at most ``max_side``.

    Each new pixel is the mean of a block of pixels (box filter: no aliasing, and
    the numbers stay pixel values); rows and columns that do not fill a block are
    dropped. A side shorter than the factor is averaged whole.

    Returns:
        (image of the same dtype, (block height, block width)); (1, 1) returns ``image`` itself.

    Example:
        >>> downsample(np.zeros((427, 640, 3), np.uint8), 160)[0].shape
        (106, 160, 3)
    """
    image = np.asarray(image)
    factor = -(-max(image.shape[:2]) // max_side)
    block_height, block_width = min(factor, image.shape[0]), min(factor, image.shape[1])
    if factor <= 1:
        return image, (1, 1)
    height, width = image.shape[0] // block_height, image.shape[1] // block_width
    blocks = image[: height * block_height, : width * block_width].reshape(height, block_height, width, block_width, *image.shape[2:])
    mean = blocks.mean(axis=(1, 3), dtype=np.float32)  # no float copy of a 50-megapixel photo
    return (np.round(mean).astype(image.dtype) if image.dtype == np.uint8 else mean.astype(image.dtype)), (block_height, block_width)


def compute_classic_kernels(
    display_image_uint8: np.ndarray,
    num_random_kernels: int = 4,
    seed: int = 0,
    image_index: int = 0,
    user_kernels=None,
    max_side: int | None = None,
) -> ClassicKernels:
    """Sobel x/y, Laplacian, sharpen, box blur, seeded random 3x3 kernels and the caller's own on one image.

    Args:
        display_image_uint8: (H, W, C) or (H, W) uint8 image as people see it.
        num_random_kernels: how many random kernels (normal, rounded to 0.1) to add.
        seed: seed of the random kernels.
        image_index: which of the inspected images this is (for titles).
        user_kernels: your own kernels, {name: matrix} or a list of matrices (named "kernel 1", ...);
            each a list of rows or a 2-D array, at most 15x15.
        max_side: shrink a larger image first (``downsample``) so a 3x3 kernel's
            response is visible at figure size; None: full size.

    Returns:
        ``ClassicKernels`` without learned filters (``inspect`` adds them).

    Example:
        >>> [r.name for r in compute_classic_kernels(image, 1, user_kernels={"emboss": [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]}).classic]
        ['Sobel x', 'Sobel y', 'Laplacian', 'sharpen', 'box blur', 'random 1']
    """
    full = np.asarray(display_image_uint8)
    if full.dtype != np.uint8 or full.ndim not in (2, 3):
        raise ConvscopeError(f"image has shape {full.shape} and dtype {full.dtype}; expected (H, W) or (H, W, C) uint8 pixels 0-255")
    if user_kernels is not None and not isinstance(user_kernels, dict):
        user_kernels = {f"kernel {number}": kernel for number, kernel in enumerate(user_kernels, start=1)}
    user = {str(name): check_matrix(kernel, f"kernel {name!r}", MAX_KERNEL_SIDE) for name, kernel in (user_kernels or {}).items()}
    image, block = downsample(full, max_side) if max_side else (full, (1, 1))
    scale_note = ""
    if block != (1, 1):
        scale_note = f"each pixel the mean of {block[0]}x{block[1]}: {image.shape[0]}x{image.shape[1]} of {full.shape[0]}x{full.shape[1]}"
    gray = grayscale(image.astype(np.float32) / 255.0)
    rng = np.random.default_rng(seed)
    kernels = dict(CLASSIC_KERNELS)
    for number in range(1, num_random_kernels + 1):
        kernels[f"random {number}"] = np.round(rng.normal(size=(3, 3)), 1).astype(np.float32)

    def respond(name, kernel):
        return KernelResponse(name, np.asarray(kernel, np.float32), convolve2d(gray, kernel).astype(np.float32))

    channels = None
    if image.ndim == 3 and image.shape[-1] == 3:
        channels = {name: image[..., position] for position, name in enumerate("RGB")}
    classic = [respond(name, kernel) for name, kernel in kernels.items()]
    return ClassicKernels(
        image_index, gray, classic, channels, None, user=[respond(name, kernel) for name, kernel in user.items()], scale_note=scale_note
    )


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


def _number(value) -> str:
    """A matrix entry as the worked examples print it: 3, -1, 0.25 (at most 4 significant digits for floats)."""
    return str(int(value)) if float(value).is_integer() else f"{float(value):.4g}"


def _term(value) -> str:
    return f"({_number(value)})" if value < 0 else _number(value)


def _check_stride(stride) -> int:
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ConvscopeError(f"stride {stride!r}: expected a whole number of pixels, 1 or more")
    return int(stride)


def compute_worked_convolution(
    stride: int = 1, padding: str = "valid", size: int = 5, kernel_size: int = 3, seed: int = 0, image=None, kernel=None
) -> WorkedConvolution:
    """A small convolution worked by hand, as keras.layers.Conv2D computes it (cross-correlation, no bias).

    Without ``image`` and ``kernel`` the matrices are seeded small integers; give
    your own (a list of rows or a 2-D array, e.g. a lesson's hand-written ones)
    to have them worked out instead.

    Args:
        stride: step of the window, in pixels.
        padding: "valid" (no padding) or "same" (zeros so the output is ceil(n / stride)).
        size: side of the square seeded input (ignored when ``image`` is given).
        kernel_size: side of the square seeded kernel (ignored when ``kernel`` is given).
        seed: seed of the small integers (input 0..3, kernel -1..1).
        image: your own input, at most 10x10 numbers.
        kernel: your own kernel, at most 5x5 numbers; with 'valid' no larger than the input.

    Returns:
        ``WorkedConvolution`` with every output cell's sum spelled out.

    Raises:
        ConvscopeError: a matrix that is not a rectangle of finite numbers, too large,
            a kernel larger than a 'valid' input, a stride below 1, an unknown padding.

    Example:
        >>> compute_worked_convolution().sums[0][0]
        '3*1 + 2*0 + 2*(-1) + 0*1 + 0*1 + 0*1 + 2*(-1) + 3*(-1) + 2*1 = -2'
        >>> compute_worked_convolution(image=[[1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]], kernel=[[1, 0], [0, 1]]).output
        array([[2, 2, 2],
               [0, 2, 2]])
    """
    if padding not in PADDINGS:
        raise ConvscopeError(f"padding {padding!r} is not one Keras knows; expected 'valid' or 'same'")
    stride = _check_stride(stride)
    rng = np.random.default_rng(seed)
    seeded_image = rng.integers(0, 4, size=(size, size))
    seeded_kernel = rng.integers(-1, 2, size=(kernel_size, kernel_size))
    image = seeded_image if image is None else check_matrix(image, "image", MAX_WORKED_SIDE, "[[0, 1, 2], [2, 2, 0], [0, 1, 2]]")
    kernel = seeded_kernel if kernel is None else check_matrix(kernel, "kernel", MAX_WORKED_KERNEL_SIDE, "[[1, 0], [0, -1]]")
    if padding == "valid" and any(k > n for k, n in zip(kernel.shape, image.shape)):
        raise ConvscopeError(
            f"kernel {kernel.shape[0]}x{kernel.shape[1]} is larger than the {image.shape[0]}x{image.shape[1]} input with padding 'valid'; "
            "expected a kernel no larger than the input; use a smaller kernel or padding='same'"
        )
    pads = [same_padding(n, k, stride) if padding == "same" else (0, 0) for n, k in zip(image.shape, kernel.shape)]
    padded = np.pad(image, pads)
    rows, columns = (output_size(n, k, stride, padding) for n, k in zip(image.shape, kernel.shape))
    windows = np.lib.stride_tricks.sliding_window_view(padded, kernel.shape)[::stride, ::stride][:rows, :columns]
    output = np.einsum("ijkl,kl->ij", windows, kernel)  # cross-correlation: the kernel is not flipped
    sums = [
        [
            " + ".join(f"{_term(a)}*{_term(b)}" for a, b in zip(windows[row, column].ravel(), kernel.ravel())) + f" = {_number(output[row, column])}"
            for column in range(columns)
        ]
        for row in range(rows)
    ]
    return WorkedConvolution(image, kernel, stride, padding, padded, (pads[0][0], pads[1][0]), output, sums, OPERATION_NAME)


def compute_worked_pooling(seed: int = 0, image=None, pool_size: int = 2) -> WorkedPooling:
    """Max-pooling by hand (keras.layers.MaxPooling2D(pool_size): stride = pool size, 'valid'), each window listed.

    Args:
        seed: seed of the seeded 4x4 input of integers 0..9 (ignored when ``image`` is given).
        image: your own input, at most 10x10 numbers; rows and columns left over
            after the last whole window are dropped, as Keras does.
        pool_size: side of the square window, also the stride.

    Raises:
        ConvscopeError: a matrix that is not a rectangle of finite numbers, too large,
            or smaller than one window.

    Example:
        >>> compute_worked_pooling().windows[0][0]
        'max(8, 6, 3, 0) = 8'
        >>> compute_worked_pooling(image=[[1, 5, 0], [2, 3, 4]]).windows
        [['max(1, 5, 2, 3) = 5']]
    """
    pool_size = _check_stride(pool_size)
    seeded = np.random.default_rng(seed).integers(0, 10, size=(4, 4))
    image = seeded if image is None else check_matrix(image, "image", MAX_WORKED_SIDE, "[[1, 5, 3, 2], [0, 4, 8, 1]]")
    rows, columns = image.shape[0] // pool_size, image.shape[1] // pool_size
    if rows == 0 or columns == 0:
        raise ConvscopeError(
            f"image {image.shape[0]}x{image.shape[1]} is smaller than one {pool_size}x{pool_size} window; "
            f"expected at least {pool_size}x{pool_size} values, or a smaller pool_size"
        )
    blocks = image[: rows * pool_size, : columns * pool_size].reshape(rows, pool_size, columns, pool_size).swapaxes(1, 2)
    output = blocks.max(axis=(2, 3))
    windows = [
        [f"max({', '.join(_number(v) for v in blocks[r, c].ravel())}) = {_number(output[r, c])}" for c in range(columns)] for r in range(rows)
    ]
    return WorkedPooling(image, output, windows, pool_size)


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
