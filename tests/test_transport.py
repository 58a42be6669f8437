"""The transport against real sockets on 127.0.0.1: the HTTP CONNECT proxy's replies, TLS
handshake and record errors, read_into, writes whose listener closes, pausing, and closing.

A tiny CONNECT proxy written here (stdlib only) answers each test's way; after a 200 it echoes,
standing in for the tunnel's far end.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import ssl
import struct
import threading
import warnings
from collections.abc import Iterator
from typing import Any, Callable, Optional

import pytest

from mesiboscript import ConnectionFailed, SocketError
from mesiboscript._loop import get_loop
from mesiboscript._proxy import Proxy as ProxyURL
from mesiboscript._proxy import parse_proxy
from mesiboscript._transport import Transport, TransportListener

from .helpers import TIMEOUT, Certificates, on_loop


class Rec(TransportListener):
    """Records what the transport reports; ``on_made``/``on_written`` react on the I/O thread."""

    def __init__(
        self,
        on_made: Optional[Callable[[Transport], None]] = None,
        on_written: Optional[Callable[[Transport, Any], None]] = None,
    ) -> None:
        self.cond = threading.Condition()
        self.kinds: list[str] = []
        self.data = bytearray()
        self.into: list[int] = []
        self.tokens: list[Any] = []
        self.lost: list[Optional[BaseException]] = []
        self.transport: Optional[Transport] = None
        self._on_made = on_made
        self._on_written = on_written

    def _note(self, kind: str) -> None:
        with self.cond:
            self.kinds.append(kind)
            self.cond.notify_all()

    def connection_made(self) -> None:
        self._note("made")
        if self._on_made is not None:
            assert self.transport is not None
            self._on_made(self.transport)

    def data_received(self, data: bytes) -> None:
        with self.cond:
            self.data += data
        self._note("data")

    def buffer_updated(self, nbytes: int) -> None:
        with self.cond:
            self.into.append(nbytes)
        self._note("into")

    def eof_received(self) -> None:
        self._note("eof")

    def write_done(self, token: Any) -> None:
        with self.cond:
            self.tokens.append(token)
        self._note("written")
        if self._on_written is not None:
            assert self.transport is not None
            self._on_written(self.transport, token)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        with self.cond:
            self.lost.append(exc)
        self._note("lost")

    def wait(self, predicate: Callable[[], bool], what: str) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, TIMEOUT), f"no {what}; saw {self.kinds}"

    def wait_made(self) -> None:
        self.wait(lambda: "made" in self.kinds or bool(self.lost), "connection_made")
        assert "made" in self.kinds, self.lost

    def wait_lost(self) -> Optional[BaseException]:
        self.wait(lambda: bool(self.lost), "connection_lost")
        return self.lost[0]


def open_transport(host: str, port: int, rec: Rec, **options: Any) -> Transport:
    transport = Transport(get_loop(), rec, host, port, **options)
    rec.transport = transport
    on_loop(transport.start)
    return transport


def reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def failure(rec: Rec) -> ConnectionFailed:
    exc = rec.wait_lost()
    assert isinstance(exc, ConnectionFailed), exc
    assert "made" not in rec.kinds
    return exc


class Proxy:
    """One-connection HTTP CONNECT proxy: reads the request, then ``answer(conn)`` replies."""

    def __init__(self, answer: Callable[[socket.socket], None]) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(TIMEOUT)
        self.port = self.sock.getsockname()[1]
        self.request = b""
        self._answer = answer
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        conn.settimeout(TIMEOUT)
        try:
            while b"\r\n\r\n" not in self.request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                self.request += chunk
            self._answer(conn)
        except OSError:
            pass  # the client gave up first
        finally:
            conn.close()

    def close(self) -> None:
        self._thread.join(TIMEOUT)
        self.sock.close()


@pytest.fixture
def proxies() -> Iterator[Callable[[Callable[[socket.socket], None]], Proxy]]:
    made: list[Proxy] = []

    def make(answer: Callable[[socket.socket], None]) -> Proxy:
        made.append(Proxy(answer))
        return made[-1]

    yield make
    for proxy in made:
        proxy.close()


def echo_after(reply: bytes) -> Callable[[socket.socket], None]:
    def answer(conn: socket.socket) -> None:
        conn.sendall(reply)
        while True:
            data = conn.recv(65536)
            if not data:
                return
            conn.sendall(data)

    return answer


# -- parse_proxy ------------------------------------------------------------------------------


def test_parse_proxy_credentials_default_port_and_bad_values() -> None:
    proxy = parse_proxy("http://us%40er:p%3Ass@proxy.example:3128")
    assert (proxy.scheme, proxy.host, proxy.port) == ("http", "proxy.example", 3128)
    assert (proxy.username, proxy.password) == ("us@er", "p:ss")
    assert "p:ss" not in repr(proxy)
    assert "us@er" not in repr(proxy)
    assert proxy.display == "http://***@proxy.example:3128"
    assert parse_proxy("proxy.example") == ProxyURL("http", "proxy.example", 1080)  # curl's default
    assert parse_proxy("https://p.example").port == 443
    assert parse_proxy("socks5h://[::1]").display == "socks5h://[::1]:1080"
    assert parse_proxy("http://user@proxy.example:1").password == ""
    for bad in ("http://proxy.example:1\r\nX: y", "http://a b:1", "http://p:1\x00"):
        with pytest.raises(ValueError, match="whitespace or control"):
            parse_proxy(bad)
    with pytest.raises(ValueError, match="unsupported proxy 'ftp://\\*\\*\\*@p:1'"):
        parse_proxy("ftp://user:secret@p:1")
    with pytest.raises(ValueError, match="bad port"):
        parse_proxy("socks5://p:99999")
    with pytest.raises(ValueError, match="no host"):
        parse_proxy("socks5://:1")
    with pytest.raises(ValueError, match="over 255"):
        parse_proxy("socks5://" + "u" * 256 + ":p@p:1")


# -- the proxy handshake ----------------------------------------------------------------------


def test_a_200_opens_the_tunnel_with_credentials_and_a_bracketed_ipv6_target(
    proxies: Callable[[Callable[[socket.socket], None]], Proxy],
) -> None:
    proxy = proxies(echo_after(b"HTTP/1.1 200 Connection established\r\n\r\n"))
    rec = Rec()
    transport = open_transport("::1", 443, rec, proxy=f"http://user:secret@127.0.0.1:{proxy.port}")
    rec.wait_made()
    assert on_loop(lambda: transport.is_open and transport.fileno() >= 0)
    request = proxy.request.decode("ascii")
    assert request.startswith("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n")
    assert "Proxy-Authorization: Basic dXNlcjpzZWNyZXQ=\r\n" in request
    on_loop(lambda: transport.write(b"through the tunnel"))
    rec.wait(lambda: bytes(rec.data) == b"through the tunnel", "the echo")
    on_loop(transport.close)
    assert rec.wait_lost() is None
    assert on_loop(lambda: transport.closed and transport.fileno() == -1)


def _reset_answer(conn: socket.socket) -> None:
    reset(conn)


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (
            lambda c: c.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"),
            SocketError.ProxyAuthenticationRequiredError,
            "407",
        ),
        (
            lambda c: c.sendall(b"HTTP/1.0 403 Forbidden\r\nX: y\r\n\r\n"),
            SocketError.ProxyProtocolError,
            "proxy refused: HTTP/1.0 403 Forbidden",
        ),
        (lambda c: c.sendall(b"garbage\r\n\r\n"), SocketError.ProxyProtocolError, "garbage"),
        (lambda c: None, SocketError.ProxyConnectionClosedError, "proxy closed"),
        (_reset_answer, SocketError.ProxyConnectionClosedError, "reset"),
        (
            lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nX: " + b"x" * 70000),
            SocketError.ProxyProtocolError,
            "proxy reply too long",
        ),
        (
            lambda c: c.sendall(b"HTTP/1.1 200 OK\r\n\r\nearly bytes"),
            SocketError.ProxyProtocolError,
            "proxy sent data before the tunnel was open",
        ),
    ],
    ids=["407", "403", "no-status", "closed", "reset", "too-long", "data-before-tunnel"],
)
def test_a_proxy_reply_that_opens_no_tunnel_fails_the_attempt(
    proxies: Callable[[Callable[[socket.socket], None]], Proxy],
    answer: Callable[[socket.socket], None],
    error: SocketError,
    message: str,
) -> None:
    proxy = proxies(answer)
    rec = Rec()
    open_transport("example.com", 80, rec, proxy=f"127.0.0.1:{proxy.port}")
    exc = failure(rec)
    assert exc.error == error
    assert message in str(exc).lower() or message in str(exc)
    assert str(exc).startswith(
        f"cannot connect to example.com:80 through proxy http://127.0.0.1:{proxy.port}: "
    )
    assert "Proxy-Authorization" not in proxy.request.decode()


def test_a_refused_proxy_and_an_unreachable_one(listener: socket.socket) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))  # bound, not listening: refused
        rec = Rec()
        open_transport("example.com", 80, rec, proxy=f"127.0.0.1:{holder.getsockname()[1]}")
        assert failure(rec).error == SocketError.ProxyConnectionRefusedError
    # The broadcast address fails at connect() at once (ENETUNREACH), no readiness event.
    rec = Rec()
    open_transport("example.com", 80, rec, proxy="255.255.255.255:8080")
    exc = failure(rec)
    assert exc.error != SocketError.ProxyConnectionRefusedError
    assert isinstance(exc.__cause__, OSError)


def test_an_unreachable_address_fails_at_connect_without_a_proxy() -> None:
    rec = Rec()
    open_transport("255.255.255.255", 80, rec)
    exc = failure(rec)
    assert isinstance(exc.__cause__, OSError)
    assert exc.__cause__.errno is not None


def _fail_tls_wrap(proxy: Proxy, certs: Certificates) -> Rec:
    # Only a proxy resolves such a host; the TLS layer refuses it as server_hostname.
    rec = Rec()
    open_transport(
        ".leading-dot", 443, rec, tls=certs.client_context(), proxy=f"127.0.0.1:{proxy.port}"
    )
    exc = failure(rec)
    assert isinstance(exc.__cause__, ValueError)
    return rec


def _dropped_socket_warnings(rec: Rec) -> list[warnings.WarningMessage]:
    """Drop the failure (its traceback holds what wrap_socket made) and collect: the
    ResourceWarnings of sockets nobody closed."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", ResourceWarning)
        rec.lost.clear()
        gc.collect()
    return [w for w in seen if issubclass(w.category, ResourceWarning)]


