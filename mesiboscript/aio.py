"""The asyncio face: the same connections, awaited from an asyncio program.

::

    async with mesiboscript.aio.connect("ws://127.0.0.1:8765/") as ws:
        await ws.send("hello")
        print(await ws.recv())
        async for message in ws:
            ...

There is still one I/O thread for the whole process: it reads and writes every socket, and hands
each event to the asyncio loop that opened the connection (``call_soon_threadsafe``). Nothing
here blocks the event loop, and nothing queues without bound:

- Messages wait in the connection's own inbox (the one ``read()`` uses), not in an asyncio queue:
  a consumer that falls behind by 1 MiB (or 4096 messages) stops the socket being read, so the
  server feels TCP backpressure; reading resumes as ``recv()`` drains it.
- ``send()`` queues at once, and waits until the message is written once more than
  :data:`WRITE_HIGH_WATER` bytes are waiting for the kernel (a drain, as asyncio's streams do).
- A connection opened here closes (1001) when its event loop shuts down (``asyncio.run()``
  returning, ``loop.shutdown_asyncgens()``), and never keeps the process alive by itself, unlike
  a thread-style ``WebSocket``, which a script's end waits for.

A thread-style ``WebSocket``'s ``sendTextAsync()`` returns a :class:`concurrent.futures.Future`;
``await asyncio.wrap_future(ws.sendTextAsync(text))`` waits for it in asyncio.

:func:`connect_socketio` is the same face for :class:`~mesiboscript.SocketIO`: ``await
sio.call(...)`` and handlers (plain or ``async def``) that run on the asyncio loop.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable, Generator
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Callable, Generic, Optional, TypeVar, Union

from . import _lifetime
from ._constants import ReadyState
from ._events import CloseData
from ._exceptions import ConnectionClosed, ConnectionFailed, InvalidStateError, socket_error_for
from ._socketio import SocketIO as _SocketIO
from ._tcp import Socket as _Socket
from ._tcp import read_nowait as _socket_read_nowait
from ._tcp import watch_inbox as _socket_watch_inbox
from ._websocket import SendData, go_away, read_nowait, send_written, watch_inbox
from ._websocket import WebSocket as _WebSocket

__all__ = [
    "WRITE_HIGH_WATER",
    "Socket",
    "SocketIO",
    "WebSocket",
    "connect",
    "connect_socketio",
    "open_socket",
]

#: Bytes waiting for the kernel past which ``send()`` waits for its message to be written.
WRITE_HIGH_WATER = 64 * 1024
#: Seconds an event loop that shuts down waits for its connections' closing handshakes.
SHUTDOWN_WAIT = _lifetime.SHUTDOWN_WAIT

T = TypeVar("T")
Message = Union[str, bytes]


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], *args: Any) -> None:
    """Hand ``callback`` to ``loop`` from the I/O thread; a closed loop gets nothing."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        pass  # the loop has closed: whoever waited there is gone


def _resolve(future: asyncio.Future[T], value: T) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


# -- the event loops' lifetime ----------------------------------------------------------------


class _Closable:
    """What a loop closes when it shuts down (a WebSocket or a SocketIO face)."""

    def _go_away(self) -> None:
        raise NotImplementedError

    async def _wait_closed(self) -> None:
        raise NotImplementedError


# Per running loop: the connections it opened and the async generator whose finalisation (at
# loop.shutdown_asyncgens(), which asyncio.run() calls) closes them. Keyed weakly: a loop that
# is gone takes its entry with it.
_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[set[_Closable], Any]]
_loops = weakref.WeakKeyDictionary()


async def _close_at_shutdown(conns: set[_Closable]) -> AsyncIterator[None]:
    try:
        while True:
            yield
    finally:
        # The loop is shutting down (its tasks are cancelled already): close what is left.
        left = list(conns)
        for conn in left:
            conn._go_away()
        if left:
            await asyncio.wait(
                [asyncio.ensure_future(conn._wait_closed()) for conn in left],
                timeout=SHUTDOWN_WAIT,
            )


