"""The sans-I/O core without sockets: ``ClientConnection`` driven with bytes, every rule and
every transition of its state machine.

The server's side is played here: its frames come from ``tests/rawserver.py`` (unmasked, valid or
not), its handshake answer is computed from the key the client put in its request, and what the
client queued (``data_to_send``) is parsed back into frames and checked. Together with
``tests/test_framing.py`` these tests cover every branch of ``mesiboscript/sansio``:

    python -m pytest -p no:mesiboscript tests/test_sansio.py tests/test_framing.py \\
        --cov=mesiboscript/sansio --cov-branch --cov-report=term-missing

(``-p no:mesiboscript``: the installed pytest plugin imports the package before coverage starts.)
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence
from typing import Any, Optional, Union

import pytest

from mesiboscript import ConnectionFailed, ProtocolError, SocketError
from mesiboscript.sansio import (
    ClientConnection,
    Closed,
    CloseFrame,
    HandshakeRejected,
    Message,
    Opened,
    Parser,
    Ping,
    Pong,
    State,
    Violation,
    accept_for,
    build_close,
    build_request,
    check_response,
    make_key,
)
from mesiboscript.sansio import connection as _connection
from mesiboscript.sansio import frames as _frames

from .rawserver import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    ClientFrame,
    close_frame,
    frame,
    parse_client_frames,
)

CONNECTING, OPEN, CLOSING, CLOSED = State.CONNECTING, State.OPEN, State.CLOSING, State.CLOSED


# -- playing the server ------------------------------------------------------------------------


def new_conn(protocols: Sequence[str] = (), max_size: int = 1 << 20) -> ClientConnection:
    return ClientConnection(
        resource="/chat?room=1",
        host="example.com",
        port=80,
        secure=False,
        url="ws://example.com/chat?room=1",
        protocols=protocols,
        max_size=max_size,
    )


def wire(conn: ClientConnection) -> bytes:
    """Everything the client queued, as the bytes a socket would carry (tokens dropped)."""
    out = b""
    for data, _token in conn.data_to_send():
        out += b"".join(data) if isinstance(data, list) else data
    return out


def sent_frames(conn: ClientConnection) -> list[ClientFrame]:
    """The frames the client queued; each must be masked, final and whole."""
    buf = bytearray(wire(conn))
    frames = parse_client_frames(buf)
    assert not buf, "only whole frames are queued"
    assert all(f.masked and f.fin and not f.rsv for f in frames)
    return frames


def parse_request(data: bytes) -> tuple[str, dict[str, str]]:
    """The request line and headers (lower-case names) of a handshake request."""
    assert data.endswith(b"\r\n\r\n")
    line, *rest = data[:-4].decode("utf-8").split("\r\n")
    headers = {}
    for h in rest:
        name, _, value = h.partition(": ")
        headers[name.lower()] = value
    return line, headers


def request_of(conn: ClientConnection) -> tuple[str, dict[str, str]]:
    conn.send_request()
    return parse_request(wire(conn))


def response(
    key: str,
    *,
    status: str = "101 Switching Protocols",
    accept: Optional[str] = None,
    headers: Sequence[tuple[str, str]] = (),
    upgrade: Optional[str] = "websocket",
    connection: Optional[str] = "Upgrade",
) -> bytes:
    lines = [f"HTTP/1.1 {status}"]
    if upgrade is not None:
        lines.append(f"Upgrade: {upgrade}")
    if connection is not None:
        lines.append(f"Connection: {connection}")
    lines.append(f"Sec-WebSocket-Accept: {accept_for(key) if accept is None else accept}")
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def answer(conn: ClientConnection, **kw: Any) -> bytes:
    """The server's handshake answer to the request the client queued."""
    _, headers = request_of(conn)
    return response(headers["sec-websocket-key"], **kw)


def opened(protocols: Sequence[str] = (), max_size: int = 1 << 20) -> ClientConnection:
    """A connection in OPEN, its request and the handshake already consumed."""
    conn = new_conn(protocols, max_size)
    chosen = [("Sec-WebSocket-Protocol", protocols[0])] if protocols else []
    assert conn.receive_data(answer(conn, headers=chosen)) == [
        Opened(protocols[0] if protocols else "", "")
    ]
    assert conn.state is OPEN
    assert conn.opened
    return conn


def closing_by_client(code: Optional[int] = 1000, reason: bytes = b"bye") -> ClientConnection:
    conn = opened()
    conn.send_close(code, reason)
    assert conn.state is CLOSING
    return conn


def failed_handshake(head: bytes) -> ClientConnection:
    conn = new_conn()
    request_of(conn)
    assert conn.receive_data(head) == []
    return conn


def close_code(f: ClientFrame) -> Optional[int]:
    assert f.opcode == OP_CLOSE
    return f.close_code


# -- the opening handshake ---------------------------------------------------------------------


def test_the_request_is_queued_once_and_opens_with_the_right_accept() -> None:
    conn = new_conn(["chat", "v2"])
    assert repr(conn) == "<ClientConnection ws://example.com/chat?room=1 CONNECTING>"
    assert not conn.has_data_to_send
    conn.send_request()
    assert conn.has_data_to_send
    data = conn.data_to_send()
    assert len(data) == 1
    assert data[0][1] is None
    assert isinstance(data[0][0], bytes)
    line, headers = parse_request(data[0][0])
    conn.send_request()  # the request goes out once
    assert conn.data_to_send() == []
    assert line == "GET /chat?room=1 HTTP/1.1"
    assert headers["sec-websocket-protocol"] == "chat,v2"
    key = headers["sec-websocket-key"]
    events = conn.receive_data(response(key, headers=[("Sec-WebSocket-Protocol", "v2")]))
    assert events == [Opened("v2", "")]
    assert conn.state is OPEN
    assert conn.protocol == "v2"
    assert conn.extensions == ""
    assert not conn.must_close_transport
    assert conn.failure is None
    assert repr(conn).endswith(" OPEN>")


def test_the_response_head_may_arrive_in_pieces() -> None:
    conn = new_conn()
    head = answer(conn)
    for i in range(len(head) - 1):
        assert conn.receive_data(head[i : i + 1]) == []
        assert conn.state is CONNECTING
    assert conn.receive_data(head[-1:]) == [Opened("", "")]


