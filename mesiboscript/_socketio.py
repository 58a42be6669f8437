"""``SocketIO``: a Socket.IO client that behaves like socket.io-client, for old and new servers.

One :class:`SocketIO` is one *manager* (socket.io-client's ``Manager``: one Engine.IO session
over one WebSocket, its heartbeat and its reconnection) plus its main namespace; ``of(name)``
gives the handle of another namespace over the same connection. It speaks Engine.IO v4 with
Socket.IO v5 (socket.io 3/4, python-socketio 5) and Engine.IO v3 with Socket.IO v4 (socket.io
1.x/2.x, as Botmaster's ``botmaster-socket.io`` runs), chosen by the ``protocol`` option;
``"auto"`` tries v4 and falls back to v3 when the server refuses it or turns out to speak v3.
The wire format is :mod:`mesiboscript._engineio`; reconnection follows the one policy of
:mod:`mesiboscript._reconnect` with socket.io-client's defaults.

Threads: all protocol work runs on the library's one I/O thread, inside the WebSocket's handlers
and in callbacks handed to that thread; so do the user's handlers, as for ``WebSocket``. Calls from
other threads (``emit``, ``call``, ``close``, setting handlers) validate, encode, queue under the
lock and hand over.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import re
import threading
import time
from collections import deque
from typing import Any, Callable, Optional, TypeVar, Union, overload
from urllib.parse import parse_qsl, urlencode, urlsplit

from . import _lifetime
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
from ._exceptions import ConnectionClosed, ConnectionFailed, InvalidStateError
from ._loop import Loop, TimerHandle, get_loop
from ._polling import PollingListener, PollingSession
from ._proxy import check_proxy_option
from ._reconnect import SOCKETIO_DEFAULTS, Reconnector, ReconnectPolicy
from ._sendbuffer import SendBufferFull
from ._tls import make_context, proxy_context
from ._validation import InvalidArgumentError, check_header
from ._websocket import WebSocket
from .sansio.deflate import DeflateOptions

__all__ = ["Namespace", "SocketIO"]

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
_TRANSPORTS = ("polling", "websocket")

# Manager (Engine.IO session) states.
_OPENING, _OPEN, _WAITING, _CLOSED = "opening", "open", "waiting", "closed"
# Namespace states: waiting for the session (idle), CONNECT sent, connected, done for good.
_IDLE, _JOINING, _JOINED, _DONE = "idle", "connecting", "connected", "closed"


class _Ack:
    """An acknowledgement we wait for: a callback (``emit(..., callback=)``) or a future
    (``call``). ``sent``: the packet went out on the current connection."""

    __slots__ = ("callback", "future", "sent")

    def __init__(
        self,
        callback: Optional[Handler] = None,
        future: Optional[concurrent.futures.Future[Any]] = None,
    ) -> None:
        self.callback = callback
        self.future = future
        self.sent = False


class Namespace(StrictHandlers, EventTarget):
    """One Socket.IO namespace over a :class:`SocketIO`'s connection (``sio.of("/chat")``).

    Handlers, all run on the library's I/O thread:

    - ``onconnect()``: the namespace is connected (again, after a reconnection); ``id`` is its
      Socket.IO session id.
    - ``onmessage(*args)``: a ``message`` event (what ``socket.send`` sends), usually one value.
    - ``on(event, fn)``: ``fn(*args)`` for any event; also ``"connect"``, ``"message"``,
      ``"connect_error"`` and ``"disconnect"``. ``on("*", fn)``: ``fn(event, *args)`` for events
      that have no handler of their own (python-socketio's catch-all). If the server asked for an
      acknowledgement, the value the handler returns is sent back (a tuple as several arguments,
      ``None`` as none).
    - ``ondisconnect(reason)``: the namespace was connected and is not any more; ``reason`` is
      socket.io-client's: ``"io server disconnect"``, ``"io client disconnect"``,
      ``"ping timeout"``, ``"transport close"``, ``"transport error"`` or ``"parse error"``.
      After the last three the connection is retried (``reconnection=True``), and ``onconnect``
      fires again once it is back.
    - ``onconnect_error(data)``: joining failed; ``data`` is a dict with at least ``"message"``.
      A server's refusal (middleware, auth) keeps its fields (``"data"`` holds what the server
      attached); a transport failure gives ``"websocket error"`` (or ``"timeout"``) with
      ``"description"`` and the ``"error"`` (a :class:`SocketError`) where there is one.

    As for ``WebSocket``, handlers set right after the constructor miss nothing: one-shot events
    (connect, connect_error, disconnect) and events that arrive before any handler for their name
    wait (up to 1024 per name) until one is set.
    """

    onconnect: EventHandler[Callable[[], object]] = EventHandler(doc="onconnect(): connected.")
    onmessage: EventHandler[Callable[..., object]] = EventHandler(doc="onmessage(*args)")
    ondisconnect: EventHandler[Callable[[str], object]] = EventHandler(doc="ondisconnect(reason)")
    onconnect_error: EventHandler[Callable[[dict[str, Any]], object]] = EventHandler(
        doc="onconnect_error(data): connecting failed; data['message'] says why."
    )

    _MAX_HELD = _MAX_HELD  # events of one name kept while no handler for it is set

    def __init__(self, manager: _Manager, name: str) -> None:
        """Made by :meth:`SocketIO.of` (and for ``namespaces=``), not by the user."""
        self._init_namespace(manager, name)

    def _init_namespace(self, manager: _Manager, name: str) -> None:
        self._manager = manager
        self._name = name
        self._lock = manager.lock
        self._init_events(manager.loop, self._lock)
        # Under the lock (any thread): what waits to go out, acks we wait for, state flags.
        self._outbox: deque[tuple[list[Frame], Optional[int]]] = deque()
        self._acks: dict[int, _Ack] = {}
        self._ready = False  # joined: emits go out now rather than waiting in the outbox
        self._finished = False  # closed for good: emits are dropped, calls fail
        self._close_requested = False
        # I/O thread only.
        self._state = _IDLE
        self._id: Optional[str] = None
        self._pid: Optional[str] = None  # connection state recovery: the private session id
        self._offset: Optional[str] = None  # ... and the offset of the last event received
        self._recovered = False
        self._early: list[tuple[str, list[Any], Optional[int]]] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._manager.display} {self._name} {self._state}>"

    # -- properties ------------------------------------------------------------------------

    @property
    def namespace(self) -> str:
        return self._name

    @property
    def connected(self) -> bool:
        """True from the connect event until the namespace is disconnected or closed."""
        return self._state == _JOINED and not self._close_requested

    @property
    def id(self) -> Optional[str]:
        """The Socket.IO session id the server gave this namespace (``None`` until connected)."""
        return self._id

    @property
    def recovered(self) -> bool:
        """The last connect resumed the previous session (socket.io >= 4.6
        ``connectionStateRecovery``): the server sent what was missed while disconnected."""
        return self._recovered

    # -- handlers --------------------------------------------------------------------------

    @overload
    def on(self, event: str) -> Callable[[_H], _H]: ...
    @overload
    def on(self, event: str, handler: _H) -> _H: ...
    def on(self, event: str, handler: Optional[_H] = None) -> Union[_H, Callable[[_H], _H]]:
        """Call ``handler(*args)`` for each ``event``; without ``handler``, a decorator.

        ``"*"`` is the catch-all: ``handler(event, *args)`` for events with no handler of their
        own. Adding the same handler twice for one event does nothing. Returns the handler.
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

    def _loop_call(self, callback: Callable[[], None]) -> None:
        self._manager.loop.call_soon_threadsafe(callback)

    def _dropping_held(self, type: str) -> None:
        logger.debug("%r: no handler for %r; dropping its oldest event", self, type)

    def _on_event(self, name: str, args: list[Any], ack_id: Optional[int]) -> None:
        """An event from the server: deliver it, or hold it until a handler for it is set."""
        if not self._listeners.get(name) and self._listeners.get("*"):
            # No handler of its own, a catch-all: it gets the event (python-socketio's "*").
            self._deliver_event("*", [name, *args], ack_id)
            return
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
                    SocketPacket(SocketPacketType.ACK, self._name, reply, ack_id)
                )
            except (TypeError, ValueError):
                logger.exception("%r: the %r handler returned what cannot be sent", self, name)
                return
            self._manager.send_frames(frames)

    # -- sending ---------------------------------------------------------------------------

    def emit(self, event: str, *args: Any, callback: Optional[Handler] = None) -> None:
        """Send an event with JSON-serialisable arguments (bytes-like values go as binary).

        Events emitted while not connected (before the first connect, or while reconnecting)
        wait in a bounded buffer and are sent once connected, in order; after the connection
        ended for good, nothing is sent and nothing is raised (as ``WebSocket.send`` once
        closing). ``callback(*args)`` runs when the server acknowledges the event.

        Raises:
            ValueError: a reserved event name (``connect``, ``disconnect``, ...) or a value JSON
                cannot carry (NaN).
            TypeError: a value that is not JSON-serialisable, or a callback that is not callable.
            SendBufferFull: ``max_buffered`` packets already wait for a connection (a
                ``BufferError``, as the Mesibo ``Socket``'s).
        """
        if callback is not None and not callable(callback):
            raise TypeError("callback must be callable")
        self._queue(event, args, _Ack(callback=callback) if callback is not None else None)

    def send(self, *args: Any, callback: Optional[Handler] = None) -> None:
        """Send a ``message`` event (socket.io's ``socket.send``), e.g. ``send({"text": "hi"})``."""
        self.emit("message", *args, callback=callback)

    def call(self, event: str, *args: Any, timeout: Optional[float] = 60) -> Any:
        """Emit ``event`` with an acknowledgement and wait for it; return the ack's arguments
        (``None`` for none, the value for one, a tuple for several).

        A call made while disconnected waits in the buffer as ``emit`` does, its timeout running.

        Raises:
            TimeoutError: no acknowledgement within ``timeout`` seconds.
            ConnectionClosed: the connection dropped (or was closed) before the acknowledgement.
            InvalidStateError: called inside a handler (it would block the thread that must
                receive the acknowledgement).
        """
        if self._manager.loop.in_loop_thread():
            raise InvalidStateError("call() blocks, and would deadlock inside a handler")
        if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
            raise InvalidArgumentError(f"timeout must be a positive number, not {timeout!r}")
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        ack_id = self._queue(event, args, _Ack(future=future))
        try:
            values = future.result(timeout)
        except concurrent.futures.TimeoutError:
            with self._lock:
                self._acks.pop(ack_id, None)  # an unsent packet is then skipped, not sent
            raise TimeoutError(
                f"no acknowledgement of {event!r} within {timeout} s on {self._name}"
            ) from None
        if not values:
            return None
        return values[0] if len(values) == 1 else tuple(values)

    def _queue(self, event: str, args: tuple[Any, ...], ack: Optional[_Ack]) -> int:
        """Encode an event and queue it (any thread); returns its ack id (-1 without ack)."""
        if not isinstance(event, str):
            raise TypeError(f"an event name is a str, not {type(event).__name__}")
        if event in RESERVED_EVENTS:
            raise InvalidArgumentError(f"{event!r} is a reserved event name")
        ack_id = self._manager.next_ack_id() if ack is not None else None
        frames = encode_socket_packet(
            SocketPacket(SocketPacketType.EVENT, self._name, [event, *args], ack_id)
        )
        limit = self._manager.max_buffered
        with self._lock:
            if self._finished or self._close_requested:
                if ack is not None and ack.future is not None:
                    raise ConnectionClosed(f"{self._name} on {self._manager.display} is closed")
                return -1
            if not self._ready and len(self._outbox) >= limit:
                raise SendBufferFull(
                    f"{limit} packets already wait for {self._manager.display} to connect "
                    "(max_buffered); not buffering more"
                )
            self._outbox.append((frames, ack_id))
            if ack is not None and ack_id is not None:
                self._acks[ack_id] = ack
        self._loop_call(self._flush)
        return -1 if ack_id is None else ack_id

    def _flush(self) -> None:
        """Send what waits in the outbox, in order, if joined (I/O thread)."""
        while self._state == _JOINED and self._manager.can_send():
            with self._lock:
                if not self._outbox:
                    return
                frames, ack_id = self._outbox.popleft()
                if ack_id is not None:
                    ack = self._acks.get(ack_id)
                    if ack is None:
                        continue  # the call timed out before it could be sent
                    ack.sent = True
            self._manager.send_frames(frames)

    def _send_socket(self, ptype: SocketPacketType, data: Any = None) -> None:
        self._manager.send_frames(encode_socket_packet(SocketPacket(ptype, self._name, data)))

    def _on_ack(self, packet: SocketPacket) -> None:
        with self._lock:
            ack = self._acks.pop(packet.id, None) if packet.id is not None else None
        if ack is None:
            return
        if ack.future is not None:
            if not ack.future.done():
                ack.future.set_result(list(packet.data))
        elif ack.callback is not None:
            self._manager.loop.dispatch(self, ack.callback, *packet.data)

    def _fail_acks(self, everything: bool) -> None:
        """The connection dropped: acks of packets sent on it will never come (``everything``:
        also those still waiting to be sent, which never will be)."""
        with self._lock:
            lost = [(i, a) for i, a in self._acks.items() if everything or a.sent]
            for ack_id, _ in lost:
                del self._acks[ack_id]
            if everything:
                self._outbox.clear()
        for _, ack in lost:
            if ack.future is not None and not ack.future.done():
                ack.future.set_exception(
                    ConnectionClosed(f"the connection to {self._manager.display} was lost")
                )
        if lost:
            logger.debug("%r: %d acknowledgement(s) lost with the connection", self, len(lost))

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Leave this namespace (``ondisconnect("io client disconnect")`` if connected); the
        connection closes when no namespace is left. Safe anywhere; a second call does nothing.
        """
        with self._lock:
            if self._close_requested:
                return
            self._close_requested = True
        self._loop_call(self._leave)

    disconnect = close

    def _leave(self) -> None:
        if self._state == _DONE:
            return
        if self._state == _JOINED:
            self._send_socket(SocketPacketType.DISCONNECT)
            self._end("disconnect", "io client disconnect")
        else:
            self._end("")
        self._manager.namespace_left()

    # -- the session (I/O thread, called by the manager) -----------------------------------

    def _join(self) -> None:
        """The Engine.IO session is open: send CONNECT (v5 with auth; v3 for other than /)."""
        if self._state != _IDLE:
            return
        self._state = _JOINING
        manager = self._manager
        if manager.eio == 3:
            if self._name != "/":
                self._send_socket(SocketPacketType.CONNECT)
            return
        try:
            auth = manager.auth_payload()
        except Exception as exc:
            logger.exception("%r: the auth callable failed", self)
            self._refused({"message": "auth error", "description": str(exc)})
            return
        if self._pid is not None:
            auth = {**(auth or {}), "pid": self._pid, "offset": self._offset}
        self._send_socket(SocketPacketType.CONNECT, auth)

    def _on_packet(self, packet: SocketPacket) -> None:
        ptype = packet.type
        if ptype == SocketPacketType.CONNECT:
            self._on_connect(packet)
        elif ptype == SocketPacketType.CONNECT_ERROR:
            if self._state == _JOINING:
                self._refused(connect_error_data(packet.data))
            elif self._state == _JOINED:  # Socket.IO v4 servers may report errors this way
                self._on_event("error", [packet.data], None)
        elif ptype == SocketPacketType.DISCONNECT:
            if self._state == _JOINED:
                self._end("disconnect", "io server disconnect")
            elif self._state == _JOINING:
                self._end("connect_error", {"message": "the server disconnected"})
            self._manager.namespace_left()
        elif ptype == SocketPacketType.EVENT:
            name = packet.data[0]
            if not isinstance(name, str):  # socket.io allows numbers; handlers are by name
                name = str(name)
            args = packet.data[1:]
            if name in RESERVED_EVENTS:
                logger.debug("%r: ignoring an event named %r", self, name)
                return
            if self._pid is not None and packet.id is None and args and isinstance(args[-1], str):
                # connectionStateRecovery appends the event's offset; keep it for the next
                # CONNECT and give handlers the event's own arguments.
                self._offset = args.pop()
            if self._state == _JOINING:
                self._early.append((name, args, packet.id))  # python-socketio
            elif self._state == _JOINED:
                self._on_event(name, args, packet.id)
        elif ptype == SocketPacketType.ACK:
            self._on_ack(packet)

    def _on_connect(self, packet: SocketPacket) -> None:
        if self._state != _JOINING:
            return
        manager = self._manager
        data = packet.data
        sid = data.get("sid") if isinstance(data, dict) else None
        pid = data.get("pid") if isinstance(data, dict) else None
        if isinstance(sid, str):
            self._id = sid
        elif self._name == "/":
            self._id = manager.engine_sid
        else:
            self._id = f"{self._name}#{manager.engine_sid}"
        previous_pid, self._pid = self._pid, pid if isinstance(pid, str) else None
        self._recovered = previous_pid is not None and previous_pid == self._pid
        self._state = _JOINED
        with self._lock:
            self._ready = True
        manager.namespace_joined()
        self._emit("connect")
        early, self._early = self._early, []
        for name, args, ack_id in early:
            if self._state != _JOINED:
                break
            self._on_event(name, args, ack_id)
        self._flush()

    def _refused(self, data: dict[str, Any]) -> None:
        """The server refused this namespace: it is done (socket.io-client does not retry a
        refusal), and the connection closes if it was the last one."""
        self._end("connect_error", data)
        self._manager.namespace_left()

    def _lost(self, reason: str, info: dict[str, Any], final: bool, report: bool = True) -> None:
        """The Engine.IO session ended (``final``: and will not be retried; ``report``: a
        namespace not joined gets ``connect_error``, as after a first attempt)."""
        if self._state == _DONE:
            return
        if self._state == _JOINED:
            with self._lock:
                self._ready = False
            self._fail_acks(everything=final)
            self._emit("disconnect", (reason,))
        elif final and report:
            self._warn_if_unheard(
                ("connect_error", "disconnect"),
                "Socket.IO connection to %s failed: %s; no onconnect_error handler is set",
                self._manager.display,
                info.get("message"),
            )
            self._emit("connect_error", (info,))
        self._early.clear()
        self._state = _IDLE
        if final:
            self._end("")

    def _end(self, event: str, *args: Any) -> None:
        """This namespace is done for good; tell the user (``event``, if any)."""
        if self._state == _DONE:
            return
        self._state = _DONE
        with self._lock:
            self._ready = False
            self._finished = True
        self._fail_acks(everything=True)
        self._early.clear()
        if event:
            self._emit(event, args)

    @property
    def _active(self) -> bool:
        return self._state != _DONE


class _LinkEnd:
    """How an Engine.IO link ended: ``refused`` (the server answered and said no: another
    protocol revision may work), ``info`` (the connect_error data), ``cause`` (the exception,
    for the reconnect policy), ``error`` (the :class:`SocketError`, if it failed)."""

    __slots__ = ("cause", "error", "info", "refused")

    def __init__(
        self,
        info: dict[str, Any],
        cause: Optional[BaseException] = None,
        error: Optional[SocketError] = None,
        refused: bool = False,
    ) -> None:
        self.info = info
        self.cause = cause
        self.error = error
        self.refused = refused

    def __repr__(self) -> str:
        return f"<_LinkEnd {self.info.get('message')!r} {self.cause!r}>"


class _Link:
    """One Engine.IO transport of a manager: it reports to ``manager.link_packets`` and, once,
    ``manager.link_closed`` (I/O thread)."""

    name = ""

    @property
    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def send(self, packets: list[EnginePacket]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def discard(self) -> None:
        """End at once without reporting (a failed probe, polling after the upgrade)."""
        raise NotImplementedError

    def abort(self) -> None:
        """End now, the end reported at once (the session failed: nothing to wait for)."""
        self.close()


class _WSLink(_Link):
    """Engine.IO over this library's :class:`WebSocket`: one packet per message."""

    name = "websocket"

    def __init__(
        self, manager: _Manager, url: str, options: dict[str, Any], probe: bool = False
    ) -> None:
        self._manager = manager
        self._url = url
        self._options = options
        self._probe = probe
        self._opened = False
        self._error: Optional[SocketError] = None
        self._discarded = False
        self._ws: Optional[WebSocket] = None

    @property
    def ready(self) -> bool:
        ws = self._ws
        return ws is not None and ws.readyState == ReadyState.OPEN

    @property
    def websocket(self) -> Optional[WebSocket]:
        return self._ws

    def start(self) -> None:
        ws = WebSocket(self._url, **self._options)
        self._ws = ws
        ws.onopen = self._on_open
        ws.onmessage = self._on_message
        ws.onerror = self._on_error
        ws.onclose = self._on_close

    def send(self, packets: list[EnginePacket]) -> None:
        ws = self._ws
        if ws is None or ws.readyState != ReadyState.OPEN:
            return
        version = self._manager.eio
        for packet in packets:
            ws.send(encode_engine_packet(packet, version))

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()

    def discard(self) -> None:
        self._discarded = True
        self.close()

    def _on_open(self) -> None:
        self._opened = True
        if self._probe and not self._discarded:
            self._manager.probe_opened(self)

    def _on_error(self, error: SocketError) -> None:
        self._error = error

    def _on_message(self, event: MessageData) -> None:
        if self._discarded:
            return
        try:
            packet = decode_engine_packet(event.data, self._manager.eio)
        except DecodeError as exc:
            self._manager.parse_error(self, exc)
            return
        self._manager.link_packets(self, [packet])

    def _on_close(self, event: CloseData) -> None:
        if self._discarded:
            return
        assert self._ws is not None
        error = self._ws.last_error
        if self._opened:
            # Upgraded, then closed without a handshake: socket.io 4 answers EIO=3 this way.
            refused = True
        else:
            refused = isinstance(error, ConnectionFailed) and error.error in _REFUSALS
        if self._error is None and error is None:
            info: dict[str, Any] = {
                "message": "transport close",
                "description": f"the WebSocket closed with {event.code} {event.reason}".strip(),
            }
        else:
            info = {
                "message": "websocket error",
                "description": str(error) if error is not None else "",
                "error": self._error,
            }
        self._manager.link_closed(self, _LinkEnd(info, error, self._error, refused))


