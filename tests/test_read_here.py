"""A blocking ``read()`` with no message handler reads the socket on its own thread (issue 18:
``Transport.caller_read``): the I/O thread still answers pings and closes, never loses or
reorders a message, takes over when the script stops reading, and hands messages to a handler
set while ``read()`` waits."""

from __future__ import annotations

import ssl
import threading
from typing import Any, Optional

import pytest

from mesiboscript import WebSocket
from mesiboscript._transport import Transport
from mesiboscript._websocket import watch_inbox

from .helpers import TIMEOUT, wait_for
from .rawserver import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RawConnection,
    RawServer,
    close_frame,
    frame,
)


@pytest.fixture
def caller_reads(monkeypatch: pytest.MonkeyPatch) -> list[Optional[bool]]:
    """What every ``caller_read`` did: True when it read bytes on the caller's thread (it
    returned a message handed straight to ``read()``, or True), else what it returned."""
    results: list[Optional[bool]] = []
    real = Transport.caller_read

    def spy(self: Transport, wait: Any, received: Any, may_read: Any) -> object:
        got = real(self, wait, received, may_read)
        results.append(True if got is not None and got is not False else got)
        return got

    monkeypatch.setattr(Transport, "caller_read", spy)
    return results


def _open(url: str) -> WebSocket:
    ws = WebSocket(url)
    assert ws.upgrade(TIMEOUT)
    return ws


def test_read_reads_on_its_own_thread(echo_url: str, caller_reads: list[Optional[bool]]) -> None:
    ws = _open(echo_url)
    for i in range(100):
        ws.send(f"m{i}")
        assert ws.read(TIMEOUT) == f"m{i}"
    big = bytes(range(256)) * 4096  # 1 MiB: read straight into the message's buffer
    ws.send(big)
    assert ws.read(TIMEOUT) == big
    ws.close()
    assert ws.read(TIMEOUT) is False
    assert caller_reads.count(True) >= 90


def test_many_messages_in_order_while_read_reads(servers: Any) -> None:
    count = 3000

    async def handler(conn: Any) -> None:
        for i in range(count):
            await conn.send(f"n{i}")
        await conn.close(1000, "done")

    server = servers.serve(handler)
    try:
        ws = _open(f"ws://127.0.0.1:{server.port}/")
        got = []
        while True:
            data = ws.read(TIMEOUT)
            if data is False:
                break
            assert data is not None
            got.append(data)
    finally:
        servers.stop(server)
    assert got == [f"n{i}" for i in range(count)]
    assert ws.readyState == WebSocket.CLOSED


def test_pings_are_answered_and_close_is_handled_while_read_reads() -> None:
    def handler(conn: RawConnection) -> Optional[int]:
        conn.handshake()
        conn.sock.sendall(frame(OP_TEXT, "first"))
        assert conn.read_frame() == (OP_TEXT, b"ack")
        conn.sock.sendall(frame(OP_PING, b"p1"))
        assert conn.read_frame() == (OP_PONG, b"p1")  # answered while read() waits
        conn.sock.sendall(frame(OP_TEXT, "second") + close_frame(4001, "bye"))
        return conn.read_close_code()

    with RawServer(handler=handler) as srv:
        ws = _open(srv.url())
        closes: list[Any] = []
        ws.onclose = closes.append
        assert ws.read(TIMEOUT) == "first"
        ws.send("ack")
        assert ws.read(TIMEOUT) == "second"
        assert ws.read(TIMEOUT) is False
        assert srv.result() == 4001
        wait_for(lambda: closes)
        assert (closes[0].code, closes[0].reason, closes[0].wasClean) == (4001, "bye", True)


def test_the_io_thread_takes_over_when_read_is_not_called() -> None:
    """read() once, then not again: the server's close still closes the connection (the
    I/O thread watches the socket again after the lease)."""
    go = threading.Event()

    def handler(conn: RawConnection) -> Optional[int]:
        conn.handshake()
        conn.sock.sendall(frame(OP_TEXT, "one"))
        assert go.wait(TIMEOUT)
        conn.sock.sendall(frame(OP_TEXT, "two") + close_frame(1000))
        return conn.read_close_code()

    with RawServer(handler=handler) as srv:
        ws = _open(srv.url())
        closed = threading.Event()
        ws.onclose = lambda event: closed.set()
        assert ws.read(TIMEOUT) == "one"
        go.set()
        assert closed.wait(TIMEOUT)
        assert srv.result() == 1000
        assert ws.read(TIMEOUT) == "two"  # kept for read() by the I/O thread
        assert ws.read(TIMEOUT) is False


