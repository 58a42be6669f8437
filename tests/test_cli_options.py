"""The command line's options and edge paths: what `connect` puts on the wire, how it ends when
the server, the input or the user ends first, and `serve`'s TLS and usage errors."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from typing import Optional

import pytest

from mesiboscript.testing import EchoServer

from .helpers import TIMEOUT, Terminal, free_port, interruptible
from .rawserver import OP_CLOSE, RawConnection, RawServer, close_frame, frame
from .test_cli import ROOT, cli, echo_once


def echo_chat(conn: RawConnection) -> Optional[int]:
    """Handshake accepting the subprotocol ``chat``, echo data frames, answer the client's close;
    return its close code."""
    conn.handshake(extra="Sec-WebSocket-Protocol: chat\r\n")
    while True:
        opcode, payload = conn.read_frame()
        if opcode == OP_CLOSE:
            conn.sock.sendall(frame(OP_CLOSE, payload[:2]))
            return int.from_bytes(payload[:2], "big") if payload else None
        conn.sock.sendall(frame(opcode, payload))


def request_headers(request: bytes) -> dict[str, str]:
    lines = request.decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}


# -- connect: what goes on the wire -------------------------------------------------------------


def test_connect_sends_headers_origin_and_subprotocol() -> None:
    with RawServer(handler=echo_chat) as server:
        result = cli(
            "connect",
            server.url(),
            "-H",
            "X-Test: one",
            "-H",
            "X-Other:two",
            "-o",
            "http://origin.example",
            "-s",
            "chat",
            "--connect-timeout",
            "5",
            "-x",
            "hi",
            "-n",
            "1",
            "-w",
            "30",
        )
        assert server.result() == 1000, result.stderr
    assert result.returncode == 0, result.stderr
    assert f"Connected to {server.url()} (subprotocol: chat)" in result.stdout
    assert "< hi" in result.stdout
    headers = request_headers(server.requests[0])
    assert headers["x-test"] == "one"
    assert headers["x-other"] == "two"
    assert headers["origin"] == "http://origin.example"
    assert headers["sec-websocket-protocol"] == "chat"


def test_connect_refuses_a_malformed_header() -> None:
    result = cli("connect", f"ws://127.0.0.1:{free_port()}/", "-H", "no colon here")
    assert result.returncode == 2
    assert "--header must look like 'Name: value'" in result.stderr


def test_connect_refuses_websocket_options_for_a_stream() -> None:
    result = cli("connect", f"sock://127.0.0.1:{free_port()}", "-H", "X-Test: one")
    assert result.returncode == 2
    assert "for ws:// and wss:// only" in result.stderr


def test_connect_socks_insecure_warns(echo_server_socks: EchoServer) -> None:
    """No CA given and the checks off: the connection works, and the user is told it is open to
    interception."""
    result = cli("connect", echo_server_socks.url, "--insecure", "-x", "tls", "-n", "1", "-w", "30")
    assert result.returncode == 0, result.stderr
    assert "< tls" in result.stdout
    assert "verification is turned off" in result.stderr


# -- connect: who ends it -------------------------------------------------------------------------


def test_connect_ends_when_the_server_closes_while_input_is_open(echo_server: EchoServer) -> None:
    """Standard input stays open (nobody types): the server's close ends the program."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mesiboscript",
            "connect",
            echo_server.url + "greet/hi/close/4000/bye",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.wait(TIMEOUT) == 0
        assert proc.stdout is not None
        out = proc.stdout.read()
        assert "< hi" in out
        assert 'Disconnected (code: 4000, reason: "bye", wasClean: True)' in out
    finally:
        proc.kill()
        proc.communicate()


def test_connect_wait_ends_without_a_reply() -> None:
    """A server that never answers a message: --wait runs out, then the client closes cleanly."""

    def silent_until_close(conn: RawConnection) -> Optional[int]:
        conn.handshake()
        code = conn.read_close_code()
        conn.sock.sendall(close_frame(code))
        return code

    with RawServer(handler=silent_until_close) as server:
        started = time.monotonic()
        result = cli("connect", server.url(), "-x", "anyone?", "-w", "0.3")
        assert server.result() == 1000
    assert result.returncode == 0, result.stderr
    assert "< " not in result.stdout
    assert 'Disconnected (code: 1000, reason: "", wasClean: True)' in result.stdout
    assert time.monotonic() - started >= 0.3


def test_connect_interrupted_while_connecting() -> None:
    """Ctrl-C while the server has not answered the handshake: the program closes and exits 130."""
    with RawServer(conn_timeout=TIMEOUT) as server:
        proc = interruptible("-m", "mesiboscript", "connect", server.url("/slowloris"), cwd=ROOT)
        try:
            server.wait_connection("/slowloris", TIMEOUT)
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=TIMEOUT)
            assert proc.returncode == 130, err
            assert "Traceback" not in err
        finally:
            proc.kill()
            proc.communicate()


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_connect_interactive_shows_an_error_above_the_prompt() -> None:
    """In a terminal an error clears the prompt line, is printed, and the prompt comes back."""
    with (
        RawServer(conn_timeout=TIMEOUT) as server,
        Terminal("-m", "mesiboscript", "connect", server.url("/reserved_opcode"), cwd=ROOT) as term,
    ):
        # The server breaks the protocol at once: the error comes while the prompt shows.
        term.read_until(b"(press CTRL+C to quit)")
        term.read_until(b"\r\x1b[Kerror: ")
        term.read_until(b"Disconnected (code: 1006")
        assert term.proc.wait(TIMEOUT) == 1


# -- serve --------------------------------------------------------------------------------------


def test_serve_wss_names_the_ca_file_clients_trust() -> None:
    proc = interruptible("-m", "mesiboscript", "serve", "wss", cwd=ROOT)
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Press CTRL+C"):
                break
        url = lines[0].split()[-1]
        assert lines[0] == f"wss echo server listening on {url}", lines
        assert lines[1].startswith("  clients must trust the test CA: --cafile "), lines
        cafile = lines[1].split()[-1]
        assert echo_once(url, cafile=cafile) == "served"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0
    finally:
        proc.kill()
        proc.communicate()


def test_serve_refuses_a_bad_script() -> None:
    result = cli("serve", "--script", "/echo/many")
    assert result.returncode == 2
    assert "mesiboscript serve: ws:" in result.stderr


def test_serve_without_the_server_extra_is_a_usage_error() -> None:
    """Without websockets (the server extra) `serve` says so and exits 2, with no traceback."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["websockets"] = None  # as if it were not installed
        from mesiboscript.__main__ import main
        sys.exit(main(["serve"]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("mesiboscript serve: ")
    assert "Traceback" not in result.stderr
