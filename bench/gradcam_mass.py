"""Is Grad-CAM looking at the digit? Share of heatmap mass inside the digit's bounding box on MNIST.

    python bench/gradcam_mass.py                          # cnn_2conv, 1 epoch, 100 test images
    python bench/gradcam_mass.py --model mnist_convnet --epochs 2 --out-dir /tmp/gradcam

Trains a small CNN briefly on MNIST, computes Grad-CAM (last convolution,
predicted class, pre-softmax logit) for the first --count test images and, per
image, the fraction of heatmap mass inside the bounding box of the digit's
pixels (raw value > --threshold of 255; MNIST's background is exactly 0, so
the default 0 boxes all the ink, anti-aliased edges included). A heatmap spread
evenly would put only the box's share of the image area inside it; that share
is printed as the baseline. The target is a mean fraction of at least 0.60.
A heatmap that is all zero (every channel-weighted sum negative: ReLU leaves
nothing) has no mass to place, so its fraction is undefined; both means are
printed and judged: over the images with a non-zero heatmap, and counting the
all-zero ones as 0 inside. The fractions for a stricter box (pixels > 127) are
printed for comparison.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

import convscope  # noqa: F401  (sets the Keras backend before keras is imported)
from convscope.backend import seed_everything
from convscope.data import load_dataset
from convscope.inspect import compute_grad_cam, inspect
from convscope.models import create_model
from convscope.plots.inspection import plot_grad_cam
from convscope.plots.common import save_figure

TARGET_FRACTION = 0.60


def default_data_dir() -> str:
    return os.environ.get("CONVSCOPE_DATA") or str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist")


def bounding_box_masks(pixels: np.ndarray, threshold: int) -> np.ndarray:
    """(N, H, W) booleans: True inside the box around each image's pixels brighter than ``threshold``."""
    masks = np.zeros(pixels.shape, dtype=bool)
    for mask, image in zip(masks, pixels):
        rows, columns = np.nonzero(image > threshold)
        if len(rows):
            mask[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1] = True
    return masks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default=default_data_dir(), help="folder with the MNIST IDX files")
    parser.add_argument("--model", default="cnn_2conv", help="zoo model to train (cnn_2conv's last map is 24x24, mnist_convnet's 11x11)")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs")
    parser.add_argument("--count", type=int, default=100, help="test images to average over")
    parser.add_argument("--threshold", type=int, default=0, help="digit pixels: raw value above this (0-255)")
    parser.add_argument("--out-dir", default=None, help="also save grad_cam.png of the first 8 images here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    seed_everything(args.seed)
    data = load_dataset("mnist", data_dir=args.data_dir, allow_download=False, seed=args.seed)
    model = create_model(args.model, data.input_shape, data.num_classes)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    started = time.perf_counter()
    model.fit(data.x_train, data.y_train, epochs=args.epochs, batch_size=128, verbose=0)
    _, accuracy = model.evaluate(data.x_test, data.y_test, verbose=0)
    print(f"{args.model}: {args.epochs} epoch(s) in {time.perf_counter() - started:.0f} s, test accuracy {accuracy:.4f}")

    images = data.x_test[: args.count]
    pixels = data.display_images(images)[..., 0]
    cam = compute_grad_cam(model, images)
    total = cam.heatmaps.reshape(len(images), -1).sum(axis=1)
    nonzero = total > 0
    correct = cam.class_indices == data.y_test[: args.count]
    print(f"Grad-CAM layer {cam.layer_name}, score: {cam.score_source}")
    print(f"{len(images)} test images, {int(correct.sum())} classified correctly, {int((~nonzero).sum())} all-zero heatmaps "
          f"(true labels {sorted(data.y_test[: args.count][~nonzero].tolist())})")
    fractions = {}
    for threshold in sorted({args.threshold, 127}):
        masks = bounding_box_masks(pixels, threshold)
        inside = (cam.heatmaps * masks).reshape(len(images), -1).sum(axis=1)
        fractions[threshold] = np.where(nonzero, inside / np.where(nonzero, total, 1), 0.0)
        share = fractions[threshold]
        print(
            f"box of pixels > {threshold:3d}: mass inside mean {share.mean():.3f} (median {np.median(share):.3f}; "
            f"{share[nonzero].mean():.3f} over non-zero heatmaps); box covers {masks.reshape(len(images), -1).mean():.3f} of the image"
        )
    share = fractions[args.threshold]
    for label, mean in (("non-zero heatmaps", share[nonzero].mean()), ("all images, all-zero as 0", share.mean())):
        verdict = "meets" if mean >= TARGET_FRACTION else "MISSES"
        print(f"mass inside the box of pixels > {args.threshold}, {label}: {mean:.3f}, {verdict} the {TARGET_FRACTION:.2f} target")

    if args.out_dir:
        shown = slice(0, 8)
        result = inspect(model, images[shown], display_images=data.display_images(images[shown]))
        path = save_figure(plot_grad_cam(result, class_names=data.class_names), Path(args.out_dir) / "grad_cam.png")
        print(f"figure: {path}")


if __name__ == "__main__":
    main()
