"""Locust users for load tests of WebSocket and Socket.IO servers (the ``locust`` extra).

::

    from locust import task
    from mesiboscript.contrib.locust import WebSocketUser

    class Echo(WebSocketUser):
        host = "ws://127.0.0.1:8765/chat"

        def on_start(self):
            self.connect()

        @task
        def ping(self):
            self.request("ping", match=lambda message: message == "ping")

Each user's connection is a mesiboscript connection on the library's one I/O loop, which Locust's
gevent makes a greenlet (see :func:`mesiboscript._lifetime.green_threads`): a worker runs
thousands of users without a thread each. It works in Locust's distributed mode as in one process:
nothing here is shared between users but that loop.

Connecting and each :meth:`~WebSocketUser.request` are reported to Locust as request events:
``request_type`` ``"WS"`` or ``"SIO"``, the name (the URL's path, ``connect <path>`` for the
connection, or what ``name=`` says), the response time in milliseconds, the reply's length and
the exception of a failure. A failed request returns ``None``; the task goes on.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable, Optional, Union
from urllib.parse import urlsplit

from locust import User

from .._exceptions import ConnectionClosed, ConnectionFailed
from .._socketio import SocketIO
from .._websocket import SendData, WebSocket, read_nowait, watch_inbox

__all__ = ["SocketIOUser", "WebSocketUser"]

Message = Union[str, bytes]


def _path(url: str) -> str:
    return urlsplit(url).path or "/"


def _length(value: Any) -> int:
    if isinstance(value, (str, bytes, bytearray)):
        return len(value)
    try:
        return len(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return 0


class _Reporting(User):  # type: ignore[misc,unused-ignore]  # Any where locust is absent
    """What both users share: reporting one request event."""

    abstract = True
    request_type = ""

    def _report(
        self, name: str, started: float, length: int, exception: Optional[BaseException]
    ) -> None:
        self.environment.events.request.fire(
            request_type=self.request_type,
            name=name,
            response_time=(time.perf_counter() - started) * 1000.0,
            response_length=length,
            exception=exception,
            context=self.context(),
        )


class WebSocketUser(_Reporting):
    """A Locust user with one :class:`mesiboscript.WebSocket`: ``connect()`` (typically in
    ``on_start``), then ``request()`` in tasks; ``on_stop`` closes it."""

    abstract = True
    request_type = "WS"
    ws: Optional[WebSocket] = None
    _arrived = threading.Event()  # replaced by connect()
    _path = "/"  # the connected URL's path: the requests' default name

    def connect(
        self, url: Optional[str] = None, *, name: Optional[str] = None, **options: Any
    ) -> bool:
        """Open the WebSocket (default URL: the user's ``host``) and wait until it is open.

        ``options`` are :class:`mesiboscript.WebSocket`'s (``connect_timeout`` bounds the wait).
        Reported as ``connect <path>``; True once open.
        """
        url = url or self.host
        if not url:
            raise ValueError("connect() needs a URL, or the user's host")
        self.close()
        self._path = _path(url)
        started = time.perf_counter()
        # request() waits on this Event, set as each message arrives (or the connection closes),
        # and takes the message from the inbox: under gevent, cheaper than read()'s Condition.
        arrived = self._arrived = threading.Event()
        ws = self.ws = WebSocket(url, onclose=lambda event: arrived.set(), **options)
        watch_inbox(ws, arrived.set)
        ok = ws.upgrade()  # until open, failed, or the connect_timeout option passed
        error = None
        if not ok:
            error = ConnectionFailed(f"could not open {ws.url}: {ws.last_error or 'closed'}")
        self._report(name or f"connect {self._path}", started, 0, error)
        return ok

    def request(
        self,
        data: SendData,
        *,
        match: Optional[Callable[[Message], Any]] = None,
        name: Optional[str] = None,
        timeout: float = 30,
    ) -> Optional[Message]:
        """Send ``data``, wait for the next message (or the first for which ``match(message)``
        is true) and return it; ``None`` if it failed (reported with its exception)."""
        started = time.perf_counter()
        ws = self.ws
        reply: Optional[Message] = None
        error: Optional[BaseException] = None
        try:
            if ws is None:
                raise ConnectionClosed("request() before connect()")
            ws.send(data)
            deadline = started + timeout
            arrived = self._arrived
            while True:
                message = read_nowait(ws)
                if message is None:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        raise TimeoutError(f"no reply within {timeout} s")
                    arrived.clear()
                    message = read_nowait(ws)  # again: a message that came meanwhile set it
                    if message is None:
                        arrived.wait(remaining)
                        continue
                if message is False:
                    raise ConnectionClosed("the connection closed")
                assert not isinstance(message, bool)
                if match is None or match(message):
                    reply = message
                    break
        except Exception as exc:
            error = exc
        self._report(name or self._path, started, 0 if reply is None else len(reply), error)
        return reply

    def close(self) -> None:
        """Close the WebSocket, if any."""
        ws, self.ws = self.ws, None
        if ws is not None:
            ws.close()

    def on_stop(self) -> None:
        self.close()


class SocketIOUser(_Reporting):
    """A Locust user with one :class:`mesiboscript.SocketIO`: ``connect()`` (typically in
    ``on_start``), then ``request(event, *args)`` in tasks; ``on_stop`` closes it."""

    abstract = True
    request_type = "SIO"
    sio: Optional[SocketIO] = None
    _pending: Optional[threading.Event] = None

    def connect(
        self, url: Optional[str] = None, *, name: Optional[str] = None, **options: Any
    ) -> bool:
        """Connect (default URL: the user's ``host``) and wait until connected (the SocketIO
        ``timeout`` option bounds it). Reported as ``connect <path>``; True once connected."""
        url = url or self.host
        if not url:
            raise ValueError("connect() needs a URL, or the user's host")
        self.close()
        started = time.perf_counter()
        done = threading.Event()
        outcome: list[Any] = []

        def connected() -> None:
            outcome.append(None)
            done.set()

        def failed(data: Any) -> None:
            message = data.get("message") if isinstance(data, dict) else data
            outcome.append(ConnectionFailed(f"could not connect to {url}: {message}"))
            done.set()

        self._pending = done
        sio = self.sio = SocketIO(url, **options)
        sio.on("connect", connected)
        sio.on("connect_error", failed)
        sio.on("disconnect", self._disconnected)
        done.wait()
        error = outcome[0] if outcome else ConnectionClosed("disconnected while connecting")
        self._report(name or f"connect {_path(url)}", started, 0, error)
        return error is None

    def request(
        self,
        event: str,
        *args: Any,
        reply: Optional[str] = None,
        match: Optional[Callable[..., Any]] = None,
        name: Optional[str] = None,
        timeout: float = 30,
    ) -> Any:
        """Emit ``event`` with ``args`` and wait for the answer: the server's acknowledgement
        (its arguments: one value, a tuple for several), or, with ``reply``, the first ``reply``
        event (for which ``match(*args)`` is true, if given) for servers that answer with an
        event (Botmaster's ``message``). Reported under ``name`` (default: the event); ``None``
        if it failed."""
        started = time.perf_counter()
        sio = self.sio
        done = threading.Event()
        answer: list[tuple[Any, ...]] = []

        def answered(*values: Any) -> None:
            if not answer:
                answer.append(values)
                done.set()

        def replied(*values: Any) -> None:
            if match is None or match(*values):
                answered(*values)

        result: Any = None
        error: Optional[BaseException] = None
        self._pending = done
        try:
            if sio is None or not sio.connected:
                raise ConnectionClosed("not connected")
            if reply is not None:
                sio.on(reply, replied)
                sio.emit(event, *args)
            else:
                sio.emit(event, *args, callback=answered)
            if not done.wait(timeout):
                raise TimeoutError(f"no answer to {event!r} within {timeout} s")
            if not answer:
                raise ConnectionClosed("disconnected before the answer")
            values = answer[0]
            result = values[0] if len(values) == 1 else (values or None)
        except Exception as exc:
            error = exc
        finally:
            if reply is not None and sio is not None:
                sio.off(reply, replied)
        self._report(name or event, started, _length(result), error)
        return result

    def _disconnected(self, reason: str) -> None:
        """The connection ended (I/O loop): what waits for it fails now, not at its timeout."""
        pending = self._pending
        if pending is not None:
            pending.set()

    def close(self) -> None:
        """Disconnect, if connected."""
        sio, self.sio = self.sio, None
        if sio is not None:
            sio.close()

    def on_stop(self) -> None:
        self.close()
