"""``WebSocket``: the browser's WebSocket for Python scripts, plus Dirigible's and ArozOS's methods.

State lives in three places, each with one writer: the ready state and the queues shared with user
threads are guarded by ``_lock``; everything about the wire (transport, parser, close handshake,
timers) belongs to the I/O thread alone. Only the I/O thread decides how a connection ended and it
records the first cause once, so exactly one close event fires per object.
"""

from __future__ import annotations

import base64
import hashlib
import json
import select
import ssl
import threading
import time
import uuid
from concurrent.futures import Future
from typing import Any, Callable, ClassVar, Optional, Union, cast

from websocket._handshake import _get_handshake_headers

from . import _sessions
from ._constants import ReadyState, SocketError
from ._events import CloseData, ErrorEvent, Event
from ._eventtarget import DOMEventTarget, EventHandler
from ._exceptions import (
    ConnectionClosed,
    ConnectionFailed,
    InvalidStateError,
    ProtocolError,
    socket_error_for,
)
from ._inbox import Inbox, not_on_loop
from ._loop import Loop, TimerHandle, get_loop, logger
from ._protocol import (
    BINARY,
    CLOSE,
    ERROR,
    PING,
    PONG,
    TEXT,
    Frame,
    Parser,
    build_close,
    build_frame,
)
from ._state import ParsedURL, check_close, check_header, parse_protocols, parse_url
from ._tls import make_context
from ._transport import Protocol, Transport, parse_proxy

__all__ = ["DEFAULT_MAX_SIZE", "WebSocket"]

DEFAULT_MAX_SIZE = 16 * 1024 * 1024
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# Messages waiting for a handler or read(): past the high-water mark the socket is not read
# (TCP backpressure reaches the server); reading resumes under the low-water mark.
_HIGH_WATER_BYTES = 1024 * 1024
_HIGH_WATER_COUNT = 4096
_MAX_RESPONSE_HEAD = 64 * 1024
Handler = Optional[Callable[..., Any]]
SendData = Union[str, bytes, bytearray, memoryview, dict, list]  # type: ignore[type-arg]


def _encode(data: object) -> tuple[int, bytes]:
    if isinstance(data, str):
        try:
            return TEXT, data.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates become U+FFFD, as for a USVString
            return TEXT, data.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode()
    if isinstance(data, (bytes, bytearray, memoryview)):
        return BINARY, bytes(data)
    if isinstance(data, (dict, list)):
        return TEXT, json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raise TypeError(
        f"send() takes str, bytes, bytearray, memoryview, dict or list, not {type(data).__name__}"
    )


