"""Event objects handed to handlers and listeners (frozen dataclasses).

``onmessage`` gets a :class:`MessageData`, ``onclose`` a :class:`CloseData`, ``onerror`` the
:class:`SocketError` member and ``onopen`` nothing, as in High Fidelity. Listeners added with
``addEventListener`` get event objects carrying the same fields plus ``type`` and ``target``, as in
the browser: ``MessageData``/``CloseData`` themselves, :class:`ErrorEvent` and :class:`Event`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from ._constants import SocketError

__all__ = ["CloseData", "ErrorEvent", "Event", "MessageData", "message_event"]


@dataclass(frozen=True)
class Event:
    """A plain event (``open``) for listeners."""

    type: str
    target: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class MessageData:
    """A received message: ``data`` is ``str`` for a text message, ``bytes`` for binary."""

    data: Union[str, bytes]
    type: str = "message"
    target: Any = field(default=None, repr=False, compare=False)


_new = object.__new__


def message_event(data: Union[str, bytes], target: Any) -> MessageData:
    """``MessageData(data, target=target)``, made for each message without the frozen
    dataclass's ``__init__`` (a ``object.__setattr__`` call per field): the same object."""
    event: MessageData = _new(MessageData)
    fields = event.__dict__
    fields["data"] = data
    fields["type"] = "message"
    fields["target"] = target
    return event


@dataclass(frozen=True)
class CloseData:
    """How a connection closed: ``code`` and ``reason`` as the standard reports them."""

    code: int
    reason: str = ""
    wasClean: bool = False
    type: str = "close"
    target: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ErrorEvent:
    """An ``error`` event for listeners: ``error`` is what ``onerror`` gets; ``cause`` why."""

    error: SocketError
    cause: Optional[BaseException] = field(default=None, compare=False)
    type: str = "error"
    target: Any = field(default=None, repr=False, compare=False)


# The handler types of a browser-style WebSocket (client and server side): ``mypy --strict``
# rejects a handler of the wrong arity, or ``event.dta`` inside one.
OpenHandler = Callable[[], object]
MessageHandler = Callable[[MessageData], object]
ErrorHandler = Callable[[SocketError], object]
CloseHandler = Callable[[CloseData], object]
ONOPEN_DOC = "onopen(): the connection is open (readyState is OPEN)."
ONMESSAGE_DOC = "onmessage(event: MessageData): event.data is str for text, bytes for binary."
ONERROR_DOC = (
    "onerror(error: SocketError): the connection failed (refused, TLS, handshake, dropped);\n"
    "error is a SocketError member (error.name, error.message). onclose follows."
)
ONCLOSE_DOC = (
    "onclose(event: CloseData): event.code, event.reason, event.wasClean; once per object."
)
