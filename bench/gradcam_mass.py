"""Is Grad-CAM looking at the digit? Share of heatmap mass inside the digit's bounding box on MNIST.

    python bench/gradcam_mass.py                                    # train cnn_2conv 2 epochs, 100 test images
    python bench/gradcam_mass.py --save-model /tmp/gradcam_model.keras
    python bench/gradcam_mass.py --model-path /tmp/gradcam_model.keras --out-dir /tmp/gradcam

Trains a small CNN on MNIST (or loads one saved with --save-model), computes
class-activation heatmaps (last convolution, predicted class, pre-softmax
logit) for the first --count test images with both methods of
``compute_grad_cam`` (Grad-CAM and HiResCAM) and, per image, the fraction of
heatmap mass inside the bounding box of the digit's pixels. Two boxes: pixels
above 0 of 255 (MNIST's background is exactly 0, so this boxes all the ink,
anti-aliased edges included) and the stricter pixels above 127.

A heatmap that is all zero (every channel-weighted sum negative: ReLU leaves
nothing) places no mass at all, so it counts as 0 inside. Each method is shown
averaged over the images with a non-zero heatmap and over all images; the
headline judges the DEFAULT method (``method="auto"``) over all images,
all-zero heatmaps counted as 0, box of pixels > 0, against the 0.60 target. A
heatmap spread evenly would put only the box's share of the image area inside;
that share is printed as the baseline.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import convscope  # noqa: F401  (sets the Keras backend before keras is imported)
from convscope.keras_compat import seed_everything
from convscope.data import load_dataset
from convscope.inspection import compute_grad_cam, inspect
from convscope.models import create_model, load_model
from convscope.plots.common import save_figure
from convscope.plots.inspection import plot_grad_cam
from paths import default_data_dir  # bench/paths.py, beside this script

TARGET_FRACTION = 0.60
THRESHOLDS = (0, 127)  # box of pixels brighter than this (0-255); the headline uses the first
METHODS = ("gradcam", "hirescam")


def bounding_box_masks(pixels: np.ndarray, threshold: int) -> np.ndarray:
    """(N, H, W) booleans: True inside the box around each image's pixels brighter than ``threshold``."""
    masks = np.zeros(pixels.shape, dtype=bool)
    for mask, image in zip(masks, pixels):
        rows, columns = np.nonzero(image > threshold)
        if len(rows):
            mask[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1] = True
    return masks


def mass_inside(heatmaps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image: fraction of heatmap mass inside the mask (0 for an all-zero heatmap), and which heatmaps are non-zero."""
    total = heatmaps.reshape(len(heatmaps), -1).sum(axis=1)
    inside = (heatmaps * masks).reshape(len(heatmaps), -1).sum(axis=1)
    nonzero = total > 0
    return np.where(nonzero, inside / np.where(nonzero, total, 1), 0.0), nonzero


def trained_model(args, data):
    if args.model_path:
        model = load_model(args.model_path)
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])  # to evaluate; no training
        print(f"{args.model_path}: loaded {model.name}")
        return model
    model = create_model(args.model, data.input_shape, data.num_classes)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    started = time.perf_counter()
    model.fit(data.x_train, data.y_train, epochs=args.epochs, batch_size=128, verbose=0)
    print(f"{args.model}: trained {args.epochs} epoch(s) in {time.perf_counter() - started:.0f} s")
    if args.save_model:
        model.save(args.save_model)
        print(f"saved to {args.save_model}")
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default=default_data_dir(), help="folder with the MNIST IDX files")
    parser.add_argument("--model", default="cnn_2conv", help="zoo model to train (cnn_2conv's last map is 24x24, mnist_convnet's 11x11)")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs")
    parser.add_argument("--model-path", default=None, help="load this saved .keras model instead of training")
    parser.add_argument("--save-model", default=None, help="save the trained model here (.keras), for --model-path")
    parser.add_argument("--count", type=int, default=100, help="test images to average over")
    parser.add_argument("--out-dir", default=None, help="also save grad_cam.png of the first 8 images here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    seed_everything(args.seed)
    data = load_dataset("mnist", data_dir=args.data_dir, allow_download=False, seed=args.seed)
    model = trained_model(args, data)
    _, accuracy = model.evaluate(data.x_test, data.y_test, verbose=0)
    images, labels = data.x_test[: args.count], data.y_test[: args.count]
    pixels = data.display_images(images)[..., 0]
    masks = {threshold: bounding_box_masks(pixels, threshold) for threshold in THRESHOLDS}
    default = compute_grad_cam(model, images)
    print(f"test accuracy {accuracy:.4f}; layer {default.layer_name}; score: {default.score_source}")
    print(f"default method: {default.method} ({default.method_reason}); cell centres {default.cell_centres}")
    print(f"{len(images)} test images, {int((default.class_indices == labels).sum())} classified correctly")
    print()
    print(f"{'method':9} {'box':>9} {'non-zero only':>15} {'all, zeros as 0':>16} {'all-zero maps':>14}")
    fractions = {}
    for method in METHODS:
        cam = compute_grad_cam(model, images, method=method)
        for threshold in THRESHOLDS:
            share, nonzero = mass_inside(cam.heatmaps, masks[threshold])
            fractions[method, threshold] = share
            print(
                f"{method:9} {'> ' + str(threshold):>9} {share[nonzero].mean():8.3f} ({int(nonzero.sum()):3d})"
                f" {share.mean():16.3f} {int((~nonzero).sum()):14d}"
            )
        if (~nonzero).any():
            print(f"{'':9} all-zero maps of true labels {sorted(labels[~nonzero].tolist())}")
    for threshold in THRESHOLDS:
        print(f"uniform map (box area share), box > {threshold:3d}: {masks[threshold].reshape(len(images), -1).mean():.3f}")

    share, nonzero = mass_inside(default.heatmaps, masks[THRESHOLDS[0]])
    assert np.allclose(share, fractions[default.method, THRESHOLDS[0]]), "the default differs from its explicit method"
    verdict = "meets" if share.mean() >= TARGET_FRACTION else "MISSES"
    print(
        f"\nheadline: default method ({default.method}), all {len(images)} images, all-zero maps as 0, box of pixels > {THRESHOLDS[0]}: "
        f"{share.mean():.3f} of the mass inside, {verdict} the {TARGET_FRACTION:.2f} target"
    )

    if args.out_dir:
        shown = slice(0, 8)
        result = inspect(model, images[shown], display_images=data.display_images(images[shown]))
        figure = plot_grad_cam(result.grad_cam, result.display_images, result.probabilities, data.class_names, image_labels=result.image_labels)
        path = save_figure(figure, Path(args.out_dir) / "grad_cam.png")
        print(f"figure: {path}")


if __name__ == "__main__":
    main()
