"""permessage-deflate (RFC 7692) in the sans-I/O core, without sockets: the offer, every rule of
the response check (Chromium's, with its words), the codec, and compressed frames through
``ClientConnection`` (RSV1 rules, fragments, the size limit, UTF-8 as it inflates).

The server is played here: its compressed frames are made with zlib as a server would (raw
deflate, sync flush, the 4-byte tail cut off).
"""

from __future__ import annotations

import json
import zlib
from typing import Any, Optional

import pytest

from mesiboscript import ConnectionFailed, ProtocolError
from mesiboscript.sansio import ClientConnection, Message, Opened, State
from mesiboscript.sansio import deflate as _deflate
from mesiboscript.sansio.deflate import (
    OFFER,
    DeflateOptions,
    InflateError,
    PerMessageDeflate,
    negotiate,
    parse_extensions,
)
from mesiboscript.sansio.handshake import HandshakeRejected, check_response

from .rawserver import OP_BINARY, OP_CONT, OP_PING, OP_TEXT, frame, parse_client_frames
from .test_sansio import parse_request, response, wire

OPEN, CLOSING = State.OPEN, State.CLOSING
DEFAULT = DeflateOptions()


def server_compressor(bits: int = 15) -> Any:
    return zlib.compressobj(6, zlib.DEFLATED, -bits)


def squeeze(data: bytes, encoder: Optional[Any] = None) -> bytes:
    """A message's payload compressed as a server sends it."""
    encoder = encoder or server_compressor()
    out: bytes = encoder.compress(data) + encoder.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate(payload: bytes, decoder: Optional[Any] = None) -> bytes:
    decoder = decoder or zlib.decompressobj(-15)
    out: bytes = decoder.decompress(payload + b"\x00\x00\xff\xff")
    return out


def new_conn(
    compression: Optional[DeflateOptions] = DEFAULT, max_size: int = 1 << 20
) -> ClientConnection:
    return ClientConnection(
        resource="/",
        host="example.com",
        port=80,
        secure=False,
        url="ws://example.com/",
        max_size=max_size,
        compression=compression,
    )


def offer_of(conn: ClientConnection) -> tuple[str, dict[str, str]]:
    conn.send_request()
    return parse_request(wire(conn))


def opened(
    extensions: Optional[str] = "permessage-deflate",
    options: DeflateOptions = DEFAULT,
    max_size: int = 1 << 20,
) -> ClientConnection:
    conn = new_conn(options, max_size)
    _, headers = offer_of(conn)
    ext = [] if extensions is None else [("Sec-WebSocket-Extensions", extensions)]
    events = conn.receive_data(response(headers["sec-websocket-key"], headers=ext))
    assert events == [Opened("", extensions or "")]
    assert conn.state is OPEN
    return conn


def rejected(extensions: str, options: DeflateOptions = DEFAULT) -> str:
    """The failure message of a handshake whose response carries ``extensions``."""
    conn = new_conn(options)
    _, headers = offer_of(conn)
    ext = [("Sec-WebSocket-Extensions", extensions)]
    head = response(headers["sec-websocket-key"], headers=ext)
    assert conn.receive_data(head) == []
    assert conn.state is CLOSING
    assert isinstance(conn.failure, ConnectionFailed)
    assert wire(conn) == b""  # never opened: no close frame, the I/O layer aborts
    closed = conn.connection_lost(None)
    assert (closed.code, closed.was_clean) == (1006, False)
    return str(conn.failure)


# -- the offer ---------------------------------------------------------------------------------


def test_the_default_offer_is_chromiums_exactly() -> None:
    _, headers = offer_of(new_conn())
    assert headers["sec-websocket-extensions"] == "permessage-deflate; client_max_window_bits"
    assert headers["sec-websocket-extensions"] == OFFER


