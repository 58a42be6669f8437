"""One benchmark run of one client library, in a process of its own.

``benchmarks/run.py`` starts this file once per (client, workload, repetition) so that memory,
threads and imports are measured per library, never shared. It can also be run by hand:

    python benchmarks/workers.py CLIENT WORKLOAD ws://127.0.0.1:PORT '{"n": 1000}'

and prints exactly one JSON line: ``{"ok": true, "value": ..., "unit": ..., ...}`` on success,
``{"ok": false, "error": ...}`` on failure.

Clients:
    mesiboscript           the library under test, with only its required dependencies
    mesiboscript+speed     the same with the ``speed`` extra: websockets' C masking
    mesiboscript+wsaccel   the same with ``wsaccel`` (the fallback without websockets)
    mesiboscript-read      the same, blocking: ``send()`` then ``read()`` from the main thread
                           (the ArozOS way), no handler set
    websocket-client       ``create_connection`` and a blocking loop (the reference: ratio 1.00)
    websocket-client+wsaccel   the same with ``wsaccel``, which websocket-client uses by itself
    websocket-client-app   ``WebSocketApp`` callbacks (one thread per connection)
    websockets             ``websockets.sync.client.connect``
    aiohttp                ``ClientSession.ws_connect`` on asyncio
    picows                 picows (Cython) on asyncio: a listener's ``on_ws_frame`` sends the next
    raw                    no client: the floor set by the server and the machine (see raw_socket)

A client whose name has no ``+wsaccel`` runs with ``wsaccel`` made unimportable, and a mesiboscript
client without ``+speed`` with ``websockets.speedups`` made unimportable, so that the default
(pure-Python masking and UTF-8 checks) is what is measured even where they are installed.

Workloads (parameters in the JSON argument):
    pingpong   ``n`` round trips of a 32-byte text message, one at a time        → msgs/s
    pipelined  ``n`` 32-byte text messages sent back to back, then all echoes     → msgs/s
    binary     1 MiB binary messages echoed one at a time for ``duration`` s      → MB/s
    text       64 KiB text messages echoed one at a time for ``duration`` s       → MB/s
    idle       ``n`` concurrent idle connections opened in batches of ``batch``  → threads,
               RSS per connection, time to open the first batch
"""

from __future__ import annotations

import json
import os
import sys

CLIENT = sys.argv[1] if len(sys.argv) > 1 else ""
# Hide the optional accelerators before any library can import them (an import of a module set
# to None in sys.modules raises ImportError, which every user of them catches).
if "+wsaccel" not in CLIENT:
    for _name in ("wsaccel", "wsaccel.xormask", "wsaccel.utf8validator"):
        sys.modules[_name] = None  # type: ignore[assignment]
if CLIENT.startswith("mesiboscript") and "+speed" not in CLIENT:
    # mesiboscript masks with websockets' C speedups whenever websockets is installed (the
    # ``speed`` extra), and websockets is installed here for its own column.
    sys.modules["websockets.speedups"] = None  # type: ignore[assignment]

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import resource  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable  # noqa: E402

MESSAGE_32 = "0123456789abcdef0123456789abcdef"
# 64 KiB of UTF-8: mostly ASCII with two multi-byte characters in every 64 bytes.
TEXT_64K = ("x" * 59 + "\u00e9\u20ac") * 1024
BINARY_1M = os.urandom(1 << 20)
MAX_SIZE = 64 * 1024 * 1024  # every client is allowed the largest message we send, and more
WARMUP_PINGPONG = 200
WARMUP_LARGE = 3
TIMEOUT = 240.0

assert len(MESSAGE_32.encode()) == 32
assert len(TEXT_64K.encode()) == 65536

Result = dict[str, Any]


