"""The Engine.IO / Socket.IO codec: packets from the protocol documents and from real servers."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesiboscript._engineio import (
    DecodeError,
    EnginePacket,
    EnginePacketType,
    Handshake,
    SocketDecoder,
    SocketPacket,
    SocketPacketType,
    connect_error_data,
    decode_engine_packet,
    encode_engine_packet,
    encode_socket_packet,
    parse_handshake,
)

E = EnginePacketType
S = SocketPacketType


# -- Engine.IO packets ------------------------------------------------------------------------


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize(
    ("packet", "frame"),
    [
        (EnginePacket(E.OPEN, '{"sid":"x"}'), '0{"sid":"x"}'),
        (EnginePacket(E.CLOSE), "1"),
        (EnginePacket(E.PING), "2"),
        (EnginePacket(E.PING, "probe"), "2probe"),
        (EnginePacket(E.PONG, "probe"), "3probe"),
        (EnginePacket(E.MESSAGE, "HelloWorld"), "4HelloWorld"),
        (EnginePacket(E.MESSAGE, "héllo ☃"), "4héllo ☃"),
        (EnginePacket(E.UPGRADE), "5"),
        (EnginePacket(E.NOOP), "6"),
    ],
)
def test_text_packets(version: int, packet: EnginePacket, frame: str) -> None:
    assert encode_engine_packet(packet, version) == frame
    assert decode_engine_packet(frame, version) == packet


def test_binary_message_v4_is_the_raw_payload() -> None:
    packet = EnginePacket(E.MESSAGE, b"\x00\x01\x02\x03\x04\x05")
    assert encode_engine_packet(packet, 4) == b"\x00\x01\x02\x03\x04\x05"
    assert decode_engine_packet(b"\x00\x01\x02\x03\x04\x05", 4) == packet
    assert decode_engine_packet(b"", 4) == EnginePacket(E.MESSAGE, b"")


def test_binary_message_v3_carries_the_type_in_the_first_byte() -> None:
    # The v3 document's example: 4|0|1|2|3|4|5
    packet = EnginePacket(E.MESSAGE, bytes(range(6)))
    assert encode_engine_packet(packet, 3) == b"\x04\x00\x01\x02\x03\x04\x05"
    assert decode_engine_packet(b"\x04\x00\x01\x02\x03\x04\x05", 3) == packet
    bytearray_packet = EnginePacket(E.MESSAGE, bytearray(b"ab"))  # type: ignore[arg-type]
    assert encode_engine_packet(bytearray_packet, 3) == b"\x04ab"


@pytest.mark.parametrize("frame", ["", "7", "x4hello", "{}"])
def test_bad_text_frames(frame: str) -> None:
    with pytest.raises(DecodeError):
        decode_engine_packet(frame, 4)


@pytest.mark.parametrize("frame", [b"", b"\x02ping", b"4text"])
def test_bad_v3_binary_frames(frame: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_engine_packet(frame, 3)


def test_only_message_packets_are_binary_and_versions_are_checked() -> None:
    with pytest.raises(ValueError, match="binary"):
        encode_engine_packet(EnginePacket(E.PING, b"x"), 4)
    with pytest.raises(ValueError, match="revision"):
        encode_engine_packet(EnginePacket(E.PING), 5)
    with pytest.raises(ValueError, match="revision"):
        decode_engine_packet("2", 2)


def test_decode_error_is_a_value_error_and_a_library_error() -> None:
    import mesiboscript

    with pytest.raises(ValueError, match=r"not an Engine\.IO packet") as info:
        decode_engine_packet("", 4)
    assert isinstance(info.value, mesiboscript.MesiboScriptError)


# -- handshake --------------------------------------------------------------------------------


def test_handshake_v4_from_socket_io_4() -> None:
    data = (
        '{"sid":"jwfrTRqdEFGE8rjiAAAA","upgrades":[],"pingInterval":25000,'
        '"pingTimeout":20000,"maxPayload":10000000}'
    )
    assert parse_handshake(data) == Handshake("jwfrTRqdEFGE8rjiAAAA", (), 25.0, 20.0, 10000000)


def test_handshake_v3_from_socket_io_1_7() -> None:
    data = '{"sid":"ulXh8x5JKgizO0f3AAAA","upgrades":[],"pingInterval":25000,"pingTimeout":60000}'
    handshake = parse_handshake(data)
    assert handshake == Handshake("ulXh8x5JKgizO0f3AAAA", (), 25.0, 60.0, None)


def test_handshake_from_python_engineio_with_a_sub_second_interval() -> None:
    data = '{"sid":"8E","upgrades":[],"pingTimeout":200,"pingInterval":0,"maxPayload":10000000}'
    assert parse_handshake(data) == Handshake("8E", (), 0.0, 0.2, 10000000)


def test_handshake_with_upgrades() -> None:
    data = '{"sid":"a","upgrades":["websocket"],"pingInterval":300,"pingTimeout":200}'
    assert parse_handshake(data).upgrades == ("websocket",)
    assert parse_handshake(data).ping_interval == pytest.approx(0.3)


@pytest.mark.parametrize(
    "data",
    [
        "",
        "not json",
        "[]",
        '{"upgrades":[],"pingInterval":1,"pingTimeout":1}',
        '{"sid":"","pingInterval":1,"pingTimeout":1}',
        '{"sid":"a","pingTimeout":1}',
        '{"sid":"a","pingInterval":-1,"pingTimeout":1}',
        '{"sid":"a","pingInterval":1,"pingTimeout":0}',
        '{"sid":"a","pingInterval":true,"pingTimeout":1}',
        '{"sid":"a","pingInterval":"25000","pingTimeout":1}',
        '{"sid":"a","upgrades":"websocket","pingInterval":1,"pingTimeout":1}',
        '{"sid":"a","pingInterval":1,"pingTimeout":1,"maxPayload":"big"}',
    ],
)
def test_bad_handshakes(data: str) -> None:
    with pytest.raises(DecodeError):
        parse_handshake(data)


# -- Socket.IO packets: the protocol document's examples -------------------------------------


@pytest.mark.parametrize(
    ("packet", "text"),
    [
        (SocketPacket(S.CONNECT), "0"),
        (SocketPacket(S.CONNECT, "/admin"), "0/admin,"),
        (SocketPacket(S.CONNECT, "/", {"token": "123"}), '0{"token":"123"}'),
        (SocketPacket(S.CONNECT, "/admin", {"token": "123"}), '0/admin,{"token":"123"}'),
        (SocketPacket(S.DISCONNECT), "1"),
        (SocketPacket(S.DISCONNECT, "/admin"), "1/admin,"),
        (SocketPacket(S.EVENT, "/", ["foo"]), '2["foo"]'),
        (SocketPacket(S.EVENT, "/admin", ["bar"]), '2/admin,["bar"]'),
        (SocketPacket(S.EVENT, "/", ["foo"], 12), '212["foo"]'),
        (SocketPacket(S.EVENT, "/admin", ["foo", 1, None], 13), '2/admin,13["foo",1,null]'),
        (SocketPacket(S.ACK, "/admin", ["bar"], 13), '3/admin,13["bar"]'),
        (SocketPacket(S.ACK, "/", [], 0), "30[]"),
        (
            SocketPacket(S.CONNECT_ERROR, "/", {"message": "Not authorized"}),
            '4{"message":"Not authorized"}',
        ),
        (SocketPacket(S.EVENT, "/", ["héllo", {"a": [1.5, True]}]), '2["héllo",{"a":[1.5,true]}]'),
    ],
)
def test_text_socket_packets(packet: SocketPacket, text: str) -> None:
    assert encode_socket_packet(packet) == [text]
    assert SocketDecoder().feed(text) == packet


def test_binary_event_from_the_protocol_document() -> None:
    packet = SocketPacket(S.EVENT, "/", ["baz", b"\x01\x02\x03\x04"])
    frames = encode_socket_packet(packet)
    assert frames == ['51-["baz",{"_placeholder":true,"num":0}]', b"\x01\x02\x03\x04"]
    decoder = SocketDecoder()
    assert decoder.feed(frames[0]) is None
    assert decoder.waiting
    assert decoder.feed(frames[1]) == packet
    assert not decoder.waiting


def test_binary_ack_with_namespace_and_several_attachments() -> None:
    packet = SocketPacket(S.ACK, "/admin", [{"a": b"x", "b": [b"", bytearray(b"yz")]}], 15)
    frames = encode_socket_packet(packet)
    assert frames[0] == (
        '63-/admin,15[{"a":{"_placeholder":true,"num":0},'
        '"b":[{"_placeholder":true,"num":1},{"_placeholder":true,"num":2}]}]'
    )
    # An empty bytes value is an attachment too.
    assert frames[1:] == [b"x", b"", b"yz"]


def test_attachment_count_in_header_matches() -> None:
    frames = encode_socket_packet(SocketPacket(S.EVENT, "/", ["e", b"a", memoryview(b"b")]))
    assert isinstance(frames[0], str)
    assert frames[0].startswith("52-")
    assert frames[1:] == [b"a", b"b"]


def test_binary_packet_decoding_restores_nested_values() -> None:
    decoder = SocketDecoder()
    text = '52-/chat,7["up",{"file":{"_placeholder":true,"num":1}},[{"_placeholder":true,"num":0}]]'
    assert decoder.feed(text) is None
    assert decoder.feed(b"zero") is None
    packet = decoder.feed(b"one")
    assert packet == SocketPacket(S.EVENT, "/chat", ["up", {"file": b"one"}, [b"zero"]], 7)


# -- Socket.IO packets as real servers send them ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "packet"),
    [
        # socket.io 4 / python-socketio 5
        (
            '0{"sid":"imGyTeTMN99tuACLAAAA"}',
            SocketPacket(S.CONNECT, "/", {"sid": "imGyTeTMN99tuACLAAAA"}),
        ),
        (
            '4/private,{"message":"not authorized","data":{"reason":"bad token"}}',
            SocketPacket(
                S.CONNECT_ERROR,
                "/private",
                {"message": "not authorized", "data": {"reason": "bad token"}},
            ),
        ),
        ("1/chat,", SocketPacket(S.DISCONNECT, "/chat")),
        ('31[1,"a",{"x":null}]', SocketPacket(S.ACK, "/", [1, "a", {"x": None}], 1)),
        # socket.io 1.7 (Socket.IO v4): no trailing comma after a lone namespace, bare errors
        ("0", SocketPacket(S.CONNECT)),
        ("0/chat", SocketPacket(S.CONNECT, "/chat")),
        ("1/chat", SocketPacket(S.DISCONNECT, "/chat")),
        ('4"Authentication error"', SocketPacket(S.CONNECT_ERROR, "/", "Authentication error")),
        ('4/chat,"Invalid namespace"', SocketPacket(S.CONNECT_ERROR, "/chat", "Invalid namespace")),
        # socket.io 2.x clients put the query after the namespace
        ("0/chat?token=abc,", SocketPacket(S.CONNECT, "/chat")),
        # an event name may be a number in the v5 parser
        ("2[1,2]", SocketPacket(S.EVENT, "/", [1, 2])),
    ],
)
def test_packets_from_real_servers(text: str, packet: SocketPacket) -> None:
    assert SocketDecoder().feed(text) == packet


@pytest.mark.parametrize(
    "text",
    [
        "",
        "7",
        "a",
        "2",  # an event without data
        "2[]",  # an event without a name
        '2{"a":1}',
        "2[true]",
        "2[null]",
        '3["no id"]',
        "31{}",
        "0[]",
        '1["x"]',
        "4",  # an error without payload
        '2["a",]',
        '5["x",{"_placeholder":true,"num":0}]',  # no attachment count
        '5-["x"]',
        '5a-["x"]',
        '5\u0661-["x"]',  # a non-ASCII digit
    ],
)
def test_bad_socket_packets(text: str) -> None:
    with pytest.raises(DecodeError):
        SocketDecoder().feed(text)


def test_placeholder_out_of_range() -> None:
    decoder = SocketDecoder()
    decoder.feed('51-["x",{"_placeholder":true,"num":1}]')
    with pytest.raises(DecodeError, match="placeholder"):
        decoder.feed(b"data")


def test_binary_without_announcement_and_text_while_waiting() -> None:
    with pytest.raises(DecodeError):
        SocketDecoder().feed(b"stray")
    decoder = SocketDecoder()
    decoder.feed('51-["x",{"_placeholder":true,"num":0}]')
    with pytest.raises(DecodeError):
        decoder.feed('2["y"]')


def test_placeholder_lookalike_without_num_is_kept() -> None:
    packet = SocketDecoder().feed('2["x",{"_placeholder":true}]')
    assert packet == SocketPacket(S.EVENT, "/", ["x", {"_placeholder": True}])


# -- encoder checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "packet",
    [
        SocketPacket(S.EVENT, "chat", ["x"]),
        SocketPacket(S.EVENT, "/a,b", ["x"]),
        SocketPacket(S.EVENT, "/", ["x"], -1),
        SocketPacket(S.EVENT, "/", ["x", float("nan")]),
        SocketPacket(S.CONNECT, "/", {"blob": b"x"}),
        SocketPacket(S.BINARY_EVENT, "/", ["x"]),
    ],
)
def test_encoder_rejects(packet: SocketPacket) -> None:
    with pytest.raises(ValueError, match=r"namespace|ack id|JSON|binary|EVENT or ACK"):
        encode_socket_packet(packet)


def test_encoder_rejects_unserialisable_values() -> None:
    with pytest.raises(TypeError):
        encode_socket_packet(SocketPacket(S.EVENT, "/", ["x", object()]))
    with pytest.raises(TypeError):
        encode_socket_packet(SocketPacket(S.EVENT, "/", ["x", {1: "a"}]))


def test_tuples_encode_as_arrays() -> None:
    assert encode_socket_packet(SocketPacket(S.EVENT, "/", ("x", (1, 2)))) == ['2["x",[1,2]]']


# -- connect errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "data"),
    [
        ({"message": "no", "data": {"a": 1}}, {"message": "no", "data": {"a": 1}}),
        ({"message": "no"}, {"message": "no"}),
        ("Authentication error", {"message": "Authentication error"}),
        ({"code": 5}, {"code": 5, "message": "connect error"}),
        ({"message": 7}, {"message": "7"}),
        (42, {"message": "connect error", "data": 42}),
    ],
)
def test_connect_error_data(payload: Any, data: dict[str, Any]) -> None:
    assert connect_error_data(payload) == data


# -- properties -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.binary(max_size=64),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
namespaces = st.just("/") | st.from_regex(r"/[a-z0-9_\-/]{1,12}", fullmatch=True)


@given(
    namespace=namespaces,
    name=st.text(min_size=1, max_size=12),
    args=st.lists(json_values, max_size=4),
    packet_id=st.none() | st.integers(min_value=0, max_value=2**31),
    version=st.sampled_from([3, 4]),
)
def test_event_round_trip_through_both_layers(
    namespace: str, name: str, args: list[Any], packet_id: Any, version: int
) -> None:
    packet = SocketPacket(S.EVENT, namespace, [name, *args], packet_id)
    decoder = SocketDecoder()
    result = None
    for item in encode_socket_packet(packet):
        frame = encode_engine_packet(EnginePacket(E.MESSAGE, item), version)
        engine = decode_engine_packet(frame, version)
        assert engine.type == E.MESSAGE
        result = decoder.feed(engine.data)
    assert result == packet
    assert not decoder.waiting


@given(text=st.text(max_size=40))
def test_decoder_raises_only_decode_error(text: str) -> None:
    try:
        SocketDecoder().feed(text)
    except DecodeError:
        pass