def test_no_compression_offers_nothing_and_rejects_any_extension() -> None:
    conn = new_conn(None)
    _, headers = offer_of(conn)
    assert "sec-websocket-extensions" not in headers
    head = response(
        headers["sec-websocket-key"], headers=[("Sec-WebSocket-Extensions", "permessage-deflate")]
    )
    assert conn.receive_data(head) == []
    assert "not offered" in str(conn.failure)


def test_asking_the_server_for_a_window_adds_it_to_the_offer() -> None:
    _, headers = offer_of(new_conn(DeflateOptions(server_max_window_bits=10)))
    assert headers["sec-websocket-extensions"] == (
        "permessage-deflate; client_max_window_bits; server_max_window_bits=10"
    )


@pytest.mark.parametrize(
    "options",
    [
        {"client_max_window_bits": 7},
        {"client_max_window_bits": 16},
        {"client_max_window_bits": "15"},
        {"client_max_window_bits": True},
        {"server_max_window_bits": 16},
        {"mem_level": 0},
        {"mem_level": 10},
        {"level": 10},
        {"level": -2},
    ],
)
def test_options_out_of_range_are_value_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="compression option"):
        DeflateOptions.from_options("deflate", options)


def test_from_options() -> None:
    assert DeflateOptions.from_options(None, {"mem_level": 99}) is None
    assert DeflateOptions.from_options("deflate") == DeflateOptions()
    assert DeflateOptions.from_options("deflate", {"mem_level": 5, "level": 1}) == DeflateOptions(
        mem_level=5, level=1
    )
    for bad in ("gzip", "", "permessage-deflate", True, 1):
        with pytest.raises(ValueError, match="compression must be"):
            DeflateOptions.from_options(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown compression option"):
        DeflateOptions.from_options("deflate", {"window": 9})


# -- the response check ------------------------------------------------------------------------


def test_parse_extensions_grammar() -> None:
    assert parse_extensions("permessage-deflate") == [("permessage-deflate", [])]
    assert parse_extensions(' a ; b ;c=1; d = "12" ;e="x\\y" , f') == [
        ("a", [("b", None), ("c", "1"), ("d", "12"), ("e", "xy")]),
        ("f", []),
    ]
    for bad in ("", " ", "a,", "a;", "a; b=", 'a; b="1 2"', "a b", "a; b=c d", 'a; b="'):
        with pytest.raises(HandshakeRejected, match="rejected by the parser"):
            parse_extensions(bad)


# Chromium's table (net/websockets/websocket_deflate_parameters_unittest.cc and
# websocket_stream_test.cc): each response suffix, accepted or the message it fails with.
CHROMIUM_CASES = [
    ("", None),
    ("; server_no_context_takeover", None),
    ("; server_no_context_takeover=0", "Received invalid server_no_context_takeover parameter"),
    (
        "; server_no_context_takeover; server_no_context_takeover",
        "Received duplicate permessage-deflate extension parameter server_no_context_takeover",
    ),
    ("; client_no_context_takeover", None),
    ("; client_no_context_takeover=0", "Received invalid client_no_context_takeover parameter"),
    (
        "; client_no_context_takeover; client_no_context_takeover",
        "Received duplicate permessage-deflate extension parameter client_no_context_takeover",
    ),
    ("; server_max_window_bits=8", None),
    ("; server_max_window_bits=15", None),
    (
        "; server_max_window_bits=15; server_max_window_bits=15",
        "Received duplicate permessage-deflate extension parameter server_max_window_bits",
    ),
    ("; server_max_window_bits=a", "Received invalid server_max_window_bits parameter"),
    ("; server_max_window_bits=09", "Received invalid server_max_window_bits parameter"),
    ("; server_max_window_bits=+9", "Received invalid server_max_window_bits parameter"),
    ("; server_max_window_bits=9a", "Received invalid server_max_window_bits parameter"),
    ("; server_max_window_bits", "Received invalid server_max_window_bits parameter"),
    ("; server_max_window_bits=7", "Received invalid server_max_window_bits parameter"),
    ("; server_max_window_bits=16", "Received invalid server_max_window_bits parameter"),
    ('; server_max_window_bits="10"', None),
    ("; client_max_window_bits=8", None),
    ("; client_max_window_bits=15", None),
    ("; client_max_window_bits", "client_max_window_bits must have value"),
    ("; client_max_window_bits=7", "Received invalid client_max_window_bits parameter"),
    ("; client_max_window_bits=16", "Received invalid client_max_window_bits parameter"),
    (
        "; client_max_window_bits=15; client_max_window_bits=15",
        "Received duplicate permessage-deflate extension parameter client_max_window_bits",
    ),
    ("; absurd_no_context_takeover", "Received an unexpected permessage-deflate extension"),
    ("; client_max_content_bits=5", "Received an unexpected permessage-deflate extension"),
    (
        "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; "
        "client_max_window_bits=11",
        None,
    ),
]


@pytest.mark.parametrize(("suffix", "problem"), CHROMIUM_CASES)
def test_response_parameters_as_chromium(suffix: str, problem: Optional[str]) -> None:
    value = "permessage-deflate" + suffix
    if problem is None:
        conn = opened(value)
        assert conn.extensions == value  # reported as sent
        assert conn.deflate is not None
    else:
        message = rejected(value)
        assert f"Error in permessage-deflate: {problem}" in message


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("x-unoffered", "Found an unsupported extension 'x-unoffered'"),
        ("permessage-deflate, x-foo", "Found an unsupported extension 'x-foo'"),
        (
            "permessage-deflate, permessage-deflate",
            "Received duplicate permessage-deflate response",
        ),
        ("permessage-deflate;", "rejected by the parser"),
        ("", "header value is rejected by the parser"),
    ],
)
def test_unsupported_duplicate_or_malformed_extensions_fail(value: str, problem: str) -> None:
    assert problem in rejected(value)


