from __future__ import annotations

import os
import signal
import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import mesiboscript
from mesiboscript import _lifetime

from .helpers import TIMEOUT, AsyncServers, Certificates

# The fixtures echo_server, echo_ca, ... come from this checkout's plugin, installed or not. When
# the package is installed, pytest has already loaded the plugin by its pytest11 entry point (before
# any conftest); naming it here as well would register the module twice, which pytest refuses.
# With `-p no:mesiboscript` or PYTEST_DISABLE_PLUGIN_AUTOLOAD it is skipped, and this loads it.
_PLUGIN = "mesiboscript.testing.plugin"
pytest_plugins = [] if _PLUGIN in sys.modules else [_PLUGIN]

# A shell starts background jobs (`pytest &`, nohup) with SIGINT ignored, children inherit that,
# and a Python started so never raises KeyboardInterrupt: the tests that stop a child script with
# SIGINT would wait out their timeout. A handler (unlike an ignore) is reset to the default by exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Connections read their proxy from the environment as curl does (loopback included): a proxy
# set on the machine running the tests would carry every test's connection. The proxy tests set
# these variables themselves.
for _name in ("ws", "wss", "http", "https", "all", "no"):
    for _key in (f"{_name}_proxy", f"{_name}_proxy".upper()):
        os.environ.pop(_key, None)


@pytest.fixture(scope="session")
def servers() -> Iterator[AsyncServers]:
    s = AsyncServers()
    yield s
    s.close()


@pytest.fixture(scope="session")
def echo_url() -> Iterator[str]:
    from mesiboscript.testing import EchoServer

    with EchoServer("ws", max_size=None) as server:
        yield server.url


@pytest.fixture(scope="session")
def certs(echo_ca: Any) -> Certificates:
    """The session's certificates, from the plugin's CA: the echo servers use it too."""
    return Certificates(echo_ca)


@pytest.fixture(scope="session")
def untrusted_certs() -> Iterator[Certificates]:
    """Certificates from a CA of their own, which no client is told to trust."""
    certificates = Certificates()
    yield certificates
    certificates.close()


@pytest.fixture(scope="session")
def client_ssl(certs: Certificates) -> ssl.SSLContext:
    return certs.client_context()


@pytest.fixture(scope="session")
def wss_echo_url(echo_ca: Any) -> Iterator[str]:
    from mesiboscript.testing import EchoServer

    with EchoServer("wss", ca=echo_ca, max_size=None) as server:
        yield f"wss://localhost:{server.port}/"


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Every connection a test opened is closed by its end, and no thread is left behind."""
    before = {t for t in threading.enumerate() if t.name != "mesiboscript-dns"}
    yield
    # Connections already closing get to finish; any still open after that was leaked.
    closing = mesiboscript.ReadyState.CLOSING
    leaked = [c for c in _lifetime.active() if getattr(c, "readyState", closing) < closing]
    if leaked:
        _lifetime.shutdown_all(1001, "test ended", TIMEOUT)
    assert _lifetime.wait_idle(TIMEOUT), f"connections still open: {_lifetime.active()}"
    assert not leaked, f"test left connections open: {leaked}"
    assert not mesiboscript.getOpenSessions()
    extra = [
        t
        for t in threading.enumerate()
        if t not in before
        and t.name not in ("mesiboscript-io", "mesiboscript-dns", "test-servers")
        and t.is_alive()
        and not t.daemon
    ]
    assert not extra, f"threads leaked: {extra}"


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening TCP socket on 127.0.0.1 that nothing accepts from until the test does."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.settimeout(TIMEOUT)
        yield sock