def _status(field: str) -> int:
    """A number from /proc/self/status (kB for memory fields); -1 where /proc is absent."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def _rss_kb() -> int:
    rss = _status("VmRSS")
    if rss < 0:  # no /proc: the peak is the best we have
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss


def _fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def _threads() -> int:
    n = _status("Threads")
    return n if n > 0 else threading.active_count()


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Clock:
    """Wall and CPU time of the measured window only."""

    def __init__(self) -> None:
        self.t0 = self.c0 = self.t1 = self.c1 = 0.0

    def start(self) -> None:
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def stop(self) -> None:
        self.t1, self.c1 = time.perf_counter(), time.process_time()

    def result(self, count: int, unit: str, per: float = 1.0) -> Result:
        elapsed = self.t1 - self.t0
        value = count * per / elapsed
        return {
            "value": value,
            "unit": unit,
            "count": count,
            "elapsed": elapsed,
            "cpu": self.c1 - self.c0,
        }


def _payload(workload: str) -> str | bytes:
    if workload == "binary":
        return BINARY_1M
    return TEXT_64K if workload == "text" else MESSAGE_32


def _nbytes(payload: str | bytes) -> int:
    return len(payload.encode()) if isinstance(payload, str) else len(payload)


def _check(got: object, want: str | bytes) -> None:
    if isinstance(got, (bytearray, memoryview)):
        got = bytes(got)
    if got != want:
        raise AssertionError(f"echo mismatch: got {type(got).__name__} of {len(got)}")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- blocking clients
# A blocking client is a connect function plus send/recv; one driver serves them all.


class Blocking:
    name = ""

    def connect(self, url: str) -> Any:
        raise NotImplementedError

    def send(self, ws: Any, data: str | bytes) -> None:
        ws.send(data)

    def recv(self, ws: Any) -> Any:
        return ws.recv()

    def close(self, ws: Any) -> None:
        ws.close()

    def throughput(self, url: str, workload: str, p: dict[str, Any]) -> Result:
        ws = self.connect(url)
        payload = _payload(workload)
        clock = Clock()
        if workload == "pipelined":
            for _ in range(WARMUP_PINGPONG):
                self.send(ws, payload)
                self.recv(ws)
            n = p["n"]
            clock.start()
            for _ in range(n):
                self.send(ws, payload)
            for _ in range(n - 1):
                self.recv(ws)
            last = self.recv(ws)
            clock.stop()
            _check(last, payload)
            self.close(ws)
            return clock.result(n, "msgs/s")
        warmup = WARMUP_PINGPONG if workload == "pingpong" else WARMUP_LARGE
        for _ in range(warmup):
            self.send(ws, payload)
            _check(self.recv(ws), payload)
        if workload == "pingpong":
            n = p["n"]
            clock.start()
            for _ in range(n):
                self.send(ws, payload)
                last = self.recv(ws)
            clock.stop()
            _check(last, payload)
            self.close(ws)
            return clock.result(n, "msgs/s")
        deadline = p["duration"]
        n = 0
        clock.start()
        while True:
            self.send(ws, payload)
            last = self.recv(ws)
            n += 1
            if time.perf_counter() - clock.t0 >= deadline:
                break
        clock.stop()
        _check(last, payload)
        self.close(ws)
        return clock.result(n, "MB/s", _nbytes(payload) / 1e6)

    def idle(self, url: str, p: dict[str, Any]) -> Result:
        first = self.connect(url)  # warm-up: imports and lazily built state are not per connection
        conns = [first]
        rss0, n, batch = _rss_kb(), p["n"], p["batch"]
        t0 = time.perf_counter()
        t_batch = 0.0
        try:
            for i in range(n):
                conns.append(self.connect(url))
                if i + 1 == batch:
                    t_batch = time.perf_counter() - t0
        except Exception as exc:  # the failure is the result
            return _idle_failure(exc, len(conns) - 1, n)
        return _idle_result(n, batch, t_batch, time.perf_counter() - t0, rss0)


def _idle_result(n: int, batch: int, t_batch: float, t_all: float, rss0: int) -> Result:
    time.sleep(1.0)  # idle for a moment: whatever a client does per connection has started
    rss1, threads = _rss_kb(), _threads()
    return {
        "value": (rss1 - rss0) * 1024 / n / 1000,
        "unit": "KB/conn",
        "count": n,
        "threads": threads,
        "fds": _fds(),
        "rss_kb_per_conn": (rss1 - rss0) * 1024 / n / 1000,
        "rss_total_mb": rss1 / 1024,
        "t_first_batch": t_batch,
        "batch": batch,
        "t_all": t_all,
    }


def _idle_failure(exc: BaseException, opened: int, n: int) -> Result:
    return {
        "ok": False,
        "error": f"{type(exc).__name__}: {exc}"[:300],
        "opened": opened,
        "count": n,
        "threads": _threads(),
        "fds": _fds(),
    }


class _OpenCounter:
    """Counts connections opened and failed, from whichever threads the handlers run on."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.ok = 0
        self.bad = 0
        self.errors: list[str] = []  # the first three

    def opened(self) -> None:
        with self.cond:
            self.ok += 1
            self.cond.notify_all()

    def failed(self, error: str) -> None:
        with self.cond:
            self.bad += 1
            if len(self.errors) < 3:
                self.errors.append(error)
            self.cond.notify_all()

    def wait_for(self, target: int) -> bool:
        """True once ``target`` connections opened with none failed."""
        with self.cond:
            settled = self.cond.wait_for(lambda: self.ok + self.bad >= target, timeout=TIMEOUT)
            return settled and not self.bad