def test_a_host_tls_cannot_name_fails_after_the_tunnel_opens(
    proxies: Callable[[Callable[[socket.socket], None]], Proxy], certs: Certificates
) -> None:
    proxy = proxies(echo_after(b"HTTP/1.1 200 OK\r\n\r\n"))
    _dropped_socket_warnings(_fail_tls_wrap(proxy, certs))


def test_a_failed_tls_wrap_leaves_no_socket_open(
    proxies: Callable[[Callable[[socket.socket], None]], Proxy], certs: Certificates
) -> None:
    proxy = proxies(echo_after(b"HTTP/1.1 200 OK\r\n\r\n"))
    assert _dropped_socket_warnings(_fail_tls_wrap(proxy, certs)) == []


# -- TLS --------------------------------------------------------------------------------------


def test_a_reset_during_the_tls_handshake_is_a_socket_error_not_a_tls_one(
    listener: socket.socket, certs: Certificates
) -> None:
    rec = Rec()
    open_transport("127.0.0.1", listener.getsockname()[1], rec, tls=certs.client_context())
    peer, _ = listener.accept()
    peer.settimeout(TIMEOUT)
    assert peer.recv(5)  # the ClientHello's record header
    reset(peer)
    exc = failure(rec)
    assert isinstance(exc.__cause__, OSError)
    if not isinstance(exc.__cause__, ssl.SSLError):
        assert exc.error == SocketError.RemoteHostClosedError
    else:  # pragma: no cover - depends on how the ssl module reports the reset
        assert exc.error == SocketError.SslHandshakeFailedError


