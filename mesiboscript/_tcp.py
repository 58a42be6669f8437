"""``Socket``: Mesibo's chatbot socket for Python scripts, over ``sock://``, ``socks://``, ``ws://``
and ``wss://`` with one callback API.

A ``Socket`` holds one :class:`~mesiboscript._links.Link` at a time (one per connection
attempt) and talks to it only through that interface: a :class:`StreamLink` for
``sock``/``socks`` (on the shared selector loop, no thread per socket), a WebSocket link for
``ws``/``wss``. What was sent lives in one :class:`SendBuffer`; when to reconnect is decided by
one :class:`Reconnector`.

Reconnecting (``keepalive=True``): after any end of a connection that ``close()`` did not ask for
(a reset, the peer's close, a failed ping), the socket goes back to CONNECTING and tries again after
``retry_delay`` (0.1 s), doubling up to ``max_retry_delay`` (30 s), each delay ±20 % jitter (and
never above ``max_retry_delay``); a connection that stayed up 10 s resets the delay. ``onconnect``
fires for every connection; ``onclose`` fires once, when ``close()`` is called or reconnecting
gives up: ``max_attempts`` failed attempts in a row, or a failure retrying cannot fix (a
certificate that fails verification; see ``_reconnect.is_fatal``).
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

import codecs
import functools
import inspect
import ssl
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable, Optional, Union

from . import _lifetime
from ._condition import Condition
from ._constants import ReadyState
from ._eventtarget import EventHandler, EventTarget
from ._exceptions import InvalidStateError
from ._inbox import Inbox, not_on_loop
from ._links import Link, LinkEnd, StreamLink
from ._loop import Loop, TimerHandle, get_loop, logger
from ._proxy import check_proxy_option
from ._reconnect import Reconnector, ReconnectPolicy
from ._sendbuffer import Chunk, SendBuffer, SendBufferFull
from ._tls import make_context, proxy_context
from ._validation import InvalidArgumentError, parse_url
from ._wslink import DEFAULT_MAX_SIZE, WebSocketLink
from .sansio.deflate import DeflateOptions

__all__ = ["SendBufferFull", "Socket", "read_nowait", "watch_inbox"]

_STREAM_SCHEMES = ("sock", "socks")
_WS_SCHEMES = ("ws", "wss", "http", "https")
# read(): past this many bytes queued by Socket.queue, the socket is not read (TCP backpressure
# reaches the peer); reading resumes below a quarter of it.
_HIGH_WATER = 1024 * 1024
# A connection that stayed up this long resets the reconnect backoff to its first delay.
_STABLE_AFTER = 10.0
_JITTER = 0.2
# ws/wss with keepalive and no ping_interval: ping this often (seconds).
_KEEPALIVE_PING = 20.0

Data = Union[str, bytes]
# Handlers, typed per event (mypy --strict rejects a wrong arity). ondata's data is bytes, str or
# either, depending on the scheme and on ``encoding``: typed Any so that an annotated handler
# (``data: bytes``) is accepted.
ConnectHandler = Callable[["Socket"], object]
DataHandler = Union[Callable[[Any], object], Callable[["Socket", Any], object]]
WriteHandler = Callable[["Socket", int], object]
CloseHandler = Callable[["Socket"], object]


def takes_data_alone(handler: Callable[..., Any]) -> bool:
    """Whether ``ondata`` should get the data alone (the seed's ``function(s) { print(s); }``)
    rather than ``(socket, data)``: true for a callable that takes one positional argument, or
    any number with none required (``print``); also when its signature cannot be read (a
    builtin on Python 3.9, such as ``print`` or ``list.append``)."""
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return True
    required = most = 0
    for param in signature.parameters.values():
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            most += 1
            if param.default is param.empty:
                required += 1
        elif param.kind == param.VAR_POSITIONAL:
            most = 2**31
    return most <= 1 or required == 0


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {value!r}")


class _Listener:
    """The socket's :class:`LinkListener`: forwards a link's events while it is the socket's
    current link, so a stale link can never touch a newer connection."""

    __slots__ = ("_owner",)

    def __init__(self, owner: Socket) -> None:
        self._owner = owner

    def link_up(self, link: Link) -> None:
        if link is self._owner._link:
            self._owner._on_link_up(link)

    def link_data(self, link: Link, data: Data) -> None:
        if link is self._owner._link:
            self._owner._deliver(data)

    def link_written(self, link: Link, token: object) -> None:
        if link is self._owner._link:
            self._owner._on_link_written(token)

    def link_down(self, link: Link, end: LinkEnd) -> None:
        if link is self._owner._link:
            self._owner._on_link_down(end)


class Socket(EventTarget):
    """Mesibo's ``Socket``: a TCP, TLS or WebSocket connection with one callback API.

    Set the properties and handlers, then call :meth:`open`::

        s = Socket("sock://example.com:80")
        s.onconnect = lambda s: s.send("GET / HTTP/1.1\\r\\nHost: example.com\\r\\n\\r\\n")
        s.ondata = lambda s, data: print(data)
        s.onclose = lambda s: print("closed")
        s.open()

    Handlers (attributes or constructor keywords) run on the library's I/O thread; an exception
    they raise is logged on the ``mesiboscript`` logger and nothing else stops:

    - ``onconnect(s)``: connected (again, after a ``keepalive`` reconnection).
    - ``ondata(s, data)``, or ``ondata(data)`` for a handler that takes one parameter (the seed's
      ``s.ondata = function(s) { print(s); }``; ``s.ondata = print`` too): decided once, when it
      is assigned. Required: ``open()`` without it raises. ``data`` is ``bytes`` as it arrives
      for ``sock``/``socks`` (``str`` with ``encoding``), each message (``str`` for text, ``bytes``
      for binary) for ``ws``/``wss``.
    - ``onwrite(s, nbytes)``: ``nbytes`` of sent data reached the kernel.
    - ``onclose(s)``: closed for good (once).

    Properties to set before :meth:`open` (each a ``bool``; another type raises ``TypeError``):

    - ``keepalive`` (``False``): a persistent connection: TCP keep-alive probes (pings on
      ws/wss) and, after an unexpected drop, reconnection with backoff (see the module docs).
    - ``verify_host`` (``True``): check the server's certificate and host name; ``False`` turns
      both off, with a warning.
    - ``enableSsl``: TLS on a ``sock://`` (or ``ws://``) URL; always on for ``socks://``/``wss://``.

    Assigning an unknown handler (``s.onconect = f``) raises ``AttributeError``. If the
    connection fails while no ``onclose`` is set, one WARNING on the ``mesiboscript`` logger
    names the URL and the cause.

    Text: ``Socket(url, encoding="utf-8")`` hands ``sock``/``socks`` data to ``ondata`` (and
    ``read()``) as ``str``, decoded incrementally per connection, so a character split across two
    reads arrives whole; undecodable bytes become U+FFFD. Printing then shows ``hello``, not
    ``b'hello'``.

    Args:
        url: ``sock://host:port`` (TCP), ``socks://host:port`` (TLS), ``ws://`` or ``wss://``
            (``http://``/``https://`` map to them).
        encoding: decode ``sock``/``socks`` data with this codec (e.g. ``"utf-8"``) and hand it
            to ``ondata``/``read()`` as ``str``; ``None`` (the default) gives ``bytes``.
            WebSocket messages keep their type (text is already ``str``).
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
        ping_interval: ``ws``/``wss``: seconds between pings; ``None`` (the default) pings
            every 20 s with ``keepalive`` and never without.
        proxy: ``None`` (default): from the environment (``ws``/``wss`` as ``WebSocket`` reads
            it; ``sock``/``socks``: ``all_proxy``); ``False``: none; or a proxy URL
            (``http://``, ``https://``, ``socks4[a]://``, ``socks5[h]://``, ``user:pass@``).
        compression, compression_options: ``ws``/``wss``: permessage-deflate, as for
            :class:`~mesiboscript.WebSocket` (``"deflate"`` by default; ``None`` offers nothing).
        onconnect, ondata, onwrite, onclose: the handlers, as keywords.

    Raises:
        ValueError: a bad URL, an unknown scheme, a ``sock``/``socks`` URL without a port, a path
            on a ``sock``/``socks`` URL, an unknown ``encoding``, or a bad option.
    """

    CONNECTING = ReadyState.CONNECTING
    OPEN = ReadyState.OPEN
    CLOSING = ReadyState.CLOSING
    CLOSED = ReadyState.CLOSED

    onconnect: EventHandler[ConnectHandler] = EventHandler(
        doc="onconnect(s): connected (again, after a keepalive reconnection)."
    )
    ondata: EventHandler[DataHandler] = EventHandler(
        doc="ondata(s, data), or ondata(data) for a one-parameter handler: data arrived.\n"
        "Required before open(). bytes on sock/socks (str with encoding=), the message on ws/wss."
    )
    onwrite: EventHandler[WriteHandler] = EventHandler(
        doc="onwrite(s, nbytes): nbytes of sent data reached the kernel."
    )
    onclose: EventHandler[CloseHandler] = EventHandler(doc="onclose(s): closed for good (once).")

    def __init__(
        self,
        url: str,
        *,
        encoding: Optional[str] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        cafile: Optional[str] = None,
        connect_timeout: Optional[float] = 30.0,
        close_timeout: float = 10.0,
        max_buffer: int = 1024 * 1024,
        max_attempts: Optional[int] = None,
        retry_delay: float = 0.1,
        max_retry_delay: float = 30.0,
        ping_interval: Optional[float] = None,
        proxy: Union[bool, str, None] = None,
        compression: Optional[str] = "deflate",
        compression_options: Optional[Mapping[str, Any]] = None,
        onconnect: Optional[ConnectHandler] = None,
        ondata: Optional[DataHandler] = None,
        onwrite: Optional[WriteHandler] = None,
        onclose: Optional[CloseHandler] = None,
    ) -> None:
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, not {type(url).__name__}")
        scheme = url.partition(":")[0].strip().lower()
        if scheme not in _WS_SCHEMES and scheme not in _STREAM_SCHEMES:
            raise InvalidArgumentError(
                f"invalid URL {url!r}: Socket takes sock://host:port (TCP), socks://host:port "
                "(TLS), ws:// or wss:// (http:// and https:// map to ws:// and wss://)"
            )
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
        self._decoder_factory: Optional[Callable[[], codecs.IncrementalDecoder]] = None
        if encoding is not None:
            try:
                factory = codecs.getincrementaldecoder(encoding)
            except (LookupError, TypeError) as exc:
                raise ValueError(f"unknown encoding {encoding!r}") from exc
            self._decoder_factory = functools.partial(factory, errors="replace")
        self._decoder: Optional[codecs.IncrementalDecoder] = None  # per connection (I/O thread)
        self._ssl_context = ssl_context
        self._cafile = cafile
        self._connect_timeout = connect_timeout
        self._close_timeout = close_timeout
        self._max_buffer = max_buffer
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._ping_interval = ping_interval
        check_proxy_option(proxy)
        self._proxy = proxy
        self._deflate = DeflateOptions.from_options(compression, compression_options)
        self._keepalive = False
        self._verify_host = True
        self._enable_ssl = parsed.secure

        # Shared with user threads, under _lock.
        self._lock = threading.RLock()  # reentrant, as WebSocket's (the exit hook's close)
        self._cond = Condition(self._lock)  # costs nothing until a thread waits
        self._state = ReadyState.CONNECTING
        self._opened = False
        self._ever_connected = False
        # What Socket.queue kept for read(); past the high water, the socket is not read.
        self._inbox = Inbox(self._cond, _HIGH_WATER)
        self._last_error: Optional[BaseException] = None
        # What was sent: held while no link is up, in flight once handed to one (own lock).
        self._sendbuf = SendBuffer(max_buffer)

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
        self._proxy_tls: Optional[ssl.SSLContext] = None
        self._listener = _Listener(self)
        self._link: Optional[Link] = None  # the current connection attempt or connection
        self._up = False  # ... and it is up
        self._finalized = False
        self._reconnector = Reconnector(
            ReconnectPolicy(
                first_delay=min(retry_delay, max_retry_delay),
                max_delay=max_retry_delay,
                randomization=_JITTER,
                stable_after=_STABLE_AFTER,
                max_attempts=max_attempts,
            )
        )
        self._retry_timer: Optional[TimerHandle] = None

    def __repr__(self) -> str:
        url = self._url if self._stream else self._parsed.display  # no credentials
        return f"<Socket {url} {ReadyState(self._state).name}>"

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
        return self._sendbuf.buffered_amount

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
        _check_bool("keepalive", value)
        self._settable("keepalive")
        self._keepalive = value

    @property
    def verify_host(self) -> bool:
        """Check the server's certificate and host name (default). ``False`` turns both checks
        off, with a warning: anyone on the path can then read and change the data."""
        return self._verify_host

    @verify_host.setter
    def verify_host(self, value: bool) -> None:
        _check_bool("verify_host", value)
        self._settable("verify_host")
        self._verify_host = value

    @property
    def enableSsl(self) -> bool:
        """TLS on a ``sock://`` (or ``ws://``) URL; always on for ``socks://`` and ``wss://``."""
        return self._enable_ssl

    @enableSsl.setter
    def enableSsl(self, value: bool) -> None:
        _check_bool("enableSsl", value)
        self._settable("enableSsl")
        if not value and self._parsed.secure:
            raise ValueError(f"{self._parsed.scheme}:// always uses TLS")
        self._enable_ssl = value

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
        self._settable("open()")
        tls = None
        if self._enable_ssl:
            # Warns (UserWarning) when verify_host is False.
            tls = make_context(self._ssl_context, self._cafile, verify=self._verify_host)
        self._proxy_tls = proxy_context(tls, self._ssl_context, self._cafile)
        with self._lock:
            if self._opened or self._state == ReadyState.CLOSED:
                raise InvalidStateError("open() may be called once; create a new Socket")
            self._opened = True
            self._tls = tls
            # Under the lock: a close() from another thread is scheduled after the attempt.
            _lifetime.acquire(self, self._shutdown)
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
        state = self._state  # a fast, early answer; the buffer's refusal is the one that counts
        if state >= ReadyState.CLOSING:
            raise InvalidStateError(f"send() on a socket that is {state.name}")
        if self._stream and not chunk.size:
            return
        # close() makes the buffer refuse under the socket's lock: a send() that got past the
        # check above either was pushed before that (and close() writes it) or raises here.
        if self._sendbuf.push(chunk):
            self._loop.call_soon_threadsafe(self._flush)

    def _encode(self, data: object) -> Chunk:
        if isinstance(data, str):
            try:
                payload = data.encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates become U+FFFD, as in a browser
                text = data.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
                payload = text.encode("utf-8")
            return Chunk(payload, text=not self._stream)
        if isinstance(data, (bytes, bytearray, memoryview)):
            return Chunk(bytes(data))
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
                self._sendbuf.refuse("send() on a socket that is CLOSED")
                return
            self._state = ReadyState.CLOSING
            # Under the lock: a send() that saw OPEN either got in before this or is refused.
            self._sendbuf.refuse("send() on a socket that is CLOSING")
        self._loop.call_soon_threadsafe(self._begin_close, abandon, code, reason)

    def _begin_close(self, abandon: bool, code: int, reason: str) -> None:
        if self._finalized:
            return
        self._cancel_retry()
        self._set_reading(True)
        link = self._link
        if link is None:
            self._finalize()  # between attempts: what is held is dropped
        elif self._up:
            self._flush()
            link.close(code, reason.encode("utf-8"))
        elif self._sendbuf.has_held and not abandon:
            pass  # the attempt goes on; connecting writes what is held, then closes
        else:
            link.abort()

    # -- I/O thread: attempts --------------------------------------------------------------

    def _attempt(self) -> None:
        self._retry_timer = None
        if self._finalized:
            return
        if self._state >= ReadyState.CLOSING and not self._sendbuf.has_held:
            self._finalize()  # closed before the first attempt, with nothing to write
            return
        link = self._new_link()
        self._link = link  # before start(): a failure known at once is reported inside it
        link.start()

    def _new_link(self) -> Link:
        parsed = self._parsed
        if self._stream:
            return StreamLink(
                self._loop,
                self._listener,
                parsed.host,
                parsed.port,
                tls=self._tls,
                proxy=self._proxy,
                proxy_tls=self._proxy_tls,
                keepalive=self._keepalive,
                connect_timeout=self._connect_timeout,
                close_timeout=self._close_timeout,
            )
        url = self._url
        if self._enable_ssl and not parsed.secure:
            host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
            url = f"wss://{host}:{parsed.port}{parsed.resource}"
        ping = self._ping_interval
        if ping is None and self._keepalive:
            ping = _KEEPALIVE_PING
        target = parse_url(url)
        return WebSocketLink(
            self._loop,
            self._listener,
            target,
            display_url=target.display,
            tls=self._tls,
            proxy=self._proxy,
            proxy_tls=self._proxy_tls,
            connect_timeout=self._connect_timeout,
            ping_interval=ping,
            # A missed pong within one more interval ends the link: a half-open connection
            # is found in at most two intervals, and a keepalive socket reconnects.
            ping_timeout=ping,
            close_timeout=self._close_timeout,
            max_size=DEFAULT_MAX_SIZE,
            compression=self._deflate,
        )

    # -- I/O thread: link events -----------------------------------------------------------

    def _on_link_up(self, link: Link) -> None:
        """Connected: write what is held, then onconnect (or close, if asked meanwhile)."""
        self._up = True
        if self._decoder_factory is not None and self._stream:
            self._decoder = self._decoder_factory()  # a new byte stream
        self._sendbuf.link_up()
        with self._cond:
            self._ever_connected = True
            closing = self._state >= ReadyState.CLOSING
            if not closing:
                self._state = ReadyState.OPEN
            self._cond.notify_all()
        self._reconnector.connected(time.monotonic())
        if self._inbox.paused:  # read() is behind: a new connection waits for it too
            link.pause_reading()
        self._flush()
        if closing:
            link.close()
            return
        self._dispatch_event("connect", (self,))

    def _on_link_written(self, token: object) -> None:
        size = self._sendbuf.written(token)
        if size:
            self._dispatch_event("write", (self, size))

    def _on_link_down(self, end: LinkEnd) -> None:
        """A connection (or an attempt) ended: hold unsent data again, then retry or finish."""
        was_up, self._up = self._up, False
        self._link = None
        decoder, self._decoder = self._decoder, None
        if decoder is not None:
            tail = decoder.decode(b"", final=True)  # a character cut by the end: U+FFFD
            if tail:
                self._deliver_text(tail)
        taken = self._sendbuf.link_down(end.unsent, end.unsent_offset)
        if taken:
            self._dispatch_event("write", (self, taken))
        cause = end.cause
        if cause is not None:
            self._last_error = cause
        if self._state >= ReadyState.CLOSING or not self._keepalive:
            if cause is not None and self._state < ReadyState.CLOSING:
                self._warn_if_unheard(
                    ("close",),
                    "Socket connection to %s %s: %s; no onclose handler is set",
                    self._url if self._stream else self._parsed.display,
                    "was lost" if was_up else "failed",
                    cause,
                )
            self._finalize()
            return
        if was_up:
            delay = self._reconnector.lost(time.monotonic(), cause)
        else:
            delay = self._reconnector.failed(cause)
        if delay is None:
            if self._reconnector.stop_reason == "max_attempts":
                logger.warning(
                    "%r: %d connection attempts failed; giving up", self, self._reconnector.failures
                )
            else:
                logger.warning("%r: %s; not retrying", self, cause)
            self._finalize()
            return
        if was_up:
            logger.info("%r: connection lost (%s); reconnecting", self, cause or "closed by peer")
        with self._cond:
            if self._state == ReadyState.OPEN:
                self._state = ReadyState.CONNECTING
        self._retry_timer = self._loop.call_later(delay, self._attempt)

    # -- I/O thread: data ------------------------------------------------------------------

    def _flush(self) -> None:
        link = self._link
        chunks = self._sendbuf.take()
        if link is None:
            return
        for chunk in chunks:
            link.write(chunk.payload, chunk, text=chunk.text)

    def _deliver(self, data: Data) -> None:
        decoder = self._decoder
        if decoder is not None and isinstance(data, bytes):
            data = decoder.decode(data)
            if not data:
                return  # only part of a character so far
        self._deliver_text(data)

    def _deliver_text(self, data: Data) -> None:
        if not self._dispatch_event("data", (self, data)):
            self.queue(data)

    def _adapt_handler(self, type: str, handler: Callable[..., Any]) -> Callable[..., Any]:
        # ondata gets (socket, data); a one-parameter handler gets the data alone. Decided here,
        # once per assignment, not per chunk.
        if type != "data" or not takes_data_alone(handler):
            return handler

        @functools.wraps(handler)
        def data_alone(socket: Socket, data: Data) -> Any:
            return handler(data)

        return data_alone

    def _maybe_resume(self) -> None:
        # Decided here, on the I/O thread, like WebSocket._maybe_resume: decided in read() and
        # carried out later, a resume could land after a newer pause and leave reading on while
        # the inbox stays marked paused (unbounded from then on).
        if self._inbox.resume():
            self._set_reading(True)

    def _set_reading(self, on: bool) -> None:
        if not on and not self._inbox.paused:
            return  # read() caught up before this ran
        link = self._link
        if link is not None:
            if on:
                link.resume_reading()
            else:
                link.pause_reading()

    # -- I/O thread: the end ---------------------------------------------------------------

    def _finalize(self) -> None:
        if self._finalized:
            return
        self._finalized = True
        self._cancel_retry()
        with self._cond:
            self._state = ReadyState.CLOSED
            self._sendbuf.refuse("send() on a socket that is CLOSED")
            self._cond.notify_all()
        dropped = self._sendbuf.drop()
        if dropped:
            logger.warning("%r: closed with %d sent bytes never written", self, dropped)
        self._emit("close", (self,))
        _lifetime.release(self)

    def _cancel_retry(self) -> None:
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None


def watch_inbox(s: Socket, callback: Optional[Callable[[], None]]) -> None:
    """Call ``callback()`` each time :meth:`Socket.queue` keeps data (on the I/O thread): how
    ``mesiboscript.aio`` learns that :func:`read_nowait` has something, backpressure kept."""
    s._inbox.watch = callback


def read_nowait(s: Socket) -> Union[str, bytes, bool, None]:
    """What ``s.read(0)`` returns (the next chunk kept by ``queue``; ``None`` if none waits;
    ``False`` once closed and drained), for a reader that must not block a thread."""
    data = s._inbox.read(0, lambda: s._state == ReadyState.CLOSED)
    if s._inbox.paused:
        s._loop.call_soon_threadsafe(s._maybe_resume)
    return data
