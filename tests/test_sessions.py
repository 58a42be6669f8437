"""Dirigible sessions and ArozOS blocking reads: one message queue, nothing lost, bounded memory."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable

import pytest

import mesiboscript
from mesiboscript import InvalidStateError, WebSocket, getOpenSessions, getSession

from .helpers import TIMEOUT, AsyncServers, Recorder, free_port, wait_for
from .rawserver import (
    OP_BINARY,
    ExpectClose,
    Handshake,
    RawConnection,
    RawServer,
    Script,
    Send,
    deflated,
    frame,
)


def test_get_open_sessions_and_ids(echo_url: str) -> None:
    a, b = WebSocket(echo_url), WebSocket(echo_url)
    assert a.upgrade(TIMEOUT)
    assert b.upgrade(TIMEOUT)
    assert getOpenSessions() == [a, b] or getOpenSessions() == [b, a]
    assert a.getId() != b.getId()
    assert a.getId() == a.getId()
    assert isinstance(a.getId(), str)
    assert getSession() is None
    a.close()
    assert a.read(TIMEOUT) is False
    assert getOpenSessions() == [b]
    b.close()
    assert b.read(TIMEOUT) is False
    assert getOpenSessions() == []


def test_upgrade_and_read(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    assert ws.upgrade(TIMEOUT) is True
    for i in range(10):
        ws.send(f"message {i}")
        assert ws.read(TIMEOUT) == f"message {i}"
    ws.send(b"\x00")
    assert ws.read(TIMEOUT) == b"\x00"
    assert ws.read(0.05) is None  # nothing more: a timeout
    ws.close()
    assert ws.read(TIMEOUT) is False


def test_read_drains_before_reporting_closed(servers: AsyncServers) -> None:
    async def handler(conn: Any) -> None:
        for i in range(5):
            await conn.send(str(i))
        await conn.close()

    server = servers.serve(handler)
    try:
        ws = WebSocket(f"ws://127.0.0.1:{server.port}/")
        got = []
        while (message := ws.read(TIMEOUT)) is not False:
            assert message is not None
            got.append(message)
    finally:
        servers.stop(server)
    assert got == ["0", "1", "2", "3", "4"]


def test_upgrade_fails_without_raising() -> None:
    ws = WebSocket(f"ws://127.0.0.1:{free_port()}/")
    assert ws.upgrade(TIMEOUT) is False
    assert ws.readyState == ws.CLOSED
    assert ws.read(TIMEOUT) is False


def test_upgrade_reports_a_failure_after_its_handlers_ran() -> None:
    # The ArozOS port prints from onerror, then prints "Upgrade Failed" when upgrade() returns
    # False: the handlers' output must come first (it interleaved mid-line before).
    seen: list[str] = []

    def onclose(event: object) -> None:
        time.sleep(0.05)  # widens the window the caller's print used to land in
        seen.append("close")

    ws = WebSocket(f"ws://127.0.0.1:{free_port()}/")
    ws.onerror = lambda error: seen.append("error")
    ws.onclose = onclose
    assert ws.upgrade(TIMEOUT) is False
    assert seen == ["error", "close"]


def test_upgrade_timeout_abandons_the_attempt() -> None:
    def script(conn: RawConnection) -> None:
        conn.wait_eof()  # never answers

    with RawServer(handler=script) as server:
        ws = WebSocket(server.url())
        assert ws.upgrade(0.1) is False
        assert ws.read(TIMEOUT) is False


def test_blocking_calls_refuse_to_deadlock_in_handlers(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    rec = Recorder(ws)
    errors: list[BaseException] = []

    def on_open() -> None:
        calls: list[Callable[[], object]] = [lambda: ws.read(1), lambda: ws.upgrade(1)]
        for call in calls:
            try:
                call()
            except InvalidStateError as exc:
                errors.append(exc)
        ws.close()

    ws.onopen = on_open
    rec.wait_closed()
    assert len(errors) == 2


def test_send_text_returns_once_written_and_raises_when_not_open(echo_url: str) -> None:
    ws = WebSocket(echo_url)  # (sendText while CONNECTING: test_websocket's gated server)
    assert ws.upgrade(TIMEOUT)
    ws.sendText("written")
    assert ws.bufferedAmount == 0
    assert ws.read(TIMEOUT) == "written"
    with pytest.raises(TypeError):
        ws.sendText(b"bytes")  # type: ignore[arg-type]
    ws.close()
    with pytest.raises(InvalidStateError):
        ws.sendText("too late")
    future = ws.sendTextAsync("too late")
    with pytest.raises(InvalidStateError):
        future.result(TIMEOUT)
    assert ws.read(TIMEOUT) is False


def test_send_text_inside_a_handler_writes_itself(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    after: list[int] = []

    def on_open() -> None:
        ws.sendText("x" * 100_000)
        after.append(ws.bufferedAmount)

    ws.onopen = on_open
    assert ws.upgrade(TIMEOUT)
    wait_for(lambda: after)
    assert after == [0]
    assert ws.read(TIMEOUT) == "x" * 100_000
    ws.close()


def test_send_text_from_two_threads(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    assert ws.upgrade(TIMEOUT)
    barrier = threading.Barrier(2)

    def sender(name: str) -> None:
        barrier.wait(TIMEOUT)
        for i in range(300):
            ws.sendText(f"{name}{i}")

    threads = [threading.Thread(target=sender, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    got = [ws.read(TIMEOUT) for _ in range(600)]
    ws.close()
    texts = [m for m in got if isinstance(m, str)]
    assert len(texts) == 600
    assert [m for m in texts if m.startswith("a")] == [f"a{i}" for i in range(300)]
    assert [m for m in texts if m.startswith("b")] == [f"b{i}" for i in range(300)]
    assert ws.read(TIMEOUT) is False


def test_send_text_async_completes_and_fails_on_drop() -> None:
    """A large frame the server never reads, then a reset: the pending Future fails."""
    reset = threading.Event()

    def script(conn: RawConnection) -> None:
        import socket
        import struct

        conn.handshake()
        reset.wait(TIMEOUT)
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    with RawServer(handler=script) as server:
        ws = WebSocket(server.url())
        assert ws.upgrade(TIMEOUT)
        small = ws.sendTextAsync("small")
        assert small.result(TIMEOUT) is None
        big: Future[None] = ws.sendTextAsync("x" * 64 * 1024 * 1024)
        wait_for(lambda: ws.bufferedAmount > 0)
        assert not big.done()
        reset.set()
        with pytest.raises(mesiboscript.ConnectionClosed):
            big.result(TIMEOUT)
        assert ws.read(TIMEOUT) is False
    assert ws.bufferedAmount > 0  # what never reached the socket stays counted, as in browsers


def test_100k_messages_with_backpressure(servers: AsyncServers) -> None:
    """The server sends 100 000 messages while the client is not reading: the client stops
    reading its socket (bounded queue), the server's sends block, and every message arrives in
    order once the client reads."""
    count = 100_000
    server_done = threading.Event()
    server_state: dict[str, Any] = {}

    async def handler(conn: Any) -> None:
        for i in range(count):
            await conn.send(f"{i:08d}" + "." * 92)
        server_state["sent"] = count
        server_done.set()
        await conn.wait_closed()

    server = servers.serve(handler)
    try:
        # Compressed (the default): one read carries many more messages than it would plain,
        # but the core inflates at most 64 KiB before the inbox can pause it (7304 queued
        # before that bound, over the one below).
        ws = WebSocket(f"ws://127.0.0.1:{server.port}/")
        assert ws.upgrade(TIMEOUT)
        assert ws.extensions.startswith("permessage-deflate")
        wait_for(lambda: ws._inbox.paused)  # backpressure engaged: the client stopped reading
        assert not server_done.is_set()  # ... and the server cannot finish sending
        max_queued = len(ws._inbox)
        for i in range(count):
            message = ws.read(TIMEOUT)
            assert message == f"{i:08d}" + "." * 92, i
            if i % 1000 == 0:
                max_queued = max(max_queued, len(ws._inbox))
        assert server_done.wait(TIMEOUT)
        ws.close()
        assert ws.read(TIMEOUT) is False
    finally:
        servers.stop(server)
    # Bounded: the high-water mark plus what one socket read (or the inflation budget) carries.
    assert max_queued < 4096 + 256 * 1024 // 102 + 1
    servers.run(asyncio.sleep(0))


@pytest.mark.parametrize(("count", "size"), [(64, 1 << 20), (20_000, 100)])
def test_a_compressed_burst_stays_within_the_high_water_mark(count: int, size: int) -> None:
    """A server writes a burst of compressed messages at once (1 MiB ones about 1 KiB each on
    the wire, 100-byte ones a few bytes): one socket read carries many. While the client does
    not read, its inbox stops at the high-water mark (1 MiB, 4096 messages) plus the core's
    inflation budget (64 KiB) and one message; then every message arrives in order."""
    messages = [b"%08d" % i + bytes(size - 8) for i in range(count)]
    wire = b"".join(frame(OP_BINARY, p, rsv=4) for p in deflated(*messages))
    script = Script(
        handshake=Handshake(extensions="permessage-deflate"),
        actions=(Send(wire), ExpectClose()),
    )
    with RawServer(scripts={"/burst": script}) as server:
        ws = WebSocket(server.url("/burst"), max_size=max(size, 1 << 20))
        assert ws.upgrade(TIMEOUT)
        wait_for(lambda: ws._inbox.paused)
        settled = threading.Event()  # the I/O thread finished the input it paused in
        ws._loop.call_soon_threadsafe(settled.set)
        assert settled.wait(TIMEOUT)
        queued, nbytes = len(ws._inbox), ws._inbox.nbytes
        for i in range(count):
            got = ws.read(TIMEOUT)
            assert got == messages[i], (i, got[:8] if isinstance(got, bytes) else got)
        ws.close()
        assert ws.read(TIMEOUT) is False
    # Before the core held input back at its budget: 64 MiB queued; 12 095 messages.
    assert nbytes <= (1 << 20) + 64 * 1024 + size
    assert queued <= 4096 + 64 * 1024 // size + 1


def test_messages_wait_for_the_first_handler(servers: AsyncServers) -> None:
    sent = threading.Event()

    async def handler(conn: Any) -> None:
        for i in range(50):
            await conn.send(str(i))
        sent.set()
        await conn.wait_closed()

    server = servers.serve(handler)
    try:
        ws = WebSocket(f"ws://127.0.0.1:{server.port}/")
        assert sent.wait(TIMEOUT)
        wait_for(lambda: len(ws._inbox) == 50)
        got: list[object] = []
        done = threading.Event()
        ws.onmessage = lambda e: (got.append(e.data), len(got) == 50 and done.set())
        assert done.wait(TIMEOUT)
        ws.close()
        assert ws.read(TIMEOUT) is False
    finally:
        servers.stop(server)
    assert got == [str(i) for i in range(50)]
