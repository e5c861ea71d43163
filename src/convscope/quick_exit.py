"""End the `convscope` command without tearing the interpreter down.

    from convscope import quick_exit
    quick_exit.arm()                    # first thing in the command, before Keras is imported
    code = main()
    quick_exit.exit_with(code)          # sys.exit(code); the teardown after it is skipped

Why: once TensorFlow is loaded, Python's interpreter teardown (clearing every
module, the last garbage collection, TensorFlow's C++ destructors) takes about
1 s on 2 cores, and 2-3 s on a loaded machine, after the command's work is done
and its last line printed (`python -c "import tensorflow"`: 1.1 s from the last
statement to the process' end; with ``os._exit``: 0.08 s).

How: ``arm`` registers a handler with ``atexit`` before any library registers
its own. Handlers run last-registered first, so this one runs after all the
others registered later (multiprocessing's joins, temporary folders' cleanup),
and after Python has joined the non-daemon threads: then it flushes the log
handlers (logging registered its flush before), stdout and stderr, and ends the process with ``os._exit``. Everything a stage writes is
already on disk (``fileio`` writes atomically and closes). A command that ends
with an unexpected exception (a traceback) exits the ordinary way.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys

_exit_code: int | None = None  # set by exit_with: the command finished and returned this code
_armed = False


def arm() -> None:
    """Register the early exit; call it once, before the libraries that register their own handlers are imported."""
    global _armed
    if not _armed:
        atexit.register(_end_process)
        _armed = True


def exit_with(code: int) -> None:
    """Leave with ``code``: ``sys.exit(code)``, after which the armed handler ends the process at once."""
    global _exit_code
    _exit_code = code
    sys.exit(code)


def _end_process() -> None:
    if _exit_code is None:  # not a finished command (an uncaught exception): the ordinary teardown
        return
    logging.shutdown()  # registered when logging was imported, before arm: it would run after this handler
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`convscope models | head`) or a closed stream: nothing more to write
            pass
    os._exit(_exit_code)
