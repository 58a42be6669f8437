"""Handlers are typed per event: ``mypy --strict`` accepts the seeds' forms and rejects a wrong
arity or a misspelt field. The accepted forms below are checked by CI's own mypy run (this file is
in ``[tool.mypy] files``); the rejected ones run mypy on a snippet and expect its errors."""

from __future__ import annotations

import os
import re
import sys
import textwrap
from pathlib import Path

import pytest

from mesiboscript import CloseData, MessageData, Socket, SocketError, WebSocket
from mesiboscript.server import ServerWebSocket, WebSocketServer

ROOT = Path(__file__).resolve().parent.parent


def accepted_forms(ws: WebSocket, s: Socket, server: WebSocketServer) -> None:
    """Never called: mypy checks that every line type-checks."""
    ws.onopen = lambda: print("open")
    ws.onmessage = lambda m: print(m.data)
    ws.onerror = lambda e: print(e.message, e.name)
    ws.onclose = lambda c: print(c.code, c.reason, c.wasClean)

    def on_message(event: MessageData) -> None: ...
    def on_close(event: CloseData) -> None: ...
    def on_error(error: SocketError) -> None: ...

    ws.onmessage, ws.onclose, ws.onerror = on_message, on_close, on_error
    ws.onopen = None

    s.ondata = lambda d: print(d)  # Mesibo's seed: function(s) { print(s); }
    s.ondata = lambda sock, d: sock.send(d)
    s.ondata = print
    s.ondata = Socket.queue

    def on_bytes(sock: Socket, data: bytes) -> None: ...

    s.ondata = on_bytes
    s.onconnect = lambda sock: sock.send("hi")
    s.onwrite = lambda sock, n: print(n + 1)
    s.onclose = lambda sock: print(sock.readyState)

    def on_new(conn: ServerWebSocket) -> None:
        conn.onmessage = lambda m: conn.send(m.data)

    server.onNewConnection = on_new


REJECTED = {
    "ws.onmessage = lambda m: print(m.dta)": r'"MessageData" has no attribute "dta"',
    "ws.onmessage = lambda: None": r"Incompatible types in assignment",
    "ws.onopen = lambda e: None": r"Incompatible types in assignment",
    "ws.onclose = lambda c: c.cod": r'"CloseData" has no attribute "cod"',
    "ws.onOpen = lambda: None": r'"WebSocket" has no attribute "onOpen"',
    "s.ondata = lambda: None": r"Incompatible types in assignment",
    "s.ondata = lambda a, b, c: None": r"Incompatible types in assignment",
    "s.onconect = lambda s: None": r'"Socket" has no attribute "onconect"',
    "s.onwrite = lambda s: None": r"Incompatible types in assignment",
    "server.onNewConnection = lambda: None": r"Incompatible types in assignment",
    "s.keepalive = 'yes'": r"Incompatible types in assignment",
}


@pytest.mark.skipif(sys.version_info < (3, 10), reason="one mypy run is enough (newest Python)")
def test_mypy_rejects_wrong_handlers(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    lines = [
        "from mesiboscript import Socket, WebSocket",
        "from mesiboscript.server import WebSocketServer",
        "ws = WebSocket('ws://x')",
        "s = Socket('sock://x:1')",
        "server = WebSocketServer()",
    ]
    first = len(lines) + 1
    lines += list(REJECTED)
    snippet = tmp_path / "snippet.py"
    snippet.write_text("\n".join(lines) + "\n")
    cache = os.path.join(ROOT, ".mypy_cache")
    out, err, status = api.run(
        ["--strict", "--no-error-summary", "--cache-dir", cache, str(snippet)]
    )
    assert status == 1, out + err
    errors: dict[int, str] = {}
    for line in out.splitlines():
        found = re.match(r".*snippet\.py:(\d+): error: (.*)", line)
        if found:
            errors.setdefault(int(found.group(1)), found.group(2))
    for number, (code, expected) in enumerate(REJECTED.items(), start=first):
        assert number in errors, f"mypy accepted {code!r}"
        assert re.search(expected, errors[number]), (code, errors[number])
    assert set(errors) == set(range(first, first + len(REJECTED))), textwrap.indent(out, "  ")
