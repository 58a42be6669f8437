"""RFC 6455 framing, sans I/O: bytes in, typed frame events out; masked frames out.

Why not websocket-client's ``frame_buffer``: it reads one frame per call with two ``recv`` calls and
validates UTF-8 only once a message is complete. This parser takes whatever the socket gave (many
frames per read), and decodes text incrementally as bytes arrive, so invalid UTF-8 fails the
connection at once, even inside a frame that is still arriving (Autobahn 6.4.x in strict mode).
Outgoing frames are masked here: in C when websockets' speedups (the ``speed`` extra) or wsaccel
is installed, else with Python ints (whole for small payloads, 16 KiB at a time for large ones).
Large frames go out as a list of pieces and large incoming payloads are read straight into the
message's own buffer (``Parser.want``), so a megabyte message is never copied in user space.
"""

from __future__ import annotations

import codecs
import io
import os
import struct
from collections import deque
from typing import Callable, Optional, Union, cast

from .._wsclient import BINARY, CLOSE, CONT, PING, PONG, TEXT
from .deflate import InflateError, PerMessageDeflate
from .events import CloseFrame, Message, Ping, Pong, Violation

__all__ = [
    "BINARY",
    "CLOSE",
    "CONT",
    "PING",
    "PONG",
    "TEXT",
    "Frame",
    "FrameEvent",
    "Parser",
    "build_close",
    "build_frame",
]

FrameEvent = Union[Message, Ping, Pong, CloseFrame, Violation]
Event = FrameEvent
_utf8_decoder = codecs.getincrementaldecoder("utf-8")
# A frame's head: the two header bytes, the extended length if any, and the masking key.
_pack_small = struct.Struct("!BB4s").pack
_pack_short = struct.Struct("!BBH4s").pack
_pack_long = struct.Struct("!BBQ4s").pack
# Looked up once: ``int.from_bytes`` binds a new method object per call (a third of the cost of
# masking 32 bytes in Python).
_from_bytes = int.from_bytes
# Message(x) for each small message, without NamedTuple's Python-level __new__ (half the cost).
_new_tuple = tuple.__new__

# Inflated bytes one parse may produce before it stops after the message that reached it and
# holds the rest of its input (:attr:`Parser.holding`): about what one 65 KiB socket read carries
# uncompressed, so compressed input fills the owner's inbox no further past its high-water mark.
INFLATE_BUDGET = 64 * 1024


Frame = Union[bytes, list[bytes]]


def build_frame(opcode: int, payload: Union[bytes, bytearray, memoryview]) -> Frame:
    """One masked, final frame (RFC 6455 5.2); clients must mask every frame.

    Small frames come back as one ``bytes``. A payload of 64 KiB or more comes back as a list:
    the header, then the masked payload in slices, for the transport to hand to the kernel with
    one ``sendmsg``: no megabyte-sized join, and every slice is small enough for the allocator
    to reuse memory that is already mapped (fresh megabytes cost a page fault per 4 KiB).
    """
    length = len(payload)
    if length > _primed:  # see _prime_arena
        _prime_arena(length)
    key = _mask_key()
    if length < 126:
        head = _pack_small(0x80 | opcode, 0x80 | length, key)
    elif length < 65536:
        head = _pack_short(0x80 | opcode, 0xFE, length, key)
    else:
        head = _pack_long(0x80 | opcode, 0xFF, length, key)
    if not length:
        return head
    accel = _accel if _accel_checked else _find_accelerator()
    if length < _PIECE:
        if accel is not None:
            return head + accel(payload, key)
        if length < 2 * _MASK_CHUNK:
            return head + _mask_pure(payload, key)
        # One chunk-sized key int for all chunks: ~15 % less than one payload-sized one.
        return b"".join([head, *_mask_pieces(key, memoryview(payload))])
    view = memoryview(payload)
    pieces = [head]
    if accel is not None:
        pieces += [accel(view[i : i + _PIECE], key) for i in range(0, length, _PIECE)]
    else:
        pieces += _mask_pieces(key, view)
    return pieces


