"""mesiboscript.aio: the asyncio face, on the one I/O thread, against real servers on loopback."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest

import mesiboscript
from mesiboscript import ReadyState, aio
from mesiboscript.testing import EchoServer

from .helpers import TIMEOUT, AsyncServers, closing_server, wait_for


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


def test_echo_round_trips(echo_url: str) -> None:
    async def main() -> None:
        async with aio.connect(echo_url) as ws:
            assert ws.readyState.name == "OPEN"
            assert ws.protocol == ""
            assert ws.url == echo_url
            assert (ws.close_code, ws.close_reason) == (None, None)
            await ws.send("text")
            assert await ws.recv() == "text"
            await ws.send(b"\x00\x01")
            assert await ws.recv() == b"\x00\x01"
            await ws.send({"a": [1]})
            assert await ws.recv() == '{"a":[1]}'
            await ws.sendTextAsync("written")
            assert await ws.recv() == "written"
            assert "aio.WebSocket" in repr(ws)
            assert isinstance(ws.websocket, mesiboscript.WebSocket)
        assert (ws.close_code, ws.close_reason) == (1000, "")
        assert ws.readyState is ReadyState.CLOSED
        with pytest.raises(mesiboscript.ConnectionClosed) as info:
            await ws.recv()
        assert info.value.code == 1000
        with pytest.raises(mesiboscript.ConnectionClosed):
            await ws.send("late")
        with pytest.raises(mesiboscript.ConnectionClosed):
            await ws.sendTextAsync("late")

    run(main())


def test_await_connect_and_close_with_a_code(echo_url: str) -> None:
    async def main() -> None:
        ws = await aio.connect(echo_url)
        await ws.close(4001, "done")
        assert (ws.close_code, ws.close_reason) == (4001, "done")
        await ws.close()  # a second close does nothing
        assert ws.bufferedAmount == 0
        assert ws.extensions == ws.websocket.extensions  # what the server accepted

    run(main())


def test_async_for_ends_quietly_after_a_clean_close() -> None:
    with EchoServer("ws", script="greet/one/echo/1/close/4000/bye") as server:

        async def main() -> list[Any]:
            got = []
            async with aio.connect(server.url) as ws:
                await ws.send("two")
                async for message in ws:
                    got.append(message)
            assert (ws.close_code, ws.close_reason) == (4000, "bye")
            return got

        assert run(main()) == ["one", "two"]


def test_async_for_raises_after_an_unclean_close() -> None:
    with EchoServer("ws", script="greet/one/drop") as server:

        async def main() -> None:
            ws = await aio.connect(server.url)
            assert await ws.__anext__() == "one"
            with pytest.raises(mesiboscript.ConnectionClosed) as info:
                await ws.__anext__()
            assert info.value.code == 1006 == ws.close_code

        run(main())


def test_a_failed_connection_raises_connection_failed() -> None:
    from .helpers import free_port

    async def main() -> None:
        with pytest.raises(mesiboscript.ConnectionFailed) as info:
            await aio.connect(f"ws://127.0.0.1:{free_port()}/")
        assert info.value.error is mesiboscript.SocketError.ConnectionRefusedError
        assert isinstance(info.value.__cause__, OSError)

    run(main())


def test_bad_arguments_raise_at_once(echo_url: str) -> None:
    with pytest.raises(TypeError):
        aio.connect(echo_url, onmessage=print)

    async def main() -> None:
        with pytest.raises(ValueError, match="ftp"):
            await aio.connect("ftp://example.com/")

    run(main())


def test_one_recv_at_a_time(echo_url: str) -> None:
    async def main() -> None:
        async with aio.connect(echo_url) as ws:
            first = asyncio.ensure_future(ws.recv())
            await asyncio.sleep(0)
            with pytest.raises(RuntimeError):
                await ws.recv()
            await ws.send("x")
            assert await first == "x"

    run(main())


def test_a_cancelled_recv_loses_nothing(echo_url: str) -> None:
    async def main() -> None:
        async with aio.connect(echo_url) as ws:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.01)
            await ws.send("after")
            assert await ws.recv() == "after"

    run(main())


def test_a_slow_consumer_stops_the_socket_being_read(servers: AsyncServers) -> None:
    """The server sends 50 000 messages while the asyncio side does not read: the connection's
    inbox stops reading the socket (no unbounded asyncio queue), the server's sends block, and
    every message arrives in order once the consumer reads."""
    count = 50_000
    server_done = threading.Event()

    async def handler(conn: Any) -> None:
        for i in range(count):
            await conn.send(f"{i:08d}" + "." * 92)
        server_done.set()
        await conn.wait_closed()

    server = servers.serve(handler)

    async def main() -> int:
        # Uncompressed: the bound below counts what one socket read can carry.
        async with aio.connect(f"ws://127.0.0.1:{server.port}/", compression=None) as ws:
            inbox = ws.websocket._inbox
            wait_for(lambda: inbox.paused)  # blocks this loop on purpose: nothing is read here
            assert not server_done.is_set()
            max_queued = len(inbox)
            for i in range(count):
                assert await ws.recv() == f"{i:08d}" + "." * 92, i
                if i % 1000 == 0:
                    max_queued = max(max_queued, len(inbox))
            assert server_done.wait(TIMEOUT)
            return max_queued

    try:
        max_queued = run(main())
    finally:
        servers.stop(server)
    assert max_queued < 4096 + 256 * 1024 // 102 + 1


def test_send_waits_for_a_drain_past_the_high_water_mark(servers: AsyncServers) -> None:
    """While the server does not read, send() stops returning at once: the caller waits."""
    release = threading.Event()

    async def handler(conn: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(None, release.wait, TIMEOUT)
        async for _ in conn:
            pass

    server = servers.serve(handler, max_size=None)

    async def main() -> None:
        async with aio.connect(f"ws://127.0.0.1:{server.port}/", compression=None) as ws:
            chunk = os.urandom(1 << 20)
            sent = 0
            while True:
                task = asyncio.ensure_future(ws.send(chunk))
                done, _ = await asyncio.wait([task], timeout=0.5)
                if not done:
                    break  # blocked: the socket and both kernels' buffers are full
                sent += 1
                assert sent < 200, "send() never waited"
            assert ws.bufferedAmount > aio.WRITE_HIGH_WATER
            release.set()
            await asyncio.wait_for(task, TIMEOUT)

    try:
        run(main())
    finally:
        release.set()
        servers.stop(server)


def test_plain_websocket_send_text_async_is_awaitable(echo_url: str) -> None:
    ws = mesiboscript.WebSocket(echo_url)
    assert ws.upgrade(TIMEOUT)

    async def main() -> None:
        await asyncio.wrap_future(ws.sendTextAsync("through wrap_future"))

    run(main())
    assert ws.read(TIMEOUT) == "through wrap_future"
    ws.close()
    assert ws.read(TIMEOUT) is False


def test_connections_close_when_their_loop_closes(servers: AsyncServers) -> None:
    server, codes, closed = closing_server(servers)
    kept: list[aio.WebSocket] = []

    async def main() -> None:
        kept.append(await aio.connect(f"ws://127.0.0.1:{server.port}/"))

    try:
        run(main())
        assert kept[0].close_code == 1001  # closed by asyncio.run()'s shutdown, not left open
        assert closed.wait(TIMEOUT)
        assert codes == [1001]
    finally:
        servers.stop(server)


def test_an_open_connection_does_not_keep_the_process_alive(echo_url: str) -> None:
    """A thread-style WebSocket keeps a script alive; one opened by asyncio ends with its loop."""
    script = textwrap.dedent(
        f"""
        import asyncio, mesiboscript.aio as aio
        async def main():
            global ws
            ws = await aio.connect({echo_url!r})
        asyncio.run(main())
        print("closed", ws.close_code)
        """
    )
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert (out.returncode, out.stdout, out.stderr) == (0, "closed 1001\n", "")
    assert time.monotonic() - started < TIMEOUT


def test_the_asyncio_example_runs(echo_url: str) -> None:
    out = subprocess.run(
        [sys.executable, "examples/asyncio_echo.py", echo_url],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "< hello",
        "< 1",
        "< 2",
        "< 3",
        "sendTextAsync written",
        "< from a thread-style WebSocket",
        "closed 1000",
    ]


def test_mesibo_socket_face() -> None:
    with EchoServer("sock") as server:

        async def main() -> None:
            async with aio.open_socket(server.url) as s:
                assert s.readyState.name == "OPEN"
                assert s.url == server.url
                assert "aio.Socket" in repr(s)
                assert isinstance(s.socket, mesiboscript.Socket)
                await s.send(b"raw bytes")
                got = b""
                while len(got) < 9:
                    chunk = await s.recv()
                    assert isinstance(chunk, bytes)
                    got += chunk
                assert got == b"raw bytes"
            assert s.readyState.name == "CLOSED"
            with pytest.raises(mesiboscript.ConnectionClosed):
                await s.recv()

        run(main())


def test_mesibo_socket_over_websocket_iterates_until_closed() -> None:
    with EchoServer("ws", script="greet/hi/echo/1/close") as server:

        async def main() -> list[Any]:
            s = await aio.open_socket(server.url, keepalive=False)
            await s.send("echoed")
            return [message async for message in s]

        assert run(main()) == ["hi", "echoed"]


def test_mesibo_socket_failure_and_loop_close() -> None:
    from .helpers import free_port

    async def refused() -> None:
        with pytest.raises(mesiboscript.ConnectionFailed):
            await aio.open_socket(f"sock://127.0.0.1:{free_port()}")
        with pytest.raises(TypeError):
            aio.open_socket("sock://127.0.0.1:1", ondata=print)

    run(refused())
    kept: list[aio.Socket] = []
    with EchoServer("sock") as server:

        async def left_open() -> None:
            kept.append(await aio.open_socket(server.url))

        run(left_open())
        assert kept[0].readyState.name == "CLOSED"
