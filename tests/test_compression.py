"""permessage-deflate over real sockets: websockets' server, Node's ``ws`` with perMessageDeflate,
``WebSocketServer``, the Mesibo ``Socket``'s ws/wss, and ``tests/rawserver.py`` for a zip bomb.

The rules themselves (negotiation, RSV1, fragments, UTF-8, the limit) are tested without sockets in
``tests/test_deflate.py`` and against Chromium's recordings in ``tests/test_parity*.py``; here the
point is that real peers agree with us, on ws and wss.
"""

from __future__ import annotations

import json
import shutil
import threading
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mesiboscript import Socket, SocketIO, WebSocket, WebSocketServer
from mesiboscript.testing import EchoServer

from .helpers import TIMEOUT, Recorder
from .rawserver import (
    OP_BINARY,
    RawConnection,
    RawServer,
    close_frame,
    frame,
    parse_client_frames,
)
from .test_socketio import ServerProcess

NODE_DIR = Path(__file__).parent / "ws_node_server"

JSON_1K = json.dumps([{"id": i, "name": f"user{i}", "tags": ["a", "b"]} for i in range(22)])
JSON_64K = json.dumps([{"id": i, "name": f"user{i}", "tags": ["a", "b"]} for i in range(1450)])


def echo(ws: WebSocket, rec: Recorder, messages: list[Any], **send: Any) -> None:
    """Send each message and wait for all echoes, in order."""
    start = len(rec.messages)
    for m in messages:
        ws.send(m, **send)
    rec.wait(lambda: len(rec.messages) >= start + len(messages), "the echoes")
    assert rec.messages[start:] == messages


@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_websockets_server_agrees_and_echoes(scheme: str) -> None:
    with EchoServer(scheme, max_size=None) as server:
        cafile = server.ca.cafile if server.ca is not None else None
        ws = WebSocket(server.url, cafile=cafile)
        rec = Recorder(ws)
        assert rec.opened.wait(TIMEOUT)
        # websockets answers Chromium's offer with its own windows; reported as sent.
        assert ws.extensions == (
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
        )
        echo(ws, rec, [JSON_1K, JSON_64K, JSON_1K, b"\x00" * 100_000, "", b""])
        echo(ws, rec, [b"\x8b" * 5000, "plain"], compress=False)
        ws.close()
        rec.wait_closed()
    assert rec.close_data is not None
    assert rec.close_data.wasClean


