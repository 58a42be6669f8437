"""Soak: many connect/close cycles and many echoed messages, then check nothing leaked.

An echo server (the ``websockets`` library's asyncio server) runs in a child process, so it uses the
other CPU and is not in the measured process. This process then runs, with ``mesiboscript``:

1. a warm-up (a tenth of the work), after which threads, file descriptors and RSS are recorded;
2. ``--cycles`` connect/open/close cycles, ``--concurrency`` at a time;
3. ``--messages`` messages echoed over ``--connections`` connections, each keeping ``--window``
   messages in flight (the next one is sent from ``onmessage``), every echo checked;

and fails unless, once every connection has closed, the thread and descriptor counts are back to
their warm-up values and RSS grew by less than ``--rss-margin`` MiB. Figures are printed as it goes.

    python tests/soak/soak.py                      # the full run: 10 000 cycles, 1 000 000 messages
    python tests/soak/soak.py --cycles 500 --messages 20000
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import threading
import time
from typing import Any, Callable

SERVER_CODE = """
import asyncio, sys
try:
    from websockets.asyncio.server import serve
except ImportError:  # websockets < 13
    from websockets import serve

async def echo(ws, *_):
    async for message in ws:
        await ws.send(message)

async def main():
    async with serve(echo, "127.0.0.1", 0, max_size=None, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(port, flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)  # run until the parent goes away

asyncio.run(main())
"""


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def settle(probe: Callable[[], int], target: int, timeout: float = 10.0) -> int:
    """Wait until ``probe()`` is at most ``target`` (sockets close on the I/O thread)."""
    deadline = time.monotonic() + timeout
    value = probe()
    while value > target and time.monotonic() < deadline:
        time.sleep(0.05)  # polling process-wide counters that no event reports
        value = probe()
    return value


class Failure(Exception):
    pass


def run_cycles(url: str, count: int, concurrency: int, timeout: float) -> float:
    """Open and close ``count`` connections, ``concurrency`` at a time; return the seconds taken."""
    from mesiboscript import WebSocket

    lock = threading.Lock()
    done = threading.Event()
    state = {"started": 0, "finished": 0, "failed": 0}
    errors: list[str] = []

    def start_one() -> None:
        ws = WebSocket(url)

        def onopen() -> None:
            ws.close(1000)

        def onclose(event: Any) -> None:
            with lock:
                state["finished"] += 1
                if not (event.wasClean and event.code == 1000):
                    state["failed"] += 1
                    if len(errors) < 5:
                        errors.append(
                            f"close {event.code} clean={event.wasClean}: {ws.last_error!r}"
                        )
                more = state["started"] < count
                if more:
                    state["started"] += 1
                if state["finished"] == count:
                    done.set()
            if more:
                start_one()  # from inside a handler, as a script would

        ws.onopen = onopen
        ws.onclose = onclose

    started = time.monotonic()
    with lock:
        first = min(concurrency, count)
        state["started"] = first
    for _ in range(first):
        start_one()
    if not done.wait(timeout):
        raise Failure(f"cycles: only {state['finished']}/{count} closed within {timeout:.0f}s")
    if state["failed"]:
        raise Failure(f"cycles: {state['failed']} did not close cleanly, e.g. {errors}")
    return time.monotonic() - started


def run_messages(url: str, count: int, connections: int, window: int, timeout: float) -> float:
    """Echo ``count`` messages over ``connections`` pipelined connections; return the seconds."""
    from mesiboscript import WebSocket

    per_conn = [
        count // connections + (1 if i < count % connections else 0) for i in range(connections)
    ]
    closed = threading.Semaphore(0)
    problems: list[str] = []
    sockets = []

    def payload(conn: int, seq: int) -> str | bytes:
        text = f"{conn:04d}:{seq:010d}:" + "x" * 16
        return text if seq % 2 == 0 else text.encode("ascii")

    def make(conn: int, quota: int) -> None:
        ws = WebSocket(url)
        counters = {"sent": 0, "received": 0}

        def send_next() -> None:
            ws.send(payload(conn, counters["sent"]))
            counters["sent"] += 1

        def onopen() -> None:
            for _ in range(min(window, quota)):
                send_next()

        def onmessage(event: Any) -> None:
            expected = payload(conn, counters["received"])
            if event.data != expected:
                problems.append(f"conn {conn}: got {event.data!r}, expected {expected!r}")
                ws.close(4000, "mismatch")
                return
            counters["received"] += 1
            if counters["sent"] < quota:
                send_next()
            elif counters["received"] == quota:
                ws.close(1000)

        def onclose(event: Any) -> None:
            if counters["received"] != quota or not event.wasClean:
                problems.append(
                    f"conn {conn}: {counters['received']}/{quota} echoed, close {event.code}"
                    f" clean={event.wasClean}: {ws.last_error!r}"
                )
            closed.release()

        ws.onopen = onopen
        ws.onmessage = onmessage
        ws.onclose = onclose
        sockets.append(ws)

    started = time.monotonic()
    for conn, quota in enumerate(per_conn):
        make(conn, quota)
    deadline = started + timeout
    for _ in per_conn:
        if not closed.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise Failure(f"messages: not finished within {timeout:.0f}s")
    if problems:
        raise Failure("messages: " + "; ".join(problems[:5]))
    sockets.clear()
    return time.monotonic() - started


def snapshot() -> tuple[int, int, float]:
    gc.collect()
    return threading.active_count(), fd_count(), rss_mib()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=8, help="cycles in flight at once")
    parser.add_argument("--connections", type=int, default=8, help="connections for messages")
    parser.add_argument("--window", type=int, default=32, help="messages in flight per connection")
    parser.add_argument("--rss-margin", type=float, default=16.0, help="MiB of allowed RSS growth")
    parser.add_argument("--timeout", type=float, default=540.0, help="seconds for each phase")
    args = parser.parse_args(argv)

    import mesiboscript
    from mesiboscript import getOpenSessions

    server = subprocess.Popen(
        [sys.executable, "-c", SERVER_CODE], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline() or b"0")
        if not port:
            raise Failure("the echo server did not start")
        url = f"ws://127.0.0.1:{port}/"
        print(
            f"soak: mesiboscript {mesiboscript.__version__} on Python {sys.version.split()[0]},"
            f" echo server pid {server.pid} at {url}",
            flush=True,
        )
        before = snapshot()
        print(
            f"soak: start: {before[0]} threads, {before[1]} fds, {before[2]:.1f} MiB RSS",
            flush=True,
        )

        warm_cycles, warm_messages = max(1, args.cycles // 10), max(1, args.messages // 10)
        run_cycles(url, warm_cycles, args.concurrency, args.timeout)
        run_messages(url, warm_messages, args.connections, args.window, args.timeout)
        # The I/O thread and its wake-up descriptors now exist; everything else has closed.
        threads0, fds0, rss0 = snapshot()
        print(
            f"soak: after warm-up ({warm_cycles} cycles, {warm_messages} messages):"
            f" {threads0} threads, {fds0} fds, {rss0:.1f} MiB RSS",
            flush=True,
        )

        took = run_cycles(url, args.cycles, args.concurrency, args.timeout)
        print(
            f"soak: {args.cycles} connect/close cycles in {took:.1f}s"
            f" ({args.cycles / took:.0f}/s, {args.concurrency} at a time)",
            flush=True,
        )
        took = run_messages(url, args.messages, args.connections, args.window, args.timeout)
        print(
            f"soak: {args.messages} messages echoed in {took:.1f}s ({args.messages / took:.0f}/s"
            f" over {args.connections} connections, window {args.window})",
            flush=True,
        )

        threads1 = settle(threading.active_count, threads0)
        fds1 = settle(fd_count, fds0)
        _, _, rss1 = snapshot()
        still_open = len(getOpenSessions())
        print(
            f"soak: end: {threads1} threads, {fds1} fds, {rss1:.1f} MiB RSS"
            f" ({rss1 - rss0:+.1f} MiB since warm-up), {still_open} open sessions",
            flush=True,
        )
        failures = []
        if threads1 > threads0:
            names = sorted(t.name for t in threading.enumerate())
            failures.append(f"threads leaked: {threads0} -> {threads1} ({names})")
        if fds1 > fds0:
            failures.append(f"file descriptors leaked: {fds0} -> {fds1}")
        if rss1 - rss0 > args.rss_margin:
            failures.append(f"RSS grew {rss1 - rss0:.1f} MiB (> {args.rss_margin} MiB)")
        if still_open:
            failures.append(f"{still_open} sessions still open")
        if failures:
            raise Failure("; ".join(failures))
    except Failure as exc:
        print(f"soak: FAILED: {exc}", flush=True)
        return 1
    finally:
        assert server.stdin is not None
        server.stdin.close()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    print("soak: OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
