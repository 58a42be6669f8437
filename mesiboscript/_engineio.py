"""Engine.IO (v3, v4) and Socket.IO (v4, v5) packets over WebSocket frames: a pure codec.

No sockets, no threads, no clocks: :mod:`mesiboscript._socketio` feeds it frames and sends what it
returns. The two layers, as the protocol documents (socketio/engine.io-protocol,
socketio/socket.io-protocol) define them:

Engine.IO packet, one per WebSocket frame
    A text frame is ``<type digit><data>``: ``0`` open (the handshake JSON), ``1`` close, ``2``
    ping, ``3`` pong, ``4`` message, ``5`` upgrade, ``6`` noop. A binary frame is a message: in v4
    its bytes are the payload; in v3 the first byte is the packet type (``0x04``) and the rest the
    payload. v4 servers ping and clients answer; in v3 the client pings and the server answers.

Socket.IO packet, carried in Engine.IO messages
    ``<type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]`` with types ``0`` CONNECT, ``1``
    DISCONNECT, ``2`` EVENT, ``3`` ACK, ``4`` CONNECT_ERROR (ERROR in v4), ``5`` BINARY_EVENT and
    ``6`` BINARY_ACK. The namespace is written only when it is not ``/``. Binary values are taken
    out of the data and replaced by ``{"_placeholder": true, "num": i}``; the packet is followed by
    one binary Engine.IO message per attachment, in order.

The packet format is the same in Socket.IO v4 (socket.io 1.x/2.x, over Engine.IO v3) and v5
(socket.io 3/4, over Engine.IO v4); what differs is the session: v5 clients must send CONNECT for
every namespace, the default one included, with an optional auth object, and get
``{"sid": ...}`` back or a CONNECT_ERROR whose payload is ``{"message": ..., "data": ...}``. v4
servers connect the default namespace by themselves and report errors as a bare string or object.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from ._exceptions import MesiboScriptError

__all__ = [
    "PAYLOAD_BINARY",
    "PAYLOAD_TEXT",
    "RESERVED_EVENTS",
    "DecodeError",
    "EnginePacket",
    "EnginePacketType",
    "Handshake",
    "SocketDecoder",
    "SocketPacket",
    "SocketPacketType",
    "connect_error_data",
    "decode_engine_packet",
    "decode_payload",
    "encode_engine_packet",
    "encode_payload",
    "encode_socket_packet",
    "parse_handshake",
]

Frame = Union[str, bytes]

# Names a client may not emit: socket.io-client reserves them for its own events.
RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)


class DecodeError(MesiboScriptError, ValueError):
    """A frame or packet that the Engine.IO / Socket.IO protocols do not allow."""


class EnginePacketType(enum.IntEnum):
    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


class SocketPacketType(enum.IntEnum):
    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4  # ERROR in Socket.IO v4
    BINARY_EVENT = 5
    BINARY_ACK = 6


# -- Engine.IO -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnginePacket:
    """One Engine.IO packet: ``data`` is ``str`` for text packets, ``bytes`` for binary messages."""

    type: EnginePacketType
    data: Frame = ""


def _check_version(version: int) -> None:
    if version not in (3, 4):
        raise ValueError(f"Engine.IO protocol revision must be 3 or 4, not {version!r}")


def encode_engine_packet(packet: EnginePacket, version: int) -> Frame:
    """The WebSocket payload for ``packet``: ``str`` for a text frame, ``bytes`` for binary."""
    _check_version(version)
    if isinstance(packet.data, (bytes, bytearray, memoryview)):
        if packet.type != EnginePacketType.MESSAGE:
            raise ValueError("only message packets carry binary data")
        data = bytes(packet.data)
        # v3 frames the type in the first byte; v4 dropped it (a binary frame is a message).
        return bytes((packet.type,)) + data if version == 3 else data
    return f"{int(packet.type)}{packet.data}"


def decode_engine_packet(frame: Frame, version: int) -> EnginePacket:
    """Parse one WebSocket frame payload (``str`` from a text frame, ``bytes`` from binary)."""
    _check_version(version)
    if isinstance(frame, str):
        if not frame or not "0" <= frame[0] <= "6":
            raise DecodeError(f"not an Engine.IO packet: {frame[:32]!r}")
        return EnginePacket(EnginePacketType(ord(frame[0]) - 48), frame[1:])
    data = bytes(frame)
    if version == 4:
        return EnginePacket(EnginePacketType.MESSAGE, data)
    if not data or data[0] != EnginePacketType.MESSAGE:
        raise DecodeError("an Engine.IO v3 binary frame must start with the message type (4)")
    return EnginePacket(EnginePacketType.MESSAGE, data[1:])


@dataclass(frozen=True)
class Handshake:
    """The ``open`` packet's data. Intervals are in seconds (the wire carries milliseconds)."""

    sid: str
    upgrades: tuple[str, ...]
    ping_interval: float
    ping_timeout: float
    max_payload: Optional[int] = None  # sent by Engine.IO v4 servers since engine.io 6.1


