"""``SocketIO``: a Socket.IO client over this library's ``WebSocket``, for old and new servers.

One object is one namespace on one WebSocket (the WebSocket transport only; no long-polling). It
speaks Engine.IO v4 with Socket.IO v5 (socket.io 3/4, python-socketio 5) and Engine.IO v3 with
Socket.IO v4 (socket.io 1.x/2.x, as Botmaster's ``botmaster-socket.io`` runs), chosen by the
``protocol`` option; ``"auto"`` tries v4 and falls back to v3 when the server refuses it or turns
out to speak v3. The wire format is :mod:`mesiboscript._engineio`.

Threads: all protocol work runs on the library's one I/O thread, inside the WebSocket's handlers
and in callbacks handed to that thread; so do the user's handlers, as for ``WebSocket``. Calls from
other threads (``emit``, ``close``, setting handlers) only validate, encode and hand over.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from typing import Any, Callable, Optional, TypeVar, Union, overload
from urllib.parse import parse_qsl, urlencode, urlsplit

from ._constants import ReadyState, SocketError
from ._engineio import (
    RESERVED_EVENTS,
    DecodeError,
    EnginePacket,
    EnginePacketType,
    Frame,
    Handshake,
    SocketDecoder,
    SocketPacket,
    SocketPacketType,
    connect_error_data,
    decode_engine_packet,
    encode_engine_packet,
    encode_socket_packet,
    parse_handshake,
)
from ._events import CloseData, MessageData
from ._eventtarget import EventHandler, EventTarget, StrictHandlers
from ._exceptions import ConnectionFailed, InvalidStateError
from ._loop import Loop, TimerHandle, get_loop
from ._validation import InvalidArgumentError
from ._websocket import WebSocket
from .sansio.deflate import DeflateOptions

__all__ = ["SocketIO"]

logger = logging.getLogger("mesiboscript")

Handler = Callable[..., Any]
_H = TypeVar("_H", bound=Handler)

# With protocol="auto", an Engine.IO v4 handshake without maxPayload may come from a v3 server
# that ignored EIO=4 (socket.io 1.x/2.x do): those connect the default namespace at once, a v4
# server never does. Wait this long for that sign before sending a v4 CONNECT.
_PROBE_GRACE = 1.0
_MIN_PING_INTERVAL = 0.05
# Events of one name kept while no handler for that name is set; older ones are dropped past it.
_MAX_HELD = 1024
# How a WebSocket that never opened failed when the server refused the upgrade (an HTTP error
# status, or the connection closed during the handshake), as opposed to a network failure.
_REFUSALS = (SocketError.ConnectionRefusedError, SocketError.RemoteHostClosedError)

_CONNECTING, _CONNECTED, _CLOSING, _CLOSED = "connecting", "connected", "closing", "closed"
_ONE_SHOT = ("connect", "connect_error", "disconnect")


class SocketIO(StrictHandlers, EventTarget):
    """A Socket.IO client, in the callback style of :class:`WebSocket`.

    Connecting starts at construction. Handlers (all run on the library's I/O thread):

    - ``onconnect()``: the namespace is connected; ``id`` is the Socket.IO session id.
    - ``onmessage(*args)``: a ``message`` event (what ``socket.send`` sends), usually one value.
    - ``on(event, fn)``: ``fn(*args)`` for any event; also ``"connect"``, ``"message"``,
      ``"connect_error"`` and ``"disconnect"``. If the server asked for an acknowledgement, the
      value the handler returns is sent back (a tuple as several arguments, ``None`` as none).
    - ``ondisconnect(reason)``: the connection ended after it was connected; ``reason`` is
      socket.io-client's: ``"io server disconnect"``, ``"io client disconnect"``,
      ``"ping timeout"``, ``"transport close"``, ``"transport error"`` or ``"parse error"``.
    - ``onconnect_error(data)``: connecting failed; ``data`` is a dict with at least
      ``"message"``. A server's refusal (middleware, auth) keeps its fields (``"data"`` holds what
      the server attached); a transport failure gives ``"websocket error"`` (or ``"timeout"``)
      with ``"description"`` and the ``"error"`` (a :class:`SocketError`) where there is one.

    There is no automatic reconnection: after ``ondisconnect``/``onconnect_error`` the object is
    done; make a new one to connect again. As for ``WebSocket``, handlers set right after the
    constructor miss nothing: one-shot events (connect, connect_error, disconnect) and events
    that arrive before any handler for their name wait (up to 1024 per name) until one is set.

    Args:
        url: ``http(s)://host:port[/namespace][?query]`` (``ws``/``wss`` work too). The query is
            sent with the handshake (Botmaster reads ``botmasterUserId`` there); a path names the
            namespace, as in socket.io-client.
        protocol: ``4`` (Engine.IO v4 / Socket.IO v5), ``3`` (Engine.IO v3 / Socket.IO v4, for
            socket.io 1.x/2.x) or ``"auto"`` (v4 first, then v3 if the server refuses v4 or
            answers as a v3 server).
        path: the server's Engine.IO path (default ``"/socket.io/"``).
        namespace: the namespace to join, if the URL has no path (default ``"/"``).
        auth: a dict sent with the v5 CONNECT packet (``socket.handshake.auth`` on the server).
            v3 servers have no place for it: it is then not sent, and a warning is logged.
        timeout: seconds allowed for connecting (``None``: no limit); then ``onconnect_error``
            gets ``{"message": "timeout"}``.
        **options: passed to :class:`WebSocket` (``headers``, ``origin``, ``ssl_context``,
            ``cafile``, ``connect_timeout``, ``ping_interval``, ``ping_timeout``,
            ``close_timeout``, ``max_size``, ``proxy``, ``compression``,
            ``compression_options``).

    Raises:
        ValueError: a bad URL, protocol, path, namespace or option (nothing is sent).
        TypeError: an auth payload that is not a JSON-serialisable dict; an unknown option.
    """

    onconnect: EventHandler[Callable[[], object]] = EventHandler(doc="onconnect(): connected.")
    onmessage: EventHandler[Callable[..., object]] = EventHandler(doc="onmessage(*args)")
    ondisconnect: EventHandler[Callable[[str], object]] = EventHandler(doc="ondisconnect(reason)")
    onconnect_error: EventHandler[Callable[[dict[str, Any]], object]] = EventHandler(
        doc="onconnect_error(data): connecting failed; data['message'] says why."
    )

    _MAX_HELD = _MAX_HELD  # events of one name kept while no handler for it is set

    def __init__(
        self,
        url: str,
        *,
        protocol: Union[int, str] = "auto",
        path: str = "/socket.io/",
        namespace: Optional[str] = None,
        auth: Optional[dict[str, Any]] = None,
        timeout: Optional[float] = 20.0,
        **options: Any,
    ) -> None:
        if protocol not in (3, 4, "auto") or isinstance(protocol, bool):
            raise InvalidArgumentError(f"protocol must be 3, 4 or 'auto', not {protocol!r}")
        if not isinstance(path, str) or not path.startswith("/") or "?" in path or "#" in path:
            raise InvalidArgumentError(f"path must be an absolute path, not {path!r}")
        if auth is not None:
            if not isinstance(auth, dict):
                raise TypeError(f"auth must be a dict, not {type(auth).__name__}")
            encode_socket_packet(SocketPacket(SocketPacketType.CONNECT, "/", auth))  # JSON-able?
        if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
            raise InvalidArgumentError(f"timeout must be a positive number, not {timeout!r}")
        self._url = url
        self._ws_scheme, self._netloc, self._query, url_namespace = _split_url(url)
        if namespace is None:
            namespace = url_namespace or "/"
        elif url_namespace and url_namespace != namespace:
            raise InvalidArgumentError(
                f"the URL names namespace {url_namespace!r} but namespace={namespace!r}"
            )
        if not isinstance(namespace, str) or not namespace.startswith("/"):
            raise InvalidArgumentError(f"a namespace starts with '/', not {namespace!r}")
        if any(c in namespace for c in ",?#"):
            raise InvalidArgumentError(f"a namespace has no ',', '?' or '#': {namespace!r}")
        self._path = path if path.endswith("/") else path + "/"
        self._namespace = namespace
        self._auth = auth
        self._auto = protocol == "auto"
        self._timeout = timeout
        self._options = options
        # Checked now, not at the first connection: bad input raises at once.
        DeflateOptions.from_options(
            options.get("compression", "deflate"), options.get("compression_options")
        )

        # Shared with user threads, under _lock.
        self._lock = threading.Lock()
        self._loop: Loop = get_loop()
        # Handlers, one-shot memory (connect, connect_error, disconnect), events held per name.
        self._init_events(self._loop, self._lock)
        self._acks: dict[int, Handler] = {}
        self._ids = itertools.count()
        self._close_requested = False
        self._done = threading.Event()

        # I/O thread only (but for the first attempt, set up here before any event can run).
        self._state = _CONNECTING
        self._attempts: deque[int] = deque([4, 3] if self._auto else [int(protocol)])
        self._eio = 4
        self._ws: Optional[WebSocket] = None
        self._ws_opened = False
        self._ws_error: Optional[SocketError] = None
        self._handshake: Optional[Handshake] = None
        self._probing = False
        self._decoder = SocketDecoder()
        self._id: Optional[str] = None
        self._outcome: Optional[tuple[str, tuple[Any, ...]]] = None
        self._send_buffer: list[list[Frame]] = []
        self._early: list[tuple[str, list[Any], Optional[int]]] = []
        self._last_rx = 0.0
        self._connect_timer: Optional[TimerHandle] = None
        self._probe_timer: Optional[TimerHandle] = None
        self._heartbeat_timer: Optional[TimerHandle] = None
        self._pong_timer: Optional[TimerHandle] = None

        self._start_attempt(self._attempts.popleft())
        self._loop.call_soon_threadsafe(self._arm_connect_timer)

    def __repr__(self) -> str:
        return f"<SocketIO {self._url} {self._namespace} {self._state}>"

    # -- properties ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The URL given to the constructor."""
        return self._url

    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def connected(self) -> bool:
        """True from the connect event until the connection ends or ``close()`` is called."""
        return self._state == _CONNECTED and not self._close_requested

    @property
    def id(self) -> Optional[str]:
        """The Socket.IO session id the server gave this namespace (``None`` until connected)."""
        return self._id

    @property
    def protocol(self) -> Optional[int]:
        """The Engine.IO revision in use, 3 or 4; ``None`` until the server's handshake."""
        return None if self._handshake is None or self._probing else self._eio

    # -- handlers --------------------------------------------------------------------------

    @overload
    def on(self, event: str) -> Callable[[_H], _H]: ...
    @overload
    def on(self, event: str, handler: _H) -> _H: ...
    def on(self, event: str, handler: Optional[_H] = None) -> Union[_H, Callable[[_H], _H]]:
        """Call ``handler(*args)`` for each ``event``; without ``handler``, a decorator.

        Adding the same handler twice for one event does nothing. Returns the handler.
        """
        if not isinstance(event, str):
            raise TypeError(f"an event name is a str, not {type(event).__name__}")
        if handler is None:

            def decorator(fn: _H) -> _H:
                self.on(event, fn)
                return fn

            return decorator
        if not callable(handler):
            raise TypeError("handler must be callable")
        self._add_listener(event, handler)
        return handler

    def off(self, event: str, handler: Optional[Handler] = None) -> None:
        """Remove ``handler`` (or every handler added with :meth:`on`) for ``event``."""
        self._remove_listener(event, handler)

    def _dropping_held(self, type: str) -> None:
        logger.debug("%r: no handler for %r; dropping its oldest event", self, type)

    def _on_event(self, name: str, args: list[Any], ack_id: Optional[int]) -> None:
        """An event from the server: deliver it, or hold it until a handler for it is set."""
        if not self._hold(name, (args, ack_id)):
            self._deliver_event(name, args, ack_id)

    def _deliver_held(self, type: str, item: Any) -> None:
        args, ack_id = item
        self._deliver_event(type, args, ack_id)

    def _deliver_event(self, name: str, args: list[Any], ack_id: Optional[int]) -> None:
        if ack_id is None:
            self._fire(name, tuple(args))
            return
        # The server asked for an acknowledgement: the first value a handler returns (one that
        # did not raise) is the answer; no handler that ran, no answer.
        results: list[Any] = []
        self._fire(name, tuple(args), results=results)
        if results:
            result = next((value for value in results if value is not None), None)
            if result is None:
                reply: list[Any] = []
            elif isinstance(result, tuple):
                reply = list(result)
            else:
                reply = [result]
            try:
                frames = encode_socket_packet(
                    SocketPacket(SocketPacketType.ACK, self._namespace, reply, ack_id)
                )
            except (TypeError, ValueError):
                logger.exception("%r: the %r handler returned what cannot be sent", self, name)
                return
            self._send_frames(frames)

    # -- sending ---------------------------------------------------------------------------

    def emit(self, event: str, *args: Any, callback: Optional[Handler] = None) -> None:
        """Send an event with JSON-serialisable arguments (bytes-like values go as binary).

        Events emitted before the connect event are sent once connected; after the connection
        ended, nothing is sent and nothing is raised (as ``WebSocket.send`` once closing).
        ``callback(*args)`` runs when the server acknowledges the event.

        Raises:
            ValueError: a reserved event name (``connect``, ``disconnect``, ...) or a value JSON
                cannot carry (NaN).
            TypeError: a value that is not JSON-serialisable, or a callback that is not callable.
        """
        if not isinstance(event, str):
            raise TypeError(f"an event name is a str, not {type(event).__name__}")
        if event in RESERVED_EVENTS:
            raise InvalidArgumentError(f"{event!r} is a reserved event name")
        if callback is not None and not callable(callback):
            raise TypeError("callback must be callable")
        ack_id = None
        if callback is not None:
            with self._lock:
                ack_id = next(self._ids)
        frames = encode_socket_packet(
            SocketPacket(SocketPacketType.EVENT, self._namespace, [event, *args], ack_id)
        )
        if callback is not None and ack_id is not None:
            with self._lock:
                self._acks[ack_id] = callback
        self._loop.call_soon_threadsafe(self._submit, frames, ack_id)

    def send(self, *args: Any, callback: Optional[Handler] = None) -> None:
        """Send a ``message`` event (socket.io's ``socket.send``), e.g. ``send({"text": "hi"})``."""
        self.emit("message", *args, callback=callback)

    def _submit(self, frames: list[Frame], ack_id: Optional[int]) -> None:
        if self._state == _CONNECTED:
            self._send_frames(frames)
        elif self._state == _CONNECTING:
            self._send_buffer.append(frames)
        elif ack_id is not None:
            with self._lock:
                self._acks.pop(ack_id, None)

    def _send_frames(self, frames: list[Frame]) -> None:
        ws = self._ws
        if ws is None or ws.readyState != ReadyState.OPEN:
            return
        for item in frames:
            ws.send(encode_engine_packet(EnginePacket(EnginePacketType.MESSAGE, item), self._eio))

    def _send_engine(self, ptype: EnginePacketType, data: str = "") -> None:
        ws = self._ws
        if ws is not None and ws.readyState == ReadyState.OPEN:
            ws.send(encode_engine_packet(EnginePacket(ptype, data), self._eio))

    def _send_socket(self, ptype: SocketPacketType, namespace: str, data: Any = None) -> None:
        self._send_frames(encode_socket_packet(SocketPacket(ptype, namespace, data)))

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Disconnect (``ondisconnect("io client disconnect")`` if connected); safe anywhere.

        While connecting, the attempt is abandoned with no event. A second call does nothing.
        """
        with self._lock:
            if self._close_requested:
                return
            self._close_requested = True
        self._loop.call_soon_threadsafe(self._close)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the connection is over and its WebSocket closed; False on timeout.

        Raises:
            InvalidStateError: inside a handler (it would block the thread that must finish it).
        """
        if self._loop.in_loop_thread():
            raise InvalidStateError("wait() blocks, and would deadlock inside a handler")
        return self._done.wait(timeout)

    def _close(self) -> None:
        if self._state == _CONNECTED:
            self._send_socket(SocketPacketType.DISCONNECT, self._namespace)
            self._finish("disconnect", "io client disconnect")
        else:
            self._finish("")
        self._close_transport()

    def _finish(self, event: str, *args: Any) -> None:
        """Decide how the connection ended (once) and tell the user; the transport closes next.

        ``event`` is ``"disconnect"``, ``"connect_error"`` or ``""`` (end silently).
        """
        if self._outcome is not None or self._state == _CLOSED:
            return
        self._outcome = (event, args)
        self._state = _CLOSING
        self._cancel_timers()
        with self._lock:
            acks_lost = bool(self._acks)
            self._acks.clear()
        if acks_lost:
            logger.debug("%r: closed with acknowledgements outstanding", self)
        self._send_buffer.clear()
        self._early.clear()
        if event:
            self._emit(event, args)

    def _close_transport(self) -> None:
        if self._ws is not None:
            self._ws.close()

    def _fail(self, reason: str, description: str) -> None:
        """A protocol failure: end the session with ``reason`` and close the transport."""
        if self._state == _CONNECTED:
            self._finish("disconnect", reason)
        else:
            self._finish("connect_error", {"message": reason, "description": description})
        self._close_transport()

    # -- transport -------------------------------------------------------------------------

    def _ws_url(self, version: int) -> str:
        query = urlencode([*self._query, ("EIO", str(version)), ("transport", "websocket")])
        return f"{self._ws_scheme}://{self._netloc}{self._path}?{query}"

    def _start_attempt(self, version: int) -> None:
        self._eio = version
        self._handshake = None
        self._probing = False
        self._decoder = SocketDecoder()
        self._ws_opened = False
        self._ws_error = None
        ws = WebSocket(self._ws_url(version), **self._options)
        self._ws = ws

        def onopen() -> None:
            if ws is self._ws:
                self._ws_opened = True

        def onerror(error: SocketError) -> None:
            if ws is self._ws:
                self._ws_error = error

        ws.onopen = onopen
        ws.onmessage = lambda event: self._on_ws_message(ws, event)
        ws.onerror = onerror
        ws.onclose = lambda event: self._on_ws_close(ws, event)

    def _arm_connect_timer(self) -> None:
        if self._timeout is not None and self._state == _CONNECTING:
            self._connect_timer = self._loop.call_later(self._timeout, self._on_connect_timeout)

    def _on_connect_timeout(self) -> None:
        self._connect_timer = None
        if self._state == _CONNECTING:
            self._finish("connect_error", {"message": "timeout"})
            self._close_transport()

    def _can_fall_back(self, ws: WebSocket) -> bool:
        """Whether the server refused this Engine.IO revision (so the next one may work)."""
        if not self._attempts or self._handshake is not None or self._outcome is not None:
            return False
        if self._ws_opened:
            # Upgraded, then closed without a handshake: socket.io 4 answers EIO=3 this way.
            return True
        error = ws.last_error
        return isinstance(error, ConnectionFailed) and error.error in _REFUSALS

    def _on_ws_close(self, ws: WebSocket, event: CloseData) -> None:
        if ws is not self._ws:
            return
        if self._state == _CONNECTING and self._can_fall_back(ws):
            version = self._attempts.popleft()
            logger.debug(
                "%r: %s refused Engine.IO v%d (%s); trying v%d",
                self,
                ws.url,
                self._eio,
                ws.last_error,
                version,
            )
            self._start_attempt(version)
            return
        if self._outcome is None:
            if self._state == _CONNECTED:
                reason = "transport error" if self._ws_error is not None else "transport close"
                self._finish("disconnect", reason)
            else:
                self._finish("connect_error", self._transport_error(ws, event))
        self._state = _CLOSED
        self._cancel_timers()
        self._done.set()

    def _transport_error(self, ws: WebSocket, event: CloseData) -> dict[str, Any]:
        error = ws.last_error
        if self._ws_error is None and error is None:
            return {
                "message": "transport close",
                "description": f"the WebSocket closed with {event.code} {event.reason}".strip(),
            }
        return {
            "message": "websocket error",
            "description": str(error) if error is not None else "",
            "error": self._ws_error,
        }

    def _on_ws_message(self, ws: WebSocket, event: MessageData) -> None:
        if ws is not self._ws or self._state in (_CLOSING, _CLOSED):
            return
        try:
            packet = decode_engine_packet(event.data, self._eio)
            if packet.type == EnginePacketType.OPEN:
                self._on_open_packet(packet.data)
                return
            if self._handshake is None:
                raise DecodeError(f"packet type {packet.type.name} before the open packet")
            self._last_rx = time.monotonic()
            if packet.type == EnginePacketType.PING:
                self._send_engine(EnginePacketType.PONG, _text(packet.data))
                if self._probing:
                    self._commit(4)  # only v4 servers ping
            elif packet.type == EnginePacketType.PONG:
                self._on_pong()
            elif packet.type == EnginePacketType.MESSAGE:
                socket_packet = self._decoder.feed(packet.data)
                if socket_packet is not None:
                    self._on_socket_packet(socket_packet)
            elif packet.type == EnginePacketType.CLOSE:
                self._close_transport()
            # UPGRADE and NOOP mean nothing on a WebSocket-only session.
        except DecodeError as exc:
            logger.warning("%r: protocol error: %s", self, exc)
            self._fail("parse error", str(exc))

    # -- Engine.IO session -----------------------------------------------------------------

    def _on_open_packet(self, data: Union[str, bytes]) -> None:
        if self._handshake is not None:
            raise DecodeError("a second open packet")
        self._handshake = parse_handshake(_text(data))
        self._last_rx = time.monotonic()
        if self._eio == 4 and self._auto and self._handshake.max_payload is None:
            self._probing = True
            self._probe_timer = self._loop.call_later(_PROBE_GRACE, self._commit, 4)
            return
        self._commit(self._eio)

    def _commit(self, version: int) -> None:
        """Settle the Engine.IO revision and start the session's side of the protocol."""
        self._probe_timer = _cancel(self._probe_timer)
        if self._state != _CONNECTING or self._handshake is None:
            return
        self._probing = False
        self._eio = version
        if version == 4:
            self._heartbeat_timer = self._loop.call_later(self._silence_limit(), self._watchdog)
            self._send_socket(SocketPacketType.CONNECT, self._namespace, self._auth)
        else:
            if self._auth is not None:
                logger.warning(
                    "%r: the server speaks Socket.IO v4 (socket.io 1.x/2.x), which has no auth "
                    "payload: auth is not sent (put credentials in the URL query)",
                    self,
                )
            self._schedule_ping()

    def _silence_limit(self) -> float:
        assert self._handshake is not None
        return self._handshake.ping_interval + self._handshake.ping_timeout

    def _watchdog(self) -> None:
        """v4: the server pings every pingInterval; silence past pingInterval+pingTimeout is
        a dead connection."""
        self._heartbeat_timer = None
        if self._state not in (_CONNECTING, _CONNECTED):
            return
        remaining = self._last_rx + self._silence_limit() - time.monotonic()
        if remaining > 0:
            self._heartbeat_timer = self._loop.call_later(remaining, self._watchdog)
            return
        self._fail("ping timeout", "the server stopped sending pings")

    def _schedule_ping(self) -> None:
        assert self._handshake is not None
        # A server may announce 0 (a sub-second interval rounded down): don't ping in a loop.
        interval = max(self._handshake.ping_interval, _MIN_PING_INTERVAL)
        self._heartbeat_timer = self._loop.call_later(interval, self._send_ping)

    def _send_ping(self) -> None:
        """v3: the client pings every pingInterval and wants a pong within pingTimeout."""
        self._heartbeat_timer = None
        if self._state not in (_CONNECTING, _CONNECTED) or self._handshake is None:
            return
        self._send_engine(EnginePacketType.PING)
        self._pong_timer = self._loop.call_later(self._handshake.ping_timeout, self._pong_missing)

    def _on_pong(self) -> None:
        if self._eio != 3 or self._pong_timer is None:
            return  # a v4 server has no reason to pong; ignore it
        self._pong_timer = _cancel(self._pong_timer)
        self._schedule_ping()

    def _pong_missing(self) -> None:
        self._pong_timer = None
        if self._state in (_CONNECTING, _CONNECTED):
            self._fail("ping timeout", "no pong within pingTimeout")

    def _cancel_timers(self) -> None:
        self._connect_timer = _cancel(self._connect_timer)
        self._probe_timer = _cancel(self._probe_timer)
        self._heartbeat_timer = _cancel(self._heartbeat_timer)
        self._pong_timer = _cancel(self._pong_timer)

    # -- Socket.IO session -----------------------------------------------------------------

    def _on_socket_packet(self, packet: SocketPacket) -> None:
        if self._probing:
            # A server that talks before our CONNECT is a v3 one (Socket.IO v4 connects the
            # default namespace by itself): speak v3 from here on.
            self._commit(3)
        ptype = packet.type
        if packet.namespace != self._namespace:
            if self._eio == 3 and packet.namespace == "/" and self._state == _CONNECTING:
                # The default namespace, joined by the server itself, comes first; then ours.
                if ptype == SocketPacketType.CONNECT:
                    self._send_socket(SocketPacketType.CONNECT, self._namespace)
                elif ptype == SocketPacketType.CONNECT_ERROR:
                    self._finish("connect_error", connect_error_data(packet.data))
                    self._close_transport()
            return
        if ptype == SocketPacketType.CONNECT:
            self._on_connect(packet)
        elif ptype == SocketPacketType.CONNECT_ERROR:
            if self._state == _CONNECTING:
                self._finish("connect_error", connect_error_data(packet.data))
                self._close_transport()
            else:  # Socket.IO v4 servers may report errors on a connected socket
                self._on_event("error", [packet.data], None)
        elif ptype == SocketPacketType.DISCONNECT:
            if self._state == _CONNECTED:
                self._finish("disconnect", "io server disconnect")
            else:
                self._finish("connect_error", {"message": "the server disconnected"})
            self._close_transport()
        elif ptype == SocketPacketType.EVENT:
            name = str(packet.data[0])
            if name in RESERVED_EVENTS:
                logger.debug("%r: ignoring an event named %r", self, name)
            elif self._state == _CONNECTING:
                self._early.append((name, packet.data[1:], packet.id))  # python-socketio
            else:
                self._on_event(name, packet.data[1:], packet.id)
        elif ptype == SocketPacketType.ACK:
            with self._lock:
                callback = self._acks.pop(packet.id, None) if packet.id is not None else None
            if callback is not None:
                self._loop.dispatch(self, callback, *packet.data)

    def _on_connect(self, packet: SocketPacket) -> None:
        if self._state != _CONNECTING:
            return
        assert self._handshake is not None
        if self._eio == 4 and self._auto and not isinstance(packet.data, dict):
            # Every v5 server answers CONNECT with {"sid": ...}; a bare CONNECT is a v3 server's
            # own, late for the probe: speak v3 (the client pings) from here on.
            logger.debug("%r: a CONNECT without a sid: the server speaks Engine.IO v3", self)
            self._heartbeat_timer = _cancel(self._heartbeat_timer)
            self._eio = 3
            self._schedule_ping()
        if isinstance(packet.data, dict) and isinstance(packet.data.get("sid"), str):
            self._id = packet.data["sid"]
        elif self._namespace == "/":
            self._id = self._handshake.sid
        else:
            self._id = f"{self._namespace}#{self._handshake.sid}"
        self._state = _CONNECTED
        self._connect_timer = _cancel(self._connect_timer)
        self._emit("connect")
        early, self._early = self._early, []
        for name, args, ack_id in early:
            if self._state != _CONNECTED:
                break
            self._on_event(name, args, ack_id)
        buffered, self._send_buffer = self._send_buffer, []
        for frames in buffered:
            self._send_frames(frames)


def _cancel(timer: Optional[TimerHandle]) -> Optional[TimerHandle]:
    """Cancel a timer (on the I/O thread); returns ``None`` to clear the attribute holding it."""
    if timer is not None:
        timer.cancel()
    return None


def _text(data: Union[str, bytes]) -> str:
    if isinstance(data, bytes):
        raise DecodeError("binary data where the protocol wants text")
    return data


def _split_url(url: str) -> tuple[str, str, list[tuple[str, str]], str]:
    """``(ws scheme, netloc, query pairs without Engine.IO's own, namespace or "")``."""
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises for a bad port
    except ValueError as exc:
        raise InvalidArgumentError(f"invalid URL {url!r}: {exc}") from None
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None:
        raise InvalidArgumentError(f"a Socket.IO URL is http(s):// or ws(s)://, not {url!r}")
    if not parts.hostname:
        raise InvalidArgumentError(f"the URL has no host: {url!r}")
    if parts.fragment:
        raise InvalidArgumentError(f"the URL has a fragment: {url!r}")
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k not in ("EIO", "transport", "sid")
    ]
    namespace = parts.path.rstrip("/") if parts.path not in ("", "/") else ""
    return scheme, parts.netloc, query, namespace
