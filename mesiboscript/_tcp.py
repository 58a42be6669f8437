"""``Socket``: Mesibo's chatbot socket for Python scripts, over ``sock://``, ``socks://``, ``ws://``
and ``wss://`` with one callback API.

``sock``/``socks`` run on the shared selector loop through :class:`Transport` (no thread per
socket); ``ws``/``wss`` wrap this library's :class:`WebSocket`, one per connection.

Reconnecting (``keepalive=True``): after any end of a connection that ``close()`` did not ask for
(a reset, the peer's close, a failed ping), the socket goes back to CONNECTING and tries again after
``retry_delay`` (0.1 s), doubling up to ``max_retry_delay`` (30 s), each delay ±20 % jitter; a
connection that stayed up 10 s resets the delay. ``onconnect`` fires for every connection;
``onclose`` fires once, when ``close()`` is called or reconnecting gives up: ``max_attempts``
failed attempts in a row, or a certificate that fails verification (retrying cannot fix it).
``last_error`` keeps the last cause. Failed first attempts are retried the same way.

Reading from a script: ``ondata`` is required, and ``read()`` returns only what
:meth:`Socket.queue` kept. Set ``s.ondata = Socket.queue`` to read everything with ``read()``, or
call ``s.queue(data)`` from a handler for what it wants ``read()`` to see.

What happens to sent data (documented contract, tested in ``tests/test_tcp.py``):

- ``send()`` is safe from any thread. Data goes out in the order it was sent, after the handler
  that sent it returns (as ``WebSocket.send`` does).
- While there is no connection (before ``open()``, while connecting, and while a ``keepalive``
  socket reconnects) sent data is *held*, up to ``max_buffer`` bytes (then ``send`` raises
  :class:`SendBufferFull`), and written in order as soon as a connection is up, before
  ``onconnect`` runs.
- When a connection drops, data the kernel had not yet taken is held again, ahead of newer data,
  and a ``keepalive`` socket writes it on the next connection. Data the kernel took may be lost
  with the connection: TCP acknowledges nothing to the application. ``onwrite(s, n)`` reports every
  byte the kernel took, connection by connection (on ``ws``/``wss``: each message, once its whole
  frame is written), so a script that needs end-to-end delivery can count and resynchronise in
  ``onconnect``. Without ``keepalive`` the socket closes instead, and what it held is dropped.
- Nothing is delivered twice. On ``sock``/``socks`` the outgoing data is one byte stream, each
  byte handed to the kernel once: a ``send()`` cut by a drop goes on with its unwritten tail on
  the next connection. On ``ws``/``wss`` a message whose frame was not completely written is sent
  whole on the next connection (the old peer cannot have received it: the frame was incomplete).
- ``close()`` writes everything sent before it, then closes. If no connection is up, a connection
  attempt in progress is allowed to finish so held data is written; otherwise (or when the attempt
  fails, or when ``upgrade()`` times out) held data is dropped with a warning on the
  ``mesiboscript`` logger. ``send()`` after ``close()`` raises :class:`InvalidStateError`.
"""

from __future__ import annotations

import functools
import random
import ssl
import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import Any, Callable, Optional, Union

from ._constants import ReadyState, SocketError
from ._events import CloseData, MessageData
from ._eventtarget import EventHandler, EventTarget
from ._exceptions import ConnectionFailed, InvalidStateError
from ._inbox import Inbox, not_on_loop
from ._loop import Loop, TimerHandle, get_loop, logger
from ._protocol import BINARY, TEXT, build_frame
from ._state import parse_url
from ._tls import make_context
from ._transport import Buffer, Protocol, Transport
from ._websocket import WebSocket

__all__ = ["SendBufferFull", "Socket"]

_STREAM_SCHEMES = ("sock", "socks")
_WS_SCHEMES = ("ws", "wss", "http", "https")
# read(): past this many bytes queued by Socket.queue, the socket is not read (TCP backpressure
# reaches the peer); reading resumes below a quarter of it.
_HIGH_WATER = 1024 * 1024
# A connection that stayed up this long resets the reconnect backoff to its first delay.
_STABLE_AFTER = 10.0
_JITTER = 0.2

Handler = Optional[Callable[..., Any]]
Data = Union[str, bytes]


class SendBufferFull(InvalidStateError, BufferError):
    """``send()`` while disconnected would hold more than ``max_buffer`` bytes."""


