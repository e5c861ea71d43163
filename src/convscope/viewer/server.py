"""Serving a ViewSession under uvicorn: bind, choose the token, run in the foreground or in a background thread.

    from convscope.viewer.server import serve, start
    serve(session, port=8000, on_ready=print)        # blocks until Ctrl-C (the command line)
    running = start(session)                          # a background thread (notebooks, tests)
    running.url                                       # 'http://127.0.0.1:40123/'
    running.stop()

The socket is bound before uvicorn starts, so ``port=0`` gives a free port
whose number is known (and printed) before the first request; requests that
arrive meanwhile wait in the socket's backlog. A bind beyond loopback always
gets a token, as Jupyter does.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from dataclasses import dataclass

import uvicorn

from convscope.errors import ConvscopeError
from convscope.viewer.app import create_app, is_loopback_host
from convscope.viewer.session import ViewSession

WILDCARD_HOSTS = ("0.0.0.0", "::", "")  # every interface
START_TIMEOUT_SECONDS = 30.0
MAX_CONNECTIONS = 64  # uvicorn answers 503 beyond this many at once: a runaway script cannot pile up threads


@dataclass
class Served:
    """A viewer running in a background thread."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread to end."""
        self.server.should_exit = True
        self.thread.join(timeout)


def choose_token(host: str, token: str | None) -> str | None:
    """The token requests must carry: the one given, a fresh random one beyond loopback, else None.

    Args:
        host: the address the server binds.
        token: the token asked for (--token), or None or "".

    Returns:
        ``token`` when given; else 32 random URL-safe characters for a non-loopback host, None for loopback.
    """
    if token:
        return token
    return None if is_loopback_host(host) else secrets.token_urlsafe(24)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); port 0 picks a free one.

    Args:
        host: an IPv4 or IPv6 address (or name) of this machine.
        port: the port, 0 for a free one.

    Returns:
        The bound, listening socket (SO_REUSEADDR, backlog 128).

    Raises:
        ConvscopeError: the host is not an address here, or the port cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (socket.gaierror, UnicodeError) as error:  # before OSError: gaierror is one
        sock.close()
        raise ConvscopeError(f"--host {host!r} is not an address of this machine ({error}); use 127.0.0.1 or 0.0.0.0") from None
    except OSError as error:
        sock.close()
        raise ConvscopeError(f"cannot listen on {host} port {port} ({error.strerror or error}); pass --port 0 for a free port, or another --host") from None
    sock.listen(128)
    return sock


def viewer_url(host: str, port: int, token: str | None) -> str:
    """The address to open: 127.0.0.1 for a wildcard bind (it works on this machine), with ?token= when one is set.

    Args:
        host: the bound address; an IPv6 one is bracketed.
        port: the bound port (not 0).
        token: the token, or None.

    Returns:
        e.g. 'http://127.0.0.1:8000/?token=...'.
    """
    shown = "127.0.0.1" if host in WILDCARD_HOSTS else (f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def prepare_server(session: ViewSession, host: str, port: int, token: str | None) -> tuple[uvicorn.Server, socket.socket, str]:
    """The uvicorn server, its bound socket and the URL to open.

    Args:
        session: the opened model to serve.
        host, port, token: as ``serve`` takes them.

    Returns:
        (the uvicorn.Server, not yet running; the listening socket; the URL, with the token).
    """
    token = choose_token(host, token)
    allowed = () if is_loopback_host(host) else tuple(name for name in (host, socket.gethostname()) if name not in WILDCARD_HOSTS)
    app = create_app(session, token=token, allowed_names=allowed)
    sock = bind(host, port)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", limit_concurrency=MAX_CONNECTIONS)
    return uvicorn.Server(config), sock, viewer_url(host, sock.getsockname()[1], token)


def serve(session: ViewSession, host: str = "127.0.0.1", port: int = 0, token: str | None = None, on_ready=None) -> None:
    """Serve in this thread until interrupted (Ctrl-C).

    Args:
        session: the opened model.
        host: the address to bind; beyond loopback a token is required.
        port: 0 picks a free port.
        token: the token requests must carry; None: a random one beyond loopback, none on loopback.
        on_ready: called with the URL once the socket listens, before serving (print it, open a browser).
    """
    server, sock, url = prepare_server(session, host, port, token)
    try:
        if on_ready is not None:
            on_ready(url)
        server.run(sockets=[sock])
    finally:
        sock.close()


def start(session: ViewSession, host: str = "127.0.0.1", port: int = 0, token: str | None = None) -> Served:
    """Serve from a background thread and return once it answers requests.

    Args:
        session: what to serve.
        host, port, token: as ``serve`` takes them (port 0: a free one).

    Returns:
        Served: its ``url``, and ``stop()``.

    Example:
        >>> running = start(session)
        >>> running.url
        'http://127.0.0.1:40123/'
    """
    server, sock, url = prepare_server(session, host, port, token)

    def run():
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()

    thread = threading.Thread(target=run, name="convscope-view", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True  # a late start must not leave a server holding the port with no handle to stop it
            thread.join(START_TIMEOUT_SECONDS)
            raise ConvscopeError(f"the viewer did not start on {url}; see the log above")
        time.sleep(0.02)
    return Served(url, server, thread)