def tls_server(
    listener: socket.socket, certs: Certificates, then: Callable[[ssl.SSLSocket], None]
) -> threading.Thread:
    context = certs.server_context("127.0.0.1")

    def serve() -> None:
        peer, _ = listener.accept()
        peer.settimeout(TIMEOUT)
        try:
            with context.wrap_socket(peer, server_side=True) as tls:
                then(tls)
        except OSError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_a_corrupt_tls_record_ends_an_open_connection_with_the_tls_error(
    listener: socket.socket, certs: Certificates
) -> None:
    def corrupt(tls: ssl.SSLSocket) -> None:
        tls.sendall(b"hello")
        # Raw bytes on the TCP stream under the TLS session: not a record the client can read.
        with socket.socket(fileno=os.dup(tls.fileno())) as raw:
            raw.sendall(b"\x17\x03\x03\x00\x10" + b"\x00" * 16)
            raw.recv(1)  # until the client gives up

    thread = tls_server(listener, certs, corrupt)
    rec = Rec()
    open_transport("127.0.0.1", listener.getsockname()[1], rec, tls=certs.client_context())
    exc = rec.wait_lost()
    thread.join(TIMEOUT)
    assert "made" in rec.kinds
    assert isinstance(exc, ConnectionFailed)
    assert str(exc).startswith("connection lost: ")
    assert isinstance(exc.__cause__, ssl.SSLError)


