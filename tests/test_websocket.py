"""WebSocket against real servers on loopback: events, close rules, errors, TLS, threads."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import select
import socket
import ssl
import struct
import threading
import time
from typing import Any

import pytest

import mesiboscript
from mesiboscript import CloseCode, ReadyState, SocketError, WebSocket

from .helpers import TIMEOUT, AsyncServers, Certificates, Recorder, free_port, wait_for
from .rawserver import RawConnection, RawServer, close_frame, frame


def echo_roundtrip(url: str, payloads: list[Any], **options: Any) -> list[Any]:
    """Send every payload once open, close after as many echoes; handlers set in the constructor
    so they are in place before the first event."""
    got: list[Any] = []
    closed = threading.Event()

    def on_open() -> None:
        ws = mesiboscript.getSession()
        assert ws is not None
        for payload in payloads:
            ws.send(payload)

    def on_message(event: mesiboscript.MessageData) -> None:
        got.append(event.data)
        if len(got) == len(payloads):
            event.target.close()

    WebSocket(url, onopen=on_open, onmessage=on_message, onclose=lambda e: closed.set(), **options)
    assert closed.wait(TIMEOUT), f"no close; got {len(got)} of {len(payloads)} messages"
    return got


# -- sending and receiving ---------------------------------------------------------------------


def test_echo_every_send_type(echo_url: str) -> None:
    payloads = ["héllo", b"\x00\xff", bytearray(b"ba"), memoryview(b"mv"), {"a": [1, "é"]}, [1, 2]]
    got = echo_roundtrip(echo_url, payloads)
    assert got == ["héllo", b"\x00\xff", b"ba", b"mv", '{"a":[1,"é"]}', "[1,2]"]
    assert json.loads(got[4]) == {"a": [1, "é"]}


LARGE = ["ü" * 300_000, bytes(range(256)) * 8192, "", b"", "€" * 21_845, os.urandom(65536)]


def test_large_messages_round_trip(echo_url: str) -> None:
    # Sent as pieces with one sendmsg, received straight into each message's buffer.
    assert echo_roundtrip(echo_url, LARGE) == LARGE


def test_large_messages_round_trip_over_tls(wss_echo_url: str, client_ssl: ssl.SSLContext) -> None:
    # TLS sockets have no sendmsg: the pieces go out one by one; recv_into works the same.
    assert echo_roundtrip(wss_echo_url, LARGE, ssl_context=client_ssl) == LARGE


def test_send_rejects_other_types(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    rec = Recorder(ws)
    assert rec.opened.wait(TIMEOUT)
    with pytest.raises(TypeError):
        ws.send(42)  # type: ignore[arg-type]
    ws.close()
    rec.wait_closed()


def test_handler_order_and_ready_states(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    rec = Recorder(ws)
    assert ReadyState.CONNECTING == WebSocket.CONNECTING == ws.CONNECTING == 0
    # CONNECTING until the I/O thread opens it, which may already have happened on loopback.
    assert ws.readyState in (ReadyState.CONNECTING, ReadyState.OPEN)
    assert rec.opened.wait(TIMEOUT)
    ws.send("one")
    wait_for(lambda: rec.messages)
    ws.close(1000, "done")
    assert ws.readyState in (ReadyState.CLOSING, ReadyState.CLOSED)
    close = rec.wait_closed()
    assert rec.events == [("open", 1), ("message", 1), ("close", 3, 1000, True)]
    assert (close.code, close.reason, close.wasClean) == (1000, "done", True)
    assert ws.readyState == ReadyState.CLOSED


def test_protocol_negotiation_and_headers(servers: AsyncServers) -> None:
    seen: dict[str, Any] = {}

    async def handler(conn: Any) -> None:
        seen["headers"] = conn.request.headers
        await conn.send(conn.subprotocol or "")
        await conn.wait_closed()

    server = servers.serve(handler, subprotocols=["chat", "superchat"])
    try:
        ws = WebSocket(
            f"ws://127.0.0.1:{server.port}/path?q=1",
            ["superchat", "chat"],
            headers={"X-Token": "abc"},
            origin="https://example.test",
        )
        rec = Recorder(ws)
        assert rec.opened.wait(TIMEOUT)
        assert ws.protocol in ("chat", "superchat")
        # websockets' server accepts the default offer with its own windows; reported as sent.
        assert ws.extensions.startswith("permessage-deflate")
        wait_for(lambda: rec.messages)
        ws.close()
        rec.wait_closed()
    finally:
        servers.stop(server)
    assert seen["headers"]["X-Token"] == "abc"
    assert seen["headers"]["Origin"] == "https://example.test"
    assert rec.messages == [ws.protocol]


def test_protocol_is_empty_until_open() -> None:
    """``protocol`` changes with ``readyState``: never set while another thread sees CONNECTING."""
    go = threading.Event()

    def script(conn: RawConnection) -> None:
        go.wait(TIMEOUT)
        conn.handshake(extra="Sec-WebSocket-Protocol: chat\r\n")
        conn.wait_eof()

    with RawServer(handler=script) as server:
        ws = WebSocket(server.url(), ["superchat", "chat"])
        rec = Recorder(ws)
        assert (ws.readyState, ws.protocol) == (ReadyState.CONNECTING, "")
        go.set()
        assert rec.opened.wait(TIMEOUT)
        assert (ws.readyState, ws.protocol) == (ReadyState.OPEN, "chat")
        ws.close()
        rec.wait_closed()
    assert ws.protocol == "chat"  # kept after close, as in the browser


def test_new_websocket_from_another(echo_url: str) -> None:
    first = WebSocket(echo_url, headers={"X-A": "1"})
    first.close()
    second = WebSocket(first)
    assert second.url == first.url
    rec = Recorder(second)
    assert rec.opened.wait(TIMEOUT)
    second.close()
    rec.wait_closed()


# -- the standard's close rules ----------------------------------------------------------------


def test_server_close_with_code_and_reason(servers: AsyncServers) -> None:
    async def handler(conn: Any) -> None:
        await conn.close(4001, "bye now")

    server = servers.serve(handler)
    try:
        rec = Recorder(WebSocket(f"ws://127.0.0.1:{server.port}/"))
        close = rec.wait_closed()
    finally:
        servers.stop(server)
    assert rec.kinds() == ["open", "close"]
    assert (close.code, close.reason, close.wasClean) == (4001, "bye now", True)


def test_empty_close_frame_reports_1005() -> None:
    def script(conn: RawConnection) -> Any:
        conn.handshake()
        conn.sock.sendall(close_frame())
        code = conn.read_close_code()
        conn.sock.close()
        return code

    with RawServer(handler=script) as server:
        rec = Recorder(WebSocket(server.url()))
        close = rec.wait_closed()
        assert server.result() is None  # the client echoed an empty close
    assert (close.code, close.wasClean) == (CloseCode.MissingStatusCode, True)
    assert rec.kinds() == ["open", "close"]


def test_client_close_without_code_reports_1005(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    rec = Recorder(ws)
    assert rec.opened.wait(TIMEOUT)
    ws.close()
    close = rec.wait_closed()
    assert (close.code, close.wasClean) == (1005, True)


def test_client_close_puts_code_on_the_wire() -> None:
    def script(conn: RawConnection) -> Any:
        conn.handshake()
        code = conn.read_close_code()
        conn.sock.sendall(close_frame(code, b"ok"))
        conn.sock.close()
        return code

    with RawServer(handler=script) as server:
        ws = WebSocket(server.url())
        rec = Recorder(ws)
        assert rec.opened.wait(TIMEOUT)
        ws.close(4321, "why")
        close = rec.wait_closed()
        assert server.result() == 4321
    assert (close.code, close.reason, close.wasClean) == (4321, "ok", True)


def test_tcp_drop_reports_1006() -> None:
    def script(conn: RawConnection) -> None:
        conn.handshake()
        conn.sock.sendall(frame(0x1, b"hi"))
        conn.sock.close()

    with RawServer(handler=script) as server:
        ws = WebSocket(server.url())
        rec = Recorder(ws)
        close = rec.wait_closed()
    assert (close.code, close.wasClean) == (1006, False)
    assert rec.kinds()[:2] == ["open", "message"]
    assert rec.kinds()[-1] == "close"
    assert isinstance(ws.last_error, mesiboscript.ConnectionFailed)


@pytest.mark.parametrize(
    ("payload", "wire_code"),
    [
        (frame(0x3, b"x"), 1002),  # reserved opcode
        (frame(0x1, b"x", mask=True), 1002),  # masked server frame
        (frame(0x1, b"\xff\xfe"), 1007),  # invalid UTF-8
        (frame(0x8, b"\x03"), 1002),  # one-byte close payload
        (close_frame(1005), 1002),  # 1005 must not be on the wire
        (close_frame(1006), 1002),
        (close_frame(999), 1002),
        (frame(0x9, b"x", fin=False), 1002),  # fragmented control frame
        (frame(0x1, b"x", rsv=4), 1002),  # reserved bit
        (frame(0x0, b"x"), 1002),  # continuation with nothing to continue
        (frame(0x8, struct.pack("!H", 1000) + b"\xff"), 1007),  # bad UTF-8 in the reason
        (b"\x81\x7f\x80\x00\x00\x00\x00\x00\x00\x00", 1002),  # 64-bit length with the top bit
    ],
)
def test_protocol_violations_fail_with_the_standard_codes(payload: bytes, wire_code: int) -> None:
    def script(conn: RawConnection) -> Any:
        conn.handshake()
        conn.sock.sendall(payload)
        code = conn.read_close_code()
        conn.wait_eof()
        return code

    with RawServer(handler=script) as server:
        ws = WebSocket(server.url())
        rec = Recorder(ws)
        close = rec.wait_closed()
        assert server.result() == wire_code
    assert rec.kinds() == ["open", "error", "close"]
    assert (close.code, close.wasClean) == (1006, False)
    assert isinstance(ws.last_error, mesiboscript.ProtocolError)
    assert ws.last_error.code == wire_code


def test_invalid_utf8_fails_fast_inside_a_fragmented_message() -> None:
    """The first fragment is already invalid: the client must not wait for the rest."""

    def script(conn: RawConnection) -> Any:
        conn.handshake()
        conn.sock.sendall(
            frame(0x1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80", fin=False)
        )
        return conn.read_close_code()  # the rest of the message is never sent

    with RawServer(handler=script) as server:
        rec = Recorder(WebSocket(server.url()))
        rec.wait_closed()
        assert server.result() == 1007


def test_invalid_utf8_fails_fast_inside_a_partial_frame() -> None:
    def script(conn: RawConnection) -> Any:
        conn.handshake()
        # A 100-byte text frame of which only an invalid prefix is sent.
        conn.sock.sendall(frame(0x1, b"\xed\xa0\x80" + b"a" * 97)[:6])
        return conn.read_close_code()

    with RawServer(handler=script) as server:
        rec = Recorder(WebSocket(server.url()))
        rec.wait_closed()
        assert server.result() == 1007


def test_oversize_message_closes_with_1009() -> None:
    def script(conn: RawConnection) -> Any:
        conn.handshake()
        conn.sock.sendall(frame(0x2, b"x" * 2000))
        return conn.read_close_code()

    with RawServer(handler=script) as server:
        ws = WebSocket(server.url(), max_size=1000)
        rec = Recorder(ws)
        close = rec.wait_closed()
        assert server.result() == CloseCode.TooMuchData
    assert (close.code, rec.kinds()) == (1006, ["open", "error", "close"])


def test_fragmented_message_is_reassembled() -> None:
    def script(conn: RawConnection) -> Any:
        conn.handshake()
        conn.sock.sendall(
            frame(0x1, "hé".encode()[:2], fin=False)
            + frame(0x9, b"ping!")
            + frame(0x0, "hé".encode()[2:] + b"llo", fin=True)
        )
        pong = conn.read_frame()
        conn.sock.sendall(close_frame(1000))
        conn.read_close_code()
        return pong

    with RawServer(handler=script) as server:
        rec = Recorder(WebSocket(server.url()))
        rec.wait_closed()
        assert server.result() == (0xA, b"ping!")
    assert rec.messages == ["héllo"]


def test_exactly_one_close_event_when_closed_from_everywhere(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    rec = Recorder(ws)
    assert rec.opened.wait(TIMEOUT)
    threads = [threading.Thread(target=ws.close, args=(1000,)) for _ in range(8)]
    for t in threads:
        t.start()
    ws.close()
    for t in threads:
        t.join()
    rec.wait_closed()
    ws.close()
    assert rec.kinds().count("close") == 1


# -- handshake and connection failures ---------------------------------------------------------


def test_refused_connection() -> None:
    ws = WebSocket(f"ws://127.0.0.1:{free_port()}/")
    rec = Recorder(ws)
    close = rec.wait_closed()
    assert rec.events == [("error", 3), ("close", 3, 1006, False)]
    assert rec.error == SocketError.ConnectionRefusedError
    assert isinstance(ws.last_error, mesiboscript.ConnectionFailed)
    assert isinstance(ws.last_error.__cause__, ConnectionRefusedError)
    assert not close.wasClean


def test_host_not_found() -> None:
    rec = Recorder(WebSocket("ws://does-not-exist.invalid/"))
    rec.wait_closed()
    assert rec.error == SocketError.HostNotFoundError
    assert rec.kinds() == ["error", "close"]


def test_connect_timeout_on_a_silent_server() -> None:
    def script(conn: RawConnection) -> None:
        conn.wait_eof()  # accepts, never answers the upgrade (slowloris)

    with RawServer(handler=script) as server:
        rec = Recorder(WebSocket(server.url(), connect_timeout=0.3))
        rec.wait_closed()
    assert rec.error == SocketError.SocketTimeoutError
    assert rec.kinds() == ["error", "close"]


@pytest.mark.parametrize(
    "response",
    [
        {"status": "200 OK"},
        {"status": "404 Not Found"},
        {"accept": "d3Jvbmc="},
        {"extra": "Sec-WebSocket-Protocol: unoffered\r\n"},
        {"extra": "Sec-WebSocket-Extensions: x-unoffered\r\n"},
        {"extra": "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"},
    ],
)
def test_bad_handshakes_fail(response: dict[str, str]) -> None:
    def script(conn: RawConnection) -> None:
        conn.handshake(**response)
        conn.wait_eof()

    with RawServer(handler=script) as server:
        ws = WebSocket(server.url())
        rec = Recorder(ws)
        close = rec.wait_closed()
    assert rec.kinds() == ["error", "close"]
    assert (close.code, close.wasClean) == (1006, False)
    assert "handshake" in str(ws.last_error)


def test_offered_protocol_not_chosen_fails() -> None:
    def script(conn: RawConnection) -> None:
        conn.handshake()
        conn.wait_eof()

    with RawServer(handler=script) as server:
        rec = Recorder(WebSocket(server.url(), "chat"))
        rec.wait_closed()
    assert rec.kinds() == ["error", "close"]


def _gated_server(go: threading.Event) -> RawServer:
    """A server that answers the upgrade only once ``go`` is set: the client stays CONNECTING."""

    def script(conn: RawConnection) -> None:
        go.wait(TIMEOUT)
        try:
            conn.handshake()
        except OSError:
            return  # the client gave up first
        conn.wait_eof()

    return RawServer(handler=script)


def test_close_while_connecting() -> None:
    go = threading.Event()
    with _gated_server(go) as server:
        ws = WebSocket(server.url())
        rec = Recorder(ws)
        assert ws.readyState == ReadyState.CONNECTING
        ws.close(4000, "never sent")
        assert ws.readyState in (ReadyState.CLOSING, ReadyState.CLOSED)
        close = rec.wait_closed()
        go.set()
    assert rec.events == [("error", 3), ("close", 3, 1006, False)]
    assert (close.reason, close.wasClean) == ("", False)


def test_send_while_connecting_raises() -> None:
    go = threading.Event()
    with _gated_server(go) as server:
        ws = WebSocket(server.url())
        with pytest.raises(mesiboscript.InvalidStateError):
            ws.send("too early")
        with pytest.raises(mesiboscript.InvalidStateError):
            ws.sendText("too early")
        assert ws.sendTextAsync("too early").exception(TIMEOUT) is not None
        assert issubclass(mesiboscript.InvalidStateError, RuntimeError)
        rec = Recorder(ws)
        ws.close()
        rec.wait_closed()
        go.set()


def test_send_after_close_is_silent_and_counts_buffered(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    rec = Recorder(ws)
    assert rec.opened.wait(TIMEOUT)
    ws.close()
    ws.send("late")
    assert ws.bufferedAmount == 4
    rec.wait_closed()
    ws.send(b"ab")
    assert ws.bufferedAmount == 6


# -- TLS -----------------------------------------------------------------------------------------


def test_wss_with_cafile_and_context(
    wss_echo_url: str, certs: Certificates, client_ssl: ssl.SSLContext
) -> None:
    assert echo_roundtrip(wss_echo_url, ["secure"], cafile=certs.cafile) == ["secure"]
    assert echo_roundtrip(wss_echo_url, [b"ctx"], ssl_context=client_ssl) == [b"ctx"]


def test_wss_unknown_ca_fails(wss_echo_url: str) -> None:
    ws = WebSocket(wss_echo_url)  # certifi's bundle does not know the test CA
    rec = Recorder(ws)
    rec.wait_closed()
    assert rec.error == SocketError.SslHandshakeFailedError
    assert isinstance(ws.last_error.__cause__, ssl.SSLCertVerificationError)  # type: ignore[union-attr]


def test_wss_wrong_hostname_fails(
    servers: AsyncServers, certs: Certificates, client_ssl: ssl.SSLContext
) -> None:
    context = certs.server_context("other.example")
    server = servers.serve(lambda conn: conn.wait_closed(), ssl=context)
    try:
        rec = Recorder(WebSocket(f"wss://localhost:{server.port}/", ssl_context=client_ssl))
        rec.wait_closed()
    finally:
        servers.stop(server)
    assert rec.error == SocketError.SslHandshakeFailedError
    assert rec.kinds() == ["error", "close"]


def test_default_context_trusts_certifi() -> None:
    import certifi

    from mesiboscript._tls import make_context

    context = make_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    expected = ssl.create_default_context(cafile=certifi.where()).cert_store_stats()
    assert context.cert_store_stats() == expected
    assert expected["x509_ca"] > 50


# -- liveness, proxies, isolation, scale --------------------------------------------------------


def test_ping_timeout_detects_a_dead_peer() -> None:
    stop = threading.Event()

    def script(conn: RawConnection) -> None:
        conn.handshake()
        conn.sock.sendall(frame(0x1, b"abc", fin=True)[:3])  # half a frame, then silence
        stop.wait(TIMEOUT)

    with RawServer(handler=script) as server:
        ws = WebSocket(server.url(), ping_interval=0.1, ping_timeout=0.2)
        rec = Recorder(ws)
        close = rec.wait_closed()
        stop.set()
    assert rec.kinds() == ["open", "error", "close"]
    assert rec.error == SocketError.SocketTimeoutError
    assert (close.code, close.wasClean) == (1006, False)


def test_server_pings_are_answered(servers: AsyncServers) -> None:
    async def handler(conn: Any) -> None:
        latency = await (await conn.ping(b"x"))
        await conn.send(f"pong after {latency:.3f}")
        await conn.wait_closed()

    server = servers.serve(handler)
    try:
        ws = WebSocket(f"ws://127.0.0.1:{server.port}/")
        rec = Recorder(ws)
        deadline = time.monotonic() + TIMEOUT
        while not rec.messages and time.monotonic() < deadline:
            rec.closed.wait(0.01)
        ws.close()
        rec.wait_closed()
    finally:
        servers.stop(server)
    assert rec.messages
    assert rec.messages[0].startswith("pong after")


def test_http_proxy(echo_url: str) -> None:
    """A CONNECT proxy written for the test: the client tunnels through it."""
    seen: list[bytes] = []

    def script(conn: RawConnection) -> None:
        request = conn.recv_until(b"\r\n\r\n")
        seen.append(request)
        target = request.split()[1].decode()
        host, port = target.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)), timeout=TIMEOUT)
        conn.sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        pipe = threading.Thread(target=_pump, args=(upstream, conn.sock), daemon=True)
        pipe.start()
        _pump(conn.sock, upstream)
        pipe.join(TIMEOUT)
        upstream.close()

    with RawServer(handler=script) as proxy:
        got = echo_roundtrip(echo_url, ["via proxy"], proxy=f"http://127.0.0.1:{proxy.port}")
    assert got == ["via proxy"]
    assert seen[0].startswith(b"CONNECT 127.0.0.1:")


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def test_proxy_refusal_is_reported() -> None:
    def script(conn: RawConnection) -> None:
        conn.recv_until(b"\r\n\r\n")
        conn.sock.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")

    with RawServer(handler=script) as proxy:
        rec = Recorder(WebSocket("ws://example.test/", proxy=f"http://127.0.0.1:{proxy.port}"))
        rec.wait_closed()
    assert rec.error == SocketError.ProxyAuthenticationRequiredError


def test_stalled_half_frame_does_not_delay_other_connections(echo_url: str) -> None:
    release = threading.Event()

    def script(conn: RawConnection) -> None:
        conn.handshake()
        data = frame(0x2, b"x" * 1000)
        conn.sock.sendall(data[:500])  # half a frame, then stall
        release.wait(TIMEOUT)
        conn.sock.sendall(data[500:] + close_frame(1000))
        conn.read_close_code()

    with RawServer(handler=script) as server:
        stalled = WebSocket(server.url())
        stalled_rec = Recorder(stalled)
        assert stalled_rec.opened.wait(TIMEOUT)
        started = time.monotonic()
        assert len(echo_roundtrip(echo_url, [f"m{i}" for i in range(200)])) == 200
        elapsed = time.monotonic() - started
        assert stalled.readyState == ReadyState.OPEN
        release.set()
        stalled_rec.wait_closed()
    assert elapsed < TIMEOUT


def test_200_connections_on_one_thread(echo_url: str) -> None:
    WebSocket(echo_url).close()  # make sure the I/O thread exists before counting
    mesiboscript.run(TIMEOUT)
    threads_before = threading.active_count()
    sockets = [WebSocket(echo_url) for _ in range(200)]
    recs = [Recorder(ws) for ws in sockets]
    for rec in recs:
        assert rec.opened.wait(TIMEOUT)
    assert len(mesiboscript.getOpenSessions()) == 200
    assert threading.active_count() == threads_before
    for ws in sockets:
        ws.send(ws.getId())
    for ws in sockets:
        ws.close()
    assert mesiboscript.run(TIMEOUT)
    assert all(rec.close_data and rec.close_data.wasClean for rec in recs)


def test_a_raising_handler_is_logged_and_nothing_stops(
    echo_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    ws = WebSocket(echo_url)
    rec = Recorder(ws)

    def explode(event: Any) -> None:
        raise RuntimeError("boom in a handler")

    ws.addEventListener("message", explode)
    assert rec.opened.wait(TIMEOUT)
    with caplog.at_level(logging.ERROR, logger="mesiboscript"):
        ws.send("one")
        ws.send("two")
        deadline = time.monotonic() + TIMEOUT
        while len(rec.messages) < 2 and time.monotonic() < deadline:
            rec.closed.wait(0.01)
        ws.close()
        rec.wait_closed()
    assert rec.messages == ["one", "two"]
    errors = [r for r in caplog.records if r.name == "mesiboscript" and r.exc_info]
    assert len(errors) == 2
    assert "boom in a handler" in caplog.text
    assert "Traceback" in caplog.text
    assert "error" not in rec.kinds()


def test_close_from_inside_handlers_never_deadlocks(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    rec = Recorder(ws)
    ws.onopen = lambda: (ws.send("x"), ws.close(1000, "from onopen"), ws.close())
    close = rec.wait_closed()
    assert (close.code, close.reason) == (1000, "from onopen")


def test_buffered_amount_counts_inside_handler(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    rec = Recorder(ws)
    seen: list[int] = []

    def on_open() -> None:
        ws.send("héllo")  # 6 bytes of UTF-8
        ws.send(b"123")
        seen.append(ws.bufferedAmount)
        ws.close()

    ws.onopen = on_open
    rec.wait_closed()
    assert seen == [9]
    assert ws.bufferedAmount == 0


def test_send_from_many_threads(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    rec = Recorder(ws)
    assert rec.opened.wait(TIMEOUT)
    got = threading.Event()
    total = 8 * 250
    ws.onmessage = lambda e: (rec.messages.append(e.data), len(rec.messages) == total and got.set())

    def sender(n: int) -> None:
        for i in range(250):
            ws.send(f"{n}:{i}")

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got.wait(TIMEOUT)
    ws.close()
    rec.wait_closed()
    for n in range(8):
        mine = [m for m in rec.messages if m.startswith(f"{n}:")]
        assert mine == [f"{n}:{i}" for i in range(250)]


def test_event_listeners() -> None:
    go = threading.Event()

    def script(conn: RawConnection) -> None:
        go.wait(TIMEOUT)  # answer only once every listener is in place
        conn.handshake()
        conn.read_close_code()
        conn.sock.sendall(close_frame(1000))

    order: list[str] = []
    events: list[Any] = []
    closed = threading.Event()

    def first(event: Any) -> None:
        order.append("listener1")
        events.append(event)

    def removed(event: Any) -> None:
        order.append("removed")

    with RawServer(handler=script) as server:
        ws = WebSocket(server.url())
        ws.addEventListener("open", first)
        ws.onopen = lambda: order.append("onopen")
        ws.addEventListener("open", lambda e: order.append("listener2"))
        ws.addEventListener("open", removed)
        ws.removeEventListener("open", removed)
        ws.addEventListener("open", first)  # a duplicate is ignored
        ws.addEventListener("open", lambda e: ws.close(1000))
        ws.addEventListener("close", lambda e: (events.append(e), closed.set()))
        go.set()
        assert closed.wait(TIMEOUT)
    assert order == ["listener1", "onopen", "listener2"]
    assert events[0].type == "open"
    assert events[0].target is ws
    assert events[1].type == "close"
    assert events[1].code == 1000
    assert events[1].target is ws


def test_late_handlers_get_every_event(servers: AsyncServers) -> None:
    """Handlers assigned only after everything happened still see open, message, close."""
    finished = threading.Event()

    async def handler(conn: Any) -> None:
        await conn.send("greeting")
        await conn.close(1000, "done")
        finished.set()

    server = servers.serve(handler)
    try:
        ws = WebSocket(f"ws://127.0.0.1:{server.port}/")
        assert finished.wait(TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while ws.readyState != ReadyState.CLOSED and time.monotonic() < deadline:
            finished.wait(0.01)
        rec = Recorder(ws)  # assigns onopen, onmessage, onerror, onclose now
        rec.wait_closed()
    finally:
        servers.stop(server)
    assert rec.kinds() == ["open", "message", "close"]
    assert rec.messages == ["greeting"]


def test_late_open_handler_hears_open_before_a_new_message() -> None:
    """onopen set after open happened, then onmessage, and a message is already waiting to be
    read: the late open is delivered first, even though the message's read comes before the
    scheduled late delivery on the I/O thread."""
    go = threading.Event()

    def script(conn: RawConnection) -> None:
        conn.handshake()
        go.wait(TIMEOUT)
        conn.sock.sendall(frame(0x1, b"hi"))
        conn.sock.sendall(close_frame(conn.read_close_code()))  # and the server closes TCP

    with RawServer(handler=script) as server:
        ws = WebSocket(server.url())
        wait_for(lambda: ws.readyState == ReadyState.OPEN)
        loop, held, release = mesiboscript._loop.get_loop(), threading.Event(), threading.Event()
        loop.call_soon_threadsafe(lambda: (held.set(), release.wait(TIMEOUT)))
        assert held.wait(TIMEOUT)  # the I/O thread is busy: nothing is read or delivered
        try:
            go.set()
            sock = ws._link.socket
            assert sock is not None
            assert select.select([sock], [], [], TIMEOUT)[0]
            rec = Recorder(ws)  # onopen (late: its delivery is queued), then onmessage
        finally:
            release.set()
        wait_for(lambda: rec.messages)
        ws.close()
        rec.wait_closed()
    assert rec.kinds() == ["open", "message", "close"]


def test_get_session_inside_handlers(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    rec = Recorder(ws)
    seen: list[Any] = []
    ws.onopen = lambda: (seen.append(mesiboscript.getSession()), ws.close())
    rec.wait_closed()
    assert seen == [ws]
    assert mesiboscript.getSession() is None


def test_run_waits_for_all_connections(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    ws.onopen = lambda: ws.send("x")
    ws.onmessage = lambda e: ws.close()
    assert mesiboscript.run(TIMEOUT) is True
    assert ws.readyState == ReadyState.CLOSED


def test_reader_with_asyncio_server_closing_1001_on_shutdown(servers: AsyncServers) -> None:
    codes: list[Any] = []

    async def handler(conn: Any) -> None:
        await conn.wait_closed()
        codes.append(conn.close_code)

    server = servers.serve(handler)
    try:
        ws = WebSocket(f"ws://127.0.0.1:{server.port}/")
        rec = Recorder(ws)
        assert rec.opened.wait(TIMEOUT)
        ws._shutdown(1001, "")
        rec.wait_closed()
        servers.run(asyncio.sleep(0))
    finally:
        servers.stop(server)
    assert codes == [1001]


def test_handlers_passed_to_the_constructor_are_in_place_before_the_first_byte() -> None:
    """A message followed at once by a protocol violation: the echo still goes out first."""

    def script(conn: RawConnection) -> Any:
        conn.handshake()
        conn.sock.sendall(frame(0x1, b"first") + frame(0x3, b"bad"))
        frames = []
        while True:
            opcode, payload = conn.read_frame()
            frames.append((opcode, payload))
            if opcode == 0x8:
                return frames

    closed = threading.Event()
    with RawServer(handler=script) as server:
        WebSocket(
            server.url(),
            onmessage=lambda event: event.target.send(event.data),
            onclose=lambda event: closed.set(),
        )
        assert closed.wait(TIMEOUT)
        assert server.result() == [(0x1, b"first"), (0x8, struct.pack("!H", 1002))]
