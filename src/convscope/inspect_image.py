"""Inspect any image file: channels, pixel grid and kernels; given a run, also what its model sees and predicts.

    convscope inspect --image photo.jpg                            # figures in inspect-photo/
    convscope inspect --image photo.jpg --kernel "emboss=-2,-1,0;-1,1,1;0,1,2" --out figures
    convscope inspect runs/mnist-demo --image seven.png            # + activations, Grad-CAM: RUN/plots/images/

    from convscope.inspect_image import inspect_image_files
    result = inspect_image_files(["photo.jpg"], kernels={"emboss": [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]})
    result.images[0].figures["kernels"]     # PosixPath('inspect-photo/photo_kernels.png')

Without a run, each image is shown as it is, at its own size and colour mode:
its channels (R, G, B, or the one gray channel), its pixel values (a 32x32
crop of a larger image, located on the whole image) and the classic kernels
beside the caller's own. A photo larger than 160 pixels is averaged down to that
before the kernels, so a 3x3 kernel's edges are visible at figure size; the
titles say so.

With a run, the image is also prepared exactly as ``convscope predict``
prepares it (``predict.read_input_spec`` and ``predict.prepare_images``: the
run's size, colour mode and scaling), and ``inspection.inspect`` adds its
activations, layer by layer, and Grad-CAM with the prediction. Those figures go
into RUN/plots/images/, named after the image file, beside the test-set
figures and never over them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convscope.data import load_images
from convscope.data.images import FORMATS_TEXT, read_header
from convscope.errors import ConvscopeError
from convscope.inspection import inspect
from convscope.inspection.teaching import MAX_KERNEL_SIDE, check_matrix, compute_classic_kernels, compute_pixel_grid, downsample
from convscope.plots.common import save_figure
from convscope.plots.inspection import plot_activations_of_image, plot_image_prediction
from convscope.plots.teaching import plot_channel_split, plot_classic_kernels, plot_pixel_grid
from convscope.predict import prepare_images, read_input_spec
from convscope.runfolder import open_run
from convscope.text import slugify

KERNEL_IMAGE_SIDE = 160  # the kernel figure's tiles are ~130 px wide: a 3x3 kernel's edges on a 640-px photo would alias away
RUN_IMAGES_DIR = "images"  # RUN/plots/images/: beside the test-set figures, never one of their names
TOP_CLASSES = 3  # classes listed with their probabilities


@dataclass
class InspectedImage:
    """One image file and the figures drawn of it."""

    path: Path
    name: str  # the file names' prefix: the file's stem as a slug, made unique among the images
    shape: tuple[int, ...]  # (height, width, channels) as decoded
    figures: dict[str, Path] = field(default_factory=dict)  # "channels", "pixel_grid", "kernels"; with a run "activations", "prediction"
    top: list[tuple[int, str, float]] | None = None  # with a run: (class index, name, probability), most probable first


@dataclass
class ImageInspection:
    """What ``inspect_image_files`` drew and where."""

    out_dir: Path
    run: Path | None
    images: list[InspectedImage]


def default_out_dir(paths: list[Path]) -> Path:
    """``inspect-<stem>`` for one image, ``inspect-images`` for several, in the current folder."""
    return Path(f"inspect-{slugify(paths[0].stem, 'image')}") if len(paths) == 1 else Path("inspect-images")


def check_image_files(paths) -> list[Path]:
    """Each path an existing image file (by content, under the decompression-bomb limit); else one ConvscopeError naming it."""
    paths = [Path(path) for path in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if not paths:
        raise ConvscopeError(f"no images given; pass one or more {FORMATS_TEXT} files")
    for path in paths:
        if path.is_dir():
            raise ConvscopeError(
                f"{path}: is a folder; expected a {FORMATS_TEXT} file; a run folder goes before --image: `convscope inspect RUN --image FILE`"
            )
        if not path.is_file():
            raise ConvscopeError(f"{path}: image file not found; expected a {FORMATS_TEXT} file; check the path")
        if read_header(path) is None:  # raises for unreadable files and decompression bombs
            raise ConvscopeError(f"{path}: not a {FORMATS_TEXT} image (judged by content); pass an image file")
    return paths


def _unique_names(paths: list[Path]) -> list[str]:
    names: list[str] = []
    for path in paths:
        base = slugify(path.stem, "image")
        name, number = base, 2
        while name in names:
            name, number = f"{base}-{number}", number + 1
        names.append(name)
    return names


def _named_kernels(kernels) -> dict[str, np.ndarray]:
    """{name: matrix} from a dict, or a list of matrices or (name or None, matrix) pairs; each checked now, before any work."""
    if kernels is None:
        return {}
    items = kernels.items() if isinstance(kernels, dict) else [item if isinstance(item, tuple) else (None, item) for item in kernels]
    named = {}
    for number, (name, matrix) in enumerate(items, start=1):
        name = str(name) if name else f"kernel {number}"
        named[name] = check_matrix(matrix, f"kernel {name!r}", MAX_KERNEL_SIDE)
    return named


def inspect_image_files(
    paths,
    run_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    kernels=None,
    layers: list[str] | None = None,
    num_random_kernels: int = 4,
    seed: int = 0,
) -> ImageInspection:
    """Draw the teaching figures of image files, and with a run what its model makes of them.

    Args:
        paths: image files (PNG, JPEG, BMP, GIF, WebP; any size, grayscale or colour).
        run_dir: a run folder with model.keras; None: no model figures.
        out_dir: folder for the figures; None: RUN/plots/images with a run, else
            ``inspect-<stem>`` (one image) or ``inspect-images`` in the current folder.
        kernels: your own kernels beside the classic ones: {name: matrix}, or a list of
            matrices or (name, matrix) pairs (``teaching.parse_kernel`` reads the
            command line's); each at most 15x15.
        layers: with a run, layer names whose activations to show; None: every conv,
            pooling and activation layer.
        num_random_kernels: seeded random 3x3 kernels beside the classic ones.
        seed: seed of the random kernels.

    Returns:
        ``ImageInspection``: the folder and, per image, its figures and (with a run) its top classes.

    Raises:
        ConvscopeError: a missing file, not an image, a decompression bomb, a bad kernel,
            a run folder without a model, a model image files cannot be converted for.

    Example:
        >>> result = inspect_image_files(["seven.png"], run_dir="runs/mnist-demo")
        >>> result.images[0].top[0]
        (7, '7', 0.998)
    """
    paths = check_image_files(paths)
    user_kernels = _named_kernels(kernels)
    names = _unique_names(paths)
    model = spec = inputs = pixels = None
    run = open_run(run_dir) if run_dir is not None else None
    if run is not None:
        model = run.load_model()
        spec = read_input_spec(run, model)
        inputs, pixels = prepare_images(paths, spec)  # exactly what `convscope predict` feeds the model
    out_dir = Path(out_dir) if out_dir is not None else run.plots_dir / RUN_IMAGES_DIR if run is not None else default_out_dir(paths)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConvscopeError(f"--out {out_dir}: exists and is not a folder; expected a folder for the figures; pass another path")
    inspected = []
    with run.lock() if run is not None else contextlib.nullcontext():  # a run folder has one writer at a time
        for index, (path, name) in enumerate(zip(paths, names)):
            image = InspectedImage(path, name, ())
            _draw_image(image, out_dir, user_kernels, num_random_kernels, seed)
            if run is not None:
                _draw_model_view(image, out_dir, model, spec, inputs[index : index + 1], pixels[index : index + 1], layers)
            inspected.append(image)
    return ImageInspection(out_dir, run.path if run is not None else None, inspected)


def _draw_image(image: InspectedImage, out_dir: Path, user_kernels: dict, num_random_kernels: int, seed: int) -> None:
    """Channels, pixel grid and kernels of the image at its own size and colour mode."""
    full = load_images([image.path])[0]  # its own size; grayscale stays one channel, anything else RGB
    image.shape = tuple(full.shape)
    kernels = compute_classic_kernels(full, num_random_kernels, seed, user_kernels=user_kernels, max_side=KERNEL_IMAGE_SIDE)
    shown, _ = downsample(full, KERNEL_IMAGE_SIDE)
    label = image.path.name
    figures = {
        "channels": lambda: plot_channel_split(kernels, shown, image_label=label),
        "pixel_grid": lambda: plot_pixel_grid(compute_pixel_grid(full), image_label=label, image=full),
        "kernels": lambda: plot_classic_kernels(kernels, shown, image_label=label),
    }
    for key, draw in figures.items():
        image.figures[key] = save_figure(draw(), out_dir / f"{image.name}_{key}.png")


def _draw_model_view(image: InspectedImage, out_dir: Path, model, spec, inputs, pixels, layers) -> None:
    """Activations layer by layer and Grad-CAM with the prediction, on the image as the model takes it."""
    height, width = spec.image_size
    label = f"{image.path.name} ({height}x{width} {spec.color_mode}, as the model takes it)"
    result = inspect(model, inputs, layers=layers, display_images=pixels, image_labels=[label])
    probabilities = result.probabilities[0]
    names = spec.class_names_for(len(probabilities))
    order = np.argsort(-probabilities, kind="stable")[:TOP_CLASSES]
    image.top = [(int(k), names[k], float(probabilities[k])) for k in order]
    if result.activations:
        image.figures["activations"] = save_figure(
            plot_activations_of_image(result.activations, 0, image_label=image.path.name), out_dir / f"{image.name}_activations.png"
        )
    image.figures["prediction"] = save_figure(
        plot_image_prediction(result.grad_cam, result.display_images[0], probabilities, names, image_label=label),
        out_dir / f"{image.name}_prediction.png",
    )
