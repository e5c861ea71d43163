"""Streamed images: array-like views over image files or a large .npz, read in batches through tf.data.

A folder dataset that streams (``--stream``, on by default for folders; large .npz files
too) never holds its images at once. Its ``RawImages`` arrays are ``StoredPixels`` (uint8
rows of an ``imagecache.ImageFiles`` or an ``npzmap.StoredArray``), and ``prepare_dataset`` turns them into
``StreamedImages`` (the float32 model inputs, scaled batch by batch with the same
``Scaling.apply`` as an in-memory dataset, so the values are bit-identical). Both
behave as read-only arrays where the rest of convscope indexes them: ``len``,
``shape``, ``x[3]``, ``x[:16]``, ``x[[0, 42]]``; ``np.asarray(x)`` reads everything
(only small sets should ask).

    images = dataset.x_test                       # StreamedImages for a streamed folder
    first = images[:16]                            # (16, 64, 64, 3) float32
    for x, y in stream_batches(images, dataset.y_test, 128):   # a tf.data.Dataset
        ...

``stream_batches`` decodes batches in parallel (``THREADS`` at a time, in order) and
prefetches ``PREFETCH`` of them; Pillow releases the GIL while it decodes.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from convscope.errors import ConvscopeError

THREADS = max(2, min(8, os.cpu_count() or 2))  # batches decoded at once
PREFETCH = 2  # batches ready ahead of the training step


def _index(read, rows: np.ndarray, key) -> np.ndarray:
    """``images[key]`` for images whose rows are ``rows``, reading only the rows the key picks.

    ``read(rows)`` returns those rows as an array; a tuple key's first item picks the rows,
    the rest applies to what was read (``x[:, 0, 0, 0]``).
    """
    rest = ()
    if isinstance(key, tuple):
        key, rest = (key[0] if key else slice(None)), key[1:]
    if isinstance(key, (int, np.integer)):
        return read(rows[[key]])[(0, *rest)]
    picked = read(rows[key])
    return picked[(slice(None), *rest)] if rest else picked


class StoredPixels:
    """uint8 (N, H, W, C) pixels of some rows of a store, read on demand.

    The store is an ``imagecache.ImageFiles`` (a folder) or an ``npzmap.StoredArray`` (an
    uncompressed array inside a large .npz): anything with ``shape`` and ``read(rows)``.
    """

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, store, rows: np.ndarray):
        self.store, self.rows = store, np.asarray(rows, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.store.shape[1:])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key) -> np.ndarray:
        return _index(self.store.read, self.rows, key)

    def subset(self, index) -> StoredPixels:
        """These pixels at ``index``, still unread."""
        return StoredPixels(self.store, self.rows[index])

    def __array__(self, dtype=None, copy=None):
        pixels = self.store.read(self.rows)
        return pixels if dtype is None else pixels.astype(dtype)


class StreamedImages:
    """float32 model inputs ``scaling.apply(pixels)`` of StoredPixels, computed per read."""

    dtype = np.dtype(np.float32)
    ndim = 4

    def __init__(self, pixels: StoredPixels, scaling, channels_first: bool = False):
        self.pixels, self.scaling, self.channels_first = pixels, scaling, channels_first
        self.failure: ConvscopeError | None = None  # what stopped a tf.data read (TensorFlow wraps it)

    @property
    def shape(self) -> tuple[int, ...]:
        count, height, width, channels = self.pixels.shape
        return (count, channels, height, width) if self.channels_first else (count, height, width, channels)

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, key) -> np.ndarray:
        return _index(self._read, self.pixels.rows, key)

    def _read(self, rows: np.ndarray) -> np.ndarray:
        return self.scaling.apply(self.pixels.store.read(rows), None, self.channels_first)

    def __array__(self, dtype=None, copy=None):
        x = self[np.arange(len(self))]
        return x if dtype is None else x.astype(dtype)

    def display(self) -> StoredPixels:
        """The images as uint8 pixels, channels last, still unread (what ``Dataset.display_images`` returns)."""
        return self.pixels


def is_streamed(x) -> bool:
    return isinstance(x, (StreamedImages, StoredPixels))


@contextlib.contextmanager
def pipeline_errors(*images):
    """Inside, an error TensorFlow raises because reading streamed ``images`` failed (a corrupt
    file found mid-epoch) becomes that read's own ConvscopeError, one line naming the file."""
    try:
        yield
    except Exception:
        for streamed in images:
            if isinstance(streamed, StreamedImages) and streamed.failure is not None:
                failure, streamed.failure = streamed.failure, None
                raise failure from None
        raise


def stream_batches(images: StreamedImages, labels: np.ndarray | None, batch_size: int, order: np.ndarray | None = None):
    """A tf.data.Dataset of ``(x, y)`` batches (``x`` alone when labels is None) of ``images[order]``.

    Args:
        images: the streamed images.
        labels: (N,) int64 labels, or None for prediction batches.
        batch_size: images per batch; the last batch holds the rest.
        order: the row order (None: 0..N-1).

    Returns:
        A tf.data.Dataset whose batches equal ``images[order][i:i + batch_size]``.
    """
    import tensorflow as tf  # lazy: `convscope datasets` and folder scans never need TensorFlow

    order = np.arange(len(images)) if order is None else np.asarray(order, dtype=np.int64)
    shape = [None, *images.shape[1:]]

    def read_x(index):
        try:
            return images[index]
        except ConvscopeError as error:
            images.failure = error
            raise

    def read_xy(index):
        return read_x(index), labels[index]

    rows = tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
    if labels is None:
        dataset = rows.map(lambda index: tf.ensure_shape(tf.numpy_function(read_x, [index], tf.float32), shape), num_parallel_calls=THREADS, deterministic=True)
    else:
        labels = np.asarray(labels, dtype=np.int64)

        def load(index):
            x, y = tf.numpy_function(read_xy, [index], (tf.float32, tf.int64))
            return tf.ensure_shape(x, shape), tf.ensure_shape(y, [None])

        dataset = rows.map(load, num_parallel_calls=THREADS, deterministic=True)
    from convscope.keras_compat import without_autotune  # lazy: keras_compat imports Keras; the .onnx predictor imports this package without it

    return without_autotune(dataset.prefetch(PREFETCH))
