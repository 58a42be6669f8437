"""The command line's options and edge paths: what `connect` puts on the wire, how it ends when
the server, the input or the user ends first, and `serve`'s TLS and usage errors."""

from __future__ import annotations

import importlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
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
    assert result.stderr == (
        "warning: --insecure: the server's certificate and host name are not checked\n"
    )


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
    """In a terminal an error gets a line of its own (erasing the prompt), and no prompt is left."""
    with (
        RawServer(conn_timeout=TIMEOUT) as server,
        Terminal("-m", "mesiboscript", "connect", server.url("/reserved_opcode"), cwd=ROOT) as term,
    ):
        # The server breaks the protocol at once: the error comes while the prompt shows.
        term.read_until(b"(press CTRL+C to quit)")
        term.read_until(b"error: ")
        term.read_until(b"Disconnected (code: 1006")
        assert term.proc.wait(TIMEOUT) == 1
        term.read_until(b"\n")
        # The error starts its own line (erasing the prompt if it showed yet); none after the
        # close.
        assert re.search(rb"(\r\n|\r\x1b\[J|\r\x1b\[K)\x1b\[33merror: ", term.screen), term.screen
        assert b"> > " not in term.screen
        assert term.screen.endswith(b"wasClean: False)\x1b[39m\r\n"), term.screen


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


# -- the README's install without the extras ------------------------------------------------------


def venv_without_extras(folder: Path, *extras: str) -> str:
    """A real virtual environment holding mesiboscript (this checkout, as ``pip install -e .``
    adds it), its required dependencies and only the ``extras`` packages named, linked from
    the test environment: what a plain install gives, with no network. Its python's path."""
    import venv

    venv.create(folder, with_pip=False, symlinks=True)
    python = folder / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "mesiboscript-checkout.pth").write_text(ROOT + "\n")
    for name in ("certifi", "websocket", "h11", *extras):
        module = importlib.import_module(name)
        (Path(site) / name).symlink_to(os.path.dirname(str(module.__file__)))
    return str(python)


@pytest.fixture(scope="module")
def plain_install(tmp_path_factory: pytest.TempPathFactory) -> str:
    return venv_without_extras(tmp_path_factory.mktemp("plain"))


@pytest.fixture(scope="module")
def server_install(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The README's install: the ``server`` extra (websockets), not ``testing`` (trustme)."""
    return venv_without_extras(tmp_path_factory.mktemp("server"), "websockets")


def run_in(python: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-m", "mesiboscript", *args], capture_output=True, text=True, timeout=60
    )


def test_the_plain_install_really_lacks_the_extras(plain_install: str) -> None:
    code = "import importlib.util as u; print([u.find_spec(n) for n in ('websockets', 'trustme')])"
    result = subprocess.run([plain_install, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[None, None]"


@pytest.mark.parametrize(
    ("args", "needs"),
    [
        (
            ["demo"],
            '(the echo servers run on it): pip install "mesiboscript[server]"',
        ),
        (
            ["serve"],
            '(the echo servers run on it): pip install "mesiboscript[testing]"',
        ),
        (["serve", "sock"], "websockets is not installed"),
        (["demo", "--tls"], "websockets is not installed"),
    ],
)
def test_without_the_extras_one_line_names_the_extra(
    plain_install: str, args: list[str], needs: str
) -> None:
    result = run_in(plain_install, *args)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"mesiboscript {args[0]}: ")
    assert needs in result.stderr


@pytest.mark.parametrize(
    ("args", "needs"),
    [
        (["demo", "--tls"], "trustme is not installed (it makes the certificate of wss)"),
        (["serve", "wss"], "trustme is not installed (it makes the certificate of wss)"),
        (["serve", "ws", "socks"], "(it makes the certificate of socks)"),
        (["serve", "wss", "socks"], "(it makes the certificate of wss, socks)"),
    ],
)
def test_tls_servers_after_the_readme_install_name_the_testing_extra(
    server_install: str, args: list[str], needs: str
) -> None:
    result = run_in(server_install, *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert needs in result.stderr
    assert result.stderr.endswith(': pip install "mesiboscript[testing]"\n')


def test_the_demo_works_after_the_readme_install(server_install: str) -> None:
    result = run_in(server_install, "demo")
    assert result.returncode == 0, result.stderr
    assert "< Hello from mesiboscript!" in result.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_connect_interactive_without_readline(echo_server: EchoServer) -> None:
    """Where Python has no readline, input() reads the line; a message redraws the prompt."""
    code = (
        "import sys; sys.modules['readline'] = None\n"
        "from mesiboscript.__main__ import main\n"
        f"sys.exit(main(['connect', {echo_server.url + 'greet/hi'!r}]))\n"
    )
    with Terminal("-c", code, cwd=ROOT) as term:
        term.read_until(b"< hi")
        term.type(b"typed\n")
        term.read_until(b"< typed")
        term.type(b"\x04")
        term.read_until(b"Disconnected (code: 1000")
        assert term.proc.wait(TIMEOUT) == 0


def test_escape_colour_and_width_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    from mesiboscript._console import cell_width, escape, wants_colour

    assert escape("a\tb\nc\x1b[2J\r\x00\x7f\x9b\u202e\u2069é") == (
        "a\tb\nc\\x1b[2J\\r\\x00\\x7f\\x9b\\u202e\\u2069é"
    )
    assert cell_width("ab") == 2
    assert cell_width("日本") == 4
    assert cell_width("e\u0301") == 1

    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert wants_colour(Tty())  # type: ignore[arg-type]
    assert not wants_colour(object())  # type: ignore[arg-type]
    monkeypatch.setenv("NO_COLOR", "1")
    assert not wants_colour(Tty())  # type: ignore[arg-type]
    monkeypatch.setenv("NO_COLOR", "")  # set but empty: no-color.org says colour stays on
    assert wants_colour(Tty())  # type: ignore[arg-type]
    monkeypatch.setenv("TERM", "dumb")
    assert not wants_colour(Tty())  # type: ignore[arg-type]


def test_stream_data_is_shown_without_its_line_end() -> None:
    from mesiboscript.__main__ import _show_stream

    assert _show_stream(b"one\r\n") == "one"
    assert _show_stream(b"two\n") == "two"
    assert _show_stream(b"bell\x07 \xff") == "bell\\x07 \ufffd"


def test_the_missing_extra_is_named_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The venv tests above show it for real (in child processes, which coverage does not see);
    here the same check runs in this process, with ``find_spec`` reporting trustme absent."""
    import importlib.util

    from mesiboscript.__main__ import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "trustme" else real(name, *a)
    )
    assert main(["demo", "--tls"]) == 2
    assert main(["serve", "socks"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "mesiboscript demo: trustme is not installed (it makes the certificate of wss): "
        'pip install "mesiboscript[testing]"',
        "mesiboscript serve: trustme is not installed (it makes the certificate of socks): "
        'pip install "mesiboscript[testing]"',
    ]
