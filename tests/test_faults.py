"""Fault matrix: a misbehaving server (``tests/rawserver.py``) and unreachable peers.

Every case must end in the standard's events (error, then close 1006 with ``wasClean=False``)
within its own timeout, never hang; the client's close code on the wire is checked where rawserver
records it, and ``ws.last_error`` must hold the exception behind the failure.

DNS failure uses a ``.invalid`` name (RFC 6761: never resolvable). Measured here: glibc sends one
query to the machine's configured resolver, which answers NXDOMAIN at once (~0.1 s in all);
nothing goes further, and no address is ever connected to.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from typing import Optional

import pytest

import mesiboscript
from mesiboscript import SocketError, WebSocket

from .helpers import TIMEOUT, Certificates, Recorder, free_port
from .rawserver import INVALID_HOST, RawServer

FAIL_CLOSE = ("close", 3, 1006, False)


def _chain(exc: Optional[BaseException]) -> list[BaseException]:
    """The exception, its causes and contexts."""
    out: list[BaseException] = []
    while exc is not None and exc not in out:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def _assert_failed(ev: Recorder, error: Optional[SocketError], *, opened: bool) -> None:
    """open (if ``opened``), error, close 1006 not clean; ``error=None``: any SocketError."""
    want = ([("open", 1)] if opened else []) + [("error", 3), FAIL_CLOSE]
    assert ev.events == want
    assert ev.close_data is not None
    assert ev.close_data.reason == ""
    assert len(ev.errors) == 1, ev.errors
    assert isinstance(ev.errors[0], SocketError), ev.errors
    if error is not None:
        assert ev.errors[0] == error
    assert isinstance(ev.ws.last_error, BaseException), ev.ws.last_error
    assert ev.ws.readyState == WebSocket.CLOSED
    assert not mesiboscript.getOpenSessions()


@pytest.fixture(scope="module")
def raw() -> Iterator[RawServer]:
    with RawServer(conn_timeout=TIMEOUT) as srv:
        yield srv


# -- after the handshake ----------------------------------------------------------------------


def test_half_frame_then_stall_ping_timeout(raw: RawServer) -> None:
    """5 bytes of a frame, then silence: pings go unanswered; the ping timeout fails it."""
    ws = WebSocket(raw.url("/half_frame"), ping_interval=0.2, ping_timeout=0.5)
    ev = Recorder(ws)
    ev.wait_closed()
    _assert_failed(ev, SocketError.SocketTimeoutError, opened=True)
    assert ev.close_after is not None
    assert ev.close_after < 0.2 + 0.5 + 3
    rec = raw.wait_record("/half_frame", TIMEOUT)
    assert any(f.opcode == 0x9 for f in rec.frames), "the client never pinged"


def test_half_frame_without_pings_does_not_fail(raw: RawServer) -> None:
    """Without ping_interval (the browser default) a stalled frame is not an error by itself."""
    path = "/half_frame?s=no-ping"
    ws = WebSocket(raw.url(path), close_timeout=0.5)
    ev = Recorder(ws)
    assert ev.opened.wait(TIMEOUT), ev.events
    ws.close(1000, "done waiting")
    ev.wait_closed()
    # The server never answers the close: the close timeout ends it, not cleanly.
    assert ev.events[0] == ("open", 1)
    assert ev.events[-1][:3] == ("close", 3, 1006)
    assert raw.wait_record(path, TIMEOUT).client_close_code == 1000


@pytest.mark.parametrize("path", ["/oversize", "/oversize_header"])
def test_oversize_message(raw: RawServer, path: str) -> None:
    """A message over max_size: the client sends 1009 and reports close 1006 after an error."""
    ws = WebSocket(raw.url(path), max_size=1024)
    ev = Recorder(ws)
    ev.wait_closed()
    _assert_failed(ev, None, opened=True)
    rec = raw.wait_record(path, TIMEOUT)
    assert rec.client_close_code == 1009, rec.wire_summary()


@pytest.mark.parametrize(
    ("path", "wire_code"),
    [("/fragmented_ping", 1002), ("/garbage", 1002), ("/long_ping", 1002)],
)
def test_protocol_violation(raw: RawServer, path: str, wire_code: int) -> None:
    ws = WebSocket(raw.url(path))
    ev = Recorder(ws)
    ev.wait_closed()
    _assert_failed(ev, None, opened=True)
    rec = raw.wait_record(path, TIMEOUT)
    assert rec.client_close_code == wire_code, rec.wire_summary()


# -- opening handshake --------------------------------------------------------------------------


def test_slowloris_handshake_connect_timeout(raw: RawServer) -> None:
    """The server reads the request and never answers: connect_timeout fails the connection."""
    ws = WebSocket(raw.url("/slowloris"), connect_timeout=0.5)
    ev = Recorder(ws)
    ev.wait_closed()
    _assert_failed(ev, SocketError.SocketTimeoutError, opened=False)
    assert ev.close_after is not None
    assert 0.4 < ev.close_after < 0.5 + 3
    rec = raw.wait_record("/slowloris", TIMEOUT)
    assert rec.frames == []
    assert rec.end.startswith("client"), rec.end


def test_refused() -> None:
    ws = WebSocket(f"ws://127.0.0.1:{free_port()}/")
    ev = Recorder(ws)
    ev.wait_closed()
    _assert_failed(ev, SocketError.ConnectionRefusedError, opened=False)
    assert any(isinstance(e, ConnectionRefusedError) for e in _chain(ws.last_error))


def test_dns_failure() -> None:
    t0 = time.monotonic()
    try:
        socket.getaddrinfo(INVALID_HOST, 80)
    except socket.gaierror:
        pass
    else:  # a resolver that answers for .invalid breaks RFC 6761: say so, do not guess
        pytest.fail(f"this machine's resolver resolved {INVALID_HOST}")
    lookup = time.monotonic() - t0
    ws = WebSocket(f"ws://{INVALID_HOST}:9/", connect_timeout=TIMEOUT)
    ev = Recorder(ws)
    ev.wait_closed()
    _assert_failed(ev, SocketError.HostNotFoundError, opened=False)
    assert any(isinstance(e, socket.gaierror) for e in _chain(ws.last_error)), ws.last_error
    assert ev.close_after is not None
    assert ev.close_after < lookup + 3


# -- TLS ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_servers(
    certs: Certificates, untrusted_certs: Certificates
) -> Iterator[dict[str, RawServer]]:
    """Servers whose certificates clients that trust ``certs.cafile`` accept (good) or refuse."""
    contexts = {
        "good": certs.server_context(),
        "unknown_ca": untrusted_certs.server_context(),
        "expired": certs.server_context(expired=True),
        "wrong_host": certs.server_context("wrong.example.test"),
    }
    servers = {
        name: RawServer(ssl_context=context, conn_timeout=TIMEOUT).start()
        for name, context in contexts.items()
    }
    yield servers
    for srv in servers.values():
        srv.stop()


def test_tls_good_certificate_opens(certs: Certificates, tls_servers: dict[str, RawServer]) -> None:
    """The control case: the same CA file and a right certificate give a clean close."""
    srv = tls_servers["good"]
    ws = WebSocket(srv.url("/close_1000"), cafile=certs.cafile)
    ev = Recorder(ws)
    ev.wait_closed()
    assert ev.events == [("open", 1), ("close", 3, 1000, True)]
    assert ev.close_data is not None
    assert ev.close_data.reason == "bye"


@pytest.mark.parametrize(
    ("name", "verify_text"),
    [
        ("unknown_ca", "unable to get local issuer certificate"),
        ("expired", "certificate has expired"),
        ("wrong_host", "mismatch"),
    ],
)
def test_tls_failure(
    certs: Certificates, tls_servers: dict[str, RawServer], name: str, verify_text: str
) -> None:
    srv = tls_servers[name]
    ws = WebSocket(srv.url("/echo_close"), cafile=certs.cafile, connect_timeout=TIMEOUT)
    ev = Recorder(ws)
    ev.wait_closed()
    _assert_failed(ev, SocketError.SslHandshakeFailedError, opened=False)
    verify = [e for e in _chain(ws.last_error) if isinstance(e, ssl.SSLCertVerificationError)]
    assert verify, f"no certificate verification error behind {ws.last_error!r}"
    assert verify_text in str(verify[0].verify_message), verify[0].verify_message


def test_tls_wrong_host_by_name(certs: Certificates, tls_servers: dict[str, RawServer]) -> None:
    """The same wrong-host certificate reached through the name ``localhost``."""
    srv = tls_servers["wrong_host"]
    ws = WebSocket(srv.url("/echo_close", host="localhost"), cafile=certs.cafile)
    ev = Recorder(ws)
    ev.wait_closed()
    _assert_failed(ev, SocketError.SslHandshakeFailedError, opened=False)