def test_frames_after_the_head_in_the_same_chunk_wait_for_the_open_handlers() -> None:
    """What onopen sends goes out before anything the frames that came with the response cause
    (a close frame's echo, a pong)."""
    conn = new_conn()
    head = answer(conn)
    events = conn.receive_data(head + frame(OP_TEXT, "hi") + frame(OP_PING, b"p") + b"\x81")
    assert events == [Opened("", "")]
    assert conn.has_held_events
    assert sent_frames(conn) == []
    assert conn.next_events() == [Message("hi")]
    assert [(f.opcode, f.payload) for f in sent_frames(conn)] == [(OP_PONG, b"p")]
    assert conn.receive_data(b"\x02yo") == [Message("yo")]  # the rest of a cut frame


def test_held_frames_come_before_new_input_if_not_drained() -> None:
    conn = new_conn()
    head = answer(conn)
    assert conn.receive_data(head + frame(OP_TEXT, "first")) == [Opened("", "")]
    assert conn.receive_data(frame(OP_TEXT, "second")) == [Message("first"), Message("second")]


def test_held_frames_come_before_a_large_frame_read_into_its_own_buffer() -> None:
    conn = new_conn()
    big = bytes(range(256)) * 400  # over 16 KiB still to come: read straight into its buffer
    wire = frame(OP_BINARY, big)
    events = conn.receive_data(answer(conn) + frame(OP_TEXT, "first") + wire[:1000])
    assert events == [Opened("", "")]
    want = conn.want
    assert want is not None
    rest = wire[1000:]
    want[: len(rest)] = rest
    del want
    assert conn.receive_into(len(rest)) == [Message("first"), Message(big)]


def test_a_send_in_the_open_handler_goes_out_before_a_close_that_came_with_the_response() -> None:
    conn = new_conn()
    head = answer(conn)
    assert conn.receive_data(head + close_frame(1000)) == [Opened("", "")]
    assert conn.send_text(b"hello")  # the open handler: still OPEN
    assert conn.next_events() == []
    assert [f.opcode for f in sent_frames(conn)] == [OP_TEXT, OP_CLOSE]


def test_a_response_head_over_64_kib_fails_the_handshake() -> None:
    conn = new_conn()
    request_of(conn)
    filler = b"HTTP/1.1 101 Switching Protocols\r\nX-Filler: " + b"a" * (64 * 1024)
    assert conn.receive_data(filler[:1000]) == []
    assert conn.state is CONNECTING  # under the limit: waits for more
    assert conn.receive_data(filler[1000:]) == []
    assert conn.state is CLOSING
    assert isinstance(conn.failure, ConnectionFailed)
    assert "over 64 KiB" in str(conn.failure)
    assert conn.failure.error is SocketError.ConnectionRefusedError
    assert conn.must_close_transport
    assert conn.data_to_send() == [], "no close frame before the handshake completed"
    assert conn.receive_data(b"\r\n\r\n") == [], "input after a failure is ignored"
    closed = conn.connection_lost(None)
    assert closed == Closed(1006, "", False, conn.failure, conn.failure)


def test_a_head_of_exactly_64_kib_still_waits() -> None:
    conn = new_conn()
    request_of(conn)
    assert conn.receive_data(b"x" * (64 * 1024)) == []
    assert conn.state is CONNECTING
    assert conn.receive_data(b"x") == []
    assert conn.state is CLOSING


REJECTIONS: list[tuple[str, dict[str, Any], Sequence[str], str]] = [
    ("status_200", {"status": "200 OK"}, (), "unexpected response code 'HTTP/1.1 200 OK'"),
    ("status_403", {"status": "403 Forbidden"}, (), "unexpected response code"),
    ("bad_accept", {"accept": "d3Jvbmc="}, (), "incorrect 'Sec-WebSocket-Accept'"),
    ("no_upgrade", {"upgrade": None}, (), "'Upgrade' header is missing"),
    ("wrong_upgrade", {"upgrade": "h2c"}, (), "'Upgrade' header is missing or not 'websocket'"),
    ("no_connection", {"connection": None}, (), "'Connection' header is missing"),
    ("connection_no_token", {"connection": "keep-alive"}, (), "no 'Upgrade' token"),
    (
        "extension",
        {"headers": [("Sec-WebSocket-Extensions", "permessage-deflate")]},
        (),
        "extension that was not offered",
    ),
    (
        "unoffered_protocol",
        {"headers": [("Sec-WebSocket-Protocol", "other")]},
        ("chat",),
        "chose subprotocol 'other', which was not offered",
    ),
    (
        "protocol_when_none_offered",
        {"headers": [("Sec-WebSocket-Protocol", "chat")]},
        (),
        "chose subprotocol 'chat'",
    ),
    ("no_protocol_chosen", {}, ("chat", "v2"), "subprotocols were offered but the server chose"),
    ("malformed_header", {"headers": [("NoColonHere", None)]}, (), "malformed header line"),
]


@pytest.mark.parametrize(
    ("kw", "protocols", "problem"),
    [r[1:] for r in REJECTIONS],
    ids=[r[0] for r in REJECTIONS],
)
def test_every_rejection_fails_the_handshake(
    kw: dict[str, Any], protocols: Sequence[str], problem: str
) -> None:
    conn = new_conn(protocols)
    _, headers = request_of(conn)
    head = response(headers["sec-websocket-key"], **kw)
    head = head.replace(b"NoColonHere: None", b"NoColonHere")
    assert conn.receive_data(head + frame(OP_TEXT, "never seen")) == []
    assert conn.state is CLOSING
    assert not conn.opened
    assert isinstance(conn.failure, ConnectionFailed)
    assert problem in str(conn.failure)
    assert str(conn.failure).startswith("WebSocket handshake with ws://example.com/chat?room=1")
    assert conn.data_to_send() == []
    assert conn.connection_lost(None).failure is conn.failure


