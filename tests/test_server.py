"""WebSocketServer (High Fidelity) against the library's own WebSocket client, on loopback."""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from mesiboscript import CloseData, MessageData, ReadyState, SocketError, WebSocket
from mesiboscript.server import ServerWebSocket, WebSocketServer

from .helpers import TIMEOUT, Certificates, Recorder, interruptible, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("mesiboscript-server")]


@pytest.fixture(autouse=True)
def no_server_threads() -> Iterator[None]:
    """Every server a test started has stopped its thread by the end of the test."""
    yield
    for thread in _server_threads():
        thread.join(TIMEOUT)
    assert not _server_threads()


@pytest.fixture
def server() -> Iterator[WebSocketServer]:
    with WebSocketServer() as s:
        yield s


class Accepted:
    """Collects the server side: each connection (waitable) with a Recorder of its events, the
    messages (waitable, echoed unless ``echo=False``) and the threads the handlers ran on."""

    def __init__(self, server: WebSocketServer, echo: bool = True) -> None:
        self.connections: queue.Queue[ServerWebSocket] = queue.Queue()
        self.messages: queue.Queue[Any] = queue.Queue()
        self.recorders: list[Recorder] = []
        self.states: list[ReadyState] = []  # each connection's readyState when accepted
        self.threads: set[str] = set()
        self.echo = echo
        server.onNewConnection = self.accept

    def accept(self, ws: ServerWebSocket) -> None:
        self.threads.add(threading.current_thread().name)
        self.states.append(ws.readyState)
        self.recorders.append(Recorder(ws, on_message=lambda event: self.message(ws, event)))
        self.connections.put(ws)

    def message(self, ws: ServerWebSocket, event: MessageData) -> None:
        self.threads.add(threading.current_thread().name)
        self.messages.put(event.data)
        if self.echo:
            ws.send(event.data)

    def next_connection(self) -> ServerWebSocket:
        return self.connections.get(timeout=TIMEOUT)

    def wait_closed(self) -> Recorder:
        """The first connection's recorder, once its close event came."""
        wait_for(lambda: bool(self.recorders))
        self.recorders[0].wait_closed()
        return self.recorders[0]


def open_client(url: str, **options: Any) -> tuple[WebSocket, Recorder]:
    ws = WebSocket(url, **options)
    recorder = Recorder(ws)
    assert recorder.opened.wait(TIMEOUT), recorder.events
    return ws, recorder


def wait_messages(recorder: Recorder, count: int) -> list[Any]:
    done = threading.Event()

    def check(_event: Any) -> None:
        if len(recorder.messages) >= count:
            done.set()

    recorder.ws.addEventListener("message", check)
    if len(recorder.messages) < count:
        assert done.wait(TIMEOUT), recorder.messages
    return recorder.messages[:count]


# -- properties -------------------------------------------------------------------------------


def test_properties(server: WebSocketServer) -> None:
    assert server.port > 0
    assert server.url == f"ws://127.0.0.1:{server.port}/"
    assert server.listening
    assert repr(server).startswith("<WebSocketServer ws://127.0.0.1:")
    server.close()
    assert not server.listening
    server.close()  # a second call does nothing


def test_hifi_options_object() -> None:
    with WebSocketServer({"port": 0, "serverName": "HiFi test"}) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
            sock.sendall(
                b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            response = b""
            while b"\r\n\r\n" not in response:
                response += sock.recv(4096)
        assert response.startswith(b"HTTP/1.1 101")
        assert b"Server: HiFi test\r\n" in response


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="port"):
        WebSocketServer(70000)
    with pytest.raises(ValueError, match="port"):
        WebSocketServer(-1)
    with pytest.raises(TypeError, match="unknown"):
        WebSocketServer({"prot": 8080})
    with pytest.raises(TypeError, match="ssl_context"):
        WebSocketServer(ssl_context="yes")  # type: ignore[arg-type]


def test_address_in_use_raises(server: WebSocketServer) -> None:
    with pytest.raises(OSError, match="address already in use"):
        WebSocketServer(server.port)


# -- messages ---------------------------------------------------------------------------------