def _idle_ramp(p: dict[str, Any], start_one: Callable[[], None], counter: _OpenCounter) -> Result:
    """Open one connection, then ``p["n"]`` more in batches of ``p["batch"]``, each batch
    waited for: the idle workload for clients whose connections open on threads of their own."""
    start_one()
    if not counter.wait_for(1):
        return _idle_failure(RuntimeError(str(counter.errors)), 0, p["n"])
    rss0, n, batch = _rss_kb(), p["n"], p["batch"]
    t0 = time.perf_counter()
    t_batch = 0.0
    done = 0
    try:
        while done < n:
            k = min(batch, n - done)
            for _ in range(k):
                start_one()
            done += k
            if not counter.wait_for(done + 1):
                raise RuntimeError(f"{counter.bad} failed: {counter.errors}")
            if done == batch:
                t_batch = time.perf_counter() - t0
    except Exception as exc:  # the failure is the result
        return _idle_failure(exc, counter.ok - 1, n)
    return _idle_result(n, batch, t_batch, time.perf_counter() - t0, rss0)


class WebsocketClient(Blocking):
    def connect(self, url: str) -> Any:
        import websocket

        return websocket.create_connection(url)

    def send(self, ws: Any, data: str | bytes) -> None:
        if isinstance(data, bytes):
            ws.send_binary(data)
        else:
            ws.send(data)


class Websockets(Blocking):
    def connect(self, url: str) -> Any:
        from websockets.sync.client import connect

        # __enter__ as a `with` block would (websockets 17 warns about a bare connect()).
        return connect(url, max_size=MAX_SIZE).__enter__()


class MesiboscriptRead(Blocking):
    """mesiboscript's blocking face: ``send()`` and ``read()`` from the main thread, no handler
    (the ArozOS port's loop); everything else as for websocket-client's loop."""

    def connect(self, url: str) -> Any:
        import mesiboscript

        ws = mesiboscript.WebSocket(url, max_size=MAX_SIZE)
        if not ws.upgrade(TIMEOUT):
            raise ConnectionError(f"did not open: {ws.last_error!r}")
        return ws

    def recv(self, ws: Any) -> Any:
        data = ws.read(TIMEOUT)
        if not isinstance(data, (str, bytes)):
            raise ConnectionError(f"read() returned {data!r}: {ws.last_error!r}")
        return data


# --------------------------------------------------------------------------- WebSocketApp


