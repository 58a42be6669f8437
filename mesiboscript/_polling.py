"""Engine.IO HTTP long-polling on the I/O loop: a small HTTP/1.1 client and a polling session.

The HTTP client is :class:`HTTPConnection`: one keep-alive HTTP/1.1 connection over the same
:class:`~mesiboscript._transport.Transport` every other connection uses (DNS on the resolver
threads, non-blocking connect, proxy tunnel, TLS with the library's context), with ``h11``
parsing and producing the HTTP/1.1 messages. No thread per request: a long poll is one pending
read on the loop. A :class:`PollingSession` holds two of them, one for the long-polling GETs and
one for the POSTs, as a browser's XHR polling does, and turns bodies into Engine.IO packets with
the sans-I/O payload codec of :mod:`mesiboscript._engineio`.
"""

from __future__ import annotations

import itertools
import logging
import ssl
import time
from collections import deque
from typing import Callable, Optional

import h11

from ._constants import SocketError
from ._engineio import (
    DecodeError,
    EnginePacket,
    EnginePacketType,
    decode_payload,
    encode_payload,
)
from ._exceptions import ConnectionFailed
from ._loop import Loop, TimerHandle
from ._proxy import ProxyOption
from ._transport import Transport, TransportListener

__all__ = ["HTTPConnection", "HTTPError", "HTTPResponse", "PollingListener", "PollingSession"]

logger = logging.getLogger("mesiboscript")

# A response body larger than this ends the session (a server's maxHttpBufferSize is 1 MB by
# default; python-engineio's max_http_buffer_size too).
_MAX_BODY = 100 * 1024 * 1024
_counter = itertools.count()
_CLOSE_TIMEOUT = 5.0