def test_echo_text_binary_json(server: WebSocketServer) -> None:
    accepted = Accepted(server)
    ws, recorder = open_client(server.url + "room?x=1")
    conn = accepted.next_connection()
    assert conn.url == f"ws://127.0.0.1:{server.port}/room?x=1"
    assert conn.readyState == ReadyState.OPEN == ServerWebSocket.OPEN
    assert conn.remoteAddress[0] == "127.0.0.1"
    ws.send("text")
    ws.send(b"\x00\xffbinary")
    ws.send({"a": [1, 2]})
    assert wait_messages(recorder, 3) == ["text", b"\x00\xffbinary", '{"a":[1,2]}']
    conn.send(bytearray(b"ba"))
    conn.send(memoryview(b"mv"))
    conn.send([1, "two"])
    assert wait_messages(recorder, 6)[3:] == [b"ba", b"mv", '[1,"two"]']
    with pytest.raises(TypeError):
        conn.send(12)  # type: ignore[arg-type]
    ws.close()
    recorder.wait_closed()
    accepted.wait_closed()
    assert accepted.threads == {"mesiboscript-io"}  # the one I/O thread, as every handler


def test_send_from_other_threads_keeps_order(server: WebSocketServer) -> None:
    accepted = Accepted(server, echo=False)
    ws, recorder = open_client(server.url)
    conn = accepted.next_connection()
    count = 300

    def sender() -> None:
        for i in range(count):
            conn.send(str(i))

    thread = threading.Thread(target=sender)
    thread.start()
    thread.join(TIMEOUT)
    assert wait_messages(recorder, count) == [str(i) for i in range(count)]
    ws.close()
    recorder.wait_closed()


def test_buffered_amount_counts_sends_in_a_handler(server: WebSocketServer) -> None:
    seen: queue.Queue[int] = queue.Queue()

    def on_new(conn: ServerWebSocket) -> None:
        conn.send("héllo")  # 6 bytes of UTF-8, written after this handler returns
        seen.put(conn.bufferedAmount)

    server.onNewConnection = on_new
    ws, recorder = open_client(server.url)
    assert seen.get(timeout=TIMEOUT) == 6
    assert wait_messages(recorder, 1) == ["héllo"]
    ws.close()
    recorder.wait_closed()


def test_late_message_handler_gets_every_message(server: WebSocketServer) -> None:
    connections: queue.Queue[ServerWebSocket] = queue.Queue()
    server.onNewConnection = connections.put  # no handlers assigned here
    ws, recorder = open_client(server.url)
    for i in range(20):
        ws.send(f"m{i}")
    conn = connections.get(timeout=TIMEOUT)
    received: queue.Queue[Any] = queue.Queue()
    conn.onmessage = lambda event: received.put(event.data)  # from the test's thread, later
    assert [received.get(timeout=TIMEOUT) for _ in range(20)] == [f"m{i}" for i in range(20)]
    ws.close()
    recorder.wait_closed()


def test_messages_wait_for_a_handler_set_after_the_client_closed(server: WebSocketServer) -> None:
    connections: queue.Queue[ServerWebSocket] = queue.Queue()
    server.onNewConnection = connections.put
    ws, recorder = open_client(server.url)
    for i in range(5):
        ws.send(f"m{i}")
    ws.close(4002, "bye")
    recorder.wait_closed()
    conn = connections.get(timeout=TIMEOUT)
    events: queue.Queue[Any] = queue.Queue()
    # onmessage first: a late onclose is delivered when it is set (as on the client WebSocket),
    # whether or not messages still wait for an onmessage that may never come.
    conn.onmessage = lambda event: events.put(event.data)
    conn.onclose = lambda event: events.put(("close", event.code))
    got = [events.get(timeout=TIMEOUT) for _ in range(6)]
    assert got == ["m0", "m1", "m2", "m3", "m4", ("close", 4002)]


