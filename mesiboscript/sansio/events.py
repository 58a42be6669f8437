"""Typed events of the sans-I/O core.

Frame events come out of :class:`~mesiboscript.sansio.frames.Parser`; connection events out of
:class:`~mesiboscript.sansio.connection.ClientConnection`. They are ``NamedTuple`` classes: typed,
immutable, compared by value in tests, and as cheap to make as the tuples they replace (one is
made per received message).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Union

__all__ = ["CloseFrame", "Closed", "Message", "Opened", "Ping", "Pong", "Violation"]


class Message(NamedTuple):
    """A whole data message: ``str`` for text, ``bytes`` for binary."""

    data: Union[str, bytes]


class Ping(NamedTuple):
    """A ping frame arrived (the connection answers it itself)."""

    payload: bytes


class Pong(NamedTuple):
    """A pong frame arrived."""

    payload: bytes


class CloseFrame(NamedTuple):
    """A valid close frame arrived: its code (1005 for an empty body) and reason."""

    code: int
    reason: str


class Violation(NamedTuple):
    """The peer broke the protocol: the close code the standard names for it, and why."""

    code: int
    message: str


class Opened(NamedTuple):
    """The opening handshake succeeded: the chosen subprotocol and accepted extensions."""

    protocol: str
    extensions: str


class Closed(NamedTuple):
    """The connection is over; exactly one per connection, always the last event.

    ``code``/``reason``/``was_clean`` are what the close event reports (1006 unless both close
    frames were exchanged and nothing failed). ``failure`` is set when the connection *failed*
    (the standard fires an error event first); ``cause`` is why it ended, for debugging (the
    failure, or the exception behind a dropped connection, else ``None``).
    """

    code: int
    reason: str
    was_clean: bool
    failure: Optional[BaseException]
    cause: Optional[BaseException]
