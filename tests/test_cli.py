"""The command line: demo, connect (scripted and in a real terminal), serve."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from typing import Any

import pytest

import mesiboscript
from mesiboscript.__main__ import DEMO_MESSAGE, main
from mesiboscript.testing import EchoServer

from .helpers import TIMEOUT, Recorder, Terminal, free_port, interruptible

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args: str, stdin: str = "", timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mesiboscript", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )


# -- demo -------------------------------------------------------------------------------------


def test_demo_prints_the_echo() -> None:
    result = cli("demo")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Echo server listening on ws://127.0.0.1:")
    assert f"> {DEMO_MESSAGE}" in lines
    assert f"< {DEMO_MESSAGE}" in lines
    assert lines[-1] == "Closed: code 1000, wasClean True"


def test_demo_over_tls_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--tls", "--message", "secure hello"]) == 0
    out = capsys.readouterr().out
    assert "wss://127.0.0.1:" in out
    assert "< secure hello" in out


def test_version_and_usage() -> None:
    assert cli("--version").stdout.strip() == f"mesiboscript {mesiboscript.__version__}"
    result = cli()
    assert result.returncode == 2
    assert "connect" in result.stderr


# -- connect, scripted ------------------------------------------------------------------------


def test_connect_exec(echo_server: EchoServer) -> None:
    result = cli("connect", echo_server.url, "-x", "hello", "-x", "world", "-n", "2", "-w", "30")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"Connected to {echo_server.url}"
    # Sends and echoes interleave as the network decides; each direction keeps its order.
    assert [line for line in lines if line.startswith("> ")] == ["> hello", "> world"]
    assert [line for line in lines if line.startswith("< ")] == ["< hello", "< world"]
    assert lines[-1] == 'Disconnected (code: 1000, reason: "", wasClean: True)'


def test_connect_reads_piped_stdin(echo_server: EchoServer) -> None:
    result = cli("connect", echo_server.url, "-n", "3", "-w", "30", stdin="one\ntwo\nthree\n")
    assert result.returncode == 0, result.stderr
    received = [line for line in result.stdout.splitlines() if line.startswith("< ")]
    assert received == ["< one", "< two", "< three"]


def test_connect_shows_the_servers_close_code(echo_server: EchoServer) -> None:
    result = cli("connect", echo_server.url + "greet/hi/close/4000/bye", "-w", "30")
    assert result.returncode == 0, result.stderr
    assert "< hi" in result.stdout
    assert 'Disconnected (code: 4000, reason: "bye", wasClean: True)' in result.stdout


def test_connect_binary_message() -> None:
    with EchoServer("ws", greeting=b"\x00\x01") as server:
        result = cli("connect", server.url, "-n", "1", "-w", "30")
    assert "< [binary, 2 bytes] 0001" in result.stdout


def test_connect_refused() -> None:
    result = cli("connect", f"ws://127.0.0.1:{free_port()}/", "-x", "lost")
    assert result.returncode == 1
    assert "ConnectionRefusedError" in result.stderr
    assert "code: 1006" in result.stdout


def test_connect_bad_url() -> None:
    """An unknown scheme, or none: every scheme connect takes is named."""
    accepted = "use ws://, wss://, sock:// or socks:// (http:// and https:// mean ws:// and wss://)"
    result = cli("connect", "foo://example.invalid/")
    assert result.returncode == 2
    assert result.stderr == (
        f"mesiboscript connect: 'foo://example.invalid/' has the scheme foo://; {accepted}\n"
    )
    result = cli("connect", "example.invalid:80")
    assert result.returncode == 2
    assert (
        result.stderr == f"mesiboscript connect: 'example.invalid:80' has no scheme; {accepted}\n"
    )


def test_connect_wss_with_cafile(echo_server_wss: EchoServer) -> None:
    assert echo_server_wss.ca is not None
    result = cli(
        "connect",
        echo_server_wss.url,
        "--cafile",
        echo_server_wss.ca.cafile,
        "-x",
        "tls",
        "-n",
        "1",
    )
    assert result.returncode == 0, result.stderr
    assert "< tls" in result.stdout
    untrusted = cli("connect", echo_server_wss.url, "-x", "tls")
    assert untrusted.returncode == 1
    assert "SslHandshakeFailedError" in untrusted.stderr


def test_connect_wss_insecure_warns(echo_server_wss: EchoServer) -> None:
    result = cli("connect", echo_server_wss.url, "--insecure", "-x", "tls", "-n", "1")
    assert result.returncode == 0, result.stderr
    assert "< tls" in result.stdout
    assert result.stderr == (
        "warning: --insecure: the server's certificate and host name are not checked\n"
    )


@pytest.mark.skipif(not hasattr(mesiboscript, "Socket"), reason="mesiboscript.Socket not built yet")
def test_connect_sock(echo_server_sock: EchoServer) -> None:
    result = cli("connect", echo_server_sock.url, "-x", "over tcp", "-n", "1", "-w", "30")
    assert result.returncode == 0, result.stderr
    assert "< over tcp" in result.stdout


@pytest.mark.skipif(not hasattr(mesiboscript, "Socket"), reason="mesiboscript.Socket not built yet")
def test_connect_socks_with_cafile(echo_server_socks: EchoServer) -> None:
    assert echo_server_socks.ca is not None
    cafile = echo_server_socks.ca.cafile
    result = cli("connect", echo_server_socks.url, "--cafile", cafile, "-x", "tls", "-n", "1")
    assert result.returncode == 0, result.stderr
    assert "< tls" in result.stdout


# -- connect, in a real terminal ---------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_connect_interactive_in_a_pty(echo_server: EchoServer) -> None:
    """Type a line in a real terminal and see its echo, as a person would."""
    with Terminal("-m", "mesiboscript", "connect", echo_server.url, "-w", "0", cwd=ROOT) as term:
        term.read_until(b"(press CTRL+C to quit)")
        term.read_until(b"> ")
        term.type(b"hello from a terminal\n")
        term.read_until(b"< hello from a terminal")
        term.type(b"\x04")  # Ctrl-D: end of input, so the client closes
        term.read_until(b"Disconnected (code: 1000")
        assert term.proc.wait(TIMEOUT) == 0


# -- serve ------------------------------------------------------------------------------------


def start_serve(*args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = interruptible("-m", "mesiboscript", "serve", *args, cwd=ROOT)
    assert proc.stdout is not None
    urls: dict[str, str] = {}
    for line in proc.stdout:
        if line.startswith("Press CTRL+C"):
            break
        if " echo server listening on " in line:
            scheme, url = line.split()[0], line.split()[-1]
            urls[scheme] = url
    assert urls, proc.communicate(timeout=TIMEOUT)
    return proc, urls


def first_message(recorder: Recorder) -> Any:
    got = threading.Event()
    recorder.ws.addEventListener("message", lambda _event: got.set())
    if not recorder.messages:
        assert got.wait(TIMEOUT), recorder.events
    return recorder.messages[0]


def echo_once(url: str, **options: Any) -> Any:
    recorder = Recorder(mesiboscript.WebSocket(url, **options))
    assert recorder.opened.wait(TIMEOUT), recorder.events
    recorder.ws.send("served")
    message = first_message(recorder)
    recorder.ws.close()
    recorder.wait_closed()
    return message


def test_serve_until_sigterm() -> None:
    proc, urls = start_serve("ws", "sock")
    try:
        assert set(urls) == {"ws", "sock"}
        assert echo_once(urls["ws"]) == "served"
        host, port = urls["sock"].split("//")[1].split(":")
        with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
            sock.sendall(b"tcp")
            assert sock.recv(10) == b"tcp"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0
    finally:
        proc.kill()
        proc.communicate()


def test_serve_on_a_chosen_port_with_greeting() -> None:
    port = free_port()
    proc, urls = start_serve("--port", str(port), "--greeting", "welcome")
    try:
        assert urls == {"ws": f"ws://127.0.0.1:{port}/"}
        recorder = Recorder(mesiboscript.WebSocket(urls["ws"]))
        assert first_message(recorder) == "welcome"
        recorder.ws.close()
        recorder.wait_closed()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(TIMEOUT) == 0
    finally:
        proc.kill()
        proc.communicate()


def test_serve_rejects_bad_arguments() -> None:
    assert cli("serve", "http").returncode == 2
    assert cli("serve", "ws", "sock", "--port", "8080").returncode == 2
