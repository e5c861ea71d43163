"""The live viewer: a local web page that runs a model on what you draw, upload or pick, and shows every layer.

    convscope view runs/mnist-demo                    # prints "Serving runs/mnist-demo at http://127.0.0.1:PORT/"

    import convscope
    url = convscope.view(model, "mnist-sample")       # a Keras model in memory; in Jupyter the page shows inline
    from convscope.viewer import stop_view
    stop_view(url)                                    # or let it end with the Python process

Modules: ``session`` (the model, its inputs and every computed answer, as
dicts), ``encoding`` (arrays to PNG tiles and overlays), ``app`` (Starlette
routes and guards), ``server`` (uvicorn, sockets, tokens), ``static/`` (the
page: plain JavaScript, no build step, nothing fetched from elsewhere).
"""

from __future__ import annotations

import logging

from convscope.viewer.server import Served, serve, start
from convscope.viewer.session import ViewSession

__all__ = ["Served", "ViewSession", "serve", "serve_run", "start", "stop_view", "view"]

logger = logging.getLogger(__name__)
IFRAME_HEIGHT = 900  # CSS pixels of the notebook frame: probabilities, the input and the first layers without scrolling
_running: dict[str, Served] = {}  # url -> server, so stop_view can find the servers view() started


def view(model, data, host: str = "127.0.0.1", port: int = 0, token: str | None = None) -> str:
    """Open the live viewer on a Keras model in memory; return its URL (in Jupyter the page also shows in an IFrame).

    The server runs in a background thread until ``stop_view(url)`` or the
    end of the Python process.

    Args:
        model: a Keras classifier, Sequential or functional, trained or not, even never called.
        data: the dataset it takes: a name (``convscope datasets``) or a ``convscope.data.Dataset``;
            its test set feeds the picker (the model predicts it once here).
        host: address to bind; beyond 127.0.0.1 every request needs the token in the URL.
        port: 0 picks a free port.
        token: the token to require; None: a random one beyond loopback, none on loopback.

    Returns:
        The page's URL.

    Example:
        >>> url = convscope.view(model, "mnist-sample")  # doctest: +SKIP
        >>> url
        'http://127.0.0.1:40123/'
    """
    session = ViewSession.from_model(model, data)
    running = start(session, host=host, port=port, token=token)
    _running[running.url] = running
    logger.info("Serving %s at %s", session.title, running.url)
    _show_in_notebook(running.url)
    return running.url


def serve_run(run_dir, host: str = "127.0.0.1", port: int = 0, token: str | None = None, on_ready=None) -> None:
    """Serve a run folder's model in this thread until Ctrl-C (``convscope view RUN``).

    Args:
        run_dir: a run folder with model.keras (a trained run, a YAML or zoo model, a baseline).
        on_ready: called with the URL once the socket listens (the command prints it and opens a browser).
    """
    serve(ViewSession.from_run(run_dir), host=host, port=port, token=token, on_ready=on_ready)


def stop_view(url: str | None = None) -> None:
    """Stop the viewer ``view`` started at ``url`` (None: every one)."""
    for key in [url] if url is not None else list(_running):
        running = _running.pop(key, None)
        if running is not None:
            running.stop()


def _show_in_notebook(url: str) -> None:
    """Show the page in an IFrame when running inside a Jupyter kernel; elsewhere do nothing."""
    try:
        from IPython import get_ipython  # lazy: IPython is optional, present only in notebooks
        from IPython.display import IFrame, display  # lazy: as above
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or "IPKernelApp" not in getattr(shell, "config", {}):
        return
    display(IFrame(url, width="100%", height=IFRAME_HEIGHT))
