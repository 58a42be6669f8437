"""The asyncio face: the same WebSocket, awaited from an asyncio program.

    python examples/asyncio_echo.py               # starts a local echo server
    python examples/asyncio_echo.py ws://HOST/    # any echo server

``mesiboscript.aio.connect()`` opens the connection on the library's one I/O thread and hands
its events to the running asyncio loop; ``async for`` ends after the clean close. A thread-style
``WebSocket``'s ``sendTextAsync()`` Future is awaited through ``asyncio.wrap_future``.
"""

from __future__ import annotations

import asyncio
import sys

import mesiboscript
from mesiboscript import aio


async def main(url: str) -> None:
    async with aio.connect(url) as ws:
        await ws.send("hello")
        print("<", await ws.recv())
        for n in (1, 2, 3):
            await ws.send(str(n))
        for _ in range(3):
            print("<", await ws.recv())
        await ws.sendTextAsync("")  # returns once written to the socket
        print("sendTextAsync written")
        await ws.recv()

    # A thread-style WebSocket: its Dirigible sendTextAsync() Future is awaitable too.
    plain = mesiboscript.WebSocket(url)
    opened = asyncio.get_running_loop().create_future()
    plain.onopen = lambda: opened.get_loop().call_soon_threadsafe(opened.set_result, None)
    await opened
    await asyncio.wrap_future(plain.sendTextAsync("from a thread-style WebSocket"))
    # Its blocking read() must not run on the event loop: a worker thread waits instead.
    print("<", await asyncio.get_running_loop().run_in_executor(None, plain.read, 5.0))
    plain.close()
    print("closed", ws.close_code)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        asyncio.run(main(sys.argv[1]))
    else:
        from mesiboscript.testing import EchoServer

        with EchoServer("ws") as server:
            asyncio.run(main(server.url))
