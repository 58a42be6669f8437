"""Dirigible sessions on the server side: ``getSession()`` in a ``WebSocketServer`` handler is the
accepted connection, which has ``sendText``/``sendTextAsync``/``getId``/``close``; the module's
``getOpenSessions()`` lists both sides, ``server.getOpenSessions()`` only its own."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from mesiboscript import (
    ConnectionClosed,
    InvalidStateError,
    MessageData,
    WebSocket,
    getOpenSessions,
    getSession,
)
from mesiboscript.server import ServerWebSocket, WebSocketServer

from .helpers import TIMEOUT, Recorder, wait_for
from .test_server import open_client


@pytest.fixture
def server() -> Iterator[WebSocketServer]:
    with WebSocketServer() as s:
        yield s


def _accepting(server: WebSocketServer) -> queue.Queue[ServerWebSocket]:
    accepted: queue.Queue[ServerWebSocket] = queue.Queue()
    server.onNewConnection = accepted.put
    return accepted


def test_get_session_in_server_handlers_is_the_connection(server: WebSocketServer) -> None:
    # Before: None in onNewConnection (the server's handler).
    seen: queue.Queue[tuple[str, Any, ServerWebSocket]] = queue.Queue()

    def on_new(conn: ServerWebSocket) -> None:
        seen.put(("new", getSession(), conn))
        conn.onmessage = lambda m: seen.put(("message", getSession(), conn))

    server.onNewConnection = on_new
    ws, _ = open_client(server.url)
    ws.send("hi")
    for expected in ("new", "message"):
        kind, session, conn = seen.get(timeout=TIMEOUT)
        assert kind == expected
        assert session is conn
    assert getSession() is None  # not in a handler
    ws.close()


def test_open_sessions_of_both_sides_and_of_one_server(server: WebSocketServer) -> None:
    accepted = _accepting(server)
    with WebSocketServer() as other:
        other_accepted = _accepting(other)
        ws1, _ = open_client(server.url)
        ws2, _ = open_client(other.url)
        conn1 = accepted.get(timeout=TIMEOUT)
        conn2 = other_accepted.get(timeout=TIMEOUT)
        wait_for(lambda: len(getOpenSessions()) == 4)
        assert set(map(id, getOpenSessions())) == set(map(id, [ws1, ws2, conn1, conn2]))
        assert server.getOpenSessions() == [conn1]
        assert other.getOpenSessions() == [conn2]
        conn1.close()
        # Closing has begun: no longer OPEN, so no longer listed (before its close event).
        assert conn1 not in getOpenSessions()
        assert server.getOpenSessions() == []
        ws2.close()
        assert ws2 not in getOpenSessions()
        wait_for(lambda: ws1 not in getOpenSessions())
    wait_for(lambda: getOpenSessions() == [])


def test_send_text_from_a_thread_returns_once_written(server: WebSocketServer) -> None:
    accepted = _accepting(server)
    ws, recorder = open_client(server.url)
    conn = accepted.get(timeout=TIMEOUT)
    conn.sendText("one")
    assert conn.bufferedAmount == 0  # written before sendText returned
    future = conn.sendTextAsync("two")
    assert future.result(TIMEOUT) is None
    recorder.wait(lambda: len(recorder.messages) == 2, "two messages")
    assert recorder.messages == ["one", "two"]
    assert len(conn.getId()) == 32
    assert conn.getId() == conn.getId()
    ws.close()


def test_send_text_inside_a_handler_answers_that_client(server: WebSocketServer) -> None:
    def on_new(conn: ServerWebSocket) -> None:
        def on_message(message: MessageData) -> None:
            session = getSession()
            session.sendText(f"echo {message.data!s}")
            session.sendTextAsync("and async")

        conn.onmessage = on_message

    server.onNewConnection = on_new
    ws, recorder = open_client(server.url)
    ws.send("hi")
    recorder.wait(lambda: len(recorder.messages) == 2, "two messages")
    assert recorder.messages == ["echo hi", "and async"]
    ws.close()


def test_send_text_on_a_closed_session_raises(server: WebSocketServer) -> None:
    accepted = _accepting(server)
    _ws, recorder = open_client(server.url)
    conn = accepted.get(timeout=TIMEOUT)
    conn.close()
    recorder.wait_closed()
    with pytest.raises(InvalidStateError):
        conn.sendText("late")
    with pytest.raises(InvalidStateError):
        conn.sendTextAsync("late").result(TIMEOUT)
    with pytest.raises(TypeError):
        conn.sendTextAsync(b"bytes")  # type: ignore[arg-type]


def test_send_text_async_fails_when_the_connection_drops(server: WebSocketServer) -> None:
    # The handler queues a message, then the client's TCP connection is cut before it goes out.
    accepted = _accepting(server)
    ws, recorder = open_client(server.url)
    conn = accepted.get(timeout=TIMEOUT)
    release = threading.Event()
    futures: queue.Queue[Any] = queue.Queue()

    def hold(message: MessageData) -> None:
        futures.put(conn.sendTextAsync("x" * 100))
        conn._conn.transport.abort()  # the test reaches in to cut the connection mid-send
        release.set()

    conn.onmessage = hold
    ws.send("go")
    assert release.wait(TIMEOUT)
    future = futures.get(timeout=TIMEOUT)
    with pytest.raises((ConnectionClosed, InvalidStateError)):
        future.result(TIMEOUT)
    recorder.wait_closed()


def test_send_from_another_thread_comes_after_a_handler_s_send(server: WebSocketServer) -> None:
    # As test_server_more's close() case (the known bug), for send(): one order for both.
    accepted: queue.Queue[ServerWebSocket] = queue.Queue()
    sent_outside = threading.Event()

    def on_new(conn: ServerWebSocket) -> None:
        conn.send("from the handler")
        accepted.put(conn)
        assert sent_outside.wait(TIMEOUT)

    server.onNewConnection = on_new
    # Not open_client(): the handler holds the I/O thread, which the client's open needs too.
    ws = WebSocket(server.url)
    recorder = Recorder(ws)
    conn = accepted.get(timeout=TIMEOUT)
    conn.send("from a thread")
    sent_outside.set()
    recorder.wait(lambda: len(recorder.messages) == 2, "two messages")
    assert recorder.messages == ["from the handler", "from a thread"]
    ws.close()
