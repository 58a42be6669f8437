"""mesiboscript.aio's Socket.IO face against a socket.io 4 server and a python-socketio 5 server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import mesiboscript
from mesiboscript import aio

from .helpers import TIMEOUT
from .test_socketio import ServerProcess, start_server


@pytest.fixture(scope="module", params=["socketio4", "python-socketio"])
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    process = start_server(request.param)
    yield process
    process.stop()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


def test_call_emit_and_handlers(server: ServerProcess) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        messages: asyncio.Queue[Any] = asyncio.Queue()
        results: asyncio.Queue[Any] = asyncio.Queue()
        threads: set[str] = set()

        async def on_message(data: Any) -> None:
            threads.add(threading.current_thread().name)
            await messages.put(data)

        def on_question(arg: Any) -> None:  # a plain handler runs on the loop too
            assert asyncio.get_running_loop() is loop

        async with aio.connect_socketio(server.url) as sio:
            assert sio.connected
            assert sio.id
            assert "aio.SocketIO" in repr(sio)
            assert isinstance(sio.socketio, mesiboscript.SocketIO)
            sio.on("message", on_message)
            sio.on("call-me-result", lambda *args: results.put_nowait(args))
            sio.on("question", on_question)
            assert await sio.call("echo", 1, "two") == (1, "two")
            assert await sio.call("echo", {"x": [1]}) == {"x": [1]}
            await sio.send({"text": "hello"})
            assert await messages.get() == {"text": "hello"}
            await sio.emit("call-me", "question", 21)
            assert await results.get() == ([],)  # the aio handler's return is not an ack
            with pytest.raises(TimeoutError):
                await sio.call("nobody-listens", timeout=0.2)
        assert not sio.connected
        assert threads == {threading.current_thread().name}
        with pytest.raises(mesiboscript.ConnectionClosed):
            await sio.call("echo", 1)

    run(main())


def test_a_refused_connection_raises(server: ServerProcess) -> None:
    async def main() -> None:
        with pytest.raises(mesiboscript.ConnectionFailed, match="not authorized"):
            await aio.connect_socketio(server.url + "/private")

    run(main())


def test_a_pending_call_fails_when_the_server_disconnects(server: ServerProcess) -> None:
    async def main() -> None:
        sio = await aio.connect_socketio(server.url)
        call = asyncio.ensure_future(sio.call("nobody-listens"))
        await sio.emit("disconnect-me")
        with pytest.raises(mesiboscript.ConnectionClosed):
            await call
        await sio.close()

    run(main())


def test_an_open_socketio_closes_with_its_loop(server: ServerProcess) -> None:
    kept: list[aio.SocketIO] = []

    async def main() -> None:
        kept.append(await aio.connect_socketio(server.url))

    run(main())
    assert kept[0].socketio.wait(TIMEOUT)