def test_late_message_handler_sees_the_state_of_its_event(server: WebSocketServer) -> None:
    # readyState-at-event, as on the client: a message handler runs "while OPEN" even when it is
    # set after the connection closed, and close() there makes its later code see CLOSING.
    connections: queue.Queue[ServerWebSocket] = queue.Queue()
    server.onNewConnection = connections.put
    ws, recorder = open_client(server.url)
    ws.send("m")
    ws.close(4000)
    recorder.wait_closed()
    conn = connections.get(timeout=TIMEOUT)
    seen: queue.Queue[Any] = queue.Queue()

    def on_message(event: MessageData) -> None:
        before = conn.readyState
        conn.send("ignored: the connection is gone")  # nothing raised
        conn.close()
        seen.put((event.data, before, conn.readyState))

    conn.onmessage = on_message
    assert seen.get(timeout=TIMEOUT) == ("m", ReadyState.OPEN, ReadyState.CLOSING)
    closes: queue.Queue[Any] = queue.Queue()
    conn.onclose = lambda event: closes.put((event.code, conn.readyState))
    assert closes.get(timeout=TIMEOUT) == (4000, ReadyState.CLOSED)
    assert conn.readyState == ReadyState.CLOSED  # outside a handler: as it is


def test_handler_removed_then_set_again(server: WebSocketServer) -> None:
    connections: queue.Queue[ServerWebSocket] = queue.Queue()
    server.onNewConnection = connections.put
    ws, recorder = open_client(server.url)
    conn = connections.get(timeout=TIMEOUT)
    first: queue.Queue[Any] = queue.Queue()
    conn.onmessage = lambda event: first.put(event.data)
    ws.send("one")
    assert first.get(timeout=TIMEOUT) == "one"
    conn.onmessage = None
    ws.send("two")
    ws.send("three")
    second: queue.Queue[Any] = queue.Queue()
    conn.onmessage = lambda event: second.put(event.data)
    assert [second.get(timeout=TIMEOUT) for _ in range(2)] == ["two", "three"]
    ws.close()
    recorder.wait_closed()


def test_late_close_handler_is_called_once(server: WebSocketServer) -> None:
    connections: queue.Queue[ServerWebSocket] = queue.Queue()
    server.onNewConnection = connections.put
    ws, recorder = open_client(server.url)
    conn = connections.get(timeout=TIMEOUT)
    ws.close(4001, "early")
    recorder.wait_closed()
    closes: queue.Queue[CloseData] = queue.Queue()
    conn.onclose = closes.put
    event = closes.get(timeout=TIMEOUT)
    assert (event.code, event.reason, event.wasClean) == (4001, "early", True)
    assert conn.readyState == ReadyState.CLOSED
    conn.onclose = closes.put
    assert closes.empty()


def test_new_connection_signal(server: WebSocketServer) -> None:
    got: queue.Queue[ServerWebSocket] = queue.Queue()
    server.newConnection.connect(got.put)
    ws, recorder = open_client(server.url)
    assert isinstance(got.get(timeout=TIMEOUT), ServerWebSocket)
    server.newConnection.disconnect(got.put)
    with pytest.raises(TypeError):
        server.newConnection.connect("not callable")  # type: ignore[arg-type]
    ws.close()
    recorder.wait_closed()


def test_handler_exception_is_logged_and_serving_goes_on(
    server: WebSocketServer, caplog: pytest.LogCaptureFixture
) -> None:
    def on_new(conn: ServerWebSocket) -> None:
        def on_message(event: MessageData) -> None:
            if event.data == "boom":
                raise RuntimeError("handler failure")
            conn.send(event.data)

        conn.onmessage = on_message

    server.onNewConnection = on_new
    with caplog.at_level(logging.ERROR, logger="mesiboscript"):
        ws, recorder = open_client(server.url)
        ws.send("boom")
        ws.send("after")
        assert wait_messages(recorder, 1) == ["after"]
    records = [r for r in caplog.records if r.name == "mesiboscript"]
    assert records
    assert records[0].exc_info is not None
    assert "handler failure" in caplog.text
    ws.close()
    recorder.wait_closed()


# -- closing ----------------------------------------------------------------------------------