def parse_handshake(data: str) -> Handshake:
    """Parse the JSON of an ``open`` packet."""
    try:
        info = json.loads(data)
    except ValueError as exc:
        raise DecodeError(f"the open packet is not JSON: {data[:64]!r}") from exc
    if not isinstance(info, dict):
        raise DecodeError("the open packet is not a JSON object")
    sid = info.get("sid")
    upgrades = info.get("upgrades", [])
    interval: Any = info.get("pingInterval")
    timeout: Any = info.get("pingTimeout")
    max_payload = info.get("maxPayload")
    if not isinstance(sid, str) or not sid:
        raise DecodeError("the open packet has no session id")
    if not isinstance(upgrades, list) or not all(isinstance(u, str) for u in upgrades):
        raise DecodeError("the open packet's upgrades are not a list of names")
    # python-engineio rounds a sub-second pingInterval down to 0; the timeout must be positive.
    if not _number(interval) or interval < 0 or not _number(timeout) or timeout <= 0:
        raise DecodeError(f"the open packet's ping settings are not usable: {data[:200]!r}")
    if max_payload is not None and not _is_int(max_payload):
        raise DecodeError(f"the open packet's maxPayload is not an integer: {max_payload!r}")
    return Handshake(sid, tuple(upgrades), interval / 1000.0, timeout / 1000.0, max_payload)


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


# -- Socket.IO -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SocketPacket:
    """One Socket.IO packet, with binary attachments already put back in place in ``data``.

    ``type`` is never BINARY_EVENT/BINARY_ACK here: the encoder picks those when ``data`` holds
    bytes, and the decoder reports them as EVENT/ACK once their attachments have arrived.
    """

    type: SocketPacketType
    namespace: str = "/"
    data: Any = None
    id: Optional[int] = None


def _dumps(value: Any) -> str:
    # JSON.stringify's output: compact, UTF-8 as is; NaN and Infinity are not JSON.
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        raise ValueError(f"cannot send {value!r} as JSON: {exc}") from None
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate cannot be UTF-8: escape it (and the rest) as \uXXXX, as
            # JSON.stringify does since ES2019.
            text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text


