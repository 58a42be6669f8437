"""Mesibo ``Socket`` against servers this project did not write: socat, ncat and openssl s_server
(Debian packages installed by .ci/run), the standard library's socketserver, and the websockets
server behind the ``echo_url`` fixtures."""

from __future__ import annotations

import itertools
import logging
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

import mesiboscript
from mesiboscript import ConnectionFailed, InvalidStateError, ReadyState, SocketError, _lifetime
from mesiboscript._links import StreamLink
from mesiboscript._tcp import SendBufferFull, Socket

from .helpers import TIMEOUT, Certificates, Recorder, free_port
from .rawserver import OP_CLOSE, RawConnection, RawServer, close_frame

ROOT = Path(__file__).resolve().parent.parent


# -- helpers ----------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    """Poll a condition that no event reports (an external process's output)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} is not installed (.ci/run installs it with apt-get)")
    return path


class Process:
    """An external server whose output goes to a file we can wait on."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self.args = args
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str) -> Optional[re.Match[str]]:
        found: list[re.Match[str]] = []

        def ready() -> bool:
            match = re.search(pattern, self.output())
            if match:
                found.append(match)
            return bool(match) or self.proc.poll() is not None

        wait_until(ready)
        return found[0] if found else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for proc in started:
        proc.stop()


@pytest.fixture
def socat_echo(processes: list[Process], tmp_path: Path) -> int:
    """socat's TCP echo (a forked PIPE per connection); port 0, read back from its log."""
    socat = need("socat")
    args = [socat, "-d", "-d", "TCP-LISTEN:0,bind=127.0.0.1,reuseaddr,fork", "PIPE"]
    proc = Process(args, tmp_path / "socat.log")
    processes.append(proc)
    match = proc.wait_for(r"listening on .*:(\d+)")
    assert match, f"socat did not start: {proc.output()}"
    return int(match.group(1))


def start_ncat(processes: list[Process], tmp_path: Path, *extra: str) -> int:
    """ncat echoing through /bin/cat. ncat cannot report a port 0 it was given, so pick a free
    port and try again if someone took it in between."""
    ncat = need("ncat")
    for attempt in range(5):
        port = free_port()
        args = [ncat, "-v", "-l", "127.0.0.1", str(port), "-k", "--exec", "/bin/cat", *extra]
        proc = Process(args, tmp_path / f"ncat-{attempt}.log")
        processes.append(proc)
        if proc.wait_for(r"Listening on 127\.0\.0\.1:\d+") and proc.proc.poll() is None:
            return port
        if "in use" not in proc.output():
            break
    pytest.fail(f"ncat did not start: {proc.output()}")


@pytest.fixture(scope="session")
def cert_files(certs: Certificates, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A certificate for localhost and 127.0.0.1 from the session's test CA, as PEM files."""
    return certs.pem_files(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def other_cert_files(
    certs: Certificates, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """A certificate from the test CA for ``other.example`` only: wrong for 127.0.0.1."""
    return certs.pem_files(tmp_path_factory.mktemp("other-certs"), "other.example")


def echo_forever(conn: RawConnection) -> None:
    sock = conn.sock
    with sock:
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            sock.sendall(data)


def silent(conn: RawConnection) -> None:
    """Read and never answer (a TLS client waits for the ServerHello forever)."""
    sock = conn.sock
    with sock:
        while True:
            try:
                if not sock.recv(65536):
                    return
            except OSError:
                return


# -- construction and properties ----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "sock://example.com",  # no port
        "socks://example.com",
        "sock://example.com:0",
        "sock://example.com:70000",
        "ftp://example.com:21",
        "tcp://example.com:80",
        "example.com:80",
        "sock://:80",
        "sock://example.com:80/path",
        "sock://user@example.com:80",
        "sock://exa mple.com:80",
        "ws://example.com/#fragment",
        "sock://example.com:80\r\n",
        "",
    ],
)
def test_bad_urls_raise_at_construction(url: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the contract says ValueError, of any text
        Socket(url)


def test_url_must_be_a_string() -> None:
    with pytest.raises(TypeError):
        Socket(b"sock://example.com:80")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "serialised", "ssl_on"),
    [
        ("sock://Example.COM:80", "sock://example.com:80", False),
        ("SOCKS://example.com:443/", "socks://example.com:443", True),
        ("sock://[::1]:7", "sock://[::1]:7", False),
        ("ws://example.com/chat?x=1", "ws://example.com/chat?x=1", False),
        ("wss://example.com:8443/", "wss://example.com:8443/", True),
    ],
)
def test_good_urls(url: str, serialised: str, ssl_on: bool) -> None:
    s = Socket(url)
    assert s.url == serialised
    assert s.enableSsl is ssl_on
    assert s.readyState == Socket.CONNECTING == ReadyState.CONNECTING
    assert int(s.readyState) == 0
    assert (s.OPEN, s.CLOSING, s.CLOSED) == (1, 2, 3)