class _Chunk:
    """One ``send()`` on its way: its payload (bytes, or a frame's payload for ws), its size in
    bytes, the opcode for ws (``None`` for streams) and, once queued on a WebSocket, its Future."""

    __slots__ = ("future", "opcode", "payload", "size")

    def __init__(self, payload: Buffer, opcode: Optional[int] = None) -> None:
        self.payload = payload
        self.size = len(payload)
        self.opcode = opcode
        self.future: Optional[Future[None]] = None


class _Link(Protocol):
    """One ``sock``/``socks`` connection attempt: forwards its transport's events to the socket
    while it is the current attempt, so a stale transport can never touch a newer connection."""

    def __init__(self, owner: Socket) -> None:
        self.owner = owner
        self.transport: Optional[Transport] = None

    def connection_made(self) -> None:
        self.owner._link_made(self)

    def data_received(self, data: bytes) -> None:
        self.owner._link_data(self, data)

    def write_done(self, token: Any) -> None:
        self.owner._link_written(self, token)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.owner._link_lost(self, exc)


class Socket(EventTarget):
    """Mesibo's ``Socket``: a TCP, TLS or WebSocket connection with one callback API.

    Set the properties and handlers, then call :meth:`open`::

        s = Socket("sock://example.com:80")
        s.onconnect = lambda s: s.send("GET / HTTP/1.1\\r\\nHost: example.com\\r\\n\\r\\n")
        s.ondata = lambda s, data: print(data)
        s.onclose = lambda s: print("closed")
        s.open()

    Handlers get the socket first and run on the library's I/O thread; an exception they raise is
    logged on the ``mesiboscript`` logger and nothing else stops. ``data`` is ``bytes`` as it
    arrives for ``sock``/``socks``, and each message (``str`` or ``bytes``) for ``ws``/``wss``.

    Args:
        url: ``sock://host:port`` (TCP), ``socks://host:port`` (TLS), ``ws://`` or ``wss://``.
        ssl_context: an :class:`ssl.SSLContext` for TLS (default: certifi's CA bundle, hostname
            verified).
        cafile: trust this CA bundle instead of certifi's (a private CA).
        connect_timeout: seconds allowed for each connection attempt (DNS, TCP, TLS, upgrade).
        close_timeout: ``close()`` gives up flushing when the peer takes nothing for this long.
        max_buffer: bytes ``send()`` may hold while there is no connection.
        max_attempts: with ``keepalive``, connection attempts in a row that may fail before the
            socket gives up and closes (``None``: never give up).
        retry_delay, max_retry_delay: the reconnect backoff: the first delay, doubling up to the
            maximum, each with ±20 % jitter.
        ping_interval: ``ws``/``wss`` with ``keepalive``: seconds between pings (default 20).
        onconnect, ondata, onwrite, onclose: the handlers, as keywords.

    Raises:
        ValueError: a bad URL, an unknown scheme, a ``sock``/``socks`` URL without a port, a path
            on a ``sock``/``socks`` URL, or a bad option.
    """

    CONNECTING = ReadyState.CONNECTING
    OPEN = ReadyState.OPEN
    CLOSING = ReadyState.CLOSING
    CLOSED = ReadyState.CLOSED

    onconnect = EventHandler()
    ondata = EventHandler()
    onwrite = EventHandler()
    onclose = EventHandler()

    def __init__(
        self,
        url: str,
        *,
        ssl_context: Optional[ssl.SSLContext] = None,
        cafile: Optional[str] = None,
        connect_timeout: Optional[float] = 30.0,
        close_timeout: float = 10.0,
        max_buffer: int = 1024 * 1024,
        max_attempts: Optional[int] = None,
        retry_delay: float = 0.1,
        max_retry_delay: float = 30.0,
        ping_interval: Optional[float] = None,
        onconnect: Handler = None,
        ondata: Handler = None,
        onwrite: Handler = None,
        onclose: Handler = None,
    ) -> None:
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, not {type(url).__name__}")
        scheme = url.partition(":")[0].strip().lower()
        if scheme in _WS_SCHEMES:
            parsed = parse_url(url)
            self._stream = False
            self._url = parsed.url
        else:
            parsed = parse_url(
                url, schemes=_STREAM_SCHEMES, secure_schemes=("socks",), require_port=True
            )
            if parsed.resource != "/" or parsed.userinfo:
                raise ValueError(f"invalid URL {url!r}: {parsed.scheme}:// takes only host:port")
            self._stream = True
            host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
            self._url = f"{parsed.scheme}://{host}:{parsed.port}"
        self._parsed = parsed
        for name, value in (
            ("connect_timeout", connect_timeout),
            ("close_timeout", close_timeout),
            ("retry_delay", retry_delay),
            ("max_retry_delay", max_retry_delay),
            ("ping_interval", ping_interval),
        ):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        if not isinstance(max_buffer, int) or max_buffer < 0:
            raise ValueError(f"max_buffer must be an int >= 0, not {max_buffer!r}")
        if max_attempts is not None and (not isinstance(max_attempts, int) or max_attempts < 1):
            raise ValueError(f"max_attempts must be None or an int >= 1, not {max_attempts!r}")
        if ssl_context is not None and cafile is not None:
            raise ValueError("pass either ssl_context or cafile, not both")
        self._ssl_context = ssl_context
        self._cafile = cafile
        self._connect_timeout = connect_timeout
        self._close_timeout = close_timeout
        self._max_buffer = max_buffer
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._ping_interval = ping_interval
        self._keepalive = False
        self._verify_host = True
        self._enable_ssl = parsed.secure

        # Shared with user threads, under _lock.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._state = ReadyState.CONNECTING
        self._opened = False
        self._link_up = False  # a connection is up and takes writes
        self._ever_connected = False
        self._held: deque[_Chunk] = deque()
        self._held_bytes = 0
        self._inflight_bytes = 0  # handed to the transport, not yet to the kernel
        self._flush_scheduled = False
        # What Socket.queue kept for read(); past the high water, the socket is not read.
        self._inbox = Inbox(self._cond, _HIGH_WATER)
        self._last_error: Optional[BaseException] = None

        # I/O thread only.
        self._loop: Loop = get_loop()

        # Handlers (any thread): onclose is one-shot (a late one still hears it), the others are
        # called for each connection, chunk and write.
        self._init_events(self._loop, self._lock)
        self.onconnect = onconnect
        self.ondata = ondata
        self.onwrite = onwrite
        self.onclose = onclose
        self._tls: Optional[ssl.SSLContext] = None
        self._link: Optional[_Link] = None
        self._ws: Optional[WebSocket] = None
        self._inflight: deque[_Chunk] = deque()
        self._finalized = False
        self._failures = 0  # attempts in a row that did not connect
        self._backoff = 0  # how many times the retry delay has doubled
        self._connected_at = 0.0
        self._connect_timer: Optional[TimerHandle] = None
        self._retry_timer: Optional[TimerHandle] = None
        self._close_timer: Optional[TimerHandle] = None
        self._close_progress = -1

    def __repr__(self) -> str:
        return f"<Socket {self._url} {ReadyState(self._state).name}>"

    # -- properties ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._url

    @property
    def readyState(self) -> ReadyState:
        """CONNECTING (before ``open()``, while connecting or reconnecting), OPEN, CLOSING
        (``close()`` is flushing) or CLOSED."""
        return self._state

    @property
    def bufferedAmount(self) -> int:
        """Bytes sent and not yet taken by the kernel (held, or queued on the connection)."""
        return self._held_bytes + self._inflight_bytes

    @property
    def last_error(self) -> Optional[BaseException]:
        """The exception behind the last failed attempt or lost connection, else ``None``."""
        return self._last_error

    def _settable(self, name: str) -> None:
        if self._opened or self._state == ReadyState.CLOSED:
            if name == "open()":
                raise InvalidStateError("open() may be called once; create a new Socket")
            raise InvalidStateError(f"set {name} before open()")

    @property
    def keepalive(self) -> bool:
        """A persistent connection: TCP keep-alive probes (pings on ws/wss) and, after an
        unexpected drop, reconnection with exponential backoff; ``onconnect`` fires again."""
        return self._keepalive

    @keepalive.setter
    def keepalive(self, value: bool) -> None:
        self._settable("keepalive")
        self._keepalive = bool(value)

    @property
    def verify_host(self) -> bool:
        """Check the server's certificate and host name (default). ``False`` turns both checks
        off, with a warning: anyone on the path can then read and change the data."""
        return self._verify_host

    @verify_host.setter
    def verify_host(self, value: bool) -> None:
        self._settable("verify_host")
        self._verify_host = bool(value)

    @property
    def enableSsl(self) -> bool:
        """TLS on a ``sock://`` (or ``ws://``) URL; always on for ``socks://`` and ``wss://``."""
        return self._enable_ssl

    @enableSsl.setter
    def enableSsl(self, value: bool) -> None:
        self._settable("enableSsl")
        if not value and self._parsed.secure:
            raise ValueError(f"{self._parsed.scheme}:// always uses TLS")
        self._enable_ssl = bool(value)

    # -- opening ---------------------------------------------------------------------------

    def open(self) -> None:
        """Start connecting; events follow on the I/O thread. A socket opens once.

        Raises:
            InvalidStateError: ``ondata`` is not set, or ``open()`` was already called, or the
                socket was closed.
            ValueError: ``verify_host = False`` with an ``ssl_context`` of your own (turn the
                checks off in that context instead).
        """
        if self.ondata is None:
            raise InvalidStateError("set ondata before open(): it is required")
        if not callable(self.ondata):
            raise TypeError("ondata must be callable")
        self._settable("open()")
        tls = None
        if self._enable_ssl:
            # Warns (UserWarning) when verify_host is False.
            tls = make_context(self._ssl_context, self._cafile, verify=self._verify_host)
        with self._lock:
            if self._opened or self._state == ReadyState.CLOSED:
                raise InvalidStateError("open() may be called once; create a new Socket")
            self._opened = True
            self._tls = tls
            # Under the lock: a close() from another thread is scheduled after the attempt.
            self._loop.acquire(self)
            self._loop.call_soon_threadsafe(self._attempt)

    def upgrade(self, timeout: Optional[float] = None) -> bool:
        """ArozOS: open if not yet opened, and wait until connected. True once connected; False
        on failure or timeout (a first connection still pending is then abandoned). Never raises
        for network failures."""
        not_on_loop(self._loop, "upgrade", "onconnect")
        if not self._opened:
            self.open()
        with self._cond:
            self._cond.wait_for(lambda: self._state != ReadyState.CONNECTING, timeout)
            state, ever = self._state, self._ever_connected
        if state == ReadyState.CONNECTING and not ever:
            self._close(abandon=True)
            return False
        return state == ReadyState.OPEN or (ever and state != ReadyState.CONNECTING)

    # -- sending ---------------------------------------------------------------------------

    def send(self, data: Union[str, bytes, bytearray, memoryview]) -> None:
        """Send data: ``str`` as UTF-8 (a text message on ws/wss), bytes-like as bytes (a binary
        message on ws/wss). Safe from any thread; see the module docs for what is held when
        there is no connection.

        Raises:
            InvalidStateError: after ``close()``, or once the socket has closed.
            SendBufferFull: with no connection up, holding it would exceed ``max_buffer``.
            TypeError: for other types.
        """
        chunk = self._encode(data)
        with self._lock:
            if self._state >= ReadyState.CLOSING:
                raise InvalidStateError(f"send() on a socket that is {self._state.name}")
            if self._stream and not chunk.size:
                return
            if not self._link_up and self._held_bytes + chunk.size > self._max_buffer:
                raise SendBufferFull(
                    f"no connection, and {self._held_bytes} bytes are held already: "
                    f"{chunk.size} more would exceed max_buffer={self._max_buffer}"
                )
            self._held.append(chunk)
            self._held_bytes += chunk.size
            if self._flush_scheduled or not self._link_up:
                return
            self._flush_scheduled = True
        self._loop.call_soon_threadsafe(self._flush_held)

    def _encode(self, data: object) -> _Chunk:
        if isinstance(data, str):
            try:
                payload = data.encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates become U+FFFD, as in a browser
                text = data.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
                payload = text.encode("utf-8")
            return _Chunk(payload, None if self._stream else TEXT)
        if isinstance(data, (bytes, bytearray, memoryview)):
            return _Chunk(bytes(data), None if self._stream else BINARY)
        raise TypeError(f"send() takes str or a bytes-like object, not {type(data).__name__}")

    # -- receiving for scripts -------------------------------------------------------------

    def queue(self, *args: Any) -> None:
        """Keep data for :meth:`read`: use ``Socket.queue`` (or ``s.queue``) as ``ondata``, or
        call ``s.queue(data)`` from your own ``ondata``. Only what is queued is read. Past 1 MiB
        of unread data the socket stops reading (backpressure) until ``read()`` catches up."""
        if not args:
            raise TypeError("queue() takes the data to keep")
        data = args[-1]
        if not isinstance(data, (str, bytes)):
            raise TypeError(f"queue() takes str or bytes, not {type(data).__name__}")
        if self._inbox.put(data):
            self._loop.call_soon_threadsafe(self._set_reading, False)

    def read(self, timeout: Optional[float] = None) -> Union[str, bytes, bool, None]:
        """ArozOS: the next chunk kept by :meth:`queue` (``bytes``; a message on ws/wss);
        ``None`` on timeout; ``False`` once the socket is closed and everything was read.

        ``ondata`` stays required: set ``s.ondata = Socket.queue`` for a script that reads.
        """
        not_on_loop(self._loop, "read", "ondata")
        data = self._inbox.read(timeout, lambda: self._state == ReadyState.CLOSED)
        if self._inbox.paused:
            self._loop.call_soon_threadsafe(self._maybe_resume)
        return data

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Write everything sent so far, then close; stops reconnecting. ``onclose`` follows.
        Safe from any thread and from handlers; a second call does nothing."""
        self._close(abandon=False)

    def _shutdown(self, code: int, reason: str) -> None:
        """Close at interpreter exit or Ctrl-C: flush an open connection, drop held data."""
        self._close(abandon=True, code=code, reason=reason)

    def _close(self, abandon: bool, code: int = 1000, reason: str = "") -> None:
        with self._lock:
            if self._state >= ReadyState.CLOSING:
                return
            if not self._opened:  # nothing to close: no events
                self._state = ReadyState.CLOSED
                self._cond.notify_all()
                return
            self._state = ReadyState.CLOSING
        self._loop.call_soon_threadsafe(self._begin_close, abandon, code, reason)

    def _begin_close(self, abandon: bool, code: int, reason: str) -> None:
        if self._finalized:
            return
        self._cancel(self._retry_timer)
        self._retry_timer = None
        self._set_reading(True)
        link, ws = self._link, self._ws
        if self._link_up:
            self._flush_held()
            if link is not None and link.transport is not None:
                link.transport.close()
                if self._link is link:
                    self._arm_close_timer()
            elif ws is not None:
                ws._shutdown(code, reason)
        elif (link is not None or ws is not None) and self._held and not abandon:
            pass  # the attempt goes on; connecting writes what is held, then closes
        elif link is not None and link.transport is not None:
            link.transport.abort()
        elif ws is not None:
            ws.close()
        else:
            self._finalize()

    def _arm_close_timer(self) -> None:
        link = self._link
        if link is None or link.transport is None:
            return
        self._close_progress = link.transport.pending_bytes
        self._close_timer = self._loop.call_later(self._close_timeout, self._check_close, link)

    def _check_close(self, link: _Link) -> None:
        transport = link.transport
        if link is not self._link or transport is None or transport.closed:
            return
        if transport.pending_bytes == self._close_progress:
            transport.abort(
                ConnectionFailed(
                    f"close(): the peer took no data for {self._close_timeout} s",
                    SocketError.SocketTimeoutError,
                )
            )
            return
        self._arm_close_timer()

    # -- I/O thread: attempts --------------------------------------------------------------

    def _attempt(self) -> None:
        self._retry_timer = None
        if self._finalized:
            return
        if self._state >= ReadyState.CLOSING and not self._held:
            self._finalize()  # closed before the first attempt, with nothing to write
            return
        if not self._stream:
            self._attempt_ws()
            return
        link = _Link(self)
        link.transport = Transport(
            self._loop,
            link,
            self._parsed.host,
            self._parsed.port,
            tls=self._tls,
            keepalive=self._keepalive,
        )
        self._link = link
        if self._connect_timeout is not None:
            self._connect_timer = self._loop.call_later(
                self._connect_timeout, self._on_connect_timeout, link
            )
        link.transport.start()

    def _on_connect_timeout(self, link: _Link) -> None:
        if link is self._link and link.transport is not None and not self._link_up:
            link.transport.abort(
                ConnectionFailed(
                    f"timed out after {self._connect_timeout} s connecting to {self._url}",
                    SocketError.SocketTimeoutError,
                )
            )

    def _connected(self) -> bool:
        """The connection is up: flush what is held, then onconnect (or close, if asked)."""
        self._cancel(self._connect_timer)
        self._connect_timer = None
        with self._cond:
            self._link_up = True
            self._ever_connected = True
            closing = self._state >= ReadyState.CLOSING
            if not closing:
                self._state = ReadyState.OPEN
            self._cond.notify_all()
        self._connected_at = time.monotonic()
        self._failures = 0
        if self._inbox.paused:  # read() is behind: a new connection waits for it too
            self._set_reading(False)
        self._flush_held()
        return closing

    def _link_made(self, link: _Link) -> None:
        if link is not self._link:
            return
        if self._connected():
            assert link.transport is not None
            link.transport.close()
            if self._link is link:
                self._arm_close_timer()
            return
        self._dispatch_event("connect", (self,))

    def _link_data(self, link: _Link, data: bytes) -> None:
        if link is self._link:
            self._deliver(data)

    def _link_written(self, link: _Link, token: Any) -> None:
        if link is not self._link:
            return
        inflight = self._inflight
        while inflight:  # in order: the transport completes writes first in, first out
            chunk = inflight.popleft()
            self._written(chunk.size)
            if chunk is token:
                break

    def _link_lost(self, link: _Link, exc: Optional[BaseException]) -> None:
        if link is not self._link:
            return
        self._link = None
        transport = link.transport
        assert transport is not None
        # The transport dropped what the kernel had not taken: the last `unsent` bytes of the
        # chunks in flight. Hold them again; report what the kernel took.
        unsent = transport.pending_bytes if self._link_up else 0
        again: list[_Chunk] = []
        taken = 0
        while self._inflight and unsent > 0:
            chunk = self._inflight.pop()
            if chunk.size <= unsent:
                again.append(chunk)
                unsent -= chunk.size
            else:
                taken = chunk.size - unsent
                again.append(_Chunk(memoryview(chunk.payload)[taken:]))
                unsent = 0
        taken += sum(chunk.size for chunk in self._inflight)  # none, unless marks were missed
        self._inflight.clear()
        again.reverse()
        self._link_down(exc, again, taken)

    # -- I/O thread: ws/wss ----------------------------------------------------------------

    def _attempt_ws(self) -> None:
        url = self._url
        if self._enable_ssl and not self._parsed.secure:
            host = f"[{self._parsed.host}]" if ":" in self._parsed.host else self._parsed.host
            url = f"wss://{host}:{self._parsed.port}{self._parsed.resource}"
        ping = self._ping_interval
        if ping is None and self._keepalive:
            ping = 20.0
        holder: list[WebSocket] = []
        ws = WebSocket(
            url,
            ssl_context=self._tls,
            connect_timeout=self._connect_timeout,
            ping_interval=ping,
            onopen=lambda: self._ws_open(holder[0]),
            onmessage=lambda event: self._ws_message(holder[0], event),
            onclose=lambda event: self._ws_closed(holder[0], event),
        )
        holder.append(ws)
        # The Socket keeps the process alive and is what interpreter exit shuts down: the inner
        # WebSocket must not be shut down on its own (a keepalive socket would reconnect).
        self._loop.release(ws)
        self._ws = ws

    def _ws_open(self, ws: WebSocket) -> None:
        if ws is not self._ws:
            return
        if self._connected():
            ws.close(1000)
            return
        self._dispatch_event("connect", (self,))

    def _ws_message(self, ws: WebSocket, event: MessageData) -> None:
        if ws is self._ws:
            self._deliver(event.data)

    def _ws_written(self, ws: WebSocket, chunk: _Chunk, future: Future[None]) -> None:
        if ws is not self._ws or future.exception() is not None:
            return  # a message that was not written is held again when the close event comes
        try:
            self._inflight.remove(chunk)
        except ValueError:
            return
        self._written(chunk.size)

    def _ws_closed(self, ws: WebSocket, event: CloseData) -> None:
        if ws is not self._ws:
            return
        self._ws = None
        # Every Future is done by now: those that failed were not completely written.
        again = [
            c
            for c in self._inflight
            if c.future is None or not c.future.done() or c.future.exception() is not None
        ]
        self._inflight.clear()
        for chunk in again:
            chunk.future = None
        exc = None if event.wasClean else ws.last_error
        if (
            isinstance(exc, ConnectionFailed)
            and exc.error == SocketError.OperationError
            and self._state >= ReadyState.CLOSING
        ):
            exc = None  # our own close() while the WebSocket was connecting
        elif exc is None and not event.wasClean:
            exc = ConnectionFailed(
                f"the WebSocket closed with {event.code}", SocketError.RemoteHostClosedError
            )
        self._link_down(exc, again, 0)

    # -- I/O thread: data ------------------------------------------------------------------

    def _flush_held(self) -> None:
        with self._lock:
            self._flush_scheduled = False
            if not self._link_up or not self._held:
                return
            chunks, self._held = self._held, deque()
            self._inflight_bytes += self._held_bytes
            self._held_bytes = 0
        link, ws = self._link, self._ws
        for chunk in chunks:
            self._inflight.append(chunk)
            if link is not None and link.transport is not None:
                link.transport.write(chunk.payload, chunk)
            elif ws is not None:
                assert chunk.opcode is not None
                future: Future[None] = Future()
                future.set_running_or_notify_cancel()
                frame = build_frame(chunk.opcode, chunk.payload)
                if ws._queue(frame, chunk.size, future):
                    chunk.future = future
                    future.add_done_callback(functools.partial(self._ws_written, ws, chunk))

    def _written(self, size: int) -> None:
        with self._lock:
            self._inflight_bytes -= size
        if size:
            self._dispatch_event("write", (self, size))

    def _deliver(self, data: Data) -> None:
        if not self._dispatch_event("data", (self, data)):
            self.queue(data)

    def _maybe_resume(self) -> None:
        # Decided here, on the I/O thread, like WebSocket._maybe_resume: decided in read() and
        # carried out later, a resume could land after a newer pause and leave reading on while
        # the inbox stays marked paused (unbounded from then on).
        if self._inbox.resume():
            self._set_reading(True)

    def _set_reading(self, on: bool) -> None:
        if not on and not self._inbox.paused:
            return  # read() caught up before this ran
        link, ws = self._link, self._ws
        transport = link.transport if link is not None else None
        if transport is None and ws is not None:
            transport = ws._transport
        if transport is not None:
            if on:
                transport.resume_reading()
            else:
                transport.pause_reading()

    # -- I/O thread: drops, retries, the end -----------------------------------------------

    def _link_down(self, exc: Optional[BaseException], again: list[_Chunk], taken: int) -> None:
        """A connection (or an attempt) ended: hold unsent data again, then retry or finish."""
        self._cancel(self._connect_timer)
        self._cancel(self._close_timer)
        self._connect_timer = self._close_timer = None
        with self._cond:
            was_up = self._link_up
            self._link_up = False
            self._held.extendleft(reversed(again))
            self._held_bytes += sum(chunk.size for chunk in again)
            self._inflight_bytes = 0
            closing = self._state >= ReadyState.CLOSING
        if taken:
            self._dispatch_event("write", (self, taken))
        if exc is not None:
            self._last_error = exc
        if closing or not self._keepalive:
            self._finalize()
            return
        if was_up:
            if time.monotonic() - self._connected_at >= _STABLE_AFTER:
                self._backoff = 0
            logger.info("%r: connection lost (%s); reconnecting", self, exc or "closed by peer")
        else:
            self._failures += 1
            cause = exc.__cause__ if exc is not None else None
            if isinstance(cause, ssl.SSLCertVerificationError):
                logger.warning("%r: certificate verification failed; not retrying", self)
                self._finalize()
                return
            if self._max_attempts is not None and self._failures >= self._max_attempts:
                logger.warning("%r: %d connection attempts failed; giving up", self, self._failures)
                self._finalize()
                return
        with self._cond:
            if self._state == ReadyState.OPEN:
                self._state = ReadyState.CONNECTING
        delay = min(self._max_retry_delay, self._retry_delay * 2.0**self._backoff)
        delay *= random.uniform(1.0 - _JITTER, 1.0 + _JITTER)
        if delay < self._max_retry_delay:
            self._backoff += 1
        self._retry_timer = self._loop.call_later(delay, self._attempt)

    def _finalize(self) -> None:
        if self._finalized:
            return
        self._finalized = True
        for timer in (self._connect_timer, self._retry_timer, self._close_timer):
            self._cancel(timer)
        self._connect_timer = self._retry_timer = self._close_timer = None
        with self._cond:
            self._state = ReadyState.CLOSED
            self._link_up = False
            dropped = self._held_bytes
            self._held.clear()
            self._held_bytes = 0
            self._inflight_bytes = 0
            self._cond.notify_all()
        if dropped:
            logger.warning("%r: closed with %d sent bytes never written", self, dropped)
        self._emit("close", (self,))
        self._loop.release(self)

    @staticmethod
    def _cancel(timer: Optional[TimerHandle]) -> None:
        if timer is not None:
            timer.cancel()
