"""WebSocketLink against a raw server on 127.0.0.1: calls before it starts, closing while it
connects, writes refused while closing, pings while closing, a large text message that fails
UTF-8 validation while read into its own buffer, and a listener that aborts mid-batch."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any, Callable, Optional, Union

from mesiboscript import ProtocolError
from mesiboscript._constants import ReadyState
from mesiboscript._links import Link, LinkEnd
from mesiboscript._loop import get_loop
from mesiboscript._validation import parse_url
from mesiboscript._wslink import WebSocketLink

from .helpers import TIMEOUT, on_loop
from .rawserver import OP_PING, OP_TEXT, accept_key, close_frame, frame, parse_client_frames


class Events:
    """A LinkListener recording what the link reports; ``on_data`` reacts on the I/O thread."""

    def __init__(self, on_data: Optional[Callable[[Link, Union[str, bytes]], None]] = None):
        self.cond = threading.Condition()
        self.kinds: list[str] = []
        self.data: list[Union[str, bytes]] = []
        self.end: Optional[LinkEnd] = None
        self._on_data = on_data

    def _note(self, kind: str) -> None:
        with self.cond:
            assert self.end is None, f"{kind} after link_down"
            self.kinds.append(kind)
            self.cond.notify_all()

    def link_up(self, link: Link) -> None:
        self._note("up")

    def link_data(self, link: Link, data: Union[str, bytes]) -> None:
        with self.cond:
            self.data.append(data)
        self._note("data")
        if self._on_data is not None:
            self._on_data(link, data)

    def link_written(self, link: Link, token: object) -> None:
        self._note("written")

    def link_down(self, link: Link, end: LinkEnd) -> None:
        self._note("down")
        with self.cond:
            self.end = end
            self.cond.notify_all()

    def wait(self, predicate: Callable[[], bool], what: str) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, TIMEOUT), f"no {what}; saw {self.kinds}"

    def wait_down(self) -> LinkEnd:
        self.wait(lambda: self.end is not None, "link_down")
        assert self.end is not None
        return self.end


def make_link(port: int, events: Events, **options: Any) -> WebSocketLink:
    parsed = parse_url(f"ws://127.0.0.1:{port}/chat")
    return WebSocketLink(get_loop(), events, parsed, display_url=parsed.display, **options)


class Peer:
    """The server's side of one connection: the opening handshake, frames both ways."""

    def __init__(self, listener: socket.socket) -> None:
        self.sock, _ = listener.accept()
        self.sock.settimeout(TIMEOUT)
        self.buf = bytearray()

    def handshake(self) -> None:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        key = next(
            line.split(b":", 1)[1].strip().decode()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        self.sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n"
        )

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        assert data, "the client closed"
        self.buf += data

    def read_frame(self) -> tuple[int, bytes]:
        while True:
            frames = parse_client_frames(self.buf)
            if frames:
                assert len(frames) == 1 or not self.buf, "one frame at a time here"
                first = frames[0]
                for extra in reversed(frames[1:]):  # put back what was not asked for yet
                    self.buf[:0] = frame(extra.opcode, extra.payload, mask=True)
                return first.opcode, first.payload
            self._fill()

    def close(self) -> None:
        self.sock.close()


def test_before_start_nothing_happens_and_abort_ends_it_without_a_connection() -> None:
    events = Events()
    link = make_link(9, events)
    assert repr(link) == "<WebSocketLink ws://127.0.0.1:9/chat CONNECTING>"
    assert link.pending_bytes == 0
    assert link.socket is None

    def before() -> None:
        link.pause_reading()
        link.resume_reading()
        link.flush_now()  # nothing queued, no transport: nothing to do
        link.abort()
        link.abort()  # once only
        link.start()  # ended: starts nothing

    on_loop(before)
    end = events.wait_down()
    assert events.kinds == ["down"]
    assert (end.code, end.was_clean, end.failure, end.cause) == (1006, False, None, None)
    assert link.socket is None


