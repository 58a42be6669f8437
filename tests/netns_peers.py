"""The two ends of the link-fault tests (tests/test_netns.py), each run in its own network
namespace through ``ip netns exec``; they report events as JSON lines on stdout.

- ``server HOST``: a WebSocket server (the websockets package) that never pings; it reports its
  port, each connection, each message (and echoes it) and each end.
- ``ws HOST PORT INTERVAL TIMEOUT``: a ``WebSocket`` with ``ping_interval``/``ping_timeout``;
  reports open and close (code, wasClean, monotonic time).
- ``socket HOST PORT``: a keepalive ``Socket`` on ws://; reports each connect, echo and state
  change; sends each ``send TEXT`` line read on stdin, closes on ``close``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import threading
import time
from typing import Any, Callable


def emit(**event: Any) -> None:
    event.setdefault("t", time.monotonic())  # CLOCK_MONOTONIC: comparable across processes
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def server(host: str) -> None:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    ids = itertools.count(1)

    async def handler(ws: ServerConnection) -> None:
        conn = next(ids)
        emit(event="connect", conn=conn)
        try:
            async for message in ws:
                emit(event="message", conn=conn, msg=message)
                await ws.send(message)
        except ConnectionClosed:
            pass
        emit(event="disconnect", conn=conn)

    async def main() -> None:
        async with serve(handler, host, 0, ping_interval=None, close_timeout=0.5) as srv:
            emit(event="port", port=next(iter(srv.sockets)).getsockname()[1])
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(main())


def ws_client(host: str, port: str, interval: str, timeout: str) -> None:
    from mesiboscript import WebSocket

    done = threading.Event()

    def onclose(event: Any) -> None:
        emit(event="close", code=event.code, wasClean=event.wasClean)
        done.set()

    WebSocket(
        f"ws://{host}:{port}/",
        proxy=False,
        ping_interval=float(interval),
        ping_timeout=float(timeout),
        onopen=lambda: emit(event="open"),
        onclose=onclose,
    )
    done.wait()


def socket_client(host: str, port: str) -> None:
    from mesiboscript import Socket

    closed = threading.Event()
    s = Socket(
        f"ws://{host}:{port}/",
        proxy=False,
        ping_interval=0.3,
        connect_timeout=1.0,
        retry_delay=0.1,
        max_retry_delay=0.5,
    )
    s.keepalive = True
    s.onconnect = lambda s: emit(event="connect")
    s.ondata = lambda s, data: emit(event="data", data=data)
    s.onclose = lambda s: (emit(event="closed"), closed.set())

    def watch() -> None:
        state = None
        while not closed.is_set():
            if s.readyState != state:
                state = s.readyState
                emit(event="state", state=state.name)
            closed.wait(0.01)

    threading.Thread(target=watch, daemon=True).start()
    s.open()
    for line in sys.stdin:
        command, _, text = line.rstrip("\n").partition(" ")
        if command == "send":
            s.send(text)
            emit(event="sent", msg=text, state=s.readyState.name, buffered=s.bufferedAmount)
        elif command == "close":
            s.close()
            break
    closed.wait()


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    modes: dict[str, Callable[..., None]] = {
        "server": server,
        "ws": ws_client,
        "socket": socket_client,
    }
    modes[mode](*args)
