"""Process lifetime: scripts run until their connections close; Ctrl-C closes them with 1001."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest

from .helpers import TIMEOUT, AsyncServers, interruptible

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
    ws.onclose = lambda event: print("closed", event.code, event.wasClean, flush=True)
    """
)

INTERRUPTIBLE = textwrap.dedent(
    """
    import sys
    import mesiboscript
    from mesiboscript import WebSocket

    ws = WebSocket(sys.argv[1])
    ws.onopen = lambda: print("open", flush=True)
    ws.onclose = lambda event: print("closed", event.code, flush=True)
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
    codes: list[Any] = []
    closed = threading.Event()

    async def handler(conn: Any) -> None:
        await conn.wait_closed()
        codes.append(conn.close_code)
        closed.set()

    server = servers.serve(handler)
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
