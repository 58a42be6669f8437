"""mesiboscript.testing: the echo servers, their scripts, the CA, and the pytest plugin."""

from __future__ import annotations

import os
import socket
import ssl
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import pytest

from mesiboscript import ReadyState, SocketError, WebSocket
from mesiboscript.testing import CertificateAuthority, EchoServer, parse_script

from .helpers import TIMEOUT, Recorder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _echo_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("mesiboscript-echo")]


@pytest.fixture(autouse=True)
def no_echo_threads() -> Iterator[None]:
    """Each test stops the servers it started, and their threads end."""
    before = set(_echo_threads())
    yield
    for thread in set(_echo_threads()) - before:
        thread.join(TIMEOUT)
    assert set(_echo_threads()) <= before


def connect(url: str, **options: Any) -> Recorder:
    """A client with its events recorded (not waiting: the server may close at once)."""
    return Recorder(WebSocket(url, **options))


def connect_open(url: str, **options: Any) -> Recorder:
    recorder = connect(url, **options)
    assert recorder.opened.wait(TIMEOUT), recorder.events
    return recorder


def messages(recorder: Recorder, count: int) -> list[Any]:
    done = threading.Event()
    recorder.ws.addEventListener(
        "message", lambda _e: done.set() if len(recorder.messages) >= count else None
    )
    if len(recorder.messages) < count:
        assert done.wait(TIMEOUT), recorder.events
    return recorder.messages[:count]


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"EOF after {data!r}"
        data += chunk
    return data


# -- the script syntax ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("/", []),
        ("", []),
        ("/chat/room", []),  # not a command: plain echo
        ("/echo", [("echo", None)]),
        ("/greet/hello%20you", [("greet", "hello you")]),
        ("/delay/250", [("delay", 0.25)]),
        ("/echo/2/close/4000/bye%2Fnow", [("echo", 2), ("close", 4000, "bye/now")]),
        ("/close", [("close", None, "")]),
        ("/close/1000", [("close", 1000, "")]),
        ("/drop?x=1", [("drop",)]),
        ("/status/403", [("status", 403)]),
        ("/greet/a/greet/b/drop", [("greet", "a"), ("greet", "b"), ("drop",)]),
    ],
)
def test_parse_script(path: str, steps: list[Any]) -> None:
    assert parse_script(path) == steps


@pytest.mark.parametrize(
    "path",
    [
        "/greet",
        "/delay/soon",
        "/delay/-5",
        "/close/abc",
        "/close/1005",  # never sent on the wire
        "/close/999",
        "/close/4000/" + "x" * 124,
        "/close/4000/bye/extra",
        "/drop/now",
        "/echo/1/status/404",
        "/status/101",
        "/status/abc",
        "/echo/1/bogus",
    ],
)
def test_parse_script_rejects(path: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_script(path)


def test_parse_script_for_streams() -> None:
    assert parse_script("/echo/5/close", "sock") == [("echo", 5), ("close", None, "")]
    with pytest.raises(ValueError, match="no code"):
        parse_script("/close/4000", "sock")
    with pytest.raises(ValueError, match="handshake"):
        parse_script("/status/500", "socks")


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="scheme"):
        EchoServer("http")
    with pytest.raises(ValueError, match="delay"):
        EchoServer("ws", delay=-1)
    with pytest.raises(ValueError, match="status"):
        EchoServer("ws", script="/status/500")
    with pytest.raises(TypeError):
        EchoServer("ws", greeting=5)  # type: ignore[arg-type]
    with CertificateAuthority() as ca, pytest.raises(ValueError, match="TLS"):
        EchoServer("ws", ca=ca)


# -- ws / wss ---------------------------------------------------------------------------------


def test_ws_echo_and_close_by_server() -> None:
    with EchoServer("ws") as server:
        assert server.url == f"ws://127.0.0.1:{server.port}/"
        assert server.host == "127.0.0.1"
        assert server.ca is None
        recorder = connect_open(server.url)
        recorder.ws.send("text")
        recorder.ws.send(b"\x00binary")
        assert messages(recorder, 2) == ["text", b"\x00binary"]
        assert server.connection_count == 1
    event = recorder.wait_closed()
    assert (event.code, event.wasClean) == (1001, True)


def test_ws_greeting_option_and_path() -> None:
    with EchoServer("ws", greeting=b"\x01hi") as server:
        recorder = connect(server.url + "greet/second")
        assert messages(recorder, 2) == [b"\x01hi", "second"]
        recorder.ws.close()
        recorder.wait_closed()


