"""Dirigible's session registry: ``getSession()`` and ``getOpenSessions()``."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Optional

from . import _loop as _loop_module

if TYPE_CHECKING:
    from ._websocket import WebSocket

__all__ = ["getOpenSessions", "getSession", "register_open", "unregister_open"]

_lock = threading.Lock()
_open: dict[int, WebSocket] = {}  # id() → socket, in the order they opened


def register_open(ws: WebSocket) -> None:
    with _lock:
        _open[id(ws)] = ws


def unregister_open(ws: WebSocket) -> None:
    with _lock:
        _open.pop(id(ws), None)


def getSession() -> Optional[WebSocket]:
    """The ``WebSocket`` whose handler is running on this thread, else ``None``."""
    loop = _loop_module._loop
    if loop is None or not loop.in_loop_thread():
        return None
    current = loop.current
    return current if getattr(current, "_is_session", False) else None


def getOpenSessions() -> list[WebSocket]:
    """Every ``WebSocket`` of this process that is OPEN, oldest first."""
    with _lock:
        return list(_open.values())