def test_properties_before_and_after_open(socat_echo: int) -> None:
    s = Socket(f"sock://127.0.0.1:{socat_echo}")
    assert (s.keepalive, s.verify_host, s.enableSsl) == (False, True, False)
    s.keepalive = True
    s.verify_host = True
    assert s.keepalive is True
    with pytest.raises(InvalidStateError, match="ondata"):
        s.open()
    assert s not in _lifetime.active()  # nothing started
    rec = Recorder(s)
    s.open()
    for name in ("keepalive", "verify_host", "enableSsl"):
        with pytest.raises(InvalidStateError):
            setattr(s, name, False)
    with pytest.raises(InvalidStateError):
        s.open()
    rec.wait(lambda: rec.connects == 1, "onconnect")
    s.close()
    rec.wait_closed()
    with pytest.raises(InvalidStateError):
        s.send(b"late")


def test_enable_ssl_cannot_be_turned_off_for_socks() -> None:
    s = Socket("socks://example.com:443")
    with pytest.raises(ValueError, match="TLS"):
        s.enableSsl = False


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="connect_timeout"):
        Socket("sock://h:1", connect_timeout=0)
    with pytest.raises(ValueError, match="max_attempts"):
        Socket("sock://h:1", max_attempts=0)
    with pytest.raises(ValueError, match="either"):
        Socket("socks://h:1", cafile="x", ssl_context=ssl.create_default_context())


def test_close_before_open_fires_nothing() -> None:
    s = Socket("sock://127.0.0.1:9", ondata=Socket.queue)
    s.close()
    assert s.readyState == Socket.CLOSED
    with pytest.raises(InvalidStateError):
        s.open()
    with pytest.raises(InvalidStateError):
        s.send("x")


# -- plain TCP ----------------------------------------------------------------------------


def test_socat_echo_handlers_in_order(socat_echo: int) -> None:
    s = Socket(f"sock://127.0.0.1:{socat_echo}")
    rec = Recorder(s, on_connect=lambda s, n: s.send("héllo ✓"))
    s.open()
    expected = "héllo ✓".encode()
    assert rec.wait_data(len(expected)) == expected
    rec.wait(lambda: sum(rec.written) == len(expected), "onwrite")
    s.close()
    rec.wait_closed()
    assert rec.events[0] == ("connect", Socket.OPEN)
    assert ("write", len(expected)) in rec.events
    assert rec.events[-1] == ("close", Socket.CLOSED)
    assert rec.kinds().count("close") == 1
    assert rec.threads == {"mesiboscript-io"}
    assert s.last_error is None
    assert s.read(0) is False  # closed, and nothing was queued for read()


def test_send_types_and_data_sent_before_open_goes_first(socat_echo: int) -> None:
    s = Socket(f"sock://127.0.0.1:{socat_echo}")
    rec = Recorder(s, on_connect=lambda s, n: s.send(b"|onconnect"))
    s.send("early")
    s.send(bytearray(b"|bytearray"))
    s.send(memoryview(b"|memoryview"))
    s.send(b"")  # nothing to send
    with pytest.raises(TypeError):
        s.send(42)  # type: ignore[arg-type]
    assert s.bufferedAmount == len(b"early|bytearray|memoryview")
    s.open()
    expected = b"early|bytearray|memoryview|onconnect"
    assert rec.wait_data(len(expected)) == expected
    s.close()
    rec.wait_closed()
    assert s.bufferedAmount == 0


@pytest.mark.parametrize("close_from", ["main thread", "onconnect"])
def test_close_flushes_everything_sent_before_it(close_from: str) -> None:
    """close() right after send(): every byte reaches the server before the FIN, even when
    close() comes while still connecting (the data is held and written first)."""
    received: dict[int, bytes] = {}
    done = threading.Event()

    def collect(conn: RawConnection) -> None:
        sock, n = conn.sock, conn.index
        chunks = []
        with sock:
            while True:
                data = sock.recv(1 << 20)
                if not data:
                    break
                chunks.append(data)
        received[n] = b"".join(chunks)
        done.set()

    payload = os.urandom(4 * 1024 * 1024)
    with RawServer(handler=collect) as server:
        # Sent before the connection is up, 4 MiB is held: over the default max_buffer (1 MiB).
        s = Socket(f"sock://127.0.0.1:{server.port}", max_buffer=len(payload))
        if close_from == "onconnect":

            def send_and_close(s: Socket, n: int) -> None:
                s.send(payload)
                s.close()

            rec = Recorder(s, on_connect=send_and_close)
            s.open()
        else:
            rec = Recorder(s)
            s.open()
            s.send(payload)
            s.close()
            assert s.readyState in (Socket.CLOSING, Socket.CLOSED)
        rec.wait_closed()
        assert done.wait(TIMEOUT)
    assert received[1] == payload
    assert sum(rec.written) == len(payload)
    assert s.last_error is None