def test_repeated_extension_headers_count_as_one_list() -> None:
    conn = new_conn()
    _, headers = offer_of(conn)
    head = response(
        headers["sec-websocket-key"],
        headers=[
            ("Sec-WebSocket-Extensions", "permessage-deflate"),
            ("Sec-WebSocket-Extensions", "permessage-deflate"),
        ],
    )
    conn.receive_data(head)
    assert "Received duplicate permessage-deflate response" in str(conn.failure)


def test_the_server_must_honour_the_window_it_was_asked_for() -> None:
    options = DeflateOptions(server_max_window_bits=10)
    for value in ("permessage-deflate", "permessage-deflate; server_max_window_bits=11"):
        assert "did not accept server_max_window_bits=10" in rejected(value, options)
    conn = opened("permessage-deflate; server_max_window_bits=9", options)
    assert conn.deflate is not None
    assert conn.deflate.server_max_window_bits == 9


def test_check_response_reports_extensions_after_the_subprotocol() -> None:
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    ext = [("Sec-WebSocket-Extensions", "a"), ("Sec-WebSocket-Protocol", "x")]
    head = response(key, headers=ext)
    text = head.decode("latin-1")[:-4]
    with pytest.raises(HandshakeRejected, match="subprotocol"):
        check_response(text, key, (), extensions_offered=True)
    assert check_response(text, key, ("x",), extensions_offered=True) == ("x", "a")


def test_negotiate_picks_the_smaller_client_window() -> None:
    agreed = negotiate(
        "permessage-deflate; client_max_window_bits=12", DeflateOptions(client_max_window_bits=10)
    )
    assert agreed.client_max_window_bits == 10
    agreed = negotiate("permessage-deflate; client_max_window_bits=9", DeflateOptions())
    assert agreed.client_max_window_bits == 9
    assert "client 9 bits" in repr(agreed)


# -- the codec ---------------------------------------------------------------------------------


def codec(**kw: Any) -> PerMessageDeflate:
    args: dict[str, Any] = {
        "server_no_context_takeover": False,
        "client_no_context_takeover": False,
        "server_max_window_bits": 15,
        "client_max_window_bits": 15,
    }
    args.update(kw)
    return PerMessageDeflate(**args)