def test_read_into_fills_the_callers_buffer_then_tls_pending_bytes_are_read_at_once(
    listener: socket.socket, certs: Certificates
) -> None:
    payload = bytes(range(100))

    def send(tls: ssl.SSLSocket) -> None:
        tls.sendall(payload)  # one record: what read_into leaves of it is pending in TLS
        tls.recv(1)

    thread = tls_server(listener, certs, send)
    buffer = bytearray(10)

    def made(transport: Transport) -> None:
        transport.read_into(memoryview(buffer))

    rec = Rec(on_made=made)
    transport = open_transport(
        "127.0.0.1", listener.getsockname()[1], rec, tls=certs.client_context()
    )
    rec.wait(lambda: len(rec.data) == 90, "the rest of the record")
    assert rec.into == [10]
    assert bytes(buffer) == payload[:10]
    assert bytes(rec.data) == payload[10:]
    on_loop(transport.close)
    assert rec.wait_lost() is None
    thread.join(TIMEOUT)


# -- writing and closing ----------------------------------------------------------------------


def test_a_listener_that_aborts_in_write_done_stops_the_flush(listener: socket.socket) -> None:
    def written(transport: Transport, token: Any) -> None:
        transport.abort()

    rec = Rec(on_written=written)
    transport = open_transport("127.0.0.1", listener.getsockname()[1], rec)
    peer, _ = listener.accept()
    with peer:
        rec.wait_made()

        def write() -> None:
            transport.write(b"first", "first", flush=False)
            transport.write(b"x" * 20000, "second")  # two buffers: one sendmsg takes both
            transport.write(b"after close")  # ignored: the transport is closed
            assert transport.pending_bytes == 0  # the queue was dropped

        on_loop(write)
        assert rec.tokens == ["first"]
        assert rec.wait_lost() is None


def test_write_after_the_peer_reset_fails_the_connection(listener: socket.socket) -> None:
    rec = Rec()
    transport = open_transport("127.0.0.1", listener.getsockname()[1], rec)
    peer, _ = listener.accept()
    rec.wait_made()
    on_loop(transport.pause_reading)  # the reset is found by the next write, not a read
    reset(peer)  # on loopback the RST is in before close() returns
    on_loop(lambda: transport.write(b"into the void"))
    exc = rec.wait_lost()
    assert isinstance(exc, ConnectionFailed)
    assert exc.error in (SocketError.RemoteHostClosedError, SocketError.NetworkError)
    assert "data" not in rec.kinds


