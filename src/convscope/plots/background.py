"""A second process that draws the evaluation figures while this one inspects the model.

    with FigureProcess() as figures:              # start it early: it imports matplotlib meanwhile
        ...                                       # import TensorFlow, train
        figures.start_evaluation_figures(result, images, run.plots_dir, history=history)
        ...                                       # inspect: Grad-CAM and its figures, here
        paths = figures.wait()                    # helps with the figures left, then {name: path}

Why: matplotlib draws in Python, on one core, holding the interpreter's lock;
after training, `convscope run` on full MNIST spends ~1.4 s drawing the twelve
evaluation figures and ~0.7 s inspecting the model, one after the other, while
the second core waits. In a process of their own, the evaluation figures are
drawn beside the inspection; when the inspection is done, ``wait`` draws the
figures the process has not started yet, from the end of the list. Each side
claims a figure before drawing it by creating its marker file in a scratch
folder (``O_EXCL``: exactly one side succeeds), so each is drawn once.
The process is a fresh interpreter started with ``subprocess`` (not
multiprocessing, whose "spawn" also starts a resource-tracker process): it
imports numpy and matplotlib, never TensorFlow, and inherits no thread and no
open file of this one but its two pipes (the run folder's lock stays here).

The figures are the same bytes as when drawn here (same code, same settings),
each written atomically by ``save_figure``. An error in the process comes back
and is raised by ``wait``, as if drawn here; a process that ends without an
answer is one ConvscopeError. Ctrl-C reaches only this process (the other
ignores it) and ends it on the way out.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from multiprocessing.connection import Connection
from pathlib import Path

from convscope.errors import ConvscopeError
from convscope.plots.common import save_figure
from convscope.plots.evaluation import plan_evaluation_figures

STOP_SECONDS = 5  # how long close() waits for the process to leave before ending it


class FigureProcess:
    """The drawing process; one evaluation job at a time (``start_evaluation_figures``, then ``wait``)."""

    def __init__(self):
        jobs_read, jobs_write = os.pipe()
        answers_read, answers_write = os.pipe()
        code = f"from convscope.plots.background import serve_figures; serve_figures({jobs_read}, {answers_write})"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}  # convscope from where this one came
        try:
            with sigint_blocked():  # the mask is inherited through exec: Ctrl-C never prints a traceback from the child
                self._process = subprocess.Popen([sys.executable, "-c", code], pass_fds=(jobs_read, answers_write), env=env, stdin=subprocess.DEVNULL)
        finally:
            os.close(jobs_read)
            os.close(answers_write)
        self._jobs, self._answers = Connection(jobs_write, readable=False), Connection(answers_read, writable=False)
        self._job: dict | None = None

    @property
    def pending(self) -> bool:
        """True between ``start_evaluation_figures`` and ``wait``."""
        return self._job is not None

    def start_evaluation_figures(self, result, images, out_dir: str | Path, **figures) -> None:
        """Hand ``save_evaluation_figures(result, images, out_dir, **figures)`` to the process; return at once."""
        if self.pending:
            raise RuntimeError("the figure process is still drawing the previous job; wait() for it first")
        claims = Path(tempfile.mkdtemp(prefix="convscope-figure-claims-"))
        job = {"result": result, "images": images, "out_dir": Path(out_dir), **figures}
        try:
            self._send({**job, "claims": claims})
        except BaseException:
            shutil.rmtree(claims, ignore_errors=True)
            raise
        self._job = {**job, "claims": claims}

    def wait(self) -> dict[str, Path]:
        """Draw the figures the process has not taken yet, wait for the rest; return {name: path} as ``save_evaluation_figures`` does.

        Raises:
            What drawing raised, here or in the process; ConvscopeError if the process ended without an answer.
        """
        if not self.pending:
            raise RuntimeError("no figures were handed to the figure process")
        job, self._job = self._job, None
        try:
            try:
                drawn_here = draw_claimed(job, from_end=True)
            except Exception:  # the same job fails there too, or has finished: its answer must not be read as the next one's
                with contextlib.suppress(Exception):
                    self._answer()
                raise
            return {**self._answer(), **drawn_here}
        finally:
            shutil.rmtree(job["claims"], ignore_errors=True)

    def _answer(self) -> dict[str, Path]:
        try:
            kind, value = self._answers.recv()
        except EOFError:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=STOP_SECONDS)
            raise ConvscopeError(self._ended_message()) from None
        if kind == "error":
            raise value
        return value

    def close(self) -> None:
        """End the process at once and release the pipe.

        Every answered job's figures are on disk, so nothing is lost; ending it beats waiting for its own
        interpreter teardown (~0.1 s). A job still being drawn (an error or Ctrl-C here) leaves at most
        ``save_figure``'s temporary file, never a half-written PNG.
        """
        self._process.terminate()  # SIGTERM: the process has no handler for it
        try:
            self._process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._jobs.close()
        self._answers.close()
        if self._job is not None:  # handed over, never waited for
            shutil.rmtree(self._job["claims"], ignore_errors=True)
            self._job = None

    def __enter__(self) -> FigureProcess:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _send(self, job: dict) -> None:
        try:
            self._jobs.send(job)
        except OSError:
            raise ConvscopeError(self._ended_message()) from None

    def _ended_message(self) -> str:
        return (
            f"the process drawing the evaluation figures ended unexpectedly (exit code {self._process.poll()}); "
            "expected it to draw them beside the inspection; check free memory and run `convscope evaluate RUN` to draw them again"
        )


@contextlib.contextmanager
def start_figure_process():
    """A FigureProcess for the block when this process may use two cores; else None (draw here: a second
    process on one core only adds its start-up). Closed at the end of the block."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1  # Linux only
    if cores < 2:
        yield None
        return
    with FigureProcess() as figures:
        yield figures


@contextlib.contextmanager
def sigint_blocked():
    """Hold Ctrl-C back inside the block; one that arrives meanwhile is delivered when the block ends, not lost."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def draw_claimed(job: dict, from_end: bool) -> dict[str, Path]:
    """Draw and save the job's figures one by one, each claimed first; stop when all are taken.

    Args:
        job: ``save_evaluation_figures``' arguments by name, with ``out_dir`` and ``claims`` (the marker folder).
        from_end: take the figures from the end of the list (the parent) instead of the front (the process).

    Returns:
        {name: path} of the figures drawn here.
    """
    job = dict(job)
    out_dir, claims = job.pop("out_dir"), job.pop("claims")
    plan = plan_evaluation_figures(**job)
    paths = {}
    for name in reversed(plan) if from_end else plan:
        try:
            os.close(os.open(claims / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:  # the other side has it
            continue
        paths[name] = save_figure(plan[name](), out_dir / f"{name}.png")
    return paths


def serve_figures(jobs_fd: int, answers_fd: int) -> None:
    """The process' loop: draw each job's figures and send back ("done", paths) or ("error", exception).

    Args:
        jobs_fd, answers_fd: the pipe ends inherited from the parent (jobs in, answers out).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends this process (also drops one held back)
    jobs, answers = Connection(jobs_fd, writable=False), Connection(answers_fd, readable=False)
    while True:
        try:
            job = jobs.recv()
        except EOFError:  # the parent ended
            return
        try:
            answer = ("done", draw_claimed(job, from_end=False))
        except BaseException as error:  # every failure goes back to be raised in the parent
            answer = ("error", error)
        try:
            answers.send(answer)
        except Exception:  # an exception that does not pickle: its type and text
            answers.send(("error", ConvscopeError(f"drawing the evaluation figures failed: {type(answer[1]).__name__}: {answer[1]}")))
