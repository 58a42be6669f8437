"""The client side of one WebSocket connection, sans I/O: the one state machine.

Bytes in (:meth:`ClientConnection.receive_data`), typed events out, bytes to send out
(:meth:`ClientConnection.data_to_send`); no sockets, threads or timers. The I/O layer feeds it what
the socket read, writes what it returns, tells it when the socket ended
(:meth:`~ClientConnection.connection_lost`) and when a timer fired (:meth:`~ClientConnection.fail`);
it never decides how a connection ends. That is decided here, once:

* ``state`` has one writer, :meth:`ClientConnection._set_state`, which allows only the
  transitions in ``_TRANSITIONS`` (CONNECTING → OPEN → CLOSING → CLOSED, and the shortcuts a
  failure takes).
* The first cause of a failure is recorded once (``failure``); later ones change nothing.
* The close event's code follows RFC 6455 7.1.5/7.4 and the WHATWG standard: the server's code
  and reason with ``was_clean`` when both close frames were exchanged and nothing failed; 1005 for
  an empty close frame; 1006 and ``was_clean=False`` otherwise.
* The peer's protocol violations fail the connection with the close code the standard names
  (1002, 1007, 1009); a ping is answered with a pong unless our close frame is already out.

The object is not thread-safe; the owner serialises calls (the I/O layer holds one lock per
connection around them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Union

from .._constants import ReadyState, SocketError
from .._exceptions import ConnectionFailed, ProtocolError
from .deflate import RSV1, DeflateOptions, PerMessageDeflate, negotiate
from .events import Closed, CloseFrame, Message, Opened, Ping, Pong, Violation
from .frames import BINARY, PING, PONG, TEXT, Frame, FrameEvent, Parser, build_close, build_frame
from .handshake import MAX_RESPONSE_HEAD, HandshakeRejected, build_request, check_response, make_key

__all__ = ["ClientConnection", "Event", "State"]

State = ReadyState
CONNECTING, OPEN, CLOSING, CLOSED = (
    ReadyState.CONNECTING,
    ReadyState.OPEN,
    ReadyState.CLOSING,
    ReadyState.CLOSED,
)
# Every transition the connection may make; anything else is a bug, caught by _set_state.
_TRANSITIONS = {
    CONNECTING: (OPEN, CLOSING, CLOSED),
    OPEN: (CLOSING, CLOSED),
    CLOSING: (CLOSED,),
    CLOSED: (),
}

Event = Union[Opened, Message]
Token = object
Buffer = Union[bytes, bytearray, memoryview]


class ClientConnection:
    """One client connection's protocol state.

    Args:
        resource: path and query of the request line.
        host, port, secure: where it connects (for ``Host`` and the default ``Origin``).
        url: the URL as shown in messages (credentials already removed).
        protocols: subprotocols offered.
        origin: the ``Origin`` header (``None``: derived from the host).
        headers: extra request headers, already validated.
        max_size: the largest message accepted (after decompression); a bigger one fails
            with 1009.
        compression: permessage-deflate to offer (``None``: offer nothing).
    """

    def __init__(
        self,
        *,
        resource: str,
        host: str,
        port: int,
        secure: bool,
        url: str,
        protocols: Sequence[str] = (),
        origin: Optional[str] = None,
        headers: Sequence[tuple[str, str]] = (),
        max_size: int,
        compression: Optional[DeflateOptions] = None,
    ) -> None:
        self.state: ReadyState = CONNECTING
        self.url = url
        self.protocol = ""
        self.extensions = ""
        # The agreed permessage-deflate once open (None: messages go out as they are).
        self.deflate: Optional[PerMessageDeflate] = None
        self._compression = compression
        self.opened = False  # the handshake completed (even if closed since)
        self.close_sent = False
        self.close_received: Optional[tuple[int, str]] = None
        self.failure: Optional[BaseException] = None  # the first cause, recorded once
        self.cause: Optional[BaseException] = None
        self._protocols = tuple(protocols)
        self._key = make_key()
        self._request = build_request(
            resource=resource,
            host=host,
            port=port,
            secure=secure,
            key=self._key,
            protocols=self._protocols,
            origin=origin,
            headers=headers,
            extensions=None if compression is None else compression.offer,
        )
        self._head = b""
        self._parser = Parser(max_size)
        self._out: list[tuple[Frame, Token]] = []
        self._held: list[FrameEvent] = []  # frames that follow messages not yet handled
        self._closed: Optional[Closed] = None

    def __repr__(self) -> str:
        return f"<ClientConnection {self.url} {self.state.name}>"

    # -- the one writer of state -----------------------------------------------------------

    def _set_state(self, state: ReadyState) -> None:
        if state not in _TRANSITIONS[self.state]:
            raise AssertionError(f"invalid transition {self.state.name} -> {state.name}")
        self.state = state

    # -- output ----------------------------------------------------------------------------

    def send_request(self) -> None:
        """Queue the opening handshake's request (once the stream is up)."""
        if self.state is CONNECTING and self._request:
            self._out.append((self._request, None))
            self._request = b""

    def data_to_send(self) -> list[tuple[Frame, Token]]:
        """What to write, in order, each with the token given when it was queued."""
        out, self._out = self._out, []
        return out

    @property
    def has_data_to_send(self) -> bool:
        return bool(self._out)

    @property
    def can_send(self) -> bool:
        """Data frames may still go out: OPEN, and our close frame is not out (once closing has
        begun the standard sends nothing more)."""
        return self.state is OPEN and not self.close_sent

    def send_message(
        self, opcode: int, payload: Buffer, token: Token = None, compress: bool = True
    ) -> bool:
        """Queue a text (payload: its UTF-8) or binary message; False once it cannot be sent
        (not OPEN, or our close frame is out: the standard then sends nothing).

        With permessage-deflate agreed the message is compressed, unless ``compress`` is false
        (data that is compressed already) or the agreed window is one zlib cannot honour."""
        frame = self.encode_message(opcode, payload, compress)
        if frame is None:
            return False
        self._out.append((frame, token))
        return True

    def encode_message(
        self, opcode: int, payload: Buffer, compress: bool = True
    ) -> Optional[Frame]:
        """The frame :meth:`send_message` would queue, not queued (``None`` when it cannot be
        sent): an owner may hand it to the kernel itself and queue what is left with
        :meth:`send_frame`. A compressed frame advanced the compressor's context: it must go
        out before any message encoded after it."""
        if not self.can_send:
            return None
        deflate = self.deflate
        if compress and deflate is not None and deflate.compressing:
            return build_frame(RSV1 | opcode, deflate.compress(payload))
        return build_frame(opcode, payload)

    def send_frame(self, frame: Frame, token: Token = None) -> bool:
        """Queue a data frame made with :func:`~mesiboscript.sansio.frames.build_frame`, as
        :meth:`send_message` would. Masking is the costly part of sending: an owner that
        serialises its calls with a lock masks before taking it."""
        if not self.can_send:
            return False
        self._out.append((frame, token))
        return True

    def send_text(self, payload: Buffer, token: Token = None) -> bool:
        return self.send_message(TEXT, payload, token)

    def send_binary(self, payload: Buffer, token: Token = None) -> bool:
        return self.send_message(BINARY, payload, token)

    def send_ping(self, payload: bytes = b"") -> bool:
        """Queue a ping (keepalive); False when the connection is not open."""
        if not self.can_send:
            return False
        self._out.append((build_frame(PING, payload), None))
        return True

    def send_close(self, code: Optional[int] = None, reason: bytes = b"") -> None:
        """The script's ``close()``: start the closing handshake.

        While CONNECTING this fails the connection, as the standard says ("fail the WebSocket
        connection": error event, then close with 1006). Once closing has begun it does nothing.
        """
        if self.state is CONNECTING:
            self.fail(
                None,
                ConnectionFailed(
                    "WebSocket is closed before the connection is established",
                    SocketError.OperationError,
                ),
            )
        elif self.state is OPEN:
            self._queue_close(code, reason)
            self._set_state(CLOSING)

    def _queue_close(self, code: Optional[int], reason: bytes = b"") -> None:
        self.close_sent = True
        self._out.append((build_close(code, reason), None))

    # -- failing ---------------------------------------------------------------------------

    def fail(self, wire_code: Optional[int], failure: BaseException) -> None:
        """Fail the connection (RFC 6455 7.1.7): an error event, then a 1006 close event.

        ``wire_code`` is sent in a close frame when the connection is open and ours is not out
        yet (``None``: send none, e.g. for a timeout). The first failure is the one reported.
        """
        if self.state is CLOSED:
            return
        if self.failure is None:
            self.failure = failure
            self.cause = failure
        if self.opened and wire_code is not None and not self.close_sent:
            self._queue_close(wire_code)
        if self.state is not CLOSING:
            self._set_state(CLOSING)

    @property
    def must_close_transport(self) -> bool:
        """The client must end the TCP connection itself now: it failed (RFC 6455 7.1.7);
        otherwise the server closes first (7.1.1) and the client only waits, with a timeout."""
        return self.failure is not None

    # -- input -----------------------------------------------------------------------------

    @property
    def want(self) -> Optional[memoryview]:
        """A buffer the I/O layer should read the next bytes into (a large frame's payload)
        instead of calling :meth:`receive_data`; then it calls :meth:`receive_into`."""
        return self._parser.want

    def receive_data(self, data: bytes) -> list[Event]:
        """Bytes from the server: the events they complete (open, messages)."""
        if self.state is CONNECTING:
            return self._receive_head(data)
        if self.state is CLOSED or (self.failure is not None and self.state is CLOSING):
            return []
        frames = self._parser.feed(data)
        if self._held:  # not drained with next_events(): still first
            frames, self._held = self._held + frames, []
        elif len(frames) == 1 and type(frames[0]) is Message and self.state is OPEN:
            return frames  # type: ignore[return-value]  # one message: nothing to handle
        return self._handle(frames)

    def receive_into(self, nbytes: int) -> list[Event]:
        """``nbytes`` arrived in the buffer :attr:`want` gave."""
        frames = self._parser.filled(nbytes)
        if self._held:
            frames, self._held = self._held + frames, []
        return self._handle(frames)

    def _receive_head(self, data: bytes) -> list[Event]:
        head = self._head + data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            self._head = head
            if len(head) > MAX_RESPONSE_HEAD:
                self._reject("the response head is over 64 KiB")
            return []
        self._head = b""
        try:
            protocol, extensions = check_response(
                head[:end].decode("latin-1"),
                self._key,
                self._protocols,
                extensions_offered=self._compression is not None,
            )
            if extensions:
                assert self._compression is not None  # check_response saw to it
                self.deflate = self._parser.deflate = negotiate(extensions, self._compression)
        except HandshakeRejected as exc:
            self._reject(str(exc))
            return []
        self.protocol = protocol
        self.extensions = extensions
        self.opened = True
        self._set_state(OPEN)
        rest = head[end + 4 :]
        if rest:
            # Frames that came with the response wait until the open event's handlers have run
            # (what onopen sends goes out before a close frame's echo, as for messages).
            self._held = self._parser.feed(rest)
        return [Opened(protocol, extensions)]

    def _reject(self, problem: str) -> None:
        self.fail(
            None,
            ConnectionFailed(
                f"WebSocket handshake with {self.url} failed: {problem}",
                SocketError.ConnectionRefusedError,
            ),
        )

    def _handle(self, frames: list[FrameEvent]) -> list[Event]:
        events: list[Event] = []
        for i, event in enumerate(frames):
            if type(event) is Message:
                if self.state is OPEN:  # the standard drops messages once closing has begun
                    events.append(event)
            elif isinstance(event, Ping):
                if not self.close_sent:
                    self._out.append((build_frame(PONG, event.payload), None))
            elif isinstance(event, Pong):
                pass  # the I/O layer counts any input as a sign of life
            elif events:
                # A close frame or a violation after messages: the messages' handlers run first
                # (what they send goes out before our close frame), then the rest is handled.
                self._held = frames[i:]
                break
            elif isinstance(event, CloseFrame):
                self.close_received = (event.code, event.reason)
                if not self.close_sent:
                    self._queue_close(None if event.code == 1005 else event.code)
                if self.state is OPEN:
                    self._set_state(CLOSING)
            else:
                assert isinstance(event, Violation)
                self.fail(event.code, ProtocolError(event.message, event.code))
                break
        return events

    @property
    def has_held_events(self) -> bool:
        """Frames wait behind messages just returned, or input behind compressed messages that
        inflated to the parser's budget (:attr:`holds_input`): call :meth:`next_events` once
        their handlers have run."""
        return bool(self._held) or self._parser.holding

    @property
    def holds_input(self) -> bool:
        """Input is held unparsed behind messages that inflated to the budget: the I/O layer
        calls :meth:`next_events` for more only while its reader keeps up (backpressure), and
        before it reads the socket again."""
        return self._parser.holding

    def next_events(self) -> list[Event]:
        """Handle what the last call held back (see :attr:`has_held_events`), in order."""
        if self._held:
            held, self._held = self._held, []
            return self._handle(held)
        frames = self._parser.feed(b"")  # parses on where the inflation budget stopped it
        if self.state is CLOSED or (self.failure is not None and self.state is CLOSING):
            return []
        return self._handle(frames)

    # -- the end ---------------------------------------------------------------------------

    def connection_lost(self, exc: Optional[BaseException] = None) -> Closed:
        """The stream ended (``exc``: why, if it broke). Returns the one :class:`Closed`."""
        if self._closed is not None:
            return self._closed
        if self.failure is None:
            if not self.opened:
                # Never opened: that is a failure (error event), whatever ended it.
                self.failure = self.cause = exc or ConnectionFailed(
                    "the server closed the connection during the handshake",
                    SocketError.RemoteHostClosedError,
                )
            elif self.close_received is None:
                # Chromium fires no error event when TCP drops while OPEN: not "failing the
                # connection" in RFC 6455 terms (tests/parity/fixtures record what it did).
                self.cause = exc or ConnectionFailed(
                    "the connection was closed without a close frame",
                    SocketError.RemoteHostClosedError,
                )
        received = self.close_received
        if self.failure is None and received is not None and self.close_sent:
            closed = Closed(received[0], received[1], True, None, self.cause)
        else:
            closed = Closed(1006, "", False, self.failure, self.cause)
        self._set_state(CLOSED)
        self._out.clear()
        self._closed = closed
        return closed
