"""The network guard in conftest.py: a connection beyond this machine fails the test; loopback and AF_UNIX pass.

The real socket functions are swapped for a tripwire first, so even a broken
guard sends nothing: 203.0.113.1 is TEST-NET-3 (RFC 5737), never a real host.
"""

import socket
import urllib.request

import pytest

import conftest

PUBLIC = ("203.0.113.1", 80)


@pytest.fixture
def tripwire(monkeypatch):
    """Replace what the guard lets through to; returns the list of calls that got past the guard."""
    assert socket.socket.connect is conftest.guarded_connect, "the guard is not installed"
    calls = []
    for name in conftest.REAL:
        monkeypatch.setitem(conftest.REAL, name, lambda *args, name=name, **kwargs: calls.append((name, args)))
    return calls


def test_connect_to_a_public_address_fails_the_test_before_connecting(tripwire):
    for family, address in ((socket.AF_INET, PUBLIC), (socket.AF_INET6, ("2001:db8::1", 80, 0, 0))):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            with pytest.raises(pytest.fail.Exception, match="tests must not reach the network.*refused"):
                sock.connect(address)
            with pytest.raises(pytest.fail.Exception, match="tests must not reach the network"):
                sock.connect_ex(address)
    assert tripwire == []


def test_names_are_refused_before_they_are_looked_up(tripwire):
    with pytest.raises(pytest.fail.Exception, match="example.com"):
        socket.create_connection(("example.com", 80), timeout=1)
    with pytest.raises(pytest.fail.Exception, match="example.com"):
        socket.getaddrinfo("example.com", 443)
    with pytest.raises(pytest.fail.Exception, match="203.0.113.1"):
        urllib.request.urlopen("http://203.0.113.1/", timeout=1)
    assert tripwire == []


def test_a_library_catching_os_errors_cannot_swallow_the_refusal(tripwire):
    """convscope's downloader turns OSError into a ConvscopeError; the guard's failure is not an OSError."""
    with pytest.raises(pytest.fail.Exception):
        try:
            socket.create_connection(PUBLIC, timeout=1)
        except Exception:  # noqa: BLE001  (what a library's error handling might do)
            pass
    assert tripwire == []


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1", "localhost"])
def test_loopback_is_allowed(host):
    assert conftest.is_loopback(host)


@pytest.mark.parametrize("host", ["203.0.113.1", "10.0.0.1", "192.168.1.1", "0.0.0.0", "2001:db8::1", "example.com", "localhost.example.com"])
def test_everything_else_is_not_loopback(host):
    assert not conftest.is_loopback(host)


def test_loopback_and_unix_sockets_still_connect(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5) as client:
            accepted, _ = server.accept()
            with accepted:
                client.sendall(b"ping")
                assert accepted.recv(4) == b"ping"
    path = str(tmp_path / "socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(path)
            server.accept()[0].close()