def test_pause_and_resume_reading_hold_the_bytes_in_the_kernel(listener: socket.socket) -> None:
    rec = Rec()
    transport = open_transport("127.0.0.1", listener.getsockname()[1], rec)
    peer, _ = listener.accept()
    with peer:
        rec.wait_made()
        on_loop(transport.pause_reading)
        on_loop(transport.pause_reading)  # twice: no change
        peer.sendall(b"held")
        # A turn of the loop with the bytes readable: nothing is read while paused.
        on_loop(lambda: None)
        on_loop(lambda: None)
        assert "data" not in rec.kinds
        on_loop(transport.resume_reading)
        on_loop(transport.resume_reading)  # twice: no change
        rec.wait(lambda: bytes(rec.data) == b"held", "the held bytes")
    assert rec.wait_lost() is None
    assert rec.kinds[-2:] == ["eof", "lost"]


def test_reading_paused_before_the_connection_opens_stays_paused(
    listener: socket.socket,
) -> None:
    """Before: opening registered the socket for reading whatever pause_reading() had said."""
    rec = Rec()
    transport = Transport(get_loop(), rec, "127.0.0.1", listener.getsockname()[1])
    rec.transport = transport

    def start_paused() -> None:
        transport.pause_reading()
        transport.start()

    on_loop(start_paused)
    peer, _ = listener.accept()
    with peer:
        rec.wait_made()
        peer.sendall(b"held")
        on_loop(lambda: None)  # turns of the loop with the bytes readable
        on_loop(lambda: None)
        assert "data" not in rec.kinds
        on_loop(transport.resume_reading)
        rec.wait(lambda: bytes(rec.data) == b"held", "the held bytes")
    assert rec.wait_lost() is None


def test_calls_before_the_connection_opens_and_after_it_closed(listener: socket.socket) -> None:
    rec = Rec()
    transport = Transport(get_loop(), rec, "127.0.0.1", listener.getsockname()[1])
    rec.transport = transport

    def before_open() -> None:
        transport.start()
        assert not transport.is_open
        assert not transport.closed
        transport.write(b"queued", "queued", flush=False)
        assert transport.flush_now() is False  # not open: nothing can be written yet
        transport.pause_reading()
        transport.resume_reading()

    on_loop(before_open)
    peer, _ = listener.accept()
    with peer:
        peer.settimeout(TIMEOUT)
        assert peer.recv(6) == b"queued"  # written once the connection opened
        rec.wait(lambda: rec.tokens == ["queued"], "write_done")
        assert on_loop(transport.flush_now) is True
        on_loop(transport.close)
        on_loop(transport.close)  # a second close does nothing
        on_loop(lambda: transport.write(b"late"))  # closed: dropped
        assert on_loop(transport.flush_now) is True
    assert rec.lost == [None]


def test_abort_while_resolving_ignores_the_late_answer() -> None:
    rec = Rec()
    transport = Transport(get_loop(), rec, "localhost", 9)
    rec.transport = transport

    def start_and_abort() -> None:
        transport.start()  # "localhost" goes to a resolver thread
        transport.abort()

    on_loop(start_and_abort)
    assert rec.lost == [None]
    # A later answer for the same name arrives after the aborted one's.
    answered = threading.Event()
    on_loop(lambda: get_loop().resolve("localhost", 9, lambda *a: answered.set()))
    assert answered.wait(TIMEOUT)
    on_loop(lambda: None)
    assert rec.kinds == ["lost"]


