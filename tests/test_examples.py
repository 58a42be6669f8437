"""Each example runs as a script, with no network, against the servers it starts itself."""

from __future__ import annotations

import ast
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
from typing import Any, Optional

import pytest

import mesiboscript
from mesiboscript.testing import EchoServer

from .helpers import TIMEOUT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
RUN_TIMEOUT = 60.0


def run_example(
    name: str, *args: str, env: Optional[dict[str, str]] = None
) -> subprocess.CompletedProcess[str]:
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
        env=env,
    )


SEEDS = os.path.join(ROOT, "tests", "seeds")


@pytest.mark.parametrize(
    ("example", "seed"),
    [
        ("hifi_echo.py", "hifi_websocket_echo.js"),
        ("mesibo_socket.py", "mesibo_socket_example.js"),
        ("dirigible_chat.py", "dirigible_chat_service.js"),
        ("arozos_loop.py", "arozos_websocket_test.js"),
        ("botmaster_client.py", "botmaster_client_app.js"),
    ],
)
def test_each_example_quotes_its_seed_exactly(example: str, seed: str) -> None:
    # Before: the Mesibo docstring called its own variant "the original"; others paraphrased.
    with open(os.path.join(EXAMPLES, example), encoding="utf-8") as f:
        doc = ast.get_docstring(ast.parse(f.read()), clean=False) or ""
    with open(os.path.join(SEEDS, seed), encoding="utf-8") as f:
        code = f.read()
    quoted = "\n".join(("    " + line) if line else "" for line in code.rstrip("\n").split("\n"))
    assert quoted in doc


def test_hifi_echo() -> None:
    # The seed's output; readyState prints as 1 and 3 on every Python (3.9: ReadyState.OPEN).
    result = run_example("hifi_echo.py")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [
        "Create WebSocket",
        "WebSocket opened",
        "Ready state = 1",
        "Send a test message",
        "Message received: Test message",
        "Close WebSocket",
        "WebSocket closed",
        "Ready state = 3",
    ]


def test_hifi_echo_against_a_given_url() -> None:
    with EchoServer("ws") as server:
        result = run_example("hifi_echo.py", server.url)
    assert result.returncode == 0, result.stderr
    assert "Message received: Test message" in result.stdout


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


def test_arozos_onerror_logs_error_message() -> None:
    # The ArozOS front-end does log(error.message); before, .message raised AttributeError.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_example("arozos_loop.py", f"ws://127.0.0.1:{port}/", "--delay", "0")
    assert result.returncode == 1
    assert "WebSocket error: Connection refused" in result.stdout.splitlines()
    assert "WebSocket Upgrade Failed" in result.stdout


def test_mesibo_socket_prints_text_through_a_one_parameter_ondata() -> None:
    # The seed's s.ondata = function(s) { print(s); }: before, each chunk logged a TypeError and
    # the script printed nothing but exited 0.
    result = run_example("mesibo_socket.py")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "connected"
    assert lines[1] == "HTTP/1.0 200 OK"
    assert "Hello from the local server" in lines
    assert "b'" not in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("local_bot", ["node", "python"])
def test_botmaster_client_with_no_url_starts_a_local_bot(local_bot: str) -> None:
    # Before: with no arguments it printed its help. "python": no node on PATH, so the
    # python-socketio stand-in answers.
    env = None
    if local_bot == "node":
        if shutil.which("node") is None or not os.path.isdir(
            os.path.join(ROOT, "tests", "socketio_servers", "node_modules", "botmaster-socket.io")
        ):
            pytest.skip("node or the npm packages of tests/socketio_servers are missing")
    else:
        env = {**os.environ, "PATH": os.path.dirname(sys.executable)}
    result = run_example("botmaster_client.py", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["Hey there botmaster!", "How are you?"]
    kind = "Botmaster 3" if local_bot == "node" else "python-socketio"
    assert kind in result.stderr


def test_a_real_botmaster_ignores_the_seed_s_string_and_answers_the_object() -> None:
    # The seed sends socket.send(JSON.stringify({text})): botmaster-socket.io rejects a string
    # (no reply); {message: {text}} is answered. Replies come in order, so the first reply
    # being the object's shows the string got none.
    from .test_socketio import node_server

    bot = node_server("botmaster_echo_bot.js")
    try:
        replies: queue.Queue[Any] = queue.Queue()
        sio = mesiboscript.SocketIO(bot.url + "/?botmasterUserId=seed")
        sio.onmessage = replies.put
        sio.send(json.dumps({"text": "the seed's string"}))
        sio.send({"message": {"text": "the object"}})
        reply = replies.get(timeout=TIMEOUT)
        assert reply["message"]["text"] == "the object"
        sio.close()
        sio.wait(TIMEOUT)
    finally:
        bot.stop()
