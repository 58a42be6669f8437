"""One connection, seen by its owner as a *link*: up, data, writes done, down.

The Mesibo ``Socket`` holds one :class:`Link` at a time and talks to it only through this
interface, whatever carries it: :class:`StreamLink` for ``sock://``/``socks://`` (bytes over
TCP or TLS), a WebSocket link for ``ws://``/``wss://`` (one message per write). A link is one
connection attempt: it never reconnects; the owner makes a new link for the next attempt.

A link reports to its :class:`LinkListener`, always on the I/O thread, in this order: ``link_up``
once (if it ever connects), then ``link_data`` and ``link_written`` any number of times, then
``link_down`` exactly once (also when it never connected). It never calls its listener after
``link_down``. ``link_down`` may run inside :meth:`Link.start`, :meth:`Link.close` or
:meth:`Link.abort` (a failure known at once), so the owner records the link before starting it.
"""

from __future__ import annotations

import dataclasses
import socket
import ssl
import typing
from collections import deque
from typing import Optional, Union

from ._constants import SocketError
from ._exceptions import ConnectionFailed
from ._loop import Loop, TimerHandle
from ._proxy import ProxyOption
from ._transport import Buffer, Transport, TransportListener

__all__ = ["Link", "LinkEnd", "LinkListener", "StreamLink"]


@dataclasses.dataclass(frozen=True)
class LinkEnd:
    """How a link ended, given once with ``link_down``.

    Attributes:
        code: ws: the close code to report (1006 unless the closing handshake completed);
            stream: 1000 when it ended by our ``close()`` or the peer's EOF, else 1006.
        reason: ws: the close reason; stream: ``""``.
        was_clean: ws: the closing handshake completed; stream: ``code == 1000``.
        failure: set when the link *failed* (a browser fires an error event: the attempt did
            not connect, a protocol error, a timeout); ``None`` otherwise, and always ``None``
            after ``abort()`` without a failure.
        cause: why it ended, for ``last_error``: ``failure``, or the error that dropped an open
            connection (a reset), or ``None`` (a clean end, or our own ``abort()``).
        unsent: the tokens of writes not wholly handed to the kernel, oldest first.
        unsent_offset: stream links: bytes of ``unsent[0]`` that did reach the kernel; message
            links: 0 (a message not completely written is sent again whole).
    """

    code: int
    reason: str
    was_clean: bool
    failure: Optional[BaseException] = None
    cause: Optional[BaseException] = None
    unsent: tuple[object, ...] = ()
    unsent_offset: int = 0


class LinkListener(typing.Protocol):
    """What a link reports to its owner (see the module docs for the order)."""

    def link_up(self, link: Link) -> None:
        """Connected (TCP, proxy tunnel, TLS and, for ws, the opening handshake done)."""

    def link_data(self, link: Link, data: Union[str, bytes]) -> None:
        """Stream: bytes as they were read. ws: one message (``str`` or ``bytes``)."""

    def link_written(self, link: Link, token: object) -> None:
        """The write queued with ``token`` is wholly in the kernel (and every earlier one)."""

    def link_down(self, link: Link, end: LinkEnd) -> None:
        """The link ended for good; ``end`` says how, and what was not written."""


class Link(typing.Protocol):
    """One connection attempt. Every method runs on the I/O thread."""

    def start(self) -> None:
        """Begin connecting (DNS, TCP, proxy, TLS, handshake)."""

    def write(self, data: Buffer, token: object = None, *, text: bool = False) -> None:
        """Queue a write, after ``link_up``. Stream: bytes. ws: one message (``text=True``: data
        is the UTF-8 of a text message). ``link_written(token)`` follows once it is wholly in the
        kernel (``token=None``: not reported, neither there nor in ``LinkEnd.unsent``). After
        ``link_down`` a write is ignored."""

    def close(self, code: Optional[int] = 1000, reason: bytes = b"") -> None:
        """End gracefully: write what is queued, then end (ws: the closing handshake with
        ``code``/``reason``; ``None``: a close frame without a code; stream: both unused). A
        link bounds this by its close timeout. Before ``link_up`` it is :meth:`abort`."""

    def abort(self, failure: Optional[BaseException] = None) -> None:
        """End now, dropping what is queued. ``failure`` becomes ``LinkEnd.failure`` and
        ``cause``; ``None``: ended on purpose, nothing failed."""

    def pause_reading(self) -> None:
        """Stop reading the socket (the owner's reader is behind: TCP backpressure)."""

    def resume_reading(self) -> None:
        """Read again."""

    @property
    def pending_bytes(self) -> int:
        """Bytes queued on the link, not yet taken by the kernel."""


