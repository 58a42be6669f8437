"""The tests' one misbehaving WebSocket server: raw bytes on a real socket.

Standard library only (``tests/parity/record.py`` runs it without the package). One thread
accepts on ``127.0.0.1`` port 0; each connection runs in its own thread. By default a connection
is scripted per URL path: it does the handshake its script asks for (correct, or broken in a
chosen way, or never answered), writes the script's raw bytes, and records what the client sent
back: every frame after the handshake, unmasked and parsed, the close code and reason on the
wire, and how the client ended the TCP connection.

    with RawServer() as srv:
        ws = WebSocket(srv.url("/close_4001"))
        ...
        rec = srv.wait_record("/close_4001", timeout=5)
        assert rec.client_close_code == 4001

``SCRIPTS`` holds the named scenarios used by the parity fixtures and the fault tests; a test can
add its own with ``RawServer(scripts={...})`` or ``srv.add(path, Script(...))``. A conversation no
script describes is a handler, blocking code run on each connection::

    def handler(conn: RawConnection) -> Optional[int]:
        conn.handshake()
        conn.sock.sendall(frame(OP_TEXT, "hi"))
        return conn.read_close_code()

    with RawServer(handler=handler) as srv:
        ws = WebSocket(srv.url())
        ...
        assert srv.result() == 1000

:func:`frame` and :func:`close_frame` build frames, valid or not, for both.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import select
import selectors
import socket
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from .helpers import TIMEOUT

__all__ = [
    "DEFLATE_INVALID",
    "GUID",
    "INVALID_HOST",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONT",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "SCRIPTS",
    "ClientFrame",
    "ConnRecord",
    "DropFin",
    "DropRst",
    "ExpectClose",
    "Handler",
    "Handshake",
    "RawConnection",
    "RawServer",
    "Script",
    "Send",
    "Stall",
    "WaitMessage",
    "accept_key",
    "close_frame",
    "deflated",
    "frame",
    "handshake_response",
    "parse_client_frames",
    "unmask",
]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

#: RFC 6761 reserves ``.invalid``: a resolver answers NXDOMAIN without asking anyone else.
INVALID_HOST = "mesiboscript-test.invalid"


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept value for a Sec-WebSocket-Key (RFC 6455 section 4.2.2)."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def frame(
    opcode: int,
    payload: Union[bytes, str] = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: Union[bool, bytes] = False,
    length: Optional[int] = None,
) -> bytes:
    """Encode one frame exactly as asked, valid or not.

    Args:
        opcode: any 4-bit value, reserved ones included.
        payload: the payload (``str`` is UTF-8 encoded).
        fin: the FIN bit.
        rsv: the three RSV bits as a number 0-7.
        mask: ``True`` masks with a fixed key, ``bytes`` with that 4-byte key (servers must not).
        length: the length written in the header, if it should lie about the payload.
    """
    data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
    n = len(data) if length is None else length
    head = bytearray([(0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 0xF)])
    mbit = 0x80 if mask else 0
    if n < 126:
        head.append(mbit | n)
    elif n < 1 << 16:
        head.append(mbit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(mbit | 127)
        head += struct.pack("!Q", n)
    if mask:
        key = mask if isinstance(mask, bytes) else b"\x37\xfa\x21\x3d"
        head += key
        data = bytes(b ^ key[i % 4] for i, b in enumerate(data))
    return bytes(head) + data


def close_frame(code: Optional[int] = None, reason: Union[bytes, str] = b"") -> bytes:
    """A close frame; ``code=None`` gives an empty payload (no status code)."""
    if code is None:
        return frame(OP_CLOSE)
    why = reason.encode("utf-8") if isinstance(reason, str) else reason
    return frame(OP_CLOSE, struct.pack("!H", code) + why)


def deflated(*messages: Union[bytes, str], bits: int = 15) -> list[bytes]:
    """Payloads of permessage-deflate messages as a server compresses them (RFC 7692 7.2.1: raw
    deflate, a sync flush, its 4-byte tail cut off), all from one compressor, in order: each
    may refer back to the ones before (context takeover)."""
    encoder = zlib.compressobj(6, zlib.DEFLATED, -bits)
    out = []
    for m in messages:
        data = m.encode("utf-8") if isinstance(m, str) else m
        out.append((encoder.compress(data) + encoder.flush(zlib.Z_SYNC_FLUSH))[:-4])
    return out


# --------------------------------------------------------------------------------------------
# Scripts


@dataclass(frozen=True)
class Handshake:
    """How the server answers the opening handshake.

    ``mode``: ``"ok"`` (a correct 101), ``"status"`` (``status`` line, then FIN), ``"bad_accept"``
    (a 101 with a wrong Sec-WebSocket-Accept), ``"silent"`` (read the request, never answer:
    slowloris), ``"none"`` (do not even read the request).
    ``protocol``: ``"first"`` picks the first offered protocol, another string is sent as it is
    (offered or not), ``None`` sends no Sec-WebSocket-Protocol. ``extensions``: the header value to
    send, offered or not. ``late``: seconds to hold the answer back, unless the client sends or
    closes first (a client that gives up while CONNECTING is never answered).
    """

    mode: str = "ok"
    status: str = "101 Switching Protocols"
    protocol: Optional[str] = "first"
    extensions: Optional[str] = None
    extra_headers: tuple[tuple[str, str], ...] = ()
    late: float = 0.0


@dataclass(frozen=True)
class Send:
    """Write raw bytes."""

    data: bytes


@dataclass(frozen=True)
class ExpectClose:
    """Read until the client's close frame; then echo it (``reply``) and end with FIN."""

    reply: bool = True


