"""The one module that touches websocket-client, through its public API only.

The wire constants come from :class:`websocket.ABNF` (RFC 6455 opcodes) and the module's
``STATUS_*`` close codes. Framing, the handshake and the close rules are this package's own
sans-I/O core (:mod:`mesiboscript.sansio`): websocket-client reads one frame per call with blocking
``recv`` and validates UTF-8 only once a message is complete, which a selector loop and Autobahn's
strict mode cannot use. Nothing private (``websocket._*``) is imported anywhere.
"""

from __future__ import annotations

import websocket

__all__ = [
    "BINARY",
    "CLOSE",
    "CONT",
    "PING",
    "PONG",
    "STATUS_GOING_AWAY",
    "STATUS_NORMAL",
    "TEXT",
]

CONT: int = websocket.ABNF.OPCODE_CONT
TEXT: int = websocket.ABNF.OPCODE_TEXT
BINARY: int = websocket.ABNF.OPCODE_BINARY
CLOSE: int = websocket.ABNF.OPCODE_CLOSE
PING: int = websocket.ABNF.OPCODE_PING
PONG: int = websocket.ABNF.OPCODE_PONG

STATUS_NORMAL: int = websocket.STATUS_NORMAL
STATUS_GOING_AWAY: int = websocket.STATUS_GOING_AWAY
