"""Everything works after ``gevent.monkey.patch_all()`` (as under Locust): the I/O loop is then a
greenlet whose selector and wake-up socket are gevent's, so no OS thread blocks the hub.

Each test runs a script in a child process (monkey-patching is for the whole process); the echo
servers run here, unpatched.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from mesiboscript.testing import EchoServer

from .helpers import TIMEOUT, AsyncServers, closing_server, interruptible
from .test_socketio import ServerProcess, start_server

if importlib.util.find_spec("gevent") is None:  # not imported here: only the children patch
    pytest.skip("gevent is not installed (the test extra has it)", allow_module_level=True)

CLIENTS = """
from gevent import monkey

monkey.patch_all()

import os, signal, sys, threading, time

import gevent

import mesiboscript

ws_url, sock_url, sio_url = sys.argv[1:4]

# A greenlet that ticks every 10 ms: if anything blocked the hub, a gap would show.
ticks = []


def beat():
    while True:
        ticks.append(time.monotonic())
        gevent.sleep(0.01)


gevent.spawn(beat)


def user(n):
    ws = mesiboscript.WebSocket(ws_url)
    assert ws.upgrade(10)
    for i in range(50):
        ws.send(f"{n}-{i}")
        assert ws.read(10) == f"{n}-{i}"
    ws.close()
    assert ws.read(10) is False
    return n


users = [gevent.spawn(user, n) for n in range(20)]
gevent.joinall(users, timeout=30, raise_error=True)
print("websocket users", sorted(g.value for g in users) == list(range(20)))

# Handlers run on the loop's greenlet; a blocking read() with a timeout yields to the hub.
got = []
ws = mesiboscript.WebSocket(ws_url)
ws.onopen = lambda: ws.send("via handlers")
ws.onmessage = lambda event: (got.append(event.data), ws.close())
assert mesiboscript.run(10)
print("handlers", got, threading.current_thread() is threading.main_thread())

s = mesiboscript.Socket(sock_url)
s.ondata = lambda s, data: (got.append(data), s.close())
s.onconnect = lambda s: s.send(b"raw bytes")
s.open()
assert mesiboscript.run(10)
print("socket", got[-1])

sio = mesiboscript.SocketIO(sio_url)
acked = gevent.event.AsyncResult()
sio.emit("echo", "ack me", callback=lambda *args: acked.set(args))
print("socketio", acked.get(timeout=10))
sio.close()
assert sio.wait(10)

idle = mesiboscript.WebSocket(ws_url)
assert idle.upgrade(10)
print("read timeout", idle.read(0.3))
idle.close()
assert idle.read(10) is False

gaps = [b - a for a, b in zip(ticks, ticks[1:])]
print("hub never blocked", max(gaps) < 1.0, len(ticks) > 10)
print("signals not blocked", signal.pthread_sigmask(signal.SIG_BLOCK, []) == set())
if os.path.isdir("/proc/self/task"):
    print("OS threads", len(os.listdir("/proc/self/task")))
"""

HANDLER_EXIT = """
from gevent import monkey

monkey.patch_all()

import sys

import gevent

import mesiboscript

ws = mesiboscript.WebSocket(sys.argv[1])
ws.onopen = lambda: ws.send("x")
ws.onmessage = lambda event: sys.exit(3)
try:
    gevent.sleep(30)
finally:
    print("main code interrupted")
print("not reached")
"""


@pytest.fixture(scope="module")
def sio_server() -> Iterator[ServerProcess]:
    process = start_server("python-socketio")
    yield process
    process.stop()


def run_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 3,
    )


def test_everything_works_after_monkey_patching(sio_server: ServerProcess) -> None:
    with EchoServer("ws") as ws_server, EchoServer("sock") as sock_server:
        out = run_script(CLIENTS, ws_server.url, sock_server.url, sio_server.url)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    expected = [
        "websocket users True",
        "handlers ['via handlers'] True",
        "socket b'raw bytes'",
        "socketio ('ack me',)",
        "read timeout None",
        "hub never blocked True True",
        "signals not blocked True",
    ]
    if sys.platform == "linux":
        expected.append("OS threads 1")  # the loop, its wake-up and DNS run in greenlets
    assert lines == expected
    assert out.stderr == ""


def test_a_handlers_exit_ends_the_process_with_its_status() -> None:
    with EchoServer("ws") as server:
        out = run_script(HANDLER_EXIT, server.url)
    assert out.returncode == 3, out.stderr
    assert out.stdout == "main code interrupted\n"


CTRL_C = """
from gevent import monkey

monkey.patch_all()

import sys

import gevent

import mesiboscript

ws = mesiboscript.WebSocket(sys.argv[1])
ws.onclose = lambda event: print("closed", event.code, flush=True)
assert ws.upgrade(10)
print("open", flush=True)
gevent.sleep(30)
print("not reached")
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_closes_with_1001_under_gevent(servers: AsyncServers) -> None:
    """Before: the library's greenlets blocked SIGINT in the one OS thread, so Ctrl-C did
    nothing. Now it interrupts the main code and closes every connection with 1001."""
    server, codes, closed = closing_server(servers)
    try:
        proc = interruptible("-c", textwrap.dedent(CTRL_C), f"ws://127.0.0.1:{server.port}/")
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "open"
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=TIMEOUT)
        assert closed.wait(TIMEOUT)
    finally:
        servers.stop(server)
    assert codes == [1001]
    assert "closed 1001" in out, err
    assert "not reached" not in out
    assert proc.returncode == -signal.SIGINT, err