@dataclass(frozen=True)
class WaitMessage:
    """Read until the client sends a text or binary frame (a client's "I am open" signal)."""


@dataclass(frozen=True)
class DropFin:
    """Close the TCP connection normally (FIN), without a close frame."""


@dataclass(frozen=True)
class DropRst:
    """Abort the TCP connection (RST, via SO_LINGER 0)."""


@dataclass(frozen=True)
class Stall:
    """Never write again; record what the client sends until it goes away or the server stops."""


Action = Union[Send, ExpectClose, WaitMessage, DropFin, DropRst, Stall]


@dataclass(frozen=True)
class Script:
    """What the server does on one URL path: a handshake, then actions in order.

    If the actions leave the connection open the server *responds* like a plain server: it answers
    pings, echoes a close frame and ends with FIN, and drops the connection after
    ``RawServer.conn_timeout`` seconds if the client never ends it.
    """

    handshake: Handshake = Handshake()
    actions: tuple[Action, ...] = ()
    doc: str = ""


def _s(*actions: Action, handshake: Handshake = Handshake(), doc: str = "") -> Script:
    return Script(handshake=handshake, actions=tuple(actions), doc=doc)


#: Named scenarios (URL path → script), shared by the parity fixtures and the fault tests.
SCRIPTS: dict[str, Script] = {
    # Correct behaviour.
    "/echo_close": _s(ExpectClose(), doc="open; wait for the client's close, echo it, FIN"),
    "/messages_then_close": _s(
        Send(frame(OP_TEXT, "hello")),
        Send(frame(OP_BINARY, b"\x00\x01\x02")),
        Send(close_frame(1000, "done")),
        ExpectClose(reply=False),
        doc="a text and a binary message, then close 1000 'done'",
    ),
    "/close_1000": _s(
        Send(close_frame(1000, "bye")),
        ExpectClose(reply=False),
        doc="server close 1000 'bye'; FIN after the client's reply",
    ),
    "/close_4001": _s(
        Send(close_frame(4001, "custom reason")),
        ExpectClose(reply=False),
        doc="server close 4001 'custom reason'",
    ),
    "/close_empty": _s(
        Send(close_frame()),
        ExpectClose(reply=False),
        doc="server close frame with an empty payload",
    ),
    "/close_then_drop": _s(
        Send(close_frame(1000, "bye")),
        DropFin(),
        doc="close frame then FIN at once, without waiting for the client's close",
    ),
    "/ping_then_close": _s(
        Send(frame(OP_PING, b"p1")),
        Send(close_frame(1000, "bye")),
        ExpectClose(reply=False),
        doc="a ping (the client must pong), then close 1000 'bye'",
    ),
    "/close_twice": _s(
        Send(close_frame(1000, "first") + close_frame(1000, "second")),
        ExpectClose(reply=False),
        doc="two close frames back to back",
    ),
    "/text_after_close": _s(
        Send(close_frame(1000, "bye") + frame(OP_TEXT, "late")),
        ExpectClose(reply=False),
        doc="close 1000 'bye' then a text frame in the same write",
    ),
    "/drop_fin": _s(DropFin(), doc="open, then TCP FIN at once, without a close frame"),
    "/drop_fin_after_message": _s(
        WaitMessage(), DropFin(), doc="wait for a client message, then TCP FIN, no close frame"
    ),
    "/drop_rst_after_message": _s(
        WaitMessage(), DropRst(), doc="wait for a client message, then TCP RST, no close frame"
    ),
    # Protocol violations after the handshake.
    "/reserved_opcode": _s(Send(frame(0x3, b"x")), doc="a frame with reserved opcode 3"),
    "/reserved_control_opcode": _s(Send(frame(0xB)), doc="a frame with reserved opcode 0xB"),
    "/rsv_bits": _s(Send(frame(OP_TEXT, "x", rsv=4)), doc="RSV1 set, no extension agreed"),
    "/masked_frame": _s(Send(frame(OP_TEXT, "hi", mask=True)), doc="a masked text frame"),
    "/bad_utf8": _s(Send(frame(OP_TEXT, b"\xce\xba\xff\xfe")), doc="text frame, invalid UTF-8"),
    "/bad_utf8_fragmented": _s(
        Send(frame(OP_TEXT, b"ok\xff", fin=False)),
        Stall(),
        doc="first fragment of a text message holds invalid UTF-8; the rest never comes",
    ),
    "/bad_utf8_close_reason": _s(
        Send(frame(OP_CLOSE, struct.pack("!H", 1000) + b"\xff")),
        ExpectClose(reply=False),
        doc="close frame whose reason is invalid UTF-8",
    ),
    # Close frames the client must reject; having sent a close, the server does not echo one.
    "/close_1byte": _s(
        Send(frame(OP_CLOSE, b"\x03")),
        ExpectClose(reply=False),
        doc="close frame with a 1-byte payload",
    ),
    "/close_1005": _s(
        Send(close_frame(1005)), ExpectClose(reply=False), doc="close code 1005 on the wire"
    ),
    "/close_1006": _s(
        Send(close_frame(1006)), ExpectClose(reply=False), doc="close code 1006 on the wire"
    ),
    "/close_1015": _s(
        Send(close_frame(1015)), ExpectClose(reply=False), doc="close code 1015 on the wire"
    ),
    "/close_999": _s(
        Send(close_frame(999)), ExpectClose(reply=False), doc="close code 999 on the wire"
    ),
    "/close_1004": _s(
        Send(close_frame(1004)), ExpectClose(reply=False), doc="close code 1004 on the wire"
    ),
    "/close_1016": _s(
        Send(close_frame(1016)), ExpectClose(reply=False), doc="close code 1016 on the wire"
    ),
    "/close_2999": _s(
        Send(close_frame(2999)), ExpectClose(reply=False), doc="close code 2999 on the wire"
    ),
    "/close_5000": _s(
        Send(close_frame(5000)), ExpectClose(reply=False), doc="close code 5000 on the wire"
    ),
    "/fragmented_ping": _s(
        Send(frame(OP_PING, b"p", fin=False)), doc="a ping with FIN clear (fragmented control)"
    ),
    "/long_ping": _s(Send(frame(OP_PING, b"p" * 126)), doc="a ping with a 126-byte payload"),
    "/cont_without_start": _s(
        Send(frame(OP_CONT, b"x")), doc="a continuation frame with no message started"
    ),
    "/garbage": _s(
        Send(b"\xff\xff\xff\xffGARBAGE\x00\x01\x02 not a websocket frame\r\n"),
        doc="garbage bytes instead of frames",
    ),
    "/oversize": _s(
        Send(frame(OP_BINARY, b"\x00" * 4096)), doc="one 4096-byte binary message (all of it)"
    ),
    "/oversize_header": _s(
        Send(frame(OP_BINARY, b"", length=1 << 40)),
        Stall(),
        doc="a frame header announcing 1 TiB, then nothing",
    ),
    "/half_frame": _s(
        Send(frame(OP_TEXT, "hello, world")[:5]),
        Stall(),
        doc="the first 5 bytes of a text frame, then stall (pings go unanswered)",
    ),
    # Handshake failures.
    "/status_200": _s(
        handshake=Handshake(mode="status", status="200 OK"), doc="HTTP 200 instead of 101"
    ),
    "/status_403": _s(
        handshake=Handshake(mode="status", status="403 Forbidden"), doc="HTTP 403 instead of 101"
    ),
    "/bad_accept": _s(handshake=Handshake(mode="bad_accept"), doc="101 with a wrong accept key"),
    "/unoffered_protocol": _s(
        handshake=Handshake(protocol="unoffered"),
        doc="101 with Sec-WebSocket-Protocol: unoffered",
    ),
    "/unoffered_extension": _s(
        handshake=Handshake(extensions="x-unoffered"),
        doc="101 with Sec-WebSocket-Extensions: x-unoffered",
    ),
    "/slowloris": _s(handshake=Handshake(mode="silent"), doc="read the request, never answer"),
}

