"""The WebSocket protocol without I/O: framing, handshake, close rules; bytes in, events out.

Nothing here touches a socket, a thread or a clock. :class:`ClientConnection` is the state machine
every client in this package drives (``WebSocket``, the Mesibo ``Socket``'s ws/wss link and, through
``WebSocket``, ``SocketIO``); its tests feed it bytes (``tests/test_sansio.py``) and replay the
Chromium parity fixtures against it without sockets.
"""

from __future__ import annotations

from .connection import ClientConnection, State
from .events import Closed, CloseFrame, Message, Opened, Ping, Pong, Violation
from .frames import Parser, build_close, build_frame
from .handshake import HandshakeRejected, accept_for, build_request, check_response, make_key

__all__ = [
    "ClientConnection",
    "CloseFrame",
    "Closed",
    "HandshakeRejected",
    "Message",
    "Opened",
    "Parser",
    "Ping",
    "Pong",
    "State",
    "Violation",
    "accept_for",
    "build_close",
    "build_frame",
    "build_request",
    "check_response",
    "make_key",
]
