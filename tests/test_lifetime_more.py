"""More ways a process ends: ``sys.exit()`` with no code, a second exit request, a script with a
SIGINT handler of its own, connections made on another thread, ``run()`` inside a handler."""

from __future__ import annotations

import queue
import sys
import textwrap

import pytest

import mesiboscript
from mesiboscript import WebSocket

from .helpers import TIMEOUT, AsyncServers, closing_server, interruptible

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

ENDINGS = textwrap.dedent(
    """
    import signal, sys, threading, time
    import mesiboscript
    from mesiboscript import WebSocket

    url, how, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
    lock = threading.RLock()

    def say(*parts):  # one line at a time: the main and I/O threads both print
        with lock:
            sys.stdout.write(" ".join(map(str, parts)) + "\\n")
            sys.stdout.flush()

    def connect():
        # Handlers as keywords: the main thread makes no library call once the constructor
        # returns (see the note below).
        global ws
        def onclose(event):
            say("closed", event.code)
            if how == "twice":  # after the first request: its exit is not the one that counts
                sys.exit(4)
        exit = (lambda: sys.exit()) if how == "none" else (lambda: sys.exit(3))
        ws = WebSocket(url, onopen=exit, onclose=onclose)

    if how == "own-sigint":
        signal.signal(signal.SIGINT, lambda signum, frame: say("own handler"))
    if how == "thread":
        threading.Thread(target=connect).start()
    else:
        connect()
    try:
        if how == "own-sigint":
            try:
                mesiboscript.run()
            except SystemExit as exc:
                say("run raised SystemExit", exc.code)
            # Not interrupted (no SIGINT here): read() ends as the handler's exit closes.
            say("read", ws.read(timeout))
        else:
            # The library's SIGINT interrupts this. Not read(): an exception raised by a signal
            # right after read() took its lock leaves it taken, and the exit hook then
            # deadlocks on it (a library bug, seen 2 runs in 160 under load).
            time.sleep(timeout * 3)
    finally:
        say("main code ends")
    """
)


@pytest.mark.parametrize(
    ("how", "status"),
    [
        ("none", 0),  # sys.exit(): status 0, the process ends normally
        ("twice", 3),  # the first exit request wins
        ("own-sigint", 3),  # the script's SIGINT handler is left alone; run() raises the exit
        ("thread", 3),  # the first connection made off the main thread
    ],
)
def test_how_a_handler_s_exit_ends_the_process(
    servers: AsyncServers, how: str, status: int
) -> None:
    server, codes, closed = closing_server(servers)
    try:
        proc = interruptible("-c", ENDINGS, f"ws://127.0.0.1:{server.port}/", how, str(TIMEOUT))
        out, err = proc.communicate(timeout=TIMEOUT * 2)
        assert closed.wait(TIMEOUT)
    finally:
        servers.stop(server)
    assert codes == [1001]
    assert "closed 1001" in out, err
    assert proc.returncode == status, (out, err)
    assert "own handler" not in out
    assert "main code ends" in out, err
    if how == "own-sigint":  # the main thread is not disturbed: its read() ends as usual
        assert "run raised SystemExit 3" in out, err
        assert "read False" in out, err


def test_run_inside_a_handler_raises(echo_url: str) -> None:
    raised: queue.Queue[BaseException] = queue.Queue()

    def onopen() -> None:
        try:
            mesiboscript.run(0)
        except RuntimeError as exc:
            raised.put(exc)
        ws.close()

    ws = WebSocket(echo_url)
    ws.onopen = onopen  # set after the constructor: onopen may come before `ws` is assigned
    assert "would block" in str(raised.get(timeout=TIMEOUT))
    assert ws.read(TIMEOUT) is False