class _PollLink(_Link, PollingListener):
    """Engine.IO over HTTP long-polling (:class:`~mesiboscript._polling.PollingSession`)."""

    name = "polling"

    def __init__(
        self, manager: _Manager, target: str, version: int, options: dict[str, Any]
    ) -> None:
        self._manager = manager
        secure = manager.secure
        host, port = manager.host_port
        context, cafile = options.get("ssl_context"), options.get("cafile")
        tls = make_context(context, cafile) if secure else None
        proxy_tls = proxy_context(tls, context, cafile)
        headers = options.get("headers") or {}
        header_list = list(headers.items()) if isinstance(headers, dict) else list(headers)
        if options.get("origin"):
            header_list.append(("Origin", str(options["origin"])))
        self._session = PollingSession(
            manager.loop,
            self,
            host,
            port,
            target,
            version,
            tls=tls,
            proxy=options.get("proxy"),
            scheme=manager.scheme,
            proxy_tls=proxy_tls,
            headers=[(str(k), str(v)) for k, v in header_list],
            host_header=manager.netloc,
            detect=manager.auto,
            request_timeout=options.get("connect_timeout", 30.0),
        )
        self._answered = False  # the server answered a request (so it speaks HTTP to us)
        self._done = False

    @property
    def ready(self) -> bool:
        return self._session.open and not self._done

    @property
    def version(self) -> int:
        return self._session.version

    def start(self) -> None:
        self._session.start()

    def send(self, packets: list[EnginePacket]) -> None:
        self._session.send(packets)

    def close(self) -> None:
        self._session.close()

    def discard(self) -> None:
        self._done = True
        self._session.discard()

    def abort(self) -> None:
        if self._done:
            return
        self.discard()
        end = _LinkEnd({"message": "transport close"})
        self._manager.loop.call_soon(self._manager.link_closed, self, end)

    def pause(self, callback: Callable[[], None]) -> None:
        self._session.pause(callback)

    def take_unsent(self) -> list[EnginePacket]:
        return self._session.take_unsent()

    def set_sid(self, sid: str) -> None:
        self._session.set_sid(sid)

    # -- PollingListener -------------------------------------------------------------------

    def polling_packets(self, session: PollingSession, packets: list[EnginePacket]) -> None:
        self._answered = True
        if not self._done:
            self._manager.link_packets(self, packets)

    def polling_closed(self, session: PollingSession, error: Optional[BaseException]) -> None:
        if self._done:
            return
        self._done = True
        if isinstance(error, DecodeError):
            self._manager.parse_error(self, error)
            self._manager.link_closed(self, _LinkEnd({"message": "parse error"}, error))
            return
        status = getattr(error, "status", None)
        refused = isinstance(status, int) and 400 <= status < 500 and not self._answered
        if error is None:
            info: dict[str, Any] = {"message": "transport close"}
            code = None
        else:
            code = error.error if isinstance(error, ConnectionFailed) else None
            info = {"message": "xhr poll error", "description": str(error), "error": code}
        self._manager.link_closed(self, _LinkEnd(info, error, code, refused))


