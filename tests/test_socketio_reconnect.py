"""``SocketIO`` as socket.io-client behaves after the first connection: reconnection after a real
server was killed and restarted on the same port, emits buffered while disconnected, ``call()``,
several namespaces over one connection, the catch-all handler and connection state recovery.

The servers are the real ones of ``tests/test_socketio.py`` (Botmaster on socket.io 1.7, a
socket.io 4 server, python-socketio's server), each in a subprocess.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from mesiboscript import ConnectionClosed, SendBufferFull
from mesiboscript._socketio import SocketIO

from .helpers import TIMEOUT, free_port
from .test_socketio import (
    SERVER_KINDS,
    Client,
    ServerProcess,
    make_clients,
    node_server,
    python_server,
    start_server,
)

# Fast backoff for tests: the policy is socket.io-client's, only shorter.
FAST = {"reconnection_delay": 0.05, "reconnection_delay_max": 0.2}


def restart(server: ServerProcess) -> ServerProcess:
    """Stop ``server`` and start the same server again on the same port."""
    server.stop()
    return ServerProcess([*server.argv, "--port", str(server.port)])


@pytest.fixture
def own() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, ServerProcess]]:
    """Each kind of server, started once per module on first use."""
    started: dict[str, ServerProcess] = {}
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture
def socketio4(servers: dict[str, ServerProcess]) -> ServerProcess:
    if "socketio4" not in servers:
        servers["socketio4"] = start_server("socketio4")
    return servers["socketio4"]


@pytest.fixture
def clients() -> Iterator[Callable[..., Client]]:
    yield from make_clients()


def fresh(kind: str) -> ServerProcess:
    if kind == "python-socketio":
        return python_server()
    return start_server(kind)


def recorder(into: queue.Queue[Any]) -> Callable[..., None]:
    return lambda *args: into.put(args)


def nothing_more(q: queue.Queue[Any]) -> None:
    assert q.empty(), f"unexpected: {q.get_nowait()}"


# -- reconnection -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_reconnects_after_a_restart_and_sends_buffered_emits_once_in_order(
    kind: str, own: list[ServerProcess], clients: Callable[..., Client]
) -> None:
    server = fresh(kind)
    own.append(server)
    client = clients(server.url + "/?botmasterUserId=u1", "reconnect", **FAST)
    sio = client.sio
    chat = sio.of("/chat")
    chat_connects: queue.Queue[Any] = queue.Queue()
    chat.onconnect = recorder(chat_connects)
    client.connected()
    chat_connects.get(timeout=TIMEOUT)
    first_id = sio.id

    server.stop()
    assert client.get("disconnect") in (("transport close",), ("transport error",))
    assert not sio.connected
    acked: queue.Queue[Any] = queue.Queue()
    for n in range(5):  # while disconnected: buffered, sent once reconnected, in order
        sio.emit("echo", n, callback=recorder(acked))
    server = restart(server)
    own.append(server)

    assert client.get("reconnect") == ()
    client.connected()
    chat_connects.get(timeout=TIMEOUT)  # the other namespace is joined again too
    assert sio.id != first_id
    assert [acked.get(timeout=TIMEOUT) for _ in range(5)] == [(n,) for n in range(5)]
    assert sio.call("echo", "after", timeout=TIMEOUT) == "after"  # later than any duplicate
    nothing_more(acked)
    assert client.order.index("disconnect") < client.order.index("reconnect")
    if kind == "botmaster":
        sio.send({"text": "back"})
        assert client.get("message") == ({"recipient": {"id": "u1"}, "message": {"text": "back"}},)


def test_the_backoff_is_socket_io_clients(own: list[ServerProcess]) -> None:
    """Defaults: 1 s doubling to 5 s with randomization 0.5, unlimited attempts."""
    sio = SocketIO(f"http://127.0.0.1:{free_port()}", timeout=1)
    try:
        reconnector = sio._manager._reconnector
        assert reconnector is not None
        policy = reconnector.policy
        assert (policy.first_delay, policy.max_delay, policy.factor) == (1.0, 5.0, 2.0)
        assert (policy.randomization, policy.max_attempts, policy.stable_after) == (0.5, None, 0)
    finally:
        sio.close()
        assert sio.wait(TIMEOUT)
    assert SocketIO(f"http://127.0.0.1:{free_port()}", reconnection=False, timeout=1).wait(TIMEOUT)


def test_reconnect_failed_when_the_attempts_run_out(
    own: list[ServerProcess], clients: Callable[..., Client]
) -> None:
    server = start_server("socketio4")
    own.append(server)
    client = clients(
        server.url, "reconnect_attempt", "reconnect_failed", reconnection_attempts=3, **FAST
    )
    client.connected()
    server.stop()
    client.get("disconnect")
    assert [client.get("reconnect_attempt") for _ in range(3)] == [(1,), (2,), (3,)]
    assert client.get("reconnect_failed") == ()
    assert client.sio.wait(TIMEOUT)
    assert "connect_error" not in client.order  # socket.io-client: reconnect_error, not this
    client.sio.emit("echo", "late")  # over: nothing sent, nothing raised
    with pytest.raises(ConnectionClosed):
        client.sio.call("echo", 1, timeout=TIMEOUT)


def test_the_first_attempt_is_not_retried(clients: Callable[..., Client]) -> None:
    client = clients(f"http://127.0.0.1:{free_port()}", "reconnect_attempt", **FAST)
    (data,) = client.get("connect_error")
    assert data["message"] == "xhr poll error"  # socket.io-client's words, polling first
    assert client.sio.wait(TIMEOUT)
    assert "reconnect_attempt" not in client.order


def test_close_stops_reconnecting(own: list[ServerProcess], clients: Callable[..., Client]) -> None:
    server = start_server("socketio4")
    own.append(server)
    client = clients(
        server.url, "reconnect_attempt", reconnection_delay=0.5, reconnection_delay_max=0.5
    )
    client.connected()
    server.stop()
    client.get("disconnect")
    client.sio.close()  # while waiting for the first retry
    assert client.sio.wait(TIMEOUT)
    assert "reconnect_attempt" not in client.order
    assert client.order == ["connect", "disconnect"]


def test_the_buffer_is_bounded(own: list[ServerProcess], clients: Callable[..., Client]) -> None:
    server = start_server("socketio4")
    own.append(server)
    client = clients(server.url, max_buffered=3, **FAST)
    client.connected()
    for n in range(10):  # connected: nothing waits, no bound applies
        client.sio.emit("echo", n)
    server.stop()
    client.get("disconnect")
    for n in range(3):
        client.sio.emit("echo", n)
    with pytest.raises(SendBufferFull, match="max_buffered"):
        client.sio.emit("echo", 3)


def test_auth_and_headers_callables_are_called_at_each_attempt(
    own: list[ServerProcess], clients: Callable[..., Client]
) -> None:
    server = start_server("socketio4")
    own.append(server)
    counts = {"auth": 0, "headers": 0}

    def auth() -> dict[str, Any]:
        counts["auth"] += 1
        return {"token": f"t{counts['auth']}"}

    def headers() -> dict[str, str]:
        counts["headers"] += 1
        return {"X-Attempt": str(counts["headers"])}

    client = clients(server.url, "auth", auth=auth, headers=headers, **FAST)
    assert client.get("auth") == ({"token": "t1"},)
    server.stop()
    client.get("disconnect")
    server = restart(server)
    own.append(server)
    client.get("connect")
    client.get("connect")
    assert client.get("auth") == ({"token": f"t{counts['auth']}"},)
    assert counts["auth"] >= 2
    assert counts["headers"] >= 2


def test_server_disconnect_is_not_retried(
    socketio4: ServerProcess, clients: Callable[..., Client]
) -> None:
    client = clients(socketio4.url, "reconnect_attempt", **FAST)
    client.connected()
    client.sio.emit("disconnect-me")
    assert client.get("disconnect") == ("io server disconnect",)
    assert client.sio.wait(TIMEOUT)
    assert "reconnect_attempt" not in client.order


# -- call ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_call_returns_the_ack(
    kind: str, servers: dict[str, ServerProcess], clients: Callable[..., Client]
) -> None:
    if kind not in servers:
        servers[kind] = start_server(kind)
    client = clients(servers[kind].url)
    sio = client.sio
    assert sio.call("echo", "one", timeout=TIMEOUT) == "one"
    assert sio.call("echo", 1, [2], {"3": None}, timeout=TIMEOUT) == (1, [2], {"3": None})
    if kind != "python-socketio":  # it answers with the returned tuple, () being no args
        assert sio.call("echo", timeout=TIMEOUT) is None


def test_call_times_out(socketio4: ServerProcess, clients: Callable[..., Client]) -> None:
    client = clients(socketio4.url)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="'no-such-event'"):
        client.sio.call("no-such-event", "never acked", timeout=0.2)
    assert time.monotonic() - started < TIMEOUT


def test_call_fails_at_once_when_the_connection_drops(
    own: list[ServerProcess], clients: Callable[..., Client]
) -> None:
    server = start_server("socketio4")
    own.append(server)
    client = clients(server.url, **FAST)
    client.connected()
    outcome: queue.Queue[Any] = queue.Queue()

    def caller() -> None:
        try:
            # The server's call-me handler never acks; it emits "message" to us, which tells
            # the test the call's packet arrived. (A call on "message" itself raced: the server
            # echoes with our ack function attached, and our auto-ack of the echo acked it.)
            outcome.put(client.sio.call("call-me", "message", "never acked", timeout=TIMEOUT * 10))
        except BaseException as exc:
            outcome.put(exc)

    thread = threading.Thread(target=caller)
    thread.start()
    client.get("message")  # the server's emit: the call's packet arrived
    started = time.monotonic()
    server.stop()
    result = outcome.get(timeout=TIMEOUT)
    thread.join(TIMEOUT)
    assert isinstance(result, ConnectionClosed)
    assert time.monotonic() - started < TIMEOUT


def test_call_inside_a_handler_raises(
    socketio4: ServerProcess, clients: Callable[..., Client]
) -> None:
    client = clients(socketio4.url)
    errors: queue.Queue[Any] = queue.Queue()

    def onconnect() -> None:
        try:
            client.sio.call("echo", 1)
        except Exception as exc:
            errors.put(exc)

    client.sio.onconnect = onconnect
    assert "deadlock" in str(errors.get(timeout=TIMEOUT))


# -- namespaces, catch-all ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_several_namespaces_over_one_connection(
    kind: str, servers: dict[str, ServerProcess], clients: Callable[..., Client]
) -> None:
    if kind not in servers:
        servers[kind] = start_server(kind)
    client = clients(servers[kind].url, namespaces=["/", "/chat"])
    sio = client.sio
    chat = sio.of("/chat")
    assert sio.of("/chat") is chat
    assert sio.namespace == "/"
    welcome: queue.Queue[Any] = queue.Queue()
    chat.on("welcome", recorder(welcome))
    assert welcome.get(timeout=TIMEOUT) == ("/chat",)
    client.connected()
    assert chat.connected
    assert chat.id
    assert chat.id != sio.id
    assert chat.call("echo", "in chat", timeout=TIMEOUT) == "in chat"
    assert sio.call("echo", "in main", timeout=TIMEOUT) == "in main"
    refused: queue.Queue[Any] = queue.Queue()
    private = sio.of("/private")
    private.onconnect_error = recorder(refused)
    (data,) = refused.get(timeout=TIMEOUT)
    assert data["message"] == "not authorized"
    assert sio.connected  # a refused namespace leaves the others alone
    assert chat.connected
    chat.close()
    assert sio.call("echo", "still", timeout=TIMEOUT) == "still"
    assert not chat.connected


def test_namespaces_option_without_the_default(
    socketio4: ServerProcess, clients: Callable[..., Client]
) -> None:
    client = clients(socketio4.url, "welcome", namespaces=["/chat"])
    assert client.sio.namespace == "/chat"
    assert client.get("welcome") == ("/chat",)


@pytest.mark.parametrize("kind", ["botmaster", "socketio4"])
def test_catch_all(
    kind: str, servers: dict[str, ServerProcess], clients: Callable[..., Client]
) -> None:
    if kind not in servers:
        servers[kind] = start_server(kind)
    client = clients(servers[kind].url, "echo", "call-me-result")
    anything: queue.Queue[Any] = queue.Queue()
    client.sio.on("*", recorder(anything))
    client.connected()
    client.sio.emit("call-me", "question", 21)
    caught = [anything.get(timeout=TIMEOUT)]
    while caught[-1][0] != "question":  # socketio4 sends "auth" and "recovered" first
        caught.append(anything.get(timeout=TIMEOUT))
    assert caught[-1] == ("question", 21)
    assert {c[0] for c in caught} <= {"auth", "recovered", "question"}
    client.sio.emit("echo", "own handler")
    assert client.get("echo") == ("own handler",)
    assert client.get("call-me-result") == ([],)  # the recorder returned None: no values
    client.sio.off("*")
    client.sio.on("*", lambda event, *args: ("caught", event))
    client.sio.emit("call-me", "again", 1)  # a catch-all's return value is the ack
    assert client.get("call-me-result") == (["caught", "again"],)


# -- connection state recovery ------------------------------------------------------------------


def test_connection_state_recovery(
    own: list[ServerProcess], clients: Callable[..., Client]
) -> None:
    server = node_server("socketio4_echo_server.js", "--recovery")
    own.append(server)
    client = clients(
        server.url,
        "missed",
        "reconnect",
        reconnection_delay=1.0,
        reconnection_delay_max=1.0,
        randomization_factor=0,
    )
    client.connected()
    assert not client.sio.recovered
    first_id = client.sio.id
    client.sio.emit("drop-me")  # the server closes the transport, then emits "missed" at 200 ms
    assert client.get("disconnect") == ("transport close",)
    client.get("reconnect")
    client.connected()
    assert client.sio.recovered
    assert client.sio.id == first_id
    assert client.get("missed") == ("while away",)  # the offset is not an argument


# -- arguments and the user's callables ---------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"transports": "carrier-pigeon"}, ValueError),
        ({"transports": []}, ValueError),
        ({"max_buffered": -1}, ValueError),
        ({"max_size": 0}, ValueError),
        ({"ping_interval": 0}, ValueError),
        ({"headers": 5}, TypeError),
        ({"headers": {"Bad Name": "x"}}, ValueError),
        ({"origin": "a\r\nb"}, ValueError),
        ({"reconnection": "yes"}, TypeError),
        ({"reconnection_attempts": -1}, ValueError),
        ({"reconnection_delay": 0}, ValueError),
        ({"reconnection_delay_max": "5"}, ValueError),
        ({"randomization_factor": 1}, ValueError),
        ({"namespaces": ["chat"]}, ValueError),
        ({"no_such_option": 1}, TypeError),
        ({"compression": "zip"}, ValueError),
    ],
)
def test_bad_options_raise_at_once(options: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        SocketIO(f"http://127.0.0.1:{free_port()}", **options)


def test_call_arguments(socketio4: ServerProcess, clients: Callable[..., Client]) -> None:
    client = clients(socketio4.url, transports="websocket")  # one name is a one-item tuple
    client.connected()
    assert client.sio._manager.transport == "websocket"
    with pytest.raises(ValueError, match="timeout"):
        client.sio.call("echo", timeout=0)
    with pytest.raises(ValueError, match="reserved"):
        client.sio.call("connect")
    chat = client.sio.of("/chat")
    assert "Namespace" in repr(chat)
    assert chat.namespace == "/chat"


def test_an_auth_callable_that_raises_is_a_connect_error(
    socketio4: ServerProcess, clients: Callable[..., Client]
) -> None:
    def auth() -> dict[str, Any]:
        raise RuntimeError("no token today")

    client = clients(socketio4.url, auth=auth)
    (data,) = client.get("connect_error")
    assert data == {"message": "auth error", "description": "no token today"}
    assert client.sio.wait(TIMEOUT)


def test_a_headers_callable_that_raises_is_a_connect_error(
    socketio4: ServerProcess, clients: Callable[..., Client]
) -> None:
    def headers() -> dict[str, str]:
        raise RuntimeError("no headers today")

    client = clients(socketio4.url, headers=headers)
    (data,) = client.get("connect_error")
    assert data["message"] == "transport error"
    assert "no headers today" in data["description"]
    assert client.sio.wait(TIMEOUT)


def test_a_headers_callable_that_fails_at_a_reconnection_ends_it(
    own: list[ServerProcess], clients: Callable[..., Client]
) -> None:
    server = start_server("socketio4")
    own.append(server)
    calls = []

    def headers() -> dict[str, str]:
        calls.append(1)
        if len(calls) > 2:  # the polling handshake and the upgrade's probe, then no more
            raise RuntimeError("expired")
        return {}

    client = clients(server.url, "reconnect_failed", headers=headers, **FAST)
    client.connected()
    server.stop()
    client.get("disconnect")
    assert client.get("reconnect_failed") == ()
    assert client.sio.wait(TIMEOUT)
