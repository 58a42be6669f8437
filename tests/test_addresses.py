"""IPv6 literals, and a host name with several addresses tried as browsers do (RFC 8305): when
one fails or hangs, the next is tried, within ``connect_timeout``.

The name ``multi.test`` resolves to the addresses a test chooses (``socket.getaddrinfo`` is
wrapped for that one name: DNS is not what is tested here); every connection attempt is real. A
hanging address is a real one: a listener whose accept queue is full drops further SYNs, as a
host behind a silent firewall does.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from mesiboscript import Socket, SocketError

from .helpers import TIMEOUT, free_port
from .test_proxy import (  # noqa: F401 - farm is a fixture
    Farm,
    _socket,
    _websocket,
    ended,
    failing_websocket,
    farm,
)

_real_getaddrinfo = socket.getaddrinfo


@pytest.fixture
def multi(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[str]], None]:
    """``multi(["127.0.0.2", "127.0.0.1"])``: ``multi.test`` resolves to those, in order."""

    def use(addresses: list[str]) -> None:
        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host != "multi.test":
                return _real_getaddrinfo(host, port, *args, **kwargs)
            infos = []
            for address in addresses:
                family = socket.AF_INET6 if ":" in address else socket.AF_INET
                sockaddr = (address, port, 0, 0) if ":" in address else (address, port)
                infos.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
            return infos

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    return use


@pytest.fixture
def hanging() -> Iterator[str]:
    """An address:port pair on 127.0.0.3 where a TCP connect hangs (full accept queue)."""
    port = free_port()
    listener = socket.socket()
    listener.bind(("127.0.0.3", port))
    listener.listen(0)
    fillers = []
    # Fill the accept queue: then the kernel drops new SYNs, and a connect waits.
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.3", port))
        fillers.append(s)
    probe = socket.socket()
    probe.settimeout(0.3)
    try:
        probe.connect(("127.0.0.3", port))
        pytest.fail("the full accept queue did not make a connect hang")
    except (socket.timeout, TimeoutError):
        pass
    finally:
        probe.close()
    yield str(port)
    for s in fillers:
        s.close()
    listener.close()


def test_ipv6_literals(echo_server_factory: Callable[..., Any]) -> None:
    ws_server = echo_server_factory("ws", host="::1")
    assert ws_server.url.startswith("ws://[::1]:")
    assert _websocket(ws_server.url, False, None) is None  # type: ignore[arg-type]
    sock_server = echo_server_factory("sock", host="::1")
    assert _socket(sock_server.url, False, None) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["http", "socks5", "socks5h"])
def test_ipv6_literal_through_a_proxy(
    farm: Farm,  # noqa: F811 - the fixture
    echo_server_factory: Callable[..., Any],
    kind: str,
) -> None:
    server = echo_server_factory("ws", host="::1")
    assert _websocket(server.url, farm.get(kind, False).url(scheme=kind), None) is None


def test_the_next_address_after_a_refused_one(
    echo_server_factory: Callable[..., Any], multi: Callable[[list[str]], None]
) -> None:
    server = echo_server_factory("ws")  # on 127.0.0.1 only: 127.0.0.2 refuses
    multi(["127.0.0.2", "::1", "127.0.0.1"])  # ::1 refuses too
    port = server.url.rsplit(":", 1)[1]
    assert _websocket(f"ws://multi.test:{port}", False, None) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "addresses",
    [["127.0.0.3", "127.0.0.1"], ["127.0.0.3", "127.0.0.2", "127.0.0.1"]],
    ids=["hang-good", "hang-refused-good"],
)
def test_the_next_address_while_one_hangs(
    echo_server_factory: Callable[..., Any],
    multi: Callable[[list[str]], None],
    hanging: str,
    addresses: list[str],
) -> None:
    server = echo_server_factory("sock", port=int(hanging))  # 127.0.0.1, the same port
    multi(addresses)  # a refused one gives way to the next at once, not after 250 ms
    started = time.monotonic()
    s = Socket(f"sock://multi.test:{hanging}", proxy=False, connect_timeout=5, ondata=Socket.queue)
    assert s.upgrade(TIMEOUT) is True
    elapsed = time.monotonic() - started
    assert elapsed < 2, f"{elapsed:.2f} s: the second address did not start ~250 ms after the first"
    s.send(b"ok")
    assert s.read(TIMEOUT) == b"ok"
    s.close()
    assert server.url.startswith("sock://127.0.0.1:")


def test_every_address_failing_reports_the_first_failure(
    multi: Callable[[list[str]], None],
) -> None:
    port = free_port()
    multi(["127.0.0.2", "127.0.0.1"])
    ws, errors, closed = failing_websocket(f"ws://multi.test:{port}/", proxy=False)
    assert ws.upgrade(TIMEOUT) is False
    ended(closed)
    assert errors == [SocketError.ConnectionRefusedError]


def test_hanging_addresses_end_at_connect_timeout(
    multi: Callable[[list[str]], None], hanging: str
) -> None:
    multi(["127.0.0.3", "127.0.0.3"])
    started = time.monotonic()
    ws, errors, closed = failing_websocket(
        f"ws://multi.test:{hanging}/", proxy=False, connect_timeout=0.6
    )
    assert ws.upgrade(TIMEOUT) is False
    ended(closed)
    assert errors == [SocketError.SocketTimeoutError]
    assert time.monotonic() - started < 0.6 + TIMEOUT / 10