def test_server_side_close_with_code(server: WebSocketServer) -> None:
    accepted = Accepted(server)
    _ws, recorder = open_client(server.url)
    conn = accepted.next_connection()
    conn.send("last")
    conn.close(4000, "bye")
    assert conn.readyState in (ReadyState.CLOSING, ReadyState.CLOSED)
    conn.send("ignored after close")  # the standard: nothing sent, nothing raised
    event = recorder.wait_closed()
    assert (event.code, event.reason, event.wasClean) == (4000, "bye", True)
    assert recorder.messages == ["last"]
    server_side = accepted.wait_closed()
    # The server's close event reports the client's answering close frame: the code echoed.
    assert server_side.events[-1] == ("close", ReadyState.CLOSED, 4000, True)
    conn.close(4000, "again")  # a second call does nothing


def test_server_side_close_without_code_reports_1005(server: WebSocketServer) -> None:
    accepted = Accepted(server)
    _ws, recorder = open_client(server.url)
    accepted.next_connection().close()
    assert recorder.wait_closed().code == 1005


def test_close_arguments_are_validated(server: WebSocketServer) -> None:
    accepted = Accepted(server)
    ws, recorder = open_client(server.url)
    conn = accepted.next_connection()
    with pytest.raises(ValueError, match="1000 or in 3000-4999"):
        conn.close(1001)
    with pytest.raises(ValueError, match="at most 123"):
        conn.close(1000, "x" * 124)
    assert conn.readyState == ReadyState.OPEN
    ws.close()
    recorder.wait_closed()


def test_client_close_reaches_server(server: WebSocketServer) -> None:
    accepted = Accepted(server)
    ws, recorder = open_client(server.url)
    ws.close(3001, "client done")
    recorder.wait_closed()
    server_side = accepted.wait_closed()
    assert accepted.states == [ReadyState.OPEN]
    assert server_side.events == [("close", ReadyState.CLOSED, 3001, True)]
    assert server_side.close_data is not None
    assert server_side.close_data.reason == "client done"


def test_tcp_drop_fires_error_then_1006(server: WebSocketServer) -> None:
    accepted = Accepted(server)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(4096)
    accepted.next_connection()
    sock.close()  # no close frame
    server_side = accepted.wait_closed()
    assert accepted.states == [ReadyState.OPEN]
    assert server_side.kinds() == ["error", "close"]
    assert server_side.errors == [SocketError.RemoteHostClosedError]
    assert server_side.events[-1] == ("close", ReadyState.CLOSED, 1006, False)
    assert server_side.close_data is not None
    assert server_side.close_data.reason == ""