@pytest.mark.parametrize(
    ("status_line", "problem"),
    [
        ("HTTP/1.1", "malformed status line 'HTTP/1.1'"),
        ("HTTP/1.0 101 Switching Protocols", "malformed status line"),
        ("SSH-2.0-OpenSSH_9.6 x", "malformed status line"),
    ],
)
def test_a_malformed_status_line_is_rejected(status_line: str, problem: str) -> None:
    key = make_key()
    head = response(key).decode("latin-1").split("\r\n", 1)[1]
    with pytest.raises(HandshakeRejected, match=problem):
        check_response(f"{status_line}\r\n{head[:-4]}", key, ())


def test_check_response_joins_repeated_headers_and_ignores_case() -> None:
    key = make_key()
    head = (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "UPGRADE:  WebSocket \r\n"
        "connection: keep-alive\r\n"
        "Connection: upgrade\r\n"
        f"sec-websocket-accept: {accept_for(key)}\r\n"
        "Sec-WebSocket-Protocol: v2"
    )
    assert check_response(head, key, ("chat", "v2")) == ("v2", "")
    # The same header twice is joined with ", ": two protocols are not one offered protocol.
    twice = head + "\r\nSec-WebSocket-Protocol: chat"
    with pytest.raises(HandshakeRejected, match="'v2, chat'"):
        check_response(twice, key, ("chat", "v2"))