class _Manager:
    """The Engine.IO session, its heartbeat and reconnection, shared by the namespaces."""

    def __init__(
        self,
        owner: SocketIO,
        url: str,
        ws_scheme: str,
        netloc: str,
        query: list[tuple[str, str]],
        path: str,
        protocol: Union[int, str],
        auth: Any,
        timeout: Optional[float],
        policy: Optional[ReconnectPolicy],
        max_buffered: int,
        transports: tuple[str, ...],
        options: dict[str, Any],
    ) -> None:
        self.owner = owner
        self.url = url
        self.display = _redact(url)  # for repr, logs and exceptions: no user:pass@
        self.lock = threading.Lock()
        self.loop: Loop = get_loop()
        self.max_buffered = max_buffered
        self._ws_scheme = ws_scheme
        self._netloc = self.netloc = netloc
        self.secure = ws_scheme == "wss"
        self.scheme = ws_scheme  # the proxy environment rules of ws/wss apply to polling too
        parts = urlsplit(f"{ws_scheme}://{netloc}")
        self.host_port = (parts.hostname or "", parts.port or (443 if self.secure else 80))
        self._transports = transports
        self._query = query
        self._path = path
        self._auth = auth
        self._auto = self.auto = protocol == "auto"
        self._timeout = timeout
        self._options = options
        self._ids = itertools.count()
        self._reconnector = Reconnector(policy) if policy is not None else None
        self.done = threading.Event()
        self.namespaces: dict[str, Namespace] = {}

        # I/O thread only (but for the first attempt, set up before any event can run).
        self._state = _OPENING
        self._closing = False  # close() was called
        self._ever_joined = False  # some namespace connected once: drops are then retried
        self._joined_now = False  # ... on the current Engine.IO session
        self._attempt = 0  # reconnection attempts since the last successful connection
        self._versions: deque[int] = deque([4, 3] if self._auto else [int(protocol)])
        self.eio = 4
        self._link: Optional[_Link] = None
        self._probe: Optional[_Link] = None  # a WebSocket probing the upgrade from polling
        self._handshake: Optional[Handshake] = None
        self._probing = False
        self._decoder = SocketDecoder()
        self._end_reason: Optional[tuple[str, dict[str, Any]]] = None
        self._last_rx = 0.0
        self._connect_timer: Optional[TimerHandle] = None
        self._probe_timer: Optional[TimerHandle] = None
        self._heartbeat_timer: Optional[TimerHandle] = None
        self._pong_timer: Optional[TimerHandle] = None
        self._retry_timer: Optional[TimerHandle] = None

    def start(self) -> None:
        """Begin the first attempt, on the I/O thread (sockets are only touched there)."""
        self.loop.call_soon_threadsafe(self._first_attempt)

    def _first_attempt(self) -> None:
        if self._closing:
            self._finalize()
            return
        try:
            self._start_attempt(self._versions.popleft())
        except Exception as exc:  # a headers callable that raised, or returned bad headers
            logger.exception("%r: could not start connecting", self.owner)
            for ns in list(self.namespaces.values()):
                ns._lost(
                    "transport error",
                    {"message": "transport error", "description": str(exc)},
                    final=True,
                )
            self._finalize()
            return
        self._arm_connect_timer()

    # -- interface for the namespaces ------------------------------------------------------

    @property
    def engine_sid(self) -> str:
        return self._handshake.sid if self._handshake is not None else ""

    @property
    def protocol(self) -> Optional[int]:
        return None if self._handshake is None or self._probing else self.eio

    def next_ack_id(self) -> int:
        with self.lock:
            return next(self._ids)

    def auth_payload(self) -> Optional[dict[str, Any]]:
        """The auth object for a CONNECT: the option, or what its callable returns now."""
        auth = self._auth() if callable(self._auth) else self._auth
        if auth is not None:
            _check_auth(auth)
        return auth  # type: ignore[no-any-return]

    def can_send(self) -> bool:
        link = self._link
        return self._state == _OPEN and link is not None and link.ready

    def send_frames(self, frames: list[Frame]) -> None:
        if self.can_send():
            assert self._link is not None
            self._link.send([EnginePacket(EnginePacketType.MESSAGE, item) for item in frames])

    def namespace_joined(self) -> None:
        self._connect_timer = _cancel(self._connect_timer)
        self._ever_joined = self._joined_now = True

    def namespace_left(self) -> None:
        """A namespace is done (closed, refused, disconnected by the server): with none left,
        the connection is not needed any more (socket.io-client's Manager closes then)."""
        if not any(ns._active for ns in self.namespaces.values()):
            self._close_for_good()

    def add_namespace(self, ns: Namespace) -> None:
        """A namespace was added after start (``of()``): join it if the session is open."""
        if (
            self._state == _OPEN
            and not self._probing
            and (self.eio == 4 or self._v3_default_joined)
        ):
            ns._join()

    _v3_default_joined = False

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """``close()`` of the SocketIO (I/O thread): leave every namespace, end everything."""
        if self._closing:
            return
        self._closing = True
        for ns in list(self.namespaces.values()):
            ns._leave()
        self._close_for_good()

    def _close_for_good(self) -> None:
        self._closing = True
        self._retry_timer = _cancel(self._retry_timer)
        if self._state == _WAITING or self._link is None:
            self._finalize()
        elif self._state != _CLOSED:
            self._close_transport()

    def _finalize(self) -> None:
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        self._cancel_timers()
        for ns in list(self.namespaces.values()):
            ns._lost("io client disconnect", {"message": "closed"}, final=True)
        self.done.set()
        _lifetime.release(self.owner)

    def _close_transport(self) -> None:
        self._drop_probe()
        if self._link is not None:
            self._link.close()

    def _fail(self, reason: str, description: str) -> None:
        """A protocol failure: end the session with ``reason`` and close the transport."""
        if self._end_reason is None:
            self._end_reason = (reason, {"message": reason, "description": description})
        self._drop_probe()
        if self._link is not None:
            self._link.abort()

    # -- transport -------------------------------------------------------------------------

    def _target(self, transport: str, version: int, sid: Optional[str] = None) -> str:
        pairs = [*self._query, ("EIO", str(version)), ("transport", transport)]
        if sid is not None:
            pairs.append(("sid", sid))
        return f"{self._path}?{urlencode(pairs)}"

    def _link_options(self) -> dict[str, Any]:
        options = dict(self._options)
        headers = options.get("headers")
        if callable(headers):
            options["headers"] = headers()
        return options

    def _start_attempt(self, version: int) -> None:
        self.eio = version
        self._state = _OPENING
        self._handshake = None
        self._probing = False
        self._v3_default_joined = False
        self._decoder = SocketDecoder()
        self._end_reason = None
        self._joined_now = False
        self._drop_probe()
        options = self._link_options()
        link: _Link
        if "polling" in self._transports:
            link = _PollLink(self, self._target("polling", version), version, options)
        else:
            url = f"{self._ws_scheme}://{self._netloc}{self._target('websocket', version)}"
            link = _WSLink(self, url, options)
        self._link = link
        link.start()

    def _arm_connect_timer(self) -> None:
        if self._timeout is not None and self._state == _OPENING:
            self._connect_timer = self.loop.call_later(self._timeout, self._on_connect_timeout)

    def _on_connect_timeout(self) -> None:
        self._connect_timer = None
        if not self._joined_now and self._state in (_OPENING, _OPEN):
            self._end_reason = ("timeout", {"message": "timeout"})
            self._drop_probe()
            if self._link is not None:
                self._link.abort()

    def link_closed(self, link: _Link, end: _LinkEnd) -> None:
        """A link ended (I/O thread): the session's transport, or an upgrade probe."""
        if link is self._probe:
            logger.debug("%r: the WebSocket upgrade failed (%s); staying on polling", self, end)
            self._probe = None
            return
        if link is not self._link:
            return
        logger.debug("%r: the %s transport ended: %r", self.owner, link.name, end)
        fall_back = self._versions and self._handshake is None and not self._closing
        if fall_back and end.refused and not self._ever_joined and self._end_reason is None:
            version = self._versions.popleft()
            logger.debug(
                "%r: the server refused Engine.IO v%d (%s); trying v%d",
                self.owner,
                self.eio,
                end.cause,
                version,
            )
            self._start_attempt(version)
            return
        self._versions.clear()  # settled: reconnections use the revision that worked
        self._cancel_timers()
        self._drop_probe()
        joined = self._joined_now
        if self._end_reason is not None:
            reason, info = self._end_reason
        elif joined:
            reason = "transport error" if end.error is not None else "transport close"
            info = {"message": reason}
        else:
            reason = "transport error"
            info = end.info
        if self._closing or self._state == _CLOSED:
            self._finalize()
            return
        delay: Optional[float] = None
        reconnector = self._reconnector
        if reconnector is not None and self._ever_joined:
            now = time.monotonic()
            cause = end.cause
            delay = reconnector.lost(now, cause) if joined else reconnector.failed(cause)
        if delay is None:
            for ns in list(self.namespaces.values()):
                ns._lost(reason, info, final=True, report=not self._ever_joined)
            if reconnector is not None and self._ever_joined:
                logger.info("%r: giving up reconnecting (%s)", self.owner, reconnector.stop_reason)
                self.owner._reconnect_failed()
            self._finalize()
            return
        for ns in list(self.namespaces.values()):
            ns._lost(reason, info, final=False)
        if not joined:
            self.owner._manager_event("reconnect_error", info)
        self._state = _WAITING
        logger.debug("%r: reconnecting in %.2f s", self.owner, delay)
        self._retry_timer = self.loop.call_later(delay, self._reconnect)

    def _reconnect(self) -> None:
        self._retry_timer = None
        if self._state != _WAITING or self._closing:
            return
        self._attempt += 1
        self.owner._manager_event("reconnect_attempt", self._attempt)
        try:
            self._start_attempt(self.eio)
        except Exception as exc:
            logger.exception(
                "%r: reconnection attempt %d failed to start", self.owner, self._attempt
            )
            info = {"message": "transport error", "description": str(exc)}
            for ns in list(self.namespaces.values()):
                ns._lost("transport error", info, final=True)
            self.owner._reconnect_failed()
            self._finalize()
            return
        self._arm_connect_timer()

    def link_packets(self, link: _Link, packets: list[EnginePacket]) -> None:
        """Engine.IO packets from a link (I/O thread)."""
        if link is self._probe:
            self._on_probe_packets(packets)
            return
        if link is not self._link or self._state == _CLOSED or self._end_reason is not None:
            return
        try:
            for packet in packets:
                if self._link is not link or self._end_reason is not None:
                    return
                self._on_packet(link, packet)
        except DecodeError as exc:
            self.parse_error(link, exc)

    def parse_error(self, link: _Link, exc: DecodeError) -> None:
        """Malformed input from the server: the session ends with "parse error"."""
        if link is self._probe:
            self._drop_probe()
            return
        if link is self._link:
            logger.warning("%r: protocol error: %s", self.owner, exc)
            self._fail("parse error", str(exc))

    def _on_packet(self, link: _Link, packet: EnginePacket) -> None:
        if packet.type == EnginePacketType.OPEN:
            self._on_open_packet(link, packet.data)
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
        # NOOP (a long poll released) and UPGRADE (a client's packet) need nothing here.

    def _send_engine(self, ptype: EnginePacketType, data: str = "") -> None:
        link = self._link
        if link is not None and link.ready:
            link.send([EnginePacket(ptype, data)])

    # -- the upgrade from polling to WebSocket (socket.io-client's probe) ------------------

    def _maybe_upgrade(self) -> None:
        handshake = self._handshake
        if (
            not isinstance(self._link, _PollLink)
            or "websocket" not in self._transports
            or handshake is None
            or "websocket" not in handshake.upgrades
        ):
            return
        target = self._target("websocket", self.eio, handshake.sid)
        url = f"{self._ws_scheme}://{self._netloc}{target}"
        self._probe = probe = _WSLink(self, url, self._link_options(), probe=True)
        probe.start()

    def probe_opened(self, link: _Link) -> None:
        if link is self._probe:
            link.send([EnginePacket(EnginePacketType.PING, "probe")])

    def _on_probe_packets(self, packets: list[EnginePacket]) -> None:
        probe, poll = self._probe, self._link
        if probe is None or not isinstance(poll, _PollLink):
            return
        for packet in packets:
            if packet.type == EnginePacketType.PONG and packet.data == "probe":
                poll.pause(lambda: self._upgrade(probe, poll))
                return
        logger.debug("%r: an unexpected answer to the upgrade probe", self.owner)
        self._drop_probe()

    def _upgrade(self, probe: _Link, poll: _PollLink) -> None:
        """Polling is paused and drained: switch to the WebSocket (send the upgrade packet, then
        what waited), and forget the polling session."""
        if self._probe is not probe or self._link is not poll or self._state != _OPEN:
            return
        self._probe = None
        unsent = poll.take_unsent()
        poll.discard()
        self._link = probe
        probe.send([EnginePacket(EnginePacketType.UPGRADE), *unsent])
        logger.debug("%r: upgraded to WebSocket", self.owner)

    def _drop_probe(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.discard()

    @property
    def transport(self) -> Optional[str]:
        """``"polling"`` or ``"websocket"``: what carries the session now."""
        link = self._link
        return None if link is None else link.name

    # -- Engine.IO session -----------------------------------------------------------------

    def _on_open_packet(self, link: _Link, data: Union[str, bytes]) -> None:
        if self._handshake is not None:
            raise DecodeError("a second open packet")
        self._handshake = parse_handshake(_text(data))
        self._last_rx = time.monotonic()
        if isinstance(link, _PollLink):
            # The payload's encoding told the revision apart: no need to guess.
            link.set_sid(self._handshake.sid)
            self._commit(link.version)
            return
        if self.eio == 4 and self._auto and self._handshake.max_payload is None:
            self._probing = True
            self._probe_timer = self.loop.call_later(_PROBE_GRACE, self._commit, 4)
            return
        self._commit(self.eio)

    def _commit(self, version: int) -> None:
        """Settle the Engine.IO revision and start the session's side of the protocol."""
        self._probe_timer = _cancel(self._probe_timer)
        if self._state != _OPENING or self._handshake is None:
            return
        self._probing = False
        self.eio = version
        self._state = _OPEN
        if self._reconnector is not None:
            self._reconnector.connected(time.monotonic())
        if self._attempt:
            self._attempt = 0
            self.owner._manager_event("reconnect")
        if version == 4:
            self._heartbeat_timer = self.loop.call_later(self._silence_limit(), self._watchdog)
            for ns in list(self.namespaces.values()):
                ns._join()
        else:
            if self._auth is not None:
                logger.warning(
                    "%r: the server speaks Socket.IO v4 (socket.io 1.x/2.x), which has no auth "
                    "payload: auth is not sent (put credentials in the URL query)",
                    self.owner,
                )
            self._schedule_ping()
        self._maybe_upgrade()

    def _silence_limit(self) -> float:
        assert self._handshake is not None
        return self._handshake.ping_interval + self._handshake.ping_timeout

    def _watchdog(self) -> None:
        """v4: the server pings every pingInterval; silence past pingInterval+pingTimeout is
        a dead connection."""
        self._heartbeat_timer = None
        if self._state not in (_OPENING, _OPEN):
            return
        remaining = self._last_rx + self._silence_limit() - time.monotonic()
        if remaining > 0:
            self._heartbeat_timer = self.loop.call_later(remaining, self._watchdog)
            return
        self._fail("ping timeout", "the server stopped sending pings")

    def _schedule_ping(self) -> None:
        assert self._handshake is not None
        # A server may announce 0 (a sub-second interval rounded down): don't ping in a loop.
        interval = max(self._handshake.ping_interval, _MIN_PING_INTERVAL)
        self._heartbeat_timer = self.loop.call_later(interval, self._send_ping)

    def _send_ping(self) -> None:
        """v3: the client pings every pingInterval and wants a pong within pingTimeout."""
        self._heartbeat_timer = None
        if self._state not in (_OPENING, _OPEN) or self._handshake is None:
            return
        self._send_engine(EnginePacketType.PING)
        self._pong_timer = self.loop.call_later(self._handshake.ping_timeout, self._pong_missing)

    def _on_pong(self) -> None:
        if self.eio != 3 or self._pong_timer is None:
            return  # a v4 server has no reason to pong; ignore it
        self._pong_timer = _cancel(self._pong_timer)
        self._schedule_ping()

    def _pong_missing(self) -> None:
        self._pong_timer = None
        if self._state in (_OPENING, _OPEN):
            self._fail("ping timeout", "no pong within pingTimeout")

    def _cancel_timers(self) -> None:
        self._connect_timer = _cancel(self._connect_timer)
        self._probe_timer = _cancel(self._probe_timer)
        self._heartbeat_timer = _cancel(self._heartbeat_timer)
        self._pong_timer = _cancel(self._pong_timer)
        self._retry_timer = _cancel(self._retry_timer)

    # -- Socket.IO packets -----------------------------------------------------------------

    def _on_socket_packet(self, packet: SocketPacket) -> None:
        if self._probing:
            # A server that talks before our CONNECT is a v3 one (Socket.IO v4 connects the
            # default namespace by itself): speak v3 from here on.
            self._commit(3)
        if (
            packet.type == SocketPacketType.CONNECT
            and self.eio == 4
            and self._auto
            and not isinstance(packet.data, dict)
            and not self._ever_joined
            and not self._v3_default_joined
        ):
            # Every v5 server answers CONNECT with {"sid": ...}; a bare CONNECT is a v3 server's
            # own, late for the probe: speak v3 (the client pings) from here on.
            logger.debug("%r: a CONNECT without a sid: the server speaks Engine.IO v3", self.owner)
            self._heartbeat_timer = _cancel(self._heartbeat_timer)
            self.eio = 3
            self._schedule_ping()
        ns = self.namespaces.get(packet.namespace)
        if self.eio == 3 and packet.namespace == "/" and not self._v3_default_joined:
            # v3: the server joins the default namespace by itself, first; then ours may join.
            if packet.type == SocketPacketType.CONNECT:
                self._v3_default_joined = True
                for other in list(self.namespaces.values()):
                    other._join()  # "/" only marks itself joining; the others send CONNECT
            elif packet.type == SocketPacketType.CONNECT_ERROR:
                data = connect_error_data(packet.data)
                for other in list(self.namespaces.values()):
                    if other._active:
                        other._refused(data)
                return
        if ns is not None:
            ns._on_packet(packet)

    def __repr__(self) -> str:
        return repr(self.owner)


class SocketIO(Namespace):
    """A Socket.IO client, in the callback style of :class:`WebSocket`; the handle of its main
    namespace (see :class:`Namespace` for the handlers) and of the connection.

    Connecting starts at construction. After an unexpected disconnect it reconnects with
    socket.io-client's backoff (1 s doubling to 5 s, randomization 0.5, unlimited attempts):
    ``ondisconnect(reason)`` first, then, once the connection is back, ``onreconnect()`` and
    ``onconnect()`` again for each namespace. When ``reconnection_attempts`` run out (or the
    failure cannot be fixed by retrying, such as a certificate that fails verification)
    ``on("reconnect_failed", fn)`` fires and nothing more is tried. Also, as socket.io-client's
    manager: ``on("reconnect_attempt", fn(n))`` and ``on("reconnect_error", fn(data))``. The
    first connection attempt is not retried: it fails with ``onconnect_error``.

    Args:
        url: ``http(s)://host:port[/namespace][?query]`` (``ws``/``wss`` work too). The query is
            sent with the handshake (Botmaster reads ``botmasterUserId`` there); a path names the
            main namespace, as in socket.io-client.
        protocol: ``4`` (Engine.IO v4 / Socket.IO v5), ``3`` (Engine.IO v3 / Socket.IO v4, for
            socket.io 1.x/2.x) or ``"auto"`` (v4 first, then v3 if the server refuses v4 or
            answers as a v3 server).
        path: the server's Engine.IO path (default ``"/socket.io/"``).
        namespace: the main namespace, if the URL has no path (default ``"/"``).
        namespaces: more namespaces to join over the same connection (``sio.of(name)`` is the
            handle of each). Without a URL path or ``namespace``, the first is the main one.
        auth: a dict sent with each v5 CONNECT (``socket.handshake.auth`` on the server), or a
            callable returning one, called at each (re)connection. v3 servers have no place for
            it: it is then not sent, and a warning is logged.
        transports: ``("websocket",)`` (the only transport so far).
        reconnection: reconnect after an unexpected disconnect (default True).
        reconnection_attempts: attempts in a row before giving up (0: unlimited).
        reconnection_delay, reconnection_delay_max, randomization_factor: the backoff.
        max_buffered: packets ``emit``/``send``/``call`` may buffer while not connected
            (default 1024); past it they raise ``SendBufferFull`` (a ``BufferError``).
        timeout: seconds allowed for each connection attempt (``None``: no limit); the first
            attempt then fails with ``onconnect_error({"message": "timeout"})``.
        **options: passed to :class:`WebSocket` (``headers`` (also a callable returning them,
            called at each attempt), ``origin``, ``ssl_context``, ``cafile``,
            ``connect_timeout``, ``ping_interval``, ``ping_timeout``, ``close_timeout``,
            ``max_size``, ``proxy`` (long-polling too: the ws/wss environment rules),
            ``compression``, ``compression_options``).

    Raises:
        ValueError: a bad URL, protocol, path, namespace or option (nothing is sent).
        TypeError: an auth payload that is not a JSON-serialisable dict; an unknown option.
    """

    onreconnect: EventHandler[Callable[[], object]] = EventHandler(
        doc="onreconnect(): the connection is back after a drop (before each onconnect)."
    )

    def __init__(
        self,
        url: str,
        *,
        protocol: Union[int, str] = "auto",
        path: str = "/socket.io/",
        namespace: Optional[str] = None,
        namespaces: Optional[list[str]] = None,
        auth: Union[dict[str, Any], Callable[[], dict[str, Any]], None] = None,
        transports: Any = ("polling", "websocket"),
        reconnection: bool = True,
        reconnection_attempts: int = 0,
        reconnection_delay: float = 1.0,
        reconnection_delay_max: float = 5.0,
        randomization_factor: float = 0.5,
        max_buffered: int = 1024,
        timeout: Optional[float] = 20.0,
        **options: Any,
    ) -> None:
        if protocol not in (3, 4, "auto") or isinstance(protocol, bool):
            raise InvalidArgumentError(f"protocol must be 3, 4 or 'auto', not {protocol!r}")
        if not isinstance(path, str) or not path.startswith("/") or "?" in path or "#" in path:
            raise InvalidArgumentError(f"path must be an absolute path, not {path!r}")
        if auth is not None and not callable(auth):
            _check_auth(auth)
        if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
            raise InvalidArgumentError(f"timeout must be a positive number, not {timeout!r}")
        _check_options(options)
        if isinstance(transports, str):
            transports = (transports,)
        transports = tuple(transports)
        if not transports or any(t not in _TRANSPORTS for t in transports):
            raise InvalidArgumentError(f"transports are 'polling' and 'websocket': {transports!r}")
        policy = _policy(
            reconnection,
            reconnection_attempts,
            reconnection_delay,
            reconnection_delay_max,
            randomization_factor,
        )
        if isinstance(max_buffered, bool) or not isinstance(max_buffered, int) or max_buffered < 0:
            raise InvalidArgumentError(f"max_buffered must be an int >= 0, not {max_buffered!r}")
        ws_scheme, netloc, query, url_namespace = _split_url(url)
        if namespace is None:
            namespace = url_namespace or None
        elif url_namespace and url_namespace != namespace:
            raise InvalidArgumentError(
                f"the URL names namespace {url_namespace!r} but namespace={namespace!r}"
            )
        extra = [_check_namespace(n) for n in (namespaces or [])]
        if namespace is None:
            namespace = extra[0] if extra else "/"
        _check_namespace(namespace)
        path = path if path.endswith("/") else path + "/"
        manager = _Manager(
            self,
            url,
            ws_scheme,
            netloc,
            query,
            path,
            protocol,
            auth,
            timeout,
            policy,
            max_buffered,
            transports,
            options,
        )
        self._init_namespace(manager, namespace)
        manager.namespaces[namespace] = self
        for name in extra:
            if name not in manager.namespaces:
                manager.namespaces[name] = Namespace(manager, name)
        # The process lives while the connection does, reconnection waits included; Ctrl-C and
        # a handler's sys.exit() close it.
        _lifetime.acquire(self, lambda code, reason: self.close())
        manager.start()

    def __repr__(self) -> str:
        return f"<SocketIO {self._manager.display} {self._name} {self._state}>"

    @property
    def url(self) -> str:
        """The URL given to the constructor."""
        return self._manager.url

    @property
    def protocol(self) -> Optional[int]:
        """The Engine.IO revision in use, 3 or 4; ``None`` until the server's handshake."""
        return self._manager.protocol

    def of(self, namespace: str) -> Namespace:
        """The handle of ``namespace`` over this connection, joining it if it is new."""
        _check_namespace(namespace)
        manager = self._manager
        with self._lock:
            ns = manager.namespaces.get(namespace)
            if ns is not None:
                return ns
            ns = Namespace(manager, namespace)
            manager.namespaces = {**manager.namespaces, namespace: ns}
        manager.loop.call_soon_threadsafe(manager.add_namespace, ns)
        return ns

    def close(self) -> None:
        """Disconnect every namespace (``ondisconnect("io client disconnect")`` where
        connected) and stop reconnecting; safe anywhere. A second call does nothing."""
        with self._lock:
            if self._close_requested:
                return
            self._close_requested = True
        self._manager.loop.call_soon_threadsafe(self._manager.close)

    disconnect = close

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the connection is over for good and its WebSocket closed; False on
        timeout.

        Raises:
            InvalidStateError: inside a handler (it would block the thread that must finish it).
        """
        if self._manager.loop.in_loop_thread():
            raise InvalidStateError("wait() blocks, and would deadlock inside a handler")
        return self._manager.done.wait(timeout)

    # -- manager events (I/O thread) -------------------------------------------------------

    def _manager_event(self, event: str, *args: Any) -> None:
        self._dispatch_event(event, args)

    def _reconnect_failed(self) -> None:
        self._emit("reconnect_failed")


def _policy(
    reconnection: bool, attempts: int, delay: float, delay_max: float, randomization: float
) -> Optional[ReconnectPolicy]:
    """The reconnect policy for the options (socket.io-client's backoff), or None if off."""
    if not isinstance(reconnection, bool):
        raise TypeError(f"reconnection must be a bool, not {type(reconnection).__name__}")
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
        raise InvalidArgumentError(f"reconnection_attempts must be an int >= 0, not {attempts!r}")
    for name, value in (("reconnection_delay", delay), ("reconnection_delay_max", delay_max)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise InvalidArgumentError(f"{name} must be a positive number, not {value!r}")
    if (
        isinstance(randomization, bool)
        or not isinstance(randomization, (int, float))
        or not 0 <= randomization < 1
    ):
        raise InvalidArgumentError(f"randomization_factor must be in [0, 1), not {randomization!r}")
    if not reconnection:
        return None
    return ReconnectPolicy(
        first_delay=float(delay),
        max_delay=float(max(delay, delay_max)),
        factor=SOCKETIO_DEFAULTS.factor,
        randomization=float(randomization),
        stable_after=SOCKETIO_DEFAULTS.stable_after,
        max_attempts=attempts or None,
    )


_WS_OPTIONS = frozenset(
    {
        "headers",
        "origin",
        "ssl_context",
        "cafile",
        "connect_timeout",
        "ping_interval",
        "ping_timeout",
        "close_timeout",
        "max_size",
        "proxy",
        "compression",
        "compression_options",
    }
)


def _check_options(options: dict[str, Any]) -> None:
    """Check the transport options at once (polling comes first: no WebSocket is made yet)."""
    unknown = sorted(set(options) - _WS_OPTIONS)
    if unknown:
        raise TypeError(f"SocketIO() got unexpected keyword argument(s): {', '.join(unknown)}")
    for name in ("connect_timeout", "ping_interval", "ping_timeout", "close_timeout"):
        value = options.get(name)
        if value is not None and not value > 0:
            raise InvalidArgumentError(
                f"{name} must be a positive number of seconds, not {value!r}"
            )
    max_size = options.get("max_size")
    if max_size is not None and (not isinstance(max_size, int) or max_size <= 0):
        raise InvalidArgumentError(f"max_size must be a positive int, not {max_size!r}")
    headers = options.get("headers")
    if isinstance(headers, dict):
        for key, value in headers.items():
            check_header(key, value)
    elif headers is not None and not callable(headers):
        raise TypeError("headers must be a dict or a callable returning one")
    if options.get("origin") is not None:
        check_header("Origin", options["origin"])
    check_proxy_option(options.get("proxy"))
    DeflateOptions.from_options(
        options.get("compression", "deflate"), options.get("compression_options")
    )


def _check_auth(auth: Any) -> None:
    if not isinstance(auth, dict):
        raise TypeError(f"auth must be a dict, not {type(auth).__name__}")
    encode_socket_packet(SocketPacket(SocketPacketType.CONNECT, "/", auth))  # JSON-able?


def _check_namespace(namespace: Any) -> str:
    if not isinstance(namespace, str) or not namespace.startswith("/"):
        raise InvalidArgumentError(f"a namespace starts with '/', not {namespace!r}")
    if any(c in namespace for c in ",?#"):
        raise InvalidArgumentError(f"a namespace has no ',', '?' or '#': {namespace!r}")
    return namespace


def _cancel(timer: Optional[TimerHandle]) -> Optional[TimerHandle]:
    """Cancel a timer (on the I/O thread); returns ``None`` to clear the attribute holding it."""
    if timer is not None:
        timer.cancel()
    return None


def _text(data: Union[str, bytes]) -> str:
    if isinstance(data, bytes):
        raise DecodeError("binary data where the protocol wants text")
    return data


_USERINFO = re.compile(r"(//)[^/?#@]*@")


def _redact(url: str) -> str:
    """``url`` with any ``user:pass@`` shown as ``***@``."""
    return _USERINFO.sub(r"\1***@", url)


def _split_url(url: str) -> tuple[str, str, list[tuple[str, str]], str]:
    """``(ws scheme, netloc, query pairs without Engine.IO's own, namespace or "")``."""
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    shown = _redact(url)
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises for a bad port
    except ValueError as exc:
        raise InvalidArgumentError(f"invalid URL {shown!r}: {exc}") from None
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None:
        raise InvalidArgumentError(f"a Socket.IO URL is http(s):// or ws(s)://, not {shown!r}")
    if not parts.hostname:
        raise InvalidArgumentError(f"the URL has no host: {shown!r}")
    if parts.fragment:
        raise InvalidArgumentError(f"the URL has a fragment: {shown!r}")
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k not in ("EIO", "transport", "sid")
    ]
    namespace = parts.path.rstrip("/") if parts.path not in ("", "/") else ""
    return scheme, parts.netloc, query, namespace
