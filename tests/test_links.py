"""The stream link against real sockets on 127.0.0.1: the event order, how it ends (LinkEnd),
and what it reports as written and unsent."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from typing import Any, Callable, Optional, Union

from mesiboscript import ConnectionFailed, SocketError
from mesiboscript._links import Link, LinkEnd, StreamLink
from mesiboscript._loop import get_loop
from mesiboscript._reconnect import is_fatal

from .helpers import TIMEOUT, Certificates, on_loop


class Events:
    """A LinkListener that records what its link reports, and checks the order."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.kinds: list[str] = []
        self.data = bytearray()
        self.written: list[object] = []
        self.end: Optional[LinkEnd] = None

    def _note(self, kind: str) -> None:
        assert threading.current_thread().name == "mesiboscript-io"
        assert self.end is None, f"{kind} after link_down"
        self.kinds.append(kind)
        self.cond.notify_all()

    def link_up(self, link: Link) -> None:
        with self.cond:
            assert "up" not in self.kinds
            self._note("up")

    def link_data(self, link: Link, data: Union[str, bytes]) -> None:
        with self.cond:
            assert isinstance(data, bytes)
            self.data += data
            self._note("data")

    def link_written(self, link: Link, token: object) -> None:
        with self.cond:
            self.written.append(token)
            self._note("written")

    def link_down(self, link: Link, end: LinkEnd) -> None:
        with self.cond:
            self._note("down")
            self.end = end

    def wait(self, predicate: Callable[[], bool], what: str) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, TIMEOUT), f"no {what}; saw {self.kinds}"

    def wait_up(self) -> None:
        self.wait(lambda: "up" in self.kinds or self.end is not None, "link_up")
        assert "up" in self.kinds, self.end

    def wait_down(self) -> LinkEnd:
        self.wait(lambda: self.end is not None, "link_down")
        assert self.end is not None
        return self.end


def start(port: int, events: Events, **options: Any) -> StreamLink:
    link = StreamLink(get_loop(), events, "127.0.0.1", port, **options)
    on_loop(link.start)
    return link


def reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_a_stream_link_is_a_link_and_nothing_runs_before_start() -> None:
    events = Events()
    link: Link = StreamLink(get_loop(), events, "127.0.0.1", 9)  # mypy checks the interface
    assert link.pending_bytes == 0
    assert events.kinds == []


def test_up_data_written_then_a_clean_end_at_the_peers_eof(listener: socket.socket) -> None:
    events = Events()
    link = start(listener.getsockname()[1], events)
    peer, _ = listener.accept()
    with peer:
        events.wait_up()
        token = object()
        on_loop(lambda: link.write(b"ping", token))
        assert peer.recv(4) == b"ping"
        events.wait(lambda: events.written == [token], "link_written")
        peer.sendall(b"pong")
        events.wait(lambda: bytes(events.data) == b"pong", "data")
    end = events.wait_down()  # the peer closed
    assert end == LinkEnd(1000, "", True)
    assert events.kinds[0] == "up"
    assert events.kinds[-1] == "down"
    on_loop(lambda: link.write(b"late", object()))  # ignored: nothing after link_down
    assert events.kinds.count("down") == 1


def test_a_refused_attempt_fails_without_coming_up() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))  # bound, not listening: refused
        events = Events()
        start(holder.getsockname()[1], events)
        end = events.wait_down()
    assert events.kinds == ["down"]
    assert (end.code, end.was_clean) == (1006, False)
    assert isinstance(end.failure, ConnectionFailed)
    assert end.failure.error == SocketError.ConnectionRefusedError
    assert end.cause is end.failure
    assert not is_fatal(end.failure)  # worth retrying


def test_connect_timeout(listener: socket.socket) -> None:
    events = Events()
    ctx = ssl.create_default_context()
    start(listener.getsockname()[1], events, tls=ctx, connect_timeout=0.2)
    peer, _ = listener.accept()  # TCP connects; the TLS handshake gets no answer
    with peer:
        end = events.wait_down()
    assert isinstance(end.failure, ConnectionFailed)
    assert end.failure.error == SocketError.SocketTimeoutError
    assert end.code == 1006


def test_a_certificate_that_fails_verification_is_fatal(
    listener: socket.socket, certs: Certificates
) -> None:
    server_ssl = certs.server_context()

    def serve() -> None:
        peer, _ = listener.accept()
        try:
            server_ssl.wrap_socket(peer, server_side=True).close()
        except (OSError, ssl.SSLError):
            peer.close()  # the client rejected our certificate

    thread = threading.Thread(target=serve)
    thread.start()
    events = Events()
    start(listener.getsockname()[1], events, tls=ssl.create_default_context())  # certifi's CAs
    end = events.wait_down()
    thread.join(TIMEOUT)
    assert events.kinds == ["down"]
    assert isinstance(end.failure, ConnectionFailed)
    assert end.failure.error == SocketError.SslHandshakeFailedError
    assert isinstance(end.failure.__cause__, ssl.SSLCertVerificationError)
    assert is_fatal(end.failure)