async def _register(conn: _Closable) -> set[_Closable]:
    """Close ``conn`` when the running loop shuts down; the set to discard it from once done."""
    loop = asyncio.get_running_loop()
    entry = _loops.get(loop)
    if entry is None:
        conns: set[_Closable] = set()
        keeper = _close_at_shutdown(conns)
        entry = _loops[loop] = (conns, keeper)
        await keeper.__anext__()  # first iteration: the loop now finalises it at shutdown
    entry[0].add(conn)
    return entry[0]


class _Opening(Generic[T]):
    """What :func:`connect` returns: await it, or use it as an async context manager (which
    closes the connection on the way out)."""

    def __init__(self, open: Callable[[], Awaitable[T]]) -> None:
        self._open = open
        self._conn: Optional[T] = None

    def __await__(self) -> Generator[Any, None, T]:
        return self._open().__await__()

    async def __aenter__(self) -> T:
        self._conn = await self._open()
        return self._conn

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        conn = self._conn
        if conn is not None:
            await conn.close()  # type: ignore[attr-defined]


class _InboxReader:
    """Waits without blocking the event loop for what the I/O thread keeps in an inbox: the
    inbox's watcher (``_arrived``, I/O thread) wakes the one waiting coroutine."""

    _aloop: asyncio.AbstractEventLoop
    _waiter: Optional[asyncio.Future[None]] = None  # the coroutine waiting (event loop)
    _woken: Optional[asyncio.Future[None]] = None  # the last waiter woken (I/O thread)

    def _arrived(self) -> None:
        # Each waiter is woken once: this thread never clears _waiter (the event loop may have
        # set a newer one meanwhile).
        waiter = self._waiter
        if waiter is not None and waiter is not self._woken:
            self._woken = waiter
            _call_soon(self._aloop, _resolve, waiter, None)

    def _wake(self) -> None:
        """The connection ended (event loop): a waiting coroutine looks again."""
        if self._waiter is not None:
            _resolve(self._waiter, None)

    async def _next(self, read_nowait: Callable[[], Union[Message, bool, None]]) -> Any:
        """The next item, or ``False`` once closed and drained."""
        while True:
            data = read_nowait()
            if data is None:
                if self._waiter is not None:
                    raise RuntimeError("another coroutine is already waiting in recv()")
                waiter = self._waiter = self._aloop.create_future()
                try:
                    data = read_nowait()  # again, now that an arrival would wake the waiter
                    if data is None:
                        await waiter
                        continue
                finally:
                    self._waiter = None
            return data


# -- WebSocket --------------------------------------------------------------------------------


def connect(
    url: str, protocols: Union[str, list[str], tuple[str, ...], None] = None, **options: Any
) -> _Opening[WebSocket]:
    """Open a WebSocket for asyncio: ``ws = await connect(url)`` or ``async with connect(url) as
    ws:`` (closed with 1000 on the way out).

    Args:
        url, protocols, options: as for :class:`mesiboscript.WebSocket` (``headers``,
            ``ssl_context``, ``connect_timeout``, ``max_size``, ``proxy``...).

    Raises:
        ValueError: bad URL, protocols or option, at once.
        ConnectionFailed: the connection could not be opened (``error`` is the
            :class:`~mesiboscript.SocketError`, ``__cause__`` the underlying exception).
    """
    for name in ("onopen", "onmessage", "onerror", "onclose"):
        if name in options:
            raise TypeError(f"connect() takes no {name}: await recv() or iterate instead")
    return _Opening(lambda: WebSocket._open(url, protocols, options))


