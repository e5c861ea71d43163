"""Load a dataset in a background thread while the main thread does something else (imports TensorFlow).

    loading = start_loading(config.data, seed=config.train.seed)
    import keras                          # ~3 s of one core; the data loads on the other meanwhile
    dataset = loading.result()            # the Dataset, or load_dataset's ConvscopeError raised here

`convscope run` imports TensorFlow before it can train; the import keeps one
core busy in the interpreter while the other waits. Reading and splitting full
MNIST (0.6 s) spends most of its time in zlib and NumPy, which let go of
Python's lock, so in a thread it runs beside the import almost for free.
The thread is a daemon: Ctrl-C during the import ends the command without
waiting for the data.
"""

from __future__ import annotations

import threading

from convscope.config import DataConfig
from convscope.data.dataset import Dataset, image_data_format, load_dataset


class BackgroundLoad:
    """``load_dataset`` running in a daemon thread; ``result()`` waits for it.

    The thread prepares the images channels-last without asking Keras, whose import the
    main thread is running meanwhile (asking would wait for it to finish); ``result``
    loads them again, channels first, in the rare process whose Keras is set so.
    """

    def __init__(self, config: DataConfig, seed: int):
        self._config, self._seed = config, seed
        self._dataset: Dataset | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._load, name="convscope-load-dataset", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        try:
            self._dataset = load_dataset(self._config, seed=self._seed, channels_first=False)
        except BaseException as error:  # handed to the caller's thread by result(), as if it had loaded there
            self._error = error

    def result(self) -> Dataset:
        """The loaded Dataset; raises what ``load_dataset`` raised (a ConvscopeError names the file and the fix)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        if image_data_format() == "channels_first":
            return load_dataset(self._config, seed=self._seed, channels_first=True)
        return self._dataset


def start_loading(config: DataConfig, seed: int = 0) -> BackgroundLoad:
    """Start ``load_dataset(config, seed=seed)`` in a background thread and return its handle.

    Args:
        config: the data settings (not changed).
        seed: seeds the stratified validation split, as for ``load_dataset``.

    Returns:
        BackgroundLoad; its ``result()`` is the Dataset.

    Example:
        >>> loading = start_loading(config.data, seed=config.train.seed)  # doctest: +SKIP
        >>> dataset = loading.result()  # doctest: +SKIP
    """
    return BackgroundLoad(config, seed)