def _raw_client(server: WebSocketServer) -> socket.socket:
    """A client that upgrades by hand, so the test can drop it without a close frame."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(4096)
    return sock


def test_tcp_drop_fires_onclose_without_onerror(server: WebSocketServer) -> None:
    # Bug (issue 12): with no onerror set, the undelivered error event held back onclose forever.
    closes: queue.Queue[CloseData] = queue.Queue()
    server.onNewConnection = lambda conn: setattr(conn, "onclose", closes.put)
    sock = _raw_client(server)
    sock.close()  # no close frame
    event = closes.get(timeout=TIMEOUT)
    assert (event.code, event.wasClean) == (1006, False)


def test_onclose_fires_while_messages_wait_for_a_handler(server: WebSocketServer) -> None:
    # The same bug, another way in: messages that no onmessage took held back onclose forever.
    closes: queue.Queue[CloseData] = queue.Queue()
    server.onNewConnection = lambda conn: setattr(conn, "onclose", closes.put)
    ws, recorder = open_client(server.url)
    ws.send("nobody listens")
    ws.close(4000, "bye")
    recorder.wait_closed()
    event = closes.get(timeout=TIMEOUT)
    assert (event.code, event.reason, event.wasClean) == (4000, "bye", True)


def test_unknown_handler_names_raise_with_a_hint(server: WebSocketServer) -> None:
    with pytest.raises(AttributeError, match="did you mean 'onNewConnection'"):
        server.onnewconnection = print  # type: ignore[attr-defined]
    connections: queue.Queue[ServerWebSocket] = queue.Queue()
    server.onNewConnection = connections.put
    ws, recorder = open_client(server.url)
    conn = connections.get(timeout=TIMEOUT)
    with pytest.raises(AttributeError, match="did you mean 'onmessage'"):
        conn.onMessage = print  # type: ignore[attr-defined]
    ws.close()
    recorder.wait_closed()


def test_late_error_handler_after_close_was_delivered(server: WebSocketServer) -> None:
    events: queue.Queue[Any] = queue.Queue()

    def on_new(conn: ServerWebSocket) -> None:
        conn.onclose = lambda event: (events.put(("close", event.code)), late(conn))

    def late(conn: ServerWebSocket) -> None:
        conn.onerror = lambda error: events.put(("error", error, conn.readyState))

    server.onNewConnection = on_new
    _raw_client(server).close()
    assert events.get(timeout=TIMEOUT) == ("close", 1006)
    assert events.get(timeout=TIMEOUT) == (
        "error",
        SocketError.RemoteHostClosedError,
        ReadyState.CLOSED,
    )


def test_reader_stays_bounded_behind_a_slow_handler(server: WebSocketServer) -> None:
    """The server's reader hands messages to the I/O thread; while a handler holds that thread,
    the reader must stop (TCP backpressure reaches the client) instead of buffering everything."""
    count, size = 256, 256 * 1024  # 64 MiB in all
    release = threading.Event()
    done = threading.Event()
    got: list[int] = []

    def on_message(event: MessageData) -> None:
        release.wait(TIMEOUT)  # the first message holds the I/O thread until the test says
        assert isinstance(event.data, bytes)
        got.append(int.from_bytes(event.data[:2], "little"))
        if len(got) == count:
            done.set()

    server.onNewConnection = lambda conn: setattr(conn, "onmessage", on_message)
    sock = _raw_client(server)
    header = b"\x82\xff" + size.to_bytes(8, "big") + b"\0\0\0\0"  # masked with a zero key
    stream = b"".join(header + i.to_bytes(2, "little") + bytes(size - 2) for i in range(count))
    sent = 0
    stalled = threading.Event()

    def sender() -> None:
        nonlocal sent
        view = memoryview(stream)
        sock.settimeout(1.0)  # no progress for this long: the server stopped reading
        while sent < len(stream):
            try:
                sent += sock.send(view[sent : sent + 65536])
            except socket.timeout:
                stalled.set()
                sock.settimeout(TIMEOUT)

    thread = threading.Thread(target=sender)
    thread.start()
    try:
        assert stalled.wait(TIMEOUT), "the server read everything behind a blocked handler"
        # What was taken: the inbox mark (1 MiB), websockets' queue (16 frames = 4 MiB) and the
        # kernel's buffers; far from all 64 MiB.
        assert sent < 40 * 1024 * 1024, sent
    finally:
        release.set()
        thread.join(TIMEOUT)
    assert done.wait(TIMEOUT), len(got)
    assert got == list(range(count))
    sock.close()


def test_server_close_sends_1001_to_every_client(server: WebSocketServer) -> None:
    accepted = Accepted(server)
    clients = [open_client(server.url) for _ in range(3)]
    for _ in clients:
        accepted.next_connection()
    server.close()
    assert not server.listening
    for _ws, recorder in clients:
        event = recorder.wait_closed()
        assert (event.code, event.reason, event.wasClean) == (1001, "Server closing.", True)
    assert server.clients == []
    # No longer listening: a new client is refused.
    ws = WebSocket(server.url)
    recorder = Recorder(ws)
    event = recorder.wait_closed()
    assert event.code == 1006
    assert recorder.error == SocketError.ConnectionRefusedError


def test_close_from_inside_a_handler(server: WebSocketServer) -> None:
    def on_new(conn: ServerWebSocket) -> None:
        conn.onmessage = lambda event: server.close()

    server.onNewConnection = on_new
    ws, recorder = open_client(server.url)
    ws.send("stop the server")
    event = recorder.wait_closed()
    assert (event.code, event.reason) == (1001, "Server closing.")


def test_close_from_a_client_handler_does_not_stall() -> None:
    # The closing handshakes need the client I/O thread the handler runs on: close() must not
    # block it (a stall would last close_timeout, longer than the test waits).
    with WebSocketServer(close_timeout=60.0) as server:
        Accepted(server)
        clients = [open_client(server.url) for _ in range(2)]
        clients[0][0].onmessage = lambda event: server.close()
        clients[0][0].send("close the server from my handler")
        for _ws, recorder in clients:
            assert recorder.wait_closed().code == 1001


# -- TLS and subprotocols ---------------------------------------------------------------------


def test_wss_with_generated_certificate(certs: Certificates) -> None:
    with WebSocketServer(ssl_context=certs.server_context()) as server:
        assert server.url == f"wss://127.0.0.1:{server.port}/"
        Accepted(server)
        ws, recorder = open_client(server.url, cafile=certs.cafile)
        ws.send("secure")
        assert wait_messages(recorder, 1) == ["secure"]
        ws.close()
        recorder.wait_closed()


def test_subprotocol_is_negotiated() -> None:
    with WebSocketServer(subprotocols=["chat.v2", "chat"]) as server:
        accepted = Accepted(server)
        ws, recorder = open_client(server.url, protocols=["chat"])
        assert ws.protocol == "chat"
        assert accepted.next_connection().protocol == "chat"
        ws.close()
        recorder.wait_closed()


# -- the process ------------------------------------------------------------------------------


SCRIPT = """
import sys
from mesiboscript.server import WebSocketServer