# permessage-deflate (RFC 7692): accepted responses and what follows them, invalid responses, and
# frames that break the extension's rules.
_PMD = Handshake(extensions="permessage-deflate")
_HELLO = deflated("hello", "hello", b"\x00\x01\x02" * 100)
_FRAGMENTED = deflated("a fragmented compressed message, " * 4)[0]
SCRIPTS.update(
    {
        "/deflate_messages": _s(
            Send(frame(OP_TEXT, _HELLO[0], rsv=4)),
            Send(frame(OP_TEXT, _HELLO[1], rsv=4)),  # refers back to the first
            Send(frame(OP_BINARY, _HELLO[2], rsv=4)),
            Send(frame(OP_TEXT, "plain")),  # an uncompressed message is allowed too
            Send(close_frame(1000, "done")),
            ExpectClose(reply=False),
            handshake=_PMD,
            doc="permessage-deflate: compressed text twice (context kept), binary, a plain text",
        ),
        "/deflate_fragmented": _s(
            Send(frame(OP_TEXT, _FRAGMENTED[:10], rsv=4, fin=False)),
            Send(frame(OP_PING, b"between")),
            Send(frame(OP_CONT, _FRAGMENTED[10:20], fin=False)),
            Send(frame(OP_CONT, _FRAGMENTED[20:])),
            Send(close_frame(1000, "done")),
            ExpectClose(reply=False),
            handshake=_PMD,
            doc="permessage-deflate: one compressed text in three fragments, a ping between",
        ),
        "/deflate_no_context": _s(
            *(Send(frame(OP_TEXT, deflated("same")[0], rsv=4)) for _ in range(2)),
            WaitMessage(),
            Send(close_frame(1000, "done")),
            ExpectClose(reply=False),
            handshake=Handshake(
                extensions="permessage-deflate; server_no_context_takeover; "
                "client_no_context_takeover"
            ),
            doc="both no_context_takeover: two messages compressed alone; waits for the client's",
        ),
        "/deflate_windows": _s(
            Send(frame(OP_TEXT, deflated("small window " * 20, bits=10)[0], rsv=4)),
            WaitMessage(),
            Send(close_frame(1000, "done")),
            ExpectClose(reply=False),
            handshake=Handshake(
                extensions='permessage-deflate; server_max_window_bits="10"; '
                "client_max_window_bits=10"
            ),
            doc="server 10 bits (quoted), client 10 bits; waits for the client's message",
        ),
        "/deflate_client_bits_8": _s(
            WaitMessage(),
            Send(close_frame(1000, "done")),
            ExpectClose(reply=False),
            handshake=Handshake(extensions="permessage-deflate; client_max_window_bits=8"),
            doc="client_max_window_bits=8 (zlib cannot honour it); waits for the client's message",
        ),
        "/deflate_rsv1_cont": _s(
            Send(frame(OP_TEXT, _FRAGMENTED[:10], rsv=4, fin=False)),
            Send(frame(OP_CONT, _FRAGMENTED[10:], rsv=4)),
            handshake=_PMD,
            doc="permessage-deflate: RSV1 on a continuation frame",
        ),
        "/deflate_rsv1_ping": _s(
            Send(frame(OP_PING, b"x", rsv=4)), handshake=_PMD, doc="RSV1 on a ping"
        ),
        "/deflate_rsv2": _s(
            Send(frame(OP_TEXT, "x", rsv=2)), handshake=_PMD, doc="RSV2 with permessage-deflate"
        ),
        "/deflate_bad_data": _s(
            Send(frame(OP_TEXT, b"\xff\xff\xff\xff", rsv=4)),
            handshake=_PMD,
            doc="RSV1 on a text frame whose payload is not deflate data",
        ),
        "/deflate_bad_utf8": _s(
            Send(frame(OP_TEXT, deflated(b"\xce\xba\xff\xfe")[0], rsv=4)),
            handshake=_PMD,
            doc="a compressed text message with invalid UTF-8",
        ),
    }
)
#: Responses the client must refuse (Chromium's words in the fixtures), by path.
DEFLATE_INVALID = {
    "/deflate_unknown_param": "permessage-deflate; foo",
    "/deflate_param_value": "permessage-deflate; client_no_context_takeover=1",
    "/deflate_dup_param": "permessage-deflate; server_no_context_takeover; "
    "server_no_context_takeover",
    "/deflate_bits_7": "permessage-deflate; server_max_window_bits=7",
    "/deflate_bits_16": "permessage-deflate; client_max_window_bits=16",
    "/deflate_bits_leading_zero": "permessage-deflate; server_max_window_bits=09",
    "/deflate_bits_no_value": "permessage-deflate; server_max_window_bits",
    "/deflate_client_bits_no_value": "permessage-deflate; client_max_window_bits",
    "/deflate_twice": "permessage-deflate, permessage-deflate",
    "/deflate_and_unknown": "permessage-deflate, x-unknown",
    "/deflate_malformed": "permessage-deflate; =",
    "/deflate_empty": "",
}
for _path, _value in DEFLATE_INVALID.items():
    SCRIPTS[_path] = _s(
        handshake=Handshake(extensions=_value),
        doc=f"101 with Sec-WebSocket-Extensions: {_value!r}",
    )


