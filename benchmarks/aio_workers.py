"""The asyncio clients of the benchmarks (issue 17), registered in ``workers.py``'s ``CLIENTS``.

    mesiboscript-aio     ``mesiboscript.aio.connect``: ``await send``/``await recv``
    websockets-asyncio   ``websockets.asyncio.client.connect``: ``await send``/``await recv``
    picows               picows' callbacks (Cython): the next send from ``on_ws_frame``

aiohttp (already in ``workers.py``) is the fourth asyncio client. Workloads: ping-pong and
pipelined (32-byte text), binary and text echo, as ``workers.py`` defines them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from workers import (
    MAX_SIZE,
    WARMUP_LARGE,
    WARMUP_PINGPONG,
    Clock,
    Result,
    _check,
    _nbytes,
    _payload,
)


async def _drive(ws: Any, send: Any, recv: Any, workload: str, p: dict[str, Any]) -> Result:
    """One workload through an ``await send(data)`` / ``await recv()`` pair."""
    payload = _payload(workload)
    clock = Clock()
    warmup = WARMUP_PINGPONG if workload in ("pingpong", "pipelined") else WARMUP_LARGE
    for _ in range(warmup):
        await send(payload)
        _check(await recv(), payload)
    if workload == "pipelined":
        n = p["n"]
        clock.start()
        for _ in range(n):
            await send(payload)
        for _ in range(n - 1):
            await recv()
        last = await recv()
        clock.stop()
        result = clock.result(n, "msgs/s")
    elif workload == "pingpong":
        n = p["n"]
        clock.start()
        for _ in range(n):
            await send(payload)
            last = await recv()
        clock.stop()
        result = clock.result(n, "msgs/s")
    else:
        n = 0
        clock.start()
        while True:
            await send(payload)
            last = await recv()
            n += 1
            if time.perf_counter() - clock.t0 >= p["duration"]:
                break
        clock.stop()
        result = clock.result(n, "MB/s", _nbytes(payload) / 1e6)
    _check(last, payload)
    return result


def mesiboscript_aio(url: str, workload: str, p: dict[str, Any]) -> Result:
    async def main() -> Result:
        from mesiboscript import aio

        async with aio.connect(url, max_size=MAX_SIZE) as ws:
            return await _drive(ws, ws.send, ws.recv, workload, p)

    return asyncio.run(main())


def websockets_asyncio(url: str, workload: str, p: dict[str, Any]) -> Result:
    async def main() -> Result:
        from websockets.asyncio.client import connect

        async with connect(url, max_size=MAX_SIZE, compression=None) as ws:
            return await _drive(ws, ws.send, ws.recv, workload, p)

    return asyncio.run(main())


def picows_client(url: str, workload: str, p: dict[str, Any]) -> Result:
    """picows as its authors use it: frames arrive in a callback, which sends the next one."""
    from picows import WSListener, WSMsgType, ws_connect

    payload = _payload(workload)
    msg_type = WSMsgType.TEXT if isinstance(payload, str) else WSMsgType.BINARY
    data = payload.encode() if isinstance(payload, str) else payload
    warmup = WARMUP_PINGPONG if workload in ("pingpong", "pipelined") else WARMUP_LARGE

    class Listener(WSListener):  # type: ignore[misc,unused-ignore]  # Any without picows
        def __init__(self) -> None:
            self.transport: Any = None
            self.left = 0  # echoes still expected in this phase
            self.done: asyncio.Future[bytes] | None = None
            self.deadline: float | None = None
            self.count = 0
            self.parts: list[bytes] = []
            self.bulk = False

        def on_ws_connected(self, transport: Any) -> None:
            self.transport = transport

        def phase(
            self, n: int, deadline: float | None = None, bulk: bool = False
        ) -> asyncio.Future[bytes]:
            """Expect ``n`` echoes (or until ``deadline``): all sent at once (``bulk``), or each
            sent when the previous echo arrives."""
            self.left, self.deadline, self.count, self.bulk = n, deadline, 0, bulk
            self.done = asyncio.get_running_loop().create_future()
            for _ in range(n if bulk else 1):
                self.transport.send(msg_type, data)
            return self.done

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            self.parts.append(frame.get_payload_as_bytes())
            if not frame.fin:
                return
            message, self.parts = b"".join(self.parts), []
            self.count += 1
            self.left -= 1
            timed_out = self.deadline is not None and time.perf_counter() >= self.deadline
            if self.left <= 0 or timed_out:
                assert self.done is not None
                self.done.set_result(message)
            elif not self.bulk:
                transport.send(msg_type, data)

    async def main() -> Result:
        transport, connected = await ws_connect(Listener, url, max_frame_size=MAX_SIZE)
        listener = cast(Listener, connected)
        clock = Clock()
        for _ in range(warmup):
            _check(_decode(await listener.phase(1), payload), payload)
        if workload in ("pingpong", "pipelined"):
            n = p["n"]
            clock.start()
            last = await listener.phase(n, bulk=workload == "pipelined")
            clock.stop()
            result = clock.result(n, "msgs/s")
        else:
            clock.start()
            last = await listener.phase(1 << 30, time.perf_counter() + p["duration"])
            clock.stop()
            result = clock.result(listener.count, "MB/s", _nbytes(payload) / 1e6)
        _check(_decode(last, payload), payload)
        transport.send_close()
        transport.disconnect()
        return result

    return asyncio.run(main())


def _decode(message: bytes, like: str | bytes) -> str | bytes:
    return message.decode() if isinstance(like, str) else message


CLIENTS = {
    "mesiboscript-aio": mesiboscript_aio,
    "websockets-asyncio": websockets_asyncio,
    "picows": picows_client,
}
