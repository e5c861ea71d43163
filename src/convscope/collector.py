"""Python's cyclic garbage collector around TensorFlow's import: paused during it, then told to skip what it made.

    from convscope.collector import collector_paused
    with collector_paused():
        import keras                      # no full collections while ~1M objects are made
    # later full collections skip the import's objects (gc.freeze)

Why: importing TensorFlow and Keras makes about a million long-lived objects and
almost no garbage. The collector still walks them all, again and again, as they
grow: 7 full collections during `convscope run`'s import took 0.9 s on a loaded
2-core machine (collecting 16 objects in all), and the one full collection after
the run's figures took 0.40 s walking them again (0.04 s once they were frozen).
``gc.freeze`` moves every object alive at the end of the import to a permanent
generation the collector ignores; reference counting still frees them as usual,
so only cyclic garbage made during the import (none, measured) would stay.
"""

from __future__ import annotations

import contextlib
import gc
import sys


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
