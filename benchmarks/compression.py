"""permessage-deflate benchmarks: mesiboscript against websockets and aiohttp, all compressing.

    python benchmarks/compression.py [--reps 3] [--duration 1.0] [--idle-n 200] [--json out.json]

The server is Node's ``ws`` with ``perMessageDeflate`` (``threshold: 0``: it compresses every
echo) from ``tests/ws_node_server`` (``npm ci`` there, as ``.ci/steps/pre-21-ws-node.sh`` does).
Each (client, workload, repetition) runs in a fresh process, clients interleaved per repetition;
the tables give medians.

Workloads:

* ``json1k`` / ``json64k``: a JSON-like text message of 1 KiB / 64 KiB (records with ids, names
  and tags, as an API sends), echoed one at a time for ``--duration`` seconds: MB/s of payload
  (10^6 bytes, counted once per round trip) and the client's CPU per message (all its threads,
  ``time.process_time()`` over the measured window).
* ``idle``: ``--idle-n`` connections opened with compression negotiated, then one 1 KiB message
  echoed on each (so both directions' zlib objects exist), then idle: RSS growth per connection
  after the handshake only and after that one message.

Clients: ``mesiboscript`` (defaults: window 15, memLevel 8, as Chromium), ``mesiboscript-lean``
(``compression_options={"client_max_window_bits": 12, "server_max_window_bits": 12,
"mem_level": 5}``, websockets' own choice), ``mesiboscript-plain`` (``compression=None``: the same
server, nothing compressed), ``websockets`` (``websockets.sync.client.connect``, its default
compression; asyncio ``connect`` for idle) and ``aiohttp`` (``ws_connect(compress=15)``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SERVER = os.path.join(ROOT, "tests", "ws_node_server", "ws_echo_server.js")
CLIENTS = ("mesiboscript", "mesiboscript-lean", "mesiboscript-plain", "websockets", "aiohttp")
WORKLOADS = ("json1k", "json64k", "idle")
LEAN = {"client_max_window_bits": 12, "server_max_window_bits": 12, "mem_level": 5}


def json_message(size: int) -> str:
    """A JSON-like text of exactly ``size`` bytes: records as an API would send them (padded
    with trailing spaces, which JSON allows)."""
    records: list[dict[str, Any]] = []
    text = "[]"
    for i in range(size):
        record = {
            "id": i,
            "user": f"user-{i * 7919 % 10007}",
            "active": i % 3 == 0,
            "score": i * 1.5,
            "tags": ["alpha", "beta", "gamma"][: 1 + i % 3],
        }
        longer = json.dumps([*records, record])
        if len(longer) > size:
            break
        records.append(record)
        text = longer
    return text + " " * (size - len(text))


def rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


# --------------------------------------------------------------------------- workers


def worker(client: str, workload: str, url: str, duration: float, idle_n: int) -> dict[str, Any]:
    result: dict[str, Any]
    if workload == "idle":
        result = IDLE[client](url, idle_n)
    else:
        size = 1024 if workload == "json1k" else 64 * 1024
        result = ECHO[client](url, json_message(size), duration)
    return result


def _mesibo_options(client: str) -> dict[str, Any]:
    if client == "mesiboscript-lean":
        return {"compression_options": LEAN}
    if client == "mesiboscript-plain":
        return {"compression": None}
    return {}


def _measure(send_one: Any, wait_one: Any, msg: str, duration: float) -> dict[str, Any]:
    for _ in range(20):  # warm-up
        send_one(msg)
        wait_one()
    n = 0
    t0, c0 = time.perf_counter(), time.process_time()
    end = t0 + duration
    while True:
        send_one(msg)
        wait_one()
        n += 1
        if n % 8 == 0 and time.perf_counter() >= end:
            break
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"msgs": n, "mb_s": n * len(msg) / 1e6 / wall, "cpu_us_per_msg": cpu / n * 1e6}


def mesibo_echo(client: str) -> Any:
    def run(url: str, msg: str, duration: float) -> dict[str, Any]:
        from mesiboscript import WebSocket

        ws = WebSocket(url, max_size=1 << 24, **_mesibo_options(client))
        assert ws.upgrade(10)
        result = _measure(ws.send, lambda: ws.read(10), msg, duration)
        result["extensions"] = ws.extensions
        ws.close()
        return result

    return run


def websockets_echo(url: str, msg: str, duration: float) -> dict[str, Any]:
    from websockets.sync.client import connect

    with connect(url, max_size=1 << 24) as ws:
        result = _measure(ws.send, ws.recv, msg, duration)
        result["extensions"] = str(
            ws.response and ws.response.headers.get("Sec-WebSocket-Extensions")
        )
    return result


def aiohttp_echo(url: str, msg: str, duration: float) -> dict[str, Any]:
    import aiohttp

    async def main() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:  # noqa: SIM117 (Python 3.9)
            async with session.ws_connect(url, compress=15, max_msg_size=1 << 24) as ws:
                for _ in range(20):
                    await ws.send_str(msg)
                    await ws.receive()
                n = 0
                t0, c0 = time.perf_counter(), time.process_time()
                end = t0 + duration
                while True:
                    await ws.send_str(msg)
                    await ws.receive()
                    n += 1
                    if n % 8 == 0 and time.perf_counter() >= end:
                        break
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                return {
                    "msgs": n,
                    "mb_s": n * len(msg) / 1e6 / wall,
                    "cpu_us_per_msg": cpu / n * 1e6,
                    "extensions": f"compress={ws.compress}",
                }

    return asyncio.run(main())


def mesibo_idle(client: str) -> Any:
    def run(url: str, n: int) -> dict[str, Any]:
        from mesiboscript import WebSocket

        msg = json_message(1024)
        warm = WebSocket(url, **_mesibo_options(client))
        assert warm.upgrade(10)
        warm.send(msg)
        warm.read(10)
        base = rss_kb()
        conns = []
        for _ in range(n):
            conns.append(WebSocket(url, **_mesibo_options(client)))
        for ws in conns:
            assert ws.upgrade(30)
        opened = rss_kb()
        for ws in conns:
            ws.send(msg)
        for ws in conns:
            assert ws.read(30) == msg
        time.sleep(0.5)  # idle: let the I/O thread settle before reading RSS
        used = rss_kb()
        ext = conns[0].extensions
        for ws in [*conns, warm]:
            ws.close()
        return {
            "threads": threading.active_count(),
            "kb_per_conn_open": (opened - base) / n,
            "kb_per_conn_after_msg": (used - base) / n,
            "extensions": ext,
        }

    return run


def websockets_idle(url: str, n: int) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    msg = json_message(1024)

    async def main() -> dict[str, Any]:
        warm = await connect(url)
        await warm.send(msg)
        await warm.recv()
        base = rss_kb()
        conns = [await connect(url, max_size=1 << 24) for _ in range(n)]
        opened = rss_kb()
        for ws in conns:
            await ws.send(msg)
        for ws in conns:
            assert await ws.recv() == msg
        await asyncio.sleep(0.5)
        used = rss_kb()
        ext = str(conns[0].response and conns[0].response.headers.get("Sec-WebSocket-Extensions"))
        for ws in [*conns, warm]:
            await ws.close()
        return {
            "threads": threading.active_count(),
            "kb_per_conn_open": (opened - base) / n,
            "kb_per_conn_after_msg": (used - base) / n,
            "extensions": ext,
        }

    return asyncio.run(main())


def aiohttp_idle(url: str, n: int) -> dict[str, Any]:
    import aiohttp

    msg = json_message(1024)

    async def main() -> dict[str, Any]:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            warm = await session.ws_connect(url, compress=15)
            await warm.send_str(msg)
            await warm.receive()
            base = rss_kb()
            conns = [await session.ws_connect(url, compress=15) for _ in range(n)]
            opened = rss_kb()
            for ws in conns:
                await ws.send_str(msg)
            for ws in conns:
                assert (await ws.receive()).data == msg
            await asyncio.sleep(0.5)
            used = rss_kb()
            for ws in [*conns, warm]:
                await ws.close()
            return {
                "threads": threading.active_count(),
                "kb_per_conn_open": (opened - base) / n,
                "kb_per_conn_after_msg": (used - base) / n,
                "extensions": "compress=15",
            }

    return asyncio.run(main())


ECHO = {
    "mesiboscript": mesibo_echo("mesiboscript"),
    "mesiboscript-lean": mesibo_echo("mesiboscript-lean"),
    "mesiboscript-plain": mesibo_echo("mesiboscript-plain"),
    "websockets": websockets_echo,
    "aiohttp": aiohttp_echo,
}
IDLE = {
    "mesiboscript": mesibo_idle("mesiboscript"),
    "mesiboscript-lean": mesibo_idle("mesiboscript-lean"),
    "mesiboscript-plain": mesibo_idle("mesiboscript-plain"),
    "websockets": websockets_idle,
    "aiohttp": aiohttp_idle,
}


# --------------------------------------------------------------------------- the harness


def start_server() -> tuple[subprocess.Popen[str], str]:
    node = shutil.which("node")
    if node is None or not os.path.isdir(os.path.join(os.path.dirname(SERVER), "node_modules")):
        raise SystemExit("needs node and `npm ci` in tests/ws_node_server")
    proc = subprocess.Popen(
        [node, SERVER, json.dumps({"threshold": 0})], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    port = json.loads(proc.stdout.readline())["port"]
    return proc, f"ws://127.0.0.1:{port}/"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--idle-n", type=int, default=200)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--json")
    parser.add_argument("--worker", nargs=3, metavar=("CLIENT", "WORKLOAD", "URL"))
    args = parser.parse_args()
    if args.worker:
        client, workload, url = args.worker
        print(json.dumps(worker(client, workload, url, args.duration, args.idle_n)))
        return 0

    clients = args.clients.split(",")
    server, url = start_server()
    samples: dict[tuple[str, str], list[dict[str, Any]]] = {}
    try:
        for workload in args.workloads.split(","):
            for rep in range(args.reps):
                order = clients[rep % len(clients) :] + clients[: rep % len(clients)]
                for client in order:
                    out = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--duration",
                            str(args.duration),
                            "--idle-n",
                            str(args.idle_n),
                            "--worker",
                            client,
                            workload,
                            url,
                        ],
                        capture_output=True,
                        text=True,
                        timeout=600,
                    )
                    if out.returncode != 0:
                        print(f"{client} {workload}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                        continue
                    samples.setdefault((client, workload), []).append(json.loads(out.stdout))
    finally:
        server.terminate()
        server.wait()

    def med(client: str, workload: str, key: str) -> float:
        values = [s[key] for s in samples.get((client, workload), [])]
        return statistics.median(values) if values else float("nan")

    print(
        "| client | 1 KiB JSON MB/s | 1 KiB CPU µs/msg | 64 KiB JSON MB/s | 64 KiB CPU µs/msg "
        "| idle KB/conn (open) | idle KB/conn (after 1 msg) | agreed |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for c in clients:
        ext = next((s[0]["extensions"] for (cc, _w), s in samples.items() if cc == c and s), "")
        print(
            f"| {c} | {med(c, 'json1k', 'mb_s'):.1f} | {med(c, 'json1k', 'cpu_us_per_msg'):.0f} "
            f"| {med(c, 'json64k', 'mb_s'):.1f} | {med(c, 'json64k', 'cpu_us_per_msg'):.0f} "
            f"| {med(c, 'idle', 'kb_per_conn_open'):.1f} "
            f"| {med(c, 'idle', 'kb_per_conn_after_msg'):.1f} | {ext} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({f"{c}/{w}": s for (c, w), s in samples.items()}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