def test_ws_close_with_code_and_reason() -> None:
    with EchoServer("ws") as server:
        recorder = connect_open(server.url + "echo/1/close/4000/bye%20bye")
        recorder.ws.send("one")
        event = recorder.wait_closed()
        assert recorder.messages == ["one"]
        assert (event.code, event.reason, event.wasClean) == (4000, "bye bye", True)
        assert recorder.kinds() == ["open", "message", "close"]


def test_ws_empty_close_frame_is_1005() -> None:
    with EchoServer("ws") as server:
        event = connect(server.url + "close").wait_closed()
        assert (event.code, event.wasClean) == (1005, True)


def test_ws_drop_is_1006() -> None:
    with EchoServer("ws") as server:
        recorder = connect(server.url + "drop")
        event = recorder.wait_closed()
        assert (event.code, event.wasClean) == (1006, False)
        # Chromium fires no error event for a dropped (FIN) connection; the core follows it.
        assert recorder.kinds()[0] == "open"
        assert recorder.kinds()[-1] == "close"


def test_ws_delay() -> None:
    with EchoServer("ws") as server:
        recorder = connect(server.url + "delay/150")
        assert recorder.opened.wait(TIMEOUT)
        start = time.monotonic()
        recorder.ws.send("slow")
        assert messages(recorder, 1) == ["slow"]
        assert time.monotonic() - start >= 0.15
        recorder.ws.close()
        recorder.wait_closed()


def test_ws_delay_option_in_seconds() -> None:
    with EchoServer("ws", delay=0.1) as server:
        recorder = connect(server.url)
        assert recorder.opened.wait(TIMEOUT)
        start = time.monotonic()
        recorder.ws.send("slow")
        assert messages(recorder, 1) == ["slow"]
        assert time.monotonic() - start >= 0.1
        recorder.ws.close()
        recorder.wait_closed()


@pytest.mark.parametrize("path", ["status/403", "close/x", "close/4000/a/b"])
def test_ws_refused_handshake(path: str) -> None:
    with EchoServer("ws") as server:
        recorder = connect(server.url + path)
        event = recorder.wait_closed()
        assert event.code == 1006
        assert recorder.kinds() == ["error", "close"]


def test_ws_script_option_applies_to_every_connection() -> None:
    with EchoServer("ws", script="/greet/welcome/close/4001") as server:
        for _ in range(2):
            recorder = connect(server.url)
            assert recorder.wait_closed().code == 4001
            assert recorder.messages == ["welcome"]
        assert server.connection_count == 2


def test_wss_with_cafile_and_context() -> None:
    with EchoServer("wss") as server:
        assert server.url.startswith("wss://127.0.0.1:")
        assert server.ca is not None
        cafile = server.ca.cafile
        assert os.path.exists(cafile)
        for options in ({"cafile": cafile}, {"ssl_context": server.ca.client_context()}):
            recorder = connect_open(server.url, **options)
            recorder.ws.send("secure")
            assert messages(recorder, 1) == ["secure"]
            recorder.ws.close()
            recorder.wait_closed()
        # Without trusting the CA, verification fails.
        recorder = connect(server.url)
        assert recorder.wait_closed().code == 1006
        assert recorder.error == SocketError.SslHandshakeFailedError
    assert not os.path.exists(cafile)  # the server made the CA, and removed it


def test_shared_ca_is_not_removed_by_the_server() -> None:
    with CertificateAuthority() as ca:
        with EchoServer("wss", ca=ca) as server:
            assert server.ca is ca
        assert os.path.exists(ca.cafile)
        for path in (ca.certfile, ca.keyfile):
            assert Path(path).read_bytes().startswith(b"-----BEGIN")
    assert not os.path.exists(ca.cafile)


# -- sock / socks -----------------------------------------------------------------------------


def test_sock_echo_and_greeting() -> None:
    with EchoServer("sock", greeting="hello\n") as server:
        assert server.url == f"sock://127.0.0.1:{server.port}"
        with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
            assert read_exactly(sock, 6) == b"hello\n"
            sock.sendall(b"ping")
            assert read_exactly(sock, 4) == b"ping"


def test_sock_script_counts_lines_then_closes() -> None:
    """``/echo/3`` on a stream is three lines, however the bytes are cut: the first send ends
    mid-line, the second carries the rest and a fourth line, which is not echoed."""
    with EchoServer("sock", script="/echo/3/close") as server:
        sock = socket.create_connection((server.host, server.port), timeout=TIMEOUT)
        try:
            sock.sendall(b"one\ntw")
            assert read_exactly(sock, 4) == b"one\n"
            sock.sendall(b"o\nthree\nfour\n")
            assert read_exactly(sock, 10) == b"two\nthree\n"
            assert sock.recv(10) == b""  # clean close (FIN), "four" not echoed
        finally:
            sock.close()


