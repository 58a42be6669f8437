"""Fuzzing the sans-I/O decoders of :mod:`mesiboscript._engineio`: whatever a server sends, they
return packets or raise :class:`DecodeError` (which the client turns into "parse error"), never
anything else; and the polling payload codec round-trips what the client sends, per revision.

The examples from the protocol documents are in ``tests/test_engineio_codec.py``; here the input
is arbitrary, or mutated from valid payloads.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mesiboscript._engineio import (
    PAYLOAD_BINARY,
    PAYLOAD_TEXT,
    DecodeError,
    EnginePacket,
    EnginePacketType,
    SocketDecoder,
    SocketPacket,
    SocketPacketType,
    decode_engine_packet,
    decode_payload,
    encode_payload,
    encode_socket_packet,
    parse_handshake,
)

FUZZ = settings(max_examples=300, deadline=None)
VERSIONS = st.sampled_from([3, 4])
CONTENT_TYPES = st.sampled_from(["", PAYLOAD_TEXT, PAYLOAD_BINARY, "text/html"])

# Text that looks like the protocol: digits, separators, JSON punctuation, base64, non-ASCII.
PROTOCOL_TEXT = st.text(
    alphabet=st.sampled_from(list('0123456789:b/,-[]{}"_placeholder\x1eé😀\x00 ')), max_size=60
)


def _only_decode_errors(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except DecodeError:
        return None


@FUZZ
@given(body=st.binary(max_size=200), version=VERSIONS, content_type=CONTENT_TYPES)
@example(body=b"\x00\xff", version=3, content_type=PAYLOAD_BINARY)
@example(body=b"\x00\x09\x09\x09\x09\x09\x09\x09\x09\x09\x09\x09\xff", version=3, content_type="")
@example(body=b"2:4\xc3", version=3, content_type="")
def test_payload_decoder_on_arbitrary_bytes(body: bytes, version: int, content_type: str) -> None:
    packets = _only_decode_errors(decode_payload, body, version, content_type)
    if packets is not None:
        assert all(isinstance(p, EnginePacket) for p in packets)
        assert packets  # an empty payload is an error, never an empty list


@FUZZ
@given(text=PROTOCOL_TEXT, version=VERSIONS)
@example(text="10:42", version=3)
@example(text="2:😀", version=3)
@example(text="b4!!", version=3)
def test_payload_decoder_on_protocol_like_text(text: str, version: int) -> None:
    _only_decode_errors(decode_payload, text.encode("utf-8"), version, PAYLOAD_TEXT)


@FUZZ
@given(frame=st.one_of(PROTOCOL_TEXT, st.binary(max_size=40)), version=VERSIONS)
def test_engine_packet_decoder(frame: Any, version: int) -> None:
    _only_decode_errors(decode_engine_packet, frame, version)


@FUZZ
@given(data=PROTOCOL_TEXT)
@example(data='{"sid":"x","pingInterval":1e400,"pingTimeout":1}')
def test_handshake_parser(data: str) -> None:
    _only_decode_errors(parse_handshake, data)


@FUZZ
@given(items=st.lists(st.one_of(PROTOCOL_TEXT, st.binary(max_size=8)), max_size=6))
@example(items=['51-["x",{"_placeholder":true,"num":0}]', b"a"])
@example(items=['51-["x",{"_placeholder":true,"num":9}]', b"a"])
@example(items=['52-["x"]', b"a", "2[1]"])
@example(items=['2/nsp,7[""]'])
def test_socket_decoder(items: list[Any]) -> None:
    decoder = SocketDecoder()
    for item in items:
        try:
            decoder.feed(item)
        except DecodeError:
            decoder = SocketDecoder()  # the client ends the session; a new one starts clean


# Socket.IO data is JSON, which escapes control characters: \x1e (v4's separator) never occurs.
# Nor lone surrogates: the encoder escapes them as JSON.stringify does (see the test below).
TEXTS = st.text(
    st.characters(blacklist_characters="\x1e", blacklist_categories=["Cs"]), max_size=30
)
PACKETS = st.lists(
    st.one_of(
        st.builds(EnginePacket, st.just(EnginePacketType.MESSAGE), TEXTS),
        st.builds(EnginePacket, st.just(EnginePacketType.MESSAGE), st.binary(max_size=30)),
        st.builds(
            EnginePacket,
            st.sampled_from([EnginePacketType.PING, EnginePacketType.PONG]),
            st.sampled_from(["", "probe"]),
        ),
        st.just(EnginePacket(EnginePacketType.CLOSE)),
        st.just(EnginePacket(EnginePacketType.UPGRADE)),
    ),
    min_size=1,
    max_size=6,
)


@FUZZ
@given(packets=PACKETS, version=VERSIONS)
@example(packets=[EnginePacket(EnginePacketType.MESSAGE, "😀é")], version=3)
def test_payload_round_trip(packets: list[EnginePacket], version: int) -> None:
    body, content_type = encode_payload(packets, version)
    assert decode_payload(body, version, content_type) == packets


@pytest.mark.parametrize(
    ("body", "content_type", "packets"),
    [
        # engine.io 1.x (Botmaster's socket.io 1.7) sends each packet UTF-8 encoded into a string
        # of byte values, itself sent as UTF-8: "é" arrives as C3 83 C2 A9 and counts 2.
        (
            '5:4"Ã©"'.encode(),
            PAYLOAD_TEXT,
            [EnginePacket(EnginePacketType.MESSAGE, '"é"')],
        ),
        # engine.io 3.x (socket.io 2.x) sends it as is: "é" counts 1.
        ('4:4"é"'.encode(), PAYLOAD_TEXT, [EnginePacket(EnginePacketType.MESSAGE, '"é"')]),
        # engine.io 3.x (socket.io 2.x) sends it as is: "é" counts 1.
        ('3:4"é'.encode(), PAYLOAD_TEXT, None),
        (b"\x01\x03\xff\x04ab", PAYLOAD_BINARY, [EnginePacket(EnginePacketType.MESSAGE, b"ab")]),
        (b"6:b4AAE=", PAYLOAD_TEXT, [EnginePacket(EnginePacketType.MESSAGE, b"\x00\x01")]),
    ],
)
def test_v3_payloads_from_both_engine_io_generations(
    body: bytes, content_type: str, packets: Any
) -> None:
    if packets is None:
        packets = _only_decode_errors(decode_payload, body, 3, content_type)
        assert packets is None or all(isinstance(p, EnginePacket) for p in packets)
        return
    assert decode_payload(body, 3, content_type) == packets


def test_lone_surrogates_are_escaped_as_json_stringify_does() -> None:
    (text,) = encode_socket_packet(SocketPacket(SocketPacketType.EVENT, "/", ["x", "a\ud800é"]))
    assert isinstance(text, str)
    assert text == '2["x","a\\ud800\\u00e9"]'
    text.encode("utf-8")  # sendable
