"""The ``mesiboscript`` pytest plugin: fixtures with running echo servers.

Registered through the ``pytest11`` entry point, so pytest loads it in every run where mesiboscript
is installed. It therefore imports nothing but pytest at import time (websockets and trustme load
when a fixture first starts a server), and it changes nothing for tests that do not ask for its
fixtures.

Fixtures:

- ``echo_server``, ``echo_server_wss``, ``echo_server_sock``, ``echo_server_socks``: a running
  :class:`~mesiboscript.testing.EchoServer` of that scheme (``.url``, ``.port``, ``.host``, and for
  TLS ``.ca.cafile`` / ``.ca.client_context()``), stopped after the test.
- ``echo_server_factory``: ``make(scheme="ws", **options)`` starts more, with any option.
- ``echo_ca``: the session's :class:`~mesiboscript.testing.CertificateAuthority` (the TLS servers'
  certificates come from it).
- ``close_leaked_sessions``: after the test, closes every ``WebSocket`` the test left open. The
  server fixtures already close the connections a test leaked to their own server.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable

import pytest

if TYPE_CHECKING:
    from mesiboscript.testing import CertificateAuthority, EchoServer

_CLOSE_WAIT = 5.0  # seconds to wait for leaked connections to finish closing


def _open_sessions() -> list[Any]:
    if "mesiboscript" not in sys.modules:
        return []
    from mesiboscript import getOpenSessions

    return list(getOpenSessions())


def _close_sessions(sessions: list[Any]) -> None:
    """Close WebSockets a test leaked, and wait (a little) for their close events."""
    closed = []
    for ws in sessions:
        event = threading.Event()
        ws.addEventListener("close", lambda _event, done=event: done.set())
        closed.append((ws, event))
        ws.close(1000, "closed by pytest teardown: the test left it open")
    deadline = time.monotonic() + _CLOSE_WAIT
    for ws, event in closed:
        if ws.readyState != 3:  # CLOSED already: its close event may have fired before we listened
            event.wait(max(0.0, deadline - time.monotonic()))


def _leaked_to(server: EchoServer) -> list[Any]:
    if server.scheme not in ("ws", "wss"):
        return []  # only WebSockets are sessions
    return [ws for ws in _open_sessions() if str(getattr(ws, "url", "")).startswith(server.url)]


@pytest.fixture(scope="session")
def echo_ca() -> Iterator[CertificateAuthority]:
    """A certificate authority made for this test session (``.cafile``, ``.client_context()``)."""
    from mesiboscript.testing import CertificateAuthority

    with CertificateAuthority() as ca:
        yield ca


@pytest.fixture
def echo_server_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., EchoServer]]:
    """``make(scheme="ws", **options)``: start an EchoServer, stopped after the test."""
    from mesiboscript.testing import EchoServer

    servers: list[EchoServer] = []

    def make(scheme: str = "ws", **options: Any) -> EchoServer:
        if scheme in ("wss", "socks") and "ca" not in options:
            options["ca"] = request.getfixturevalue("echo_ca")
        server = EchoServer(scheme, **options)
        servers.append(server)
        return server

    yield make
    for server in reversed(servers):
        try:
            _close_sessions(_leaked_to(server))
        finally:
            server.close()


@pytest.fixture
def echo_server(echo_server_factory: Callable[..., EchoServer]) -> EchoServer:
    """A ``ws://`` echo server; append a script to its URL: ``echo_server.url + "close/4000"``."""
    return echo_server_factory("ws")


@pytest.fixture
def echo_server_wss(echo_server_factory: Callable[..., EchoServer]) -> EchoServer:
    """A ``wss://`` echo server; trust ``echo_server_wss.ca.cafile``."""
    return echo_server_factory("wss")


@pytest.fixture
def echo_server_sock(echo_server_factory: Callable[..., EchoServer]) -> EchoServer:
    """A ``sock://`` (TCP) echo server."""
    return echo_server_factory("sock")


@pytest.fixture
def echo_server_socks(echo_server_factory: Callable[..., EchoServer]) -> EchoServer:
    """A ``socks://`` (TLS over TCP) echo server; trust ``echo_server_socks.ca.cafile``."""
    return echo_server_factory("socks")


@pytest.fixture
def close_leaked_sessions() -> Iterator[None]:
    """Close, after the test, every WebSocket it opened and left open."""
    before = _open_sessions()  # holding them keeps their ids unique
    known = {id(ws) for ws in before}
    yield
    _close_sessions([ws for ws in _open_sessions() if id(ws) not in known])


def pytest_unconfigure(config: pytest.Config) -> None:
    """Close WebSocketServers a test session left listening: they would keep pytest alive."""
    server_module = sys.modules.get("mesiboscript.server")
    if server_module is None:
        return
    from mesiboscript import _lifetime

    for owner in _lifetime.active():
        if isinstance(owner, server_module.WebSocketServer):
            owner.close()