def test_compress_keeps_the_context_between_messages() -> None:
    ours = codec()
    decoder = zlib.decompressobj(-15)
    text = json.dumps({"user": "someone", "items": list(range(50))}).encode()
    first, second = ours.compress(text), ours.compress(text)
    assert len(second) < len(first)  # the second refers back to the first
    assert inflate(first, decoder) == text
    assert inflate(second, decoder) == text
    assert "no context" not in repr(ours)


def test_client_no_context_takeover_compresses_each_message_alone() -> None:
    ours = codec(client_no_context_takeover=True, server_no_context_takeover=True)
    text = b"abcdefgh" * 100
    first, second = ours.compress(text), ours.compress(text)
    assert first == second
    assert inflate(second) == text  # a fresh decoder: no context needed
    assert repr(ours).count("no context") == 2


def test_empty_message_round_trip() -> None:
    payload = codec().compress(b"")
    assert inflate(payload) == b""
    assert codec().decompress(payload, 0, end=True) == []


def test_window_8_is_never_compressed_and_9_is() -> None:
    assert not codec(client_max_window_bits=8).compressing
    assert codec(client_max_window_bits=9).compressing


def test_decompress_in_steps_bounded_by_room() -> None:
    data = bytes(1_000_000)
    payload = squeeze(data)
    assert len(payload) < 2000
    pieces = codec().decompress(payload, len(data), end=True)
    assert b"".join(pieces) == data
    assert max(len(p) for p in pieces) <= 64 * 1024
    with pytest.raises(InflateError) as info:
        codec().decompress(payload, len(data) - 1, end=True)
    assert info.value.code == 1009


def test_a_step_that_fills_exactly_asks_zlib_again() -> None:
    # 64 KiB of output from input that zlib consumes whole: the rest is still inside zlib.
    data = bytes(range(256)) * 512  # 128 KiB
    payload = squeeze(data)
    assert b"".join(codec().decompress(payload, len(data))) == data


def test_garbage_is_a_1002() -> None:
    with pytest.raises(InflateError) as info:
        codec().decompress(b"\xff\xff\xff\xff", 100)
    assert info.value.code == 1002


def test_a_final_block_resets_the_decoder_for_the_next_message() -> None:
    encoder = zlib.compressobj(6, zlib.DEFLATED, -15)
    final = encoder.compress(b"hello") + encoder.flush(zlib.Z_FINISH)
    ours = codec()
    assert b"".join(ours.decompress(final, 100, end=True)) == b"hello"
    assert b"".join(ours.decompress(squeeze(b"again"), 100, end=True)) == b"again"


def test_server_window_8_is_inflated_with_9() -> None:
    ours = codec(server_max_window_bits=8)
    data = b"0123456789abcdef" * 200
    assert b"".join(ours.decompress(squeeze(data, server_compressor(9)), 10_000, True)) == data


# -- compressed frames through the connection --------------------------------------------------


def test_extensions_and_deflate_once_open() -> None:
    conn = opened("permessage-deflate; client_max_window_bits=10")
    assert conn.extensions == "permessage-deflate; client_max_window_bits=10"
    assert conn.deflate is not None
    assert conn.deflate.client_max_window_bits == 10
    plain = opened(None)
    assert plain.extensions == ""
    assert plain.deflate is None


def test_sent_messages_are_compressed_with_rsv1() -> None:
    conn = opened()
    decoder = zlib.decompressobj(-15)
    text = '{"text": "hello hello hello hello"}'
    for _ in range(2):
        assert conn.send_text(text.encode())
        buf = bytearray(wire(conn))
        (f,) = parse_client_frames(buf)
        assert (f.opcode, f.rsv, f.masked, f.fin) == (OP_TEXT, 4, True, True)
        assert inflate(f.payload, decoder) == text.encode()
    assert conn.send_binary(b"\x00" * 1000)
    (f,) = parse_client_frames(bytearray(wire(conn)))
    assert (f.opcode, f.rsv) == (OP_BINARY, 4)
    assert len(f.payload) < 100


