"""How many concurrent users one Locust process sustains (issue 17): mesiboscript's WebSocketUser
against locust-plugins' websocket user (websocket-client, one receiving greenlet per user).

    python benchmarks/locust_users.py                      # 100 ... 3200 users, 15 s each
    python benchmarks/locust_users.py --users 200,800 --duration 10

Each user sends a 32-byte text message once a second (``constant_throughput(1)``) and waits for
its echo from ``benchmarks/server/echo.js`` (Node; ``npm ci --prefix benchmarks/server``). One
headless Locust process (what a ``--worker`` runs: one gevent hub on one CPU) is pinned to CPU 0,
the server to CPU 1. A level is *sustained* when the process delivers at least 95 % of the
requests asked for (N per second) with no failure; the table gives the achieved rate, the median
and 95th percentile response times and the Locust process's CPU use.

locust-plugins dropped its websocket user in 5.0; ``pip install 'locust-plugins[websocket]==4.7.0'``
measures it (its ``SocketIOUser``: ``websocket.create_connection`` plus a greenlet that reads and
hands each message to ``on_message``). Without it, that column is skipped and named.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

LOCUSTFILES = {
    "mesiboscript": """
        import uuid
        from locust import constant_throughput, task
        from mesiboscript.contrib.locust import WebSocketUser

        class Echo(WebSocketUser):
            wait_time = constant_throughput(1)

            def on_start(self):
                self.connect()

            @task
            def echo(self):
                text = uuid.uuid4().hex
                self.request(text, name="echo", match=lambda message: message == text)
        """,
    "locust-plugins": """
        import time, uuid
        import gevent.event
        from locust import constant_throughput, task
        from locust_plugins.users.socketio import SocketIOUser

        class Echo(SocketIOUser):
            # locust-plugins' websocket user: create_connection + a receiving greenlet that hands
            # each message to on_message. The round trip is timed the way its docs suggest.
            wait_time = constant_throughput(1)

            def on_start(self):
                self.waiting = None
                self.connect(self.host)

            def on_message(self, message):
                if self.waiting is not None and message == self.waiting[0]:
                    self.waiting[1].set()

            @task
            def echo(self):
                text = uuid.uuid4().hex
                done = gevent.event.Event()
                self.waiting = (text, done)
                started = time.perf_counter()
                self.ws.send(text)
                ok = done.wait(30)
                self.environment.events.request.fire(
                    request_type="WS", name="echo",
                    response_time=(time.perf_counter() - started) * 1000,
                    response_length=len(text), context=self.context(),
                    exception=None if ok else TimeoutError("no echo"),
                )
        """,
}
IMPORTS = {
    "mesiboscript": "import locust, mesiboscript.contrib.locust",
    "locust-plugins": "import locust, websocket, locust_plugins.users.socketio",
}


def start_server(cpu: str) -> tuple[subprocess.Popen[str], int]:
    if not os.path.isdir(os.path.join(HERE, "server", "node_modules")):
        sys.exit("run `npm ci --prefix benchmarks/server` first")
    cmd = ["node", os.path.join(HERE, "server", "echo.js")]
    if cpu and shutil.which("taskset"):
        cmd = ["taskset", "-c", cpu, *cmd]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(json.loads(proc.stdout.readline())["port"])
    return proc, port


def run_level(client: str, users: int, duration: float, url: str, cpu: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        locustfile = os.path.join(tmp, "locustfile.py")
        with open(locustfile, "w") as f:
            f.write(textwrap.dedent(LOCUSTFILES[client]))
        # Spawn fast, then measure only the last `duration` seconds: --reset-stats after spawning.
        cmd = [
            sys.executable, "-m", "locust", "-f", locustfile, "--headless", "--host", url,
            "-u", str(users), "-r", str(max(50, users // 2)), "-t", f"{duration + 3:.0f}s",
            "--reset-stats", "--csv", os.path.join(tmp, "run"), "--only-summary",
            "--exit-code-on-error", "0", "--loglevel", "WARNING",
        ]  # fmt: skip
        if cpu and shutil.which("taskset"):
            cmd = ["taskset", "-c", cpu, *cmd]
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        if proc.returncode != 0:
            return {"ok": False, "error": (proc.stderr or proc.stdout).strip()[-300:]}
        with open(os.path.join(tmp, "run_stats.csv"), newline="") as f:
            rows = {row["Name"]: row for row in csv.DictReader(f)}
    row = rows.get("echo") or rows["Aggregated"]
    requests = int(row["Request Count"])
    failures = int(row["Failure Count"])
    rps = float(row["Requests/s"])
    return {
        "ok": True,
        "users": users,
        "rps": rps,
        "requests": requests,
        "failures": failures,
        "p50": float(row["50%"] or 0),
        "p95": float(row["95%"] or 0),
        "sustained": failures == 0 and rps >= 0.95 * users,
        "warnings": [line for line in proc.stderr.splitlines() if "CPU usage" in line][:1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="100,200,400,800,1600,3200")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--clients", default=",".join(LOCUSTFILES))
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    locust_cpu, server_cpu = ("0", "1") if cpus >= 2 else ("", "")
    clients = []
    for client in args.clients.split(","):
        probe = subprocess.run([sys.executable, "-c", IMPORTS[client]], capture_output=True)
        if probe.returncode:
            print(f"{client}: not installed, skipped", file=sys.stderr)
        else:
            clients.append(client)
    server, port = start_server(server_cpu)
    url = f"ws://127.0.0.1:{port}/"
    results: dict[str, list[dict[str, Any]]] = {c: [] for c in clients}
    try:
        for users in [int(u) for u in args.users.split(",")]:
            for client in clients:
                # os.times() counts finished children: the difference is this run's CPU.
                before = os.times()
                result = run_level(client, users, args.duration, url, locust_cpu)
                after = os.times()
                if result["ok"]:
                    cpu = after.children_user + after.children_system
                    cpu -= before.children_user + before.children_system
                    result["cpu_seconds"] = cpu
                results[client].append(result)
                print(client, users, json.dumps(result), file=sys.stderr, flush=True)
    finally:
        server.terminate()
        server.wait()
    print("| users | " + " | ".join(clients) + " |")
    print("|---|" + "---|" * len(clients))
    levels = sorted({r["users"] for rs in results.values() for r in rs if r["ok"]})
    for users in levels:
        cells = []
        for client in clients:
            r = next((r for r in results[client] if r.get("users") == users), None)
            if r is None:
                cells.append("failed")
                continue
            mark = "yes" if r["sustained"] else "**no**"
            cells.append(
                f"{mark}: {r['rps']:.0f} req/s, p50 {r['p50']:.0f} ms, p95 {r['p95']:.0f} ms, "
                f"{r['failures']} failed, CPU {r['cpu_seconds']:.1f} s"
            )
        print(f"| {users} | " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