def test_ncat_tcp_echo(processes: list[Process], tmp_path: Path) -> None:
    port = start_ncat(processes, tmp_path)
    s = Socket(f"sock://127.0.0.1:{port}")
    rec = Recorder(s, on_connect=lambda s, n: s.send(b"ping over ncat\n"))
    s.open()
    assert rec.wait_data(15) == b"ping over ncat\n"
    s.close()
    rec.wait_closed()


def test_stdlib_server_and_a_large_echo() -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    with RawServer(handler=echo_forever) as server:
        s = Socket(f"sock://127.0.0.1:{server.port}")
        rec = Recorder(s, on_connect=lambda s, n: s.send(payload))
        s.open()
        assert rec.wait_data(len(payload)) == payload
        s.close()
        rec.wait_closed()
    assert sum(rec.written) == len(payload)


def test_peer_close_ends_a_plain_socket() -> None:
    def greet_and_close(conn: RawConnection) -> None:
        sock = conn.sock
        with sock:
            sock.sendall(b"bye")

    with RawServer(handler=greet_and_close) as server:
        s = Socket(f"sock://127.0.0.1:{server.port}")
        rec = Recorder(s)
        s.open()
        rec.wait_closed()
    assert bytes(rec.data) == b"bye"
    assert rec.kinds() == ["connect", "data", "close"]
    assert s.readyState == Socket.CLOSED
    assert s.last_error is None  # a clean close by the peer is not an error


def test_refused_connection() -> None:
    port = free_port()  # nothing listens: connections are refused
    s = Socket(f"sock://127.0.0.1:{port}")
    rec = Recorder(s)
    s.open()
    rec.wait_closed()
    assert rec.kinds() == ["close"]
    assert isinstance(s.last_error, ConnectionFailed)
    assert s.last_error.error == SocketError.ConnectionRefusedError


def test_late_onclose_hears_close_once_through_the_loop() -> None:
    # Socket's handlers are the one event system's: onclose is one-shot, a late one hears it.
    closes: list[Any] = []
    heard = threading.Event()
    with socket.socket() as holder:  # bound, not listening: connections are refused
        holder.bind(("127.0.0.1", 0))
        s = Socket(f"sock://127.0.0.1:{holder.getsockname()[1]}", ondata=Socket.queue)
        s.open()
        assert wait_until(lambda: s.readyState == ReadyState.CLOSED)

    def onclose(sock: Socket) -> None:
        closes.append((sock, threading.current_thread().name))
        heard.set()

    s.onclose = onclose
    assert heard.wait(TIMEOUT)
    s.onclose = onclose  # the same handler again: not called twice
    assert s.onclose is onclose
    assert closes == [(s, "mesiboscript-io")]
    with pytest.raises(TypeError):
        s.onconnect = "not callable"  # type: ignore[assignment]


def test_handler_exceptions_are_logged_and_the_socket_goes_on(
    socat_echo: int, caplog: pytest.LogCaptureFixture
) -> None:
    s = Socket(f"sock://127.0.0.1:{socat_echo}")
    rec = Recorder(s, on_connect=lambda s, n: s.send(b"one"))
    record = rec._data

    def ondata(s: Socket, data: bytes) -> None:
        record(s, data)
        if data.startswith(b"one"):
            s.send(b"two")
            raise RuntimeError("boom in ondata")

    s.ondata = ondata
    with caplog.at_level(logging.ERROR, logger="mesiboscript"):
        s.open()
        assert rec.wait_data(6) == b"onetwo"
    s.close()
    rec.wait_closed()
    assert any("boom in ondata" in str(r.exc_info[1]) for r in caplog.records if r.exc_info), (
        caplog.text
    )