def test_encode_message_then_send_frame_shares_the_compressor_context() -> None:
    """What the link does for a compressed send (encode under its lock, maybe hand part to the
    kernel, queue the rest): the frames follow one compressor context, in order."""
    conn = opened()
    decoder = zlib.decompressobj(-15)
    text = b'{"text": "hello hello hello hello"}'
    first = conn.encode_message(OP_TEXT, text)
    assert first is not None
    assert not conn.has_data_to_send  # encoded, not queued
    assert conn.send_frame(first)
    assert conn.send_text(text)  # compressed with the context the first message left
    buf = bytearray(wire(conn))
    f1, f2 = parse_client_frames(buf)
    assert (f1.opcode, f1.rsv, f2.rsv) == (OP_TEXT, 4, 4)
    assert inflate(f1.payload, decoder) == text
    assert inflate(f2.payload, decoder) == text
    assert len(f2.payload) < len(f1.payload)  # the second refers back to the first
    conn.send_close(1000)
    assert conn.encode_message(OP_TEXT, text) is None  # our close frame is out


def test_compress_false_and_window_8_send_plain_frames() -> None:
    conn = opened()
    assert conn.send_message(OP_BINARY, b"\x01" * 300, None, compress=False)
    (f,) = parse_client_frames(bytearray(wire(conn)))
    assert (f.rsv, f.payload) == (0, b"\x01" * 300)
    small = opened("permessage-deflate; client_max_window_bits=8")
    assert small.send_text(b"a" * 300)
    (f,) = parse_client_frames(bytearray(wire(small)))
    assert (f.rsv, f.payload) == (0, b"a" * 300)


def test_control_frames_are_never_compressed() -> None:
    conn = opened()
    conn.send_ping(b"p" * 100)
    conn.receive_data(frame(OP_PING, b"q" * 100))
    conn.send_close(1000, b"bye " * 10)
    frames = parse_client_frames(bytearray(wire(conn)))
    assert [f.rsv for f in frames] == [0, 0, 0]
    assert frames[1].payload == b"q" * 100


def feed(conn: ClientConnection, data: bytes, step: int) -> list[Any]:
    events: list[Any] = []
    for i in range(0, len(data), step):
        events += conn.receive_data(data[i : i + step])
    return events


@pytest.mark.parametrize("step", [1, 7, 1 << 30])
def test_received_messages_are_inflated_fragmented_or_not(step: int) -> None:
    conn = opened()
    encoder = server_compressor()
    text = "héllo wörld " * 50
    payload = squeeze(text.encode(), encoder)
    third = len(payload) // 3
    data = (
        frame(OP_TEXT, payload, rsv=4)
        + frame(OP_BINARY, squeeze(b"\x00" * 5000, encoder), rsv=4)
        + frame(OP_TEXT, b"plain")
        + frame(OP_TEXT, payload[:third], rsv=4, fin=False)
        + frame(OP_PING, b"between")
        + frame(OP_CONT, payload[third : 2 * third], fin=False)
        + frame(OP_CONT, payload[2 * third :])
    )
    # The last message refers back to the first (context takeover): it is smaller.
    events = feed(conn, data, step)
    assert [e.data for e in events] == [text, b"\x00" * 5000, "plain", text]


def test_a_large_compressed_frame_is_inflated_as_it_arrives() -> None:
    conn = opened()
    data = bytes(range(256)) * 1024  # 256 KiB of poorly compressible-looking but regular bytes
    payload = squeeze(data + b"x" * 100_000)
    events = feed(conn, frame(OP_BINARY, payload, rsv=4), 8192)
    assert events == [Message(data + b"x" * 100_000)]


def test_server_no_context_takeover_inflates_each_message_alone() -> None:
    conn = opened("permessage-deflate; server_no_context_takeover")
    for _ in range(2):
        assert conn.receive_data(frame(OP_TEXT, squeeze(b"same text"), rsv=4)) == [
            Message("same text")
        ]