# --------------------------------------------------------------------------------------------
# Records


@dataclass
class ClientFrame:
    """One frame the client sent, unmasked."""

    opcode: int
    fin: bool
    rsv: int
    masked: bool
    payload: bytes

    @property
    def close_code(self) -> Optional[int]:
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        return int(struct.unpack("!H", self.payload[:2])[0])

    @property
    def close_reason(self) -> str:
        return self.payload[2:].decode("utf-8", "replace") if self.opcode == OP_CLOSE else ""

    def describe(self) -> dict[str, object]:
        names = {0: "cont", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}
        d: dict[str, object] = {"opcode": names.get(self.opcode, str(self.opcode))}
        if not self.masked:
            d["masked"] = False
        if self.rsv:
            d["rsv"] = self.rsv  # 4: RSV1, a permessage-deflate message
        if self.opcode == OP_CLOSE:
            d["code"] = self.close_code
            d["reason"] = self.close_reason
        elif len(self.payload) <= 64:
            d["payload"] = self.payload.decode("latin-1")
        else:
            d["length"] = len(self.payload)
        return d


def handshake_response(hs: Handshake, key: str, offered: Sequence[str]) -> bytes:
    """The bytes the server answers a request with (``key``: its Sec-WebSocket-Key; ``offered``:
    its protocols). ``"status"`` mode: a plain HTTP response, after which the server sends FIN.
    Shared with the socket-free parity replay, so both see the very same bytes."""
    if hs.mode == "status":
        body = f"not a websocket endpoint: {hs.status}\n".encode()
        return (
            f"HTTP/1.1 {hs.status}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode() + body
    accept = accept_key(key)
    if hs.mode == "bad_accept":
        accept = accept_key(key + "x")
    lines = [
        f"HTTP/1.1 {hs.status}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept}",
    ]
    if hs.protocol == "first":
        if offered:
            lines.append(f"Sec-WebSocket-Protocol: {offered[0]}")
    elif hs.protocol is not None:
        lines.append(f"Sec-WebSocket-Protocol: {hs.protocol}")
    if hs.extensions is not None:
        lines.append(f"Sec-WebSocket-Extensions: {hs.extensions}")
    lines += [f"{k}: {v}" for k, v in hs.extra_headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_client_frames(buf: bytearray) -> list[ClientFrame]:
    """The whole frames at the start of ``buf``, unmasked; they are removed from ``buf``."""
    out: list[ClientFrame] = []
    while len(buf) >= 2:
        b0, b1 = buf[0], buf[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            if len(buf) < 4:
                break
            n = struct.unpack("!H", buf[2:4])[0]
            pos = 4
        elif n == 127:
            if len(buf) < 10:
                break
            n = struct.unpack("!Q", buf[2:10])[0]
            pos = 10
        masked = bool(b1 & 0x80)
        if masked:
            if len(buf) < pos + 4:
                break
            key = bytes(buf[pos : pos + 4])
            pos += 4
        if len(buf) < pos + n:
            break
        payload = bytes(buf[pos : pos + n])
        if masked:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        del buf[: pos + n]
        out.append(ClientFrame(b0 & 0xF, bool(b0 & 0x80), (b0 >> 4) & 7, masked, payload))
    return out


@dataclass
class ConnRecord:
    """Everything one connection saw. ``done`` is set when its thread has finished."""

    path: str = ""
    target: str = ""
    peer: tuple[str, int] = ("", 0)
    request_line: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    response: bytes = b""
    frames: list[ClientFrame] = field(default_factory=list)
    trailing: bytes = b""
    end: str = ""
    tls_error: str = ""
    started_at: float = 0.0
    ended_at: float = 0.0
    request_read: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def offered_protocols(self) -> list[str]:
        v = self.headers.get("sec-websocket-protocol", "")
        return [p.strip() for p in v.split(",") if p.strip()]

    @property
    def offered_extensions(self) -> str:
        return self.headers.get("sec-websocket-extensions", "")

    @property
    def client_close(self) -> Optional[ClientFrame]:
        return next((f for f in self.frames if f.opcode == OP_CLOSE), None)

    @property
    def client_close_code(self) -> Optional[int]:
        """The status code of the client's close frame (None: no close frame or empty payload)."""
        c = self.client_close
        return c.close_code if c else None

    def wire_summary(self) -> dict[str, Any]:
        """A JSON-able view: frames the client sent and how the connection ended."""
        c = self.client_close
        return {
            "frames": [f.describe() for f in self.frames],
            "close_frame": c is not None,
            "close_code": c.close_code if c else None,
            "close_reason": c.close_reason if c else None,
            "end": self.end,
        }


class _ClosedError(Exception):
    """The client (or the server's stop) ended the connection while we read."""


def unmask(data: bytes, key: bytes) -> bytes:
    """XOR ``data`` with a 4-byte masking key, as one big integer (fast for megabytes)."""
    if not data:
        return b""
    mask = (key * (len(data) // 4 + 1))[: len(data)]
    value = int.from_bytes(data, "big") ^ int.from_bytes(mask, "big")
    return value.to_bytes(len(data), "big")


# --------------------------------------------------------------------------------------------
# Server

#: A handler: the whole conversation of one connection, written as blocking code.
Handler = Callable[["RawConnection"], Any]


class RawServer:
    """The one misbehaving server of the tests. Start with ``with RawServer() as srv`` or
    ``start()``/``stop()``.

    Each accepted connection runs in its own thread, in one of two ways:

    - scripted (the default): read the request, look its path up in ``scripts`` and run that
      :class:`Script`; everything the client did lands in a :class:`ConnRecord` (``records``,
      ``wait_record``). The parity fixtures and the fault tests use this.
    - ``handler=fn``: run ``fn(conn)`` on the :class:`RawConnection` (blocking calls, each failing
      after ``io_timeout``) for conversations no script describes, WebSocket or plain TCP/TLS
      (the Mesibo ``Socket`` tests). ``results`` gets each handler's return value, or the
      exception that ended it (a TLS handshake the client refused, a client that went away), and
      ``requests`` every request head a handler read.

    ``bind()`` before ``start()`` takes the port without listening: connections are refused
    until ``start()``.

    Args:
        scripts: extra path → Script entries (on top of ``SCRIPTS``).
        handler: run this on every connection instead of a script.
        ssl_context: a server-side context to speak TLS (``wss://``).
        conn_timeout: how long a connection may live in the *respond* phase or a stall before the
            server ends it itself (a client that never closes must not hold a test forever).
        handshake_timeout: how long to wait for the client's request (and its TLS handshake).
        io_timeout: a handler's socket timeout (None: block as long as it takes).
    """

    def __init__(
        self,
        scripts: Optional[dict[str, Script]] = None,
        *,
        handler: Optional[Handler] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        conn_timeout: float = 1.5 * TIMEOUT,
        handshake_timeout: float = TIMEOUT,
        io_timeout: Optional[float] = TIMEOUT,
    ) -> None:
        self.scripts: dict[str, Script] = dict(SCRIPTS)
        self.scripts.update(scripts or {})
        self.handler = handler
        self.ssl_context = ssl_context
        self.conn_timeout = conn_timeout
        self.handshake_timeout = handshake_timeout
        self.io_timeout = io_timeout
        self.host = "127.0.0.1"
        self.port = 0
        self.accepted = 0
        self.records: list[ConnRecord] = []
        self.requests: list[bytes] = []
        self.results: list[Any] = []
        self._cond = threading.Condition()
        self._lsock: Optional[socket.socket] = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._accept_thread: Optional[threading.Thread] = None
        self._index: dict[threading.Thread, int] = {}

    # -- lifecycle -----------------------------------------------------------------------------

    def bind(self) -> RawServer:
        """Take a port without listening yet: until ``start()``, connections are refused."""
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((self.host, 0))
        self.port = int(ls.getsockname()[1])
        self._lsock = ls
        return self

    def start(self) -> RawServer:
        """Listen (on the port ``bind()`` took, or a new one) and accept on a thread."""
        if self._lsock is None:
            self.bind()
        assert self._lsock is not None
        self._lsock.listen(64)
        t = threading.Thread(target=self._accept_loop, name="rawserver-accept", daemon=True)
        self._accept_thread = t
        t.start()
        return self

    def stop(self) -> None:
        """Stop accepting, cut every live connection, join every thread.

        Handlers first get ``io_timeout`` to end on their own: what a handler returns is what a
        test checks, so it is not cut short while it still talks to the client.
        """
        self._stopping.set()
        self._wake_w.send(b"x")
        if self._accept_thread is not None:
            self._accept_thread.join(10)
        with self._cond:
            socks = list(self._socks)
            threads = list(self._threads)
        if self.handler is not None:
            for t in threads:
                t.join(TIMEOUT if self.io_timeout is None else self.io_timeout)
        for s in socks:
            # The raw shutdown: wakes a blocked recv, even under TLS.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(s, socket.SHUT_RDWR)
        for t in threads:
            t.join(10)
        if self._lsock is not None:
            self._lsock.close()
        self._wake_r.close()
        self._wake_w.close()

    close = stop

    def __enter__(self) -> RawServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- API for tests -------------------------------------------------------------------------

    def url(self, path: str = "/", scheme: Optional[str] = None, host: Optional[str] = None) -> str:
        scheme = scheme or ("wss" if self.ssl_context else "ws")
        return f"{scheme}://{host or self.host}:{self.port}{path}"

    def add(self, path: str, script: Script) -> None:
        self.scripts[path] = script

    def wait_record(self, path: str, timeout: float, *, index: int = 0) -> ConnRecord:
        """Wait until the ``index``-th connection on ``path`` has finished; return its record.

        Raises:
            TimeoutError: it did not connect or did not finish in time.
        """
        rec = self.wait_connection(path, timeout, index=index)
        if not rec.done.wait(timeout):
            raise TimeoutError(f"rawserver: connection on {path} did not end in {timeout}s")
        return rec

    def wait_connection(self, path: str, timeout: float, *, index: int = 0) -> ConnRecord:
        """Wait until the ``index``-th connection on ``path`` has sent its request.

        ``path`` may carry a query (``/echo_close?s=x``): it then has to match the whole target.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                recs = [r for r in self.records if path in (r.path, r.target)]
                if len(recs) > index:
                    return recs[index]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"rawserver: no connection on {path} in {timeout}s")
                self._cond.wait(left)

    def wait_results(self, count: int = 1, timeout: float = TIMEOUT) -> list[Any]:
        """Wait until ``count`` handlers have finished; all results so far, in finishing order."""
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.results) >= count, timeout)
        assert ok, f"the server's handler did not finish: {self.results}"
        return self.results

    def result(self) -> Any:
        """The first handler's result."""
        return self.wait_results(1)[0]

    def connection_count(self) -> int:
        with self._cond:
            return len(self._socks)

    # -- internals -----------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._lsock is not None
        sel = selectors.DefaultSelector()
        sel.register(self._lsock, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._stopping.is_set():
                for key, _ in sel.select():
                    if key.fileobj is self._wake_r:
                        return
                    try:
                        conn, peer = self._lsock.accept()
                    except OSError:
                        continue
                    target = self._serve if self.handler is None else self._handle
                    t = threading.Thread(
                        target=target, args=(conn, peer), name="rawserver-conn", daemon=True
                    )
                    with self._cond:
                        self.accepted += 1
                        self._socks.append(conn)
                        self._threads.append(t)
                        self._index[t] = self.accepted
                    t.start()
        finally:
            sel.close()

    def _serve(self, raw: socket.socket, peer: tuple[str, int]) -> None:
        rec = ConnRecord(peer=peer, started_at=time.monotonic())
        conn = RawConnection(self, raw, rec)
        try:
            conn.run()
        finally:
            conn.close_quietly()
            rec.ended_at = time.monotonic()
            with self._cond:
                if not any(r is rec for r in self.records):  # no request read: record it anyway
                    self.records.append(rec)
                self._forget(raw, conn.sock)
                rec.request_read.set()
                rec.done.set()
                self._cond.notify_all()

    def _handle(self, raw: socket.socket, peer: tuple[str, int]) -> None:
        assert self.handler is not None
        conn = RawConnection(self, raw, ConnRecord(peer=peer, started_at=time.monotonic()))
        with self._cond:
            conn.index = self._index.pop(threading.current_thread())
        result: Any = None
        try:
            raw.settimeout(self.io_timeout)
            if self.ssl_context is not None:
                conn.sock = self.ssl_context.wrap_socket(raw, server_side=True)
                self._track(raw, conn.sock)
            result = self.handler(conn)
        except Exception as exc:  # the client's behaviour under test may break the handler
            result = exc
        finally:
            conn.close_quietly()
            with self._cond:
                self._forget(raw, conn.sock)
                if conn.request:
                    self.requests.append(conn.request)
                self.results.append(result)
                self._cond.notify_all()

    def _forget(self, *socks: socket.socket) -> None:
        for s in socks:
            if s in self._socks:
                self._socks.remove(s)

    def _publish(self, rec: ConnRecord) -> None:
        with self._cond:
            self.records.append(rec)
            rec.request_read.set()
            self._cond.notify_all()

    def _track(self, old: socket.socket, new: socket.socket) -> None:
        with self._cond:
            if old in self._socks:
                self._socks.remove(old)
            self._socks.append(new)


class RawConnection:
    """The server side of one connection: a script's run, or the blocking calls a handler makes.

    A handler has ``sock`` (the socket, TLS already done), ``index`` (1 for the server's first
    connection, 2 for the next...), ``buf`` (bytes read but not used yet), ``request`` (the
    request head, once read) and the calls below; each blocking call fails after the server's
    ``io_timeout``, and ``ConnectionError`` tells that the client closed its side.
    """

    def __init__(self, server: RawServer, sock: socket.socket, rec: ConnRecord) -> None:
        self.server = server
        self.index = 0
        self.sock = sock
        self.rec = rec
        self.buf = bytearray()
        self.request = b""
        self.closed = False

    # -- a handler's calls ---------------------------------------------------------------------

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("client closed")
        self.buf += chunk

    def recv_until(self, marker: bytes) -> bytes:
        """Read up to ``marker``; return what came before it (the marker is consumed)."""
        while marker not in self.buf:
            self._fill()
        head, _, rest = bytes(self.buf).partition(marker)
        self.buf = bytearray(rest)
        return head

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def handshake(
        self, status: str = "101 Switching Protocols", extra: str = "", accept: Optional[str] = None
    ) -> bytes:
        """Answer the upgrade request (correctly unless told otherwise); return the request.

        ``extra``: more header lines, each ending with CRLF. ``accept``: the Sec-WebSocket-Accept
        value to send instead of the right one.
        """
        self.request = self.recv_until(b"\r\n\r\n")
        key = ""
        for line in self.request.split(b"\r\n"):
            if line.lower().startswith(b"sec-websocket-key:"):
                key = line.split(b":", 1)[1].strip().decode("latin-1")
        if accept is None:
            accept = accept_key(key)
        self.sock.sendall(
            (
                f"HTTP/1.1 {status}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n{extra}\r\n"
            ).encode()
        )
        return self.request

    def read_frame(self) -> tuple[int, bytes]:
        """One client frame: (opcode, unmasked payload)."""
        b0, b1 = self.read_exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.read_exact(8))[0]
        key = self.read_exact(4) if b1 & 0x80 else b"\0\0\0\0"
        return b0 & 0x0F, unmask(self.read_exact(n), key)

    def read_close_code(self) -> Optional[int]:
        """Read frames until the client's close frame; its code (None for an empty body)."""
        while True:
            opcode, payload = self.read_frame()
            if opcode == OP_CLOSE:
                return int(struct.unpack("!H", payload[:2])[0]) if payload else None

    def wait_eof(self) -> bool:
        """True once the client has closed its side (or the connection broke)."""
        try:
            while self.sock.recv(65536):
                pass
        except OSError:
            pass
        return True

    # -- low level (scripts) ---------------------------------------------------------------------

    def _recv(self, deadline: float) -> bytes:
        """One recv; b"" on EOF. _ClosedError on reset or stop; TimeoutError past the deadline."""
        if self.server._stopping.is_set():
            self.rec.end = self.rec.end or "server_stopped"
            raise _ClosedError
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            raise TimeoutError from None
        except ssl.SSLError as exc:
            self.rec.end = f"client_tls_error: {exc}"
            raise _ClosedError from exc
        except ConnectionResetError:
            self.rec.end = "client_rst"
            raise _ClosedError from None
        except OSError as exc:
            self.rec.end = "server_stopped" if self.server._stopping.is_set() else repr(exc)
            raise _ClosedError from exc
        if not data:
            self.rec.end = "server_stopped" if self.server._stopping.is_set() else "client_fin"
        return data

    def _send(self, data: bytes) -> None:
        # If the client went away first, what it did is in the record.
        with contextlib.suppress(OSError):
            self.sock.sendall(data)

    def close_quietly(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError):
                self.sock.close()

    def _half_close(self) -> None:
        """Send FIN (under TLS, a close_notify first, not waiting for the client's)."""
        if isinstance(self.sock, ssl.SSLSocket):
            self.sock.setblocking(False)
            # close_notify goes out; the client's answer is not awaited.
            with contextlib.suppress(OSError, ValueError):
                self.sock.unwrap()
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.sock, socket.SHUT_WR)

    def _fin(self) -> None:
        """End with FIN and close."""
        self._half_close()
        self.close_quietly()

    def reset(self) -> None:
        """Close with a TCP reset (SO_LINGER 0) instead of a FIN: the client sees a drop."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_quietly()

    # -- frames --------------------------------------------------------------------------------

    def _parse_frames(self) -> list[ClientFrame]:
        out = parse_client_frames(self.buf)
        self.rec.frames += out
        return out

    def _read_frames(self, deadline: float) -> Optional[list[ClientFrame]]:
        """Read once and parse; None on EOF (bytes left unparsed go to ``rec.trailing``)."""
        data = self._recv(deadline)
        if not data:
            self.rec.trailing = bytes(self.buf)
            return None
        self.buf += data
        return self._parse_frames()

    # -- handshake -----------------------------------------------------------------------------

    def _read_request(self) -> bool:
        deadline = time.monotonic() + self.server.handshake_timeout
        while b"\r\n\r\n" not in self.buf:
            try:
                data = self._recv(deadline)
            except TimeoutError:
                self.rec.end = "handshake_timeout"
                return False
            except _ClosedError:  # a reset, or the server stopping: rec.end says which
                return False
            if not data:
                self.rec.end = "client_fin_before_request"
                return False
            self.buf += data
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        self.request = head
        lines = head.decode("latin-1").split("\r\n")
        self.rec.request_line = lines[0]
        for line in lines[1:]:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            prev = self.rec.headers.get(key)
            self.rec.headers[key] = value.strip() if prev is None else prev + ", " + value.strip()
        parts = lines[0].split(" ")
        self.rec.target = parts[1] if len(parts) > 1 else ""
        self.rec.path = self.rec.target.split("?")[0]
        self.server._publish(self.rec)
        return True

    def _answer(self, hs: Handshake) -> bool:
        """Send the handshake response; True if the script goes on to frames."""
        key = self.rec.headers.get("sec-websocket-key", "")
        resp = handshake_response(hs, key, self.rec.offered_protocols)
        self.rec.response = resp
        self._send(resp)
        if hs.mode == "status":
            self._fin()
            self.rec.end = "server_fin_after_status"
            return False
        return True

    # -- the script --------------------------------------------------------------------------

    def run(self) -> None:
        srv = self.server
        if srv.ssl_context is not None:
            try:
                self.sock.settimeout(srv.handshake_timeout)
                tls = srv.ssl_context.wrap_socket(self.sock, server_side=True)
            except (OSError, ssl.SSLError) as exc:
                self.rec.tls_error = f"{type(exc).__name__}: {exc}"
                self.rec.end = "tls_handshake_failed"
                return
            srv._track(self.sock, tls)
            self.sock = tls
        if not self._read_request():
            return
        script = srv.scripts.get(self.rec.path)
        if script is None:
            script = Script(handshake=Handshake(mode="status", status="404 Not Found"))
        script_hs = script.handshake
        if script_hs.mode == "silent":
            self._stall()
            return
        if script_hs.late:
            # Woken by the client's next bytes or its FIN; the answer then goes to a closed peer.
            select.select([self.sock], [], [], script_hs.late)
        if not self._answer(script_hs):
            return
        self._parse_frames()  # a client may have pipelined frames after its request
        for action in script.actions:
            if self.closed:
                return
            if isinstance(action, Send):
                self._send(action.data)
            elif isinstance(action, DropFin):
                # FIN, then keep recording until the client closes its side too.
                self._half_close()
                self._stall()
                if not self.rec.end.startswith("client"):
                    return
                self.rec.end = "server_fin, then " + self.rec.end
                return
            elif isinstance(action, DropRst):
                self.reset()
                self.rec.end = "server_rst"
                return
            elif isinstance(action, WaitMessage):
                if not self._wait_message():
                    return
            elif isinstance(action, Stall):
                self._stall()
                return
            elif isinstance(action, ExpectClose):
                self._respond(echo_close=action.reply)
                return
        self._respond(echo_close=True)

    def _stall(self) -> None:
        """Record until the client goes away, the server stops, or conn_timeout passes."""
        deadline = time.monotonic() + self.server.conn_timeout
        try:
            while True:
                if self._read_frames(deadline) is None:
                    return
        except _ClosedError:
            return
        except TimeoutError:
            self.rec.end = "server_timeout"
            self._fin()

    def _wait_message(self) -> bool:
        """Until a client data frame: True. On EOF, a close frame (echoed) or timeout: False."""
        deadline = time.monotonic() + self.server.conn_timeout
        try:
            while True:
                frames = self._read_frames(deadline)
                if frames is None:
                    return False
                for f in frames:
                    if f.opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                        return True
                    if f.opcode == OP_PING:
                        self._send(frame(OP_PONG, f.payload))
                    elif f.opcode == OP_CLOSE:
                        self._send(frame(OP_CLOSE, f.payload))
                        self.rec.end = "client_close_frame"
                        self._fin()
                        return False
        except _ClosedError:
            return False
        except TimeoutError:
            self.rec.end = "server_timeout"
            self._fin()
            return False

    def _respond(self, *, echo_close: bool) -> None:
        """Act like a plain server: pong to pings; on the client's close, echo (maybe) and FIN."""
        deadline = time.monotonic() + self.server.conn_timeout
        try:
            while True:
                frames = self._read_frames(deadline)
                if frames is None:
                    return
                for f in frames:
                    if f.opcode == OP_PING:
                        self._send(frame(OP_PONG, f.payload))
                    elif f.opcode == OP_CLOSE:
                        if echo_close:
                            self._send(frame(OP_CLOSE, f.payload))
                        self.rec.end = "client_close_frame"
                        self._fin()
                        return
        except _ClosedError:
            return
        except TimeoutError:
            self.rec.end = "server_timeout"
            self._fin()
