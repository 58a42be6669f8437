"""Security: input that could inject into the handshake, TLS verification, hostile peers.

- CR, LF or NUL in the URL, extra headers, protocols or origin are refused at construction with a
  ``ValueError`` and nothing reaches the network; text that only *looks* harmless (percent-escapes,
  code points whose low byte is CR or LF) never turns into a header on the wire.
- ``wss://`` is verified by default: an unknown CA or a wrong host name fails with error, then
  close 1006, before any HTTP is sent.
- ``max_size`` bounds what a peer can make the client hold: a frame header announcing 2**62 bytes,
  or a message streamed without end, closes with 1009 on the wire while memory stays small.
- Arbitrary server bytes after a valid handshake (hypothesis) never raise out of the I/O thread and
  always end in exactly one close event.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import ssl
import struct
import threading
import tracemalloc
from collections.abc import Iterator
from typing import Any, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesiboscript import SocketError, WebSocket

from .helpers import TIMEOUT, Certificates, Recorder
from .rawserver import RawConnection, RawServer, close_frame, frame

# -- a raw server: rawserver.RawServer, one handler per accepted connection -------------------


def echo_until_close(conn: RawConnection) -> Optional[int]:
    """Handshake, echo data frames, answer the client's close; return the client's close code."""
    conn.handshake()
    while True:
        opcode, payload = conn.read_frame()
        if opcode == 0x8:
            conn.sock.sendall(frame(0x8, payload[:2]))
            return struct.unpack("!H", payload[:2])[0] if payload else None
        if opcode in (0x1, 0x2):
            conn.sock.sendall(frame(opcode, payload))


@pytest.fixture
def echo_server() -> Iterator[RawServer]:
    with RawServer(handler=echo_until_close) as server:
        yield server


def open_and_close(url: str, **options: Any) -> Recorder:
    """Open a connection, check it opened, close it cleanly."""
    ws = WebSocket(url, **options)
    rec = Recorder(ws)
    assert rec.opened.wait(TIMEOUT), f"did not open: {rec.events} {ws.last_error!r}"
    ws.close(1000)
    assert rec.wait_closed().wasClean
    return rec


# -- injection: refused at construction ------------------------------------------------------------

BAD_URL_PARTS = [
    "/path\r\nX-Injected: 1",
    "/path\nX-Injected: 1",
    "/path\rX",
    "/pa\x00th",
    "/?q=a\r\nX-Injected: 1",
    "/?q=\x00",
]
BAD_HEADERS = [
    {"X-Test": "a\r\nX-Injected: 1"},
    {"X-Test": "a\nX-Injected: 1"},
    {"X-Test": "a\rb"},
    {"X-Test": "a\x00b"},
    {"X-Test\r\nX-Injected": "1"},
    {"X-Test\n": "1"},
    {"X-\x00Test": "1"},
]
BAD_PROTOCOLS: list[Any] = [
    "chat\r\nX-Injected: 1",
    "chat\n",
    "ch\x00at",
    ["chat", "superchat\r\nX-Injected: 1"],
    ["chat", "a\x00"],
]
BAD_ORIGINS = [
    "http://example.com\r\nX-Injected: 1",
    "http://example.com\n",
    "http://exa\rmple.com",
    "http://example.com\x00",
]


def assert_nothing_sent(server: RawServer) -> None:
    """A valid connection after the refused ones is the first and only one the server sees."""
    open_and_close(server.url())
    assert server.wait_results(1)[0] == 1000
    assert server.accepted == 1, "a refused WebSocket reached the network"


@pytest.mark.parametrize("part", BAD_URL_PARTS)
def test_control_characters_in_url_are_refused(echo_server: RawServer, part: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (the contract promises only ValueError)
        WebSocket(f"ws://127.0.0.1:{echo_server.port}{part}")
    assert_nothing_sent(echo_server)


@pytest.mark.parametrize("host", ["127.0.0.1\r\nX-Injected: 1", "local\x00host", "a\nb"])
def test_control_characters_in_host_are_refused(host: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        WebSocket(f"ws://{host}:9/")


@pytest.mark.parametrize("headers", BAD_HEADERS)
def test_control_characters_in_headers_are_refused(
    echo_server: RawServer, headers: dict[str, str]
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        WebSocket(echo_server.url(), headers=headers)
    assert_nothing_sent(echo_server)


@pytest.mark.parametrize("protocols", BAD_PROTOCOLS)
def test_control_characters_in_protocols_are_refused(
    echo_server: RawServer, protocols: Any
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        WebSocket(echo_server.url(), protocols)
    assert_nothing_sent(echo_server)


@pytest.mark.parametrize("origin", BAD_ORIGINS)
def test_control_characters_in_origin_are_refused(echo_server: RawServer, origin: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        WebSocket(echo_server.url(), origin=origin)
    assert_nothing_sent(echo_server)


def _header_names(request: bytes) -> list[bytes]:
    lines = request.split(b"\r\n")[1:]
    return [line.split(b":", 1)[0].strip().lower() for line in lines]


@pytest.mark.parametrize(
    "suffix",
    [
        "/p?q=%0D%0AX-Injected:%201",  # escapes stay escapes
        "/\u560d\u560aX-Injected:\u5620yes",  # low bytes CR LF SP: the Node.js latin-1 trap
        "/\u010d\u010aX-Injected:\u0120yes",
    ],
)
def test_lookalike_url_text_does_not_inject(echo_server: RawServer, suffix: str) -> None:
    open_and_close(f"ws://127.0.0.1:{echo_server.port}{suffix}")
    echo_server.wait_results(1)
    request = echo_server.requests[0]
    assert b"x-injected" not in _header_names(request), request
    request_line = request.split(b"\r\n", 1)[0]
    assert request_line.startswith(b"GET /"), request_line
    assert request_line.endswith(b" HTTP/1.1"), request_line
    assert all(32 < byte < 127 for byte in request_line.split(b" ")[1]), request_line


@pytest.mark.parametrize(
    "value", ["a\u560d\u560aX-Injected: 1", "a\u010d\u010aX-Injected: 1", "caf\u00e9"]
)
def test_lookalike_header_text_does_not_inject(echo_server: RawServer, value: str) -> None:
    try:
        ws = WebSocket(echo_server.url(), headers={"X-Test": value}, origin=value)
    except ValueError:
        return  # refusing non-ASCII header text is also safe
    rec = Recorder(ws)
    assert rec.opened.wait(TIMEOUT), f"did not open: {rec.events} {ws.last_error!r}"
    ws.close(1000)
    rec.wait_closed()
    echo_server.wait_results(1)
    request = echo_server.requests[0]
    assert b"x-injected" not in _header_names(request), request
    lines = request.split(b"\r\n")
    assert not any(b"\r" in line or b"\n" in line for line in lines), request


# -- TLS is verified by default --------------------------------------------------------------------


@pytest.fixture
def tls_server(certs: Certificates) -> Iterator[RawServer]:
    with RawServer(handler=echo_until_close, ssl_context=certs.server_context()) as server:
        yield server


def _assert_tls_refused(server: RawServer, **options: Any) -> None:
    ws = WebSocket(server.url(), **options)
    rec = Recorder(ws)
    close = rec.wait_closed()
    assert rec.kinds() == ["error", "close"], rec.events
    assert (close.code, close.wasClean) == (1006, False)
    assert rec.error == SocketError.SslHandshakeFailedError, repr(ws.last_error)
    # The cause is reachable for debugging: the ssl error itself or what it was raised from.
    cause = ws.last_error
    assert cause is not None
    assert isinstance(cause, ssl.SSLError) or isinstance(cause.__cause__, ssl.SSLError), repr(cause)
    assert "CERTIFICATE_VERIFY_FAILED" in str(cause), repr(cause)
    # The server's TLS handshake failed: no HTTP request was ever read.
    results = server.wait_results(1)
    assert server.requests == [], server.requests
    assert isinstance(results[0], (ssl.SSLError, OSError)), results


def test_tls_unknown_ca_is_refused_by_default(tls_server: RawServer) -> None:
    _assert_tls_refused(tls_server)


def test_tls_wrong_hostname_is_refused(certs: Certificates) -> None:
    context = certs.server_context("other.example")
    with RawServer(handler=echo_until_close, ssl_context=context) as s:
        _assert_tls_refused(s, cafile=certs.cafile)


def test_tls_trusted_ca_opens(tls_server: RawServer, certs: Certificates) -> None:
    open_and_close(tls_server.url(), cafile=certs.cafile)
    open_and_close(tls_server.url(), ssl_context=certs.client_context())
    assert tls_server.wait_results(2)[:2] == [1000, 1000]


# -- max_size bounds what a hostile peer can make the client hold ---------------------------------


class Tracing:
    """Peak of Python allocations (every thread) while the block runs."""

    def __enter__(self) -> Tracing:
        self.started = not tracemalloc.is_tracing()
        if self.started:
            tracemalloc.start()
        tracemalloc.reset_peak()
        self.base = tracemalloc.get_traced_memory()[0]
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak = tracemalloc.get_traced_memory()[1] - self.base
        if self.started:
            tracemalloc.stop()


def _send_until_close(conn: RawConnection, head: bytes, chunk: bytes, limit: int) -> dict[str, Any]:
    """After the handshake write ``head``, then ``chunk`` again and again until the client starts
    sending (its close frame) or ``limit`` bytes are out; return its close code and bytes sent."""
    conn.handshake()
    sock = conn.sock
    sock.setblocking(False)
    pending = memoryview(head)
    sent = 0
    try:
        while sent < limit:
            readable, writable, _ = select.select([sock], [sock], [], TIMEOUT)
            if readable:
                data = sock.recv(65536)
                conn.buf += data
                break  # the client is talking (or gone): stop writing, read its close
            if not writable:
                break
            n = sock.send(pending)
            sent += n
            pending = pending[n:] or memoryview(chunk)
    except OSError:
        pass
    sock.settimeout(TIMEOUT)
    try:
        code = conn.read_close_code()
    except (OSError, ConnectionError) as exc:
        return {"sent": sent, "close_code": None, "error": repr(exc)}
    return {"sent": sent, "close_code": code}


def test_frame_claiming_2_to_the_62_bytes_closes_1009() -> None:
    """The default limit applies: the header alone is enough to refuse the frame."""
    head = bytes([0x82, 127]) + struct.pack("!Q", 2**62)

    def script(conn: RawConnection) -> dict[str, Any]:
        return _send_until_close(conn, head, b"\0" * 65536, 64 << 20)

    with RawServer(handler=script) as server, Tracing() as tracing:
        ws = WebSocket(server.url())
        rec = Recorder(ws)
        close = rec.wait_closed()
        result = server.wait_results(1)[0]
    assert isinstance(result, dict), result
    assert result["close_code"] == 1009, result
    assert rec.kinds()[0] == "open", rec.events
    assert rec.kinds().count("close") == 1, rec.events
    assert close.code in (1006, 1009), close
    assert tracing.peak < 8 << 20, f"{tracing.peak} bytes allocated for a refused frame"


@pytest.mark.parametrize("shape", ["one_frame", "fragments"])
def test_streamed_message_is_bounded_by_max_size(shape: str) -> None:
    """A message that never ends is cut off at max_size, not buffered without bound."""
    max_size = 1 << 20
    chunk = b"a" * 65536
    if shape == "one_frame":
        # A length over the limit is refused at the header, while the payload keeps coming.
        head = bytes([0x81, 127]) + struct.pack("!Q", 64 << 20)
        body = chunk
    else:
        head = frame(0x1, chunk, fin=False)
        body = frame(0x0, chunk, fin=False)

    def script(conn: RawConnection) -> dict[str, Any]:
        return _send_until_close(conn, head, body, 256 << 20)

    with RawServer(handler=script) as server, Tracing() as tracing:
        ws = WebSocket(server.url(), max_size=max_size)
        rec = Recorder(ws)
        close = rec.wait_closed()
        result = server.wait_results(1)[0]
    assert isinstance(result, dict), result
    assert result["close_code"] == 1009, result
    assert "message" not in rec.kinds(), rec.events
    assert rec.kinds().count("close") == 1, rec.events
    assert close.code in (1006, 1009), close
    # Loopback socket buffers hold a few MiB; the client must stop long before 256 MiB.
    assert result["sent"] < 64 << 20, result
    assert tracing.peak < 4 * max_size + (4 << 20), f"peak {tracing.peak} bytes"


# -- fuzz: arbitrary bytes after a valid handshake -------------------------------------------------

ANY_PAYLOAD = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=60).map(lambda s: s.encode("utf-8")),
    st.builds(
        lambda c, r: struct.pack("!H", c) + r.encode(), st.integers(0, 65535), st.text(max_size=20)
    ),
)
# Payloads that fit each opcode, so that frames often get past the first check and reach the
# deeper states: fragmented messages, control frames between fragments, the closing handshake.
FITTING_PAYLOAD = {
    0x0: st.text(max_size=40).map(lambda s: s.encode("utf-8")),
    0x1: st.text(max_size=40).map(lambda s: s.encode("utf-8")),
    0x2: st.binary(max_size=100),
    0x8: st.one_of(
        st.just(b""),
        st.builds(
            lambda c, r: struct.pack("!H", c) + r.encode()[:100],
            st.sampled_from([1000, 1001, 1003, 1008, 1011, 3000, 4999]),
            st.text(max_size=20),
        ),
    ),
    0x9: st.binary(max_size=125),
    0xA: st.binary(max_size=125),
}


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) < 6:  # a well-formed frame (the sequence may still be wrong)
        opcode = draw(st.sampled_from(sorted(FITTING_PAYLOAD)))
        fin = opcode >= 0x8 or draw(st.integers(0, 3)) > 0
        return frame(opcode, draw(FITTING_PAYLOAD[opcode]), fin=fin)
    length: Optional[int] = None
    if draw(st.integers(0, 4)) == 0:  # lie about the length
        length = draw(st.sampled_from([0, 1, 125, 126, 127, 65535, 65536, 2**31, 2**63 - 1]))
    return frame(
        draw(st.integers(0, 15)),
        draw(ANY_PAYLOAD),
        fin=draw(st.booleans()),
        rsv=draw(st.sampled_from([0, 0, 1, 2, 4, 7])),
        mask=draw(st.booleans()),
        length=length,
    )


SERVER_BYTES = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda fs, tail: b"".join(fs) + tail,
        st.lists(frames(), max_size=8),
        st.one_of(st.just(b""), st.binary(max_size=8)),
    ),
)


class FuzzServer(RawServer):
    """Each connection: a correct handshake, then the next queued bytes, then a FIN; the script
    then reads until the client goes away."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.lock = threading.Lock()
        super().__init__(handler=self._script)

    def _script(self, conn: RawConnection) -> None:
        with self.lock:
            payload = self.payloads.pop(0)
        conn.handshake()
        conn.sock.sendall(payload)
        conn.sock.shutdown(socket.SHUT_WR)
        conn.wait_eof()


class ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# CI runs the same examples every time; a developer's run explores new ones.
DERANDOMIZE = bool(os.environ.get("CI"))
VALID_CLOSE = {1000, 1001, 1002, 1003, 1005, *range(1007, 1015), *range(3000, 5000)}


def _check_fuzz_outcome(rec: Recorder, errors: ErrorLog) -> None:
    close = rec.wait_closed()
    kinds = rec.kinds()
    assert kinds[0] == "open", rec.events
    assert kinds[-1] == "close", rec.events
    assert kinds.count("close") == 1, rec.events
    assert kinds.count("error") <= 1, rec.events
    if "error" in kinds:
        assert kinds[-2] == "error", rec.events
    if close.wasClean:
        assert close.code in VALID_CLOSE, close
    else:
        assert close.code == 1006, close
    assert not errors.records, [r.getMessage() for r in errors.records]


def test_fuzz_server_bytes_after_handshake() -> None:
    recorders: list[Recorder] = []
    errors = ErrorLog()
    logger = logging.getLogger("mesiboscript")
    logger.addHandler(errors)
    server = FuzzServer()
    server.start()

    @settings(
        max_examples=75,
        deadline=None,
        database=None,
        derandomize=DERANDOMIZE,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=SERVER_BYTES)
    def run(data: bytes) -> None:
        server.payloads.append(data)
        ws = WebSocket(server.url(), max_size=1 << 16, close_timeout=2)
        # Sending while the peer misbehaves must be safe too.
        rec = Recorder(ws, on_message=lambda event: ws.send(event.data))
        recorders.append(rec)
        _check_fuzz_outcome(rec, errors)

    try:
        run()
        # The I/O thread is alive and well: a normal exchange still works.
        server.payloads.append(frame(0x1, b"alive") + close_frame(1000, b"bye"))
        ws = WebSocket(server.url())
        rec = Recorder(ws)
        close = rec.wait_closed()
        assert rec.messages == ["alive"], rec.events
        assert (close.code, close.reason, close.wasClean) == (1000, "bye", True)
        server.wait_results(len(recorders) + 1)
    finally:
        server.close()
        logger.removeHandler(errors)
    assert len(recorders) >= 50, "hypothesis ran too few examples to mean anything"
    # A late second close event from an earlier example would show here.
    assert all(rec.kinds().count("close") == 1 for rec in recorders)
    assert not errors.records, [r.getMessage() for r in errors.records]


def test_fuzz_handshake_response_fails_cleanly() -> None:
    """Garbage instead of an HTTP response: error, then close 1006, nothing else."""

    @settings(max_examples=40, deadline=None, database=None, derandomize=DERANDOMIZE)
    @given(
        data=st.binary(min_size=1, max_size=200).filter(lambda b: not b.startswith(b"HTTP/1.1 101"))
    )
    def run(data: bytes) -> None:
        def script(conn: RawConnection) -> None:
            conn.recv_until(b"\r\n\r\n")
            conn.sock.sendall(data + b"\r\n\r\n")
            conn.sock.shutdown(socket.SHUT_WR)
            conn.wait_eof()

        with RawServer(handler=script) as server:
            ws = WebSocket(server.url())
            rec = Recorder(ws)
            close = rec.wait_closed()
            assert rec.kinds() == ["error", "close"], rec.events
            assert (close.code, close.wasClean) == (1006, False)
            server.wait_results(1)

    run()