def violation(conn: ClientConnection, data: bytes, step: int = 1 << 30) -> tuple[int, str]:
    """Feed ``data``; the connection must fail: its close code on the wire and the message."""
    feed(conn, data, step)
    assert isinstance(conn.failure, ProtocolError)
    (f,) = [f for f in parse_client_frames(bytearray(wire(conn))) if f.opcode == 8]
    assert f.close_code is not None
    return f.close_code, str(conn.failure)


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (frame(OP_TEXT, b"x", rsv=2), 1002, "reserved bits"),  # RSV2
        (frame(OP_TEXT, b"x", rsv=1), 1002, "reserved bits"),  # RSV3
        (frame(OP_TEXT, b"x", rsv=6), 1002, "reserved bits"),
        (frame(OP_PING, b"x", rsv=4), 1002, "RSV1"),
        (frame(OP_TEXT, b"a", fin=False) + frame(OP_CONT, b"b", rsv=4), 1002, "RSV1"),
        (
            frame(OP_TEXT, squeeze(b"a"), rsv=4, fin=False) + frame(OP_CONT, b"b", rsv=4),
            1002,
            "RSV1",
        ),
        (frame(OP_TEXT, b"\xff\xff\xff", rsv=4), 1002, "cannot be inflated"),
        (frame(OP_TEXT, squeeze(b"\xce\xba\xff"), rsv=4), 1007, "UTF-8"),
        # A stored block whose length only the flush tail contradicts: fails at the end.
        (frame(OP_BINARY, b"\x00\x01\x00", rsv=4), 1002, "cannot be inflated"),
        (
            frame(OP_BINARY, b"\x00\x01", rsv=4, fin=False) + frame(OP_CONT, b"\x00"),
            1002,
            "cannot be inflated",
        ),
    ],
)
def test_compressed_frame_violations(data: bytes, code: int, words: str) -> None:
    conn = opened()
    got_code, message = violation(conn, data)
    assert got_code == code
    assert words in message


def test_rsv1_without_compression_is_still_a_violation() -> None:
    conn = opened(None)
    assert violation(conn, frame(OP_TEXT, b"x", rsv=4)) == (
        1002,
        "reserved bits set without a negotiated extension",
    )


def test_bad_utf8_in_a_compressed_fragment_fails_before_the_message_ends() -> None:
    conn = opened()
    payload = squeeze(b"ok \xff and more that never matters")
    data = frame(OP_TEXT, payload, rsv=4, fin=False)  # no final fragment ever comes
    assert violation(conn, data)[0] == 1007


def test_a_truncated_character_at_the_end_of_a_compressed_message() -> None:
    conn = opened()
    assert violation(conn, frame(OP_TEXT, squeeze(b"ok \xce"), rsv=4))[0] == 1007


def test_a_zip_bomb_closes_with_1009_within_one_step() -> None:
    max_size = 1 << 20
    conn = opened(max_size=max_size)
    encoder = server_compressor()
    bomb = encoder.compress(bytes(1 << 20)) + encoder.flush(zlib.Z_SYNC_FLUSH)
    data = frame(OP_BINARY, bomb, rsv=4, fin=False)
    # Fragments of 1 MiB of zeros each: about a kilobyte apiece on the wire.
    data += frame(OP_CONT, squeeze(bytes(1 << 20), encoder), fin=False)
    code, message = violation(conn, data)
    assert code == 1009
    assert "over the limit" in message


def test_a_compressed_message_of_exactly_max_size_passes() -> None:
    conn = opened(max_size=100_000)
    assert conn.receive_data(frame(OP_BINARY, squeeze(bytes(100_000)), rsv=4)) == [
        Message(bytes(100_000))
    ]
    assert conn.state is OPEN


def test_the_module_names_what_it_exports() -> None:
    assert set(_deflate.__all__) <= set(dir(_deflate))


# -- backpressure: one receive inflates at most a budget ----------------------------------------