def websocket_app(url: str, workload: str, p: dict[str, Any]) -> Result:
    import websocket

    if workload == "idle":
        return _websocket_app_idle(url, p)
    if workload not in ("pingpong", "pipelined"):
        raise ValueError(f"websocket-client-app has no {workload} workload")
    payload = _payload(workload)
    clock = Clock()
    state = {"count": 0}
    opened = threading.Event()
    done = threading.Event()
    errors: list[str] = []
    n = p["n"]

    def on_open(ws: Any) -> None:
        if workload == "pingpong":
            ws.send(payload)
        else:
            opened.set()

    def on_message(ws: Any, message: Any) -> None:
        state["count"] += 1
        count = state["count"]
        if workload == "pingpong":
            if count == WARMUP_PINGPONG:
                clock.start()
            if count < WARMUP_PINGPONG + n:
                ws.send(payload)
            else:
                clock.stop()
                _check(message, payload)
                done.set()
                ws.close()
        elif count == n:
            clock.stop()
            _check(message, payload)
            done.set()

    def on_error(ws: Any, error: Any) -> None:
        errors.append(repr(error))
        done.set()
        opened.set()

    app = websocket.WebSocketApp(url, on_open=on_open, on_message=on_message, on_error=on_error)
    if workload == "pingpong":
        app.run_forever()
        if not done.is_set():
            raise RuntimeError(f"WebSocketApp stopped early: {errors}")
        return clock.result(n, "msgs/s")
    thread = threading.Thread(target=app.run_forever, daemon=True)
    thread.start()
    if not opened.wait(TIMEOUT) or errors:
        raise RuntimeError(f"WebSocketApp did not open: {errors}")
    clock.start()
    for _ in range(n):
        app.send(payload)
    if not done.wait(TIMEOUT) or errors:
        raise RuntimeError(f"WebSocketApp pipelined run failed: {errors}")
    app.close()
    thread.join(TIMEOUT)
    return clock.result(n, "msgs/s")


def _websocket_app_idle(url: str, p: dict[str, Any]) -> Result:
    import websocket

    counter = _OpenCounter()
    apps: list[Any] = []

    def start_one() -> None:
        app = websocket.WebSocketApp(
            url,
            on_open=lambda ws: counter.opened(),
            on_error=lambda ws, error: counter.failed(repr(error)),
        )
        apps.append(app)
        threading.Thread(target=app.run_forever, daemon=True).start()

    return _idle_ramp(p, start_one, counter)


# --------------------------------------------------------------------------- aiohttp


def aiohttp_client(url: str, workload: str, p: dict[str, Any]) -> Result:
    return asyncio.run(_aiohttp_main(url, workload, p))


async def _aiohttp_main(url: str, workload: str, p: dict[str, Any]) -> Result:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        if workload == "idle":
            return await _aiohttp_idle(session, url, p)
        ws = await session.ws_connect(url, max_msg_size=MAX_SIZE)
        payload = _payload(workload)
        if isinstance(payload, str):
            text = payload

            async def send() -> None:
                await ws.send_str(text)

        else:
            data = payload

            async def send() -> None:
                await ws.send_bytes(data)

        clock = Clock()
        warmup = WARMUP_PINGPONG if workload in ("pingpong", "pipelined") else WARMUP_LARGE
        for _ in range(warmup):
            await send()
            _check((await ws.receive()).data, payload)
        if workload == "pipelined":
            n = p["n"]
            clock.start()
            for _ in range(n):
                await send()
            for _ in range(n - 1):
                await ws.receive()
            last = (await ws.receive()).data
            clock.stop()
            result = clock.result(n, "msgs/s")
        elif workload == "pingpong":
            n = p["n"]
            clock.start()
            for _ in range(n):
                await send()
                last = (await ws.receive()).data
            clock.stop()
            result = clock.result(n, "msgs/s")
        else:
            n = 0
            clock.start()
            while True:
                await send()
                last = (await ws.receive()).data
                n += 1
                if time.perf_counter() - clock.t0 >= p["duration"]:
                    break
            clock.stop()
            result = clock.result(n, "MB/s", _nbytes(payload) / 1e6)
        _check(last, payload)
        await ws.close()
        return result