class HTTPError(ConnectionFailed):
    """The server answered a polling request with an HTTP error status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message, SocketError.ConnectionRefusedError)
        self.status = status


class HTTPResponse:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


Done = Callable[[Optional[HTTPResponse], Optional[BaseException]], None]


class _Events(TransportListener):
    """One transport's events, for its connection while it is the current one (a transport
    that was replaced or dropped may still report its end: that is ignored)."""

    def __init__(self, owner: HTTPConnection) -> None:
        self.owner = owner

    def connection_made(self) -> None:
        if self.owner.current is self:
            self.owner.connection_made()

    def data_received(self, data: bytes) -> None:
        if self.owner.current is self:
            self.owner.data_received(data)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if self.owner.current is self:
            self.owner.connection_lost(exc)


class HTTPConnection:
    """One keep-alive HTTP/1.1 connection, one request at a time (I/O thread only)."""

    def __init__(
        self,
        loop: Loop,
        host: str,
        port: int,
        *,
        tls: Optional[ssl.SSLContext],
        proxy: ProxyOption,
        scheme: str,
        proxy_tls: Optional[ssl.SSLContext],
        host_header: str,
    ) -> None:
        self._loop = loop
        self._host = host
        self._port = port
        self._tls = tls
        self._proxy = proxy
        self._scheme = scheme
        self._proxy_tls = proxy_tls
        self._host_header = host_header
        self._transport: Optional[Transport] = None
        self.current: Optional[_Events] = None  # the events of _transport
        self._h11 = h11.Connection(our_role=h11.CLIENT)
        self._pending: Optional[tuple[bytes, Done]] = None  # the request bytes, its callback
        self._sent = False
        self._status = 0
        self._headers: dict[str, str] = {}
        self._body = bytearray()
        self._timer: Optional[TimerHandle] = None
        self._closed = False

    @property
    def busy(self) -> bool:
        return self._pending is not None

    def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        done: Done,
        timeout: Optional[float],
    ) -> None:
        """Send one request; ``done(response, None)`` or ``done(None, error)`` follows once."""
        assert self._pending is None, "one request at a time"
        if self._closed:
            done(None, ConnectionFailed("the polling connection is closed"))
            return
        all_headers = [("Host", self._host_header), *headers]
        if method == "POST":
            all_headers.append(("Content-Length", str(len(body))))
        self._h11 = h11.Connection(our_role=h11.CLIENT) if self._transport is None else self._h11
        data = self._h11.send(h11.Request(method=method, target=target, headers=all_headers))
        data = data or b""
        if body:
            data += self._h11.send(h11.Data(data=body)) or b""
        data += self._h11.send(h11.EndOfMessage()) or b""
        self._pending = (data, done)
        self._status, self._headers, self._body = 0, {}, bytearray()
        if timeout is not None:
            self._timer = self._loop.call_later(timeout, self._on_timeout)
        if self._transport is None:
            self.current = _Events(self)
            self._transport = Transport(
                self._loop,
                self.current,
                self._host,
                self._port,
                tls=self._tls,
                proxy=self._proxy,
                scheme=self._scheme,
                proxy_tls=self._proxy_tls,
            )
            self._sent = False
            self._transport.start()
        else:
            self._sent = True
            self._transport.write(data)

    def close(self) -> None:
        """Abort the connection; a pending request is not reported any more."""
        self._closed = True
        self._pending = None
        self._cancel_timer()
        self._drop()

    # -- transport events --------------------------------------------------------------------

    def connection_made(self) -> None:
        if self._pending is not None and not self._sent and self._transport is not None:
            self._sent = True
            self._transport.write(self._pending[0])

    def data_received(self, data: bytes) -> None:
        try:
            self._h11.receive_data(data)
            self._drain_events()
        except h11.RemoteProtocolError as exc:
            self._complete(None, ConnectionFailed(f"a bad HTTP response: {exc}"))
            self._drop()

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self._transport = self.current = None
        if self._pending is not None:
            self._complete(
                None,
                exc
                if exc is not None
                else ConnectionFailed(
                    "the server closed the polling connection", SocketError.RemoteHostClosedError
                ),
            )

    # -- internals ---------------------------------------------------------------------------

    def _drain_events(self) -> None:
        while True:
            event = self._h11.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Response):
                self._status = event.status_code
                self._headers = {
                    k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers
                }
            elif isinstance(event, h11.InformationalResponse):
                continue
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > _MAX_BODY:
                    self._complete(None, ConnectionFailed("a polling response over 100 MiB"))
                    self._drop()
                    return
            elif isinstance(event, h11.EndOfMessage):
                response = HTTPResponse(self._status, self._headers, bytes(self._body))
                reusable = self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE
                if reusable:
                    self._h11.start_next_cycle()
                else:
                    self._drop()
                self._complete(response, None)
                return
            elif isinstance(event, h11.ConnectionClosed):
                return

    def _drop(self) -> None:
        transport, self._transport, self.current = self._transport, None, None
        if transport is not None:
            transport.abort()

    def _complete(self, response: Optional[HTTPResponse], error: Optional[BaseException]) -> None:
        self._cancel_timer()
        pending, self._pending = self._pending, None
        if pending is not None:
            pending[1](response, error)

    def _on_timeout(self) -> None:
        self._timer = None
        if self._pending is not None:
            self._complete(
                None,
                ConnectionFailed("a polling request timed out", SocketError.SocketTimeoutError),
            )
            self._drop()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class PollingListener:
    """What a :class:`PollingSession` reports, on the I/O thread."""

    def polling_packets(self, session: PollingSession, packets: list[EnginePacket]) -> None:
        """Packets arrived (the open packet first, on the handshake)."""

    def polling_closed(self, session: PollingSession, error: Optional[BaseException]) -> None:
        """The session ended (``error``: why; a :class:`DecodeError` for a bad payload)."""


class PollingSession:
    """One Engine.IO session over HTTP long-polling (I/O thread only).

    ``target`` is the path and query without ``sid`` and the cache buster; the first GET is the
    handshake, and :meth:`set_sid` gives the session id for the following requests.
    """

    def __init__(
        self,
        loop: Loop,
        listener: PollingListener,
        host: str,
        port: int,
        target: str,
        version: int,
        *,
        tls: Optional[ssl.SSLContext],
        proxy: ProxyOption,
        scheme: str,
        proxy_tls: Optional[ssl.SSLContext],
        headers: list[tuple[str, str]],
        host_header: str,
        detect: bool = False,
        request_timeout: Optional[float] = None,
    ) -> None:
        self._loop = loop
        self._listener = listener
        self._detect = detect
        self._target = target
        self.version = version
        self._headers = headers
        self._timeout = request_timeout
        self._get, self._post = (
            HTTPConnection(
                loop,
                host,
                port,
                tls=tls,
                proxy=proxy,
                scheme=scheme,
                proxy_tls=proxy_tls,
                host_header=host_header,
            )
            for _ in range(2)
        )
        self._sid: Optional[str] = None
        self._outbox: deque[EnginePacket] = deque()
        self._closed = False
        self._paused = False
        self._on_paused: Optional[Callable[[], None]] = None
        self.content_type = ""  # of the last response (v3: which payload encoding)
        self.last_body = b""

    def start(self) -> None:
        self._poll()

    def set_sid(self, sid: str) -> None:
        self._sid = sid

    def set_version(self, version: int) -> None:
        self.version = version

    @property
    def open(self) -> bool:
        return not self._closed

    def send(self, packets: list[EnginePacket]) -> None:
        """Queue packets; they go out in one POST as soon as none is in flight."""
        if self._closed:
            return
        self._outbox.extend(packets)
        self._post_next()

    def pause(self, callback: Callable[[], None]) -> None:
        """Stop polling once the current GET returns and the POSTs are done (the upgrade)."""
        self._paused = True
        self._on_paused = callback
        self._check_paused()

    def take_unsent(self) -> list[EnginePacket]:
        """What was queued and not posted (handed to the WebSocket after an upgrade)."""
        unsent = list(self._outbox)
        self._outbox.clear()
        return unsent

    def discard(self) -> None:
        """Forget the session without a close packet (after an upgrade, or a failure)."""
        self._closed = True
        self._get.close()
        self._post.close()

    def close(self) -> None:
        """Send the close packet, then end; ``polling_closed(None)`` follows."""
        if self._closed:
            return
        self._closed = True
        self._get.close()
        if self._sid is None:
            self._post.close()
            self._loop.call_soon(self._listener.polling_closed, self, None)
            return
        self._outbox.append(EnginePacket(EnginePacketType.CLOSE))
        if self._post.busy:
            return  # the close packet follows the POST in flight
        self._post_next(closing=True)

    # -- requests ----------------------------------------------------------------------------

    def _url(self) -> str:
        sid = f"&sid={self._sid}" if self._sid is not None else ""
        return f"{self._target}&t={_cache_buster()}{sid}"

    def _poll(self) -> None:
        if self._closed or self._paused or self._get.busy:
            return
        self._get.request(
            "GET", self._url(), [*self._headers, ("Accept", "*/*")], b"", self._on_get, None
        )

    def _on_get(self, response: Optional[HTTPResponse], error: Optional[BaseException]) -> None:
        if self._closed:
            return
        if error is not None:
            self._fail(error)
            return
        assert response is not None
        if response.status != 200:
            self._fail(_status_error(response))
            return
        self.content_type = response.headers.get("content-type", "")
        self.last_body = response.body
        try:
            packets = self._decode(response.body)
        except DecodeError as exc:
            self._fail(exc)
            return
        self._listener.polling_packets(self, packets)
        if self._closed:
            return
        if self._paused:
            self._check_paused()
        else:
            self._poll()

    def _decode(self, body: bytes) -> list[EnginePacket]:
        if not (self._detect and self._sid is None and self.version == 4):
            return decode_payload(body, self.version, self.content_type)
        # The handshake, protocol "auto": socket.io 1.x/2.x ignore EIO=4 and answer in Engine.IO
        # v3's payload encoding, which tells them apart (the open packet must come first).
        try:
            packets = decode_payload(body, 4, self.content_type)
            if packets[0].type == EnginePacketType.OPEN:
                return packets
        except DecodeError:
            pass
        packets = decode_payload(body, 3, self.content_type)
        self.version = 3
        return packets

    def _post_next(self, closing: bool = False) -> None:
        if self._post.busy or not self._outbox or self._sid is None:
            return
        if self._closed and not closing:
            return
        packets = list(self._outbox)
        self._outbox.clear()
        body, content_type = encode_payload(packets, self.version)
        headers = [*self._headers, ("Content-Type", content_type), ("Accept", "*/*")]
        # The close packet is a courtesy: a server that does not take it soon is not waited for.
        timeout = _CLOSE_TIMEOUT if closing else self._timeout
        self._post.request("POST", self._url(), headers, body, self._on_post, timeout)

    def _on_post(self, response: Optional[HTTPResponse], error: Optional[BaseException]) -> None:
        if self._closed:
            if not self._post.busy and self._outbox:
                self._post_next(closing=True)  # the close packet queued behind a POST
                return
            self._post.close()
            self._listener.polling_closed(self, None)
            return
        if error is None and response is not None and response.status != 200:
            error = _status_error(response)
        if error is not None:
            self._fail(error)
            return
        self._post_next()
        if self._paused:
            self._check_paused()

    def _check_paused(self) -> None:
        if self._on_paused is not None and not self._get.busy and not self._post.busy:
            callback, self._on_paused = self._on_paused, None
            callback()

    def _fail(self, error: BaseException) -> None:
        if self._closed:
            return
        self.discard()
        self._listener.polling_closed(self, error)


def _status_error(response: HTTPResponse) -> HTTPError:
    detail = response.body[:200].decode("utf-8", "replace")
    return HTTPError(f"the server answered HTTP {response.status}: {detail}", response.status)


def _cache_buster() -> str:
    """What engine.io-client appends as ``t``: a value unique to each request."""
    return f"{time.monotonic_ns():x}{next(_counter):x}"
