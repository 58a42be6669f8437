"""Blocking-style calls made where they must not block: ``sendText`` inside a handler (on the I/O
thread, which does the writing) and ``upgrade()`` on a connection that is already over."""

from __future__ import annotations

import os
import resource
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from mesiboscript import ReadyState, WebSocket

from .helpers import TIMEOUT, wait_for
from .rawserver import RawConnection, RawServer, close_frame, frame


def test_send_text_inside_a_handler_does_not_wait_for_a_peer_that_reads_nothing(
    echo_url: str,
) -> None:
    """The peer never reads: the kernel's buffers fill. sendText() in the handler returns at once
    (before: it waited on the I/O thread for up to 6 x close_timeout, stalling every other
    connection); another connection is served meanwhile."""
    stop = threading.Event()

    def script(conn: RawConnection) -> None:
        conn.handshake()
        conn.sock.sendall(frame(0x1, b"go"))
        stop.wait(TIMEOUT)  # read nothing

    returned = threading.Event()

    def onmessage(event: Any) -> None:
        event.target.sendText("x" * (16 << 20))  # far more than the socket buffers hold
        returned.set()

    with RawServer(handler=script) as server:
        slow = WebSocket(server.url(), close_timeout=3600, onmessage=onmessage)
        try:
            assert returned.wait(TIMEOUT)
            echoed = threading.Event()
            other = WebSocket(echo_url, onmessage=lambda e: echoed.set())
            other.onopen = lambda: other.send("ping")
            assert echoed.wait(TIMEOUT)  # the I/O thread is free
            other.close()
        finally:
            stop.set()
            slow.close()


@pytest.fixture
def high_fds() -> Iterator[None]:
    """Occupy descriptors so that the next socket gets a number above 1024 (select()'s limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048:
        if hard != resource.RLIM_INFINITY and hard < 2048:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < 2048: cannot reach fd 1024")
        resource.setrlimit(resource.RLIMIT_NOFILE, (2048, hard))
    held: list[int] = []
    try:
        probe = socket.socket()
        while probe.fileno() < 1100:
            held.append(probe.detach())
            probe = socket.socket()
        probe.close()
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.usefixtures("high_fds")
def test_send_text_inside_a_handler_with_a_descriptor_above_1024(echo_url: str) -> None:
    """The same with the socket's descriptor above 1024: before, select.select() raised
    ValueError ("filedescriptor out of range") inside the handler."""
    test_send_text_inside_a_handler_does_not_wait_for_a_peer_that_reads_nothing(echo_url)


def test_upgrade_is_false_once_the_connection_is_over() -> None:
    """Before: upgrade() returned True for a socket that had opened and was CLOSED."""

    def script(conn: RawConnection) -> None:
        conn.handshake()
        conn.sock.sendall(close_frame(1000))
        conn.read_close_code()

    with RawServer(handler=script) as server:
        ws = WebSocket(server.url())
        wait_for(lambda: ws.readyState == ReadyState.CLOSED)
        assert ws.upgrade(TIMEOUT) is False
        assert ws.read(0) is False


def test_upgrade_is_true_while_messages_of_a_closed_connection_wait() -> None:
    def script(conn: RawConnection) -> None:
        conn.handshake()
        conn.sock.sendall(frame(0x1, b"greeting") + close_frame(1000))
        conn.read_close_code()

    with RawServer(handler=script) as server:
        ws = WebSocket(server.url())
        wait_for(lambda: ws.readyState == ReadyState.CLOSED)
        assert ws.upgrade(TIMEOUT) is True
        assert ws.read(TIMEOUT) == "greeting"
        assert ws.read(TIMEOUT) is False