async def _aiohttp_idle(session: Any, url: str, p: dict[str, Any]) -> Result:
    conns = [await session.ws_connect(url)]
    rss0, n, batch = _rss_kb(), p["n"], p["batch"]
    t0 = time.perf_counter()
    t_batch = 0.0
    done = 0
    try:
        while done < n:
            k = min(batch, n - done)
            conns += await asyncio.gather(*(session.ws_connect(url) for _ in range(k)))
            done += k
            if done == batch:
                t_batch = time.perf_counter() - t0
    except Exception as exc:  # the failure is the result
        return _idle_failure(exc, len(conns) - 1, n)
    t_all = time.perf_counter() - t0
    await asyncio.sleep(0)  # let the loop settle before _idle_result's sleep
    return _idle_result(n, batch, t_batch, t_all, rss0)


# --------------------------------------------------------------------------- picows


def picows_client(url: str, workload: str, p: dict[str, Any]) -> Result:
    return asyncio.run(_picows_main(url, workload, p))


async def _picows_main(url: str, workload: str, p: dict[str, Any]) -> Result:
    """picows' own way: a listener whose ``on_ws_frame`` sends the next message (ping-pong and
    large echoes) or counts echoes (pipelined, all sent from a coroutine first)."""
    from picows import WSListener, WSMsgType, ws_connect

    if workload == "idle":
        raise ValueError("picows has no idle workload here")
    payload = _payload(workload)
    data = payload.encode() if isinstance(payload, str) else payload
    msg_type = WSMsgType.TEXT if isinstance(payload, str) else WSMsgType.BINARY
    clock = Clock()
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    warmup = WARMUP_PINGPONG if workload in ("pingpong", "pipelined") else WARMUP_LARGE
    n = p.get("n", 0)
    duration = p.get("duration", 0.0)
    state: dict[str, Any] = {"count": 0, "parts": []}

    class Listener(WSListener):  # type: ignore[misc,unused-ignore]  # Any without picows
        def on_ws_connected(self, transport: Any) -> None:
            transport.send(msg_type, data)

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type not in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
                return
            if not frame.fin:  # a fragmented echo: keep the parts (the server sends none)
                state["parts"].append(frame.get_payload_as_bytes())
                return
            if state["parts"]:
                got: Any = b"".join([*state["parts"], frame.get_payload_as_bytes()])
                state["parts"] = []
            elif msg_type == WSMsgType.TEXT:
                got = frame.get_payload_as_utf8_text()
            else:
                got = frame.get_payload_as_bytes()
            if isinstance(got, bytes) and msg_type == WSMsgType.TEXT:
                got = got.decode()
            state["count"] += 1
            count = state["count"]
            if workload == "pipelined":
                if count == warmup:
                    done.set_result(None)
                elif count == warmup + n:
                    clock.stop()
                    _check(got, payload)
                    done.set_result(None)
                elif count < warmup:
                    transport.send(msg_type, data)
                return
            if count == warmup:
                clock.start()
            elif count > warmup and (
                count - warmup >= n
                if workload == "pingpong"
                else time.perf_counter() - clock.t0 >= duration
            ):
                clock.stop()
                _check(got, payload)
                done.set_result(None)
                return
            transport.send(msg_type, data)

    transport, _ = await ws_connect(Listener, url, max_frame_size=MAX_SIZE)
    await asyncio.wait_for(done, TIMEOUT)
    if workload == "pipelined":
        done = loop.create_future()
        clock.start()
        for _ in range(n):
            transport.send(msg_type, data)
        await asyncio.wait_for(done, TIMEOUT)
    transport.disconnect()
    count = state["count"] - warmup
    if workload in ("pingpong", "pipelined"):
        return clock.result(count, "msgs/s")
    return clock.result(count, "MB/s", _nbytes(payload) / 1e6)