def test_close_while_connecting_gives_up_the_attempt_quietly(listener: socket.socket) -> None:
    events = Events()
    link = make_link(listener.getsockname()[1], events, connect_timeout=None)
    on_loop(link.start)
    peer = Peer(listener)  # TCP is up; the handshake is never answered
    try:
        assert on_loop(lambda: link.socket) is not None
        on_loop(link.close)
        end = events.wait_down()
    finally:
        peer.close()
    assert events.kinds == ["down"]
    assert (end.failure, end.cause) == (None, None)


def test_writes_refused_while_closing_are_unsent_and_pings_stop(listener: socket.socket) -> None:
    events = Events()
    link = make_link(
        listener.getsockname()[1],
        events,
        ping_interval=0.02,
        ping_timeout=None,  # pings without a deadline
        close_timeout=0.5,  # the server never answers our close: this ends it
    )
    on_loop(link.start)
    peer = Peer(listener)
    try:
        peer.handshake()
        events.wait(lambda: "up" in events.kinds, "link_up")
        assert peer.read_frame()[0] == OP_PING  # keep-alive pings flow while open

        def close_then_write() -> None:
            link.close(1000, b"bye")
            link.close(1000, b"again")  # already closing: no second close frame
            link.write(b"too late", "late")

        on_loop(close_then_write)
        while True:  # pings sent before the close may come first
            opcode, payload = peer.read_frame()
            if opcode != OP_PING:
                break
        assert (opcode, payload) == (8, b"\x03\xe8bye")
        end = events.wait_down()
        peer.sock.settimeout(0)
        try:
            tail = peer.sock.recv(65536)
        except BlockingIOError:
            tail = b""
        peer.buf += tail
        # Pings stopped once closing began: nothing but the end after our close frame.
        assert parse_client_frames(peer.buf) == []
    finally:
        peer.close()
    assert end.unsent == ("late",)
    assert (end.code, end.was_clean, end.failure) == (1006, False, None)


def test_invalid_utf8_in_a_large_text_message_read_into_its_buffer_fails_with_1007(
    listener: socket.socket,
) -> None:
    events = Events()
    link = make_link(listener.getsockname()[1], events)
    on_loop(link.start)
    peer = Peer(listener)
    try:
        peer.handshake()
        events.wait(lambda: "up" in events.kinds, "link_up")
        # More than one read of valid text first, so the invalid bytes arrive by read_into.
        valid, invalid = b"a" * (65 * 1024), b"\xff" * (64 * 1024)
        message = frame(OP_TEXT, valid + invalid)
        peer.sock.sendall(message[: len(message) - len(invalid)])
        peer.sock.sendall(invalid)
        opcode, payload = peer.read_frame()
        assert (opcode, payload[:2]) == (8, b"\x03\xef")  # 1007
        # The failing client closes TCP at once (RFC 6455 7.1.7), with the rest of the invalid
        # bytes unread: the kernel may answer our courtesy close frame with a reset.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            peer.sock.sendall(close_frame(1007))
        end = events.wait_down()
    finally:
        peer.close()
    assert events.data == []
    assert isinstance(end.failure, ProtocolError)
    assert "invalid UTF-8" in str(end.failure)
    assert (end.code, end.was_clean) == (1006, False)  # failed: as a browser reports it


def test_a_listener_that_aborts_on_a_message_gets_nothing_more(listener: socket.socket) -> None:
    def on_data(link: Link, data: Union[str, bytes]) -> None:
        link.abort()

    events = Events(on_data)
    link = make_link(listener.getsockname()[1], events)
    on_loop(link.start)
    peer = Peer(listener)
    try:
        peer.handshake()
        events.wait(lambda: "up" in events.kinds, "link_up")
        peer.sock.sendall(frame(OP_TEXT, "one") + frame(OP_TEXT, "two"))  # one read, two events
        end = events.wait_down()
    finally:
        peer.close()
    assert events.data == ["one"]
    assert (end.failure, end.cause) == (None, None)
    assert link.state is ReadyState.CLOSED