BUDGET = 64 * 1024


def drain(conn: ClientConnection, first: list[Any]) -> list[list[Any]]:
    """Each call's events: the receive's, then next_events() while the core holds input."""
    calls = [first]
    while conn.has_held_events:
        calls.append(conn.next_events())
    return calls


@pytest.mark.parametrize("fragmented", [False, True])
def test_one_receive_of_many_compressed_messages_inflates_at_most_the_budget(
    fragmented: bool,
) -> None:
    # 300 messages of 10 000 bytes (3 MB inflated) in about 10 KB of wire bytes: one read.
    conn = opened()
    encoder = server_compressor()
    messages = [bytes([i % 256]) * 10_000 for i in range(300)]
    data = b""
    for m in messages:
        payload = squeeze(m, encoder)
        if fragmented:
            data += frame(OP_BINARY, payload[:3], rsv=4, fin=False)
            data += frame(OP_CONT, payload[3:])
        else:
            data += frame(OP_BINARY, payload, rsv=4)
    data += frame(0x8, b"\x03\xe8bye")  # a close frame after them all
    assert len(data) < 65 * 1024
    first = conn.receive_data(data)
    assert conn.has_held_events
    assert conn.holds_input
    calls = drain(conn, first)
    assert not conn.holds_input
    for events in calls[:-1]:
        # The budget, overshot by at most the message that reached it.
        assert sum(len(e.data) for e in events) < BUDGET + 10_000
    assert [e.data for events in calls for e in events] == messages
    assert len(calls) >= 3_000_000 // (BUDGET + 10_000)
    # The close frame is handled once every message before it was returned.
    assert conn.close_received == (1000, "bye")
    assert conn.state is CLOSING


def test_bytes_received_while_input_is_held_come_after_it() -> None:
    conn = opened()
    encoder = server_compressor()
    data = b"".join(frame(OP_BINARY, squeeze(bytes(40_000), encoder), rsv=4) for _ in range(3))
    first: list[Any] = conn.receive_data(data)
    assert [len(e.data) for e in first] == [40_000, 40_000]
    assert conn.holds_input
    # The I/O layer read again without draining: the held input still comes first.
    later: list[Any] = conn.receive_data(frame(OP_TEXT, b"plain"))
    assert [e.data for e in later] == [bytes(40_000), "plain"]
    assert not conn.has_held_events


def test_the_budget_reached_by_the_last_message_holds_nothing() -> None:
    conn = opened()
    encoder = server_compressor()
    data = b"".join(frame(OP_BINARY, squeeze(bytes(40_000), encoder), rsv=4) for _ in range(2))
    assert len(conn.receive_data(data)) == 2
    assert not conn.has_held_events
    assert conn.receive_data(frame(OP_TEXT, b"plain")) == [Message("plain")]


def test_compressed_messages_with_the_handshake_response_are_held_after_open() -> None:
    conn = new_conn()
    _, headers = offer_of(conn)
    encoder = server_compressor()
    head = response(
        headers["sec-websocket-key"], headers=[("Sec-WebSocket-Extensions", "permessage-deflate")]
    )
    data = b"".join(frame(OP_BINARY, squeeze(bytes(40_000), encoder), rsv=4) for _ in range(3))
    calls = drain(conn, conn.receive_data(head + data))
    assert calls[0] == [Opened("", "permessage-deflate")]
    assert [len(e.data) for events in calls[1:] for e in events] == [40_000] * 3
    assert len(calls) == 3


def test_input_held_when_the_connection_fails_is_dropped() -> None:
    conn = opened()
    encoder = server_compressor()
    data = b"".join(frame(OP_BINARY, squeeze(bytes(40_000), encoder), rsv=4) for _ in range(9))
    assert len(conn.receive_data(data)) == 2
    conn.fail(None, ProtocolError("the I/O layer gave up", 1002))
    assert conn.has_held_events
    calls = drain(conn, [])
    assert calls[1:]
    assert all(events == [] for events in calls)
