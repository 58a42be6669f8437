"""More of ``WebSocketServer``: connection properties, text a browser would repair, wildcard
addresses, closing twice from a handler, and a client that vanishes while sends are queued."""

from __future__ import annotations

import queue
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from mesiboscript import WebSocket
from mesiboscript.server import ServerWebSocket, WebSocketServer

from .helpers import TIMEOUT, Recorder
from .test_server import _raw_client, open_client


@pytest.fixture
def server() -> Iterator[WebSocketServer]:
    with WebSocketServer() as s:
        yield s


def test_connection_id_extensions_and_lone_surrogates(server: WebSocketServer) -> None:
    seen: queue.Queue[tuple[str, str]] = queue.Queue()

    def on_new(conn: ServerWebSocket) -> None:
        seen.put((conn.getId(), conn.extensions))
        conn.send("a\ud800b")  # a lone surrogate goes out as U+FFFD, as a browser sends it

    server.onNewConnection = on_new
    ws, recorder = open_client(server.url)
    recorder.wait(lambda: bool(recorder.messages), "a message")
    assert recorder.messages == ["a\ufffdb"]
    conn_id, extensions = seen.get(timeout=TIMEOUT)
    assert len(conn_id) == 32
    assert extensions == "permessage-deflate"  # the client offers it by default
    ws.close()
    recorder.wait_closed()


def test_disconnecting_a_slot_never_connected_raises(server: WebSocketServer) -> None:
    with pytest.raises(ValueError, match="is not connected"):
        server.newConnection.disconnect(print)


def test_close_twice_from_a_handler(server: WebSocketServer) -> None:
    def on_new(conn: ServerWebSocket) -> None:
        conn.onmessage = lambda event: (server.close(), server.close())

    server.onNewConnection = on_new
    ws, recorder = open_client(server.url)
    ws.send("close the server, twice")
    event = recorder.wait_closed()
    assert (event.code, event.reason) == (1001, "Server closing.")


def test_a_wildcard_address_gives_a_loopback_url() -> None:
    with WebSocketServer(host="0.0.0.0") as server:
        assert server.url == f"ws://127.0.0.1:{server.port}/"
        ws, recorder = open_client(server.url)
        ws.close()
        recorder.wait_closed()


def test_the_ipv6_wildcard_gives_the_ipv6_loopback_url() -> None:
    try:
        server = WebSocketServer(host="::")
    except OSError as exc:
        pytest.skip(f"no IPv6 here: {exc}")
    with server:
        assert server.url == f"ws://[::1]:{server.port}/"


def test_a_client_that_vanishes_while_sends_wait_drops_them(
    server: WebSocketServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The client never reads: the writer waits on a full socket with more queued behind it. The
    # client's reset then ends the wait with ConnectionClosed; what is queued is dropped quietly.
    closed: queue.Queue[Any] = queue.Queue()
    queued: queue.Queue[int] = queue.Queue()

    def on_new(conn: ServerWebSocket) -> None:
        conn.onclose = closed.put
        for _ in range(16):
            conn.send(b"x" * (1 << 20))
        queued.put(conn.bufferedAmount)

    server.onNewConnection = on_new
    sock = _raw_client(server)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        assert queued.get(timeout=TIMEOUT) > 0
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST
    event = closed.get(timeout=TIMEOUT)
    assert event.code == 1006
    assert "sending on" not in caplog.text


def _reading_nothing_client(server: WebSocketServer) -> socket.socket:
    """A client that upgrades by hand with a tiny receive window, then never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)  # the head only: what follows stays unread
    return sock


def test_close_drops_a_client_that_reads_nothing() -> None:
    # The client takes no byte: the writer waits on a full socket, the close frame queued behind
    # what it sends. close() gives it close_timeout + 1 s, then drops the connection.
    closed: queue.Queue[Any] = queue.Queue()
    queued: queue.Queue[int] = queue.Queue()

    def on_new(conn: ServerWebSocket) -> None:
        conn.onclose = closed.put
        for _ in range(16):
            conn.send(b"x" * (1 << 20))
        queued.put(conn.bufferedAmount)

    with WebSocketServer(close_timeout=0.2) as server:
        server.onNewConnection = on_new
        sock = _reading_nothing_client(server)
        try:
            assert queued.get(timeout=TIMEOUT) > 0
            assert sock.recv(1)  # the writer has begun: the close is queued behind the sends
            server.close()
            event = closed.get(timeout=TIMEOUT)
        finally:
            sock.close()
    assert (event.code, event.wasClean) == (1006, False)


def test_close_from_another_thread_comes_after_a_handler_s_send(server: WebSocketServer) -> None:
    # The handler waits until close() has returned, so the overtaking happens every time.
    accepted: queue.Queue[ServerWebSocket] = queue.Queue()
    close_returned = threading.Event()

    def on_new(conn: ServerWebSocket) -> None:
        conn.send("last words")
        accepted.put(conn)
        assert close_returned.wait(TIMEOUT)

    server.onNewConnection = on_new
    ws = WebSocket(server.url)
    recorder = Recorder(ws)
    conn = accepted.get(timeout=TIMEOUT)
    assert conn.bufferedAmount == len("last words")  # queued, before close() is called
    conn.close(1000, "bye")
    close_returned.set()
    event = recorder.wait_closed()
    assert (event.code, event.reason) == (1000, "bye")
    assert recorder.messages == ["last words"]