def test_compression_none_offers_nothing() -> None:
    with EchoServer("ws") as server:
        ws = WebSocket(server.url, compression=None)
        rec = Recorder(ws)
        assert rec.opened.wait(TIMEOUT)
        assert ws.extensions == ""
        echo(ws, rec, [JSON_1K])
        ws.close()
        rec.wait_closed()


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"compression": "gzip"}, "compression must be"),
        ({"compression": True}, "compression must be"),
        ({"compression_options": {"client_max_window_bits": 7}}, "client_max_window_bits"),
        ({"compression_options": {"memLevel": 5}}, "unknown compression option"),
    ],
)
def test_bad_compression_arguments_raise_at_once(kw: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        WebSocket("ws://127.0.0.1:1/", **kw)
    with pytest.raises(ValueError, match=words):
        Socket("ws://127.0.0.1:1/", **kw)
    with pytest.raises(ValueError, match=words):
        WebSocketServer(0, **kw)
    with pytest.raises(ValueError, match=words):
        SocketIO("http://127.0.0.1:1/", **kw)


def test_the_server_asked_for_a_small_window_gets_it() -> None:
    with EchoServer("ws") as server:
        ws = WebSocket(server.url, compression_options={"server_max_window_bits": 9})
        rec = Recorder(ws)
        assert rec.opened.wait(TIMEOUT)
        assert "server_max_window_bits=9" in ws.extensions
        echo(ws, rec, [JSON_64K, JSON_1K])
        ws.close()
        rec.wait_closed()


# -- Node's ws -----------------------------------------------------------------------------------


@pytest.fixture
def node_ws() -> Iterator[Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the ws server cannot run")
    if not (NODE_DIR / "node_modules" / "ws").is_dir():
        pytest.skip(
            "npm package ws is not installed: run `npm ci` in tests/ws_node_server "
            "(.ci/steps/pre-21-ws-node.sh does)"
        )
    started: list[ServerProcess] = []

    def start(options: dict[str, Any]) -> ServerProcess:
        proc = ServerProcess([node, str(NODE_DIR / "ws_echo_server.js"), json.dumps(options)])
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.mark.parametrize(
    ("options", "agreed"),
    [
        ({}, "permessage-deflate"),
        ({"threshold": 0}, "permessage-deflate"),
        (
            {"threshold": 0, "serverNoContextTakeover": True, "clientNoContextTakeover": True},
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ),
        (
            {"threshold": 0, "serverMaxWindowBits": 9, "clientMaxWindowBits": 10},
            "permessage-deflate; client_max_window_bits=10; server_max_window_bits=9",
        ),
        # ws accepts window 8; so do we, sending uncompressed (zlib cannot compress with it).
        (
            {"threshold": 0, "serverMaxWindowBits": 8, "clientMaxWindowBits": 8},
            "permessage-deflate; client_max_window_bits=8; server_max_window_bits=8",
        ),
    ],
)
def test_node_ws_per_message_deflate(node_ws: Any, options: dict[str, Any], agreed: str) -> None:
    server = node_ws(options)
    ws = WebSocket(f"ws://127.0.0.1:{server.port}/")
    rec = Recorder(ws)
    assert rec.opened.wait(TIMEOUT)
    assert ws.extensions == agreed
    echo(ws, rec, [JSON_1K, JSON_64K, JSON_1K, bytes(range(256)) * 300, "é" * 1000])
    echo(ws, rec, [b"\x00" * 3000], compress=False)
    ws.send("extensions?")  # ws's view: our offer as it arrived, and what it agreed to
    rec.wait(lambda: len(rec.messages) >= 8, "ws's answer")
    assert rec.messages[6:] == ["permessage-deflate; client_max_window_bits", "permessage-deflate"]
    ws.close(1000)
    rec.wait_closed()
    assert rec.close_data is not None
    assert (rec.close_data.code, rec.close_data.wasClean) == (1000, True)


# -- our own server and the Mesibo Socket --------------------------------------------------------


def test_websocket_server_compression_on_off_and_options() -> None:
    for kw, expect in (
        ({}, "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"),
        ({"compression": None}, ""),
        (
            {"compression_options": {"server_max_window_bits": 10, "mem_level": 4}},
            "permessage-deflate; server_max_window_bits=10",
        ),
    ):
        seen: list[str] = []
        with WebSocketServer(0, **kw) as server:

            def on_new(conn: Any, seen: list[str] = seen) -> None:
                seen.append(conn.extensions)
                conn.onmessage = lambda event, conn=conn: conn.send(event.data)

            server.onNewConnection = on_new
            ws = WebSocket(server.url)
            rec = Recorder(ws)
            assert rec.opened.wait(TIMEOUT)
            assert ws.extensions == expect
            echo(ws, rec, [JSON_64K, b"\x01" * 1000])
            ws.close()
            rec.wait_closed()
        assert seen == (["permessage-deflate"] if expect else [""])


@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_socket_ws_and_wss_compress(scheme: str) -> None:
    with EchoServer(scheme) as server:
        cafile = server.ca.cafile if server.ca is not None else None
        s = Socket(server.url, cafile=cafile)
        rec = Recorder(s)
        s.open()
        assert rec.opened.wait(TIMEOUT)
        s.send(JSON_64K)
        s.send(b"\x02" * 10_000)
        rec.wait(lambda: len(rec.messages) >= 2, "the echoes")
        assert rec.messages == [JSON_64K, b"\x02" * 10_000]
        s.close()
        rec.wait_closed()


def test_socket_without_compression_offers_nothing() -> None:
    offered: list[bool] = []

    def script(conn: RawConnection) -> None:
        request = conn.handshake()
        offered.append(b"sec-websocket-extensions" in request.lower())
        conn.read_close_code()
        conn.sock.sendall(close_frame(1000))
        conn.close_quietly()  # the server ends TCP first (RFC 6455 7.1.1)

    with RawServer(handler=script) as server:
        s = Socket(server.url(), compression=None)
        rec = Recorder(s)
        s.open()
        assert rec.opened.wait(TIMEOUT)
        s.close()
        rec.wait_closed()
    assert offered == [False]


# -- a zip bomb ------------------------------------------------------------------------------------


def test_a_zip_bomb_closes_with_1009_and_memory_stays_bounded() -> None:
    """64 MiB of zeros in about 64 KB on the wire, against a 1 MiB limit: the client stops
    within one 64 KiB step of the limit, sends 1009, and its memory peak stays a few MiB."""
    encoder = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    bomb = b"".join(encoder.compress(chunk) for _ in range(64)) + encoder.flush(zlib.Z_SYNC_FLUSH)
    got: dict[str, Any] = {}
    done = threading.Event()

    def script(conn: RawConnection) -> None:
        conn.handshake(extra="Sec-WebSocket-Extensions: permessage-deflate\r\n")
        conn.sock.sendall(frame(OP_BINARY, bomb[:-4], rsv=4))
        got["close"] = conn.read_close_code()
        conn.wait_eof()
        done.set()

    tracemalloc.start()
    try:
        with RawServer(handler=script) as server:
            tracemalloc.reset_peak()
            ws = WebSocket(server.url(), max_size=1 << 20)
            rec = Recorder(ws)
            rec.wait_closed()
            _, peak = tracemalloc.get_traced_memory()
            assert done.wait(TIMEOUT)
    finally:
        tracemalloc.stop()
    assert got["close"] == 1009
    assert [e[0] for e in rec.events] == ["open", "error", "close"]
    assert rec.close_data is not None
    assert (rec.close_data.code, rec.close_data.wasClean) == (1006, False)
    assert "over the limit" in str(ws.last_error)
    # The bomb itself (~64 KB, in the server's thread) plus the 1 MiB the limit allows: nowhere
    # near the 64 MiB it inflates to.
    assert peak < 8 << 20, peak


def test_compress_false_sends_a_plain_frame() -> None:
    frames: list[Any] = []
    two = threading.Event()

    def script(conn: RawConnection) -> None:
        conn.handshake(extra="Sec-WebSocket-Extensions: permessage-deflate\r\n")
        buf = bytearray()
        while len(frames) < 2:
            buf += conn.sock.recv(65536)
            frames.extend(parse_client_frames(buf))
        two.set()
        conn.read_close_code()
        conn.sock.sendall(close_frame(1000))
        conn.close_quietly()  # the server ends TCP first (RFC 6455 7.1.1)

    with RawServer(handler=script) as server:
        ws = WebSocket(server.url())
        rec = Recorder(ws)
        assert rec.opened.wait(TIMEOUT)
        ws.send(b"\x00" * 1000, compress=False)
        ws.send(b"\x00" * 1000)
        assert two.wait(TIMEOUT)
        ws.close()
        rec.wait_closed()
    assert [(f.rsv, len(f.payload)) for f in frames[:1]] == [(0, 1000)]
    assert frames[1].rsv == 4
    assert len(frames[1].payload) < 50