def _mask_pure(payload: Union[bytes, bytearray, memoryview], key: bytes) -> bytes:
    length = len(payload)
    mask = _from_bytes((key * (length // 4 + 1))[:length], "little")
    return (_from_bytes(payload, "little") ^ mask).to_bytes(length, "little")


Masker = Callable[[Union[bytes, bytearray, memoryview], bytes], bytes]
_accel: Optional[Masker] = None
_accel_checked = False


def _find_accelerator() -> Optional[Masker]:
    """Masking in C, when an optional accelerator is installed, looked up on first use.

    websockets' own speedups (the ``speed`` extra; SIMD, ~0.04 ns/byte), else wsaccel (~0.6
    ns/byte), else None: Python ints (~1.3 ns/byte; 0.45 µs for 32 bytes, against 0.09 in C).
    Looked up at the first frame sent, not at import: importing websockets costs ~17 ms (it loads
    importlib.metadata), which a script that sends nothing, or a pytest run that only loads our
    plugin, should not pay. Two threads racing here both find the same answer.
    """
    global _accel, _accel_checked
    try:
        from websockets.speedups import apply_mask

        # Its stub says ``bytes`` in some versions; the C function takes any buffer.
        _accel = cast(Masker, apply_mask)
    except ImportError:
        try:
            from wsaccel.xormask import XorMaskerSimple

            def wsaccel_mask(data: Union[bytes, bytearray, memoryview], key: bytes) -> bytes:
                return XorMaskerSimple(key).process(bytes(data))  # type: ignore[no-any-return]

            _accel = wsaccel_mask
        except ImportError:
            _accel = None
    _accel_checked = True
    return _accel


_PIECE = 64 * 1024  # payloads this large are sent as pieces of this size
_DIRECT_MIN = 16 * 1024  # a frame with this much still to come is read into its own buffer
_MASK_CHUNK = 16 * 1024  # pure-Python masking goes 16 KiB at a time
_REPEAT = int.from_bytes(b"\x01\x00\x00\x00" * (_MASK_CHUNK // 4), "little")


def _mask_pieces(key: bytes, view: memoryview) -> list[bytes]:
    """Pure-Python masking of a large payload, 16 KiB at a time.

    websocket-client's ``ABNF.mask`` turns the whole payload and a repeated key into two huge ints
    (through ``array`` copies): ~3.4 ns/byte at 1 MiB, most of it page faults of megabyte-sized
    temporaries. 16 KiB slices XORed with one precomputed key int stay in the allocator's reused
    memory: ~1.3 ns/byte. The chunk-sized key int is the key times ``_REPEAT`` (a 1 in every
    fourth byte): half the cost of ``int.from_bytes`` on the repeated key, ~6 µs a message.
    """
    size = len(view)
    mask = _from_bytes(key, "little") * _REPEAT
    end = size - size % _MASK_CHUNK
    chunks = [
        (_from_bytes(view[i : i + _MASK_CHUNK], "little") ^ mask).to_bytes(_MASK_CHUNK, "little")
        for i in range(0, end, _MASK_CHUNK)
    ]
    if end < size:  # the tail starts at a multiple of 4: the key lines up again
        chunks.append(_mask_pure(view[end:], key))
    return chunks


# glibc gives a heap's free top back to the kernel (madvise or brk) once it passes the trim
# threshold: 128 KiB, until a buffer that was allocated by mmap is freed; from then on the mmap
# threshold is that buffer's size and the trim threshold twice it (up to 32 MiB). One 64 KiB text
# message makes ~400 KB of short-lived buffers (the bytes read, the 128 KiB str decoded, the
# encoder's 192 KiB worst case, the masked pieces), none of them large: each message's frees gave
# that memory back and the next message faulted it in again, a page at a time (~100 µs a message,
# a third of the client's CPU on 64 KiB text; half of it on 1 MiB text). So the first frame of
# 32 KiB or more, and then any frame larger than the last priming covered, allocates and frees one
# buffer of at least four times its size (a power of two from 1 MiB to 32 MiB; calloc gets it by
# mmap and never touches it: ~10 µs), as a program that once used such a buffer would: each
# thread's arena then keeps up to twice that for reuse, about the peak that messages of that size
# reach anyway. At most six times per process; elsewhere than glibc, an allocation, nothing more.
# A received frame primes only once its header passed the checks: never past max_size.
_LARGE = 32 * 1024  # frames from this size on may prime the allocator
_PRIME_MIN = 1 << 20
_PRIME_MAX = 32 << 20  # glibc's ceiling for the thresholds it moves by itself (64-bit)
_primed = _LARGE - 1  # frames up to this length need no (more) priming


def _prime_arena(length: int) -> None:
    global _primed
    size = _PRIME_MIN
    while size < 4 * length and size < _PRIME_MAX:
        size *= 2
    _primed = size // 4 if size < _PRIME_MAX else 1 << 63
    try:
        bytes(size)
    except MemoryError:  # strict overcommit, a small container: the hint is not worth failing
        pass


_keys: deque[bytes] = deque()
if hasattr(os, "register_at_fork"):  # a forked child must not reuse its parent's keys
    os.register_at_fork(after_in_child=_keys.clear)


def _mask_key() -> bytes:
    """Four bytes from the OS's CSPRNG, as RFC 6455 5.3 requires, taken from a pool.

    ``os.urandom(4)`` per frame is one getrandom() system call per message; one call now yields
    1024 keys. ``deque.popleft`` is atomic, so user threads and the I/O thread can share the pool.
    """
    try:
        return _keys.popleft()
    except IndexError:
        block = os.urandom(4096)
        _keys.extend([block[i : i + 4] for i in range(4, 4096, 4)])
        return block[:4]


def build_close(code: Union[int, None], reason: bytes = b"") -> bytes:
    """A close frame; ``code=None`` sends an empty body (the peer then reports 1005)."""
    body = b"" if code is None else code.to_bytes(2, "big") + reason
    frame = build_frame(CLOSE, body)  # at most 125 bytes: always one piece
    assert isinstance(frame, bytes)
    return frame


class Parser:
    """Turns the server's bytes into events.

    Events: :class:`Message` (``str`` for text, ``bytes`` for binary), :class:`Ping`,
    :class:`Pong`, :class:`CloseFrame` and, once, :class:`Violation` (the close code the
    standard names and why), after which further input is ignored.
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buf = b""
        self._failed = False
        self._close_seen = False
        # The frame being read: opcode, fin, bytes still to come.
        self._in_frame = False
        self._op = 0
        self._fin = False
        self._remaining = 0
        self._control = b""
        # The message being assembled (across fragments).
        self._msg_op = 0  # TEXT or BINARY while a fragmented message is open, else 0
        self._msg_size = 0
        self._parts: list[Union[str, bytes]] = []
        self._decoder = _utf8_decoder("strict")
        # permessage-deflate, once negotiated (the connection sets it): RSV1 on a message's first
        # frame then means "compressed", and that message is inflated piece by piece as it comes.
        self.deflate: Optional[PerMessageDeflate] = None
        self._compressed = 0
        # Bytes inflated since the parse last stopped at INFLATE_BUDGET; holding: it stopped
        # there with input left unparsed (in _buf): ``feed(b"")`` parses on.
        self.inflate_budget = INFLATE_BUDGET
        self._inflated = 0
        self.holding = False
        # A large frame's payload is read straight into its own buffer: while ``want`` is set,
        # the transport fills it (``recv_into``) and calls :meth:`filled` instead of :meth:`feed`.
        self.want: Optional[memoryview] = None
        self._direct: Optional[io.BytesIO] = None
        self._direct_view: Optional[memoryview] = None
        self._direct_pos = 0

    def feed(self, data: bytes) -> list[Event]:
        if self._failed:
            return []
        if self._buf:
            data = self._buf + data  # feed(b"") after a stop: the same object, no copy
            self._buf = b""
            self.holding = False
        events: list[Event] = []
        pos = 0
        end = len(data)
        while True:
            if not self._in_frame:
                if end - pos < 2:
                    break
                if self._close_seen:
                    # Chromium fails the connection on any frame after the close frame.
                    return self._fail(events, 1002, "frame received after the close frame")
                b0 = data[pos]
                b1 = data[pos + 1]
                if b1 < 126 and (b0 == 0x81 or b0 == 0x82) and not self._msg_op:
                    # A small whole text or binary message (a pipelined stream is mostly
                    # these): nothing to refuse, no header bookkeeping.
                    stop = pos + 2 + b1
                    if stop <= end and b1 <= self.max_size:
                        if b0 == 0x82:
                            events.append(_new_tuple(Message, (data[pos + 2 : stop],)))
                        else:
                            try:
                                text = data[pos + 2 : stop].decode("utf-8")
                            except UnicodeDecodeError:
                                return self._fail(events, 1007, "invalid UTF-8 in a text message")
                            events.append(_new_tuple(Message, (text,)))
                        pos = stop
                        continue
                length = b1 & 0x7F
                hlen = 2
                if length == 126:
                    if end - pos < 4:
                        break
                    length = _from_bytes(data[pos + 2 : pos + 4], "big")
                    hlen = 4
                elif length == 127:
                    if end - pos < 10:
                        break
                    length = _from_bytes(data[pos + 2 : pos + 10], "big")
                    hlen = 10
                    if length >> 63:
                        return self._fail(events, 1002, "frame length has the top bit set")
                op = b0 & 0x0F
                fin = bool(b0 & 0x80)
                problem = self._check_header(b0, b1, op, fin, length)
                if problem is not None:
                    return self._fail(events, *problem)
                if length > _primed:  # within max_size: see _prime_arena
                    _prime_arena(length)
                pos += hlen
                # FIN, no RSV1 (not compressed), a data opcode: b0 & 0xC8 == 0x80.
                if (b0 & 0xC8) == 0x80 and end - pos >= length and not self._msg_op:
                    # Fast path: a whole unfragmented data frame is in the buffer.
                    if op == BINARY:
                        events.append(_new_tuple(Message, (data[pos : pos + length],)))
                    else:
                        try:
                            if length < 4096:
                                text = data[pos : pos + length].decode("utf-8")
                            else:  # decoded in place: no copy of the bytes first
                                text = str(memoryview(data)[pos : pos + length], "utf-8")
                        except UnicodeDecodeError:
                            return self._fail(events, 1007, "invalid UTF-8 in a text message")
                        events.append(_new_tuple(Message, (text,)))
                    pos += length
                    continue
                if b0 & 0x40 and fin and end - pos >= length and not self._msg_op:
                    # A whole compressed message in the buffer (RSV1 passed _check_header: it is
                    # a data frame and permessage-deflate was agreed): inflated in one call.
                    if not self._inflate_whole(events, op, data, pos, length):
                        return events
                    pos += length
                    if self._inflated >= self.inflate_budget:
                        return self._stop(events, data, pos)
                    continue
                self._in_frame = True
                self._op = op
                self._fin = fin
                self._remaining = length
                if op in (TEXT, BINARY):
                    self._msg_op = op
                    self._msg_size = 0
                    self._compressed = b0 & 0x40
                    self._parts = []
                    self._decoder.reset()
            # Payload of the current frame, as much as has arrived.
            avail = end - pos
            if self._op < 8 and self._remaining - avail >= _DIRECT_MIN and not self._compressed:
                # Much more is coming: read the rest straight into the frame's own buffer.
                return self._start_direct(events, memoryview(data)[pos:end])
            take = min(self._remaining, avail)
            chunk = data[pos : pos + take]
            pos += take
            self._remaining -= take
            if self._op >= 8:
                self._control += chunk
            elif self._compressed:
                if not self._inflate(events, chunk, False):
                    return events
            elif take:
                self._msg_size += take
                if self._msg_op == TEXT:
                    try:
                        self._parts.append(self._decoder.decode(chunk, False))
                    except UnicodeDecodeError:
                        return self._fail(events, 1007, "invalid UTF-8 in a text message")
                else:
                    self._parts.append(chunk)
            if self._remaining:
                break
            self._in_frame = False
            if self._op >= 8:
                payload = self._control
                self._control = b""
                if not self._control_frame(events, self._op, payload):
                    return events
            elif self._fin:
                if not self._end_message(events):
                    return events
                if self._inflated >= self.inflate_budget:
                    return self._stop(events, data, pos)
        if pos < end:
            self._buf = data[pos:]
        return events

    def _stop(self, events: list[Event], data: bytes, pos: int) -> list[Event]:
        # Compressed messages inflated to the budget: stop after this one, so the caller can
        # hand them over (and pause) before more is inflated; feed(b"") goes on from here.
        self._inflated = 0
        if pos < len(data):
            self._buf = data[pos:]
            self.holding = True
        return events

    def filled(self, nbytes: int) -> list[Event]:
        """``nbytes`` more arrived in :attr:`want`: the events they complete, if any."""
        events: list[Event] = []
        self._filled(events, nbytes)
        return events

    def _start_direct(self, events: list[Event], head: memoryview) -> list[Event]:
        # BytesIO over a bytes object of the frame's size: getbuffer() lets the socket write into
        # it and getvalue() then returns that very object (CPython shares it once no view is
        # left): the message is never copied. Its size was checked against max_size already.
        self._direct = io.BytesIO(bytes(self._remaining))
        self._direct_view = view = self._direct.getbuffer()
        self._direct_pos = 0
        view[: len(head)] = head
        return self._filled(events, len(head))

    def _filled(self, events: list[Event], nbytes: int) -> list[Event]:
        view = self._direct_view
        assert view is not None
        assert self._direct is not None
        start = self._direct_pos
        self._direct_pos = stop = start + nbytes
        self._remaining -= nbytes
        self._msg_size += nbytes
        self.want = None
        if self._msg_op == TEXT and nbytes:
            try:
                self._parts.append(self._decoder.decode(view[start:stop], False))
            except UnicodeDecodeError:
                return self._fail(events, 1007, "invalid UTF-8 in a text message")
        if self._remaining:
            self.want = view[stop:]
            return events
        self._direct_view = None
        view.release()
        if self._msg_op == BINARY:
            self._parts.append(self._direct.getvalue())
        self._direct = None
        self._in_frame = False
        if self._fin:
            self._end_message(events)
        return events

    def _inflate(self, events: list[Event], chunk: bytes, end: bool) -> bool:
        # A compressed message: inflate what arrived (bounded by max_size, in steps), and decode
        # text as it inflates, so invalid UTF-8 fails before the message is complete.
        assert self.deflate is not None
        try:
            pieces = self.deflate.decompress(chunk, self.max_size - self._msg_size, end)
        except InflateError as exc:
            self._fail(events, exc.code, str(exc))
            return False
        for piece in pieces:
            self._msg_size += len(piece)
            if self._msg_op == TEXT:
                try:
                    self._parts.append(self._decoder.decode(piece, False))
                except UnicodeDecodeError:
                    self._fail(events, 1007, "invalid UTF-8 in a text message")
                    return False
            else:
                self._parts.append(piece)
        return True

    def _inflate_whole(
        self, events: list[Event], op: int, data: bytes, pos: int, length: int
    ) -> bool:
        assert self.deflate is not None
        try:
            pieces = self.deflate.decompress(
                memoryview(data)[pos : pos + length], self.max_size, True
            )
        except InflateError as exc:
            self._fail(events, exc.code, str(exc))
            return False
        payload = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        self._inflated += len(payload)
        if op == BINARY:
            events.append(Message(payload))
            return True
        try:
            events.append(Message(payload.decode("utf-8")))
        except UnicodeDecodeError:
            self._fail(events, 1007, "invalid UTF-8 in a text message")
            return False
        return True

    def _end_message(self, events: list[Event]) -> bool:
        if self._compressed:
            if not self._inflate(events, b"", True):
                return False
            self._inflated += self._msg_size
        parts, self._parts = self._parts, []
        if self._msg_op == TEXT:
            try:
                tail = self._decoder.decode(b"", True)
            except UnicodeDecodeError:
                self._fail(events, 1007, "invalid UTF-8 in a text message")
                return False
            events.append(Message("".join(parts) + tail))  # type: ignore[arg-type]
        else:
            events.append(Message(b"".join(parts)))  # type: ignore[arg-type]
        self._msg_op = 0
        return True

    def _check_header(
        self, b0: int, b1: int, op: int, fin: bool, length: int
    ) -> Union[tuple[int, str], None]:
        if b0 & 0x70 and (b0 & 0x70 != 0x40 or self.deflate is None or op == CONT or op >= 8):
            if b0 & 0x70 == 0x40 and self.deflate is not None:
                return 1002, "RSV1 set on a frame that is not a message's first data frame"
            return 1002, "reserved bits set without a negotiated extension"
        if b1 & 0x80:
            return 1002, "the server masked a frame"
        if op >= 8:
            if op > PONG:
                return 1002, f"reserved control opcode {op:#x}"
            if not fin:
                return 1002, "fragmented control frame"
            if length > 125:
                return 1002, "control frame payload over 125 bytes"
            return None
        if op > BINARY:
            return 1002, f"reserved data opcode {op:#x}"
        if op == CONT and not self._msg_op:
            return 1002, "continuation frame without a message to continue"
        if op != CONT and self._msg_op:
            return 1002, "new message started before the previous one ended"
        size = (self._msg_size if op == CONT else 0) + length
        if size > self.max_size:
            return 1009, f"message of at least {size} bytes is over the limit of {self.max_size}"
        return None

    def _control_frame(self, events: list[Event], op: int, payload: bytes) -> bool:
        if op == PING:
            events.append(Ping(payload))
        elif op == PONG:
            events.append(Pong(payload))
        else:
            if not payload:
                events.append(CloseFrame(1005, ""))
            elif len(payload) == 1:
                self._fail(events, 1002, "close frame with a one-byte payload")
                return False
            else:
                code = int.from_bytes(payload[:2], "big")
                if not is_valid_received_close_code(code):
                    self._fail(events, 1002, f"invalid close code {code}")
                    return False
                try:
                    reason = payload[2:].decode("utf-8")
                except UnicodeDecodeError:
                    self._fail(events, 1007, "invalid UTF-8 in the close reason")
                    return False
                events.append(CloseFrame(code, reason))
            self._close_seen = True
        return True

    def _fail(self, events: list[Event], code: int, message: str) -> list[Event]:
        self._failed = True
        self._buf = b""
        self.want = self._direct_view = self._direct = None
        events.append(Violation(code, message))
        return events


def is_valid_received_close_code(code: int) -> bool:
    """Codes a peer may put in a close frame (RFC 6455 7.4 and the IANA registry)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999
