"""Process lifetime: scripts run until their connections close; Ctrl-C closes them with 1001."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest

import mesiboscript
from mesiboscript import WebSocket

from .helpers import TIMEOUT, AsyncServers, closing_server, free_port, interruptible, wait_for
from .rawserver import RawServer

SCRIPT = textwrap.dedent(
    """
    import sys
    from mesiboscript import WebSocket

    ws = WebSocket(sys.argv[1])
    ws.onopen = lambda: ws.send("hi")

    def onmessage(event):
        print("got", event.data, flush=True)
        ws.close()

    ws.onmessage = onmessage
    ws.onclose = lambda event: print(f"closed {event.code} {event.wasClean}", flush=True)
    """
)

INTERRUPTIBLE = textwrap.dedent(
    """
    import sys
    import mesiboscript
    from mesiboscript import WebSocket

    ws = WebSocket(sys.argv[1])
    ws.onopen = lambda: print("open", flush=True)
    ws.onclose = lambda event: print(f"closed {event.code}", flush=True)
    if sys.argv[2] == "run":
        mesiboscript.run()
    """
)


def _python(*args: str) -> list[str]:
    return [sys.executable, "-c", *args]


def test_a_script_that_only_sets_handlers_runs_to_completion(echo_url: str) -> None:
    result = subprocess.run(
        _python(SCRIPT, echo_url), capture_output=True, text=True, timeout=TIMEOUT * 3
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["got hi", "closed 1005 True"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("mode", ["exit", "run"])
def test_ctrl_c_closes_every_connection_with_1001(servers: AsyncServers, mode: str) -> None:
    server, codes, closed = closing_server(servers)
    try:
        proc = interruptible("-c", INTERRUPTIBLE, f"ws://127.0.0.1:{server.port}/", mode)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "open"
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=TIMEOUT)
        assert closed.wait(TIMEOUT)
    finally:
        servers.stop(server)
    assert codes == [1001]
    assert "closed 1001" in out, err
    assert proc.returncode == -signal.SIGINT, err  # a shell shows 130


# -- a handler's sys.exit() ends the process, as in the main thread ------------------------------

EXITING = textwrap.dedent(
    """
    import sys, time
    import mesiboscript
    from mesiboscript import WebSocket

    url, where, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
    if where == "socket":  # Mesibo's Socket (over ws://): its onconnect
        from mesiboscript import Socket

        s = Socket(url)
        s.ondata = lambda s, data: None
        s.onconnect = lambda s: sys.exit(3)
        s.onclose = lambda s: print("closed socket", flush=True)
        s.open()
    else:
        ws = WebSocket(url)
        ws.onclose = lambda event: print(f"closed {event.code}", flush=True)
    if where == "string":
        ws.onopen = lambda: sys.exit("bye from a handler")
    elif where == "interrupt":
        def onopen():
            raise KeyboardInterrupt
        ws.onopen = onopen
    elif where != "socket":
        ws.onopen = lambda: sys.exit(3)
    try:
        if where == "read":
            ws.read()
        elif where == "sleep":
            time.sleep(timeout * 3)
        elif where == "run":
            mesiboscript.run()
    finally:
        print("main code ends", flush=True)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(
    ("where", "status"),
    [
        ("atexit", 3),  # the main code had ended: the exit hook was waiting
        ("read", 3),  # the main thread was blocked in read(), time.sleep(), run()
        ("sleep", 3),
        ("run", 3),
        ("socket", 3),
        ("string", 1),  # sys.exit("message"): printed, status 1
        ("interrupt", -signal.SIGINT),  # raise KeyboardInterrupt: as Ctrl-C
    ],
)
def test_sys_exit_in_a_handler_ends_the_process_with_its_code(
    servers: AsyncServers, where: str, status: int
) -> None:
    """It used to be logged and swallowed: the process then waited forever for its sockets."""
    server, codes, closed = closing_server(servers)
    try:
        proc = interruptible("-c", EXITING, f"ws://127.0.0.1:{server.port}/", where, str(TIMEOUT))
        out, err = proc.communicate(timeout=TIMEOUT)
        assert closed.wait(TIMEOUT)
    finally:
        servers.stop(server)
    assert codes == [1001]
    assert ("closed socket" if where == "socket" else "closed 1001") in out, err
    assert proc.returncode == status, err
    assert "main code ends" in out, err  # the main code's finally blocks ran
    if where == "string":
        assert "bye from a handler" in err


