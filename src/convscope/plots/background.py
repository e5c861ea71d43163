"""A second process that draws the evaluation figures while this one inspects the model.

    with FigureProcess() as figures:              # start it early: it imports matplotlib meanwhile
        ...                                       # import TensorFlow, train
        figures.start_evaluation_figures(result, images, run.plots_dir, history=history)
        ...                                       # inspect: Grad-CAM and its figures, here
        paths = figures.wait()                    # {name: path}, once every evaluation figure is on disk

Why: matplotlib draws in Python, on one core, holding the interpreter's lock;
after training, `convscope run` on full MNIST spends ~1.4 s drawing the twelve
evaluation figures and ~0.7 s inspecting the model, one after the other, while
the second core waits. In a process of their own, the evaluation figures are
drawn beside the inspection. The process is a fresh interpreter ("spawn"): it
imports numpy and matplotlib, never TensorFlow, and inherits no thread and no
open file of this one (the run folder's lock stays here).

The figures are the same bytes as when drawn here (same code, same settings),
each written atomically by ``save_figure``. An error in the process comes back
and is raised by ``wait``, as if drawn here; a process that ends without an
answer is one ConvscopeError. Ctrl-C reaches only this process (the other
ignores it) and ends it on the way out.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import threading
from pathlib import Path

from convscope.errors import ConvscopeError

STOP_SECONDS = 5  # how long close() waits for the process to leave before ending it


class FigureProcess:
    """The drawing process; one evaluation job at a time (``start_evaluation_figures``, then ``wait``)."""

    def __init__(self):
        context = multiprocessing.get_context("spawn")
        self._connection, child_end = context.Pipe()
        self._process = context.Process(target=serve_figures, args=(child_end,), name="convscope-figures", daemon=True)
        with sigint_ignored():  # inherited through exec: Ctrl-C never prints a traceback from the child
            self._process.start()
        child_end.close()
        self._pending = False

    def start_evaluation_figures(self, result, images, out_dir: str | Path, **figures) -> None:
        """Hand ``save_evaluation_figures(result, images, out_dir, **figures)`` to the process; return at once."""
        if self._pending:
            raise RuntimeError("the figure process is still drawing the previous job; wait() for it first")
        self._send({"result": result, "images": images, "out_dir": Path(out_dir), **figures})
        self._pending = True

    def wait(self) -> dict[str, Path]:
        """Wait for the figures of the last job; return {name: path} as ``save_evaluation_figures`` does.

        Raises:
            What drawing raised in the process; ConvscopeError if the process ended without an answer.
        """
        if not self._pending:
            raise RuntimeError("no figures were handed to the figure process")
        self._pending = False
        try:
            kind, value = self._connection.recv()
        except EOFError:
            self._process.join(timeout=STOP_SECONDS)
            raise ConvscopeError(self._ended_message()) from None
        if kind == "error":
            raise value
        return value

    def close(self) -> None:
        """Stop the process (at once if it is still drawing) and release the pipe."""
        with contextlib.suppress(OSError):
            self._connection.send(None)  # the loop's end; a process already gone has closed the pipe
        self._process.join(timeout=0 if self._pending else STOP_SECONDS)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=STOP_SECONDS)
        self._connection.close()

    def __enter__(self) -> FigureProcess:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _send(self, job: dict) -> None:
        try:
            self._connection.send(job)
        except OSError:
            raise ConvscopeError(self._ended_message()) from None

    def _ended_message(self) -> str:
        return (
            f"the process drawing the evaluation figures ended unexpectedly (exit code {self._process.exitcode}); "
            "expected it to draw them beside the inspection; check free memory and run `convscope evaluate RUN` to draw them again"
        )


@contextlib.contextmanager
def sigint_ignored():
    """Ignore Ctrl-C inside the block (main thread only; elsewhere the block runs unchanged)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def serve_figures(connection) -> None:
    """The process' loop: draw each job's figures and send back ("done", paths) or ("error", exception)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends this process
    from convscope.plots.evaluation import save_evaluation_figures  # lazy: imported in the child, not in the command's start

    while True:
        try:
            job = connection.recv()
        except EOFError:  # the parent ended
            return
        if job is None:
            return
        try:
            answer = ("done", save_evaluation_figures(**job))
        except BaseException as error:  # every failure goes back to be raised in the parent
            answer = ("error", error)
        try:
            connection.send(answer)
        except Exception:  # an exception that does not pickle: its type and text
            connection.send(("error", ConvscopeError(f"drawing the evaluation figures failed: {type(answer[1]).__name__}: {answer[1]}")))
