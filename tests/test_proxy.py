"""Every client through every kind of proxy, real proxies from Debian (tests/proxies.py).

The table: proxy kind (http, https, socks5, socks5h, socks4, socks4a) by client (``WebSocket``
ws/wss, ``Socket`` sock/socks/ws/wss, ``SocketIO``) by (no auth, auth, wrong auth); each cell
connects to an echo server through the proxy and gets its message back, or (wrong auth) fails
with ``ProxyAuthenticationRequiredError``. SOCKS 4 has no password: its "auth" is the user id,
checked by the 4a server only (Dante checks none without identd).
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional, Union

import pytest

from mesiboscript import Socket, SocketError, WebSocket
from mesiboscript._socketio import SocketIO

from .helpers import TIMEOUT, Certificates, free_port
from .proxies import (
    PASSWORD,
    USER,
    ProxyProcess,
    Socks4aServer,
    danted,
    microsocks,
    tinyproxy,
    tls_front,
)
from .test_socketio import ServerProcess, python_server

KINDS = ["http", "https", "socks5", "socks5h", "socks4", "socks4a"]
AUTHS = ["none", "auth", "wrong"]
CLIENTS = ["WebSocket-ws", "WebSocket-wss", "Socket-sock", "Socket-socks", "Socket-ws"]
CLIENTS += ["Socket-wss", "SocketIO"]

AnyProxy = Union[ProxyProcess, Socks4aServer]


class Farm:
    """Proxies started on first use, one per (kind, authenticating), stopped with the module."""

    def __init__(self, folder: Path, certs: Certificates) -> None:
        self.folder = folder
        self.certs = certs
        self.started: dict[tuple[str, bool], AnyProxy] = {}

    def get(self, kind: str, auth: bool) -> AnyProxy:
        key = (kind, auth)
        if key not in self.started:
            self.started[key] = self._start(kind, auth)
        return self.started[key]

    def _start(self, kind: str, auth: bool) -> AnyProxy:
        if kind == "http":
            return tinyproxy(self.folder, auth)
        if kind == "https":
            pem = self.certs.pem_files(self.folder, "127.0.0.1")
            front = self.get("http", auth)
            assert isinstance(front, ProxyProcess)
            return tls_front(self.folder, pem, front)
        if kind in ("socks5", "socks5h"):
            return microsocks(self.folder, auth) if kind == "socks5" else self.get("socks5", auth)
        if kind == "socks4":
            return danted(self.folder)
        return Socks4aServer(USER if auth else None)

    def url(self, kind: str, auth: str) -> str:
        proxy = self.get(kind, auth != "none")
        if auth == "none":
            credentials = None
        elif kind.startswith("socks4"):
            credentials = USER if auth == "auth" else "intruder"
        else:
            credentials = f"{USER}:{PASSWORD if auth == 'auth' else 'wrong'}"
        return proxy.url(credentials, scheme=kind)

    def stop(self) -> None:
        for proxy in reversed(list(self.started.values())):
            proxy.stop()


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory, echo_ca: Any) -> Iterator[Farm]:
    made = Farm(tmp_path_factory.mktemp("proxies"), Certificates(echo_ca))
    yield made
    made.stop()


@pytest.fixture(scope="module")
def sio_server() -> Iterator[ServerProcess]:
    server = python_server()
    yield server
    server.stop()


def _cells() -> list[Any]:
    cells = []
    for kind in KINDS:
        for auth in AUTHS:
            if kind == "socks4" and auth != "none":
                continue  # Dante checks no SOCKS 4 user id (that needs identd): see socks4a
            for client in CLIENTS:
                cells.append(pytest.param(kind, auth, client, id=f"{kind}-{auth}-{client}"))
    return cells


def failing_websocket(
    url: str, **options: Any
) -> tuple[WebSocket, list[SocketError], threading.Event]:
    """A WebSocket whose error events are recorded and whose close event is set: wait for
    it (the error event comes first; ``upgrade()`` may return before the handlers ran)."""
    errors: list[SocketError] = []
    closed = threading.Event()
    ws = WebSocket(url, onerror=errors.append, onclose=lambda e: closed.set(), **options)
    return ws, errors, closed


def ended(closed: threading.Event) -> None:
    assert closed.wait(TIMEOUT), "no close event"


def _websocket(url: str, proxy: str, cafile: Optional[str]) -> Optional[SocketError]:
    ws, errors, closed = failing_websocket(url, proxy=proxy, cafile=cafile)
    if not ws.upgrade(TIMEOUT):
        ended(closed)
        return errors[0] if errors else SocketError.UnknownSocketError
    ws.send("through the proxy")
    assert ws.read(TIMEOUT) == "through the proxy"
    ws.close()
    assert ws.read(TIMEOUT) is False
    return None


def _socket(url: str, proxy: str, cafile: Optional[str]) -> Optional[SocketError]:
    s = Socket(url, proxy=proxy, cafile=cafile, ondata=Socket.queue)
    if not s.upgrade(TIMEOUT):
        error: SocketError = getattr(s.last_error, "error", SocketError.UnknownSocketError)
        s.close()
        return error
    s.send(b"through the proxy")
    received = b""
    while len(received) < len(b"through the proxy"):
        data = s.read(TIMEOUT)
        assert isinstance(data, bytes), f"no echo: {data!r}"
        received += data
    assert received == b"through the proxy"
    s.close()
    return None


def _socketio(url: str, proxy: str, cafile: Optional[str]) -> Optional[SocketError]:
    events: queue.Queue[tuple[str, tuple[Any, ...]]] = queue.Queue()
    sio = SocketIO(url, proxy=proxy, timeout=TIMEOUT, cafile=cafile)
    for name in ("connect", "connect_error", "message"):
        sio.on(name, lambda *args, name=name: events.put((name, args)))
    try:
        name, args = events.get(timeout=TIMEOUT)
        if name == "connect_error":
            error: SocketError = args[0].get("error") or SocketError.UnknownSocketError
            return error
        assert name == "connect"
        sio.send({"text": "through the proxy"})
        assert events.get(timeout=TIMEOUT) == ("message", ({"text": "through the proxy"},))
        return None
    finally:
        sio.close()
        assert sio.wait(TIMEOUT)


@pytest.mark.parametrize(("kind", "auth", "client"), _cells())
def test_client_through_proxy(
    farm: Farm,
    kind: str,
    auth: str,
    client: str,
    echo_server_factory: Callable[..., Any],
    echo_ca: Any,
    sio_server: ServerProcess,
) -> None:
    proxy = farm.url(kind, auth)
    if client == "SocketIO":
        error = _socketio(sio_server.url, proxy, echo_ca.cafile if kind == "https" else None)
    else:
        face, scheme = client.split("-")
        server = echo_server_factory(scheme)
        cafile = echo_ca.cafile if kind == "https" or scheme in ("wss", "socks") else None
        url = server.url
        error = (_websocket if face == "WebSocket" else _socket)(url, proxy, cafile)
    if auth == "wrong":
        assert error == SocketError.ProxyAuthenticationRequiredError
    else:
        assert error is None


# -- each proxy failure, as HiFi's SocketError names it ----------------------------------------


def _fails_with(proxy: str, url: str, **options: Any) -> tuple[SocketError, str]:
    ws, errors, closed = failing_websocket(url, proxy=proxy, **options)
    assert ws.upgrade(TIMEOUT) is False
    ended(closed)
    assert errors, "no error event"
    return errors[0], str(ws.last_error)


def test_auth_required_without_credentials(farm: Farm, echo_server: Any) -> None:
    proxy = farm.get("http", True).url()
    error, text = _fails_with(proxy, echo_server.url)
    assert error == SocketError.ProxyAuthenticationRequiredError
    assert "407" in text


def test_wrong_password_is_never_shown(farm: Farm, echo_server: Any) -> None:
    proxy = farm.get("socks5", True).url(f"{USER}:hunter2")
    error, text = _fails_with(proxy, echo_server.url)
    assert error == SocketError.ProxyAuthenticationRequiredError
    assert "hunter2" not in text
    assert f"socks5://***@127.0.0.1:{farm.get('socks5', True).port}" in text


def test_refused(echo_server: Any) -> None:
    error, _ = _fails_with(f"http://127.0.0.1:{free_port()}", echo_server.url)
    assert error == SocketError.ProxyConnectionRefusedError


def test_closed_before_answering(listener: socket.socket, echo_server: Any) -> None:
    port = listener.getsockname()[1]
    closer = threading.Thread(target=lambda: listener.accept()[0].close())
    closer.start()
    error, _ = _fails_with(f"socks5h://127.0.0.1:{port}", echo_server.url)
    closer.join(TIMEOUT)
    assert error == SocketError.ProxyConnectionClosedError


def test_silent_proxy_times_out(listener: socket.socket, echo_server: Any) -> None:
    # The kernel completes the TCP handshake (the backlog); nobody ever answers the CONNECT.
    port = listener.getsockname()[1]
    error, _ = _fails_with(f"http://127.0.0.1:{port}", echo_server.url, connect_timeout=0.3)
    assert error == SocketError.ProxyConnectionTimeoutError


def test_proxy_name_not_found(echo_server: Any) -> None:
    error, _ = _fails_with("http://proxy.invalid:3128", echo_server.url)
    assert error == SocketError.ProxyNotFoundError


@pytest.mark.parametrize("scheme", ["http", "socks4a", "socks5h"])
def test_protocol_error_a_proxy_url_pointing_at_an_ssh_server(
    listener: socket.socket, echo_server: Any, scheme: str
) -> None:
    def ssh() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"SSH-2.0-OpenSSH_9.2p1\r\n\r\n")
            conn.recv(1024)

    server = threading.Thread(target=ssh)
    server.start()
    port = listener.getsockname()[1]
    error, _ = _fails_with(f"{scheme}://127.0.0.1:{port}", echo_server.url)
    server.join(TIMEOUT)
    assert error == SocketError.ProxyProtocolError


def test_socket_reports_the_proxy_member_too(echo_server_sock: Any) -> None:
    s = Socket(echo_server_sock.url, proxy=f"socks5://127.0.0.1:{free_port()}", ondata=Socket.queue)
    assert s.upgrade(TIMEOUT) is False
    assert getattr(s.last_error, "error", None) == SocketError.ProxyConnectionRefusedError
    s.close()


# -- the environment, as curl reads it -----------------------------------------------------------


def test_environment_proxy_no_proxy_and_false(
    farm: Farm, echo_server: Any, echo_server_sock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = farm.get("http", True).url(f"{USER}:wrong")
    socks_wrong = farm.get("socks5", True).url(f"{USER}:wrong")
    monkeypatch.setenv("HTTP_PROXY", wrong)  # upper case counts when lower case is unset
    monkeypatch.setenv("all_proxy", socks_wrong)
    # Loopback is proxied (curl's rule): the wrong password shows the proxy was used.
    error, _ = _fails_with(None, echo_server.url)  # type: ignore[arg-type]
    assert error == SocketError.ProxyAuthenticationRequiredError
    s = Socket(echo_server_sock.url, ondata=Socket.queue)  # sock:// reads all_proxy
    assert s.upgrade(TIMEOUT) is False
    assert getattr(s.last_error, "error", None) == SocketError.ProxyAuthenticationRequiredError
    s.close()
    # proxy=False ignores the environment; no_proxy (CIDR here) bypasses it.
    assert _websocket(echo_server.url, False, None) is None  # type: ignore[arg-type]
    monkeypatch.setenv("no_proxy", "example.com, 127.0.0.0/8")
    assert _websocket(echo_server.url, None, None) is None  # type: ignore[arg-type]
    assert _socket(echo_server_sock.url, None, None) is None  # type: ignore[arg-type]
    # The right credentials in the environment: through the proxy.
    monkeypatch.delenv("no_proxy")
    monkeypatch.setenv("ws_proxy", farm.get("http", True).url(f"{USER}:{PASSWORD}"))
    assert _websocket(echo_server.url, None, None) is None  # type: ignore[arg-type]


# -- paths the table does not take -----------------------------------------------------------


def test_tls_inside_tls_carries_megabytes_and_the_servers_close(
    farm: Farm, echo_server_factory: Callable[..., Any], echo_ca: Any
) -> None:
    """wss:// through an https:// proxy: the relay under backpressure both ways, then the end
    of the tunnel (the server closes after its close frame)."""
    server = echo_server_factory("wss")
    proxy = farm.url("https", "none")
    ws = WebSocket(server.url, proxy=proxy, cafile=echo_ca.cafile)
    assert ws.upgrade(TIMEOUT)
    blobs = [bytes([i]) * 900_000 for i in range(8)]
    for blob in blobs:
        ws.send(blob)
    for blob in blobs:
        assert ws.read(TIMEOUT) == blob
    ws.close()
    assert ws.read(TIMEOUT) is False
    closing = WebSocket(server.url + "close/4000/bye", proxy=proxy, cafile=echo_ca.cafile)
    assert closing.upgrade(TIMEOUT)
    assert closing.read(TIMEOUT) is False
    assert closing.readyState == WebSocket.CLOSED


def test_an_https_proxy_certificate_is_verified(farm: Farm, echo_server: Any) -> None:
    # No cafile: the default context (certifi) does not trust the test CA that signed the
    # proxy's certificate.
    error, _ = _fails_with(farm.url("https", "none"), echo_server.url)
    assert error == SocketError.SslHandshakeFailedError


@pytest.mark.parametrize("kind", ["socks5", "socks4"])
def test_client_side_resolution_for_socks5_and_socks4(
    farm: Farm, echo_server: Any, kind: str
) -> None:
    url = echo_server.url.replace("127.0.0.1", "localhost")
    assert _websocket(url, farm.url(kind, "none"), None) is None


def test_client_side_resolution_failures(
    farm: Farm, echo_server_factory: Callable[..., Any]
) -> None:
    error, _ = _fails_with(farm.url("socks5", "none"), "ws://name.invalid/")
    assert error == SocketError.HostNotFoundError
    # SOCKS 4 carries IPv4 addresses only: an IPv6 literal cannot go through it.
    server = echo_server_factory("ws", host="::1")
    error, text = _fails_with(farm.url("socks4", "none"), server.url)
    assert error == SocketError.ProxyProtocolError
    assert "IPv4 addresses only" in text


def test_the_unheard_failure_warning_hides_proxy_credentials(
    farm: Farm, echo_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = farm.get("http", True).url(f"{USER}:hunter2")
    with caplog.at_level("WARNING", logger="mesiboscript"):
        ws = WebSocket(echo_server.url, proxy=proxy)  # nobody listens: one WARNING
        assert ws.upgrade(TIMEOUT) is False
        deadline = time.monotonic() + TIMEOUT
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.01)  # the warning is decided after a short grace
    assert caplog.records, "no warning"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "hunter2" not in logged
    assert "ProxyAuthenticationRequiredError" in logged
    assert "hunter2" not in repr(ws)


@pytest.mark.parametrize("scheme", ["wss", "socks"])
def test_tls_inside_tls_reports_the_server_dropping_the_connection(
    farm: Farm, echo_server_factory: Callable[..., Any], echo_ca: Any, scheme: str
) -> None:
    """The far end goes away first: the relay sees the proxy's TLS end and ends the tunnel."""
    server = echo_server_factory(scheme, script="drop" if scheme == "socks" else None)
    proxy = farm.url("https", "none")
    if scheme == "wss":
        ws, errors, closed = failing_websocket(
            server.url + "drop", proxy=proxy, cafile=echo_ca.cafile
        )
        ended(closed)
        assert ws.readyState == WebSocket.CLOSED
        assert errors == []  # as without a proxy: a drop after open fires close (1006) only
        return
    s = Socket(server.url, proxy=proxy, cafile=echo_ca.cafile, ondata=Socket.queue)
    s.upgrade(TIMEOUT)
    assert s.read(TIMEOUT) is False  # the tunnel ended: the socket closed (no keepalive)
