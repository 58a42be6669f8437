"""A non-blocking stream connection driven by the loop: resolve, connect, proxy, TLS, then bytes.

Shared by :class:`WebSocket` and :class:`Socket`. Nothing here blocks the loop: DNS runs on the
resolver threads, TCP connect, the proxy handshake (:mod:`._proxy`, sans-I/O) and the TLS
handshake are driven by readiness events, and writes are queued and flushed as the kernel takes
them. The owner implements :class:`TransportListener`.

A host with several addresses is tried as browsers do (RFC 8305, "Happy Eyeballs"): address
families interleaved, the next attempt started when one fails or has not connected within
250 ms, the first to connect wins. An ``https://`` proxy gets TLS of its own; TLS to the server
then runs inside it through a socket pair (:class:`_TunnelRelay`), since an ``SSLSocket`` cannot
wrap another one.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import select
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from itertools import islice
from typing import Any, Callable, Optional, Union

from ._constants import SocketError
from ._exceptions import ConnectionFailed, socket_error_for
from ._loop import Loop, TimerHandle, logger
from ._proxy import Handshake, Proxy, ProxyFailure, ProxyOption, handshake_for, select_proxy

__all__ = ["Transport", "TransportListener"]

READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE
_RECV_SIZE = 65 * 1024  # a 64 KiB frame and its header; under glibc's 128 KiB mmap threshold
_SMALL = 16 * 1024  # writes under this are joined into one buffer (one system call for many frames)
_IOV_MAX = 128  # buffers per sendmsg (Linux allows 1024)
_ATTEMPT_DELAY = 0.25  # RFC 8305's "Connection Attempt Delay": the next address starts after it
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
# After a caller thread read the socket (caller_read), the loop leaves it to callers this long.
_CALLER_LEASE = 0.05

Buffer = Union[bytes, bytearray, memoryview]
_Socket = socket.socket  # the class's `socket` property hides the module in annotations


class TransportListener:
    """What a transport calls on its owner, always on the loop thread (asyncio's protocol
    callbacks, under a name that does not collide with the WebSocket's subprotocol)."""

    def connection_made(self) -> None:
        """The stream is ready (TCP connected, proxy tunnel and TLS done)."""

    def data_received(self, data: bytes) -> None:
        """Bytes arrived."""

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` arrived in the buffer given to :meth:`Transport.read_into`."""

    def eof_received(self) -> None:
        """The peer closed its side; the transport closes next and calls ``connection_lost``."""

    def write_done(self, token: Any) -> None:
        """The last byte of a write queued with ``token`` was handed to the kernel."""

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        """The socket is closed: ``exc`` is None after a clean close or EOF, else the cause."""


class Transport:
    """One client stream. Every method runs on the loop thread.

    Args:
        loop: the I/O loop.
        protocol: the owner, told of every event.
        host, port: the server.
        tls: TLS to the server with this context (``server_hostname=host``).
        proxy: the public ``proxy`` option: ``None`` reads the environment for ``scheme`` (as
            curl does), ``False`` uses none, a URL or a :class:`~._proxy.Proxy` uses that one.
        scheme: which environment variables apply (``ws``, ``wss``, ``http``, ``https``,
            ``sock``, ``socks``); default ``wss`` with ``tls``, else ``ws``.
        proxy_tls: the context for TLS to an ``https://`` proxy (default: ``tls``, else the
            library's default context).
        keepalive: TCP keep-alive probes.
    """

    def __init__(
        self,
        loop: Loop,
        protocol: TransportListener,
        host: str,
        port: int,
        *,
        tls: Optional[ssl.SSLContext] = None,
        proxy: ProxyOption = False,
        scheme: Optional[str] = None,
        proxy_tls: Optional[ssl.SSLContext] = None,
        keepalive: bool = False,
    ) -> None:
        self._loop = loop
        self._protocol = protocol
        self._host = host
        self._port = port
        self._tls = tls
        self._proxy_option = proxy
        self._scheme = scheme or ("wss" if tls is not None else "ws")
        self._proxy_tls = proxy_tls
        self._proxy: Optional[Proxy] = None
        self._keepalive = keepalive
        self._sock: Optional[socket.socket] = None
        self._events = 0
        self._addrs: list[Any] = []
        self._attempts: dict[socket.socket, Any] = {}  # connects in flight → their address
        self._attempt_timer: Optional[TimerHandle] = None
        self._first_error: Optional[BaseException] = None
        self._stage = "resolve"  # resolve, connect, proxy-tls, proxy, tls, open, closed
        self._target = host  # what the proxy is asked to reach (an address for socks4/socks5)
        self._handshake: Optional[Handshake] = None
        self._relay: Optional[_TunnelRelay] = None
        self._proxy_out = b""
        # A list, not a deque (an idle connection's deque costs 0.7 KB): small writes are joined,
        # so it holds few buffers and removing the first is cheap.
        self._out: list[Buffer] = []
        self._into: Optional[memoryview] = None
        self._marks: Optional[deque[tuple[int, Any]]] = None  # made at the first token
        self._queued = 0  # bytes ever queued
        self._written = 0  # bytes ever handed to the kernel
        self._close_after_flush = False
        self._reading = True
        # Writes and reads from other threads (try_send_now, caller_read) and sendmsg: one
        # attribute, so the instance dict stays a compact shared-key one (29 attributes at most).
        self._x = _Threads()

    # -- public --------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._stage == "open"

    @property
    def closed(self) -> bool:
        return self._stage == "closed"

    @property
    def pending_bytes(self) -> int:
        return self._queued - self._written

    @property
    def timeout_error(self) -> SocketError:
        """What a connect timeout now means: the proxy was too slow while it is being reached
        or negotiated with (``ProxyConnectionTimeoutError``), else ``SocketTimeoutError``."""
        if self._proxy is not None and self._stage in ("resolve", "connect", "proxy-tls", "proxy"):
            return SocketError.ProxyConnectionTimeoutError
        return SocketError.SocketTimeoutError

    def start(self) -> None:
        try:
            self._proxy = select_proxy(self._proxy_option, self._scheme, self._host)
        except ValueError as exc:
            self._fail(exc, SocketError.ProxyProtocolError)
            return
        proxy = self._proxy
        if proxy is not None and not proxy.remote_dns and not _is_ip(self._host):
            # socks4:// and socks5://: the client resolves the server's name, the proxy gets
            # an address.
            self._loop.resolve(self._host, self._port, self._target_resolved)
            return
        self._resolve_first_hop()

    def _target_resolved(self, infos: Any, exc: Optional[BaseException]) -> None:
        if self._stage == "closed":
            return
        if exc is not None:
            self._fail(exc)
            return
        assert self._proxy is not None
        families = (socket.AF_INET,) if self._proxy.scheme == "socks4" else ()
        addresses = [i[4][0] for i in infos if not families or i[0] in families]
        if not addresses:
            self._fail(
                OSError(errno.EADDRNOTAVAIL, f"no IPv4 address for {self._host} (SOCKS 4)"),
                SocketError.HostNotFoundError,
            )
            return
        self._target = addresses[0]
        self._resolve_first_hop()

    def _resolve_first_hop(self) -> None:
        host, port = (
            (self._proxy.host, self._proxy.port) if self._proxy else (self._host, self._port)
        )
        if not _is_ip(host):
            self._loop.resolve(host, port, self._resolved)
            return
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._resolved([(family, socket.SOCK_STREAM, 0, "", (host, port))], None)

    def write(
        self, data: Union[Buffer, list[bytes]], token: Any = None, flush: bool = True
    ) -> None:
        """Queue bytes, or a list of pieces; ``protocol.write_done(token)`` follows once the
        last byte reaches the kernel.

        ``flush=False`` only queues: a caller writing a batch flushes with its last write, so
        the whole batch goes out in one system call.
        """
        if self._stage == "closed":
            return
        out = self._out
        if (
            flush
            and not out
            and type(data) is not list
            and self._stage == "open"
            and not self._events & WRITE
        ):
            self._write_through(data, token)  # type: ignore[arg-type]
            return
        if type(data) is list:
            size = 0
            for piece in data:
                size += self._append(out, piece)
        else:
            size = self._append(out, data)  # type: ignore[arg-type]
        self._queued += size
        if token is not None:
            marks = self._marks
            if marks is None:
                marks = self._marks = deque()
            marks.append((self._queued, token))
        if flush and self._stage == "open" and not self._events & WRITE:
            self._flush()

    def _write_through(self, data: Buffer, token: Any) -> None:
        # Nothing is queued: straight to the kernel, without a copy into the queue's buffer,
        # a mark or a flush; only what it did not take is queued.
        sock = self._sock
        assert sock is not None
        size = len(data)
        try:
            sent = sock.send(data)
        except _WOULD_BLOCK:
            sent = 0
        except OSError as exc:
            self._finish(exc)
            return
        self._queued += size
        self._written += sent
        if sent == size:
            if token is not None:
                self._protocol.write_done(token)
            return
        self._append(self._out, memoryview(data)[sent:])  # small: copied; large: a view
        if token is not None:
            marks = self._marks
            if marks is None:
                marks = self._marks = deque()
            marks.append((self._queued, token))
        self._update_events(want_write=True)

    @staticmethod
    def _append(out: list[Buffer], data: Buffer) -> int:
        # Small writes join the last buffer (one system call for many frames); large ones are
        # queued as they are, never copied.
        size = len(data)
        last = out[-1] if out else None
        if size >= _SMALL:
            out.append(data)
        elif type(last) is bytearray and len(last) < 4 * _SMALL:
            last += data
        else:
            out.append(bytearray(data))
        return size

    def allow_send_now(self, lock: Any) -> None:
        """Let :meth:`try_send_now` write from other threads, serialised by ``lock``: the
        owner's lock, which it holds around every ``try_send_now`` and every :meth:`write`
        (the socket is closed under it too, so a direct write never reaches a closed, or
        reused, descriptor)."""
        self._x.send_lock = lock

    def try_send_now(self, data: Union[bytes, list[bytes]]) -> int:
        """From any thread, with the lock given to :meth:`allow_send_now` held: hand ``data``
        (a buffer, or a list of pieces) to the kernel now, without blocking: the bytes it took,
        or -1 when it may not (not open yet or any more, TLS, or writes are queued: the caller
        queues ``data`` with :meth:`write` instead, which keeps the order).

        Nothing here is counted in :attr:`pending_bytes` or reported to ``write_done``: the
        caller queues what was not taken with :meth:`write`, as a new write.
        """
        if not self._x.direct or self._out or self._stage != "open":
            return -1
        sock = self._sock
        assert sock is not None
        try:
            if type(data) is list:
                return sock.sendmsg(data[:_IOV_MAX])
            return sock.send(data)  # type: ignore[arg-type]
        except _WOULD_BLOCK:
            return 0
        except OSError:
            return 0  # the loop sees the error on its next read or write and ends the stream

    def caller_read(
        self,
        wait: Optional[float],
        received: Callable[[Union[bytes, int]], object],
        may_read: Callable[[], bool],
    ) -> object:
        """From a thread other than the loop's (a blocking ``read()``): wait up to ``wait``
        seconds for bytes, read what the socket holds without blocking, and hand it to
        ``received`` (the bytes; or their count, read into the buffer :meth:`read_into` set,
        which ``received`` may set again) with the read gate held: what the loop reads cannot
        come in between. ``may_read()`` is asked first, with the gate held (the owner's own
        reasons to leave the socket to the loop). No wake-up of the loop: it stops watching
        the socket while callers read it, and takes over again when none has read for a
        moment.

        Returns what ``received`` returned (it must not be None or False) when bytes were
        handed over, False when none came within ``wait``, and None when the caller may not
        read now (not open, TLS, reading paused, the loop is reading, ``may_read()`` said no,
        or the stream ended: the loop reads the end itself and reports it as usual).
        """
        x = self._x
        sock = self._sock
        if not x.direct or not self._reading or self._stage != "open" or sock is None:
            return None
        x.caller_last = time.monotonic()
        if wait is None or wait > 0:
            try:
                poll = x.poll
                if poll is None:
                    poll = x.poll = _readable_waiter(sock)
                if not poll(None if wait is None else wait * 1000):
                    return False
            except (OSError, ValueError):  # closed meanwhile
                return None
        gate = x.gate
        if not gate.acquire(False):
            return None
        try:
            if self._stage != "open" or not may_read():
                return None
            into = self._into
            try:
                if into is None:
                    data = sock.recv(_RECV_SIZE)
                    nbytes = len(data)
                else:
                    nbytes = sock.recv_into(into)
            except _WOULD_BLOCK:
                return False
            except OSError:
                nbytes = 0
            if not nbytes:
                x.caller_last = 0.0  # the loop reads the end (or the error) again itself
                self._loop.call_soon_threadsafe(self._caller_check)
                return None
            if into is None:
                got = received(data)
            else:
                self._into = into = None
                got = received(nbytes)
            x.caller_last = time.monotonic()
            return got
        finally:
            gate.release()

    def _caller_check(self) -> None:
        """The loop watches the socket again once no caller has read for a lease."""
        left = self._x.caller_last + _CALLER_LEASE - time.monotonic() if self._x.caller_last else 0
        if left > 0:
            self._loop.call_later(left, self._caller_check)
            return
        self._x.caller_timer = False
        self._x.caller_last = 0.0
        if self._x.caller_paused:
            self._x.caller_paused = False
            self._update_events()

    def unwritten_tokens(self) -> list[Any]:
        """The tokens of writes not wholly handed to the kernel, oldest first."""
        return [token for _, token in self._marks] if self._marks else []

    def read_into(self, buffer: Optional[memoryview]) -> None:
        """Fill ``buffer`` with what arrives next (``protocol.buffer_updated``), not ``recv``.

        For a large frame whose size is known: the bytes land in the message itself, many
        kilobytes per system call. ``None`` goes back to ``data_received``. The buffer must not
        be empty; the protocol sets the next one from ``buffer_updated``.
        """
        self._into = buffer

    def flush_now(self) -> bool:
        """Write what the kernel takes right now; True when nothing is left queued."""
        if self._stage == "open":
            self._flush()
        return not self._out

    def close(self) -> None:
        """Close once everything queued is written."""
        if self._stage == "closed":
            return
        if self._out and self._stage == "open":
            self._close_after_flush = True
            return
        self._finish(None)

    def abort(self, exc: Optional[BaseException] = None) -> None:
        """Close now, dropping anything queued."""
        self._finish(exc)

    def pause_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._update_events()

    def resume_reading(self) -> None:
        if not self._reading:
            self._reading = True
            self._update_events()

    def fileno(self) -> int:
        return self._sock.fileno() if self._sock is not None else -1

    @property
    def socket(self) -> Optional[socket.socket]:
        return self._sock

    # -- connect pipeline ----------------------------------------------------------------------

    def _resolved(self, infos: Any, exc: Optional[BaseException]) -> None:
        if self._stage == "closed":
            return
        if exc is not None:
            error = SocketError.ProxyNotFoundError if self._proxy else None
            self._fail(exc, error)
            return
        self._addrs = _interleave(list(infos))
        self._stage = "connect"
        self._connect_next()

    def _connect_next(self) -> None:
        """Start the next address's attempt; with more left, the one after starts in 250 ms
        unless an attempt ends first (RFC 8305). Fails once every address has failed."""
        self._attempt_timer = None
        if self._stage != "connect":
            return
        while self._addrs:
            family, type_, proto, _, address = self._addrs.pop(0)
            try:
                sock = socket.socket(family, type_, proto)
            except OSError as exc:
                self._first_error = self._first_error or exc
                continue
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self._keepalive:
                    _set_keepalive(sock)
                err = sock.connect_ex(address)
            except OSError as exc:
                sock.close()
                self._first_error = self._first_error or exc
                continue
            if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
                sock.close()
                self._first_error = self._first_error or OSError(err, _strerror(err))
                continue
            self._attempts[sock] = address
            self._loop.add(sock, WRITE, functools.partial(self._attempt_done, sock))
            if self._addrs:
                self._attempt_timer = self._loop.call_later(_ATTEMPT_DELAY, self._connect_next)
            return
        if self._attempts:
            return  # the last addresses are still trying
        cause = self._first_error or OSError(errno.EHOSTUNREACH, "no address to connect to")
        error = None
        if self._proxy:
            error = socket_error_for(cause)
            if error == SocketError.ConnectionRefusedError:
                error = SocketError.ProxyConnectionRefusedError
        self._fail(cause, error)

    def _attempt_done(self, sock: _Socket, mask: int = 0) -> None:
        self._loop.remove(sock)
        del self._attempts[sock]
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            sock.close()
            self._first_error = self._first_error or OSError(err, _strerror(err))
            # The next address now, not after the delay (RFC 8305 §5); with none left, this
            # fails only once no other attempt is in flight.
            if self._attempt_timer is not None:
                self._attempt_timer.cancel()
            self._connect_next()
            return
        self._cancel_attempts()
        self._sock = sock
        self._events = 0
        self._connected()

    def _cancel_attempts(self) -> None:
        if self._attempt_timer is not None:
            self._attempt_timer.cancel()
            self._attempt_timer = None
        for other in self._attempts:
            self._loop.remove(other)
            other.close()
        self._attempts.clear()

    def _on_event(self, mask: int) -> None:
        stage = self._stage
        if stage == "open":
            if mask & READ:
                x = self._x
                if x.caller_last:
                    self._read()
                else:
                    with x.gate:  # _read without a call per event (no caller reads)
                        self._read_gated()
            if mask & WRITE and self._stage == "open":
                self._flush()
        elif stage == "proxy":
            self._proxy_step()
        elif stage in ("tls", "proxy-tls"):
            self._tls_step()

    def _connected(self) -> None:
        if self._proxy is None:
            self._start_tls()
        elif self._proxy.tls:
            self._start_tls(proxy=True)
        else:
            self._start_proxy()

    def _start_proxy(self) -> None:
        assert self._proxy is not None
        self._stage = "proxy"
        try:
            self._handshake = handshake_for(self._proxy, self._target, self._port)
        except ProxyFailure as exc:
            self._fail(exc, exc.error)
            return
        self._proxy_out = self._handshake.data_to_send()
        self._proxy_step()

    def _proxy_step(self) -> None:
        sock = self._sock
        handshake = self._handshake
        assert sock is not None
        assert handshake is not None
        try:
            while True:
                if self._proxy_out:
                    sent = sock.send(self._proxy_out)
                    self._proxy_out = self._proxy_out[sent:]
                    if self._proxy_out:
                        self._set_events(WRITE)
                        return
                chunk = sock.recv(4096)
                done = handshake.receive_data(chunk)
                self._proxy_out = handshake.data_to_send()
                if done:
                    break
        except ssl.SSLWantWriteError:
            self._set_events(WRITE)
            return
        except _WOULD_BLOCK:
            self._set_events(READ)
            return
        except ProxyFailure as exc:
            self._fail(exc, exc.error)
            return
        except OSError as exc:
            self._fail(exc, SocketError.ProxyConnectionClosedError)
            return
        self._handshake = None
        if self._proxy is not None and self._proxy.tls and self._tls is not None:
            # TLS to the server inside TLS to the proxy: the server's TLS runs on one end of a
            # socket pair, the relay carries its bytes through the proxy's TLS.
            self._loop.remove(sock)
            self._events = 0
            try:
                inner, outer = socket.socketpair()
            except OSError as exc:
                self._fail(exc)
                return
            inner.setblocking(False)
            self._relay = _TunnelRelay(self._loop, sock, outer)
            self._sock = inner
        self._start_tls()

    def _start_tls(self, proxy: bool = False) -> None:
        assert self._sock is not None
        if proxy:
            assert self._proxy is not None
            context = self._proxy_tls or self._tls
            if context is None:
                from ._tls import make_context

                context = make_context()
            server_hostname = self._proxy.host
        elif self._tls is None:
            self._open()
            return
        else:
            context, server_hostname = self._tls, self._host
        self._loop.remove(self._sock)
        self._events = 0
        try:
            # Checked on a socket-less TLS object first: wrap_socket() detaches the TCP socket
            # before it rejects a host name, and the descriptor would leak with its wrapper.
            context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname=server_hostname)
            self._sock = context.wrap_socket(
                self._sock, server_hostname=server_hostname, do_handshake_on_connect=False
            )
        except (OSError, ValueError) as exc:
            self._fail(exc)
            return
        self._stage = "proxy-tls" if proxy else "tls"
        self._tls_step()

    def _tls_step(self) -> None:
        sock = self._sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._set_events(READ)
            return
        except ssl.SSLWantWriteError:
            self._set_events(WRITE)
            return
        except (OSError, ValueError) as exc:
            error = SocketError.SslHandshakeFailedError
            if isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError):
                error = socket_error_for(exc)
                if self._stage == "proxy-tls":
                    error = SocketError.ProxyConnectionClosedError
            self._fail(exc, error)
            return
        if self._stage == "proxy-tls":
            self._start_proxy()
        else:
            self._open()

    def _open(self) -> None:
        self._stage = "open"
        self._x.gather = hasattr(self._sock, "sendmsg") and not isinstance(
            self._sock, ssl.SSLSocket
        )
        # A TLS object must not be written by one thread while another reads it.
        self._x.direct = self._x.gather and self._x.send_lock is not None
        self._set_events(READ if self._reading else 0)  # paused before it opened: stays so
        self._protocol.connection_made()
        if self._stage == "open" and self._out:
            self._flush()

    # -- data ----------------------------------------------------------------------------------

    def _read(self) -> None:
        last = self._x.caller_last
        if last and time.monotonic() - last < _CALLER_LEASE:
            # A caller thread reads the socket (caller_read): leave it to it for now.
            if not self._x.caller_paused:
                self._x.caller_paused = True
                self._update_events()
            if not self._x.caller_timer:
                self._x.caller_timer = True
                self._loop.call_later(_CALLER_LEASE, self._caller_check)
            return
        with self._x.gate:
            self._read_gated()

    def _read_gated(self) -> None:
        sock = self._sock
        assert sock is not None
        data = b""
        while True:
            into = self._into
            try:
                if into is None:
                    data = sock.recv(_RECV_SIZE)
                    nbytes = len(data)
                else:
                    nbytes = sock.recv_into(into)
            except _WOULD_BLOCK:
                return
            except ssl.SSLError as exc:
                if not isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
                    self._finish(exc)
                    return
                nbytes = 0
            except OSError as exc:
                self._finish(exc)
                return
            if not nbytes:
                self._protocol.eof_received()
                self._finish(None)
                return
            if into is None:
                self._protocol.data_received(data)
            else:
                # No reference to the buffer may outlive this: the protocol's BytesIO hands its
                # bytes over without a copy only once no view of them is left.
                self._into = into = None
                self._protocol.buffer_updated(nbytes)
            if self._stage != "open" or not self._reading or self._x.gather:
                return  # plain TCP: the next readiness event says when there is more
            if not _tls_pending(sock):
                return

    def _flush(self) -> None:
        sock = self._sock
        assert sock is not None
        out = self._out
        while out:
            try:
                if self._x.gather and len(out) > 1:
                    pieces = list(islice(out, _IOV_MAX))
                    want = sum(map(len, pieces))
                    sent = sock.sendmsg(pieces)
                else:
                    want = len(out[0])
                    sent = sock.send(out[0])
            except _WOULD_BLOCK:
                want, sent = 1, 0
            except OSError as exc:
                self._finish(exc)
                return
            self._written += sent
            left = sent
            while left:
                chunk = out[0]
                if left >= len(chunk):
                    del out[0]
                    left -= len(chunk)
                else:
                    # Keep the rest without copying large payloads; small buffers are copied so
                    # the bytearray stays resizable for later writes.
                    rest = memoryview(chunk)[left:]
                    out[0] = bytearray(rest) if type(chunk) is bytearray else rest
                    break
            if self._marks:
                self._fire_marks()
                if self._stage != "open":
                    return
            if sent < want:
                break
        if out:
            self._update_events(want_write=True)
        else:
            self._update_events(want_write=False)
            if self._close_after_flush:
                self._finish(None)

    def _fire_marks(self) -> None:
        marks = self._marks
        assert marks is not None
        written = self._written
        # A listener may close the transport in write_done: nothing is reported after that.
        while marks and marks[0][0] <= written and self._stage == "open":
            _, token = marks.popleft()
            self._protocol.write_done(token)

    # -- selector bookkeeping ------------------------------------------------------------------

    def _update_events(self, want_write: Optional[bool] = None) -> None:
        if self._stage != "open":
            return
        if want_write is None:
            want_write = bool(self._out)
        reading = self._reading and not self._x.caller_paused
        events = (READ if reading else 0) | (WRITE if want_write else 0)
        self._set_events(events)

    def _set_events(self, events: int) -> None:
        sock = self._sock
        if sock is None or events == self._events:
            return
        if self._events == 0:
            self._loop.add(sock, events, self._on_event)
        elif events == 0:
            self._loop.remove(sock)
        else:
            self._loop.modify(sock, events, self._on_event)
        self._events = events

    # -- closing -------------------------------------------------------------------------------

    def _fail(self, exc: BaseException, error: Optional[SocketError] = None) -> None:
        if not isinstance(exc, ConnectionFailed):
            via = f" through proxy {self._proxy.display}" if self._proxy is not None else ""
            wrapped = ConnectionFailed(
                f"cannot connect to {self._host}:{self._port}{via}: {exc}",
                error if error is not None else socket_error_for(exc),
            )
            wrapped.__cause__ = exc
            exc = wrapped
        self._finish(exc)

    def _finish(self, exc: Optional[BaseException]) -> None:
        if self._stage == "closed":
            return
        was_open = self._stage == "open"
        self._stage = "closed"
        self._cancel_attempts()
        if self._relay is not None:
            self._relay.close()
        if self._sock is not None:
            if self._events:
                self._loop.remove(self._sock)
                self._events = 0
            try:
                # Not while a caller reads it (caller_read) or writes to it (try_send_now).
                with self._x.gate:
                    if self._x.send_lock is not None:
                        with self._x.send_lock:
                            self._sock.close()
                    else:
                        self._sock.close()
            except OSError:
                pass
        self._out.clear()
        if exc is not None and was_open and not isinstance(exc, ConnectionFailed):
            wrapped = ConnectionFailed(f"connection lost: {exc}", socket_error_for(exc))
            wrapped.__cause__ = exc
            exc = wrapped
        try:
            self._protocol.connection_lost(exc)
        except Exception:
            logger.exception("internal error while closing a connection")


class _Threads:
    """A transport's state shared with other threads, and its sendmsg flag (see _x above)."""

    __slots__ = (
        "caller_last",
        "caller_paused",
        "caller_timer",
        "direct",
        "gate",
        "gather",
        "poll",
        "send_lock",
    )

    def __init__(self) -> None:
        self.gather = False  # plain TCP: several buffers per system call (sendmsg)
        # try_send_now: the owner's lock, under which it calls try_send_now and the socket closes.
        self.send_lock: Any = None
        self.direct = False  # plain TCP and open: try_send_now may write (set on the loop)
        # caller_read: whoever reads the socket holds the gate (the loop while it reads and
        # delivers, a caller thread while it reads and keeps what it read), so what one reads
        # is handled before what the other reads next. While callers read, the loop stops
        # watching the socket (caller_paused) and looks again once they stopped for a lease.
        self.gate = threading.RLock()
        self.caller_last = 0.0  # when a caller last read (0: none since the loop took over)
        self.caller_paused = False
        self.caller_timer = False
        # caller_read's wait for readability (made at its first wait): poll(ms) -> a true
        # value once readable (or closed), a false one after ``ms`` milliseconds.
        self.poll: Optional[Callable[[Optional[float]], object]] = None


def _readable_waiter(sock: socket.socket) -> Callable[[Optional[float]], object]:
    """``wait(ms)``: true once ``sock`` is readable (or closed, or in error), false after ``ms``
    milliseconds (``None``: no limit). A ``poll`` object kept for the socket: about half the
    cost of building ``select``'s three lists for one descriptor on every call."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return poller.poll

    def wait(ms: Optional[float]) -> object:  # Windows: no poll
        return select.select((sock,), (), (), None if ms is None else ms / 1000)[0]

    return wait


def _tls_pending(sock: socket.socket) -> bool:
    # TLS may hold decrypted bytes the selector cannot see; plain TCP waits for the next
    # readiness event instead of paying for a recv that would block.
    return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0


def _set_keepalive(sock: socket.socket) -> None:
    """TCP keep-alive probes: first after 30 s idle, then every 10 s, dead after 3 misses.

    Probes go only while nothing is unacknowledged; data sent into a dead link would be
    retransmitted for ~15 minutes. ``TCP_USER_TIMEOUT`` bounds that the same way: 60 s without
    an acknowledgement ends the connection (and a keepalive ``Socket`` reconnects).
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    options = (
        ("TCP_KEEPIDLE", 30),
        ("TCP_KEEPINTVL", 10),
        ("TCP_KEEPCNT", 3),
        ("TCP_USER_TIMEOUT", 60_000),
    )
    for name, value in options:
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


def _strerror(err: int) -> str:
    import os

    return os.strerror(err)


@functools.lru_cache(maxsize=256)  # the same few hosts, once per connection: 2 us each
def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _interleave(infos: list[Any]) -> list[Any]:
    """Alternate address families, starting with the resolver's first choice (RFC 8305 §4)."""
    if len(infos) < 2:  # a literal IP (every connection of a script that connects to one)
        return infos
    first = [i for i in infos if i[0] == infos[0][0]]
    other = [i for i in infos if i[0] != infos[0][0]]
    out: list[Any] = []
    for pair in zip(first, other):
        out.extend(pair)
    n = min(len(first), len(other))
    return out + first[n:] + other[n:]


class _TunnelRelay:
    """Carries bytes between the TLS connection to an ``https://`` proxy and one end of a socket
    pair whose other end holds the TLS to the server (TLS inside TLS), on the loop.

    Either side ending ends both: the transport sees its socket close as the tunnel's end.
    """

    _LIMIT = 256 * 1024  # bytes held for one direction before that side stops being read

    def __init__(self, loop: Loop, outer: socket.socket, inner: socket.socket) -> None:
        self._loop = loop
        self._outer = outer
        self._inner = inner
        inner.setblocking(False)
        self._to_inner = bytearray()
        self._to_outer = bytearray()
        self._events = {outer: 0, inner: 0}
        self._closed = False
        self._update()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for sock in (self._outer, self._inner):
            if self._events[sock]:
                self._loop.remove(sock)
            sock.close()

    def _update(self) -> None:
        if self._closed:
            return
        wanted = {
            self._outer: (READ if len(self._to_inner) < self._LIMIT else 0)
            | (WRITE if self._to_outer else 0),
            self._inner: (READ if len(self._to_outer) < self._LIMIT else 0)
            | (WRITE if self._to_inner else 0),
        }
        for sock, events in wanted.items():
            before = self._events[sock]
            if events == before:
                continue
            callback = self._on_outer if sock is self._outer else self._on_inner
            if not before:
                self._loop.add(sock, events, callback)
            elif not events:
                self._loop.remove(sock)
            else:
                self._loop.modify(sock, events, callback)
            self._events[sock] = events

    def _on_outer(self, mask: int) -> None:
        self._pump(self._outer, self._to_inner, self._to_outer, mask)

    def _on_inner(self, mask: int) -> None:
        self._pump(self._inner, self._to_outer, self._to_inner, mask)

    def _pump(
        self, sock: socket.socket, incoming: bytearray, outgoing: bytearray, mask: int
    ) -> None:
        try:
            if mask & WRITE and outgoing:
                del outgoing[: sock.send(outgoing)]
            if mask & READ:
                while len(incoming) < self._LIMIT:
                    data = sock.recv(_RECV_SIZE)
                    if not data:
                        self.close()
                        return
                    incoming += data
                    if not _tls_pending(sock):
                        break
        except _WOULD_BLOCK:
            pass
        except OSError:
            self.close()
            return
        # Hand what arrived to the other side at once.
        other = self._inner if sock is self._outer else self._outer
        try:
            if incoming:
                del incoming[: other.send(incoming)]
        except _WOULD_BLOCK:
            pass
        except OSError:
            self.close()
            return
        self._update()