def test_close_writes_what_is_queued_then_ends_clean(listener: socket.socket) -> None:
    events = Events()
    link = start(listener.getsockname()[1], events)
    peer, _ = listener.accept()
    payload = bytes(range(256)) * 4096  # 1 MiB: more than one system call
    events.wait_up()

    def write_and_close() -> None:
        link.write(payload, "token")
        link.close()

    on_loop(write_and_close)
    received = bytearray()
    with peer:
        while True:
            data = peer.recv(1 << 20)
            if not data:
                break
            received += data
    assert received == payload
    end = events.wait_down()
    assert end == LinkEnd(1000, "", True)
    assert events.written == ["token"]


def test_close_before_up_gives_up_the_attempt(listener: socket.socket) -> None:
    events = Events()
    link = StreamLink(get_loop(), events, "127.0.0.1", listener.getsockname()[1])

    def start_and_close() -> None:
        link.start()
        link.close()

    on_loop(start_and_close)
    end = events.wait_down()
    assert events.kinds == ["down"]
    assert (end.code, end.failure, end.cause) == (1006, None, None)


def test_abort_reports_the_failure_given_or_none(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    quiet = Events()
    link = start(port, quiet)
    peer1, _ = listener.accept()
    quiet.wait_up()
    on_loop(link.abort)
    end = quiet.wait_down()
    assert (end.code, end.was_clean, end.failure, end.cause) == (1006, False, None, None)

    failing = Events()
    link = start(port, failing)
    peer2, _ = listener.accept()
    failing.wait_up()
    why = ConnectionFailed("the owner gave up", SocketError.OperationError)
    on_loop(lambda: link.abort(why))
    end = failing.wait_down()
    assert end.failure is why
    assert end.cause is why
    peer1.close()
    peer2.close()


def test_a_reset_while_up_is_a_cause_not_a_failure(listener: socket.socket) -> None:
    events = Events()
    start(listener.getsockname()[1], events)
    peer, _ = listener.accept()
    events.wait_up()
    reset(peer)
    end = events.wait_down()
    assert end.failure is None
    assert isinstance(end.cause, ConnectionFailed)
    assert end.cause.error == SocketError.RemoteHostClosedError
    assert (end.code, end.was_clean) == (1006, False)


def test_a_drop_reports_the_unsent_tokens_and_the_offset_into_the_first(
    listener: socket.socket,
) -> None:
    events = Events()
    link = start(listener.getsockname()[1], events)
    peer, _ = listener.accept()
    events.wait_up()
    small, big, after = b"small", b"x" * (24 * 1024 * 1024), b"after"

    def write() -> None:
        link.write(small, "small")
        link.write(big, "big")
        link.write(b"untracked")  # no token: neither written nor unsent
        link.write(after, "after")

    on_loop(write)
    events.wait(lambda: events.written == ["small"], "the small write")
    assert peer.recv(1)  # the kernel took part of the big one...
    reset(peer)  # ...and the rest dies with the connection
    end = events.wait_down()
    assert end.unsent == ("big", "after")
    assert 0 < end.unsent_offset < len(big)
    assert end.failure is None


def test_close_gives_up_when_the_peer_takes_nothing(listener: socket.socket) -> None:
    events = Events()
    link = start(listener.getsockname()[1], events, close_timeout=0.2)
    peer, _ = listener.accept()
    events.wait_up()
    with peer:  # never reads: the kernel buffers fill up

        def write_and_close() -> None:
            link.write(b"x" * (64 * 1024 * 1024), "stuck")
            assert link.pending_bytes > 0
            link.close()

        on_loop(write_and_close)
        end = events.wait_down()
    assert isinstance(end.failure, ConnectionFailed)
    assert end.failure.error == SocketError.SocketTimeoutError
    assert end.unsent == ("stuck",)
    assert end.code == 1006


def test_keepalive_option_sets_tcp_keepalive(listener: socket.socket) -> None:
    seen: list[int] = []
    for keepalive in (False, True):
        events = Events()
        link = start(listener.getsockname()[1], events, keepalive=keepalive)
        peer, _ = listener.accept()
        events.wait_up()

        def probe(link: StreamLink = link) -> None:
            sock = link.socket
            assert sock is not None
            seen.append(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))
            link.close()

        on_loop(probe)
        events.wait_down()
        peer.close()
    assert seen == [0, 1]