def test_sock_script_leaves_what_follows_the_counted_lines_to_the_next_step() -> None:
    with EchoServer("sock", script="/echo/1/greet/--/echo") as server:
        sock = socket.create_connection((server.host, server.port), timeout=TIMEOUT)
        try:
            sock.sendall(b"first\nrest")
            assert read_exactly(sock, 12) == b"first\n--rest"
        finally:
            sock.close()


def test_sock_script_echoes_a_line_longer_than_the_read_buffer() -> None:
    """A line past asyncio's 64 KiB reader limit is echoed as it comes and still counts once."""
    long_line = b"x" * 200_000 + b"\n"
    with EchoServer("sock", script="/echo/1/close") as server:
        sock = socket.create_connection((server.host, server.port), timeout=TIMEOUT)
        try:
            sock.sendall(long_line)
            assert read_exactly(sock, len(long_line)) == long_line
            assert sock.recv(10) == b""
        finally:
            sock.close()


def test_sock_drop_is_a_reset() -> None:
    def connect_and_read(host: str, port: int) -> None:
        with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
            sock.recv(10)

    # The reset can arrive before connect() has even returned.
    with EchoServer("sock", script="/drop") as server, pytest.raises(ConnectionResetError):
        connect_and_read(server.host, server.port)


def test_socks_echo_with_tls() -> None:
    with EchoServer("socks") as server:
        assert server.url.startswith("socks://")
        assert server.ca is not None
        context = server.ca.client_context()
        raw = socket.create_connection((server.host, server.port), timeout=TIMEOUT)
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall(b"secret")
            assert read_exactly(sock, 6) == b"secret"
        # An untrusting client fails the handshake.
        raw = socket.create_connection((server.host, server.port), timeout=TIMEOUT)
        with pytest.raises(ssl.SSLCertVerificationError):
            ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")
        raw.close()


def test_sock_close_stops_open_connections() -> None:
    server = EchoServer("sock")
    sock = socket.create_connection((server.host, server.port), timeout=TIMEOUT)
    sock.sendall(b"x")
    assert read_exactly(sock, 1) == b"x"
    server.close()
    assert sock.recv(10) == b""
    sock.close()
    server.close()  # a second call does nothing


# -- the pytest plugin ------------------------------------------------------------------------


def test_fixture_echo_server(echo_server: EchoServer) -> None:
    assert echo_server.scheme == "ws"
    recorder = connect_open(echo_server.url)
    recorder.ws.send("fixture")
    assert messages(recorder, 1) == ["fixture"]
    recorder.ws.close()
    recorder.wait_closed()


def test_fixture_tls_servers_share_the_session_ca(
    echo_server_wss: EchoServer, echo_server_socks: EchoServer, echo_ca: CertificateAuthority
) -> None:
    assert echo_server_wss.ca is echo_ca
    assert echo_server_socks.ca is echo_ca
    recorder = connect_open(echo_server_wss.url, cafile=echo_ca.cafile)
    recorder.ws.send("tls")
    assert messages(recorder, 1) == ["tls"]
    recorder.ws.close()
    recorder.wait_closed()


def test_fixture_sock(echo_server_sock: EchoServer) -> None:
    with socket.create_connection((echo_server_sock.host, echo_server_sock.port)) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendall(b"fixture")
        assert read_exactly(sock, 7) == b"fixture"


def test_fixture_factory(echo_server_factory: Callable[..., EchoServer]) -> None:
    server = echo_server_factory("ws", greeting="hi", script="/close/4002/done")
    recorder = connect(server.url)
    event = recorder.wait_closed()
    assert recorder.messages == ["hi"]
    assert event.code == 4002


def test_fixture_closes_a_leaked_connection(echo_server: EchoServer) -> None:
    # Left open on purpose: the fixture closes it after the test (conftest checks nothing leaked).
    recorder = connect(echo_server.url)
    assert recorder.opened.wait(TIMEOUT)
    assert recorder.ws.readyState == ReadyState.OPEN


def _plugin_args() -> list[str]:
    """Load the plugin explicitly when it is not installed by entry point (a source checkout), or
    when entry points are not loaded (PYTEST_DISABLE_PLUGIN_AUTOLOAD, inherited by the child)."""
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return ["-p", "mesiboscript.testing.plugin"]
    points: Any = metadata.entry_points()
    if hasattr(points, "select"):
        group = points.select(group="pytest11")
    else:  # Python 3.9: a dict of groups
        group = points.get("pytest11", [])
    if any(point.name == "mesiboscript" for point in group):
        return []
    return ["-p", "mesiboscript.testing.plugin"]