def _deconstruct(value: Any, attachments: list[bytes]) -> Any:
    """Replace bytes-like values by placeholders, collecting them in order."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        attachments.append(bytes(value))
        return {"_placeholder": True, "num": len(attachments) - 1}
    if isinstance(value, (list, tuple)):
        return [_deconstruct(v, attachments) for v in value]
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be str, not {type(key).__name__}")
            out[key] = _deconstruct(item, attachments)
        return out
    return value


def _reconstruct(value: Any, attachments: list[bytes]) -> Any:
    if isinstance(value, list):
        return [_reconstruct(v, attachments) for v in value]
    if isinstance(value, dict):
        if value.get("_placeholder") is True and "num" in value:
            num = value["num"]
            if not _is_int(num) or not 0 <= num < len(attachments):
                raise DecodeError(f"a binary placeholder points at no attachment: {num!r}")
            return attachments[num]
        return {k: _reconstruct(v, attachments) for k, v in value.items()}
    return value


def _check_namespace(namespace: str) -> None:
    if not namespace.startswith("/") or "," in namespace:
        raise ValueError(f"a namespace starts with '/' and has no ',': {namespace!r}")


def encode_socket_packet(packet: SocketPacket) -> list[Frame]:
    """Encode ``packet``: the text packet first, then one ``bytes`` item per binary attachment.

    Each item is the data of one Engine.IO message. EVENT/ACK packets whose data holds
    ``bytes``/``bytearray``/``memoryview`` values go out as BINARY_EVENT/BINARY_ACK.

    Raises:
        TypeError, ValueError: the data cannot be sent as JSON.
    """
    _check_namespace(packet.namespace)
    attachments: list[bytes] = []
    ptype = packet.type
    if ptype in (SocketPacketType.BINARY_EVENT, SocketPacketType.BINARY_ACK):
        raise ValueError("give EVENT or ACK: the binary types are chosen from the data")
    data = _deconstruct(packet.data, attachments) if packet.data is not None else None
    if attachments:
        if ptype == SocketPacketType.EVENT:
            ptype = SocketPacketType.BINARY_EVENT
        elif ptype == SocketPacketType.ACK:
            ptype = SocketPacketType.BINARY_ACK
        else:
            raise ValueError(f"{ptype.name} packets cannot carry binary data")
    text = str(int(ptype))
    if attachments:
        text += f"{len(attachments)}-"
    if packet.namespace != "/":
        text += packet.namespace + ","
    if packet.id is not None:
        if not _is_int(packet.id) or packet.id < 0:
            raise ValueError(f"an ack id is a non-negative int, not {packet.id!r}")
        text += str(packet.id)
    if data is not None:
        text += _dumps(data)
    frames: list[Frame] = [text]
    frames.extend(attachments)
    return frames


def _valid_payload(ptype: SocketPacketType, data: Any, packet_id: Optional[int]) -> bool:
    if ptype == SocketPacketType.CONNECT:
        return data is None or isinstance(data, dict)
    if ptype == SocketPacketType.DISCONNECT:
        return data is None
    if ptype == SocketPacketType.CONNECT_ERROR:
        return data is not None  # v5: an object; v4: a string or an object
    if ptype in (SocketPacketType.EVENT, SocketPacketType.BINARY_EVENT):
        return (
            isinstance(data, list)
            and len(data) > 0
            and (isinstance(data[0], str) or _is_int(data[0]))
        )
    # ACK, BINARY_ACK
    return isinstance(data, list) and packet_id is not None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse(text: str) -> tuple[SocketPacket, int]:
    """Parse a text packet; also return how many attachments must follow."""
    if not text or not "0" <= text[0] <= "6":
        raise DecodeError(f"not a Socket.IO packet: {text[:32]!r}")
    ptype = SocketPacketType(ord(text[0]) - 48)
    i, n = 1, len(text)
    attachments = 0
    if ptype in (SocketPacketType.BINARY_EVENT, SocketPacketType.BINARY_ACK):
        dash = text.find("-", i)
        count = text[i:dash] if dash >= 0 else ""
        if not count or not count.isascii() or not count.isdigit():
            raise DecodeError(f"a binary packet without its attachment count: {text[:32]!r}")
        attachments = int(count)
        i = dash + 1
    namespace = "/"
    if i < n and text[i] == "/":
        comma = text.find(",", i)
        end = n if comma < 0 else comma
        # Socket.IO v4 (socket.io 2.x) clients appended the query to the namespace; drop it.
        namespace = text[i:end].split("?", 1)[0]
        i = end + 1 if comma >= 0 else n
    start = i
    while i < n and "0" <= text[i] <= "9":
        i += 1
    packet_id = int(text[start:i]) if i > start else None
    data: Any = None
    if i < n:
        try:
            data = json.loads(text[i:])
        except ValueError as exc:
            raise DecodeError(f"the packet's data is not JSON: {text[:64]!r}") from exc
    if not _valid_payload(ptype, data, packet_id):
        raise DecodeError(f"invalid payload for a {ptype.name} packet: {text[:64]!r}")
    if ptype == SocketPacketType.BINARY_EVENT:
        ptype = SocketPacketType.EVENT
    elif ptype == SocketPacketType.BINARY_ACK:
        ptype = SocketPacketType.ACK
    return SocketPacket(ptype, namespace, data, packet_id), attachments


@dataclass
class SocketDecoder:
    """Turns Engine.IO message data into Socket.IO packets, reassembling binary attachments.

    Feed every message in arrival order; :meth:`feed` returns a packet once it is complete.
    """

    _packet: Optional[SocketPacket] = None
    _expected: int = 0
    _attachments: list[bytes] = field(default_factory=list)

    @property
    def waiting(self) -> bool:
        """True while a binary packet waits for more attachments."""
        return self._packet is not None

    def feed(self, data: Frame) -> Optional[SocketPacket]:
        """Take one message's data; return the packet it completes, or ``None``.

        Raises:
            DecodeError: malformed text, binary data when none was announced, or text while
                attachments are still expected.
        """
        if isinstance(data, str):
            if self._packet is not None:
                raise DecodeError("a text packet arrived while binary attachments were expected")
            packet, expected = _parse(data)
            if expected == 0:
                return _finish(packet, [])
            self._packet, self._expected, self._attachments = packet, expected, []
            return None
        if self._packet is None:
            raise DecodeError("binary data arrived with no binary packet announced")
        self._attachments.append(bytes(data))
        if len(self._attachments) < self._expected:
            return None
        packet, attachments = self._packet, self._attachments
        self._packet, self._expected, self._attachments = None, 0, []
        return _finish(packet, attachments)


def _finish(packet: SocketPacket, attachments: list[bytes]) -> SocketPacket:
    if not attachments:
        return packet
    return SocketPacket(
        packet.type, packet.namespace, _reconstruct(packet.data, attachments), packet.id
    )


def connect_error_data(payload: Any) -> dict[str, Any]:
    """A CONNECT_ERROR (v5) or ERROR (v4) payload as one shape: ``{"message": str, ...}``.

    v5 sends ``{"message": ..., "data": ...}``, kept as is; v4 sends a bare string (the message) or
    any JSON value (kept under ``"data"``).
    """
    if isinstance(payload, dict):
        out = dict(payload)
        if not isinstance(out.get("message"), str):
            out["message"] = _dumps(out["message"]) if "message" in out else "connect error"
        return out
    if isinstance(payload, str):
        return {"message": payload}
    return {"message": "connect error", "data": payload}


# -- HTTP long-polling payloads ----------------------------------------------------------------
#
# A polling request or response body carries several Engine.IO packets:
# - v4: text packets joined by the record separator \x1e; a binary message is "b" + base64.
# - v3, text encoding (Content-Type text/plain): "<length>:<packet>" repeated, the length counted
#   in UTF-16 code units (JavaScript's string length); a binary message is "b4" + base64.
# - v3, binary encoding (application/octet-stream, what engine.io 3 sends and takes when a
#   packet is binary and the client supports binary): per packet a byte 0 (text) or 1 (binary),
#   the length as one byte per decimal digit, 0xFF, then the packet: the UTF-8 of a text packet,
#   or the type byte (4) and the bytes of a binary one.

_RS = "\x1e"
PAYLOAD_TEXT = "text/plain;charset=UTF-8"
PAYLOAD_BINARY = "application/octet-stream"


def encode_payload(packets: list[EnginePacket], version: int) -> tuple[bytes, str]:
    """The body and Content-Type of a polling POST carrying ``packets``, oldest first."""
    _check_version(version)
    if version == 4:
        parts = []
        for packet in packets:
            if isinstance(packet.data, (bytes, bytearray, memoryview)):
                parts.append("b" + base64.b64encode(bytes(packet.data)).decode("ascii"))
            else:
                parts.append(f"{int(packet.type)}{packet.data}")
        return _RS.join(parts).encode("utf-8"), PAYLOAD_TEXT
    # engine.io-parser 1.x (socket.io 1.x) reads text payloads as UTF-8 inside a "binary string"
    # and 2.x as plain text: both read the binary encoding alike, so anything but ASCII goes so.
    if any(not isinstance(p.data, str) or not p.data.isascii() for p in packets):
        out = bytearray()
        for packet in packets:
            encoded = encode_engine_packet(packet, 3)
            if isinstance(encoded, str):
                body, flag = encoded.encode("utf-8"), 0
            else:
                body, flag = encoded, 1
            out.append(flag)
            out.extend(int(d) for d in str(len(body)))
            out.append(0xFF)
            out.extend(body)
        return bytes(out), PAYLOAD_BINARY
    items = [f"{int(p.type)}{p.data!s}" for p in packets]  # all text here (ASCII)
    text = "".join(f"{_js_length(item)}:{item}" for item in items)
    return text.encode("utf-8"), PAYLOAD_TEXT


def decode_payload(body: bytes, version: int, content_type: str = "") -> list[EnginePacket]:
    """The packets of a polling response body (``content_type`` tells v3's two encodings apart).

    Raises:
        DecodeError: a body that is not a payload of that revision (bad lengths, bad base64,
            bad UTF-8, unknown packet types, an empty body).
    """
    _check_version(version)
    if not body:
        raise DecodeError("an empty polling payload")
    if version == 3 and (
        content_type.split(";")[0].strip().lower() == PAYLOAD_BINARY
        or (body[:1] in (b"\x00", b"\x01"))
    ):
        return _decode_v3_binary(body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"a polling payload that is not UTF-8: {exc}") from None
    if not text:
        raise DecodeError("an empty polling payload")
    if version == 4:
        return [_decode_text_item(item, 4) for item in text.split(_RS)]
    return _decode_v3_text(text)


def _decode_text_item(item: str, version: int) -> EnginePacket:
    if item.startswith("b"):
        # v4: "b" + base64 of a message; v3: "b" + the type digit + base64.
        data = item[1:]
        if version == 3:
            if not data.startswith("4"):
                raise DecodeError(f"a base64 packet that is not a message: {item[:32]!r}")
            data = data[1:]
        try:
            return EnginePacket(EnginePacketType.MESSAGE, base64.b64decode(data, validate=True))
        except (ValueError, binascii.Error) as exc:
            raise DecodeError(f"bad base64 in a polling payload: {exc}") from None
    return decode_engine_packet(item, version)


def _js_length(text: str) -> int:
    """JavaScript's ``string.length``: UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _decode_v3_text(text: str) -> list[EnginePacket]:
    units = text.encode("utf-16-le", "surrogatepass")
    packets: list[EnginePacket] = []
    i, n = 0, len(units) // 2
    while i < n:
        colon = i
        digits = ""
        while colon < n:
            ch = units[2 * colon : 2 * colon + 2].decode("utf-16-le", "surrogatepass")
            if ch == ":":
                break
            if not ("0" <= ch <= "9") or len(digits) > 9:
                raise DecodeError(f"a v3 payload with a bad length at {i}: {text[:32]!r}")
            digits += ch
            colon += 1
        if colon >= n or not digits:
            raise DecodeError(f"a v3 payload without its length: {text[:32]!r}")
        length = int(digits)
        start, end = colon + 1, colon + 1 + length
        if length == 0 or end > n:
            raise DecodeError(f"a v3 payload whose length does not match: {text[:32]!r}")
        try:
            item = units[2 * start : 2 * end].decode("utf-16-le")
        except UnicodeDecodeError:
            raise DecodeError("a v3 payload length that splits a character") from None
        packets.append(_decode_text_item(_inner_utf8(item), 3))
        i = end
    return packets


def _inner_utf8(item: str) -> str:
    """engine.io 1.x (socket.io 1.x) UTF-8-encodes each packet of a text payload into a string
    of byte values (then sends that as UTF-8 again); 2.x does not. A packet made only of byte
    values that form valid UTF-8 beyond ASCII is taken as 1.x's and decoded once more."""
    if item.isascii() or max(item) > "\xff":
        return item
    try:
        return item.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return item


def _decode_v3_binary(body: bytes) -> list[EnginePacket]:
    packets: list[EnginePacket] = []
    i, n = 0, len(body)
    while i < n:
        flag = body[i]
        if flag not in (0, 1):
            raise DecodeError(f"a v3 binary payload with a bad packet flag {flag} at {i}")
        j = i + 1
        length = 0
        while j < n and body[j] != 0xFF:
            if body[j] > 9 or j - i > 10:
                raise DecodeError(f"a v3 binary payload with a bad length at {i}")
            length = length * 10 + body[j]
            j += 1
        if j >= n or j == i + 1:
            raise DecodeError("a v3 binary payload without its length")
        start, end = j + 1, j + 1 + length
        if length == 0 or end > n:
            raise DecodeError("a v3 binary payload whose length does not match")
        chunk = body[start:end]
        if flag == 0:
            try:
                packets.append(_decode_text_item(chunk.decode("utf-8"), 3))
            except UnicodeDecodeError:
                raise DecodeError("a v3 binary payload with a text packet not UTF-8") from None
        else:
            packets.append(decode_engine_packet(chunk, 3))
        i = end
    return packets
