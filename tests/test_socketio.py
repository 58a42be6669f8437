"""``SocketIO`` against real servers: a Botmaster bot (socket.io 1.7, Engine.IO v3), a socket.io 4
server and a python-socketio 5 server (both Engine.IO v4).

The node servers come from ``tests/socketio_servers`` (``npm ci`` there, which
``.ci/steps/pre-20-socketio-node.sh`` does); their tests skip only when node or those packages
are missing. Every server runs as a subprocess on a free port that it prints.
"""

from __future__ import annotations

import json
import logging
import queue
import select
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from mesiboscript import InvalidStateError, SocketError
from mesiboscript._loop import get_loop
from mesiboscript._socketio import SocketIO
from mesiboscript.sansio.frames import build_frame

from .helpers import TIMEOUT, free_port

SERVERS_DIR = Path(__file__).parent / "socketio_servers"
ROOT = Path(__file__).parent.parent


# -- servers ----------------------------------------------------------------------------------


class ServerProcess:
    """A test server in a subprocess that prints ``{"port": N}`` once it listens."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            cwd=SERVERS_DIR,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        try:
            self.port = self._read_port(self.proc.stdout)
        except BaseException:
            self.stop()
            raise
        self.url = f"http://127.0.0.1:{self.port}"

    def _read_port(self, stdout: Any) -> int:
        deadline = time.monotonic() + TIMEOUT * 3
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"{self.argv} did not report its port in time")
                if selector.select(remaining):
                    line = stdout.readline()
                    if not line:
                        pytest.fail(f"{self.argv} exited ({self.proc.wait()}) before listening")
                    try:
                        return int(json.loads(line)["port"])
                    except (ValueError, KeyError, TypeError):
                        continue  # something else on stdout; keep looking

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(TIMEOUT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def node_server(script: str, *args: str) -> ServerProcess:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the Botmaster and socket.io 4 servers cannot run")
    for package in ("botmaster", "botmaster-socket.io", "socket.io"):
        if not (SERVERS_DIR / "node_modules" / package).is_dir():
            pytest.skip(
                f"npm package {package} is not installed: run `npm ci` in tests/socketio_servers "
                "(.ci/steps/pre-20-socketio-node.sh does)"
            )
    return ServerProcess([node, script, *args])


def python_server(*args: str) -> ServerProcess:
    return ServerProcess([sys.executable, "python_socketio_server.py", *args])


SERVER_KINDS = ["botmaster", "socketio4", "python-socketio"]


def start_server(kind: str, heartbeat_ms: Optional[tuple[int, int]] = None) -> ServerProcess:
    """Start a server of ``kind``; ``heartbeat_ms`` = (pingInterval, pingTimeout)."""
    args: list[str] = []
    if heartbeat_ms is not None:
        interval, timeout = heartbeat_ms
        if kind == "python-socketio":
            args = ["--ping-interval", str(interval / 1000), "--ping-timeout", str(timeout / 1000)]
        else:
            args = ["--ping-interval", str(interval), "--ping-timeout", str(timeout)]
    if kind == "botmaster":
        return node_server("botmaster_echo_bot.js", *args)
    if kind == "socketio4":
        return node_server("socketio4_echo_server.js", *args)
    return python_server(*args)


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, ServerProcess]]:
    """Each kind of server, started once per module on first use."""
    started: dict[str, ServerProcess] = {}
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture(params=SERVER_KINDS)
def server(request: pytest.FixtureRequest, servers: dict[str, ServerProcess]) -> ServerProcess:
    kind: str = request.param
    if kind not in servers:
        servers[kind] = start_server(kind)
    return servers[kind]


@pytest.fixture
def botmaster(servers: dict[str, ServerProcess]) -> ServerProcess:
    if "botmaster" not in servers:
        servers["botmaster"] = start_server("botmaster")
    return servers["botmaster"]


@pytest.fixture
def socketio4(servers: dict[str, ServerProcess]) -> ServerProcess:
    if "socketio4" not in servers:
        servers["socketio4"] = start_server("socketio4")
    return servers["socketio4"]


@pytest.fixture
def own_servers() -> Iterator[list[ServerProcess]]:
    """Servers with special settings, stopped after the test."""
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()


def kind_of(server: ServerProcess) -> str:
    if "botmaster_echo_bot.js" in server.argv:
        return "botmaster"
    return "socketio4" if "socketio4_echo_server.js" in server.argv else "python-socketio"


# -- a recording client -----------------------------------------------------------------------


class Client:
    """A ``SocketIO`` whose handlers record their arguments per event, and their threads."""

    def __init__(self, url: str, *events: str, **options: Any) -> None:
        self.queues: dict[str, queue.Queue[tuple[Any, ...]]] = defaultdict(queue.Queue)
        self.order: list[str] = []
        self.threads: set[str] = set()
        self.sio = SocketIO(url, **options)
        self.sio.onconnect = self.recorder("connect")
        self.sio.onmessage = self.recorder("message")
        self.sio.ondisconnect = self.recorder("disconnect")
        self.sio.onconnect_error = self.recorder("connect_error")
        for event in events:
            self.sio.on(event, self.recorder(event))

    def recorder(self, event: str, result: Any = None) -> Callable[..., Any]:
        # The queue is made here, once: made on first use, the handler (I/O thread) and get()
        # (test thread) could each make one, and an event put in the lost one never arrives.
        arrived = self.queues[event]

        def handler(*args: Any) -> Any:
            self.order.append(event)
            self.threads.add(threading.current_thread().name)
            arrived.put(args)
            return result

        return handler

    def get(self, event: str, timeout: float = TIMEOUT) -> tuple[Any, ...]:
        try:
            return self.queues[event].get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"no {event!r} event within {timeout} s; got {self.order}"
            ) from None

    def connected(self) -> None:
        self.get("connect")
        assert self.sio.connected

    def close(self) -> None:
        self.sio.close()
        assert self.sio.wait(TIMEOUT), "the connection did not end"


def make_clients(**defaults: Any) -> Iterator[Callable[..., Client]]:
    """A ``clients`` fixture's body: yields a maker of clients (its options over ``defaults``);
    each client is closed, and its WebSocket gone, at the end of the test."""
    made: list[Client] = []

    def make(url: str, *events: str, **options: Any) -> Client:
        client = Client(url, *events, **{**defaults, **options})
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def clients() -> Iterator[Callable[..., Client]]:
    yield from make_clients()


# -- connecting, messages, events -------------------------------------------------------------


def test_connect_and_message_echo(server: ServerProcess, clients: Callable[..., Client]) -> None:
    client = clients(server.url + "/?botmasterUserId=user-1")
    client.connected()
    sio = client.sio
    assert sio.protocol == (3 if kind_of(server) == "botmaster" else 4)
    assert sio.id
    sio.send({"text": "hello"})
    (reply,) = client.get("message")
    if kind_of(server) == "botmaster":
        assert reply == {"recipient": {"id": "user-1"}, "message": {"text": "hello"}}
    else:
        assert reply == {"text": "hello"}
    assert client.threads == {"mesiboscript-io"}


def test_emit_with_ack(server: ServerProcess, clients: Callable[..., Client]) -> None:
    client = clients(server.url)
    acked: queue.Queue[tuple[Any, ...]] = queue.Queue()
    client.sio.emit(
        "echo", 1, "two", {"three": [3.5, None, True]}, callback=lambda *a: acked.put(a)
    )
    client.sio.emit("echo", "é☃", callback=lambda *a: acked.put(a))
    assert acked.get(timeout=TIMEOUT) == (1, "two", {"three": [3.5, None, True]})
    assert acked.get(timeout=TIMEOUT) == ("é☃",)
    assert client.order[0] == "connect"  # emitted while connecting, sent once connected


def test_custom_event_from_the_server(
    server: ServerProcess, clients: Callable[..., Client]
) -> None:
    if kind_of(server) == "python-socketio":
        pytest.skip("this python-socketio server answers echo with an ack only")
    client = clients(server.url, "echo")
    client.connected()
    client.sio.emit("echo", "back", [1, 2])
    assert client.get("echo") == ("back", [1, 2])


def test_server_asks_for_an_ack(server: ServerProcess, clients: Callable[..., Client]) -> None:
    client = clients(server.url, "call-me-result")
    client.sio.on("question", lambda arg: ("answer", arg * 2))
    client.connected()
    client.sio.emit("call-me", "question", 21)
    assert client.get("call-me-result") == (["answer", 42],)


def test_namespace(server: ServerProcess, clients: Callable[..., Client]) -> None:
    client = clients(server.url + "/chat", "welcome")
    client.connected()
    assert client.sio.namespace == "/chat"
    assert client.get("welcome") == ("/chat",)
    if kind_of(server) == "botmaster":
        assert client.sio.id is not None
        assert client.sio.id.startswith("/chat#")
    client.sio.send("in the chat room")
    if kind_of(server) != "botmaster":  # the bot only listens on "/"
        assert client.get("message") == ("in the chat room",)
    acked: queue.Queue[tuple[Any, ...]] = queue.Queue()
    client.sio.emit("echo", "nsp", callback=lambda *a: acked.put(a))
    assert acked.get(timeout=TIMEOUT) == ("nsp",)


def test_namespace_option(socketio4: ServerProcess, clients: Callable[..., Client]) -> None:
    client = clients(socketio4.url, "welcome", namespace="/chat")
    assert client.get("welcome") == ("/chat",)
    with pytest.raises(ValueError, match="namespace"):
        SocketIO(socketio4.url + "/chat", namespace="/other")


def test_binary_attachments_round_trip(
    server: ServerProcess, clients: Callable[..., Client]
) -> None:
    client = clients(server.url)
    blob = bytes(range(256)) * 40
    acked: queue.Queue[tuple[Any, ...]] = queue.Queue()
    client.sio.emit(
        "echo",
        blob,
        {"nested": [b"", bytearray(b"\x00\x01"), "text"], "n": 1},
        memoryview(b"view"),
        callback=lambda *a: acked.put(a),
    )
    assert acked.get(timeout=TIMEOUT) == (
        blob,
        {"nested": [b"", b"\x00\x01", "text"], "n": 1},
        b"view",
    )


def test_binary_event_from_the_server(
    socketio4: ServerProcess, clients: Callable[..., Client]
) -> None:
    client = clients(socketio4.url, "echo")
    client.sio.emit("echo", b"\xff\x00binary", "and text")
    assert client.get("echo") == (b"\xff\x00binary", "and text")
    client.sio.send(b"raw")
    assert client.get("message") == (b"raw",)


# -- connect errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["socketio4", "python-socketio"])
def test_connect_error_from_middleware(
    kind: str, servers: dict[str, ServerProcess], clients: Callable[..., Client]
) -> None:
    if kind not in servers:
        servers[kind] = start_server(kind)
    url = servers[kind].url + "/private"
    refused = clients(url, auth={"token": "wrong"})
    (data,) = refused.get("connect_error")
    assert data == {"message": "not authorized", "data": {"reason": "bad token"}}
    assert refused.sio.wait(TIMEOUT)
    assert not refused.sio.connected
    assert "connect" not in refused.order
    assert "disconnect" not in refused.order

    accepted = clients(url, "auth", auth={"token": "secret"})
    accepted.connected()
    assert accepted.get("auth") == ({"token": "secret"},)


def test_connect_error_from_v3_middleware(
    botmaster: ServerProcess, clients: Callable[..., Client]
) -> None:
    client = clients(botmaster.url + "/private")
    assert client.get("connect_error") == ({"message": "not authorized"},)
    assert client.sio.wait(TIMEOUT)


@pytest.mark.parametrize("kind", ["botmaster", "socketio4"])
def test_unknown_namespace(
    kind: str, servers: dict[str, ServerProcess], clients: Callable[..., Client]
) -> None:
    if kind not in servers:
        servers[kind] = start_server(kind)
    client = clients(servers[kind].url + "/nowhere")
    (data,) = client.get("connect_error")
    assert data["message"] == "Invalid namespace"


@pytest.mark.parametrize("kind", ["socketio4", "python-socketio"])
def test_auth_payload(
    kind: str, servers: dict[str, ServerProcess], clients: Callable[..., Client]
) -> None:
    if kind not in servers:
        servers[kind] = start_server(kind)
    client = clients(servers[kind].url, "auth", auth={"user": "ada", "n": [1]})
    assert client.get("auth") == ({"user": "ada", "n": [1]},)
    # python-socketio sends what its connect handler emits before the CONNECT reply: such events
    # wait for the connect event, as in socket.io-client.
    assert client.order == ["connect", "auth"]


def test_auth_with_a_v3_server_warns(
    botmaster: ServerProcess, clients: Callable[..., Client], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="mesiboscript"):
        client = clients(botmaster.url, auth={"token": "x"})
        client.connected()
    assert any("auth is not sent" in r.getMessage() for r in caplog.records)


# -- disconnecting ----------------------------------------------------------------------------


def test_server_side_disconnect(server: ServerProcess, clients: Callable[..., Client]) -> None:
    client = clients(server.url)
    client.connected()
    client.sio.emit("disconnect-me")
    assert client.get("disconnect") == ("io server disconnect",)
    assert not client.sio.connected
    assert client.sio.wait(TIMEOUT)
    assert client.order == ["connect", "disconnect"]


def test_client_close(server: ServerProcess, clients: Callable[..., Client]) -> None:
    client = clients(server.url)
    client.connected()
    client.sio.close()
    assert not client.sio.connected
    assert client.get("disconnect") == ("io client disconnect",)
    assert client.sio.wait(TIMEOUT)
    client.sio.emit("echo", "after close")  # nothing is sent, nothing raised
    client.sio.close()  # a second close does nothing
    assert client.order == ["connect", "disconnect"]


def test_server_going_away_is_a_transport_close(
    own_servers: list[ServerProcess], clients: Callable[..., Client]
) -> None:
    server = node_server("socketio4_echo_server.js")
    own_servers.append(server)
    client = clients(server.url)
    client.connected()
    server.stop()
    (reason,) = client.get("disconnect")
    assert reason in ("transport close", "transport error")


# -- protocol versions ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["botmaster", "socketio4", "python-socketio"])
def test_explicit_protocol(
    kind: str, servers: dict[str, ServerProcess], clients: Callable[..., Client]
) -> None:
    if kind not in servers:
        servers[kind] = start_server(kind)
    version = 3 if kind == "botmaster" else 4
    client = clients(servers[kind].url, protocol=version)
    client.connected()
    assert client.sio.protocol == version
    acked: queue.Queue[tuple[Any, ...]] = queue.Queue()
    client.sio.emit("echo", version, callback=lambda *a: acked.put(a))
    assert acked.get(timeout=TIMEOUT) == (version,)


@pytest.mark.parametrize("kind", ["socketio4", "python-socketio"])
def test_v4_server_refuses_v3(
    kind: str, servers: dict[str, ServerProcess], clients: Callable[..., Client]
) -> None:
    if kind not in servers:
        servers[kind] = start_server(kind)
    client = clients(servers[kind].url, protocol=3)
    (data,) = client.get("connect_error")
    assert data["message"] == "xhr poll error"  # HTTP 400 to the polling handshake
    assert data["description"]


def test_auto_falls_back_when_v4_is_refused(
    own_servers: list[ServerProcess], clients: Callable[..., Client]
) -> None:
    # socket.io 4 set up to refuse EIO=4 in allowRequest (an HTTP error), as a v3-only server.
    server = node_server("socketio4_echo_server.js", "--refuse-eio4")
    own_servers.append(server)
    client = clients(server.url + "/chat", "welcome")
    client.connected()
    assert client.sio.protocol == 3
    assert client.get("welcome") == ("/chat",)
    acked: queue.Queue[tuple[Any, ...]] = queue.Queue()
    client.sio.emit("echo", b"bin", callback=lambda *a: acked.put(a))
    assert acked.get(timeout=TIMEOUT) == (b"bin",)


def test_auto_detects_a_v3_server_that_accepts_eio4(
    botmaster: ServerProcess, clients: Callable[..., Client]
) -> None:
    # socket.io 1.7 ignores EIO=4 and talks v3: its unasked CONNECT gives it away at once.
    client = clients(botmaster.url + "?botmasterUserId=auto")
    client.connected()
    assert client.sio.protocol == 3


def test_auto_detects_a_v3_server_even_after_the_probe(
    botmaster: ServerProcess, clients: Callable[..., Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    # With no grace period the client may commit to v4 before the server's CONNECT arrives; the
    # CONNECT then lacks the sid every v5 server sends, and the client switches to v3 anyway.
    monkeypatch.setattr("mesiboscript._socketio._PROBE_GRACE", 0.0)
    client = clients(botmaster.url + "?botmasterUserId=late")
    client.connected()
    assert client.sio.protocol == 3
    client.sio.send({"text": "still v3"})
    assert client.get("message")[0]["message"]["text"] == "still v3"


def test_custom_path(own_servers: list[ServerProcess], clients: Callable[..., Client]) -> None:
    server = node_server("socketio4_echo_server.js", "--path", "/custom/")
    own_servers.append(server)
    client = clients(server.url, path="/custom")
    client.connected()
    wrong = clients(server.url, timeout=0.5)  # node's http server never answers that path
    (data,) = wrong.get("connect_error")
    assert data["message"] == "timeout"
    wrong = clients(server.url, transports=["websocket"], timeout=TIMEOUT)
    (data,) = wrong.get("connect_error")
    assert data["message"] == "websocket error"


# -- heartbeats -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_heartbeat_keeps_the_connection(
    kind: str, own_servers: list[ServerProcess], clients: Callable[..., Client]
) -> None:
    # v4 servers ping every 100 ms and drop a client that does not pong within 500 ms; the v3
    # server drops a client that has not pinged for 600 ms.
    server = start_server(kind, heartbeat_ms=(100, 500))
    own_servers.append(server)
    client = clients(server.url)
    client.connected()
    with pytest.raises(AssertionError, match="no 'disconnect' event"):
        client.get("disconnect", timeout=1.5)  # many heartbeats later
    acked: queue.Queue[tuple[Any, ...]] = queue.Queue()
    client.sio.emit("echo", "alive", callback=lambda *a: acked.put(a))
    assert acked.get(timeout=TIMEOUT) == ("alive",)


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")
@pytest.mark.parametrize("kind", ["botmaster", "socketio4"])
def test_ping_timeout_when_the_server_stalls(
    kind: str, own_servers: list[ServerProcess], clients: Callable[..., Client]
) -> None:
    server = start_server(kind, heartbeat_ms=(100, 200))
    own_servers.append(server)
    client = clients(server.url, close_timeout=0.5, reconnection=False)
    client.connected()
    server.pause()  # the process stops: no pings (v4), no pongs (v3), but TCP stays up
    try:
        assert client.get("disconnect") == ("ping timeout",)
        assert client.sio.wait(TIMEOUT)
    finally:
        server.resume()


# -- failures before connecting ---------------------------------------------------------------


def test_handlers_and_acks_go_through_the_loop_dispatch(
    socketio4: ServerProcess, clients: Callable[..., Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    # One dispatch for every handler (it is what keeps a handler from killing the I/O thread).
    loop = get_loop()
    owners: list[Any] = []
    real = loop.dispatch

    def counting(owner: Any, handler: Callable[..., Any], *args: Any) -> None:
        owners.append(owner)
        real(owner, handler, *args)

    monkeypatch.setattr(loop, "dispatch", counting)
    client = clients(socketio4.url, "echo")
    client.connected()
    acked: queue.Queue[tuple[Any, ...]] = queue.Queue()
    client.sio.emit("echo", "hi", callback=lambda *a: acked.put(a))
    assert acked.get(timeout=TIMEOUT) == ("hi",)
    client.sio.emit("echo", "back")
    assert client.get("echo") == ("back",)
    late: queue.Queue[str] = queue.Queue()
    client.sio.on("connect", lambda: late.put("late connect"))  # one-shot: heard once, late
    assert late.get(timeout=TIMEOUT) == "late connect"
    assert owners.count(client.sio) >= 4  # onconnect, the ack, echo, the late connect


def test_unknown_handler_name_raises_with_a_hint() -> None:
    sio = SocketIO(f"http://127.0.0.1:{free_port()}", timeout=1)
    try:
        with pytest.raises(AttributeError, match="did you mean 'onconnect_error'"):
            sio.onConnectError = print  # type: ignore[attr-defined]
    finally:
        sio.close()
        assert sio.wait(TIMEOUT)


def test_refused_connection(clients: Callable[..., Client]) -> None:
    client = clients(f"http://127.0.0.1:{free_port()}")
    (data,) = client.get("connect_error")
    assert data["message"] == "xhr poll error"
    assert data["error"] == SocketError.ConnectionRefusedError
    client = clients(f"http://127.0.0.1:{free_port()}", transports=["websocket"])
    (data,) = client.get("connect_error")
    assert data["message"] == "websocket error"
    assert data["error"] == SocketError.ConnectionRefusedError
    assert client.sio.wait(TIMEOUT)


def test_connect_timeout(clients: Callable[..., Client]) -> None:
    with socket.socket() as listener:  # accepts TCP (the kernel does) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = clients(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=0.3)
        assert client.get("connect_error") == ({"message": "timeout"},)
        assert client.sio.wait(TIMEOUT)


# -- handlers ---------------------------------------------------------------------------------


def test_handlers_set_late_miss_nothing(socketio4: ServerProcess) -> None:
    sio = SocketIO(socketio4.url)
    try:
        got_auth = threading.Event()
        sio.on("auth", lambda auth: got_auth.set())  # sent right after connecting
        assert got_auth.wait(TIMEOUT)
        # Connected, with no onconnect: the event waits. So do events with no handler yet.
        acked = threading.Event()
        sio.emit("echo", "early")  # re-emitted by the server before it acks the next one
        sio.emit("echo", "marker", callback=lambda *a: acked.set())
        assert acked.wait(TIMEOUT)
        events: queue.Queue[tuple[str, Any, str]] = queue.Queue()
        thread = threading.current_thread().name
        sio.onconnect = lambda: events.put(("connect", None, threading.current_thread().name))
        sio.on("echo", lambda arg: events.put(("echo", arg, threading.current_thread().name)))
        assert events.get(timeout=TIMEOUT) == ("connect", None, "mesiboscript-io")
        assert events.get(timeout=TIMEOUT) == ("echo", "early", "mesiboscript-io")
        assert thread != "mesiboscript-io"
    finally:
        sio.close()
        assert sio.wait(TIMEOUT)


def test_a_late_connect_handler_hears_connect_before_a_new_event(socketio4: ServerProcess) -> None:
    """onconnect set after connect happened, then an event's handler, with that event already
    waiting to be read: connect is delivered first."""
    sio = SocketIO(socketio4.url, transports=["websocket"])
    try:
        got_auth = threading.Event()
        sio.on("auth", lambda auth: got_auth.set())  # sent right after connecting
        assert got_auth.wait(TIMEOUT)
        order: queue.Queue[str] = queue.Queue()
        loop, held, release = get_loop(), threading.Event(), threading.Event()
        loop.call_soon_threadsafe(lambda: (held.set(), release.wait(TIMEOUT)))
        assert held.wait(TIMEOUT)  # the I/O thread is busy: nothing is read or delivered
        try:
            ws = sio._manager._link.websocket  # type: ignore[union-attr]
            sock = ws._link.socket if ws is not None else None
            assert sock is not None
            # Emit "echo" by hand (the I/O thread that would send it is held); the server
            # re-emits it and the reply waits, unread, in the socket.
            frame = build_frame(0x1, b'42["echo","new"]')
            assert isinstance(frame, bytes)
            sock.sendall(frame)
            assert select.select([sock], [], [], TIMEOUT)[0]
            sio.onconnect = lambda: order.put("connect")  # late: its delivery is queued
            sio.on("echo", lambda arg: order.put(f"echo {arg}"))
        finally:
            release.set()
        assert [order.get(timeout=TIMEOUT) for _ in range(2)] == ["connect", "echo new"]
    finally:
        sio.close()
        assert sio.wait(TIMEOUT)


def test_a_handler_that_raises_is_logged(
    socketio4: ServerProcess, clients: Callable[..., Client], caplog: pytest.LogCaptureFixture
) -> None:
    def boom() -> None:
        raise RuntimeError("boom in onconnect")

    client = clients(socketio4.url)
    client.sio.on("connect", boom)  # runs after onconnect, which records
    client.connected()
    acked: queue.Queue[tuple[Any, ...]] = queue.Queue()
    client.sio.emit("echo", "still working", callback=lambda *a: acked.put(a))
    assert acked.get(timeout=TIMEOUT) == ("still working",)
    records = [r for r in caplog.records if r.name == "mesiboscript" and r.exc_info]
    assert records, "the handler's exception was not logged"
    assert "boom in onconnect" in str(records[0].exc_info[1])  # type: ignore[index]


def test_on_as_decorator_and_off(socketio4: ServerProcess, clients: Callable[..., Client]) -> None:
    client = clients(socketio4.url, "echo")
    seen: list[Any] = []

    @client.sio.on("echo")
    def extra(*args: Any) -> None:
        seen.append(args)

    client.sio.emit("echo", 1)
    assert client.get("echo") == (1,)
    client.sio.off("echo", extra)
    client.sio.emit("echo", 2)
    assert client.get("echo") == (2,)
    assert seen == [(1,)]


def test_wait_inside_a_handler_raises(socketio4: ServerProcess) -> None:
    errors: queue.Queue[BaseException] = queue.Queue()

    def onconnect() -> None:
        try:
            sio.wait(0)
        except InvalidStateError as exc:
            errors.put(exc)

    sio = SocketIO(socketio4.url)
    sio.on("connect", onconnect)  # right after the constructor: it cannot miss connect
    try:
        assert isinstance(errors.get(timeout=TIMEOUT), InvalidStateError)
    finally:
        sio.close()
        assert sio.wait(TIMEOUT)


# -- arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("ftp://127.0.0.1:1", {}),
        ("127.0.0.1:1", {}),
        ("http://", {}),
        ("http://127.0.0.1:1/#frag", {}),
        ("http://127.0.0.1:99999", {}),
        ("http://127.0.0.1:1", {"protocol": 5}),
        ("http://127.0.0.1:1", {"protocol": "v4"}),
        ("http://127.0.0.1:1", {"protocol": True}),
        ("http://127.0.0.1:1", {"path": "socket.io"}),
        ("http://127.0.0.1:1", {"namespace": "chat"}),
        ("http://127.0.0.1:1", {"namespace": "/a,b"}),
        ("http://127.0.0.1:1/a", {"namespace": "/b"}),
        ("http://127.0.0.1:1", {"timeout": 0}),
        ("http://127.0.0.1:1", {"ping_interval": -1}),
    ],
)
def test_bad_arguments_raise_at_once(url: str, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        SocketIO(url, **options)


def test_bad_types_raise_at_once() -> None:
    with pytest.raises(TypeError):
        SocketIO("http://127.0.0.1:1", auth="token")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        SocketIO("http://127.0.0.1:1", auth={"x": object()})
    with pytest.raises(TypeError):
        SocketIO("http://127.0.0.1:1", no_such_option=1)


def test_bad_emits_raise_at_once(clients: Callable[..., Client]) -> None:
    client = clients(f"http://127.0.0.1:{free_port()}")
    sio = client.sio
    for name in ("connect", "disconnect", "connect_error"):
        with pytest.raises(ValueError, match="reserved"):
            sio.emit(name)
    with pytest.raises(TypeError):
        sio.emit("x", object())
    with pytest.raises(ValueError, match="JSON"):
        sio.emit("x", float("nan"))
    with pytest.raises(TypeError):
        sio.emit("x", callback="not callable")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sio.on("x", "not callable")  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        sio.onmessage = 42  # type: ignore[assignment]
    client.get("connect_error")


# -- the seed: a Botmaster bot ----------------------------------------------------------------


def test_botmaster_bot_replies(botmaster: ServerProcess, clients: Callable[..., Client]) -> None:
    client = clients(botmaster.url + "?botmasterUserId=seed-user")
    client.sio.send({"text": "Hey there botmaster!"})  # sent once connected
    (reply,) = client.get("message")
    assert reply["message"]["text"] == "Hey there botmaster!"
    assert reply["recipient"] == {"id": "seed-user"}
    # The bot's own documentation sends {message: {text}}; it answers that too.
    client.sio.send({"message": {"text": "second"}})
    (reply,) = client.get("message")
    assert reply["message"]["text"] == "second"


def test_botmaster_replies_reach_every_client_of_a_user(
    botmaster: ServerProcess, clients: Callable[..., Client]
) -> None:
    first = clients(botmaster.url + "?botmasterUserId=shared", "own message")
    second = clients(botmaster.url + "?botmasterUserId=shared")
    first.connected()
    second.connected()
    second.sio.send({"text": "to both"})
    assert first.get("message")[0]["message"]["text"] == "to both"
    assert second.get("message")[0]["message"]["text"] == "to both"
    assert first.get("own message") == ({"text": "to both"},)


def test_botmaster_client_example(botmaster: ServerProcess) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "botmaster_client.py"),
            botmaster.url,
            "example-user",
            "hello",
            "how are you?",
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 3,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["hello", "how are you?"]
