"""mesiboscript.contrib.locust under real Locust: distributed (a master and two workers on
loopback) against the bundled echo server and a socket.io 4 server, and the failures a user
reports. Locust monkey-patches the process with gevent, so it only ever runs in children here.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesiboscript.testing import EchoServer

from .helpers import TIMEOUT, free_port
from .test_socketio import ServerProcess, start_server

# Not importorskip: importing locust would monkey-patch this process with gevent.
if importlib.util.find_spec("locust") is None:
    pytest.skip(
        "the locust extra is not installed (Locust needs Python 3.11+)", allow_module_level=True
    )

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = ROOT / "examples" / "locustfile.py"


@pytest.fixture(scope="module")
def sio_server() -> Iterator[ServerProcess]:
    process = start_server("socketio4")
    yield process
    process.stop()


def locust(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "locust", *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )


def finish(proc: subprocess.Popen[str], timeout: float) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"locust did not finish in time:\n{out}")
    return out


def stats(prefix: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(f"{prefix}_stats.csv", newline="") as f:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(f)}


def test_distributed_run_against_both_servers(sio_server: ServerProcess, tmp_path: Path) -> None:
    port = free_port()
    with EchoServer("ws") as echo:
        env = {"MESIBOSCRIPT_WS_URL": echo.url + "echo", "MESIBOSCRIPT_SIO_URL": sio_server.url}
        master = locust(
            "-f", str(LOCUSTFILE), "--master", "--headless", "--expect-workers", "2",
            "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
            "-u", "20", "-r", "20", "-t", "5s", "--csv", str(tmp_path / "run"), "--only-summary",
            env=env,
        )  # fmt: skip
        worker_args = ["-f", str(LOCUSTFILE), "--worker", "--master-host", "127.0.0.1"]
        worker_args += ["--master-port", str(port)]
        workers = [locust(*worker_args, env=env) for _ in range(2)]
        try:
            out = finish(master, TIMEOUT * 4)
        finally:
            worker_out = [finish(worker, TIMEOUT * 2) for worker in workers]
    print(out)  # the stats table, for the log
    assert master.returncode == 0, out
    assert "2 workers connected" in out
    assert all(worker.returncode == 0 for worker in workers), worker_out
    table = stats(tmp_path / "run")
    for key in [("WS", "/echo"), ("WS", "connect /echo"), ("SIO", "echo"), ("SIO", "connect /")]:
        assert int(table[key]["Request Count"]) > 0, key
    aggregated = table[("", "Aggregated")]
    assert int(aggregated["Request Count"]) > 100
    assert aggregated["Failure Count"] == "0", out


FAILURES = """
from locust import User, constant, task

from mesiboscript.contrib.locust import SocketIOUser, WebSocketUser

WS, SIO, REFUSED = {ws!r}, {sio!r}, {refused!r}


class Failing(WebSocketUser):
    host = WS
    wait_time = constant(0.05)
    fixed_count = 1

    def on_start(self):
        assert not self.connect(REFUSED, name="refused")
        assert self.request("before connect", name="unconnected") is None
        assert self.connect()

    @task
    def fail(self):
        assert self.request("a", name="ok") == "a"
        never = lambda m: m == "never"
        assert self.request(b"b", match=never, timeout=0.1, name="no match") is None
        self.connect(WS + "close/4000")
        assert self.request("x", name="closed") is None
        self.connect()


class SocketIOFailing(SocketIOUser):
    host = SIO
    wait_time = constant(0.05)
    fixed_count = 1

    def on_start(self):
        assert not self.connect(SIO + "/private", name="refused")
        assert self.connect()

    @task
    def fail(self):
        assert self.request("echo", 1, 2, name="two") == (1, 2)
        assert self.request("nobody-listens", timeout=0.1) is None
        assert self.request("message", {{"t": 1}}, reply="message") == {{"t": 1}}
        assert self.request(
            "echo", "a", reply="echo", match=lambda *args: args == ("b",), timeout=0.1,
            name="no match",
        ) is None
        self.request("disconnect-me", timeout=5, name="dropped")
        self.connect()
"""


def test_failures_are_reported(sio_server: ServerProcess, tmp_path: Path) -> None:
    with EchoServer("ws") as echo:
        script = FAILURES.format(
            ws=echo.url, sio=sio_server.url, refused=f"ws://127.0.0.1:{free_port()}/"
        )
        (tmp_path / "failing.py").write_text(textwrap.dedent(script))
        proc = locust(
            "-f", str(tmp_path / "failing.py"), "--headless", "-u", "2", "-r", "2", "-t", "2s",
            "--csv", str(tmp_path / "run"), "--only-summary", "--exit-code-on-error", "0",
            env={},
        )  # fmt: skip
        out = finish(proc, TIMEOUT * 3)
    assert proc.returncode == 0, out
    assert "Traceback" not in out, out
    table = stats(tmp_path / "run")

    def count(type: str, name: str) -> tuple[int, int]:
        row = table[(type, name)]
        return int(row["Request Count"]) > 0, int(row["Failure Count"]) > 0

    assert count("WS", "refused") == (True, True)
    assert count("WS", "unconnected") == (True, True)
    assert count("WS", "ok") == (True, False)
    assert count("WS", "no match") == (True, True)
    assert count("WS", "closed") == (True, True)
    assert count("SIO", "refused") == (True, True)
    assert count("SIO", "two") == (True, False)
    assert count("SIO", "nobody-listens") == (True, True)
    assert count("SIO", "message") == (True, False)
    assert count("SIO", "no match") == (True, True)
    assert count("SIO", "dropped") == (True, True)