def test_a_handler_set_while_read_waits_gets_the_messages() -> None:
    release = threading.Event()

    def handler(conn: RawConnection) -> Optional[int]:
        conn.handshake()
        assert release.wait(TIMEOUT)
        conn.sock.sendall(b"".join(frame(OP_TEXT, f"m{i}") for i in range(50)))
        return conn.read_close_code()

    with RawServer(handler=handler) as srv:
        ws = _open(srv.url())
        from_read: list[Any] = []
        reader = threading.Thread(target=lambda: from_read.append(ws.read(TIMEOUT)))
        reader.start()
        from_handler: list[Any] = []
        ws.onmessage = lambda event: from_handler.append(event.data)
        release.set()
        reader.join(TIMEOUT)
        wait_for(lambda: len(from_read) + len(from_handler) >= 50)
        ws.close()
        # Each message exactly once; the handler's in order. (read() may have taken one: a
        # read() still waiting when a handler is set competes with it for what waits, as it
        # did before read() read the socket itself.)
        taken = [m for m in from_read if m]
        assert len(taken) <= 1
        assert sorted(taken + from_handler) == sorted(f"m{i}" for i in range(50))
        assert from_handler == sorted(from_handler, key=lambda m: int(m[1:]))


def test_a_dropped_connection_ends_read() -> None:
    def handler(conn: RawConnection) -> Optional[int]:
        conn.handshake()
        conn.sock.sendall(frame(OP_TEXT, "last"))
        conn.reset()
        return None

    with RawServer(handler=handler) as srv:
        ws = _open(srv.url())
        assert ws.read(TIMEOUT) == "last"
        assert ws.read(TIMEOUT) is False
        assert ws.readyState == WebSocket.CLOSED


def test_read_timeout_while_reading_itself(echo_url: str) -> None:
    ws = _open(echo_url)
    assert ws.read(0.05) is None
    assert ws.read(0) is None
    ws.send("late")
    assert ws.read(TIMEOUT) == "late"
    ws.close()


def test_tls_reads_wait_for_the_io_thread(
    wss_echo_url: str, client_ssl: ssl.SSLContext, caller_reads: list[Optional[bool]]
) -> None:
    """A TLS object is not shared between threads: read() waits for the I/O thread there."""
    ws = WebSocket(wss_echo_url, ssl_context=client_ssl)
    assert ws.upgrade(TIMEOUT)
    for i in range(20):
        ws.send(f"s{i}")
        assert ws.read(TIMEOUT) == f"s{i}"
    ws.close()
    assert caller_reads
    assert not any(caller_reads)


def test_pongs_read_by_read_keep_a_pinging_connection_alive() -> None:
    """With ping_timeout, any input since a ping is a sign of life: pongs that read() reads
    on its own thread count too (the link counts reads; no clock per read)."""
    pings: list[bytes] = []

    def handler(conn: RawConnection) -> Optional[int]:
        conn.handshake()
        while True:
            opcode, payload = conn.read_frame()
            if opcode == OP_PING:
                pings.append(payload)
                conn.sock.sendall(frame(OP_PONG, payload))
            elif opcode == OP_TEXT:
                conn.sock.sendall(frame(OP_TEXT, payload))
            else:
                assert opcode == OP_CLOSE
                return int.from_bytes(payload[:2], "big")

    with RawServer(handler=handler) as srv:
        ws = WebSocket(srv.url(), ping_interval=0.02, ping_timeout=0.2)
        assert ws.upgrade(TIMEOUT)
        i = 0
        while len(pings) < 20:  # ten ping timeouts go by while read() reads
            ws.send(f"m{i}")
            assert ws.read(TIMEOUT) == f"m{i}"
            i += 1
        assert ws.readyState == WebSocket.OPEN
        ws.close(1000)
        assert srv.result() == 1000


def test_read_with_an_inbox_watcher_keeps_each_message_in_the_inbox(echo_url: str) -> None:
    """A watcher (mesiboscript.aio's) hears of every message: read() then takes it from the
    inbox rather than straight from its own read."""
    ws = _open(echo_url)
    heard: list[int] = []
    watch_inbox(ws, lambda: heard.append(1))
    for i in range(5):
        ws.send(f"w{i}")
        assert ws.read(TIMEOUT) == f"w{i}"
    assert len(heard) == 5
    watch_inbox(ws, None)
    ws.close()