def test_one_io_thread_for_many_sockets(socat_echo: int) -> None:
    count = 20
    sockets = [Socket(f"sock://127.0.0.1:{socat_echo}") for _ in range(count)]
    recs = [Recorder(s, on_connect=lambda s, n: s.send(b"x")) for s in sockets]
    before = threading.active_count()
    for s in sockets:
        s.open()
    for rec in recs:
        assert rec.wait_data(1) == b"x"
    assert threading.active_count() == before  # no thread per socket
    for s in sockets:
        s.close()
    for rec in recs:
        rec.wait_closed()
        assert rec.threads == {"mesiboscript-io"}


def test_send_from_many_threads_keeps_each_threads_order(socat_echo: int) -> None:
    s = Socket(f"sock://127.0.0.1:{socat_echo}")
    rec = Recorder(s)
    s.open()
    rec.wait(lambda: rec.connects == 1, "onconnect")
    per_thread = 500

    def sender(t: int) -> None:
        for n in range(per_thread):
            s.send(f"{t}:{n};")

    threads = [threading.Thread(target=sender, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    expected = sum(len(f"{t}:{n};") for t in range(4) for n in range(per_thread))
    data = rec.wait_data(expected).decode()
    items = [item.split(":") for item in data.rstrip(";").split(";")]
    for t in range(4):
        assert [int(n) for who, n in items if who == str(t)] == list(range(per_thread))
    rec.wait(lambda: sum(rec.written) == expected, "onwrite for every byte")
    s.close()
    rec.wait_closed()


@pytest.mark.parametrize("scheme", ["sock", "ws"])
def test_exit_shutdown_closes_a_keepalive_socket_without_reconnecting(
    scheme: str, socat_echo: int, echo_url: str
) -> None:
    """What Ctrl-C and interpreter exit do: the loop shuts down every connection it keeps."""
    s = Socket(f"sock://127.0.0.1:{socat_echo}" if scheme == "sock" else echo_url)
    s.keepalive = True
    rec = Recorder(s)
    s.open()
    rec.wait(lambda: rec.connects == 1, "onconnect")
    assert _lifetime.active() == [s]  # the Socket, not its inner WebSocket, keeps the process alive
    _lifetime.shutdown_all(1001, "")
    rec.wait_closed()
    assert rec.connects == 1
    assert rec.kinds() == ["connect", "close"]
    assert _lifetime.active() == []


# -- TLS ----------------------------------------------------------------------------------


def test_ncat_tls_echo_verified(
    processes: list[Process], tmp_path: Path, cert_files: dict[str, str]
) -> None:
    port = start_ncat(
        processes,
        tmp_path,
        "--ssl",
        "--ssl-cert",
        cert_files["cert"],
        "--ssl-key",
        cert_files["key"],
    )
    s = Socket(f"socks://localhost:{port}", cafile=cert_files["ca"])
    rec = Recorder(s, on_connect=lambda s, n: s.send(b"over TLS\n"))
    s.open()
    assert rec.wait_data(9) == b"over TLS\n"
    s.close()
    rec.wait_closed()
    assert s.last_error is None


def test_openssl_s_server_rev(
    processes: list[Process], tmp_path: Path, cert_files: dict[str, str], client_ssl: Any
) -> None:
    openssl = need("openssl")
    args = [openssl, "s_server", "-accept", "127.0.0.1:0", "-rev"]
    args += ["-cert", cert_files["cert"], "-key", cert_files["key"]]
    proc = Process(args, tmp_path / "s_server.log")
    processes.append(proc)
    match = proc.wait_for(r"ACCEPT 127\.0\.0\.1:(\d+)")
    assert match, f"openssl s_server did not start: {proc.output()}"
    s = Socket(f"socks://127.0.0.1:{match.group(1)}", ssl_context=client_ssl)
    rec = Recorder(s, on_connect=lambda s, n: s.send("hello mesibo\n"))
    s.open()
    assert rec.wait_data(13) == b"obisem olleh\n"
    s.close()
    rec.wait_closed()


@pytest.mark.parametrize("how", ["socks://", "sock:// + enableSsl"])
def test_stdlib_tls_server(how: str, cert_files: dict[str, str], certs: Certificates) -> None:
    with RawServer(
        handler=echo_forever, ssl_context=certs.server_context("localhost", "127.0.0.1")
    ) as server:
        scheme = "socks" if how == "socks://" else "sock"
        s = Socket(f"{scheme}://localhost:{server.port}", cafile=cert_files["ca"])
        if scheme == "sock":
            s.enableSsl = True
        rec = Recorder(s, on_connect=lambda s, n: s.send(b"tls"))
        s.open()
        assert rec.wait_data(3) == b"tls"
        s.close()
        rec.wait_closed()


def test_unknown_ca_fails_and_closes(certs: Certificates) -> None:
    with RawServer(
        handler=echo_forever, ssl_context=certs.server_context("localhost", "127.0.0.1")
    ) as server:
        s = Socket(f"socks://localhost:{server.port}")  # certifi's CAs: ours is unknown
        rec = Recorder(s)
        s.open()
        rec.wait_closed()
    assert rec.kinds() == ["close"]
    error = s.last_error
    assert isinstance(error, ConnectionFailed)
    assert error.error == SocketError.SslHandshakeFailedError
    assert isinstance(error.__cause__, ssl.SSLCertVerificationError)


def test_keepalive_does_not_retry_a_certificate_that_fails(
    certs: Certificates, caplog: pytest.LogCaptureFixture
) -> None:
    """Retrying cannot fix a certificate: the reconnect policy calls it fatal, and a keepalive
    socket closes after the first attempt."""
    with RawServer(
        handler=echo_forever, ssl_context=certs.server_context("localhost", "127.0.0.1")
    ) as server:
        s = Socket(f"socks://localhost:{server.port}")  # certifi's CAs: ours is unknown
        s.keepalive = True
        rec = Recorder(s)
        with caplog.at_level(logging.WARNING, logger="mesiboscript"):
            s.open()
            rec.wait_closed()
        attempts = server.accepted
    assert attempts == 1
    assert rec.kinds() == ["close"]
    assert isinstance(s.last_error, ConnectionFailed)
    assert isinstance(s.last_error.__cause__, ssl.SSLCertVerificationError)
    assert "not retrying" in caplog.text


def test_wrong_hostname_fails(cert_files: dict[str, str], certs: Certificates) -> None:
    with RawServer(
        handler=echo_forever, ssl_context=certs.server_context("other.example")
    ) as server:
        s = Socket(f"socks://127.0.0.1:{server.port}", cafile=cert_files["ca"])
        rec = Recorder(s)
        s.open()
        rec.wait_closed()
    assert rec.connects == 0
    assert isinstance(s.last_error, ConnectionFailed)
    assert s.last_error.error == SocketError.SslHandshakeFailedError
    assert isinstance(s.last_error.__cause__, ssl.SSLCertVerificationError)


def test_verify_host_false_warns_and_connects(
    processes: list[Process], tmp_path: Path, other_cert_files: dict[str, str]
) -> None:
    # The server's CA is unknown to the client and its certificate names another host:
    # both checks would fail.
    port = start_ncat(
        processes,
        tmp_path,
        "--ssl",
        "--ssl-cert",
        other_cert_files["cert"],
        "--ssl-key",
        other_cert_files["key"],
    )
    s = Socket(f"socks://127.0.0.1:{port}")
    s.verify_host = False
    rec = Recorder(s, on_connect=lambda s, n: s.send(b"unverified"))
    with pytest.warns(UserWarning, match="verification is turned off"):
        s.open()
    assert rec.wait_data(10) == b"unverified"
    s.close()
    rec.wait_closed()


def test_verify_host_false_with_an_own_ssl_context_is_refused_at_open() -> None:
    """Swapping the caller's context for a default one would drop its client certificate and
    settings without a word; weakening it would change an object the caller holds."""
    context = ssl.create_default_context()
    s = Socket("socks://127.0.0.1:1", ssl_context=context, ondata=Socket.queue)
    s.verify_host = False
    with pytest.raises(ValueError, match="ssl_context"):
        s.open()
    assert (context.check_hostname, context.verify_mode) == (True, ssl.CERT_REQUIRED)
    assert s.readyState == ReadyState.CONNECTING  # nothing started: fix it and open
    s.verify_host = True
    s.close()


def test_connect_timeout_on_a_silent_tls_server() -> None:
    with RawServer(handler=silent) as server:
        s = Socket(f"socks://127.0.0.1:{server.port}", connect_timeout=0.3)
        rec = Recorder(s)
        s.open()
        rec.wait_closed()
    assert isinstance(s.last_error, ConnectionFailed)
    assert s.last_error.error == SocketError.SocketTimeoutError


# -- keepalive ----------------------------------------------------------------------------


def test_keepalive_reconnects_after_the_server_drops_twice() -> None:
    def drop_twice(conn: RawConnection) -> None:
        sock, n = conn.sock, conn.index
        if n <= 2:
            data = sock.recv(1024)
            sock.sendall(data)
            if n == 1:
                conn.reset()  # an RST
            else:
                sock.close()  # a FIN
            return
        echo_forever(conn)

    with RawServer(handler=drop_twice) as server:
        s = Socket(f"sock://127.0.0.1:{server.port}")
        s.keepalive = True
        rec = Recorder(s, on_connect=lambda s, n: s.send(f"hello {n};"))
        s.open()
        expected = b"hello 1;hello 2;hello 3;"
        assert rec.wait_data(len(expected)) == expected
        s.send(b"still here")
        assert rec.wait_data(len(expected) + 10) == expected + b"still here"
        assert s.readyState == Socket.OPEN
        s.close()
        rec.wait_closed()
        assert server.accepted == 3
    assert rec.connects == 3
    assert rec.kinds().count("close") == 1
    assert rec.events[-1] == ("close", Socket.CLOSED)
    assert isinstance(s.last_error, ConnectionFailed)  # the reset, for debugging
    assert s.last_error.error == SocketError.RemoteHostClosedError


@pytest.mark.parametrize("keepalive", [False, True])
def test_keepalive_turns_on_tcp_keepalive_probes(socat_echo: int, keepalive: bool) -> None:
    options: list[int] = []

    def probe(s: Socket, n: int) -> None:
        link = s._link
        assert isinstance(link, StreamLink)
        assert link.socket is not None
        options.append(link.socket.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))
        s.close()

    s = Socket(f"sock://127.0.0.1:{socat_echo}")
    s.keepalive = keepalive
    rec = Recorder(s, on_connect=probe)
    s.open()
    rec.wait_closed()
    assert options == [int(keepalive)]


def test_keepalive_holds_data_until_the_server_is_up() -> None:
    """Refused attempts are retried; data sent meanwhile is held and arrives once, in order."""
    server = RawServer(handler=echo_forever).bind()  # bound, not listening: refused
    try:
        s = Socket(f"sock://127.0.0.1:{server.port}", max_buffer=64)
        s.keepalive = True
        rec = Recorder(s, on_connect=lambda s, n: s.send(b"|onconnect"))
        s.open()
        s.send(b"held 1")
        s.send("|held 2")
        with pytest.raises(SendBufferFull):
            s.send(b"x" * 60)  # over max_buffer while disconnected
        assert s.readyState == Socket.CONNECTING
        assert wait_until(lambda: s.last_error is not None)  # at least one refused attempt
        assert isinstance(s.last_error, ConnectionFailed)
        assert s.last_error.error == SocketError.ConnectionRefusedError
        server.start()
        expected = b"held 1|held 2|onconnect"
        assert rec.wait_data(len(expected)) == expected
        s.close()
        rec.wait_closed()
    finally:
        server.close()
    assert rec.connects == 1


def test_keepalive_gives_up_after_max_attempts() -> None:
    port = free_port()  # nothing listens: connections are refused
    s = Socket(f"sock://127.0.0.1:{port}", max_attempts=3)
    s.keepalive = True
    rec = Recorder(s)
    started = time.monotonic()
    s.open()
    rec.wait_closed()
    # Three attempts: two backoff delays of about 0.1 s and 0.2 s (±20 %) in between.
    assert time.monotonic() - started >= 0.2
    assert rec.kinds() == ["close"]
    assert isinstance(s.last_error, ConnectionFailed)
    assert s.last_error.error == SocketError.ConnectionRefusedError


def test_close_stops_reconnecting_and_drops_held_data(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens: connections are refused
    s = Socket(f"sock://127.0.0.1:{port}", retry_delay=5.0)
    s.keepalive = True
    rec = Recorder(s)
    s.open()
    assert wait_until(lambda: s.last_error is not None)  # waiting 5 s to retry
    s.send(b"never sent")
    with caplog.at_level(logging.WARNING, logger="mesiboscript"):
        s.close()
        rec.wait_closed()
    assert rec.kinds() == ["close"]
    assert "10 sent bytes never written" in caplog.text
    assert s.read(0) is False


def test_unsent_data_survives_a_drop_and_nothing_is_written_twice() -> None:
    """A 24 MiB send() meets a reset after the kernel took part of it: onwrite reports what the
    first connection took, and the second connection gets exactly the rest, in order."""
    payload = bytes(range(256)) * (24 * 1024 * 1024 // 256)
    received: dict[int, bytes] = {}
    first_byte = threading.Event()
    done = threading.Event()

    def server(conn: RawConnection) -> None:
        sock, n = conn.sock, conn.index
        if n == 1:
            assert sock.recv(1)  # the kernel took some of it...
            first_byte.set()
            conn.reset()  # ...and the rest dies with the connection
            return
        chunks = []
        with sock:
            while True:
                data = sock.recv(1 << 20)
                if not data:
                    break
                chunks.append(data)
        received[n] = b"".join(chunks)
        done.set()

    written_before_reconnect: list[int] = []
    with RawServer(handler=server) as srv:
        s = Socket(f"sock://127.0.0.1:{srv.port}")
        s.keepalive = True

        def on_connect(s: Socket, n: int) -> None:
            if n == 1:
                s.send(payload)
            else:
                written_before_reconnect.extend(rec.written)
                s.close()  # flushes the held tail, then closes

        rec = Recorder(s, on_connect=on_connect)
        s.open()
        assert first_byte.wait(TIMEOUT)
        rec.wait_closed()
        assert done.wait(TIMEOUT)
    taken = sum(written_before_reconnect)
    assert 0 < taken < len(payload), "the reset should cut the send in two"
    assert received[2] == payload[taken:]
    assert sum(rec.written) == len(payload)
    assert rec.connects == 2


# -- read() and upgrade() -----------------------------------------------------------------


def test_read_and_upgrade_with_socket_queue(socat_echo: int) -> None:
    s = Socket(f"sock://127.0.0.1:{socat_echo}", ondata=Socket.queue)
    assert s.upgrade(TIMEOUT) is True  # opens, then waits
    assert s.readyState == Socket.OPEN
    assert s.read(0.05) is None  # nothing yet
    s.send(b"abc")
    assert s.read(TIMEOUT) == b"abc"
    s.send("déf")
    assert s.read(TIMEOUT) == "déf".encode()
    s.close()
    assert s.read(TIMEOUT) is False
    assert s.upgrade(0) is True  # it did open


def test_read_keeps_what_ondata_queues_and_backpressure_bounds_memory() -> None:
    total = 8 * 1024 * 1024
    payload = os.urandom(total)

    def blast(conn: RawConnection) -> None:
        sock = conn.sock
        with sock:
            sock.sendall(payload)

    high = 1024 * 1024
    seen_max = [0]
    over = threading.Event()

    def ondata(s: Socket, data: bytes) -> None:
        s.queue(data)  # what read() returns
        seen_max[0] = max(seen_max[0], s._inbox.nbytes)
        if s._inbox.nbytes > high:
            over.set()

    with RawServer(handler=blast) as server:
        s = Socket(f"sock://127.0.0.1:{server.port}", ondata=ondata)
        s.open()
        assert over.wait(TIMEOUT)  # the reader is behind: the socket pauses
        chunks = []
        size = 0
        while size < total:
            chunk = s.read(TIMEOUT)
            assert isinstance(chunk, bytes), chunk
            chunks.append(chunk)
            size += len(chunk)
        assert b"".join(chunks) == payload
        assert s.read(TIMEOUT) is False  # the server closed: drained and closed
    assert seen_max[0] <= high + 2 * 256 * 1024


def test_upgrade_false_on_failure_and_on_timeout() -> None:
    port = free_port()  # nothing listens: connections are refused
    refused = Socket(f"sock://127.0.0.1:{port}", ondata=Socket.queue)
    assert refused.upgrade(TIMEOUT) is False
    assert refused.read(0) is False

    with RawServer(handler=silent) as server:
        slow = Socket(f"socks://127.0.0.1:{server.port}", ondata=Socket.queue)
        closed = threading.Event()
        slow.onclose = lambda s: closed.set()
        assert slow.upgrade(0.2) is False  # the TLS handshake never completes: abandoned
        assert closed.wait(TIMEOUT)
        assert slow.readyState == Socket.CLOSED


def test_read_and_upgrade_refuse_to_block_the_io_thread(socat_echo: int) -> None:
    errors: list[BaseException] = []
    s = Socket(f"sock://127.0.0.1:{socat_echo}", ondata=Socket.queue)

    def onconnect(s: Socket) -> None:
        try:
            s.read(0)
        except InvalidStateError as exc:
            errors.append(exc)
        try:
            s.upgrade(0)
        except InvalidStateError as exc:
            errors.append(exc)
        s.close()

    closed = threading.Event()
    s.onconnect = onconnect
    s.onclose = lambda s: closed.set()
    s.open()
    assert closed.wait(TIMEOUT)
    assert len(errors) == 2


# -- ws:// and wss:// ---------------------------------------------------------------------


def test_ws_messages_through_socket(echo_url: str) -> None:
    s = Socket(echo_url)

    def onconnect(s: Socket, n: int) -> None:
        s.send("text ✓")
        s.send(b"\x00binary")

    rec = Recorder(s, on_connect=onconnect)
    s.open()
    rec.wait(lambda: len(rec.messages) == 2, "two messages")
    assert rec.messages == ["text ✓", b"\x00binary"]
    rec.wait(lambda: sorted(rec.written) == [7, len("text ✓".encode())], "onwrite")
    s.close()
    rec.wait_closed()
    assert rec.kinds() == ["connect", "data", "data", "close"]
    assert s.last_error is None
    assert not mesiboscript.getOpenSessions()


def test_wss_through_socket_and_read(wss_echo_url: str, client_ssl: Any) -> None:
    s = Socket(wss_echo_url, ssl_context=client_ssl, ondata=Socket.queue)
    assert s.enableSsl is True
    s.send("sent before open")  # held, then sent as the first message
    assert s.upgrade(TIMEOUT) is True
    assert s.read(TIMEOUT) == "sent before open"
    s.send(b"bin")
    assert s.read(TIMEOUT) == b"bin"
    s.close()
    assert s.read(TIMEOUT) is False


def test_ws_messages_not_completely_written_are_sent_again_whole() -> None:
    """A WebSocket drop cuts a 16 MiB message: the messages whose frames were not completely
    written (onwrite never fired for them) arrive whole, in order, on the next connection."""
    big = os.urandom(16 * 1024 * 1024)
    sent: list[Any] = [b"first", big, "after"]
    received: dict[int, list[bytes]] = {}
    done = threading.Event()

    counter = itertools.count(1)

    def server(conn: RawConnection) -> None:
        n = next(counter)
        conn.handshake()
        if n == 1:
            if not conn.buf:
                assert conn.sock.recv(1)  # the kernel took some of it...
            conn.reset()  # ...and the rest dies with the connection
            return
        messages: list[bytes] = []
        while True:  # the client's frames until its close frame, which is answered
            opcode, payload = conn.read_frame()
            if opcode == OP_CLOSE:
                conn.sock.sendall(close_frame(1000))
                break
            messages.append(payload)
        received[n] = messages
        done.set()

    written_on_first: list[int] = []
    with RawServer(handler=server) as srv:
        s = Socket(srv.url())
        s.keepalive = True

        def on_connect(s: Socket, n: int) -> None:
            if n == 1:
                for message in sent:
                    s.send(message)
            else:
                written_on_first.extend(rec.written)
                s.close()

        rec = Recorder(s, on_connect=on_connect)
        s.open()
        rec.wait_closed()
        assert done.wait(TIMEOUT)
    sizes = [len(m.encode() if isinstance(m, str) else m) for m in sent]
    k = len(written_on_first)
    assert k <= 1, "the 16 MiB frame cannot have been written before the reset"
    assert written_on_first == sizes[:k]
    assert received[2] == [m.encode() if isinstance(m, str) else m for m in sent[k:]]
    assert sorted(rec.written) == sorted(sizes)  # each message reported once
    assert rec.connects == 2


def test_wss_unknown_ca_fails(wss_echo_url: str) -> None:
    s = Socket(wss_echo_url)
    rec = Recorder(s)
    s.open()
    rec.wait_closed()
    assert rec.kinds() == ["close"]
    assert isinstance(s.last_error, ConnectionFailed)
    assert s.last_error.error == SocketError.SslHandshakeFailedError


def test_ws_keepalive_reconnects_after_drops() -> None:
    from mesiboscript.testing import EchoServer

    with EchoServer("ws") as server:
        s = Socket(f"ws://127.0.0.1:{server.port}/echo/1/drop", ping_interval=5.0)
        s.keepalive = True
        rec = Recorder(s, on_connect=lambda s, n: s.send(f"hello {n}"))
        s.open()
        rec.wait(lambda: len(rec.messages) >= 3, "three echoes across reconnects")
        s.close()
        rec.wait_closed()
    assert rec.messages[:3] == ["hello 1", "hello 2", "hello 3"]
    assert rec.connects >= 3
    assert rec.kinds().count("close") == 1


# -- the example --------------------------------------------------------------------------


def test_mesibo_example_gets_a_page_and_exits_by_itself() -> None:
    code = (
        "import runpy, sys, mesiboscript, mesiboscript._tcp as t\n"
        "if not hasattr(mesiboscript, 'Socket'):\n"
        "    mesiboscript.Socket = t.Socket  # until the package exports it\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "examples" / "mesibo_socket.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "connected", result.stdout  # the seed's onconnect prints it
    assert lines[1].startswith("HTTP/1.0 200"), result.stdout
    assert "Hello from the local server" in lines