# --------------------------------------------------------------------------- mesiboscript


def mesiboscript_client(url: str, workload: str, p: dict[str, Any]) -> Result:
    import mesiboscript

    if workload == "idle":
        return _mesiboscript_idle(url, p)
    payload = _payload(workload)
    clock = Clock()
    state = {"count": 0}
    opened = threading.Event()
    done = threading.Event()
    failures: list[str] = []
    ws = mesiboscript.WebSocket(url, max_size=MAX_SIZE)
    n = p.get("n", 0)
    duration = p.get("duration", 0.0)

    if workload == "pipelined":

        def onopen() -> None:
            opened.set()

        def onmessage(event: Any) -> None:
            state["count"] += 1
            if state["count"] == n:
                clock.stop()
                _check(event.data, payload)
                done.set()

    else:
        warmup = WARMUP_PINGPONG if workload == "pingpong" else WARMUP_LARGE

        def onopen() -> None:
            opened.set()
            ws.send(payload)

        def onmessage(event: Any) -> None:
            state["count"] += 1
            count = state["count"]
            if count == warmup:
                clock.start()
            elif count > warmup and (
                count - warmup >= n
                if workload == "pingpong"
                else time.perf_counter() - clock.t0 >= duration
            ):
                clock.stop()
                _check(event.data, payload)
                done.set()
                ws.close()
                return
            ws.send(payload)

    def onclose(event: Any) -> None:
        if not done.is_set():
            failures.append(f"closed early: {event.code} {event.reason!r} {ws.last_error!r}")
        opened.set()
        done.set()

    ws.onopen = onopen
    ws.onmessage = onmessage
    ws.onclose = onclose
    if workload == "pipelined":
        if not opened.wait(TIMEOUT) or failures:
            raise RuntimeError(f"did not open: {failures}")
        clock.start()
        for _ in range(n):
            ws.send(payload)
        done.wait(TIMEOUT)
        ws.close()
    mesiboscript.run(TIMEOUT)
    if failures or not done.is_set():
        raise RuntimeError(f"mesiboscript run failed: {failures}")
    count = state["count"] if workload == "pipelined" else state["count"] - warmup
    if workload in ("pingpong", "pipelined"):
        return clock.result(count, "msgs/s")
    return clock.result(count, "MB/s", _nbytes(payload) / 1e6)


def _mesiboscript_idle(url: str, p: dict[str, Any]) -> Result:
    import mesiboscript

    counter = _OpenCounter()
    conns: list[Any] = []

    def start_one() -> None:
        ws = mesiboscript.WebSocket(url)
        ws.onopen = counter.opened
        ws.onclose = lambda event: counter.failed(f"{event.code} {ws.last_error!r}")
        conns.append(ws)

    return _idle_ramp(p, start_one, counter)


# --------------------------------------------------------------------------- raw socket floor


