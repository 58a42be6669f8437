"""``SocketIO`` against a misbehaving Engine.IO server: malformed packets, namespace errors,
stray packets, v3 fallback paths, acknowledgement replies and held events.

The server is the tests' ``RawServer`` with a handler that speaks just enough Engine.IO by
hand (``FakeEngineIO``): each test scripts what the server says and reads what the client sends.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from typing import Any, Callable, Optional

import pytest

from mesiboscript._socketio import SocketIO

from .helpers import TIMEOUT, free_port
from .rawserver import OP_CLOSE, OP_PING, OP_TEXT, RawConnection, RawServer, close_frame, frame
from .test_socketio import make_clients

Talk = Callable[["FakeEngineIO"], Any]


class FakeEngineIO:
    """One server connection: the WebSocket handshake, then Engine.IO packets by hand."""

    def __init__(self, conn: RawConnection) -> None:
        self.conn = conn
        self.request = b""

    @property
    def eio(self) -> int:
        return 3 if b"EIO=3" in self.request else 4

    def upgrade(self) -> None:
        self.request = self.conn.handshake()

    def open(self, max_payload: Optional[int] = 1_000_000, **extra: Any) -> None:
        """Upgrade and send the open packet (long heartbeats: no pings during a test)."""
        self.upgrade()
        info: dict[str, Any] = {
            "sid": "engine-sid",
            "upgrades": [],
            "pingInterval": 25000,
            "pingTimeout": 20000,
        }
        if max_payload is not None:
            info["maxPayload"] = max_payload
        info.update(extra)
        self.send("0" + json.dumps(info))

    def send(self, *packets: str) -> None:
        """Text frames, all in one write."""
        self.conn.sock.sendall(b"".join(frame(OP_TEXT, p) for p in packets))

    def recv(self) -> Optional[str]:
        """The client's next text frame; None once it sends a close frame (answered)."""
        while True:
            opcode, payload = self.conn.read_frame()
            if opcode == OP_TEXT:
                return payload.decode("utf-8")
            if opcode == OP_CLOSE:
                self.conn.sock.sendall(frame(OP_CLOSE, payload))
                return None
            if opcode == OP_PING:
                self.conn.sock.sendall(frame(0xA, payload))

    def until_closed(self) -> list[str]:
        """Every text frame until the client's close frame."""
        got = []
        while (text := self.recv()) is not None:
            got.append(text)
        return got

    def accept(self, namespace: str = "/") -> None:
        """Open, read the client's CONNECT and answer it with a sid (v4)."""
        self.open()
        connect = self.recv()
        assert connect is not None
        assert connect.startswith("40"), connect
        prefix = "" if namespace == "/" else namespace + ","
        self.send(f"40{prefix}" + json.dumps({"sid": "socket-sid"}))


@pytest.fixture
def fake() -> Any:
    """``fake(talk)``: a server whose every connection runs ``talk(FakeEngineIO)``; the URL."""
    started: list[RawServer] = []

    def make(talk: Talk) -> tuple[RawServer, str]:
        server = RawServer(handler=lambda conn: talk(FakeEngineIO(conn))).start()
        started.append(server)
        return server, f"http://127.0.0.1:{server.port}"

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def clients() -> Any:
    yield from make_clients(transports=["websocket"])  # the fake server is WebSocket only


# -- properties and arguments -----------------------------------------------------------------


def test_url_property_and_type_errors() -> None:
    url = f"http://127.0.0.1:{free_port()}/chat"
    sio = SocketIO(url, timeout=TIMEOUT)
    try:
        assert sio.url == url
        assert sio.namespace == "/chat"
        with pytest.raises(TypeError, match="event name is a str"):
            sio.on(1, print)  # type: ignore[call-overload]
        with pytest.raises(TypeError, match="event name is a str"):
            sio.emit(1)  # type: ignore[arg-type]
    finally:
        sio.close()
        assert sio.wait(TIMEOUT)
    with pytest.raises(TypeError, match="url must be a str"):
        SocketIO(b"http://127.0.0.1:1/")  # type: ignore[arg-type]


# -- malformed and stray packets --------------------------------------------------------------