def test_make_key_and_accept_for_follow_rfc_6455() -> None:
    # The example of RFC 6455 section 1.3.
    assert accept_for("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    keys = {make_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(len(k) == 24 and k.endswith("==") for k in keys)


# -- the request's Host and Origin ------------------------------------------------------------


def _request(**kw: Any) -> dict[str, str]:
    args: dict[str, Any] = {"resource": "/", "key": "a2V5a2V5a2V5a2V5a2V5aw=="}
    args.update(kw)
    line, headers = parse_request(build_request(**args))
    assert line == f"GET {args['resource']} HTTP/1.1"
    assert headers["upgrade"] == "websocket"
    assert headers["connection"] == "Upgrade"
    assert headers["sec-websocket-version"] == "13"
    assert headers["sec-websocket-key"] == args["key"]
    return headers


@pytest.mark.parametrize(
    ("host", "port", "secure", "want_host", "want_origin"),
    [
        ("example.com", 80, False, "example.com", "http://example.com"),
        ("example.com", 443, True, "example.com", "https://example.com"),
        ("example.com", 443, False, "example.com:443", "http://example.com:443"),
        ("example.com", 80, True, "example.com:80", "https://example.com:80"),
        ("127.0.0.1", 8765, False, "127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("::1", 80, False, "[::1]", "http://[::1]"),
        ("::1", 8443, True, "[::1]:8443", "https://[::1]:8443"),
        ("fe80::1%eth0", 443, True, "[fe80::1%eth0]", "https://[fe80::1%eth0]"),
    ],
)
def test_host_and_default_origin(
    host: str, port: int, secure: bool, want_host: str, want_origin: str
) -> None:
    headers = _request(host=host, port=port, secure=secure)
    assert headers["host"] == want_host
    assert headers["origin"] == want_origin
    assert "sec-websocket-protocol" not in headers


def test_custom_origin_extra_headers_and_protocols() -> None:
    raw = build_request(
        resource="/a?b=c",
        host="example.com",
        port=8080,
        secure=False,
        key="k",
        protocols=("chat", "v2"),
        origin="https://app.example",
        headers=(("Authorization", "Bearer t"), ("X-Many", "1"), ("X-Many", "2")),
    )
    text = raw.decode()
    assert text.startswith("GET /a?b=c HTTP/1.1\r\n")
    assert "\r\nHost: example.com:8080\r\n" in text
    assert "\r\nOrigin: https://app.example\r\n" in text
    assert "\r\nSec-WebSocket-Protocol: chat,v2\r\n" in text
    # Extra headers come last, in order, repeated ones kept.
    assert text.endswith("\r\nAuthorization: Bearer t\r\nX-Many: 1\r\nX-Many: 2\r\n\r\n")


def test_the_connection_sends_the_request_build_request_makes() -> None:
    conn = ClientConnection(
        resource="/x",
        host="::1",
        port=9000,
        secure=True,
        url="wss://[::1]:9000/x",
        protocols=("p",),
        origin="null",
        headers=(("X-A", "b"),),
        max_size=10,
    )
    _, headers = request_of(conn)
    assert headers["host"] == "[::1]:9000"
    assert headers["origin"] == "null"
    assert headers["sec-websocket-protocol"] == "p"
    assert headers["x-a"] == "b"


# -- messages, pings, pongs ---------------------------------------------------------------------


def test_messages_text_and_binary() -> None:
    conn = opened()
    events = conn.receive_data(frame(OP_TEXT, "héllo") + frame(OP_BINARY, b"\x00\xff"))
    assert events == [Message("héllo"), Message(b"\x00\xff")]
    assert type(events[1]) is Message
    assert type(events[1].data) is bytes
    assert conn.receive_data(frame(OP_TEXT, "")) == [Message("")]
    assert conn.receive_data(frame(OP_BINARY, b"")) == [Message(b"")]
    assert not conn.has_data_to_send


def test_large_text_message_in_the_fast_path() -> None:
    conn = opened()
    text = "é" * 5000  # 10,000 bytes: decoded in place
    assert conn.receive_data(frame(OP_TEXT, text)) == [Message(text)]


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
def test_fragmented_messages_with_control_frames_between(step: int) -> None:
    conn = opened()
    stream = b"".join(
        [
            frame(OP_TEXT, "é€"[:1].encode() + "€".encode()[:1], fin=False),
            frame(OP_PING, b"1"),
            frame(OP_CONT, b"", fin=False),
            frame(OP_CONT, "€".encode()[1:] + b"!"),
            frame(OP_BINARY, b"ab", fin=False),
            frame(OP_PONG, b"ignored"),
            frame(OP_CONT, b"cd"),
        ]
    )
    events: list[Any] = []
    for i in range(0, len(stream), step):
        events += conn.receive_data(stream[i : i + step])
    assert events == [Message("é€!"), Message(b"abcd")]
    assert [(f.opcode, f.payload) for f in sent_frames(conn)] == [(OP_PONG, b"1")]


def test_ping_is_answered_with_a_pong_carrying_its_payload() -> None:
    conn = opened()
    assert conn.receive_data(frame(OP_PING, b"abc") + frame(OP_PING)) == []
    assert [(f.opcode, f.payload) for f in sent_frames(conn)] == [(OP_PONG, b"abc"), (OP_PONG, b"")]


def test_pong_is_ignored() -> None:
    conn = opened()
    assert conn.receive_data(frame(OP_PONG, b"unsolicited")) == []
    assert not conn.has_data_to_send
    assert conn.state is OPEN


def test_no_pong_once_our_close_frame_is_out() -> None:
    conn = closing_by_client()
    assert [close_code(f) for f in sent_frames(conn)] == [1000]
    assert conn.receive_data(frame(OP_PING, b"late")) == []
    assert not conn.has_data_to_send


def test_messages_are_dropped_once_closing() -> None:
    conn = closing_by_client()
    wire(conn)
    assert conn.receive_data(frame(OP_TEXT, "late") + frame(OP_BINARY, b"late")) == []
    assert conn.receive_data(close_frame(1000, "ok")) == []
    assert conn.close_received == (1000, "ok")
    assert not conn.has_data_to_send, "our close frame is out: no second one"
    assert conn.connection_lost(None) == Closed(1000, "ok", True, None, None)


# -- sending -----------------------------------------------------------------------------------


def test_send_text_binary_and_ping_with_tokens() -> None:
    conn = opened()
    tok1, tok2 = object(), object()
    assert conn.send_text(b"hi", tok1)
    assert conn.send_binary(bytearray(b"\x01\x02"), tok2)
    assert conn.send_ping(b"p")
    assert conn.send_message(OP_TEXT, memoryview(b"mv"))
    out = conn.data_to_send()
    assert [t for _, t in out] == [tok1, tok2, None, None]
    buf = bytearray(b"".join(d if isinstance(d, bytes) else b"".join(d) for d, _ in out))
    assert [(f.opcode, f.payload) for f in parse_client_frames(buf)] == [
        (OP_TEXT, b"hi"),
        (OP_BINARY, b"\x01\x02"),
        (OP_PING, b"p"),
        (OP_TEXT, b"mv"),
    ]


def test_a_large_message_is_queued_as_pieces() -> None:
    conn = opened()
    payload = bytes(range(256)) * 1024  # 256 KiB
    assert conn.send_binary(payload)
    ((data, _),) = conn.data_to_send()
    assert isinstance(data, list)
    (f,) = parse_client_frames(bytearray(b"".join(data)))
    assert (f.opcode, f.payload) == (OP_BINARY, payload)


@pytest.mark.parametrize("state", ["connecting", "closing", "closed"])
def test_send_is_refused_unless_open(state: str) -> None:
    conn = new_conn()
    if state == "connecting":
        request_of(conn)
    elif state == "closing":
        conn = closing_by_client()
        wire(conn)
    else:
        conn = opened()
        conn.connection_lost(None)
    assert not conn.send_text(b"x")
    assert not conn.send_binary(b"x")
    assert not conn.send_message(OP_TEXT, b"x")
    assert not conn.send_ping()
    assert conn.data_to_send() == []


# -- closing -----------------------------------------------------------------------------------


def test_server_close_is_echoed_with_its_code_and_ends_clean() -> None:
    conn = opened()
    assert conn.receive_data(close_frame(4001, "custom reason")) == []
    assert conn.state is CLOSING
    assert conn.close_received == (4001, "custom reason")
    assert not conn.must_close_transport, "the server closes TCP first"
    assert [(close_code(f), f.close_reason) for f in sent_frames(conn)] == [(4001, "")]
    closed = conn.connection_lost(None)
    assert closed == Closed(4001, "custom reason", True, None, None)
    assert conn.state is CLOSED


def test_server_close_without_a_code_is_1005_and_echoed_empty() -> None:
    conn = opened()
    assert conn.receive_data(close_frame()) == []
    (f,) = sent_frames(conn)
    assert f.opcode == OP_CLOSE
    assert f.payload == b""
    assert conn.connection_lost(None) == Closed(1005, "", True, None, None)


def test_client_close_then_the_servers_answer_ends_clean() -> None:
    conn = closing_by_client(4000, b"x")
    assert [(close_code(f), f.close_reason) for f in sent_frames(conn)] == [(4000, "x")]
    assert not conn.must_close_transport
    conn.send_close(1000, b"again")  # twice: nothing more
    assert conn.data_to_send() == []
    assert conn.state is CLOSING
    assert conn.receive_data(close_frame(4000, "x")) == []
    assert conn.connection_lost(None) == Closed(4000, "x", True, None, None)
    conn.send_close(1000)  # and once closed
    assert conn.data_to_send() == []
    assert conn.state is CLOSED


def test_client_close_without_a_code_sends_an_empty_close() -> None:
    conn = closing_by_client(None, b"ignored without a code")
    (f,) = sent_frames(conn)
    assert f.payload == b""
    conn.receive_data(close_frame())
    assert conn.connection_lost(None) == Closed(1005, "", True, None, None)


def test_client_close_while_connecting_fails_with_operation_error() -> None:
    conn = new_conn()
    conn.send_close(1000, b"bye")
    assert conn.state is CLOSING
    assert isinstance(conn.failure, ConnectionFailed)
    assert conn.failure.error is SocketError.OperationError
    assert "closed before the connection is established" in str(conn.failure)
    assert conn.must_close_transport
    conn.send_request()  # too late: nothing goes out
    assert conn.data_to_send() == []
    conn.send_close()  # twice: no-op
    closed = conn.connection_lost(None)
    assert closed == Closed(1006, "", False, conn.failure, conn.failure)


def test_close_frame_after_messages_in_one_chunk_is_held() -> None:
    conn = opened()
    chunk = frame(OP_TEXT, "a") + frame(OP_PING, b"p") + frame(OP_BINARY, b"b")
    chunk += close_frame(1000, "done") + frame(OP_TEXT, "after close")
    events = conn.receive_data(chunk)
    assert events == [Message("a"), Message(b"b")]
    assert conn.has_held_events
    assert conn.state is OPEN
    # What the handlers send now goes out before the close frame's echo.
    assert conn.send_text(b"reply")
    assert conn.next_events() == []
    assert not conn.has_held_events
    frames = sent_frames(conn)
    assert [(f.opcode, f.payload[:2]) for f in frames] == [
        (OP_PONG, b"p"),
        (OP_TEXT, b"re"),
        (OP_CLOSE, struct.pack("!H", 1000)),
    ]
    # The text frame after the close frame is a violation: the connection fails with 1002,
    # but our close frame (the echo) is out already: no second one.
    assert isinstance(conn.failure, ProtocolError)
    assert conn.failure.code == 1002
    assert conn.must_close_transport
    assert conn.connection_lost(None) == Closed(1006, "", False, conn.failure, conn.failure)


def test_a_violation_after_messages_in_one_chunk_is_held() -> None:
    conn = opened()
    events = conn.receive_data(frame(OP_TEXT, "ok") + frame(0x3, b"bad") + frame(OP_TEXT, "no"))
    assert events == [Message("ok")]
    assert conn.has_held_events
    assert conn.failure is None
    assert conn.next_events() == []
    assert isinstance(conn.failure, ProtocolError)
    assert conn.failure.code == 1002
    assert "reserved data opcode 0x3" in str(conn.failure)
    assert [close_code(f) for f in sent_frames(conn)] == [1002]
    assert conn.next_events() == [], "nothing held any more"


def test_next_events_with_nothing_held() -> None:
    conn = opened()
    assert not conn.has_held_events
    assert conn.next_events() == []


# -- failing -----------------------------------------------------------------------------------


def test_fail_while_open_with_a_wire_code_sends_it() -> None:
    conn = opened()
    boom = ConnectionFailed("ping timeout", SocketError.SocketTimeoutError)
    conn.fail(1011, boom)
    assert conn.state is CLOSING
    assert conn.failure is boom
    assert conn.cause is boom
    assert [close_code(f) for f in sent_frames(conn)] == [1011]
    assert conn.must_close_transport
    assert conn.receive_data(close_frame(1011)) == [], "input after a failure is ignored"
    assert conn.connection_lost(OSError("late")) == Closed(1006, "", False, boom, boom)


def test_fail_while_open_without_a_wire_code_sends_nothing() -> None:
    conn = opened()
    conn.fail(None, TimeoutError("no pong"))
    assert conn.state is CLOSING
    assert conn.data_to_send() == []


def test_fail_while_connecting_never_sends_a_close_frame() -> None:
    conn = new_conn()
    request_of(conn)
    boom = ConnectionFailed("connect timeout", SocketError.SocketTimeoutError)
    conn.fail(1002, boom)
    assert conn.state is CLOSING
    assert conn.data_to_send() == []
    assert conn.connection_lost(None).failure is boom


def test_the_first_failure_is_recorded_once() -> None:
    conn = opened()
    first, second, third = ValueError("first"), ValueError("second"), ValueError("third")
    conn.fail(None, first)  # no close frame yet: the second failure may still send one
    conn.fail(1002, second)
    conn.fail(1011, third)
    assert conn.failure is first
    assert conn.cause is first
    assert [close_code(f) for f in sent_frames(conn)] == [1002]
    closed = conn.connection_lost(ConnectionResetError())
    assert closed.failure is first
    assert closed.cause is first
    conn.fail(1002, ValueError("after the end"))  # CLOSED: nothing changes
    assert conn.failure is first
    assert conn.state is CLOSED


def test_fail_after_our_close_records_the_failure_without_a_second_close() -> None:
    conn = closing_by_client()
    wire(conn)
    boom = TimeoutError("close timeout")
    conn.fail(1002, boom)
    assert conn.failure is boom
    assert conn.state is CLOSING
    assert conn.data_to_send() == []
    assert conn.connection_lost(None) == Closed(1006, "", False, boom, boom)


def test_frames_after_a_violation_are_ignored() -> None:
    conn = opened()
    assert conn.receive_data(frame(OP_TEXT, "x", rsv=4) + frame(OP_TEXT, "never")) == []
    assert isinstance(conn.failure, ProtocolError)
    assert conn.failure.code == 1002
    assert [close_code(f) for f in sent_frames(conn)] == [1002]
    assert conn.receive_data(frame(OP_TEXT, "still never") + frame(OP_PING)) == []
    assert conn.data_to_send() == []


VIOLATIONS = [
    ("rsv_bits", frame(OP_TEXT, "x", rsv=4), 1002, "reserved bits"),
    ("masked", frame(OP_TEXT, "hi", mask=True), 1002, "masked a frame"),
    ("reserved_opcode", frame(0x3, b"x"), 1002, "reserved data opcode 0x3"),
    ("reserved_control", frame(0xB), 1002, "reserved control opcode 0xb"),
    ("fragmented_ping", frame(OP_PING, b"p", fin=False), 1002, "fragmented control"),
    ("long_ping", frame(OP_PING, b"p" * 126), 1002, "over 125 bytes"),
    ("cont_without_start", frame(OP_CONT, b"x"), 1002, "continuation frame without"),
    (
        "new_message_in_fragmented",
        frame(OP_TEXT, "a", fin=False) + frame(OP_BINARY, b"b"),
        1002,
        "new message started",
    ),
    ("close_1byte", frame(OP_CLOSE, b"\x03"), 1002, "one-byte payload"),
    ("close_1005", close_frame(1005), 1002, "invalid close code 1005"),
    ("close_999", close_frame(999), 1002, "invalid close code 999"),
    ("close_5000", close_frame(5000), 1002, "invalid close code 5000"),
    ("close_bad_utf8", close_frame(1000, b"\xff"), 1007, "invalid UTF-8 in the close reason"),
    ("frame_after_close", close_frame(1000) + frame(OP_PING), 1002, "after the close frame"),
    ("top_bit_length", b"\x82\x7f" + b"\x80" + b"\x00" * 7, 1002, "top bit set"),
    ("text_bad_utf8", frame(OP_TEXT, b"\xce\xba\xff\xfe"), 1007, "invalid UTF-8"),
    ("big_text_bad_utf8", frame(OP_TEXT, b"a" * 5000 + b"\xff"), 1007, "invalid UTF-8"),
    (
        "fragment_bad_utf8",
        frame(OP_TEXT, b"ok\xff", fin=False),
        1007,
        "invalid UTF-8 in a text message",
    ),
    (
        "truncated_utf8_at_message_end",
        frame(OP_TEXT, b"ok\xce", fin=False) + frame(OP_CONT, b""),
        1007,
        "invalid UTF-8 in a text message",
    ),
    ("max_size", frame(OP_BINARY, b"x" * 101), 1009, "over the limit of 100"),
    ("max_size_16bit", frame(OP_BINARY, b"", length=300)[:4], 1009, "at least 300 bytes"),
    ("max_size_64bit", frame(OP_BINARY, b"", length=1 << 40)[:10], 1009, "over the limit"),
    (
        "max_size_fragmented",
        frame(OP_TEXT, "a" * 60, fin=False) + frame(OP_CONT, "a" * 41, fin=False),
        1009,
        "message of at least 101 bytes",
    ),
    ("garbage", b"\xff\xff\xff\xffGARBAGE", 1002, "top bit set"),
    ("garbage_short", b"\xff\x05GARBAGE", 1002, "reserved bits"),
]


@pytest.mark.parametrize(
    ("data", "code", "message"), [v[1:] for v in VIOLATIONS], ids=[v[0] for v in VIOLATIONS]
)
def test_every_violation_fails_with_its_code(data: bytes, code: int, message: str) -> None:
    conn = opened(max_size=100 if code == 1009 else 1 << 20)
    assert conn.receive_data(data) == []
    assert isinstance(conn.failure, ProtocolError)
    assert conn.failure.code == code
    assert message in str(conn.failure)
    assert conn.cause is conn.failure
    assert conn.state is CLOSING
    assert conn.must_close_transport
    frames = sent_frames(conn)
    if data.startswith(close_frame(1000)):  # the close frame was echoed before the violation
        assert [close_code(f) for f in frames] == [1000]
    else:
        assert [close_code(f) for f in frames] == [code]
    assert conn.connection_lost(None) == Closed(1006, "", False, conn.failure, conn.failure)


def test_a_message_of_exactly_max_size_passes() -> None:
    conn = opened(max_size=100)
    assert conn.receive_data(frame(OP_BINARY, b"x" * 100)) == [Message(b"x" * 100)]
    parts = frame(OP_TEXT, "a" * 60, fin=False) + frame(OP_CONT, "a" * 40)
    assert conn.receive_data(parts) == [Message("a" * 100)]


def test_a_violation_in_the_same_chunk_as_the_head() -> None:
    conn = new_conn()
    events = conn.receive_data(answer(conn) + frame(0x3, b"x"))
    assert events == [Opened("", "")]
    assert conn.failure is None  # not yet: the open handlers run first
    assert conn.next_events() == []
    assert isinstance(conn.failure, ProtocolError)
    assert [close_code(f) for f in sent_frames(conn)] == [1002]


# -- the end: connection_lost in every state ---------------------------------------------------


def test_connection_lost_while_connecting_is_a_failure() -> None:
    conn = new_conn()
    request_of(conn)
    closed = conn.connection_lost(None)
    assert conn.state is CLOSED
    assert isinstance(closed.failure, ConnectionFailed)
    assert closed.failure.error is SocketError.RemoteHostClosedError
    assert "during the handshake" in str(closed.failure)
    assert closed == Closed(1006, "", False, closed.failure, closed.failure)


def test_connection_lost_while_connecting_keeps_the_transports_reason() -> None:
    conn = new_conn()
    refused = ConnectionRefusedError(111, "refused")
    closed = conn.connection_lost(refused)
    assert closed == Closed(1006, "", False, refused, refused)
    assert conn.failure is refused


def test_connection_lost_before_the_request_went_out() -> None:
    conn = new_conn()
    assert conn.connection_lost(None).failure is not None
    conn.send_request()
    assert conn.data_to_send() == []


def test_connection_lost_while_open_is_1006_with_a_cause_but_no_failure() -> None:
    conn = opened()
    wire(conn)
    conn.send_text(b"unsent")
    closed = conn.connection_lost(None)
    assert closed.code == 1006
    assert not closed.was_clean
    assert closed.reason == ""
    assert closed.failure is None
    assert isinstance(closed.cause, ConnectionFailed)
    assert "without a close frame" in str(closed.cause)
    assert conn.data_to_send() == [], "what was queued is dropped"
    assert conn.state is CLOSED
    assert not conn.must_close_transport


def test_connection_lost_while_open_keeps_the_transports_reason() -> None:
    conn = opened()
    reset = ConnectionResetError(104, "reset")
    assert conn.connection_lost(reset) == Closed(1006, "", False, None, reset)


def test_connection_lost_after_our_close_without_an_answer() -> None:
    conn = closing_by_client()
    closed = conn.connection_lost(None)
    assert closed.code == 1006
    assert not closed.was_clean
    assert closed.failure is None
    assert isinstance(closed.cause, ConnectionFailed)


def test_connection_lost_after_the_servers_close_before_our_echo_went_out() -> None:
    # The server sent its close frame and dropped TCP at once: our echo was queued, the close
    # is clean (Chromium: server_close_then_fin).
    conn = opened()
    conn.receive_data(close_frame(1000, "bye"))
    closed = conn.connection_lost(ConnectionResetError())
    assert closed == Closed(1000, "bye", True, None, None)


def test_connection_lost_is_idempotent() -> None:
    conn = opened()
    first = conn.connection_lost(None)
    assert conn.connection_lost(ConnectionResetError()) is first
    assert conn.receive_data(frame(OP_TEXT, "x")) == []
    assert conn.state is CLOSED


# -- the state machine ----------------------------------------------------------------------------


def _in_state(state: State) -> ClientConnection:
    if state is CONNECTING:
        return new_conn()
    if state is OPEN:
        return opened()
    if state is CLOSING:
        return closing_by_client()
    conn = opened()
    conn.connection_lost(None)
    return conn


# Each allowed transition, made by the public API the way the I/O layer would make it.
TRANSITION_DRIVERS: dict[tuple[State, State], Any] = {
    (CONNECTING, OPEN): lambda c: c.receive_data(answer(c)),
    (CONNECTING, CLOSING): lambda c: c.send_close(),
    (CONNECTING, CLOSED): lambda c: c.connection_lost(None),
    (OPEN, CLOSING): lambda c: c.receive_data(close_frame(1000)),
    (OPEN, CLOSED): lambda c: c.connection_lost(None),
    (CLOSING, CLOSED): lambda c: c.connection_lost(None),
}


def test_the_drivers_cover_exactly_the_transition_table() -> None:
    table = {(a, b) for a, targets in _connection._TRANSITIONS.items() for b in targets}
    assert set(TRANSITION_DRIVERS) == table
    assert set(_connection._TRANSITIONS) == set(State)


@pytest.mark.parametrize(
    ("before", "after"),
    list(TRANSITION_DRIVERS),
    ids=[f"{a.name}->{b.name}" for a, b in TRANSITION_DRIVERS],
)
def test_every_allowed_transition(before: State, after: State) -> None:
    conn = _in_state(before)
    assert conn.state is before
    TRANSITION_DRIVERS[(before, after)](conn)
    assert conn.state is after


INVALID = [
    (a, b) for a, b in itertools.product(State, State) if b not in _connection._TRANSITIONS[a]
]


@pytest.mark.parametrize(
    ("before", "after"), INVALID, ids=[f"{a.name}->{b.name}" for a, b in INVALID]
)
def test_set_state_refuses_every_other_transition(before: State, after: State) -> None:
    conn = _in_state(before)
    with pytest.raises(AssertionError, match=f"invalid transition {before.name} -> {after.name}"):
        conn._set_state(after)
    assert conn.state is before


# -- the parser's direct-read path through the connection ------------------------------------------


def feed_all(conn: ClientConnection, stream: bytes, step: int) -> list[Union[Opened, Message]]:
    """The I/O layer's part: ``receive_data`` what arrives, or fill ``want`` when asked."""
    events: list[Union[Opened, Message]] = []
    pos = 0
    while pos < len(stream):
        want = conn.want
        if want is not None:
            n = min(len(want), step, len(stream) - pos)
            want[:n] = stream[pos : pos + n]
            del want
            events += conn.receive_into(n)
        else:
            n = min(step, len(stream) - pos)
            events += conn.receive_data(stream[pos : pos + n])
        while conn.has_held_events:
            events += conn.next_events()
        pos += n
    return events


@pytest.mark.parametrize("step", [4096, 16 * 1024 + 3, 1 << 20])
def test_large_messages_are_read_into_their_own_buffer(step: int) -> None:
    conn = opened(max_size=1 << 22)
    text = "ascii é€𝄞 " * 10_000
    blob = bytes(range(256)) * 2000
    stream = frame(OP_TEXT, text) + frame(OP_BINARY, blob) + close_frame(1000, "end")
    assert conn.want is None
    events = feed_all(conn, stream, step)
    assert events == [Message(text), Message(blob)]
    assert conn.state is CLOSING
    assert conn.close_received == (1000, "end")


def test_the_direct_read_starts_with_an_empty_head() -> None:
    # The header ends exactly at the end of a read: the payload buffer starts empty.
    for op, payload in ((OP_TEXT, b"t" * 20_000), (OP_BINARY, b"b" * 20_000)):
        parser = Parser(1 << 20)
        wire_ = frame(op, payload)
        assert parser.feed(wire_[:4]) == []
        want = parser.want
        assert want is not None
        assert len(want) == 20_000
        want[:] = wire_[4:]
        del want
        expected = payload.decode() if op == OP_TEXT else payload
        assert parser.filled(20_000) == [Message(expected)]


def test_a_large_non_final_fragment_is_read_directly_then_continued() -> None:
    parser = Parser(1 << 20)
    first = b"x" * 30_000
    stream = frame(OP_BINARY, first, fin=False) + frame(OP_CONT, b"yz")
    assert parser.feed(stream[:100]) == []
    want = parser.want
    assert want is not None
    rest = stream[100:]
    want[:] = rest[: len(want)]
    n = len(want)
    del want
    assert parser.filled(n) == []
    assert parser.want is None
    assert parser.feed(rest[n:]) == [Message(first + b"yz")]


def test_a_truncated_character_at_the_end_of_a_directly_read_message() -> None:
    parser = Parser(1 << 20)
    payload = b"a" * 20_000 + "€".encode()[:2]
    stream = frame(OP_TEXT, payload)
    assert parser.feed(stream[:10]) == []
    want = parser.want
    assert want is not None
    want[:] = stream[10:]
    del want
    # The last character is cut: the message fails at its end (the decoder's final call).
    assert parser.filled(len(stream) - 10) == [Violation(1007, "invalid UTF-8 in a text message")]


# -- the parser on its own: stream cuts the connection tests do not make ----------------------


def test_headers_cut_at_every_byte() -> None:
    frames_ = [
        frame(OP_BINARY, b"a" * 200),  # 16-bit length
        frame(OP_BINARY, b"b" * 70_000),  # 64-bit length
        close_frame(1000, "x"),
    ]
    stream = b"".join(frames_)
    for cut in range(1, 12):
        parser = Parser(1 << 20)
        events = parser.feed(stream[:cut])
        events += parser.feed(stream[cut:200])
        rest = stream[200:]
        while rest:
            want = parser.want
            if want is not None:
                n = min(len(want), len(rest))
                want[:n] = rest[:n]
                del want
                events += parser.filled(n)
            else:
                n = min(1000, len(rest))
                events += parser.feed(rest[:n])
            rest = rest[n:]
        assert events == [Message(b"a" * 200), Message(b"b" * 70_000), CloseFrame(1000, "x")]


def test_control_frames_in_the_parser() -> None:
    parser = Parser(10)
    events = parser.feed(frame(OP_PING, b"1") + frame(OP_PONG, b"2") + close_frame())
    assert events == [Ping(b"1"), Pong(b"2"), CloseFrame(1005, "")]
    assert parser.feed(b"\x89") == [], "half a header waits"
    assert parser.feed(b"\x00") == [Violation(1002, "frame received after the close frame")]
    assert parser.feed(frame(OP_PING)) == []


def test_a_control_frame_cut_inside_its_payload() -> None:
    parser = Parser(10)
    f = close_frame(1000, "reason")
    assert parser.feed(f[:5]) == []
    assert parser.feed(f[5:]) == [CloseFrame(1000, "reason")]


# -- masking: every accelerator the lookup may find -------------------------------------------


def test_the_lookup_falls_back_to_wsaccel_then_to_python(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys
    import types

    monkeypatch.setitem(sys.modules, "websockets.speedups", None)  # import fails
    calls: list[bytes] = []

    class XorMaskerSimple:
        def __init__(self, key: bytes) -> None:
            self.key = key

        def process(self, data: bytes) -> bytes:
            calls.append(data)
            return bytes(b ^ self.key[i % 4] for i, b in enumerate(data))

    fake = types.ModuleType("wsaccel.xormask")
    fake.XorMaskerSimple = XorMaskerSimple  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wsaccel", types.ModuleType("wsaccel"))
    monkeypatch.setitem(sys.modules, "wsaccel.xormask", fake)
    monkeypatch.setattr(_frames, "_accel", None)
    monkeypatch.setattr(_frames, "_accel_checked", False)
    built = _frames.build_frame(OP_TEXT, b"masked by wsaccel")
    assert _frames._accel is not None
    assert calls == [b"masked by wsaccel"]
    assert isinstance(built, bytes)
    (f,) = parse_client_frames(bytearray(built))
    assert f.payload == b"masked by wsaccel"

    monkeypatch.setitem(sys.modules, "wsaccel.xormask", None)
    monkeypatch.setattr(_frames, "_accel_checked", False)
    built = _frames.build_frame(OP_TEXT, b"masked in Python")
    assert _frames._accel is None
    assert _frames._accel_checked
    assert isinstance(built, bytes)
    (f,) = parse_client_frames(bytearray(built))
    assert f.payload == b"masked in Python"


def test_the_mask_key_pool_refills(monkeypatch: pytest.MonkeyPatch) -> None:
    from collections import deque

    pool: deque[bytes] = deque()
    monkeypatch.setattr(_frames, "_keys", pool)
    key = _frames._mask_key()
    assert len(key) == 4
    assert len(pool) == 1023
    assert len({_frames._mask_key() for _ in range(1023)}) > 1000
    assert not pool


def test_frames_of_32_kib_or_more_prime_the_allocator_for_their_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Received with a 16-bit length, received with a 64-bit length, or sent: the first frame of
    # 32 KiB or more primes it for four times its size, from 1 MiB on; smaller frames never do.
    sizes: list[int] = []
    real = _frames._prime_arena

    def prime(length: int) -> None:
        real(length)
        sizes.append(_frames._primed)

    monkeypatch.setattr(_frames, "_prime_arena", prime)
    for build in (
        lambda: Parser(1 << 20).feed(frame(OP_BINARY, bytes(32 * 1024))),
        lambda: Parser(1 << 20).feed(frame(OP_BINARY, bytes(1 << 16))),
        lambda: _frames.build_frame(OP_BINARY, bytes(32 * 1024)),
    ):
        monkeypatch.setattr(_frames, "_primed", _frames._LARGE - 1)
        Parser(1 << 20).feed(frame(OP_BINARY, bytes(32 * 1024 - 1)))
        _frames.build_frame(OP_BINARY, bytes(32 * 1024 - 1))
        assert sizes == []
        build()
        build()
        assert sizes == [256 * 1024]  # primed with 1 MiB: frames up to a quarter of it are covered
        sizes.clear()
    # A frame over max_size fails (1009) without priming anything.
    monkeypatch.setattr(_frames, "_primed", _frames._LARGE - 1)
    (violation,) = Parser(1 << 20).feed(frame(OP_BINARY, length=1 << 40))
    assert isinstance(violation, Violation)
    assert violation.code == 1009
    assert sizes == []
    assert _frames._primed == _frames._LARGE - 1
    # A larger frame primes again, for its size; from 8 MiB on, once for all (glibc's ceiling).
    real(256 * 1024 + 1)
    assert _frames._primed == 512 * 1024
    real(3 << 20)
    assert _frames._primed == 4 << 20
    real(5 << 20)
    assert _frames._primed == 1 << 63


def test_priming_the_allocator_never_fails_a_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_memory(size: int) -> bytes:
        raise MemoryError

    monkeypatch.setattr(_frames, "bytes", no_memory, raising=False)
    monkeypatch.setattr(_frames, "_primed", _frames._LARGE - 1)
    _frames._prime_arena(_frames._LARGE)
    assert _frames._primed == 256 * 1024


def test_build_close() -> None:
    (f,) = parse_client_frames(bytearray(build_close(1000, b"bye")))
    assert (f.opcode, f.close_code, f.close_reason) == (OP_CLOSE, 1000, "bye")
    (f,) = parse_client_frames(bytearray(build_close(None)))
    assert f.payload == b""


def test_frames_imports_where_os_has_no_register_at_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    # Windows has no fork: the key pool needs no reset there, and the module must still import.
    # The module's code runs again in a namespace of its own; the real module is untouched.
    import os

    monkeypatch.delattr(os, "register_at_fork")
    path = _frames.__file__
    with open(path, encoding="utf-8") as source:
        code = compile(source.read(), path, "exec")
    namespace: dict[str, Any] = {
        "__name__": "frames_without_fork",
        "__package__": "mesiboscript.sansio",
    }
    exec(code, namespace)
    (closing,) = parse_client_frames(bytearray(namespace["build_close"](1000)))
    assert closing.close_code == 1000


def test_send_frame_queues_a_frame_built_beforehand_and_follows_the_same_rules() -> None:
    conn = opened()
    frame_bytes = _frames.build_frame(OP_TEXT, b"pre-masked")
    assert conn.send_frame(frame_bytes, "token")
    assert conn.data_to_send() == [(frame_bytes, "token")]
    conn.send_close(1000, b"")
    assert not conn.send_frame(_frames.build_frame(OP_BINARY, b"late"))
    assert [close_code(f) for f in sent_frames(conn)] == [1000]