def _run_pytest(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(source))
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *_plugin_args(),
            "-W",
            "error",
            str(tmp_path / "test_inner.py"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )


def test_plugin_imports_nothing_heavy_and_closes_leaks(tmp_path: Path) -> None:
    result = _run_pytest(
        tmp_path,
        """
        import sys, threading
        from mesiboscript import WebSocket, getOpenSessions

        def test_plugin_is_light():
            assert "mesiboscript.testing.plugin" in sys.modules
            assert "websockets" not in sys.modules
            assert "trustme" not in sys.modules

        LEAKED = []

        def test_leak(close_leaked_sessions, echo_server):
            ws = WebSocket(echo_server.url)
            assert ws.upgrade(10)
            LEAKED.append(ws)

        def test_leak_was_closed():
            assert LEAKED[0].readyState == 3
            assert getOpenSessions() == []
        """,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


# -- servers: startup failure, stream scripts, odd statuses -----------------------------------


def test_a_server_that_cannot_start_raises_and_cleans_up() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        for scheme in ("ws", "wss"):  # wss makes (and must remove) a CA of its own
            with pytest.raises(OSError, match=r"(?i)in use"):
                EchoServer(scheme, port=port)
    # no_echo_threads checks that their threads end.


def test_repr_names_the_url_and_the_state() -> None:
    server = EchoServer("sock")
    assert repr(server) == f"<EchoServer {server.url}>"
    server.close()
    assert repr(server) == f"<EchoServer {server.url} closed>"


def test_sock_script_delay_then_echo_then_close() -> None:
    with (
        EchoServer("sock", script="/delay/50/echo/3/close") as server,
        socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock,
    ):
        started = time.monotonic()
        sock.sendall(b"a\nb\nc\n")
        assert read_exactly(sock, 6) == b"a\nb\nc\n"
        assert time.monotonic() - started >= 0.05
        assert sock.recv(10) == b""


def test_sock_counted_echo_ends_when_the_client_does() -> None:
    """The client ends its side mid-line, before the counted lines: the server echoes what came,
    and closes."""
    with (
        EchoServer("sock", script="/echo/10/greet/never") as server,
        socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock,
    ):
        sock.sendall(b"ab")
        sock.shutdown(socket.SHUT_WR)
        assert read_exactly(sock, 2) == b"ab"
        assert sock.recv(10) == b""


def test_sock_client_reset_does_not_disturb_the_server() -> None:
    with EchoServer("sock") as server:
        sock = socket.create_connection((server.host, server.port), timeout=TIMEOUT)
        sock.sendall(b"x")
        assert read_exactly(sock, 1) == b"x"
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset, while the server waits for more to echo
        with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as again:
            again.sendall(b"still here")
            assert read_exactly(again, 10) == b"still here"
        deadline = time.monotonic() + TIMEOUT
        while server.open_connections and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.open_connections == 0


def test_ws_status_without_a_standard_phrase() -> None:
    """An HTTP status with no standard reason phrase still refuses the handshake."""
    with EchoServer("ws") as server:
        with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
            sock.sendall(
                b"GET /status/499 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"
            )
            assert read_exactly(sock, 25) == b"HTTP/1.1 499 Refused\r\nCon"
        recorder = connect(server.url + "status/499")
        recorder.wait_closed()
        assert recorder.kinds() == ["error", "close"]


def test_plugin_closes_servers_a_session_left_listening(tmp_path: Path) -> None:
    """A WebSocketServer left listening would keep pytest alive: the plugin closes it."""
    result = _run_pytest(
        tmp_path,
        """
        from mesiboscript.server import WebSocketServer

        LEFT = []

        def test_leave_a_server_listening():
            LEFT.append(WebSocketServer())
        """,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_plugin_in_a_session_without_servers(tmp_path: Path) -> None:
    result = _run_pytest(tmp_path, "def test_nothing():\n    pass\n")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_package_lists_its_lazy_names() -> None:
    import mesiboscript.testing as testing

    assert {"SCHEMES", "CertificateAuthority", "EchoServer", "parse_script"} <= set(dir(testing))
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        _ = testing.nothing


def test_certificate_authority_without_trustme_says_what_to_install() -> None:
    """The testing extra is optional: without trustme the error names the package to install."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["trustme"] = None  # as if it were not installed
        from mesiboscript.testing import CertificateAuthority
        try:
            CertificateAuthority()
        except ImportError as exc:
            print(exc)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'mesiboscript[testing]'" in result.stdout