class StreamLink(TransportListener):
    """The ``sock://``/``socks://`` link: a byte stream over :class:`Transport`.

    Args:
        loop: the I/O loop.
        listener: gets the link's events.
        host, port: where to connect.
        tls: wrap the stream in TLS with this context (``server_hostname=host``).
        proxy: the ``proxy`` option (``None``: ``all_proxy`` from the environment; ``False``:
            none; else a proxy URL).
        proxy_tls: the context for TLS to an ``https://`` proxy (default: ``tls``).
        keepalive: TCP keep-alive probes (30 s idle, then every 10 s, dead after 3).
        connect_timeout: seconds allowed for DNS, TCP, proxy and TLS together (``None``: no
            limit); past it the link fails with ``SocketTimeoutError``.
        close_timeout: a graceful ``close()`` gives up (and fails with ``SocketTimeoutError``)
            when the peer takes no queued byte for this long.
    """

    def __init__(
        self,
        loop: Loop,
        listener: LinkListener,
        host: str,
        port: int,
        *,
        tls: Optional[ssl.SSLContext] = None,
        proxy: ProxyOption = False,
        proxy_tls: Optional[ssl.SSLContext] = None,
        keepalive: bool = False,
        connect_timeout: Optional[float] = None,
        close_timeout: Optional[float] = None,
    ) -> None:
        self._loop = loop
        self._listener = listener
        self._where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._connect_timeout = connect_timeout
        self._close_timeout = close_timeout
        self._transport = Transport(
            loop,
            self,
            host,
            port,
            tls=tls,
            proxy=proxy,
            scheme="sock",
            proxy_tls=proxy_tls,
            keepalive=keepalive,
        )
        # Writes with a token not yet wholly in the kernel: (first byte's offset, token).
        self._writes: deque[tuple[int, object]] = deque()
        self._queued = 0  # bytes ever given to the transport
        self._up = False
        self._closing = False
        self._aborted: Optional[tuple[Optional[BaseException]]] = None  # (failure,) once aborted
        self._down = False
        self._timer: Optional[TimerHandle] = None
        self._close_progress = -1

    def __repr__(self) -> str:
        state = "down" if self._down else "up" if self._up else "connecting"
        return f"<StreamLink {self._where} {state}>"

    # -- Link ------------------------------------------------------------------------------

    @property
    def pending_bytes(self) -> int:
        return self._transport.pending_bytes

    @property
    def socket(self) -> Optional[socket.socket]:
        """The underlying socket once connecting has begun (for its options), else ``None``."""
        return self._transport.socket

    def start(self) -> None:
        if self._connect_timeout is not None:
            self._timer = self._loop.call_later(self._connect_timeout, self._on_connect_timeout)
        self._transport.start()

    def write(self, data: Buffer, token: object = None, *, text: bool = False) -> None:
        # The transport reports its end at once (connection_lost runs inside whatever closed
        # it), so while the link is not down its transport is open and takes the write.
        if self._down:
            return
        if token is not None:
            self._writes.append((self._queued, token))
        self._queued += len(data)
        self._transport.write(data, token)

    def close(self, code: Optional[int] = 1000, reason: bytes = b"") -> None:
        if self._down or self._closing:
            return
        if not self._up:
            self.abort()
            return
        self._closing = True
        self._transport.close()  # ends at once when nothing is queued
        if not self._down and self._close_timeout is not None:
            self._arm_close_timer()

    def abort(self, failure: Optional[BaseException] = None) -> None:
        if self._down or self._aborted is not None:
            return
        self._aborted = (failure,)
        self._transport.abort(failure)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    # -- timers ----------------------------------------------------------------------------

    def _on_connect_timeout(self) -> None:
        self._timer = None
        if not self._up and not self._down:
            self.abort(
                ConnectionFailed(
                    f"timed out after {self._connect_timeout} s connecting to {self._where}",
                    self._transport.timeout_error,
                )
            )

    def _arm_close_timer(self) -> None:
        assert self._close_timeout is not None
        self._close_progress = self._transport.pending_bytes
        self._timer = self._loop.call_later(self._close_timeout, self._check_close)

    def _check_close(self) -> None:
        self._timer = None
        if self._down:
            return
        if self._transport.pending_bytes == self._close_progress:
            self.abort(
                ConnectionFailed(
                    f"close(): the peer took no data for {self._close_timeout} s",
                    SocketError.SocketTimeoutError,
                )
            )
            return
        self._arm_close_timer()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- transport events (TransportListener) ------------------------------------------------

    def connection_made(self) -> None:
        self._cancel_timer()
        self._up = True
        self._listener.link_up(self)

    def data_received(self, data: bytes) -> None:
        if not self._down:
            self._listener.link_data(self, data)

    def write_done(self, token: object) -> None:
        writes = self._writes
        while writes:  # the transport completes writes first in, first out
            _, done = writes.popleft()
            if done is token:
                break
        self._listener.link_written(self, token)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if self._down:
            return
        self._down = True
        self._cancel_timer()
        written = self._queued - self._transport.pending_bytes
        unsent = tuple(token for _, token in self._writes)
        offset = 0
        if self._writes:
            offset = max(0, written - self._writes[0][0])
        self._writes.clear()
        if self._aborted is not None:
            failure = cause = self._aborted[0]
        elif not self._up:
            failure = cause = exc
        else:
            failure, cause = None, exc  # a drop: recorded, but the link did not fail
        clean = exc is None and self._aborted is None
        end = LinkEnd(
            code=1000 if clean else 1006,
            reason="",
            was_clean=clean,
            failure=failure,
            cause=cause,
            unsent=unsent,
            unsent_offset=offset,
        )
        self._listener.link_down(self, end)
