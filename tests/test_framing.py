"""The framing layer without sockets: every masker, every way a stream can be cut.

``build_frame`` masks in C when websockets' speedups (or wsaccel) can be imported, else with
Python ints; each path is forced here so that all of them are tested wherever the suite runs.
``Parser`` reads a large frame straight into its own buffer (``want``/``filled``); ``drive``
plays the transport's part, with reads of every size.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import Any, Optional

import pytest

from mesiboscript.sansio import frames as _protocol
from mesiboscript.sansio.events import CloseFrame, Message, Ping, Violation
from mesiboscript.sansio.frames import BINARY, TEXT, FrameEvent, Parser, build_frame

from .rawserver import frame

SIZES = [
    0,
    1,
    3,
    125,
    126,
    2047,
    32767,
    32768,
    65535,
    65536,
    65537,
    16 * 1024 * 3 + 5,
    (1 << 20) + 3,
]


def _maskers() -> Iterator[Any]:
    yield pytest.param(None, id="pure")
    try:
        from websockets.speedups import apply_mask
    except ImportError:
        pass
    else:
        yield pytest.param(apply_mask, id="websockets")
    try:
        from wsaccel.xormask import XorMaskerSimple
    except ImportError:
        pass
    else:
        yield pytest.param(
            lambda data, key: XorMaskerSimple(key).process(bytes(data)), id="wsaccel"
        )


def unmask(wire: bytes) -> tuple[int, bytes]:
    """The client frame's opcode and unmasked payload; checks the header on the way."""
    b0, b1 = wire[0], wire[1]
    assert b0 & 0xF0 == 0x80, "FIN set, no RSV bits"
    assert b1 & 0x80, "clients mask every frame"
    length, pos = b1 & 0x7F, 2
    if length == 126:
        (length,), pos = struct.unpack("!H", wire[2:4]), 4
        assert length >= 126, "shortest length encoding"
    elif length == 127:
        (length,), pos = struct.unpack("!Q", wire[2:10]), 10
        assert length >= 65536, "shortest length encoding"
    key, payload = wire[pos : pos + 4], wire[pos + 4 :]
    assert len(payload) == length
    full = (key * (length // 4 + 1))[:length]
    unmasked = (int.from_bytes(payload, "big") ^ int.from_bytes(full, "big")).to_bytes(
        length, "big"
    )
    return b0 & 0x0F, unmasked


def joined(built: Any) -> bytes:
    return b"".join(built) if isinstance(built, list) else bytes(built)


@pytest.mark.parametrize("masker", list(_maskers()))
@pytest.mark.parametrize("size", SIZES)
def test_build_frame_masks_every_size_with_every_masker(
    monkeypatch: pytest.MonkeyPatch, masker: Any, size: int
) -> None:
    monkeypatch.setattr(_protocol, "_accel", masker)
    monkeypatch.setattr(_protocol, "_accel_checked", True)
    payload = os.urandom(size)
    built = build_frame(BINARY, payload)
    # Large frames come as pieces for one sendmsg; small ones as one bytes.
    assert isinstance(built, list) == (size >= 65536)
    assert unmask(joined(built)) == (BINARY, payload)


def test_the_accelerator_is_looked_up_once_at_the_first_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_protocol, "_accel", None)
    monkeypatch.setattr(_protocol, "_accel_checked", False)
    assert unmask(joined(build_frame(TEXT, b"abc"))) == (TEXT, b"abc")
    assert _protocol._accel_checked
    found = _protocol._accel
    build_frame(TEXT, b"abc")
    assert _protocol._accel is found


def test_mask_keys_differ_between_frames() -> None:
    keys = {joined(build_frame(TEXT, b"x"))[2:6] for _ in range(2000)}
    assert len(keys) > 1990


# -- parsing --------------------------------------------------------------------------------


def drive(parser: Parser, stream: bytes, step: int) -> list[FrameEvent]:
    """The transport's part: ``feed`` what arrives, or fill ``want`` when the parser asks."""
    events: list[FrameEvent] = []
    pos = 0
    while pos < len(stream):
        want: Optional[memoryview] = parser.want
        if want is not None:
            n = min(len(want), step, len(stream) - pos)
            want[:n] = stream[pos : pos + n]
            del want  # the transport keeps no view: the message is handed over, not copied
            events += parser.filled(n)
        else:
            events += parser.feed(stream[pos : pos + step])
            n = min(step, len(stream) - pos)
        pos += n
    return events


TEXT_BIG = ("ascii and é€𝄞 " * 20_000).encode()  # multi-byte characters cut at every offset
BINARY_BIG = os.urandom((1 << 20) + 7)


@pytest.mark.parametrize("step", [1_000_003, 65 * 1024, 16 * 1024 + 1, 4093, 7])
def test_large_frames_arrive_whole_however_the_stream_is_cut(step: int) -> None:
    stream = b"".join(
        [
            frame(0x1, b"small"),
            frame(0x2, BINARY_BIG),
            frame(0x9, b"ping"),
            frame(0x1, TEXT_BIG),
            frame(0x2, b"\x00" * 70_000),
            frame(0x8, struct.pack("!H", 1000) + b"bye"),
        ]
    )
    events = drive(Parser(1 << 24), stream, step)
    assert events == [
        Message("small"),
        Message(BINARY_BIG),
        Ping(b"ping"),
        Message(TEXT_BIG.decode()),
        Message(b"\x00" * 70_000),
        CloseFrame(1000, "bye"),
    ]
    assert all(
        type(e.data) is bytes
        for e in events
        if isinstance(e, Message) and not isinstance(e.data, str)
    )


@pytest.mark.parametrize("step", [100_003, 20_000, 5])
def test_large_fragments_with_a_control_frame_between_them(step: int) -> None:
    first, second = TEXT_BIG[:150_001], TEXT_BIG[150_001:]  # cut inside a character
    stream = b"".join(
        [
            frame(0x1, first, fin=False),
            frame(0x9, b"p"),
            frame(0x0, second),
            frame(0x2, BINARY_BIG[:100_000], fin=False),
            frame(0x0, b"", fin=False),
            frame(0x0, BINARY_BIG[100_000:]),
        ]
    )
    assert drive(Parser(1 << 24), stream, step) == [
        Ping(b"p"),
        Message(TEXT_BIG.decode()),
        Message(BINARY_BIG),
    ]


def test_invalid_utf8_fails_inside_a_large_frame_before_the_rest_arrives() -> None:
    payload = b"a" * 40_000 + b"\xed\xa0\x80" + b"b" * 200_000
    parser = Parser(1 << 24)
    wire = frame(0x1, payload)
    assert parser.feed(wire[:1000]) == []
    assert parser.want is not None, "a large frame is read into its own buffer"
    want = parser.want
    want[:50_000] = wire[1000:51_000]
    del want
    events = parser.filled(50_000)
    assert [type(e) for e in events] == [Violation]
    assert events[0] == Violation(1007, "invalid UTF-8 in a text message")
    assert parser.want is None
    assert parser.feed(b"more") == []


def test_a_large_frame_over_max_size_is_refused_before_any_buffer() -> None:
    parser = Parser(100_000)
    events = parser.feed(frame(0x2, b"x" * 200_000)[:20])
    assert [type(e) for e in events] == [Violation]
    assert isinstance(events[0], Violation)
    assert events[0].code == 1009
    assert parser.want is None


# -- one small whole frame per read (the request/response fast path) ----------------------------


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (frame(TEXT, "héllo"), [Message("héllo")]),
        (frame(BINARY, b"\x00\xff"), [Message(b"\x00\xff")]),
        (frame(TEXT, ""), [Message("")]),
        (frame(BINARY, b"x" * 125), [Message(b"x" * 125)]),
        # Not the fast path's, and the same events as before it: two frames, a cut frame.
        (frame(TEXT, "a") + frame(BINARY, b"b"), [Message("a"), Message(b"b")]),
        (frame(TEXT, "ab")[:-1], []),
        (frame(TEXT, "x" * 126), [Message("x" * 126)]),
    ],
)
def test_a_whole_small_frame_per_read(stream: bytes, expected: list[FrameEvent]) -> None:
    assert Parser(1 << 20).feed(stream) == expected