SURVIVOR = textwrap.dedent(
    """
    import sys, time
    from mesiboscript import WebSocket

    url, timeout = sys.argv[1], float(sys.argv[2])
    first = WebSocket(url)
    first.onopen = lambda: sys.exit(5)
    try:
        time.sleep(timeout * 3)
    except SystemExit as exc:
        print("main got SystemExit", exc.code, flush=True)
    # The I/O thread must still serve a WebSocket created afterwards.
    second = WebSocket(url)
    print("upgrade", second.upgrade(timeout), flush=True)
    second.send("echo me")
    print("read", second.read(timeout), flush=True)
    second.close()
    print("read after close", second.read(timeout), flush=True)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_the_io_thread_survives_a_handler_s_sys_exit(echo_url: str) -> None:
    proc = interruptible("-c", SURVIVOR, echo_url, str(TIMEOUT))
    out, err = proc.communicate(timeout=TIMEOUT * 2)
    assert out.splitlines() == [
        "main got SystemExit 5",
        "upgrade True",
        "read echo me",
        "read after close False",
    ], err
    assert proc.returncode == 5, err


SOCKETIO_EXIT = textwrap.dedent(
    """
    import sys, time
    from mesiboscript import SocketIO, WebSocket

    nothing_there, echo, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
    sio = SocketIO(nothing_there)
    print("done", sio.wait(timeout), flush=True)  # connect_error fired, with no handler yet
    try:
        sio.onconnect_error = lambda error: sys.exit(4)  # delivered late, on the I/O thread
        time.sleep(timeout * 3)
    except SystemExit as exc:
        print("main got SystemExit", exc.code, flush=True)
    ws = WebSocket(echo)
    print("upgrade", ws.upgrade(timeout), flush=True)
    ws.close()
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_late_socketio_connect_error_handler_s_sys_exit(echo_url: str) -> None:
    """It used to kill the I/O thread: no WebSocket created afterwards got an event."""
    nothing_there = f"http://127.0.0.1:{free_port()}/"
    proc = interruptible("-c", SOCKETIO_EXIT, nothing_there, echo_url, str(TIMEOUT))
    out, err = proc.communicate(timeout=TIMEOUT * 2)
    assert out.splitlines() == ["done True", "main got SystemExit 4", "upgrade True"], err
    assert proc.returncode == 4, err


class _Boom(BaseException):
    pass


@pytest.mark.parametrize("raised", [GeneratorExit, _Boom])
def test_the_io_thread_survives_any_base_exception(
    echo_url: str, raised: type[BaseException], caplog: pytest.LogCaptureFixture
) -> None:
    def onopen() -> None:
        raise raised

    first = WebSocket(echo_url, onopen=onopen)
    assert first.upgrade(TIMEOUT)
    first.close()
    assert first.read(TIMEOUT) is False
    second = WebSocket(echo_url)  # the I/O thread still serves connections made afterwards
    assert second.upgrade(TIMEOUT)
    second.send("still here")
    assert second.read(TIMEOUT) == "still here"
    second.close()
    assert second.read(TIMEOUT) is False
    assert any("onopen" in r.getMessage() and r.exc_info for r in caplog.records)


# -- Ctrl-C in a blocking call: the first one closes everything with 1001 and exits ---------------

BLOCKED = textwrap.dedent(
    """
    import sys, time
    from mesiboscript import Socket, WebSocket

    url, where = sys.argv[1], sys.argv[2]
    if where.startswith("socket"):
        conn = Socket(url)
        conn.ondata = Socket.queue
        conn.onclose = lambda s: print("closed", flush=True)
    else:
        conn = WebSocket(url)
        conn.onclose = lambda event: print(f"closed {event.code}", flush=True)
    if not where.endswith("upgrade"):
        print("upgraded", conn.upgrade(), flush=True)
    print("blocking", flush=True)
    if where.endswith("read"):
        conn.read()
    elif where.endswith("upgrade"):
        conn.upgrade()
    else:
        time.sleep(1000)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("where", ["read", "sleep", "socket-read"])
def test_ctrl_c_in_a_blocking_call_closes_with_1001_and_exits(
    servers: AsyncServers, where: str
) -> None:
    """It used to print the traceback and then wait in the exit hook for a second Ctrl-C."""
    server, codes, closed = closing_server(servers)
    try:
        proc = interruptible("-c", BLOCKED, f"ws://127.0.0.1:{server.port}/", where)
        assert proc.stdout is not None
        while (line := proc.stdout.readline()) and line.strip() != "blocking":
            pass
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=TIMEOUT)
        assert closed.wait(TIMEOUT)
    finally:
        servers.stop(server)
    assert codes == [1001]
    assert "closed" in out, err
    assert proc.returncode == -signal.SIGINT, err


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("where", ["upgrade", "socket-upgrade"])
def test_ctrl_c_in_upgrade_does_not_wait_out_the_connect_timeout(where: str) -> None:
    """The server accepts and never answers; the default connect_timeout (30 s) is longer than
    the test waits."""
    with RawServer(handler=lambda conn: conn.wait_eof()) as server:
        proc = interruptible("-c", BLOCKED, server.url(), where)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "blocking"
        wait_for(lambda: server.accepted == 1)
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=TIMEOUT)
        assert server.result() is True  # the client closed its end
    assert "closed" in out, err
    assert proc.returncode == -signal.SIGINT, err


# -- a slow handler is named ----------------------------------------------------------------------


class _Seen(logging.Handler):
    """Sets ``event`` when a record containing ``marker`` is logged."""

    def __init__(self, marker: str) -> None:
        super().__init__(logging.WARNING)
        self.marker = marker
        self.event = threading.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.marker in message:
            self.messages.append(message)
            self.event.set()


def test_a_handler_holding_the_io_thread_is_named(echo_url: str) -> None:
    from mesiboscript._dispatch import SLOW_HANDLER

    seen = _Seen("slow_onopen")
    logger = logging.getLogger("mesiboscript")
    logger.addHandler(seen)

    def slow_onopen() -> None:
        time.sleep(SLOW_HANDLER * 1.5)  # the slow handler under test, not a wait for the test

    try:
        ws = WebSocket(echo_url, onopen=slow_onopen)
        assert seen.event.wait(TIMEOUT), "no warning for a handler that held the I/O thread"
        assert ws.upgrade(TIMEOUT)
        ws.close()
        assert ws.read(TIMEOUT) is False
    finally:
        logger.removeHandler(seen)
    message = seen.messages[0]
    assert "slow_onopen" in message
    assert "held the" in message  # the slow-handler warning, not another record naming it
    assert repr(ws).split(" ")[1] in message  # the owner's URL, from its repr


def test_a_quick_handler_is_not_named(echo_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mesiboscript"):
        ws = WebSocket(echo_url, onopen=lambda: None)
        assert ws.upgrade(TIMEOUT)
        ws.close()
        assert ws.read(TIMEOUT) is False
    assert "held the" not in caplog.text


# -- server handlers: the same dispatcher ---------------------------------------------------------

SERVER_EXIT = textwrap.dedent(
    """
    import sys
    from mesiboscript import WebSocket
    from mesiboscript.server import WebSocketServer

    def on_new_connection(conn):
        conn.onmessage = lambda event: sys.exit(6)

    server = WebSocketServer(onNewConnection=on_new_connection)
    client = WebSocket(server.url)
    client.onopen = lambda: client.send("exit, please")  # the client is OPEN by then
    client.onclose = lambda event: print("client closed", event.code, flush=True)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sys_exit_in_a_server_handler_ends_the_process() -> None:
    """It used to be logged by the server's own dispatch and swallowed; the server kept the
    process alive."""
    pytest.importorskip("websockets")
    proc = interruptible("-c", SERVER_EXIT)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 6, err
    assert "client closed 1001" in out, err


def test_get_session_in_a_server_connection_s_handler() -> None:
    pytest.importorskip("websockets")
    from mesiboscript.server import WebSocketServer

    seen: list[Any] = []
    got = threading.Event()

    def on_new_connection(conn: Any) -> None:
        def onmessage(event: Any) -> None:
            seen.append((mesiboscript.getSession(), conn))
            got.set()

        conn.onmessage = onmessage

    with WebSocketServer(onNewConnection=on_new_connection) as server:
        client = WebSocket(server.url)
        assert client.upgrade(TIMEOUT)
        client.send("hi")
        assert got.wait(TIMEOUT)
        client.close()
        assert client.read(TIMEOUT) is False
    ((session, conn),) = seen
    assert session is conn
