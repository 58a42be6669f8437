"""``SocketIO`` over HTTP long-polling and the upgrade to WebSocket, against real servers: Botmaster
(socket.io 1.7, Engine.IO v3), socket.io 2.x (Engine.IO v3), socket.io 4 with its default
transports, with ``transports: ['polling']`` and with ``['websocket']``, python-socketio 5.

Each client transport choice (``["polling"]``, ``["websocket"]``, the default polling-then-upgrade)
is checked with text, non-ASCII text, binary attachments, acks and a server's event; then
malformed polling responses from a raw HTTP server end the session with "parse error".
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from mesiboscript._loop import get_loop

from .helpers import TIMEOUT
from .test_socketio import (
    SERVERS_DIR,
    Client,
    ServerProcess,
    make_clients,
    node_server,
    start_server,
)

KINDS = ["botmaster", "socketio2", "socketio4", "python-socketio"]
TRANSPORTS = {"polling": ["polling"], "websocket": ["websocket"], "default": None}


def start(kind: str, *args: str) -> ServerProcess:
    if kind == "socketio2":
        if not (SERVERS_DIR / "node_modules" / "socket.io-v2").is_dir():
            pytest.skip("npm package socket.io-v2 is not installed: run `npm ci` there")
        return node_server("socketio2_echo_server.js", *args)
    if args:
        return node_server("socketio4_echo_server.js", *args)
    return start_server(kind)


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, ServerProcess]]:
    started: dict[str, ServerProcess] = {}
    yield started
    for server in started.values():
        server.stop()


def server_of(servers: dict[str, ServerProcess], kind: str, *args: str) -> ServerProcess:
    key = " ".join([kind, *args])
    if key not in servers:
        servers[key] = start(kind, *args)
    return servers[key]


@pytest.fixture
def clients() -> Iterator[Callable[..., Client]]:
    yield from make_clients()


def check_conversation(client: Client, kind: str) -> None:
    sio = client.sio
    client.connected()
    blob = bytes(range(256)) * 8
    assert sio.call("echo", "é☃ 😀", timeout=TIMEOUT) == "é☃ 😀"
    assert sio.call("echo", blob, {"b": [b"", b"\x00"]}, timeout=TIMEOUT) == (
        blob,
        {"b": [b"", b"\x00"]},
    )
    got: queue.Queue[Any] = queue.Queue()
    sio.on("question", lambda arg: got.put(arg) or ("answer", arg))
    sio.emit("call-me", "question", "ü")
    assert got.get(timeout=TIMEOUT) == "ü"
    assert client.get("call-me-result") == (["answer", "ü"],)
    if kind == "botmaster":
        sio.send({"text": "über"})
        assert client.get("message")[0]["message"]["text"] == "über"
    elif kind != "python-socketio":
        sio.send("über")
        assert client.get("message") == ("über",)


@pytest.mark.parametrize("transports", list(TRANSPORTS))
@pytest.mark.parametrize("kind", KINDS)
def test_each_transport_with_each_server(
    kind: str,
    transports: str,
    servers: dict[str, ServerProcess],
    clients: Callable[..., Client],
) -> None:
    server = server_of(servers, kind)
    options: dict[str, Any] = {}
    if TRANSPORTS[transports] is not None:
        options["transports"] = TRANSPORTS[transports]
    client = clients(server.url + "/?botmasterUserId=p1", "call-me-result", **options)
    check_conversation(client, kind)
    assert client.sio.protocol == (3 if kind in ("botmaster", "socketio2") else 4)
    manager = client.sio._manager
    if transports == "polling":
        assert manager.transport == "polling"
    else:
        # The upgrade happens once the probe succeeds; a call after it goes over the WebSocket.
        upgraded = threading.Event()

        def check() -> None:
            if manager.transport == "websocket":
                upgraded.set()
            else:
                get_loop_later(check)

        get_loop_later(check)
        assert upgraded.wait(TIMEOUT)
        assert client.sio.call("echo", "after the upgrade", timeout=TIMEOUT) == "after the upgrade"


def get_loop_later(fn: Callable[[], None]) -> None:
    # call_later is the loop thread's; from the test's thread it would wait for the loop's next
    # wake-up (a ping interval away) unseen: hand it over with a wake-up.
    loop = get_loop()
    loop.call_soon_threadsafe(loop.call_later, 0.01, fn)


def test_a_polling_only_server(
    servers: dict[str, ServerProcess], clients: Callable[..., Client]
) -> None:
    """socket.io 4 with transports ['polling']: its handshake offers no upgrade; we stay."""
    server = server_of(servers, "socketio4", "--transports", "polling")
    client = clients(server.url, "call-me-result")
    check_conversation(client, "socketio4")
    assert client.sio._manager.transport == "polling"
    refused = clients(server.url, transports=["websocket"], reconnection=False)
    (data,) = refused.get("connect_error")
    assert data["message"] == "websocket error"


def test_a_websocket_only_server(
    servers: dict[str, ServerProcess], clients: Callable[..., Client]
) -> None:
    """socket.io 4 with transports ['websocket']: a polling client is refused (HTTP 400), as
    socket.io-client is; a WebSocket client talks."""
    server = server_of(servers, "socketio4", "--transports", "websocket")
    client = clients(server.url, "call-me-result", transports=["websocket"])
    check_conversation(client, "socketio4")
    refused = clients(server.url)
    (data,) = refused.get("connect_error")
    assert data["message"] == "xhr poll error"
    assert "400" in data["description"]


@pytest.mark.parametrize("kind", ["botmaster", "socketio4"])
def test_reconnection_over_polling(
    kind: str, clients: Callable[..., Client], servers: dict[str, ServerProcess]
) -> None:
    server = start(kind)
    try:
        client = clients(server.url, "reconnect", transports=["polling"], reconnection_delay=0.05)
        client.connected()
        server.stop()
        client.get("disconnect")
        client.sio.emit("echo", "buffered")
        server = ServerProcess([*server.argv, "--port", str(server.port)])
        client.get("reconnect")
        client.get("connect")
        assert client.sio.call("echo", "again", timeout=TIMEOUT) == "again"
    finally:
        server.stop()


# -- malformed polling responses --------------------------------------------------------------


class RawHTTP:
    """An HTTP server on 127.0.0.1:0 that answers each request with the next canned body."""

    def __init__(self, bodies: list[tuple[bytes, str]]) -> None:
        self.bodies = bodies
        self.post_status = 200
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conns: list[socket.socket] = []
        try:
            while True:  # until close() closes the listener
                conn, _ = self.listener.accept()
                conns.append(conn)
                conn.settimeout(TIMEOUT)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                if data.startswith(b"POST"):  # the client's packets: taken, "ok"
                    head_end = data.index(b"\r\n\r\n") + 4
                    length = int(data.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    while len(data) < head_end + length:
                        data += conn.recv(65536)
                    body, content_type = b"ok", "text/html"
                    if self.post_status != 200:
                        conn.sendall(
                            f"HTTP/1.1 {self.post_status} Oops\r\nContent-Length: 0\r\n"
                            "Connection: close\r\n\r\n".encode()
                        )
                        continue
                elif not self.bodies:
                    continue  # a long poll with nothing to say: left pending
                else:
                    body, content_type = self.bodies.pop(0)
                if content_type == "raw":  # not even HTTP, or cut short: then the end
                    conn.sendall(body)
                    conn.close()
                    continue
                head = (
                    f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                )
                conn.sendall(head.encode() + body)
        except OSError:
            pass
        finally:
            for conn in conns:
                conn.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (Linux)
        self.listener.close()
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive()


OPEN_V4 = b'0{"sid":"s1","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000}'


@pytest.mark.parametrize(
    ("bodies", "connected"),
    [
        ([(b"<html>not a payload</html>", "text/html")], False),
        ([(b"", "text/plain")], False),
        ([(b"\xff\xfe", "text/plain")], False),
        ([(OPEN_V4 + b"\x1e9oops", "text/plain")], False),
        ([(OPEN_V4 + b"\x1ebnot base64!", "text/plain")], False),
        ([(OPEN_V4 + b'\x1e40{"sid":"x"}', "text/plain"), (b"42[bad json", "text/plain")], True),
        ([(OPEN_V4 + b'\x1e40{"sid":"x"}', "text/plain"), (b"7", "text/plain")], True),
    ],
)
def test_malformed_polling_responses_are_a_parse_error(
    bodies: list[tuple[bytes, str]], connected: bool, clients: Callable[..., Client]
) -> None:
    server = RawHTTP(list(bodies))
    try:
        client = clients(server.url, transports=["polling"], protocol=4, reconnection=False)
        if connected:
            client.get("connect")
            assert client.get("disconnect") == ("parse error",)
        else:
            (data,) = client.get("connect_error")
            assert data["message"] == "parse error"
        assert client.sio.wait(TIMEOUT)
    finally:
        server.close()


def test_v3_length_mismatch_is_a_parse_error(clients: Callable[..., Client]) -> None:
    open_v3 = b'0{"sid":"s1","upgrades":[],"pingInterval":25000,"pingTimeout":5000}'
    body = f"{len(open_v3) + 5}:".encode() + open_v3
    server = RawHTTP([(body, "text/plain; charset=UTF-8")])
    try:
        client = clients(server.url, transports=["polling"], protocol=3, reconnection=False)
        (data,) = client.get("connect_error")
        assert data["message"] == "parse error"
        assert client.sio.wait(TIMEOUT)
    finally:
        server.close()


@pytest.mark.parametrize(
    "body",
    [b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"],
)
def test_a_response_that_is_not_http_is_an_xhr_poll_error(
    body: bytes, clients: Callable[..., Client]
) -> None:
    server = RawHTTP([(body, "raw")])
    try:
        client = clients(server.url, transports=["polling"], reconnection=False)
        (data,) = client.get("connect_error")
        assert data["message"] == "xhr poll error"
        assert client.sio.wait(TIMEOUT)
    finally:
        server.close()


@pytest.mark.parametrize("kind", ["botmaster", "socketio4"])
def test_ping_timeout_over_polling(kind: str, clients: Callable[..., Client]) -> None:
    """A server that stops (SIGSTOP) while long polls are pending: the heartbeat ends the session
    with "ping timeout" at once, not after the pending requests."""
    server = start_server(kind, heartbeat_ms=(100, 200))
    try:
        client = clients(server.url, transports=["polling"], reconnection=False)
        client.connected()
        server.pause()
        assert client.get("disconnect") == ("ping timeout",)
        assert client.sio.wait(TIMEOUT)
    finally:
        server.stop()


def test_a_post_answered_with_an_error_ends_the_session(clients: Callable[..., Client]) -> None:
    open_v4 = OPEN_V4 + b'\x1e40{"sid":"x"}'
    server = RawHTTP([(open_v4, "text/plain")])
    server.post_status = 500
    try:
        client = clients(server.url, transports=["polling"], protocol=4, reconnection=False)
        client.get("connect")
        (reason,) = client.get("disconnect")
        assert reason == "transport error"
        assert client.sio.wait(TIMEOUT)
    finally:
        server.close()
