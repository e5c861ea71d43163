"""How `convscope run` imports TensorFlow and Keras: without the collector's walks and without scikit-learn.

    from convscope.keras_import import quick_keras_import
    with quick_keras_import():
        import keras                      # no full collections while ~1M objects are made, no scikit-learn
    # later full collections skip the import's objects (gc.freeze)

Two costs of the import that a run does not need, together about 1.5 s of the ~4 s
(2 cores). First, the cyclic garbage collector (``collector_paused``): importing
TensorFlow and Keras makes about a million long-lived objects and almost no garbage.
The collector still walks them all, again and again, as they grow: 7 full collections
during `convscope run`'s import took 0.9 s on a loaded 2-core machine (collecting 16
objects in all), and the one full collection after the run's figures took 0.40 s
walking them again (0.04 s once they were frozen).
``gc.freeze`` moves every object alive at the end of the import to a permanent
generation the collector ignores; reference counting still frees them as usual,
so only cyclic garbage made during the import (none, measured) would stay.

Second, scikit-learn (``scikit_learn_hidden``): ``import keras`` imports it, 0.5 s with
SciPy, only to define the optional ``keras.wrappers`` estimators, which fall back to
stand-ins that say scikit-learn is missing when it cannot be imported. convscope never
uses them, and its own scikit-learn code (baselines, the digits dataset) imports it
later, normally: the hiding ends with the import.
"""

from __future__ import annotations

import contextlib
import gc
import sys


@contextlib.contextmanager
def quick_keras_import(keep_scikit_learn: bool = False):
    """Import TensorFlow and Keras inside: ``collector_paused`` and ``scikit_learn_hidden`` together.

    Args:
        keep_scikit_learn: True where another thread may import scikit-learn meanwhile
            (`convscope run` reading the ``digits`` dataset while Keras imports): then it is not hidden.
    """
    with collector_paused(), (contextlib.nullcontext() if keep_scikit_learn else scikit_learn_hidden()):
        yield


@contextlib.contextmanager
def collector_paused():
    """Pause the collector for the block, then freeze what exists; a no-op once TensorFlow is imported.

    When TensorFlow is already loaded (a notebook, the test suite) there is no big
    import to protect, and freezing a long session's objects could keep its cyclic garbage.
    """
    if "tensorflow" in sys.modules:
        yield
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


@contextlib.contextmanager
def scikit_learn_hidden():
    """Inside, ``import sklearn`` raises ImportError, unless it is imported already; afterwards it imports as usual."""
    if "sklearn" in sys.modules:
        yield
        return
    sys.modules["sklearn"] = None  # the import system's own mark of a module that cannot be imported
    try:
        yield
    finally:
        if sys.modules.get("sklearn", 0) is None:
            del sys.modules["sklearn"]
