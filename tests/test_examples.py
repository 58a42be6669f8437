"""Each example runs as a script, with no network, against the servers it starts itself."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import mesiboscript
from mesiboscript.testing import EchoServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
RUN_TIMEOUT = 60.0


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    path = os.path.join(EXAMPLES, name)
    if not os.path.exists(path):
        pytest.skip(f"examples/{name} is not written yet")
    return subprocess.run(
        [sys.executable, path, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=RUN_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


def test_hifi_echo() -> None:
    result = run_example("hifi_echo.py")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [
        "Create WebSocket",
        "WebSocket accepted",
        "Ready state: 1",
        "Send ping",
        "Message received: ping",
        "Close WebSocket",
        "WebSocket closed",
        "Ready state: 3",
        "Close code: 1005 clean: True",
    ]


def test_hifi_echo_against_a_given_url() -> None:
    with EchoServer("ws") as server:
        result = run_example("hifi_echo.py", server.url)
    assert result.returncode == 0, result.stderr
    assert "Message received: ping" in result.stdout


def test_dirigible_chat() -> None:
    # The seed's server-side chat service, as written, driven by the seed's own client messages.
    result = run_example("dirigible_chat.py")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Tom received: Welcome Tom!",
        "Jerry received: Welcome Jerry!",
        "Jerry received: Hello Jerry!",
        "Tom received: Hi Tom!",
        'Jerry received: ["Tom","Jerry"]',
        "Open sessions on the server: 2",
        "Open sessions in this process: 4",
        "Open sessions after closing: 0",
    ]
    assert result.stderr.splitlines() == [
        "registered Tom",
        "registered Jerry",
        "send to Jerry",
        "send to Tom",
        'list: ["Tom","Jerry"]',
    ]


def test_arozos_loop() -> None:
    result = run_example("arozos_loop.py", "--delay", "0")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "WebSocket Opened!"
    assert lines[1:11] == [f"Sending: Hello World: {i}" for i in range(10)]
    assert lines[11] == "Web UI received 11 messages; last: 'Hello World: 9'"


def test_arozos_loop_against_an_echo_server() -> None:
    with EchoServer("ws") as server:
        result = run_example("arozos_loop.py", server.url, "--delay", "0")
    assert result.returncode == 0, result.stderr
    assert "Sending: Hello World: 9" in result.stdout


# Written by other engineers: each must run with no arguments and no network.
@pytest.mark.parametrize(
    ("name", "needs"), [("mesibo_socket.py", "Socket"), ("botmaster_client.py", "SocketIO")]
)
def test_other_examples_run(name: str, needs: str) -> None:
    if not hasattr(mesiboscript, needs):
        pytest.skip(f"mesiboscript.{needs} is not built yet")
    result = run_example(name)
    assert result.returncode == 0, result.stdout + result.stderr