def test_a_listener_raising_in_connection_lost_is_logged(
    listener: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    class Raising(Rec):
        def connection_lost(self, exc: Optional[BaseException]) -> None:
            super().connection_lost(exc)
            raise RuntimeError("listener bug")

    rec = Raising()
    transport = open_transport("127.0.0.1", listener.getsockname()[1], rec)
    peer, _ = listener.accept()
    with peer, caplog.at_level(logging.ERROR, logger="mesiboscript"):
        rec.wait_made()
        on_loop(transport.abort)
        assert rec.lost == [None]
    assert "internal error while closing a connection" in caplog.text


def test_keepalive_probes_and_a_bound_on_unacknowledged_data(listener: socket.socket) -> None:
    rec = Rec()
    transport = open_transport("127.0.0.1", listener.getsockname()[1], rec, keepalive=True)
    rec.wait_made()
    sock = on_loop(lambda: transport.socket)
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 10
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 60_000
    on_loop(transport.close)
    assert rec.wait_lost() is None


def test_a_proxy_url_given_to_the_transport_unchecked_fails_the_attempt() -> None:
    # The facades reject a bad proxy URL at construction (ValueError); the transport reports one
    # as a failed attempt rather than raising on the I/O thread.
    rec = Rec()
    open_transport("example.com", 80, rec, proxy="ftp://user:secret@p:1")
    exc = failure(rec)
    assert exc.error == SocketError.ProxyProtocolError
    assert "secret" not in str(exc)


# -- writes with nothing queued (issue 18: straight to the kernel) ------------------------------


def _read_all(peer: socket.socket, size: int) -> bytes:
    got = bytearray()
    while len(got) < size:
        chunk = peer.recv(1 << 20)
        assert chunk, f"the stream ended after {len(got)} of {size} bytes"
        got += chunk
    return bytes(got)


def test_what_the_kernel_does_not_take_of_a_write_is_queued_in_order(
    listener: socket.socket,
) -> None:
    """A write with nothing queued goes to the kernel at once; the part it does not take waits
    in the queue, ahead of later writes, and its token is reported once that part is out."""
    rec = Rec()
    transport = open_transport("127.0.0.1", listener.getsockname()[1], rec)
    peer, _ = listener.accept()
    with peer:
        rec.wait_made()
        big = os.urandom(32 << 20)  # more than loopback's socket buffers hold

        def write() -> None:
            transport.write(big, "big")
            assert transport.pending_bytes > 0  # the rest is queued
            transport.write(b"tail", "tail")

        on_loop(write)
        assert rec.tokens == []
        assert _read_all(peer, len(big) + 4) == big + b"tail"
        rec.wait(lambda: rec.tokens == ["big", "tail"], "both tokens")
        assert on_loop(lambda: transport.pending_bytes) == 0
        on_loop(transport.close)
    assert rec.wait_lost() is None


def test_a_write_into_a_full_socket_with_nothing_queued_waits_for_it(
    listener: socket.socket,
) -> None:
    """Direct sends (``try_send_now``) may fill the socket while the queue is empty: a write
    then takes nothing at once and goes out when the socket drains."""
    rec = Rec()
    lock = threading.RLock()
    transport = Transport(get_loop(), rec, "127.0.0.1", listener.getsockname()[1])
    rec.transport = transport
    transport.allow_send_now(lock)
    on_loop(transport.start)
    peer, _ = listener.accept()
    with peer:
        rec.wait_made()
        sent = 0
        with lock:
            while True:  # fill the socket from this thread, until it takes nothing
                taken = transport.try_send_now(b"d" * 65536)
                sent += taken
                if not taken:
                    break
        on_loop(lambda: transport.write(b"after", "after"))
        assert on_loop(lambda: transport.pending_bytes) <= 5
        assert _read_all(peer, sent + 5) == b"d" * sent + b"after"
        rec.wait(lambda: rec.tokens == ["after"], "the token")
        on_loop(transport.close)
    assert rec.wait_lost() is None


@pytest.mark.parametrize("poll", [True, False], ids=["poll", "select"])
def test_the_readable_waiter_with_and_without_poll(
    monkeypatch: pytest.MonkeyPatch, poll: bool
) -> None:
    """caller_read waits with a poll object kept per socket; where select has no poll
    (Windows), with select."""
    import select

    from mesiboscript import _transport

    if not poll:
        monkeypatch.delattr(select, "poll", raising=False)
    a, b = socket.socketpair()
    with a, b:
        wait = _transport._readable_waiter(a)
        assert not wait(10)
        b.send(b"x")
        assert wait(None)
        assert wait(1000)