def test_the_fast_path_keeps_every_check() -> None:
    """What the general loop refuses, a whole small frame does not slip past."""
    assert Parser(1 << 20).feed(frame(TEXT, b"\xc3\x28")) == [
        Violation(1007, "invalid UTF-8 in a text message")
    ]
    assert Parser(4).feed(frame(BINARY, b"12345")) == [
        Violation(1009, "message of at least 5 bytes is over the limit of 4")
    ]
    assert Parser(1 << 20).feed(frame(BINARY, b"ab", mask=True)) == [
        Violation(1002, "the server masked a frame")
    ]
    assert Parser(1 << 20).feed(frame(TEXT, "a", rsv=4)) == [
        Violation(1002, "reserved bits set without a negotiated extension")
    ]
    assert Parser(1 << 20).feed(frame(TEXT, "a", fin=False)) == []  # a message begins
    assert Parser(1 << 20).feed(b"\x81") == []  # one byte: a header begins
    parser = Parser(1 << 20)
    assert parser.feed(frame(0x8, struct.pack("!H", 1000))) == [CloseFrame(1000, "")]
    assert parser.feed(frame(TEXT, "late")) == [
        Violation(1002, "frame received after the close frame")
    ]
    assert parser.feed(frame(TEXT, "later")) == []  # failed: nothing more
    parser = Parser(1 << 20)
    assert parser.feed(frame(TEXT, "abc")[:1]) == []  # a header's first byte, kept
    assert parser.feed(frame(TEXT, "abc")[1:]) == [Message("abc")]  # joined with the kept byte
    parser = Parser(1 << 20)
    assert parser.feed(frame(TEXT, "abc")[:3]) == []  # inside a frame's payload
    assert parser.feed(b"bc") == [Message("abc")]  # a whole-looking read is not a new frame


def test_small_whole_frames_among_others_keep_every_check() -> None:
    """The parser's shortcut for small whole messages in a longer read (pipelined streams)."""
    both = Parser(1 << 20).feed(frame(TEXT, "a") + frame(BINARY, b"b") + frame(TEXT, "é" * 50))
    assert both == [Message("a"), Message(b"b"), Message("é" * 50)]
    assert Parser(1 << 20).feed(frame(TEXT, "a") + frame(TEXT, b"\xc3\x28")) == [
        Message("a"),
        Violation(1007, "invalid UTF-8 in a text message"),
    ]
    assert Parser(4).feed(frame(TEXT, "a") + frame(BINARY, b"12345")) == [
        Message("a"),
        Violation(1009, "message of at least 5 bytes is over the limit of 4"),
    ]
    assert Parser(1 << 20).feed(frame(TEXT, "a", fin=False) + frame(TEXT, "b")) == [
        Violation(1002, "new message started before the previous one ended")
    ]
    parser = Parser(1 << 20)
    stream = frame(TEXT, "a") + frame(TEXT, "bc")
    assert parser.feed(stream[:-1]) == [Message("a")]  # the second is cut: it waits
    assert parser.feed(stream[-1:]) == [Message("bc")]