server = WebSocketServer()

def on_new(ws):
    def on_message(event):
        if event.data == "quit":
            server.close()
        else:
            ws.send(event.data)
    ws.onmessage = on_message

server.onNewConnection = on_new
print(server.url, flush=True)
# The main code ends here: the listening server keeps the script alive.
"""


def _start_script(code: str) -> tuple[subprocess.Popen[str], str]:
    proc = interruptible("-c", textwrap.dedent(code), cwd=ROOT)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("ws://"), proc.communicate(timeout=TIMEOUT)
    return proc, url


def test_script_keeps_serving_after_main_code_ends() -> None:
    proc, url = _start_script(SCRIPT)
    try:
        ws, recorder = open_client(url)
        ws.send("still there?")
        assert wait_messages(recorder, 1) == ["still there?"]
        ws.send("quit")
        assert recorder.wait_closed().code == 1001
        assert proc.wait(TIMEOUT) == 0
    finally:
        proc.kill()
        proc.communicate()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child is POSIX")
def test_ctrl_c_closes_clients_with_1001() -> None:
    proc, url = _start_script(SCRIPT)
    try:
        _ws, recorder = open_client(url)
        proc.send_signal(signal.SIGINT)
        event = recorder.wait_closed()
        assert (event.code, event.reason) == (1001, "Server closing.")
        proc.wait(TIMEOUT)
    finally:
        proc.kill()
        proc.communicate()


def test_import_without_websockets_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['websockets'] = None\n"
        "try:\n"
        "    import mesiboscript.server\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=TIMEOUT
    )
    assert "pip install 'mesiboscript[server]'" in out.stdout, out


def test_new_connection_handlers_see_it_open_though_the_client_already_closed(
    server: WebSocketServer,
) -> None:
    """The I/O thread is busy while a client connects and closes: onNewConnection, run after
    that, still sees readyState OPEN, the state as of its event (it saw CLOSING before)."""
    from websockets.sync.client import connect

    from mesiboscript._loop import get_loop

    states: list[ReadyState] = []
    announced = threading.Event()

    def on_new(ws: ServerWebSocket) -> None:
        states.append(ws.readyState)
        announced.set()

    server.onNewConnection = on_new
    held, release = threading.Event(), threading.Event()
    get_loop().call_soon_threadsafe(lambda: (held.set(), release.wait(TIMEOUT)))
    assert held.wait(TIMEOUT)
    try:
        with connect(server.url, open_timeout=TIMEOUT, close_timeout=TIMEOUT):
            pass  # closed on leaving: the server's thread answers the closing handshake
    finally:
        release.set()
    assert announced.wait(TIMEOUT)
    assert states == [ReadyState.OPEN]
