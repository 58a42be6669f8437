"""mesiboscript: sockets and WebSockets for Python scripts, with the browser's event semantics.

The public surface mirrors five scripting environments (High Fidelity, the browser, Mesibo,
Dirigible, ArozOS, Botmaster); see the README for the table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any
from typing import Optional as _Optional

from . import _lifetime
from ._constants import CloseCode, ReadyState, SocketError
from ._events import CloseData, ErrorEvent, Event, MessageData
from ._exceptions import (
    ConnectionClosed,
    ConnectionFailed,
    InvalidStateError,
    MesiboScriptError,
    ProtocolError,
)
from ._lifetime import getOpenSessions, getSession
from ._socketio import SocketIO
from ._tcp import SendBufferFull, Socket
from ._validation import InvalidArgumentError
from ._version import __version__
from ._websocket import WebSocket

if _TYPE_CHECKING:
    from .server import WebSocketServer

__all__ = [
    "CloseCode",
    "CloseData",
    "ConnectionClosed",
    "ConnectionFailed",
    "ErrorEvent",
    "Event",
    "InvalidArgumentError",
    "InvalidStateError",
    "MesiboScriptError",
    "MessageData",
    "ProtocolError",
    "ReadyState",
    "SendBufferFull",
    "Socket",
    "SocketError",
    "SocketIO",
    "WebSocket",
    "WebSocketServer",
    "__version__",
    "getOpenSessions",
    "getSession",
    "run",
]


def run(timeout: _Optional[float] = None) -> bool:
    """Block until every connection (and server) of the process has closed, or ``timeout`` seconds
    pass.

    Returns True when everything closed. Ctrl-C closes every connection with 1001 (going away),
    waits briefly for the closing handshakes, and re-raises ``KeyboardInterrupt``; so does a
    handler's ``sys.exit()`` with its ``SystemExit``.

    Raises:
        RuntimeError: in a handler, whose thread the wait would block.
    """
    try:
        idle = _lifetime.wait_idle(timeout)
    except KeyboardInterrupt:
        _lifetime.shutdown_all(1001, "")
        raise
    _lifetime.raise_if_exiting()
    return idle


def __getattr__(name: str) -> _Any:
    # WebSocketServer needs the optional `websockets` package: import it on first use only.
    if name == "WebSocketServer":
        from .server import WebSocketServer

        return WebSocketServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