class WebSocket(_InboxReader, _Closable):
    """A WebSocket for asyncio (made by :func:`connect`), over a :class:`mesiboscript.WebSocket`.

    Use it from the event loop that opened it.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._aloop = loop
        self._opened: asyncio.Future[None] = loop.create_future()
        self._closed: asyncio.Future[CloseData] = loop.create_future()
        self._conns: set[_Closable] = set()
        self._close: Optional[CloseData] = None
        self._ws: _WebSocket

    @classmethod
    async def _open(
        cls,
        url: str,
        protocols: Union[str, list[str], tuple[str, ...], None],
        options: dict[str, Any],
    ) -> WebSocket:
        self = cls(asyncio.get_running_loop())
        self._ws = _WebSocket(
            url, protocols, onopen=self._on_open, onclose=self._on_close, **options
        )
        # Messages wait in the inbox (no message handler): recv() is woken when one arrives.
        watch_inbox(self._ws, self._arrived)
        # This connection's life is its event loop's, not the process's (see the module doc).
        _lifetime.release(self._ws)
        self._conns = await _register(self)
        try:
            await asyncio.shield(self._opened)
        except asyncio.CancelledError:
            go_away(self._ws)
            raise
        return self

    def __repr__(self) -> str:
        return f"<mesiboscript.aio.WebSocket {self._ws.url} {self.readyState.name}>"

    # -- what the I/O thread reports ---------------------------------------------------------

    def _on_open(self) -> None:
        _call_soon(self._aloop, _resolve, self._opened, None)

    def _on_close(self, event: CloseData) -> None:
        # The event's target, not self._ws: a connection can fail before the constructor returns.
        _call_soon(self._aloop, self._ended, event, event.target.last_error)

    def _ended(self, event: CloseData, cause: Optional[BaseException]) -> None:
        """The close event, on the event loop."""
        self._close = event
        self._conns.discard(self)
        if not self._opened.done():
            error = socket_error_for(cause) if cause is not None else None
            failed = ConnectionFailed(
                f"could not open {event.target.url}: {cause or f'closed with {event.code}'}",
                *(() if error is None else (error,)),
            )
            failed.__cause__ = cause
            self._opened.set_exception(failed)
            self._opened.exception()  # retrieved: an abandoned open() must not warn
        _resolve(self._closed, event)
        self._wake()

    # -- properties --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The URL, as parsed and serialised."""
        return self._ws.url

    @property
    def readyState(self) -> ReadyState:
        """CONNECTING, OPEN, CLOSING or CLOSED."""
        return self._ws.readyState

    @property
    def protocol(self) -> str:
        """The subprotocol the server chose, ``""`` if none."""
        return self._ws.protocol

    @property
    def extensions(self) -> str:
        """The extensions the server accepted, ``""`` if none."""
        return self._ws.extensions

    @property
    def bufferedAmount(self) -> int:
        """Bytes queued by ``send()`` and not yet written to the socket."""
        return self._ws.bufferedAmount

    @property
    def close_code(self) -> Optional[int]:
        """The close event's code (1005 when the close frame had none, 1006 for a failure);
        ``None`` until the connection has closed."""
        return None if self._close is None else self._close.code

    @property
    def close_reason(self) -> Optional[str]:
        """The close event's reason; ``None`` until the connection has closed."""
        return None if self._close is None else self._close.reason

    @property
    def websocket(self) -> _WebSocket:
        """The thread-style :class:`mesiboscript.WebSocket` underneath (``getId()``...)."""
        return self._ws

    # -- receiving ---------------------------------------------------------------------------

    async def recv(self) -> Message:
        """The next message: ``str`` for text, ``bytes`` for binary.

        Raises:
            ConnectionClosed: once the connection has closed and every message has been read
                (``code`` and ``reason`` are the close event's).
            RuntimeError: if another ``recv()`` is waiting already.
        """
        ws = self._ws
        data = await self._next(lambda: read_nowait(ws))
        if data is False:
            event = await asyncio.shield(self._closed)
            code, reason = event.code, event.reason
            raise ConnectionClosed(f"the connection closed ({code})", code, reason)
        return data  # type: ignore[no-any-return]

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> Message:
        """The next message; the iteration ends after a clean close and raises
        :class:`ConnectionClosed` after an unclean one (as websockets' does)."""
        try:
            return await self.recv()
        except ConnectionClosed:
            if self._close is not None and self._close.wasClean:
                raise StopAsyncIteration from None
            raise

    # -- sending -----------------------------------------------------------------------------

    async def send(self, data: SendData) -> None:
        """Send a message: ``str`` (and ``dict``/``list`` as JSON) as text, bytes-like as binary.

        Returns once it is queued; while more than :data:`WRITE_HIGH_WATER` bytes wait for the
        kernel, once it is written.

        Raises:
            ConnectionClosed: the connection is closing or closed.
            TypeError: for other types.
        """
        ws = self._ws
        if ws.readyState is not ReadyState.OPEN:
            self._raise_closed()
        if ws.bufferedAmount <= WRITE_HIGH_WATER:
            ws.send(data)
            return
        await self._written(send_written(ws, data))

    async def sendTextAsync(self, text: str) -> None:
        """Send a text message and wait until it is written to the socket (Dirigible's name)."""
        await self._written(self._ws.sendTextAsync(text))

    async def _written(self, future: Future[None]) -> None:
        try:
            await asyncio.wrap_future(future, loop=self._aloop)
        except InvalidStateError:
            self._raise_closed()

    def _raise_closed(self) -> None:
        event = self._close
        if event is None:
            raise ConnectionClosed("the connection is closing")
        raise ConnectionClosed(f"the connection closed ({event.code})", event.code, event.reason)

    # -- closing -----------------------------------------------------------------------------

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close (1000, or 3000-4999) and wait for the close event, at most the connection's
        ``close_timeout`` (after which the I/O thread ends it as 1006).

        Raises:
            ValueError: a code other than 1000 or 3000-4999, or a reason over 123 UTF-8 bytes.
        """
        self._ws.close(code, reason)
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the connection has closed (its close event has fired)."""
        await asyncio.shield(self._closed)

    def _go_away(self) -> None:
        go_away(self._ws)

    async def _wait_closed(self) -> None:
        await self.wait_closed()