def raw_socket(url: str, workload: str, p: dict[str, Any]) -> Result:
    """The floor: what the server, the kernel and the machine cost with (almost) no client.

    One blocking socket, a fixed handshake, every frame masked once in advance and reused (a real
    client must mask each frame with a fresh key), echoes read into a preallocated buffer and not
    parsed. No WebSocket client can beat this; a ratio target above it cannot be met here.
    """
    import socket
    from urllib.parse import urlsplit

    from websocket import ABNF

    if workload == "idle":
        raise ValueError("the raw floor has no idle workload")
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        % (host.encode(), port)
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("server closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
    payload = _payload(workload)
    data = payload.encode() if isinstance(payload, str) else payload
    opcode = ABNF.OPCODE_TEXT if isinstance(payload, str) else ABNF.OPCODE_BINARY
    frame = ABNF(1, 0, 0, 0, opcode, 1, data).format()
    size = len(data)
    reply = size + (2 if size < 126 else 4 if size < 65536 else 10)
    buffer = bytearray(max(reply * 64, 1 << 16))
    view = memoryview(buffer)

    def receive(total: int) -> None:
        while total:
            got = sock.recv_into(view[: min(total, len(buffer))])
            if not got:
                raise ConnectionError("server closed the connection")
            total -= got

    clock = Clock()
    for _ in range(WARMUP_PINGPONG if workload in ("pingpong", "pipelined") else WARMUP_LARGE):
        sock.sendall(frame)
        receive(reply)
    if workload == "pipelined":
        n = p["n"]
        batch = frame * 1000
        clock.start()
        for _ in range(n // 1000):
            sock.sendall(batch)
        sock.sendall(frame * (n % 1000))
        receive(reply * n)
        clock.stop()
        result = clock.result(n, "msgs/s")
    elif workload == "pingpong":
        n = p["n"]
        clock.start()
        for _ in range(n):
            sock.sendall(frame)
            receive(reply)
        clock.stop()
        result = clock.result(n, "msgs/s")
    else:
        n = 0
        clock.start()
        while time.perf_counter() - clock.t0 < p["duration"]:
            sock.sendall(frame)
            receive(reply)
            n += 1
        clock.stop()
        result = clock.result(n, "MB/s", size / 1e6)
    sock.close()
    return result


# --------------------------------------------------------------------------- entry point

CLIENTS: dict[str, Callable[[str, str, dict[str, Any]], Result]] = {
    "mesiboscript": mesiboscript_client,
    "mesiboscript+speed": mesiboscript_client,
    "mesiboscript+wsaccel": mesiboscript_client,
    "mesiboscript-read": lambda u, w, p: _blocking(MesiboscriptRead(), u, w, p),
    "picows": picows_client,
    "websocket-client": lambda u, w, p: _blocking(WebsocketClient(), u, w, p),
    "websocket-client+wsaccel": lambda u, w, p: _blocking(WebsocketClient(), u, w, p),
    "websocket-client-app": websocket_app,
    "websockets": lambda u, w, p: _blocking(Websockets(), u, w, p),
    "aiohttp": aiohttp_client,
    "raw": raw_socket,
}
WORKLOADS = ("pingpong", "pipelined", "binary", "text", "idle")


def _aio_client(name: str) -> Callable[[str, str, dict[str, Any]], Result]:
    """The asyncio clients of issue 17 (``aio_workers.py``), imported when one is run."""

    def run(url: str, workload: str, p: dict[str, Any]) -> Result:
        import aio_workers

        return aio_workers.CLIENTS[name](url, workload, p)

    return run


for _name in ("mesiboscript-aio", "websockets-asyncio", "picows"):
    CLIENTS.setdefault(_name, _aio_client(_name))  # a picows client of issue 18 stays


def _blocking(client: Blocking, url: str, workload: str, p: dict[str, Any]) -> Result:
    if workload == "idle":
        return client.idle(url, p)
    return client.throughput(url, workload, p)


def main(argv: list[str]) -> int:
    # "mesiboscript@NAME" is a variant of the library (run.py --variant): the name only tells the
    # harness where to import it from (PYTHONPATH); the code that drives it is the same.
    client = argv[1].split("@", 1)[0] if len(argv) > 1 else ""
    if len(argv) != 5 or client not in CLIENTS or argv[2] not in WORKLOADS:
        print(__doc__, file=sys.stderr)
        return 2
    workload, url, params = argv[2], argv[3], json.loads(argv[4])
    raise_fd_limit()
    if "+wsaccel" in client:
        import wsaccel  # noqa: F401 - fail loudly if the variant cannot be measured
    if "+speed" in client:
        import websockets.speedups  # noqa: F401
    try:
        result = CLIENTS[client](url, workload, params)
        result.setdefault("ok", True)
    except Exception as exc:  # reported to the harness
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["python"] = sys.version.split()[0]
    print(json.dumps(result), flush=True)
    # Exit at once: open idle connections and library threads need no orderly shutdown here.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
