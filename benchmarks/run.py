"""Benchmark mesiboscript against the other Python WebSocket clients.

    python benchmarks/run.py [--quick] [--json out.json] [--reps N]
                             [--clients a,b] [--workloads a,b] [--python PY] [--pin MODE]

Starts the Node echo server in ``benchmarks/server`` (install it once with
``npm ci --prefix benchmarks/server``; this script installs nothing), pins it and the clients to
different CPUs with ``taskset`` where it exists, runs every workload for every client in a process
of its own (``benchmarks/workers.py``), interleaved, several repetitions each, and prints the
medians and the ratios to websocket-client's ``create_connection`` loop as a Markdown table.
``--json`` writes every sample, the medians, the ratios, the echo server's CPU use and the
environment. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SERVER_DIR = os.path.join(HERE, "server")
WORKER = os.path.join(HERE, "workers.py")
REFERENCE = "websocket-client"

# Display order; the reference first.
CLIENTS = (
    "websocket-client",
    "websocket-client+wsaccel",
    "websocket-client-app",
    "websockets",
    "aiohttp",
    "mesiboscript",
    "mesiboscript+speed",
    "mesiboscript-read",
    "picows",
    "raw",
)
SHORT = {
    "websocket-client": "websocket-client",
    "websocket-client+wsaccel": "w-c +wsaccel",
    "websocket-client-app": "w-c WebSocketApp",
    "websockets": "websockets (sync)",
    "aiohttp": "aiohttp",
    "mesiboscript": "mesiboscript",
    "mesiboscript+speed": "mesiboscript +speed",
    "mesiboscript+wsaccel": "mesiboscript +wsaccel",
    "mesiboscript-read": "mesiboscript read()",
    "picows": "picows",
    "raw": "raw socket (floor)",
}
# Which clients run which workload: WebSocketApp only where its callbacks are the natural way
# (the others are its create_connection loop again), websocket-client+wsaccel only where wsaccel
# changes anything (masking and UTF-8 checks of large messages).
WORKLOADS: dict[str, tuple[str, ...]] = {
    "pingpong": (
        "websocket-client",
        "websocket-client-app",
        "websockets",
        "aiohttp",
        "mesiboscript",
        "mesiboscript+speed",
        "mesiboscript-read",
        "picows",
        "raw",
    ),
    "pipelined": (
        "websocket-client",
        "websocket-client-app",
        "websockets",
        "aiohttp",
        "mesiboscript",
        "mesiboscript+speed",
        "picows",
        "raw",
    ),
    "binary": (
        "websocket-client",
        "websocket-client+wsaccel",
        "websockets",
        "aiohttp",
        "mesiboscript",
        "mesiboscript+speed",
        "mesiboscript-read",
        "picows",
        "raw",
    ),
    "text": (
        "websocket-client",
        "websocket-client+wsaccel",
        "websockets",
        "aiohttp",
        "mesiboscript",
        "mesiboscript+speed",
        "mesiboscript-read",
        "picows",
        "raw",
    ),
    "idle": ("websocket-client", "websocket-client-app", "websockets", "aiohttp", "mesiboscript"),
}
TITLES = {
    "pingpong": "32 B ping-pong, msgs/s",
    "pipelined": "{n} x 32 B pipelined, msgs/s",
    "binary": "1 MiB binary echo, MB/s",
    "text": "64 KiB text echo, MB/s",
}
# Issue 18's targets for mesiboscript (ratios to websocket-client; MB/s and idle in absolute terms).
TARGETS = {
    ("pingpong", "mesiboscript-read"): 1.3,
    ("pingpong", "mesiboscript"): 2.0,
    ("pipelined", "mesiboscript"): 6.2,
    ("binary", "mesiboscript"): 8.0,
}
ABSOLUTE_TARGETS = {("text", "mesiboscript"): 510.0}  # MB/s
IDLE_TARGETS = {"threads": 2, "rss_kb_per_conn": 6.0, "t_first_batch": 0.15}

FULL = {
    "reps": 5,
    "idle_reps": 3,
    "pingpong": {"n": 20000},
    "pipelined": {"n": 100000},
    "binary": {"duration": 1.0},
    "text": {"duration": 1.0},
    "idle": {"n": 10000, "batch": 1000},
}
# Traffic sent through the server before a workload's first repetition (see main()).
WARMUP: dict[str, dict[str, Any]] = {
    "pingpong": {"n": 5000},
    "pipelined": {"n": 50000},
    "binary": {"duration": 2.0},
    "text": {"duration": 2.0},
}
QUICK = {
    "reps": 3,
    "idle_reps": 1,
    "pingpong": {"n": 5000},
    "pipelined": {"n": 20000},
    "binary": {"duration": 0.3},
    "text": {"duration": 0.3},
    "idle": {"n": 2000, "batch": 1000},
}
# Import checks: a client is skipped, loudly, when its library is missing.
IMPORTS = {
    "mesiboscript": "import mesiboscript; mesiboscript.WebSocket",
    "websocket-client": "import websocket; websocket.create_connection",
    "websocket-client-app": "import websocket; websocket.WebSocketApp",
    "websockets": "import websockets.sync.client",
    "aiohttp": "import aiohttp",
    "raw": "import websocket",
    "picows": "import picows",
}
WORKER_TIMEOUT = 600.0

# The asyncio clients of issue 17 (benchmarks/aio_workers.py): mesiboscript.aio against
# websockets' asyncio client and picows' callbacks; aiohttp, above, is asyncio too.
ASYNCIO_CLIENTS = {
    "mesiboscript-aio": ("mesiboscript.aio", "import mesiboscript.aio"),
    "websockets-asyncio": ("websockets (asyncio)", "import websockets.asyncio.client"),
    "picows": ("picows", "import picows"),
}
for _name, (_short, _probe) in ASYNCIO_CLIENTS.items():
    if _name not in CLIENTS:
        CLIENTS = (*CLIENTS, _name)  # type: ignore[assignment]  # a longer tuple
        SHORT[_name] = _short
        IMPORTS[_name] = _probe
        for _workload in ("pingpong", "pipelined", "binary", "text"):
            WORKLOADS[_workload] += (_name,)


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the echo server


class EchoServer:
    """The Node echo server, pinned to its CPU, asked for its CPU use between runs."""

    def __init__(self, pin: list[str]) -> None:
        node = shutil.which("node")
        if node is None:
            raise SystemExit("benchmarks need Node.js (node) on PATH for the echo server")
        self.proc = subprocess.Popen(
            [*pin, node, os.path.join(SERVER_DIR, "echo.js")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.info = self._read()
        if self.info.get("event") != "listening":
            raise SystemExit(f"echo server did not start: {self.info}")
        self.url = f"ws://127.0.0.1:{self.info['port']}"

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"echo server exited with {self.proc.wait()}")
        result: dict[str, Any] = json.loads(line)
        return result

    def stats(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return self._read()

    def wait_idle(self, timeout: float = 30.0) -> dict[str, Any]:
        """Stats once the previous run's connections are all gone."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if stats["connections"] == 0 or time.monotonic() > deadline:
                return stats
            time.sleep(0.05)

    def stop(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            final = self._read()
        finally:
            self.proc.wait(10)
        return final


def cpu_seconds(before: dict[str, Any], after: dict[str, Any]) -> float:
    used = after["cpu_user_us"] + after["cpu_system_us"]
    return float(used - before["cpu_user_us"] - before["cpu_system_us"]) / 1e6


# --------------------------------------------------------------------------- environment


def check_server_installed() -> None:
    if not os.path.isdir(os.path.join(SERVER_DIR, "node_modules", "ws")):
        raise SystemExit(
            "The echo server's packages are not installed. Run once:\n\n"
            "    npm ci --prefix benchmarks/server\n\n"
            "(from the repository root; it installs ws, bufferutil and utf-8-validate into\n"
            "benchmarks/server/node_modules, nothing else)."
        )


def raise_fd_limit(needed: int) -> tuple[int, str]:
    """Raise RLIMIT_NOFILE to the hard limit (inherited by the server and the clients)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log(f"could not raise the file-descriptor limit: {exc}")
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    note = ""
    if soft < needed:
        note = (
            f"file-descriptor limit is {soft} (hard limit {hard}), below the ~{needed} that the "
            "idle workload needs per process: idle runs may fail early. Raise the hard limit "
            "(ulimit -Hn / limits.conf) or pass a smaller idle count with --quick."
        )
        log("WARNING:", note)
    return soft, note


def pinning(mode: str) -> tuple[list[str], list[str], str]:
    """taskset prefixes for the client and the server, and a description.

    ``split``: client and server on two different CPUs (neither steals the other's CPU time).
    ``same``: both on one CPU (no cross-CPU wake-ups; the server's CPU time counts against the
    client's). ``none``: the scheduler decides.
    """
    if mode == "none":
        return [], [], "not pinned (--pin none)"
    taskset = shutil.which("taskset")
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        cpus = list(range(os.cpu_count() or 1))
    if taskset is None:
        return [], [], "not pinned (no taskset on this machine)"
    if mode == "same":
        cpu = str(cpus[0])
        return [taskset, "-c", cpu], [taskset, "-c", cpu], f"client and server on CPU {cpu}"
    if len(cpus) < 2:
        return [], [], "not pinned (fewer than 2 CPUs)"
    client, server = cpus[0], cpus[1]
    return (
        [taskset, "-c", str(client)],
        [taskset, "-c", str(server)],
        f"client on CPU {client}, server on CPU {server} (taskset)",
    )


def probe(python: str, code: str, client: str = "") -> str | None:
    """None if `code` runs in `python`, else the last line of its error."""
    proc = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, env=worker_env(client), timeout=120
    )
    if proc.returncode == 0:
        return None
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit {proc.returncode}"


def available_clients(python: str, wanted: list[str]) -> tuple[list[str], dict[str, str]]:
    missing: dict[str, str] = {}
    cache: dict[tuple[str, str], str | None] = {}

    def check(code: str, client: str = "") -> str | None:
        variant = client.partition("@")[2]
        if (code, variant) not in cache:
            cache[code, variant] = probe(python, code, client)
        return cache[code, variant]

    for client in wanted:
        base = base_name(client).replace("+wsaccel", "").replace("+speed", "")
        error = check(IMPORTS[base.replace("-read", "")], client)
        if error is None and "+wsaccel" in client:
            error = check("import wsaccel")
            if error is not None:
                error += " (pip install wsaccel to measure it)"
        if error is None and "+speed" in client:
            error = check("import websockets.speedups")
            if error is not None:
                error += " (pip install 'mesiboscript[speed]' to measure it)"
        if error is not None:
            missing[client] = error
    return [c for c in wanted if c not in missing], missing


def versions(python: str) -> dict[str, str]:
    code = (
        "import json, importlib.metadata as m\n"
        "out = {}\n"
        "for d in ('mesiboscript', 'websocket-client', 'websockets', 'aiohttp', 'wsaccel'):\n"
        "    try: out[d] = m.version(d)\n"
        "    except m.PackageNotFoundError: out[d] = 'not installed'\n"
        "import sys; out['python'] = sys.version.split()[0]\n"
        "print(json.dumps(out))"
    )
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, env=worker_env())
    try:
        result: dict[str, str] = json.loads(proc.stdout)
    except ValueError:
        return {}
    return result


VARIANTS: dict[str, str] = {}  # --variant NAME=DIR: mesiboscript imported from DIR


def base_name(client: str) -> str:
    return client.split("@", 1)[0]


def worker_env(client: str = "") -> dict[str, str]:
    env = dict(os.environ)
    # The checkout's mesiboscript is the one measured, installed or not (or a variant's copy).
    root = VARIANTS.get(client.partition("@")[2], ROOT)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("PYTHONWARNINGS", None)
    return env


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except OSError:
        return "unknown"
    dirty = subprocess.run(
        ["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no", "mesiboscript"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    commit = out.stdout.strip() or "no commit"
    return commit + (" + uncommitted changes" if dirty.stdout.strip() else "")


# --------------------------------------------------------------------------- running


def run_one(
    python: str,
    pin: list[str],
    server: EchoServer,
    client: str,
    workload: str,
    params: dict[str, Any],
) -> dict[str, Any]:
    before = server.wait_idle()
    started = time.perf_counter()
    cmd = [*pin, python, WORKER, client, workload, server.url, json.dumps(params)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=worker_env(client), timeout=WORKER_TIMEOUT
        )
        lines = proc.stdout.strip().splitlines()
        try:
            result: dict[str, Any] = json.loads(lines[-1])
        except (IndexError, ValueError):
            err = (proc.stderr or proc.stdout).strip().splitlines()
            result = {"ok": False, "error": err[-1] if err else f"exit {proc.returncode}"}
        if proc.stderr.strip():
            result["stderr"] = proc.stderr.strip()[-2000:]
    except subprocess.TimeoutExpired:
        result = {"ok": False, "error": f"timed out after {WORKER_TIMEOUT:.0f} s"}
    result["wall"] = time.perf_counter() - started
    after = server.stats()
    result["server_cpu"] = cpu_seconds(before, after)
    if result.get("ok") and workload != "idle" and result.get("elapsed"):
        # An upper bound on the server's load during the measured window: all of its CPU time
        # in this run (connect and warm-up included) divided by the window.
        result["server_cpu_pct"] = 100.0 * result["server_cpu"] / result["elapsed"]
    return result


def short(client: str) -> str:
    base, _, variant = client.partition("@")
    return SHORT[base] + (f" @{variant}" if variant else "")


def fmt_value(value: float) -> str:
    if value >= 100_000:
        return f"{value / 1000:.0f}k"
    if value >= 10_000:
        return f"{value / 1000:.1f}k"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def summarise(
    samples: dict[str, dict[str, list[dict[str, Any]]]], clients: list[str]
) -> dict[str, Any]:
    """Medians per (workload, client) and ratios to the reference, paired by repetition."""
    summary: dict[str, Any] = {}
    for workload, per_client in samples.items():
        out: dict[str, Any] = {}
        ref = per_client.get(REFERENCE, [])
        for client in clients:
            runs = per_client.get(client)
            if not runs:
                continue
            ok = [r for r in runs if r.get("ok")]
            entry: dict[str, Any] = {"runs": len(runs), "ok": len(ok)}
            failed = [r for r in runs if not r.get("ok")]
            if failed:
                entry["error"] = failed[0].get("error", "?")
                entry["opened"] = statistics.median(r.get("opened", 0) for r in failed)
            if ok and workload == "idle":
                for key in ("threads", "rss_kb_per_conn", "t_first_batch", "t_all"):
                    entry[key] = statistics.median(r[key] for r in ok)
            elif ok:
                entry["median"] = statistics.median(r["value"] for r in ok)
                entry["min"] = min(r["value"] for r in ok)
                entry["max"] = max(r["value"] for r in ok)
                entry["unit"] = ok[0]["unit"]
                # Client CPU (all threads) per message (µs) or per MB (ms): less sensitive than
                # wall-clock rates to what else the machine runs; what an optimisation changes.
                scale = 1e6 if entry["unit"] == "msgs/s" else 1e3
                entry["cpu_per_op"] = statistics.median(
                    scale * r["cpu"] / (r["value"] * r["elapsed"]) for r in ok
                )
                pcts = [r["server_cpu_pct"] for r in ok if "server_cpu_pct" in r]
                if pcts:
                    entry["server_cpu_pct_median"] = statistics.median(pcts)
                pairs = [
                    a["value"] / b["value"]
                    for a, b in zip(runs, ref)
                    if a.get("ok") and b.get("ok") and b["value"] > 0
                ]
                if pairs:
                    entry["ratio"] = statistics.median(pairs)
            out[client] = entry
        summary[workload] = out
    return summary


def table(summary: dict[str, Any], clients: list[str], params: dict[str, Any]) -> str:
    shown = [c for c in clients if any(c in summary.get(w, {}) for w in summary)]
    header = ["workload", *(short(c) for c in shown)]
    rows: list[list[str]] = []
    for workload in ("pingpong", "pipelined", "binary", "text"):
        if workload not in summary:
            continue
        n = params[workload].get("n", 0)
        title = TITLES[workload].format(n=f"{n // 1000}k" if n >= 1000 else n)
        row = [title]
        for client in shown:
            entry = summary[workload].get(client)
            if entry is None:
                row.append("—")
            elif "median" not in entry:
                row.append("fails")
            elif "ratio" in entry:
                row.append(f"{entry['ratio']:.2f} ({fmt_value(entry['median'])})")
            else:
                row.append(fmt_value(entry["median"]))
        rows.append(row)
    if "idle" in summary:
        idle = summary["idle"]
        n, batch = params["idle"]["n"], params["idle"]["batch"]
        for key, title, fmt in (
            ("threads", f"{n:,} idle: threads", "{:.0f}"),
            ("rss_kb_per_conn", f"{n:,} idle: RSS per connection, KB", "{:.1f}"),
            ("t_first_batch", f"{n:,} idle: first {batch:,} connected, s", "{:.2f}"),
        ):
            row = [title]
            for client in shown:
                entry = idle.get(client)
                if entry is None:
                    row.append("—")
                elif key not in entry:
                    row.append(f"fails at {entry.get('opened', 0):,.0f}")
                else:
                    row.append(fmt.format(entry[key]))
            rows.append(row)
    return _markdown(header, rows)


def cpu_table(summary: dict[str, Any], clients: list[str]) -> str:
    """Client CPU per operation, medians: µs per message, ms per MB."""
    workloads = [w for w in ("pingpong", "pipelined", "binary", "text") if w in summary]
    shown = [c for c in clients if any(c in summary[w] for w in workloads)]
    header = ["client CPU (all threads)", *(short(c) for c in shown)]
    rows = []
    for workload in workloads:
        unit = "µs/msg" if workload in ("pingpong", "pipelined") else "ms/MB"
        row = [f"{workload}, {unit}"]
        for client in shown:
            entry = summary[workload].get(client, {})
            row.append(f"{entry['cpu_per_op']:.2f}" if "cpu_per_op" in entry else "—")
        rows.append(row)
    return _markdown(header, rows)


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join(lines)


def target_report(summary: dict[str, Any]) -> list[str]:
    lines = []
    for workload, per_client in summary.items():
        for client, entry in per_client.items():
            base = base_name(client)
            target = TARGETS.get((workload, base))
            if target is not None and "ratio" in entry:
                mark = "met" if entry["ratio"] >= target else "MISSED"
                lines.append(
                    f"  {workload:<9} {client:<26} ratio {entry['ratio']:6.2f}  "
                    f"target >= {target:<5} {mark}"
                )
            absolute = ABSOLUTE_TARGETS.get((workload, base))
            if absolute is not None and "median" in entry:
                mark = "met" if entry["median"] >= absolute else "MISSED"
                lines.append(
                    f"  {workload:<9} {client:<26} {entry['median']:6.0f} {entry['unit']}  "
                    f"target >= {absolute:<5} {mark}"
                )
            if workload != "idle" or base != "mesiboscript":
                continue
            for key, limit in IDLE_TARGETS.items():
                if key not in entry:
                    lines.append(f"  idle      {client:<26} {key}: failed ({entry.get('error')})")
                    continue
                mark = "met" if entry[key] <= limit else "MISSED"
                lines.append(
                    f"  idle      {client:<26} {key} {entry[key]:.2f}  target <= {limit}  {mark}"
                )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, smaller counts")
    parser.add_argument("--json", metavar="FILE", help="write samples, medians and ratios here")
    parser.add_argument("--reps", type=int, help="repetitions per client and workload")
    parser.add_argument("--clients", help="comma-separated subset of: " + ", ".join(CLIENTS))
    parser.add_argument("--workloads", help="comma-separated subset of: " + ", ".join(WORKLOADS))
    parser.add_argument("--python", default=sys.executable, help="interpreter for the clients")
    parser.add_argument(
        "--pin",
        choices=("split", "same", "none"),
        default="split",
        help="split: client and server on different CPUs (default); same: on one CPU; none",
    )
    parser.add_argument("--idle-n", type=int, help="idle connections (default 10000)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit with 1 if any mesiboscript run failed (a smoke test for CI)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        metavar="NAME=DIR",
        help="also measure the mesiboscript in DIR/mesiboscript as mesiboscript@NAME (A/B runs "
        "of a patch, interleaved with the rest); repeatable",
    )
    args = parser.parse_args(argv)

    plan = json.loads(json.dumps(QUICK if args.quick else FULL))
    if args.idle_n:
        plan["idle"]["n"] = args.idle_n
    reps = args.reps or plan["reps"]
    idle_reps = args.reps or plan["idle_reps"]
    workloads = args.workloads.split(",") if args.workloads else list(WORKLOADS)
    wanted = args.clients.split(",") if args.clients else list(CLIENTS)
    for name in workloads:
        if name not in WORKLOADS:
            parser.error(f"unknown workload {name!r}")
    for spec in args.variant or []:
        name, sep, path = spec.partition("=")
        if (
            not sep
            or not name.isidentifier()
            or not os.path.isdir(os.path.join(path, "mesiboscript"))
        ):
            parser.error(f"--variant wants NAME=DIR with DIR/mesiboscript, not {spec!r}")
        VARIANTS[name] = os.path.abspath(path)
        if not args.clients:
            wanted += [f"{c}@{name}" for c in CLIENTS if c.startswith("mesiboscript")]
    for name in wanted:
        base, _, variant = name.partition("@")
        if base not in CLIENTS or (variant and variant not in VARIANTS):
            parser.error(f"unknown client {name!r}")
        if variant and not base.startswith("mesiboscript"):
            parser.error(f"only mesiboscript has variants, not {name!r}")
    if REFERENCE not in wanted:
        wanted.insert(0, REFERENCE)  # ratios need the reference in the same run

    check_server_installed()
    fd_limit, fd_note = raise_fd_limit(plan["idle"]["n"] + 1000)
    client_pin, server_pin, pin_note = pinning(args.pin)
    clients, missing = available_clients(args.python, wanted)
    for client, why in missing.items():
        log(f"SKIPPED {client}: {why}")
    if REFERENCE not in clients:
        raise SystemExit(
            f"the reference client {REFERENCE} is not importable: {missing[REFERENCE]}"
        )

    server = EchoServer(server_pin)
    env = {
        "python": args.python,
        "versions": versions(args.python),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "pinning": pin_note,
        "fd_limit": fd_limit,
        "server": server.info,
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "argv": sys.argv,
    }
    log(
        f"echo server: node {server.info['node']}, ws {server.info['ws']}, "
        f"bufferutil {'native' if server.info['bufferutil'] else 'MISSING'}; {pin_note}"
    )
    log("versions:", ", ".join(f"{k} {v}" for k, v in env["versions"].items()))

    samples: dict[str, dict[str, list[dict[str, Any]]]] = {}
    try:
        for workload in workloads:
            runners = [c for c in clients if base_name(c) in WORKLOADS[workload]]
            n_reps = idle_reps if workload == "idle" else reps
            samples[workload] = {c: [] for c in runners}
            if workload in WARMUP:
                # Node's JIT and heap settle over the first seconds of a workload: a cold server
                # halved the large-message rates of whichever clients ran first. Not recorded.
                warm = "raw" if "raw" in clients else REFERENCE
                result = run_one(args.python, client_pin, server, warm, workload, WARMUP[workload])
                log(f"{workload:<9} server warm-up ({warm}): {result.get('ok') or result}")
            for rep in range(n_reps):
                # Interleave: every client once per repetition, in a rotating order.
                shift = rep % len(runners)
                for client in runners[shift:] + runners[:shift]:
                    result = run_one(
                        args.python, client_pin, server, client, workload, plan[workload]
                    )
                    samples[workload][client].append(result)
                    if result.get("ok") and workload == "idle":
                        shown = (
                            f"{result['threads']} threads, "
                            f"{result['rss_kb_per_conn']:.1f} KB/conn, "
                            f"first {result['batch']} in {result['t_first_batch']:.3f} s"
                        )
                    elif result.get("ok"):
                        shown = f"{fmt_value(result['value'])} {result['unit']}"
                    else:
                        shown = f"FAILED: {result.get('error')}"
                    log(f"{workload:<9} {rep + 1}/{n_reps} {client:<24} {shown}")
    finally:
        final = server.stop()
    wall = final["wall_us"] / 1e6
    server_cpu = (final["cpu_user_us"] + final["cpu_system_us"]) / 1e6

    summary = summarise(samples, clients)
    print()
    print(f"mesiboscript benchmarks — {env['date']}, commit {env['commit']}")
    print(
        f"Python {env['versions'].get('python', '?')} on {env['cpu']}; {pin_note}; "
        f"{reps} repetitions (idle: {idle_reps}), medians."
    )
    print(
        "Cells: ratio to websocket-client in the same repetition (median), then the median "
        "value; idle rows: medians."
    )
    print()
    print(table(summary, clients, plan))
    print()
    if any(w in summary for w in ("pingpong", "pipelined", "binary", "text")):
        print(cpu_table(summary, clients))
        print()
    loads = [
        (entry["server_cpu_pct_median"], workload, client)
        for workload, per_client in summary.items()
        for client, entry in per_client.items()
        if "server_cpu_pct_median" in entry
    ]
    if loads:
        pct, workload, client = max(loads)
        print(
            f"Echo server (Node, one thread): at most {pct:.0f} % of one CPU during a measured "
            f"window (median, {workload}/{client});"
        )
    print(
        f"over the whole run {server_cpu:.1f} s CPU in {wall:.0f} s "
        f"({100 * server_cpu / wall:.0f} %), reported by the server itself."
    )
    report = target_report(summary)
    if report:
        print("Targets (issue 18):")
        print("\n".join(report))
    for client, why in missing.items():
        print(f"Not measured: {client}: {why}")
    if fd_note:
        print("Note:", fd_note)

    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "environment": env,
                    "plan": plan,
                    "summary": summary,
                    "samples": samples,
                    "server_final": final,
                    "skipped": missing,
                },
                f,
                indent=1,
            )
        print(f"\nJSON: {args.json}")
    failed = [
        f"{workload}/{client}: {run.get('error')}"
        for workload, per_client in samples.items()
        for client, runs in per_client.items()
        for run in runs
        if client.startswith("mesiboscript") and not run.get("ok")
    ]
    if args.check and failed:
        print("FAILED mesiboscript runs:\n  " + "\n  ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
