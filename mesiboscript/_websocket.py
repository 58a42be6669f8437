"""``WebSocket``: the browser's WebSocket for Python scripts, plus Dirigible's and ArozOS's methods.

The connection itself is a :class:`~mesiboscript._wslink.WebSocketLink` (a transport driving the
sans-I/O core, which owns the ready state and decides how the connection ends: one writer, one
first cause, exactly one close event). This class is the browser's face of it: events and
listeners, the inbox that waits for a late handler or ``read()``, ``bufferedAmount`` and the
Dirigible/ArozOS methods. It shares one lock with its link, so ``readyState`` is the core's.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any, Callable, ClassVar, NamedTuple, Optional, Union

from . import _lifetime
from ._condition import Condition
from ._constants import ReadyState
from ._events import (
    ONCLOSE_DOC,
    ONERROR_DOC,
    ONMESSAGE_DOC,
    ONOPEN_DOC,
    CloseData,
    CloseHandler,
    ErrorEvent,
    ErrorHandler,
    Event,
    MessageHandler,
    OpenHandler,
)
from ._eventtarget import DOMEventTarget, EventHandler
from ._exceptions import ConnectionClosed, InvalidStateError, socket_error_for
from ._inbox import Inbox, not_on_loop
from ._links import LinkEnd
from ._loop import Loop, get_loop
from ._proxy import check_proxy_option
from ._tls import make_context, proxy_context
from ._validation import ParsedURL, check_close, check_header, parse_protocols, parse_url
from ._wslink import DEFAULT_MAX_SIZE, WebSocketLink
from .sansio.deflate import DeflateOptions
from .sansio.frames import BINARY, TEXT

__all__ = [
    "DEFAULT_MAX_SIZE",
    "WebSocket",
    "go_away",
    "read_nowait",
    "send_written",
    "watch_inbox",
]

# Messages waiting for a handler or read(): past the high-water mark the socket is not read
# (TCP backpressure reaches the server); reading resumes under the low-water mark.
_HIGH_WATER_BYTES = 1024 * 1024
_HIGH_WATER_COUNT = 4096
# read() reading the socket itself waits this long at most per look (and then looks again at
# the connection's state: a socket closed meanwhile does not end a wait for it).
_READ_SLICE = 0.1
_CONNECTING = ReadyState.CONNECTING  # a global: cheaper than the enum's attribute per send()
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


class _Given(NamedTuple):
    """What ``WebSocket(other)`` copies from ``other``: its options as given."""

    protocols: list[str]
    headers: dict[str, str]
    origin: Optional[str]
    ssl_context: Optional[ssl.SSLContext]
    proxy: Union[bool, str, None]
    compression: tuple[Optional[str], Optional[Mapping[str, Any]]]


_DEFAULTS = _Given([], {}, None, None, None, ("deflate", None))  # shared: never changed


@_lifetime.session_type
class WebSocket(DOMEventTarget):
    """A WebSocket client with the browser's (WHATWG) semantics.

    Handlers (attributes or constructor keywords; they run on the library's I/O thread, and one
    that raises is logged on the ``mesiboscript`` logger, never turned into ``onerror``):

    - ``onopen()``: the connection is open.
    - ``onmessage(event)``: a :class:`MessageData`; ``event.data`` is ``str`` for a text message,
      ``bytes`` for a binary one.
    - ``onerror(error)``: the connection failed; ``error`` is a :class:`SocketError` member
      (``error.name``, ``error.message``); ``onclose`` follows.
    - ``onclose(event)``: a :class:`CloseData` (``code``, ``reason``, ``wasClean``), once.

    ``addEventListener(type, listener)`` adds listeners that get event objects, as in a browser.
    Assigning an unknown handler (``ws.onOpen = f``) raises ``AttributeError``. If the connection
    fails while no ``onerror``/``onclose`` handler or listener is set, one WARNING on the
    ``mesiboscript`` logger names the URL and the cause.

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
        max_size: largest message accepted (also after decompression); a bigger one closes the
            connection with 1009.
        compression: ``"deflate"`` (the default) offers permessage-deflate as Chromium does;
            ``None`` offers nothing.
        compression_options: the memory and CPU compression spends, as a dict with any of
            ``client_max_window_bits`` (8..15, default 15), ``server_max_window_bits`` (8..15,
            asked of the server; default: not asked), ``mem_level`` (1..9, default 8) and
            ``level`` (-1..9, default -1: zlib's 6). docs/compression.md gives the cost of each.
        proxy: ``None`` (default): from the environment as curl reads it (``ws_proxy``, else
            ``http_proxy``, else ``all_proxy`` for ws://; ``wss_proxy``, ``https_proxy``,
            ``all_proxy`` for wss://; ``no_proxy`` honoured); ``False``: none; or a URL
            ``http://``, ``https://``, ``socks4://``, ``socks4a://``, ``socks5://``,
            ``socks5h://`` with optional ``user:pass@``. TLS to an ``https://`` proxy trusts
            what ``cafile``/``ssl_context`` trust.
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

    onopen: EventHandler[OpenHandler] = EventHandler(doc=ONOPEN_DOC)
    onmessage: EventHandler[MessageHandler] = EventHandler(doc=ONMESSAGE_DOC)
    onerror: EventHandler[ErrorHandler] = EventHandler(doc=ONERROR_DOC)
    onclose: EventHandler[CloseHandler] = EventHandler(doc=ONCLOSE_DOC)

    # What readyState says inside a handler on the I/O thread, whenever the event is delivered.
    _STATE_AT_EVENT: ClassVar[dict[str, Any]] = {
        "open": ReadyState.OPEN,
        "message": ReadyState.OPEN,
        "error": ReadyState.CLOSED,
        "close": ReadyState.CLOSED,
    }

    # Class-level defaults, set on an instance only when they change: each attribute set in the
    # constructor costs 0.3 us (the class's __setattr__ checks on* names) and a slot in every
    # connection's dict.
    _id: Optional[str] = None  # made by getId()
    _futures: Optional[set[Future[None]]] = None  # made by the first send that has one
    _close_dispatched = False
    _binary_type = "blob"
    _last_error: Optional[BaseException] = None
    _given = _DEFAULTS  # the options as given, for WebSocket(other)

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
        proxy: Union[bool, str, None] = None,
        compression: Optional[str] = "deflate",
        compression_options: Optional[Mapping[str, Any]] = None,
        onopen: Optional[OpenHandler] = None,
        onmessage: Optional[MessageHandler] = None,
        onerror: Optional[ErrorHandler] = None,
        onclose: Optional[CloseHandler] = None,
    ) -> None:
        if isinstance(url, WebSocket):
            other: WebSocket = url
            url = other.url
            given = other._given
            protocols = given.protocols if protocols is None else protocols
            headers, origin = headers or given.headers, origin or given.origin
            ssl_context = ssl_context or given.ssl_context
            proxy = given.proxy if proxy is None else proxy
            if compression == "deflate" and compression_options is None:  # not given: the other's
                compression, compression_options = given.compression
        self._parsed: ParsedURL = parse_url(url)
        protocol_list = parse_protocols(protocols)
        headers = dict(headers or {})
        header_lines = [check_header(k, v) for k, v in headers.items()]
        if origin is not None:
            check_header("Origin", origin)
        if self._parsed.userinfo:
            token = base64.b64encode(self._parsed.userinfo.encode()).decode("ascii")
            header_lines.append(("Authorization", f"Basic {token}"))
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
        check_proxy_option(proxy)
        deflate = DeflateOptions.from_options(compression, compression_options)
        if (
            protocol_list
            or headers
            or origin is not None
            or ssl_context is not None
            or proxy is not None
            or compression != "deflate"
            or compression_options is not None
        ):
            self._given = _Given(
                protocol_list,
                headers,
                origin,
                ssl_context,
                proxy,
                (compression, compression_options),
            )
        tls = make_context(ssl_context, cafile) if self._parsed.secure else None
        proxy_tls = proxy_context(tls, ssl_context, cafile)

        # Shared with user threads, under _lock.
        # Reentrant: a handler's sys.exit() reaches the main thread as an exception that can
        # land between a `with self._cond:`'s acquire and its block, leaving the lock taken;
        # the exit hook (same thread) must still get it to close with 1001.
        self._lock = threading.RLock()
        self._cond = Condition(self._lock)  # costs nothing until read()/upgrade() waits
        # Set once the close event has been dispatched: upgrade() reports a failure after its
        # error and close handlers ran, so what they print comes before what the caller prints.
        # (_close_dispatched, a class-level default until then.)
        # Messages for read() or a late onmessage; past the high water, the socket is not read.
        self._inbox = Inbox(self._cond, _HIGH_WATER_BYTES, _HIGH_WATER_COUNT)
        self._loop: Loop = get_loop()
        # Handlers, listeners, one-shot memory and late delivery (a late onmessage gets the inbox).
        self._init_events(self._loop, self._lock, self._inbox)

        for type, handler in (
            ("open", onopen),
            ("message", onmessage),
            ("error", onerror),
            ("close", onclose),
        ):
            if handler is not None:
                self._set_event_handler(type, handler)

        self._link = WebSocketLink(
            self._loop,
            _Listener(self),
            self._parsed,
            display_url=self._parsed.display,
            protocols=tuple(protocol_list),
            headers=tuple(header_lines),
            origin=origin,
            tls=tls,
            proxy=proxy,
            proxy_tls=proxy_tls,
            connect_timeout=connect_timeout,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_size=max_size,
            compression=deflate,
            lock=self._lock,
            cond=self._cond,
        )
        _lifetime.acquire(self, self._shutdown)
        self._loop.call_soon_threadsafe(self._link.start)

    def __repr__(self) -> str:
        return f"<WebSocket {self._parsed.display} {self._link.state.name}>"

    # -- properties ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The URL, as parsed and serialised."""
        return self._parsed.url

    @property
    def readyState(self) -> ReadyState:
        """CONNECTING, OPEN, CLOSING or CLOSED (as of the event, inside a handler)."""
        state = self._state_at_event()
        return self._link.state if state is None else state

    @property
    def protocol(self) -> str:
        """The subprotocol the server chose; ``""`` before open or if none."""
        return self._link.core.protocol

    @property
    def extensions(self) -> str:
        """The server's ``Sec-WebSocket-Extensions`` value as sent (``""``: none agreed)."""
        return self._link.core.extensions

    @property
    def bufferedAmount(self) -> int:
        """Bytes of application data queued by ``send()`` and not yet written to the socket."""
        return self._link.buffered

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

    def _on_message(self, link: object, data: Union[str, bytes]) -> None:
        """Each message the link reads (the listener's ``link_data``, bound to this)."""
        if self._deliver_message(data):  # kept in the inbox past its mark: stop reading
            self._link.pause_reading()

    def _maybe_resume(self) -> None:
        if self._inbox.resume():
            self._inbox_resumed()

    def _inbox_resumed(self) -> None:
        self._link.resume_reading()

    # -- sending ---------------------------------------------------------------------------

    def send(self, data: SendData, compress: bool = True) -> None:
        """Queue a message: ``str`` (and ``dict``/``list`` as JSON) as text, bytes-like as binary.

        With permessage-deflate agreed the message is compressed; ``compress=False`` sends this
        one as it is (data that is compressed already: images, archives).

        Raises:
            InvalidStateError: while CONNECTING. Once closing has begun, nothing is sent and
                nothing is raised (the standard's rule); ``bufferedAmount`` still grows.
            TypeError: for other types.
        """
        link = self._link
        if link.core.state is _CONNECTING:
            raise InvalidStateError("send() called while the WebSocket is still CONNECTING")
        if type(data) is str:
            try:
                payload = data.encode("utf-8")
            except UnicodeEncodeError:
                opcode, payload = _encode(data)
            else:
                opcode = TEXT
        else:
            opcode, payload = _encode(data)
        link.send_threadsafe(opcode, payload, None, compress)

    def _queue(
        self, opcode: int, payload: bytes, future: Optional[Future[None]], compress: bool = True
    ) -> bool:
        if future is not None:
            with self._lock:
                if self._futures is None:
                    self._futures = set()
                self._futures.add(future)
        return self._link.send_threadsafe(opcode, payload, future, compress)

    def _written(self, future: Any) -> None:
        """The message sent with this Future is wholly in the kernel."""
        if self._futures is not None:
            self._futures.discard(future)
        if not future.done():
            future.set_result(None)

    # -- Dirigible ------------------------------------------------------------------------

    def getId(self) -> str:
        """A stable, unique id for this session."""
        with self._lock:
            if self._id is None:  # made at the first call: most connections never ask
                self._id = uuid.uuid4().hex
            return self._id

    def sendTextAsync(self, text: str) -> Future[None]:
        """Queue a text message; the Future completes once it is written to the socket, or fails
        with the reason (``InvalidStateError`` if not open, ``ConnectionClosed`` if it drops)."""
        if not isinstance(text, str):
            raise TypeError(f"sendTextAsync() takes a str, not {type(text).__name__}")
        return self._send_future(TEXT, text.encode("utf-8"))

    def _send_future(self, opcode: int, payload: bytes) -> Future[None]:
        future: Future[None] = Future()
        future.set_running_or_notify_cancel()
        state = self._link.state
        if state is not ReadyState.OPEN:
            future.set_exception(InvalidStateError(f"the session is {state.name}"))
            return future
        if not self._queue(opcode, payload, future):
            with self._lock:
                if self._futures is not None:
                    self._futures.discard(future)
            future.set_exception(InvalidStateError("the session closed"))
        return future

    def sendText(self, text: str) -> None:
        """Send a text message and return once it is written to the socket.

        Inside a handler (on the I/O thread, which does the writing) it cannot wait for itself:
        it writes what the kernel takes at once and returns; the rest follows after the handler,
        in order, as for ``send()``.

        Raises:
            InvalidStateError: if the session is not open.
            ConnectionClosed: if the connection drops before the frame is written.
        """
        state = self._link.state
        if state is not ReadyState.OPEN:
            raise InvalidStateError(f"sendText() on a session that is {state.name}")
        future = self.sendTextAsync(text)
        if self._loop.in_loop_thread():
            self._link.flush_now()
            if future.done():
                future.result()
            return
        future.result()

    # -- ArozOS ---------------------------------------------------------------------------

    def upgrade(self, timeout: Optional[float] = None) -> bool:
        """Wait for the connection to open: True once open, False on failure or timeout (the
        attempt is then abandoned). Never raises for network failures.

        A connection that opened and has closed since is True only while messages it received
        wait to be read (``read()`` returns them, then ``False``).
        """
        not_on_loop(self._loop, "upgrade", "onopen")
        link = self._link
        with self._cond:
            self._cond.wait_for(
                lambda: (
                    link.state is not ReadyState.CONNECTING
                    and (link.core.opened or self._close_dispatched)
                ),
                timeout,
            )
            state = link.state
            opened = link.core.opened
            waiting = len(self._inbox)
        if state is ReadyState.CONNECTING:
            self.close()
            return False
        if not opened:
            # A handler set after the failure gets its event late, from the I/O thread: let
            # that delivery (queued before this) run too before reporting.
            delivered = threading.Event()
            self._loop.call_soon_threadsafe(delivered.set)
            delivered.wait(timeout)
        return opened and (state is not ReadyState.CLOSED or waiting > 0)

    def read(self, timeout: Optional[float] = None) -> Union[str, bytes, bool, None]:
        """The next message (``str``/``bytes``); ``None`` on timeout; ``False`` once closed and
        every message has been read."""
        if self._loop.in_loop_thread():
            not_on_loop(self._loop, "read", "onmessage")
        link = self._link
        inbox = self._inbox
        if not inbox.items and not self._message_listened():
            # No handler takes the messages: read the socket on this thread (no hand-off to
            # the I/O thread and back) while it may, and wait for the I/O thread else.
            deadline = None
            wait = _READ_SLICE
            if timeout is not None:
                deadline = time.monotonic() + timeout
                if timeout < wait:
                    wait = timeout if timeout > 0 else 0.0
            keep = self._keep_read
            while True:
                got = link.read_here(wait, keep)
                if type(got) is str or type(got) is bytes:
                    return got  # the one message read, handed over without the inbox
                if inbox.items:
                    break
                if got is None or self._message_listened():
                    if deadline is not None:
                        timeout = max(0.0, deadline - time.monotonic())
                    break
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if got is False and left <= 0:
                        return None
                    if left < _READ_SLICE:
                        wait = left if left > 0 else 0.0
        data = inbox.read(timeout, lambda: link.state is ReadyState.CLOSED)
        if inbox.paused:
            self._loop.call_soon_threadsafe(self._maybe_resume)
        return data

    def _keep_read(self, messages: list[Union[str, bytes]]) -> object:
        """Messages read() read on its own thread (the transport's read gate held, so nothing
        else is kept meanwhile): the first handed back to it when nothing waits before it and
        nothing else takes messages (no handler, no watcher); the others kept in the inbox, in
        order. What to hand back, else True."""
        inbox = self._inbox
        first: object = True
        if not inbox.items and inbox.watch is None and not self._message_listened():
            first = messages[0]
            if len(messages) == 1:
                return first
            messages = messages[1:]
        pause = False
        for data in messages:
            pause = self._keep_message(data) or pause
        if pause:
            self._loop.call_soon_threadsafe(self._link.pause_reading)
        return first

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
            state = self._link.state
            seen = self._closing_at_event(ReadyState.CLOSING)
            if seen is not None:
                state = min(state, seen)  # what the running handler believes
            if state >= ReadyState.CLOSING:
                return
        self._link.close_threadsafe(code, reason)

    # -- what the link reports (I/O thread) -------------------------------------------------

    def _opened(self) -> None:
        _lifetime.open_session(self)
        self._emit("open", (), (Event("open", target=self),))

    def _ended(self, end: LinkEnd) -> None:
        self._last_error = end.cause
        _lifetime.closed_session(self)
        with self._lock:
            futures = list(self._futures or ())
            self._futures = None
        for future in futures:
            if not future.done():
                future.set_exception(
                    ConnectionClosed("the connection closed", end.code, end.reason)
                )
        if end.failure is not None:
            error = socket_error_for(end.failure)
            self._warn_if_unheard(
                ("error", "close"),
                "WebSocket connection to %s failed: %s (%s); no onerror or onclose handler is set",
                self._parsed.display,
                end.failure,
                error.name,
            )
            self._emit("error", (error,), (ErrorEvent(error, end.failure, target=self),))
        self._emit("close", (CloseData(end.code, end.reason, end.was_clean, target=self),))
        with self._cond:
            self._close_dispatched = True
            self._cond.notify_all()
        _lifetime.release(self)


def watch_inbox(ws: WebSocket, callback: Optional[Callable[[], None]]) -> None:
    """Call ``callback()`` on the I/O thread each time a message is kept in ``ws``'s inbox (no
    message handler is set): how a reader that must not block a thread (``mesiboscript.aio``)
    learns that ``read(0)`` has something, with the inbox's backpressure kept. A function, not a
    method: ``help(WebSocket)`` shows the browser's API only."""
    ws._inbox.watch = callback


def read_nowait(ws: WebSocket) -> Union[str, bytes, bool, None]:
    """The next message waiting in ``ws``'s inbox; ``None`` if none waits; ``False`` once closed
    and drained. Never waits and never reads the socket on the calling thread (``read()`` may):
    what arrives is read by the I/O thread, which :func:`watch_inbox` tells about."""
    link = ws._link
    data = ws._inbox.read(0, lambda: link.state is ReadyState.CLOSED)
    if ws._inbox.paused:
        ws._loop.call_soon_threadsafe(ws._maybe_resume)
    return data


def send_written(ws: WebSocket, data: SendData) -> Future[None]:
    """``ws.send(data)`` with a Future that completes once the message is wholly written to the
    socket (or fails, as ``sendTextAsync``'s): how ``mesiboscript.aio`` waits for a drain."""
    opcode, payload = _encode(data)
    return ws._send_future(opcode, payload)


def go_away(ws: WebSocket) -> None:
    """Close ``ws`` with 1001 (going away), a code ``close()`` keeps from scripts: what
    ``mesiboscript.aio`` does to the connections of an event loop that is closing."""
    ws._shutdown(1001, "")


class _Listener:
    """What the link reports, forwarded to its ``WebSocket`` (which keeps these off its public
    surface: ``help(WebSocket)`` shows the browser's API only)."""

    __slots__ = ("link_data", "ws")

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        # Called for every message: the WebSocket's own method, with no forwarding frame.
        self.link_data: Callable[[object, Union[str, bytes]], None] = ws._on_message

    def link_up(self, link: object) -> None:
        self.ws._opened()

    def link_written(self, link: object, token: object) -> None:
        self.ws._written(token)

    def link_down(self, link: object, end: LinkEnd) -> None:
        self.ws._ended(end)