def test_a_packet_before_the_open_packet_is_a_parse_error(fake: Any, clients: Any) -> None:
    def talk(eio: FakeEngineIO) -> list[str]:
        eio.upgrade()
        eio.send('40{"sid":"early"}')
        return eio.until_closed()

    server, url = fake(talk)
    client = clients(url, protocol=4)
    (data,) = client.get("connect_error")
    assert data["message"] == "parse error"
    assert "before the open packet" in data["description"]
    assert server.result() == []


def test_a_second_open_packet_is_a_parse_error(fake: Any, clients: Any) -> None:
    def talk(eio: FakeEngineIO) -> list[str]:
        eio.accept()
        eio.send('0{"sid":"again","pingInterval":1,"pingTimeout":1}')
        return eio.until_closed()

    server, url = fake(talk)
    client = clients(url, protocol=4, reconnection=False)
    client.connected()
    assert client.get("disconnect") == ("parse error",)
    assert client.sio.wait(TIMEOUT)
    server.result()


def test_garbage_after_connecting_is_a_parse_error(fake: Any, clients: Any) -> None:
    def talk(eio: FakeEngineIO) -> None:
        eio.accept()
        eio.send("not engine.io")
        eio.until_closed()

    _, url = fake(talk)
    client = clients(url, protocol=4)
    client.connected()
    assert client.get("disconnect") == ("parse error",)


def test_an_engine_close_packet_ends_the_session(fake: Any, clients: Any) -> None:
    def talk(eio: FakeEngineIO) -> None:
        eio.accept()
        eio.send("1")
        eio.until_closed()

    _, url = fake(talk)
    client = clients(url, protocol=4)
    client.connected()
    assert client.get("disconnect") == ("transport close",)


def test_a_clean_close_while_connecting_is_a_transport_close(fake: Any, clients: Any) -> None:
    def talk(eio: FakeEngineIO) -> None:
        eio.open()
        assert eio.recv() == "40"
        eio.conn.sock.sendall(close_frame(1000, "go away"))
        eio.conn.read_close_code()

    _, url = fake(talk)
    client = clients(url, protocol=4)
    (data,) = client.get("connect_error")
    assert data == {
        "message": "transport close",
        "description": "the WebSocket closed with 1000 go away",
    }


def test_stray_packets_are_ignored(fake: Any, clients: Any) -> None:
    # A pong a v4 server has no reason to send, another namespace's event, an event with a
    # reserved name and an ack nobody asked for: none reaches a handler, the session goes on.
    def talk(eio: FakeEngineIO) -> list[str]:
        eio.accept()
        eio.send("3", "6", "5", '42/other,["elsewhere"]', '42["connect"]', '4317["nobody asked"]')
        eio.send('42["marker"]')
        return eio.until_closed()

    server, url = fake(talk)
    client = clients(url, "elsewhere", "marker", protocol=4)
    client.connected()
    assert client.get("marker") == ()
    client.close()
    assert client.order == ["connect", "marker", "disconnect"]
    assert server.result() == ["41"]


def test_connect_error_on_a_connected_socket_is_an_error_event(fake: Any, clients: Any) -> None:
    def talk(eio: FakeEngineIO) -> None:
        eio.accept()
        eio.send('44{"message":"late trouble"}')
        eio.until_closed()

    _, url = fake(talk)
    client = clients(url, "error", protocol=4)
    client.connected()
    assert client.get("error") == ({"message": "late trouble"},)
    assert client.sio.connected


def test_disconnect_while_connecting_is_a_connect_error(fake: Any, clients: Any) -> None:
    def talk(eio: FakeEngineIO) -> None:
        eio.open()
        assert eio.recv() == "40"
        eio.send("41", '42["after the end"]')  # the event comes too late: dropped
        eio.until_closed()

    _, url = fake(talk)
    client = clients(url, "after the end", protocol=4)
    assert client.get("connect_error") == ({"message": "the server disconnected"},)
    assert client.sio.wait(TIMEOUT)
    assert client.order == ["connect_error"]