class WebSocket(Protocol, DOMEventTarget):
    """A WebSocket client with the browser's (WHATWG) semantics.

    Args:
        url: ``ws://`` or ``wss://`` URL (``http``/``https`` map to them), or another
            ``WebSocket`` to open a new connection with the same URL, protocols and options.
        protocols: a subprotocol or a list of them, offered in ``Sec-WebSocket-Protocol``.
        headers: extra request headers.
        origin: the ``Origin`` header (default ``http(s)://host[:port]``).
        ssl_context: an :class:`ssl.SSLContext` for ``wss://`` (default: certifi's CA bundle,
            hostname verified).
        cafile: trust this CA bundle instead of certifi's.
        connect_timeout: seconds allowed for DNS, TCP, proxy, TLS and the HTTP upgrade together.
        ping_interval: send a ping this often (seconds); ``None`` sends none, as browsers do.
        ping_timeout: fail the connection (1006) when nothing arrives this long after a ping.
        close_timeout: seconds to wait for the peer during the closing handshake.
        max_size: largest message accepted; a bigger one closes the connection with 1009.
        proxy: ``http://[user:pass@]host:port`` of an HTTP CONNECT proxy.
        onopen, onmessage, onerror, onclose: handlers installed before the connection starts.
            Handlers assigned after the constructor never miss an event either, but in a
            thread-based program the connection may already be open (or failed) by then, so
            what those handlers do (e.g. an echo) happens after the fact; these keywords make
            the order exactly the browser's.

    Raises:
        ValueError: bad URL, protocols, header or option (nothing is sent).
    """

    CONNECTING = ReadyState.CONNECTING
    OPEN = ReadyState.OPEN
    CLOSING = ReadyState.CLOSING
    CLOSED = ReadyState.CLOSED

    onopen = EventHandler()
    onmessage = EventHandler()
    onerror = EventHandler()
    onclose = EventHandler()

    # What readyState says inside a handler on the I/O thread, whenever the event is delivered.
    _STATE_AT_EVENT: ClassVar[dict[str, Any]] = {
        "open": ReadyState.OPEN,
        "message": ReadyState.OPEN,
        "error": ReadyState.CLOSED,
        "close": ReadyState.CLOSED,
    }

    _is_session = True  # what getSession() looks for
    _protocols: list[str]
    _headers: dict[str, str]
    _origin: Optional[str]
    _ssl_context: Optional[ssl.SSLContext]
    _proxy: Optional[str]

    def __init__(
        self,
        url: Union[str, WebSocket],
        protocols: Union[str, list[str], tuple[str, ...], None] = None,
        *,
        headers: Optional[dict[str, str]] = None,
        origin: Optional[str] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        cafile: Optional[str] = None,
        connect_timeout: Optional[float] = 30.0,
        ping_interval: Optional[float] = None,
        ping_timeout: Optional[float] = 20.0,
        close_timeout: float = 5.0,
        max_size: int = DEFAULT_MAX_SIZE,
        proxy: Optional[str] = None,
        onopen: Handler = None,
        onmessage: Handler = None,
        onerror: Handler = None,
        onclose: Handler = None,
    ) -> None:
        if isinstance(url, WebSocket):
            other: WebSocket = url
            url = other.url
            protocols = other._protocols if protocols is None else protocols
            headers, origin = headers or other._headers, origin or other._origin
            ssl_context = ssl_context or other._ssl_context
            proxy = proxy or other._proxy
        self._parsed: ParsedURL = parse_url(url)
        self._protocols = parse_protocols(protocols)
        self._headers = dict(headers or {})
        header_lines = [": ".join(check_header(k, v)) for k, v in self._headers.items()]
        if origin is not None:
            check_header("Origin", origin)
        if self._parsed.userinfo:
            token = base64.b64encode(self._parsed.userinfo.encode()).decode("ascii")
            header_lines.append(f"Authorization: Basic {token}")
        for name, value in (
            ("connect_timeout", connect_timeout),
            ("ping_interval", ping_interval),
            ("ping_timeout", ping_timeout),
            ("close_timeout", close_timeout),
        ):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        if not isinstance(max_size, int) or max_size <= 0:
            raise ValueError(f"max_size must be a positive int, not {max_size!r}")
        if proxy is not None:
            parse_proxy(proxy)
        self._origin = origin
        self._header_lines = header_lines
        self._ssl_context = ssl_context
        self._tls = make_context(ssl_context, cafile) if self._parsed.secure else None
        self._connect_timeout = connect_timeout
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._close_timeout = close_timeout
        self._max_size = max_size
        self._proxy = proxy
        self._id = uuid.uuid4().hex

        # Shared with user threads, under _lock.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._state = ReadyState.CONNECTING
        self._buffered = 0
        self._outbox: list[tuple[Frame, int, Optional[Future[None]]]] = []
        self._flush_scheduled = False
        # Messages for read() or a late onmessage; past the high water, the socket is not read.
        self._inbox = Inbox(self._cond, _HIGH_WATER_BYTES, _HIGH_WATER_COUNT)
        self._futures: set[Future[None]] = set()
        self._binary_type = "blob"
        self._protocol = ""
        self._extensions = ""
        self._last_error: Optional[BaseException] = None
        self._ever_opened = False
        self._loop: Loop = get_loop()
        # Handlers, listeners, one-shot memory and late delivery (a late onmessage gets the inbox).
        self._init_events(self._loop, self._lock, self._inbox)

        # I/O thread only.
        self._transport: Optional[Transport] = None
        self._parser = Parser(max_size)
        self._handshake_key = ""
        self._handshake_buf = b""
        self._handshaking = False
        self._close_sent = False
        self._close_received: Optional[tuple[int, str]] = None
        self._failure: Optional[BaseException] = None
        self._finalized = False
        self._timer: Optional[TimerHandle] = None
        self._ping_timer: Optional[TimerHandle] = None
        self._last_rx = 0.0

        for type, handler in (
            ("open", onopen),
            ("message", onmessage),
            ("error", onerror),
            ("close", onclose),
        ):
            if handler is not None:
                self._set_event_handler(type, handler)

        self._loop.acquire(self)
        self._loop.call_soon_threadsafe(self._start)

    def __repr__(self) -> str:
        return f"<WebSocket {self._parsed.url} {ReadyState(self._state).name}>"

    # -- properties ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The URL, as parsed and serialised."""
        return self._parsed.url

    @property
    def readyState(self) -> ReadyState:
        """CONNECTING, OPEN, CLOSING or CLOSED (as of the event, inside a handler)."""
        state = self._state_at_event()
        return self._state if state is None else state

    @property
    def protocol(self) -> str:
        """The subprotocol the server chose; ``""`` before open or if none."""
        return self._protocol

    @property
    def extensions(self) -> str:
        """The extensions the server accepted (always ``""``: none are offered)."""
        return self._extensions

    @property
    def bufferedAmount(self) -> int:
        """Bytes of application data queued by ``send()`` and not yet written to the socket."""
        return self._buffered

    @property
    def binaryType(self) -> str:
        """``"blob"`` or ``"arraybuffer"``: kept for ported scripts; binary data is ``bytes``."""
        return self._binary_type

    @binaryType.setter
    def binaryType(self, value: str) -> None:
        if value not in ("blob", "arraybuffer"):
            raise ValueError(f"binaryType must be 'blob' or 'arraybuffer', not {value!r}")
        self._binary_type = value

    @property
    def last_error(self) -> Optional[BaseException]:
        """The exception behind the last error event (for debugging), else ``None``."""
        return self._last_error

    # -- events ----------------------------------------------------------------------------

    def _maybe_resume(self) -> None:
        if self._inbox.resume():
            self._inbox_resumed()

    def _inbox_resumed(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    # -- sending ---------------------------------------------------------------------------

    def send(self, data: SendData) -> None:
        """Queue a message: ``str`` (and ``dict``/``list`` as JSON) as text, bytes-like as binary.

        Raises:
            InvalidStateError: while CONNECTING. Once closing has begun, nothing is sent and
                nothing is raised (the standard's rule); ``bufferedAmount`` still grows.
            TypeError: for other types.
        """
        if self._state == ReadyState.CONNECTING:
            raise InvalidStateError("send() called while the WebSocket is still CONNECTING")
        opcode, payload = _encode(data)
        self._queue(build_frame(opcode, payload), len(payload), None)

    def _queue(self, frame: Frame, size: int, future: Optional[Future[None]]) -> bool:
        with self._lock:
            self._buffered += size
            if self._state != ReadyState.OPEN:
                return False
            self._outbox.append((frame, size, future))
            if future is not None:
                self._futures.add(future)
            if self._flush_scheduled:
                return True
            self._flush_scheduled = True
        self._loop.call_soon_threadsafe(self._flush_outbox)
        return True

    def _flush_outbox(self) -> None:
        with self._lock:
            items, self._outbox = self._outbox, []
            self._flush_scheduled = False
        transport = self._transport
        if transport is None or self._close_sent:
            return
        # One flush for the batch: frames queued while the loop was busy share a system call.
        last = len(items) - 1
        for i, (frame, size, future) in enumerate(items):
            token = (size, future) if size or future is not None else None
            transport.write(frame, token, i == last)

    def write_done(self, token: Any) -> None:
        size, future = token
        if size:
            with self._lock:
                self._buffered -= size
        if future is not None:
            self._futures.discard(future)
            if not future.done():
                future.set_result(None)

    # -- Dirigible ------------------------------------------------------------------------

    def getId(self) -> str:
        """A stable, unique id for this session."""
        return self._id

    def sendTextAsync(self, text: str) -> Future[None]:
        """Queue a text message; the Future completes once it is written to the socket, or fails
        with the reason (``InvalidStateError`` if not open, ``ConnectionClosed`` if it drops)."""
        if not isinstance(text, str):
            raise TypeError(f"sendTextAsync() takes a str, not {type(text).__name__}")
        future: Future[None] = Future()
        future.set_running_or_notify_cancel()
        if self._state != ReadyState.OPEN:
            future.set_exception(InvalidStateError(f"the session is {self._state.name}"))
            return future
        payload = text.encode("utf-8")
        if not self._queue(build_frame(TEXT, payload), len(payload), future):
            future.set_exception(InvalidStateError("the session closed"))
        return future

    def sendText(self, text: str) -> None:
        """Send a text message and return once it is written to the socket.

        Raises:
            InvalidStateError: if the session is not open.
            ConnectionClosed: if the connection drops before the frame is written.
        """
        if self._state != ReadyState.OPEN:
            raise InvalidStateError(f"sendText() on a session that is {self._state.name}")
        future = self.sendTextAsync(text)
        if self._loop.in_loop_thread():
            self._write_blocking(future)
        future.result()

    def _write_blocking(self, future: Future[None]) -> None:
        """Inside a handler: write now rather than wait on the thread we are running on."""
        self._flush_outbox()
        deadline = time.monotonic() + self._close_timeout * 6
        while not future.done():
            transport = self._transport
            if transport is None or transport.closed or transport.flush_now():
                break
            remaining = deadline - time.monotonic()
            sock = transport.socket
            if remaining <= 0 or sock is None:
                future.set_exception(ConnectionClosed("timed out writing to the socket"))
                break
            select.select([], [sock], [], remaining)

    # -- ArozOS ---------------------------------------------------------------------------

    def upgrade(self, timeout: Optional[float] = None) -> bool:
        """Wait for the connection to open: True once open, False on failure or timeout (the
        attempt is then abandoned). Never raises for network failures."""
        not_on_loop(self._loop, "upgrade", "onopen")
        with self._cond:
            self._cond.wait_for(lambda: self._state != ReadyState.CONNECTING, timeout)
            state = self._state
        if state == ReadyState.CONNECTING:
            self.close()
            return False
        return self._ever_opened

    def read(self, timeout: Optional[float] = None) -> Union[str, bytes, bool, None]:
        """The next message (``str``/``bytes``); ``None`` on timeout; ``False`` once closed and
        every message has been read."""
        not_on_loop(self._loop, "read", "onmessage")
        data = self._inbox.read(timeout, lambda: self._state == ReadyState.CLOSED)
        if self._inbox.paused:
            self._loop.call_soon_threadsafe(self._maybe_resume)
        return data

    # -- closing ---------------------------------------------------------------------------

    def close(self, code: Optional[int] = None, reason: str = "") -> None:
        """Start the closing handshake; safe from any thread and from handlers.

        Raises:
            ValueError: a code other than 1000 or 3000-4999, or a reason over 123 UTF-8 bytes.
        """
        checked_code, encoded = check_close(code, reason)
        self._close(checked_code, encoded)

    def _shutdown(self, code: int, reason: str) -> None:
        """Close with any code (1001 at interpreter exit)."""
        self._close(code, reason.encode("utf-8"))

    def _close(self, code: Optional[int], reason: bytes) -> None:
        with self._lock:
            state = self._state
            seen = self._closing_at_event(ReadyState.CLOSING)
            if seen is not None:
                state = min(state, seen)  # what the running handler believes
            if state in (ReadyState.CLOSING, ReadyState.CLOSED):
                return
            if self._state < ReadyState.CLOSING:
                self._state = ReadyState.CLOSING
        if state == ReadyState.CONNECTING:
            exc = ConnectionFailed(
                "WebSocket is closed before the connection is established",
                SocketError.OperationError,
            )
            self._loop.call_soon_threadsafe(self._fail, exc, None)
        else:
            self._loop.call_soon_threadsafe(self._start_closing, code, reason)

    def _start_closing(self, code: Optional[int], reason: bytes) -> None:
        self._flush_outbox()
        transport = self._transport
        if transport is None or self._close_sent or self._finalized:
            return
        self._close_sent = True
        transport.write(build_close(code, reason))
        self._set_timer(self._close_timeout, self._on_close_timeout)

    def _on_close_timeout(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _fail(self, exc: BaseException, wire_code: Optional[int]) -> None:
        """Fail the WebSocket connection (RFC 6455 7.1.7): error event, then close with 1006."""
        if self._finalized:
            return
        if self._failure is None:
            self._failure = exc
            self._last_error = exc
        with self._lock:
            if self._state < ReadyState.CLOSING:
                self._state = ReadyState.CLOSING
        transport = self._transport
        if transport is None:
            self._finalize()
            return
        if not (transport.is_open and self._ever_opened):
            transport.abort()
            return
        if wire_code is not None and not self._close_sent:
            self._flush_outbox()  # what handlers sent before the violation still goes out
            self._close_sent = True
            transport.write(build_close(wire_code))
        # Close once the queue (and any close frame in it) is written; a peer that stops
        # reading cannot hold us past the close timeout.
        self._set_timer(self._close_timeout, self._on_close_timeout)
        transport.close()

    def _finalize(self) -> None:
        if self._finalized:
            return
        self._finalized = True
        self._cancel_timers()
        failure = self._failure
        received = self._close_received
        if failure is None and received is not None and self._close_sent:
            code, reason, clean = received[0], received[1], True
        else:
            code, reason, clean = 1006, "", False
        with self._cond:
            self._state = ReadyState.CLOSED
            self._cond.notify_all()
        _sessions.unregister_open(self)
        for future in list(self._futures):
            if not future.done():
                future.set_exception(ConnectionClosed("the connection closed", code, reason))
        self._futures.clear()
        if failure is not None:
            error = socket_error_for(failure)
            self._emit("error", (error,), (ErrorEvent(error, failure, target=self),))
        self._emit("close", (CloseData(code, reason, clean, target=self),))
        self._loop.release(self)

    # -- I/O thread: connection ------------------------------------------------------------

    def _start(self) -> None:
        if self._finalized:
            return
        parsed = self._parsed
        self._transport = Transport(
            self._loop, self, parsed.host, parsed.port, tls=self._tls, proxy=self._proxy
        )
        if self._connect_timeout is not None:
            self._set_timer(self._connect_timeout, self._on_connect_timeout)
        self._transport.start()

    def _on_connect_timeout(self) -> None:
        exc = ConnectionFailed(
            f"timed out after {self._connect_timeout} s opening {self.url}",
            SocketError.SocketTimeoutError,
        )
        self._fail(exc, None)

    def connection_made(self) -> None:
        parsed = self._parsed
        options: dict[str, Any] = {"header": self._header_lines, "subprotocols": self._protocols}
        if self._origin is not None:
            options["origin"] = self._origin
        lines, self._handshake_key = _get_handshake_headers(
            parsed.resource, parsed.url, parsed.host, parsed.port, options
        )
        self._handshaking = True
        assert self._transport is not None
        self._transport.write("\r\n".join(lines).encode("utf-8"))

    def data_received(self, data: bytes) -> None:
        if self._handshaking:
            self._handshake_buf += data
            end = self._handshake_buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._handshake_buf) > _MAX_RESPONSE_HEAD:
                    self._fail_handshake("the response head is over 64 KiB")
                return
            head, data = self._handshake_buf[:end], self._handshake_buf[end + 4 :]
            self._handshake_buf = b""
            self._handshaking = False
            problem, protocol = self._check_response(head.decode("latin-1"))
            if problem is not None:
                self._fail_handshake(problem)
                return
            self._opened(protocol)
            if not data or self._finalized:
                return
        self._last_rx = time.monotonic()
        self._handle(self._parser.feed(data))

    def buffer_updated(self, nbytes: int) -> None:
        self._last_rx = time.monotonic()
        self._handle(self._parser.filled(nbytes))

    def _handle(self, events: list[tuple[int, object]]) -> None:
        want = self._parser.want
        if want is not None and self._transport is not None:
            self._transport.read_into(want)
        for kind, payload in events:
            if kind in (TEXT, BINARY):
                # Delivered or kept in the inbox (one call: the per-message path); dropped once
                # closing has begun, as the standard says.
                if (
                    self._state == ReadyState.OPEN
                    and self._deliver_message(payload)  # type: ignore[arg-type]
                    and self._transport is not None
                ):
                    self._transport.pause_reading()
            elif kind == PING:
                if not self._close_sent and self._transport is not None:
                    self._transport.write(build_frame(PONG, payload))  # type: ignore[arg-type]
            elif kind == CLOSE:
                self._on_close_frame(*payload)  # type: ignore[misc]
            elif kind == ERROR:
                wire_code, message = cast("tuple[int, str]", payload)
                self._fail(ProtocolError(message, wire_code), wire_code)
            if self._finalized:
                return

    def _check_response(self, head: str) -> tuple[Optional[str], str]:
        """Check the server's response head: ``(problem, "")`` or ``(None, chosen_protocol)``."""
        lines = head.split("\r\n")
        status = lines[0].split(" ", 2)
        if len(status) < 2 or not status[0].startswith("HTTP/1.1"):
            return f"malformed status line {lines[0]!r}", ""
        if status[1] != "101":
            return f"unexpected response code {lines[0]!r}", ""
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                return f"malformed header line {line!r}", ""
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        if headers.get("upgrade", "").lower() != "websocket":
            return "'Upgrade' header is missing or not 'websocket'", ""
        if "upgrade" not in [t.strip().lower() for t in headers.get("connection", "").split(",")]:
            return "'Connection' header is missing or has no 'Upgrade' token", ""
        digest = hashlib.sha1((self._handshake_key + _GUID).encode("ascii")).digest()
        if headers.get("sec-websocket-accept") != base64.b64encode(digest).decode("ascii"):
            return "incorrect 'Sec-WebSocket-Accept' header value", ""
        if "sec-websocket-extensions" in headers:
            return "the server accepted an extension that was not offered", ""
        chosen = headers.get("sec-websocket-protocol")
        if chosen is not None and chosen not in self._protocols:
            return f"the server chose subprotocol {chosen!r}, which was not offered", ""
        if chosen is None and self._protocols:
            return "subprotocols were offered but the server chose none", ""
        return None, chosen or ""

    def _fail_handshake(self, message: str) -> None:
        exc = ConnectionFailed(
            f"WebSocket handshake with {self.url} failed: {message}",
            SocketError.ConnectionRefusedError,
        )
        self._fail(exc, None)

    def _opened(self, protocol: str) -> None:
        self._cancel_timers()
        with self._cond:
            if self._state != ReadyState.CONNECTING:
                closing = True
            else:
                closing = False
                # Set together with the state, as the browser does in one task: another thread
                # never sees a protocol while readyState is still CONNECTING.
                self._protocol = protocol
                self._state = ReadyState.OPEN
                self._ever_opened = True
                self._cond.notify_all()
        if closing:  # close() was called while the handshake was finishing
            self._fail(
                ConnectionFailed(
                    "WebSocket is closed before the connection is established",
                    SocketError.OperationError,
                ),
                None,
            )
            return
        _sessions.register_open(self)
        self._last_rx = time.monotonic()
        if self._ping_interval is not None:
            self._ping_timer = self._loop.call_later(self._ping_interval, self._send_ping)
        self._emit("open", (), (Event("open", target=self),))

    def _on_close_frame(self, code: int, reason: str) -> None:
        self._close_received = (code, reason)
        with self._lock:
            if self._state == ReadyState.OPEN:
                self._state = ReadyState.CLOSING
        transport = self._transport
        if transport is None:
            return
        if not self._close_sent:
            self._flush_outbox()
            self._close_sent = True
            transport.write(build_close(None if code == 1005 else code))
        # The server closes the TCP connection first (RFC 6455 7.1.1); don't wait forever.
        self._set_timer(self._close_timeout, self._on_close_timeout)

    def eof_received(self) -> None:
        pass

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if self._finalized:
            return
        if self._failure is None:
            if not self._ever_opened:
                cause = exc or ConnectionFailed(
                    "the server closed the connection during the handshake",
                    SocketError.RemoteHostClosedError,
                )
                self._failure = cause
                self._last_error = cause
            elif self._close_received is None:
                cause = exc or ConnectionFailed(
                    "the connection was closed without a close frame",
                    SocketError.RemoteHostClosedError,
                )
                # Recorded for debugging, but no error event: Chromium fires none when the TCP
                # connection drops (FIN or RST) while OPEN, which is not "failing the
                # connection" in RFC 6455 terms (tests/parity/fixtures record what it did).
                self._last_error = cause
        self._finalize()

    # -- timers ----------------------------------------------------------------------------

    def _set_timer(self, delay: float, callback: Callable[[], None]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(delay, callback)

    def _cancel_timers(self) -> None:
        for timer in (self._timer, self._ping_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._ping_timer = None

    def _send_ping(self) -> None:
        transport = self._transport
        if self._finalized or transport is None or self._close_sent or self._ping_interval is None:
            return
        sent_at = time.monotonic()
        transport.write(build_frame(PING, b""))
        if self._ping_timeout is not None:
            self._loop.call_later(self._ping_timeout, self._check_alive, sent_at)
        self._ping_timer = self._loop.call_later(self._ping_interval, self._send_ping)

    def _check_alive(self, sent_at: float) -> None:
        if self._finalized or self._last_rx >= sent_at:
            return
        logger.debug(
            "%r: no data for %s s after a ping; failing the connection", self, self._ping_timeout
        )
        exc = ConnectionFailed(
            f"no reply within {self._ping_timeout} s of a ping", SocketError.SocketTimeoutError
        )
        self._fail(exc, None)
