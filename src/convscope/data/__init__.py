"""Datasets: every source, download and cache, preprocessing and splitting.

    from convscope.data import load_dataset, list_datasets, load_images
    data = load_dataset("mnist-sample")                  # bundled 6,000 + 1,000 MNIST digits, offline
    data = load_dataset("fashion-mnist", scale="standard", seed=1)
    data = load_dataset("folder:photos", image_size=(64, 64), color_mode="rgb")
    print(format_datasets_table())                       # what `convscope datasets` prints
    pixels = load_images(["seven.png"], image_size=(28, 28), color_mode="grayscale")

Modules, in pipeline order: ``sources`` (the catalog; finds files), ``download``
(search folders, cache, checked downloads), one reader per format (``idx``,
``cifar``, ``npz``, ``folder`` with ``images``), ``raw`` (checks they share),
``preprocess`` (validation split, scale formulas) and ``dataset`` (the result).
"""

from convscope.data.dataset import Dataset, load_dataset, prepare_dataset
from convscope.data.images import load_images
from convscope.data.sources import DatasetInfo, format_datasets_table, list_datasets

__all__ = ["Dataset", "DatasetInfo", "format_datasets_table", "list_datasets", "load_dataset", "load_images", "prepare_dataset"]