# -- Socket (Mesibo) --------------------------------------------------------------------------


def open_socket(
    url: str,
    *,
    keepalive: bool = False,
    verify_host: bool = True,
    enableSsl: bool = False,
    **options: Any,
) -> _Opening[Socket]:
    """Open a Mesibo :class:`mesiboscript.Socket` for asyncio (``sock://``, ``socks://``,
    ``ws://``, ``wss://``): ``s = await open_socket(url)`` or ``async with open_socket(url) as
    s:``. ``keepalive``, ``verify_host`` and ``enableSsl`` are the Socket's properties;
    ``options`` its keywords (``connect_timeout``, ``max_buffer``, ``ssl_context``...).

    Raises:
        ConnectionFailed: the first connection failed (``__cause__`` is why).
    """
    for name in ("onconnect", "ondata", "onwrite", "onclose"):
        if name in options:
            raise TypeError(f"open_socket() takes no {name}: await recv() or iterate instead")
    props = {"keepalive": keepalive, "verify_host": verify_host, "enableSsl": enableSsl}
    return _Opening(lambda: Socket._open(url, props, options))


class Socket(_InboxReader, _Closable):
    """A Mesibo ``Socket`` for asyncio (made by :func:`open_socket`): ``await recv()`` gives
    the data as it arrives (``bytes`` on sock/socks, a message on ws/wss), ``async for`` until
    it closes. With ``keepalive`` it reconnects by itself, and receiving goes on."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._aloop = loop
        self._connected: asyncio.Future[None] = loop.create_future()
        self._closed: asyncio.Future[None] = loop.create_future()
        self._conns: set[_Closable] = set()
        self._s: _Socket

    @classmethod
    async def _open(cls, url: str, props: dict[str, bool], options: dict[str, Any]) -> Socket:
        self = cls(asyncio.get_running_loop())
        s = self._s = _Socket(
            url,
            onconnect=self._on_connect,
            ondata=_Socket.queue,  # kept in the socket's inbox, which recv() reads
            onclose=self._on_close,
            **options,
        )
        defaults = {"keepalive": False, "verify_host": True, "enableSsl": False}
        for name, value in props.items():
            if value != defaults[name]:  # set only what differs (enableSsl is implied by socks)
                setattr(s, name, value)
        _socket_watch_inbox(s, self._arrived)
        s.open()
        _lifetime.release(s)  # its life is the event loop's (see the module doc)
        self._conns = await _register(self)
        try:
            await asyncio.shield(self._connected)
        except asyncio.CancelledError:
            s.close()
            raise
        return self

    def __repr__(self) -> str:
        return f"<mesiboscript.aio.Socket {self._s.url} {self.readyState.name}>"

    def _on_connect(self, s: _Socket) -> None:
        _call_soon(self._aloop, _resolve, self._connected, None)

    def _on_close(self, s: _Socket) -> None:
        _call_soon(self._aloop, self._ended, s.last_error)

    def _ended(self, cause: Optional[BaseException]) -> None:
        self._conns.discard(self)
        if not self._connected.done():
            failed = ConnectionFailed(f"could not connect to {self._s.url}: {cause or 'closed'}")
            failed.__cause__ = cause
            self._connected.set_exception(failed)
            self._connected.exception()  # retrieved: an abandoned open must not warn
        _resolve(self._closed, None)
        self._wake()

    @property
    def url(self) -> str:
        return self._s.url

    @property
    def readyState(self) -> ReadyState:
        return self._s.readyState

    @property
    def socket(self) -> _Socket:
        """The thread-style :class:`mesiboscript.Socket` underneath."""
        return self._s

    async def recv(self) -> Message:
        """The next data (``bytes``; a message on ws/wss).

        Raises:
            ConnectionClosed: once the socket has closed and everything was read.
        """
        s = self._s
        data = await self._next(lambda: _socket_read_nowait(s))
        if data is False:
            raise ConnectionClosed("the socket closed")
        return data  # type: ignore[no-any-return]

    def __aiter__(self) -> Socket:
        return self

    async def __anext__(self) -> Message:
        """The next data; the iteration ends when the socket closes."""
        try:
            return await self.recv()
        except ConnectionClosed:
            raise StopAsyncIteration from None

    async def send(self, data: Union[str, bytes, bytearray, memoryview]) -> None:
        """Queue data (held while a keepalive socket reconnects, up to ``max_buffer``)."""
        self._s.send(data)

    async def close(self) -> None:
        """Write what was sent, close, and wait for the close."""
        self._s.close()
        await asyncio.shield(self._closed)

    def _go_away(self) -> None:
        self._s.close()

    async def _wait_closed(self) -> None:
        await asyncio.shield(self._closed)


# -- SocketIO ---------------------------------------------------------------------------------


def connect_socketio(url: str, **options: Any) -> _Opening[SocketIO]:
    """Connect a :class:`mesiboscript.SocketIO` for asyncio: ``sio = await
    connect_socketio(url)`` or ``async with connect_socketio(url) as sio:`` (closed on the way
    out). ``options`` are :class:`mesiboscript.SocketIO`'s.

    Raises:
        ConnectionFailed: connecting failed (the message is the ``connect_error`` data's).
    """
    return _Opening(lambda: SocketIO._open(url, options))


class SocketIO(_Closable):
    """A Socket.IO client for asyncio (made by :func:`connect_socketio`), over a
    :class:`mesiboscript.SocketIO`: a thin face on its public methods.

    Handlers added with :meth:`on` run on the asyncio loop (an ``async def`` handler as a task);
    their return value is not an acknowledgement (set one on :attr:`socketio` for that).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sio: _SocketIO) -> None:
        self._aloop = loop
        self._sio = sio
        self._connected: asyncio.Future[None] = loop.create_future()
        self._disconnected: asyncio.Future[str] = loop.create_future()
        self._calls: set[asyncio.Future[tuple[Any, ...]]] = set()
        self._conns: set[_Closable] = set()
        self._tasks: set[asyncio.Future[Any]] = set()
        sio.on("connect", self._on_connect)
        sio.on("connect_error", self._on_connect_error)
        sio.on("disconnect", self._on_disconnect)

    @classmethod
    async def _open(cls, url: str, options: dict[str, Any]) -> SocketIO:
        self = cls(asyncio.get_running_loop(), _SocketIO(url, **options))
        self._conns = await _register(self)
        try:
            await asyncio.shield(self._connected)
        except BaseException:
            self._sio.close()
            raise
        return self

    def __repr__(self) -> str:
        return f"<mesiboscript.aio.SocketIO {self._sio!r}>"

    # -- what the I/O thread reports ---------------------------------------------------------

    def _on_connect(self) -> None:
        _call_soon(self._aloop, self._up)

    def _up(self) -> None:
        """Connected (on the event loop): the first time, or again after a reconnection."""
        _resolve(self._connected, None)
        if self._disconnected.done():
            self._disconnected = self._aloop.create_future()
        self._conns.add(self)

    def _on_connect_error(self, data: Any) -> None:
        message = data.get("message") if isinstance(data, dict) else data
        _call_soon(self._aloop, _fail, self._connected, ConnectionFailed(f"{message}"))

    def _on_disconnect(self, reason: str) -> None:
        _call_soon(self._aloop, self._ended, reason)

    def _ended(self, reason: str) -> None:
        for call in list(self._calls):
            _fail(call, ConnectionClosed(f"disconnected ({reason}) before the acknowledgement"))
        _resolve(self._disconnected, reason)
        self._conns.discard(self)

    # -- the thread-style object's surface ---------------------------------------------------

    @property
    def socketio(self) -> _SocketIO:
        """The :class:`mesiboscript.SocketIO` underneath."""
        return self._sio

    @property
    def connected(self) -> bool:
        return self._sio.connected

    @property
    def id(self) -> Optional[str]:
        return self._sio.id

    def on(self, event: str, handler: Callable[..., Any]) -> None:
        """Call ``handler(*args)`` on the asyncio loop for each ``event`` (an ``async def``
        handler runs as a task)."""
        if asyncio.iscoroutinefunction(handler):
            self._sio.on(event, lambda *args: _call_soon(self._aloop, self._start, handler, args))
        else:
            self._sio.on(event, lambda *args: _call_soon(self._aloop, handler, *args))

    def _start(self, handler: Callable[..., Any], args: tuple[Any, ...]) -> None:
        task = asyncio.ensure_future(handler(*args))
        self._tasks.add(task)  # a reference, as asyncio asks, until it is done
        task.add_done_callback(self._tasks.discard)

    async def emit(self, event: str, *args: Any) -> None:
        """Send an event (queued at once, in order)."""
        self._sio.emit(event, *args)

    async def send(self, *args: Any) -> None:
        """Send a ``message`` event."""
        self._sio.send(*args)

    async def call(self, event: str, *args: Any, timeout: Optional[float] = 60) -> Any:
        """Send an event with an acknowledgement and return its arguments (one value, a tuple
        for several, ``None`` for none).

        Raises:
            TimeoutError: no acknowledgement within ``timeout`` seconds.
            ConnectionClosed: the connection ended first.
        """
        future: asyncio.Future[tuple[Any, ...]] = self._aloop.create_future()
        self._calls.add(future)
        if self._disconnected.done():
            _fail(future, ConnectionClosed("disconnected"))
        else:
            self._sio.emit(
                event, *args, callback=lambda *ack: _call_soon(self._aloop, _resolve, future, ack)
            )
        try:
            values = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:  # TimeoutError itself from 3.11 on
            raise TimeoutError(f"no acknowledgement for {event!r} in {timeout} s") from None
        finally:
            self._calls.discard(future)
        if not values:
            return None
        return values[0] if len(values) == 1 else values

    async def close(self) -> None:
        """Disconnect and wait (at most :data:`SHUTDOWN_WAIT` seconds) until it is over, its
        WebSocket closed."""
        self._sio.close()
        await self._wait_closed()

    def _go_away(self) -> None:
        self._sio.close()

    async def _wait_closed(self) -> None:
        # SocketIO.wait() blocks: a worker thread waits (closing is rare; no thread per event).
        await self._aloop.run_in_executor(None, self._sio.wait, SHUTDOWN_WAIT)
