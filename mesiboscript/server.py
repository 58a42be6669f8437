"""High Fidelity's ``WebSocketServer``, on the ``websockets`` package's asyncio server.

A server accepts connections on one port; each accepted connection is handed to
``onNewConnection`` as a :class:`ServerWebSocket`, which has the client ``WebSocket``'s script API
(``onmessage``, ``onclose``, ``onerror``, ``send``, ``close``, ``readyState``, ``url``)::

    from mesiboscript.server import WebSocketServer

    server = WebSocketServer(port=8080)

    def on_new_connection(ws):
        ws.onmessage = lambda message: ws.send(message.data)

    server.onNewConnection = on_new_connection

Each server runs one asyncio event loop on one background thread for its sockets; handlers run on
the library's one I/O thread, as every other handler does, and every method is safe from any
thread. A handler that raises is logged with its traceback on the ``mesiboscript`` logger and
nothing else stops (``sys.exit()`` in one ends the process, as for a client's handler). Like a
script engine hosting the server, the process stays alive while a server is listening; Ctrl-C
then closes every server with 1001. ``getSession()`` in a connection's handler returns that
connection.

``websockets`` is an optional dependency: ``pip install "mesiboscript[server]"``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import ssl
import threading
import uuid
from collections import deque
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Callable, ClassVar, Optional, TypeVar, Union

try:
    from websockets.asyncio.server import Server, ServerConnection, serve
    from websockets.exceptions import ConnectionClosed as _WSConnectionClosed
except ImportError as _exc:  # websockets missing, or older than 13 (no asyncio server)
    raise ImportError(
        "mesiboscript.server needs the 'websockets' package (version 13 or later): "
        "pip install 'mesiboscript[server]'"
    ) from _exc

from . import _lifetime
from ._condition import Condition
from ._constants import ReadyState, SocketError
from ._events import (
    ONCLOSE_DOC,
    ONERROR_DOC,
    ONMESSAGE_DOC,
    CloseData,
    CloseHandler,
    ErrorEvent,
    ErrorHandler,
    MessageHandler,
    OpenHandler,
)
from ._eventtarget import DOMEventTarget, EventHandler, EventTarget, Signal
from ._exceptions import ConnectionClosed, InvalidStateError
from ._inbox import Inbox
from ._loop import get_loop, in_io_thread
from ._validation import check_close
from .sansio.deflate import DeflateOptions

__all__ = ["ServerWebSocket", "Signal", "WebSocketServer"]

logger = logging.getLogger("mesiboscript")

T = TypeVar("T")
Handler = Callable[..., Any]

#: Close code and reason HiFi's ``WebSocketServer.close()`` sends to every client.
SERVER_CLOSING = (1001, "Server closing.")
# Messages read from a connection and not yet handled (by a handler, or waiting for one): past
# either mark its reader stops reading; it reads again once a quarter of the mark is left.
_HIGH_WATER_BYTES = 1024 * 1024
_HIGH_WATER_COUNT = 4096


class _BackgroundLoop:
    """One asyncio event loop running on one daemon thread.

    Shared by :class:`WebSocketServer` and the test servers of :mod:`mesiboscript.testing`.
    """

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        _lifetime.library_thread()
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            try:
                # Whatever is left (a handler waiting for a message, a writer) ends here.
                tasks = asyncio.all_tasks(loop)
                for task in tasks:
                    task.cancel()
                if tasks:
                    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    def in_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def run(self, coro: Coroutine[Any, Any, T], timeout: Optional[float]) -> T:
        """Run ``coro`` on the loop and wait for its result, from another thread."""
        if self.in_thread():
            coro.close()
            raise RuntimeError("cannot block the server's own thread waiting on itself")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"the server's thread did not answer within {timeout} s") from None

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> bool:
        """Run ``callback`` on the loop thread: now if called there, else soon. False if stopped."""
        if self.in_thread():
            callback(*args)
            return True
        with self._lock:
            if self._stopping:
                return False
            self.loop.call_soon_threadsafe(callback, *args)
            return True

    def stop(self, timeout: Optional[float] = 10.0) -> None:
        """Stop the loop; from another thread, also wait for the thread to end."""
        with self._lock:
            if not self._stopping:
                self._stopping = True
                self.loop.call_soon_threadsafe(self.loop.stop)
        if not self.in_thread():
            self._thread.join(timeout)


@_lifetime.session_type
class ServerWebSocket(DOMEventTarget):
    """One accepted connection, with the client ``WebSocket``'s script API.

    Created by :class:`WebSocketServer`; scripts get it in ``onNewConnection``. It is OPEN from the
    start. Its handlers run on the library's I/O thread, like a client ``WebSocket``'s, with the
    same event rules: messages that arrive while no ``onmessage`` handler is set wait (with
    backpressure) for the first handler; an ``onclose`` or ``onerror`` set after its event fired
    is called when set; ``addEventListener`` works as on the client.
    """

    CONNECTING = ReadyState.CONNECTING
    OPEN = ReadyState.OPEN
    CLOSING = ReadyState.CLOSING
    CLOSED = ReadyState.CLOSED

    #: Accepted for symmetry with the client; never called (the connection is already open).
    onopen: EventHandler[OpenHandler] = EventHandler(
        doc="Accepted for symmetry with the client; never called (the connection is open)."
    )
    #: ``onmessage(MessageData)``: ``.data`` is ``str`` for text, ``bytes`` for binary.
    onmessage: EventHandler[MessageHandler] = EventHandler(doc=ONMESSAGE_DOC)
    #: ``onerror(SocketError)``: fired before ``onclose`` when the connection is lost.
    onerror: EventHandler[ErrorHandler] = EventHandler(doc=ONERROR_DOC)
    #: ``onclose(CloseData)``: ``.code``, ``.reason``, ``.wasClean``.
    onclose: EventHandler[CloseHandler] = EventHandler(doc=ONCLOSE_DOC)

    _STATE_AT_EVENT: ClassVar[dict[str, Any]] = {
        "message": ReadyState.OPEN,
        "error": ReadyState.CLOSED,
        "close": ReadyState.CLOSED,
    }

    def __init__(self, server: WebSocketServer, conn: ServerConnection, url: str) -> None:
        self._server = server
        self._bg = server._bg
        self._conn = conn
        self._url = url
        self._id = uuid.uuid4().hex
        self._close_called = False
        self._finished = False
        self._lock = threading.Lock()
        self._buffered = 0
        # Messages read and not yet handled: for a late onmessage, and the reader's backpressure.
        self._inbox = Inbox(Condition(self._lock), _HIGH_WATER_BYTES, _HIGH_WATER_COUNT)
        self._loop = get_loop()
        self._init_events(self._loop, self._lock, self._inbox)
        # Set (on the server's thread) when the inbox has drained after a pause.
        self._resumed = asyncio.Event()
        # Sent inside handlers (I/O thread), handed to the server's thread after the handler.
        self._handover: list[tuple[str, Any, int]] = []
        # Outgoing frames, written in order by one writer task (server's thread).
        self._outbox: deque[tuple[str, Any, int]] = deque()
        self._writer: Optional[asyncio.Task[None]] = None

    def __repr__(self) -> str:
        return f"<ServerWebSocket {self._url} {self.readyState.name}>"

    # -- properties ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The URL the client connected to, as the server sees it (scheme, host, port, path)."""
        return self._url

    @contextlib.contextmanager
    def _as_of_event(self, state: ReadyState) -> Iterator[None]:
        """Handlers run meanwhile (on the I/O thread) see ``readyState`` as ``state``."""
        at_event = self._at_event
        saved, at_event[0] = at_event[0], state
        try:
            yield
        finally:
            at_event[0] = saved

    @property
    def readyState(self) -> ReadyState:
        """OPEN, CLOSING or CLOSED (as of the event, inside a handler)."""
        state = self._state_at_event()
        if state is not None:
            return ReadyState(state)
        if self._finished:
            return ReadyState.CLOSED
        if self._close_called or self._conn.state.value >= ReadyState.CLOSING:
            return ReadyState.CLOSING
        return ReadyState.OPEN

    @property
    def protocol(self) -> str:
        """The subprotocol chosen in the handshake, or ``""``."""
        return self._conn.subprotocol or ""

    @property
    def extensions(self) -> str:
        """The extensions in use (``permessage-deflate`` when the client offered it), or ``""``."""
        return ", ".join(ext.name for ext in self._conn.protocol.extensions)

    @property
    def bufferedAmount(self) -> int:
        """Bytes of application data queued by :meth:`send` and not yet handed to the socket."""
        with self._lock:
            return self._buffered

    @property
    def remoteAddress(self) -> Any:
        """The client's address, as ``socket.getpeername()`` gives it."""
        return self._conn.remote_address

    def getId(self) -> str:
        """A stable, unique id for this connection (Dirigible's ``session.getId()``)."""
        return self._id

    # -- sending and closing ---------------------------------------------------------------

    def send(
        self, data: Union[str, bytes, bytearray, memoryview, dict[str, Any], list[Any]]
    ) -> None:
        """Queue a message: ``str`` as text, bytes-like as binary, ``dict``/``list`` as JSON text.

        Once closing has begun it sends nothing and raises nothing, as in the browser.
        """
        payload: Union[str, bytes]
        if isinstance(data, str):
            payload = _usv(data)
            size = len(payload.encode("utf-8"))
        elif isinstance(data, (bytes, bytearray, memoryview)):
            payload = bytes(data)
            size = len(payload)
        elif isinstance(data, (dict, list)):
            # As JSON.stringify writes it (and the client WebSocket sends it).
            payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
            size = len(payload.encode("utf-8"))
        else:
            raise TypeError(f"cannot send {type(data).__name__}: use str, bytes, dict or list")
        if self.readyState is not ReadyState.OPEN:
            return
        with self._lock:
            self._buffered += size
        self._submit(("send", payload, size))

    def close(self, code: Optional[int] = None, reason: str = "") -> None:
        """Start the closing handshake, after the messages already queued.

        ``code`` must be 1000 or in 3000-4999 and ``reason`` at most 123 UTF-8 bytes (ValueError
        otherwise). Without a code the close frame carries no status. A second call does nothing.
        """
        checked_code, encoded = check_close(code, reason)
        self._start_close(checked_code, encoded.decode("utf-8"))

    def _start_close(self, code: Optional[int], reason: str) -> None:
        with self._lock:
            self._closing_at_event(ReadyState.CLOSING)  # the running handler sees CLOSING now
            if self._close_called or self._finished:
                return
            self._close_called = True
        self._submit(("close", (code, reason), 0))

    def _submit(self, item: tuple[str, Any, int]) -> None:
        # One order for everything sent: what a handler sends waits in _handover until it returns
        # (as the client WebSocket writes after the handler; bufferedAmount read there counts
        # it); what another thread sends meanwhile queues behind it there, so a close() or send()
        # from elsewhere never overtakes it. Both hand-offs to the server's thread happen under
        # the lock, so they reach it in this order.
        with self._lock:
            if self._loop.in_loop_thread():
                self._handover.append(item)
                if len(self._handover) == 1:
                    self._loop.call_soon(self._hand_over)
            elif self._handover:
                self._handover.append(item)
            elif not self._bg.call_soon(self._enqueue, [item]):
                self._dropped([item])

    def _hand_over(self) -> None:
        with self._lock:
            items, self._handover = self._handover, []
            if not self._bg.call_soon(self._enqueue, items):
                self._dropped(items)

    def _dropped(self, items: list[tuple[str, Any, int]]) -> None:
        """The server's thread has stopped: these will never be written."""
        for kind, payload, _ in items:
            if kind == "text" and not payload[1].done():
                payload[1].set_exception(ConnectionClosed("the server has stopped"))

    def _enqueue(self, items: list[tuple[str, Any, int]]) -> None:
        self._outbox.extend(items)
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._write_all())

    async def _write_all(self) -> None:
        future: Optional[Future[None]] = None  # the sendText being written, if any
        try:
            while self._outbox:
                kind, payload, size = self._outbox.popleft()
                future = None
                if kind == "close":
                    code, reason = payload
                    # websockets sends an empty close frame for code None (no status);
                    # its annotation (which varies by version) says int only.
                    close: Any = self._conn.close
                    await close(code, reason)
                    continue
                if kind == "text":
                    payload, future = payload
                with self._lock:
                    self._buffered -= size
                await self._conn.send(payload)
                if future is not None and not future.done():
                    future.set_result(None)
        except _WSConnectionClosed:
            self._fail_outbox(future)  # the standard drops what could not be sent
        except Exception:
            logger.exception("sending on %r failed", self)
            self._fail_outbox(future)
            self._conn.transport.abort()
        finally:
            self._writer = None

    def _fail_outbox(self, current: Optional[Future[None]]) -> None:
        """The connection is gone: drop what was not sent and fail the ``sendText`` Futures."""
        futures = [current] if current is not None else []
        futures += [payload[1] for kind, payload, _ in self._outbox if kind == "text"]
        self._outbox.clear()
        code, reason = self._conn.close_code or 1006, self._conn.close_reason or ""
        for future in futures:
            if not future.done():
                future.set_exception(ConnectionClosed("the connection closed", code, reason))

    # -- Dirigible sessions -----------------------------------------------------------------

    def sendTextAsync(self, text: str) -> Future[None]:
        """Queue a text message; the Future completes once it is written to the socket, or fails
        with the reason (``InvalidStateError`` if not open, ``ConnectionClosed`` if it drops),
        as on the client ``WebSocket``."""
        if not isinstance(text, str):
            raise TypeError(f"sendTextAsync() takes a str, not {type(text).__name__}")
        future: Future[None] = Future()
        future.set_running_or_notify_cancel()
        state = self.readyState
        if state is not ReadyState.OPEN:
            future.set_exception(InvalidStateError(f"the session is {state.name}"))
            return future
        payload = _usv(text)
        size = len(payload.encode("utf-8"))
        with self._lock:
            self._buffered += size
        self._submit(("text", (payload, future), size))
        return future

    def sendText(self, text: str) -> None:
        """Send a text message and return once it is written to the socket (Dirigible's
        ``session.sendText``).

        Inside a handler it queues the message and returns: the writing happens after the
        handler, in order with everything else it sends (waiting there would hold every
        connection's handlers).

        Raises:
            InvalidStateError: if the session is not open.
            ConnectionClosed: if the connection drops before the frame is written.
        """
        state = self.readyState
        if state is not ReadyState.OPEN:
            raise InvalidStateError(f"sendText() on a session that is {state.name}")
        future = self.sendTextAsync(text)
        if self._loop.in_loop_thread():
            if future.done():
                future.result()
            return
        future.result()

    # -- the connection's life (on the server's thread) ------------------------------------

    async def _serve(self) -> None:
        """Read messages until the connection closes, then hand over the close events.

        Each message goes into the inbox, then a call to deliver it is handed to the I/O thread
        (where the handlers run). Backpressure: the inbox counts what was read and not yet
        handled, including messages waiting for a late ``onmessage``. Past its mark, this reader
        stops calling ``recv()`` until the I/O thread has drained it to a quarter of the mark
        (or the connection is gone); meanwhile websockets' own queue fills, it stops reading the
        socket, and the client feels TCP backpressure. So the reader runs ahead of the handlers
        by at most the mark (1 MiB or 4096 messages) plus websockets' queue. A pause is decided
        by ``Inbox.put`` on this thread and the resume by ``Inbox.resume`` on the I/O thread,
        each once per pause, so a resume can never be lost or land before its pause.
        """
        conn = self._conn
        try:
            while True:
                try:
                    data = await conn.recv()
                except _WSConnectionClosed:
                    break
                paused = self._inbox.put(data)
                self._loop.call_soon_threadsafe(self._deliver_pending)
                if paused:
                    await self._wait_resumed()
            await conn.wait_closed()
        finally:
            self._finish()

    async def _wait_resumed(self) -> None:
        """Wait until the I/O thread drained the inbox, or the connection has closed (then the
        rest is read and kept for a late handler: websockets' queue bounds it)."""
        loop = asyncio.get_running_loop()
        self._resumed.clear()  # a resume is only ever scheduled after this pause was decided
        resumed = loop.create_task(self._resumed.wait())
        closed = loop.create_task(self._conn.wait_closed())
        try:
            await asyncio.wait({resumed, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            resumed.cancel()
            closed.cancel()

    def _inbox_resumed(self) -> None:
        # I/O thread: the inbox drained under its low mark; let the reader go on.
        self._bg.call_soon(self._resumed.set)

    def _finish(self) -> None:
        _lifetime.closed_session(self)
        protocol = self._conn.protocol
        received, sent = protocol.close_rcvd, protocol.close_sent
        if received is not None and sent is not None:
            event = CloseData(received.code, received.reason, True, target=self)
            error: Optional[SocketError] = None
        else:
            # No closing handshake: the TCP connection was lost or aborted.
            event = CloseData(1006, "", False, target=self)
            error = SocketError.RemoteHostClosedError
        with self._lock:
            self._finished = True
        self._server._forget(self)
        # After every message handed over: the I/O thread runs calls in order.
        self._loop.call_soon_threadsafe(self._closed, error, event)

    def _closed(self, error: Optional[SocketError], event: CloseData) -> None:
        # I/O thread. Each is a one-shot event of its own: onclose fires whether or not an
        # onerror is set (or messages wait for an onmessage); late handlers still get them.
        if error is not None:
            self._emit("error", (error,), (ErrorEvent(error, None, target=self),))
        self._emit("close", (event,))


def _usv(text: str) -> str:
    """The text a browser would send: lone surrogates become U+FFFD (WebIDL USVString)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _compression_args(
    compression: Optional[str], options: Optional[Mapping[str, Any]]
) -> dict[str, Any]:
    """websockets' ``serve()`` keywords for the public ``compression``/``compression_options``
    (checked as the client checks them: the same names and ranges)."""
    deflate = DeflateOptions.from_options(compression, options)
    if deflate is None:
        return {"compression": None}
    if not options:
        return {"compression": "deflate"}
    from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

    given = dict(options)
    factory = ServerPerMessageDeflateFactory(
        server_max_window_bits=given.get("server_max_window_bits"),
        client_max_window_bits=given.get("client_max_window_bits"),
        compress_settings={"memLevel": deflate.mem_level, "level": deflate.level},
    )
    return {"compression": None, "extensions": [factory]}


class WebSocketServer(EventTarget):
    """A WebSocket server, as High Fidelity scripts create it.

    ``WebSocketServer(port=0, host="127.0.0.1")`` listens at once (port 0 picks a free port; an
    address in use raises ``OSError``). HiFi's options object works too:
    ``WebSocketServer({"port": 8080, "serverName": "My server"})``.

    Args:
        port: TCP port, or a HiFi options mapping with ``port`` and ``serverName``.
        host: Address to bind; the default accepts only local clients.
        ssl_context: A server-side ``ssl.SSLContext`` (with its certificate loaded) for ``wss://``.
        serverName: Sent in the ``Server`` header of the handshake response.
        subprotocols: Subprotocols to accept, in order of preference.
        max_size: Largest message accepted; a bigger one closes the connection with 1009.
        ping_interval: Seconds between keep-alive pings (``None``: no pings).
        ping_timeout: Seconds to wait for a pong before closing with 1011 (``None``: forever).
        close_timeout: Seconds to wait for a client to answer a close frame.
        compression: ``"deflate"`` (the default) accepts permessage-deflate when a client offers
            it (websockets' defaults: a 12-bit window and memLevel 5 for what the server sends,
            about 64 KiB per connection once it compresses); ``None`` never does.
        compression_options: a dict with any of ``server_max_window_bits`` (the server's own
            window), ``client_max_window_bits`` (asked of clients that allow it), ``mem_level``
            and ``level``, as for :class:`~mesiboscript.WebSocket`.
        onNewConnection: Handler for each accepted connection (also settable as an attribute).
    """

    #: ``onNewConnection(ws)``: a client connected (ws is a :class:`ServerWebSocket`).
    onNewConnection: EventHandler[Callable[[ServerWebSocket], object]] = EventHandler(
        "newConnection", doc="onNewConnection(ws): a client connected (a ServerWebSocket)."
    )

    def __init__(
        self,
        port: Union[int, Mapping[str, Any]] = 0,
        host: str = "127.0.0.1",
        *,
        ssl_context: Optional[ssl.SSLContext] = None,
        serverName: str = "mesiboscript",
        subprotocols: Optional[Sequence[str]] = None,
        max_size: Optional[int] = 2**20,
        ping_interval: Optional[float] = 20.0,
        ping_timeout: Optional[float] = 20.0,
        close_timeout: float = 10.0,
        compression: Optional[str] = "deflate",
        compression_options: Optional[Mapping[str, Any]] = None,
        onNewConnection: Optional[Callable[[ServerWebSocket], object]] = None,
    ) -> None:
        if isinstance(port, Mapping):
            options = dict(port)
            unknown = set(options) - {"port", "serverName"}
            if unknown:
                raise TypeError(f"unknown WebSocketServer options: {', '.join(sorted(unknown))}")
            port = options.get("port", 0)
            server_name = options.get("serverName", serverName)
        else:
            server_name = serverName
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int in 0-65535, not {port!r}")
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise TypeError("ssl_context must be an ssl.SSLContext")
        compression_args = _compression_args(compression, compression_options)
        self._lock = threading.Lock()
        self._loop = get_loop()
        self._init_events(self._loop, self._lock)
        self.onNewConnection = onNewConnection
        #: HiFi's signal: ``server.newConnection.connect(fn)`` calls ``fn(ws)`` for each client.
        self.newConnection = Signal(self, "newConnection")
        self._secure = ssl_context is not None
        self._close_timeout = close_timeout
        self._clients: set[ServerWebSocket] = set()
        self._closing = False
        self._closed = threading.Event()
        self._close_task: Optional[asyncio.Future[None]] = None
        self._bg = _BackgroundLoop("mesiboscript-server")
        try:
            self._server: Server = self._bg.run(
                self._start(
                    host,
                    port,
                    ssl=ssl_context,
                    server_header=server_name,
                    subprotocols=list(subprotocols) if subprotocols else None,
                    max_size=max_size,
                    ping_interval=ping_interval,
                    ping_timeout=ping_timeout,
                    close_timeout=close_timeout,
                    **compression_args,
                ),
                timeout=30.0,
            )
        except BaseException:
            self._bg.stop()
            raise
        address = next(iter(self._server.sockets)).getsockname()
        self._port: int = address[1]
        self._host = _url_host(address[0])
        _lifetime.acquire(self, self._shutdown)

    async def _start(self, host: str, port: int, **options: Any) -> Server:
        return await serve(self._handle, host, port, **options)

    def __repr__(self) -> str:
        state = "listening" if self.listening else "closed"
        return f"<WebSocketServer {self.url} {state}>"

    def __enter__(self) -> WebSocketServer:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    # -- properties ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Where clients connect: ``ws://127.0.0.1:PORT/`` (``wss://`` with TLS)."""
        scheme = "wss" if self._secure else "ws"
        return f"{scheme}://{self._host}:{self._port}/"

    @property
    def port(self) -> int:
        """The port listened on (the one chosen when 0 was asked for)."""
        return self._port

    @property
    def listening(self) -> bool:
        """True until :meth:`close`."""
        return not self._closing and self._server.is_serving()

    @property
    def clients(self) -> list[ServerWebSocket]:
        """The connections not yet closed."""
        with self._lock:
            return list(self._clients)

    def getOpenSessions(self) -> list[ServerWebSocket]:
        """This server's OPEN connections, oldest first (the module's ``getOpenSessions()``
        lists every session of the process, client side included)."""
        mine = self.clients
        return [
            session
            for session in _lifetime.getOpenSessions()
            if session in mine and session.readyState is ReadyState.OPEN
        ]

    # -- connections -----------------------------------------------------------------------

    async def _handle(self, conn: ServerConnection) -> None:
        path = conn.request.path if conn.request is not None else "/"
        ws = ServerWebSocket(self, conn, self.url.rstrip("/") + path)
        with self._lock:
            closing = self._closing
            self._clients.add(ws)
        if closing:
            ws._start_close(*SERVER_CLOSING)
        else:
            _lifetime.open_session(ws)  # Dirigible's getOpenSessions() lists it
        # On the I/O thread, before anything of this connection: its handlers are set in time.
        self._loop.call_soon_threadsafe(self._new_connection, ws)
        await ws._serve()

    def _new_connection(self, ws: ServerWebSocket) -> None:
        """The ``newConnection`` event (I/O thread): its handlers see the connection OPEN, as of
        the event, even if the client has already started closing it (as readyState inside
        any other handler is the state as of its event)."""
        with ws._as_of_event(ReadyState.OPEN):
            # getSession() in these handlers is the new connection (the session they are about).
            self._dispatch_event("newConnection", (ws,), session=ws)

    def _forget(self, ws: ServerWebSocket) -> None:
        with self._lock:
            self._clients.discard(ws)

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Send 1001 "Server closing." to every client and stop listening.

        From a script's thread it returns once every connection has closed (clients that do not
        answer are dropped after ``close_timeout``) and the server's thread has ended. From a
        handler (the server's, or a client ``WebSocket``'s, whose I/O thread may be what the
        closing handshakes wait on) it starts the same and returns at once. A second call does
        nothing.
        """
        with self._lock:
            first = not self._closing
            self._closing = True
        if self._bg.in_thread():
            if first:
                self._close_task = asyncio.ensure_future(self._close_and_stop())
            return
        if _on_client_io_thread():
            if first:
                self._bg.call_soon(self._schedule_close)
            return
        if first:
            try:
                self._bg.run(self._aclose(), timeout=self._close_timeout + 10.0)
            finally:
                self._bg.stop()
                self._done()
        else:
            self._closed.wait(self._close_timeout + 10.0)

    def _shutdown(self, code: int, reason: str) -> None:
        """Close as :meth:`close` does (1001 "Server closing."), without waiting: any thread."""
        with self._lock:
            first = not self._closing
            self._closing = True
        if first and not self._bg.call_soon(self._schedule_close):
            self._done()

    def _schedule_close(self) -> None:
        self._close_task = asyncio.ensure_future(self._close_and_stop())

    async def _close_and_stop(self) -> None:
        try:
            await self._aclose()
        finally:
            self._done()
            self._bg.stop()

    async def _aclose(self) -> None:
        for ws in self.clients:
            ws._start_close(*SERVER_CLOSING)
        self._server.close(close_connections=False)
        try:
            await asyncio.wait_for(self._server.wait_closed(), self._close_timeout + 1.0)
        except asyncio.TimeoutError:
            # A client that neither reads nor answers: drop it.
            for ws in self.clients:
                ws._conn.transport.abort()
            await self._server.wait_closed()

    def _done(self) -> None:
        self._closed.set()
        _lifetime.release(self)


def _on_client_io_thread() -> bool:
    """True in a client WebSocket's handler: the library's one I/O thread."""
    return in_io_thread()


def _url_host(address: str) -> str:
    if address in ("0.0.0.0", ""):
        return "127.0.0.1"
    if address == "::":
        return "[::1]"
    return f"[{address}]" if ":" in address else address