def test_close_while_connecting_is_silent(fake: Any, clients: Any) -> None:
    # The server never answers the CONNECT: the namespace is still connecting when close() runs.
    # (It replaces a test against the socket.io 4 server that closed right after construction:
    # under load the whole connect could finish first, and connect/disconnect then fired.)
    asked = threading.Event()

    def talk(eio: FakeEngineIO) -> list[str]:
        eio.open()
        assert eio.recv() == "40"
        asked.set()
        return eio.until_closed()

    server, url = fake(talk)
    client = clients(url, protocol=4)
    assert asked.wait(TIMEOUT)
    client.sio.close()
    assert client.sio.wait(TIMEOUT)
    assert client.order == []
    assert server.result() == []  # no DISCONNECT for a namespace never joined


def test_close_after_the_server_disconnected_adds_nothing(
    fake: Any, clients: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mesiboscript")
    answer = threading.Event()

    def talk(eio: FakeEngineIO) -> None:
        eio.accept()
        assert eio.recv() == '420["never acked"]'
        eio.send("41")
        assert answer.wait(TIMEOUT)  # the client's close() is in before its close frame's echo
        eio.until_closed()

    _, url = fake(talk)
    client = clients(url, protocol=4)
    client.connected()
    client.sio.emit("never acked", callback=lambda *a: None)
    assert client.get("disconnect") == ("io server disconnect",)
    client.sio.close()
    answer.set()
    assert client.sio.wait(TIMEOUT)
    assert client.order == ["connect", "disconnect"]
    assert "1 acknowledgement(s) lost with the connection" in caplog.text


def test_emit_while_the_websocket_closes_sends_nothing(fake: Any, clients: Any) -> None:
    echoed, answer = threading.Event(), threading.Event()

    def talk(eio: FakeEngineIO) -> list[str]:
        eio.accept()
        eio.conn.sock.sendall(close_frame(1000))
        got = []
        while True:
            opcode, payload = eio.conn.read_frame()
            if opcode == OP_CLOSE:
                break
            got.append(payload.decode())
        echoed.set()
        assert answer.wait(TIMEOUT)
        eio.conn.close_quietly()
        return got

    server, url = fake(talk)
    client = clients(url, protocol=4)
    client.connected()
    assert echoed.wait(TIMEOUT)  # the client's WebSocket is CLOSING; the session not yet over
    client.sio.emit("too late")
    client.sio.close()
    answer.set()
    assert client.sio.wait(TIMEOUT)
    assert server.result() == []


# -- Engine.IO v3 and the fallback ------------------------------------------------------------


def test_v3_refusal_of_the_default_namespace_is_a_connect_error(fake: Any, clients: Any) -> None:
    # socket.io 2 joins "/" by itself; when its middleware refuses, the error names "/".
    def talk(eio: FakeEngineIO) -> None:
        eio.open(max_payload=None)
        eio.send('44"not you"')
        eio.until_closed()

    _, url = fake(talk)
    client = clients(url + "/chat", protocol=3)
    assert client.get("connect_error") == ({"message": "not you"},)


def test_auto_falls_back_when_the_server_upgrades_then_closes(fake: Any, clients: Any) -> None:
    # socket.io 4 answers EIO=3 by upgrading and closing at once; the same for a v3-only server
    # answering EIO=4: the client tries v3 next.
    def talk(eio: FakeEngineIO) -> Optional[str]:
        if eio.conn.index == 1:
            eio.upgrade()
            eio.conn.sock.sendall(close_frame(1002))
            eio.conn.read_close_code()
            return None
        eio.open(max_payload=None)
        eio.send("40")
        eio.until_closed()
        return eio.request.split(b" ")[1].decode()

    server, url = fake(talk)
    client = clients(url)
    client.connected()
    assert client.sio.protocol == 3
    client.close()
    results = server.wait_results(2)
    assert results[0] is None
    assert "EIO=3" in results[1]


def test_auto_commits_to_v4_when_the_server_pings_during_the_probe(fake: Any, clients: Any) -> None:
    # No maxPayload: maybe a v3 server that ignored EIO=4. Only a v4 server pings.
    def talk(eio: FakeEngineIO) -> list[Optional[str]]:
        eio.open(max_payload=None)
        eio.send("2")
        got = [eio.recv(), eio.recv()]
        eio.send('40{"sid":"probed"}')
        return [*got, *eio.until_closed()]

    server, url = fake(talk)
    client = clients(url)
    client.connected()
    assert client.sio.protocol == 4
    assert client.sio.id == "probed"
    client.close()
    assert server.result() == ["3", "40", "41"]


def test_a_connect_without_a_sid_after_the_probe_switches_to_v3(
    fake: Any, clients: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The probe ran out (no grace at all): the client committed to v4 and sent its CONNECT. A
    # CONNECT without the sid every v5 server sends is a v3 server's own: the client pings now.
    monkeypatch.setattr("mesiboscript._socketio._PROBE_GRACE", 0.0)

    def talk(eio: FakeEngineIO) -> list[str]:
        eio.open(max_payload=None, pingInterval=50)
        assert eio.recv() == "40"
        eio.send("40")
        return [text for text in eio.until_closed() if text != "2"]  # its pings: v3 now

    server, url = fake(talk)
    client = clients(url + "/?x=1")
    client.connected()
    assert client.sio.protocol == 3
    assert client.sio.id == "engine-sid"
    client.close()
    assert server.result() == ["41"]


# -- acknowledgements asked by the server -----------------------------------------------------


class Unsendable:
    pass


@pytest.mark.parametrize(
    ("result", "reply"),
    [
        (None, "431[]"),
        (("a", 2), '431["a",2]'),
        ("one", '431["one"]'),
        (Unsendable(), None),
    ],
)
def test_the_ack_a_handler_returns(
    result: Any, reply: Optional[str], fake: Any, clients: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def talk(eio: FakeEngineIO) -> list[str]:
        eio.accept()
        eio.send('421["ask"]')
        eio.send('42["marker"]')
        return eio.until_closed()

    server, url = fake(talk)
    client = clients(url, "marker", protocol=4)
    client.sio.on("ask", client.recorder("ask", result))
    client.connected()
    client.get("marker")
    client.close()
    sent = server.result()
    assert sent == ([reply] if reply is not None else []) + ["41"]
    if reply is None:
        assert "returned what cannot be sent" in caplog.text


def test_no_ack_when_the_handler_raises(fake: Any, clients: Any) -> None:
    def talk(eio: FakeEngineIO) -> list[str]:
        eio.accept()
        eio.send('421["ask"]', '42["marker"]')
        return eio.until_closed()

    def boom(*args: Any) -> None:
        raise RuntimeError("handler failed")

    server, url = fake(talk)
    client = clients(url, "marker", protocol=4)
    client.sio.on("ask", boom)
    client.connected()
    client.get("marker")
    client.close()
    assert server.result() == ["41"]


def test_an_ack_callback_after_the_end_is_forgotten(fake: Any, clients: Any) -> None:
    def talk(eio: FakeEngineIO) -> list[str]:
        eio.accept()
        return eio.until_closed()

    server, url = fake(talk)
    client = clients(url, protocol=4)
    client.connected()
    client.close()
    acked: queue.Queue[tuple[Any, ...]] = queue.Queue()
    client.sio.emit("late", callback=lambda *a: acked.put(a))  # nothing sent, nothing kept
    assert server.result() == ["41"]
    assert acked.empty()


# -- events held for a handler set later ------------------------------------------------------


def test_events_held_past_the_limit_drop_the_oldest(
    fake: Any, clients: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(SocketIO, "_MAX_HELD", 3)

    def talk(eio: FakeEngineIO) -> None:
        eio.accept()
        eio.send(*(f'42["flood",{i}]' for i in range(5)), '42["marker"]')
        eio.until_closed()

    caplog.set_level(logging.DEBUG, logger="mesiboscript")
    _, url = fake(talk)
    client = clients(url, "marker", protocol=4)
    client.connected()
    client.get("marker")
    assert "no handler for 'flood'; dropping its oldest event" in caplog.text
    client.sio.on("flood", client.recorder("flood"))
    assert [client.get("flood") for _ in range(3)] == [(2,), (3,), (4,)]
