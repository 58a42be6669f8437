"""Enums shared by every mirrored API: ready states, close codes, socket errors.

All are :class:`enum.IntEnum`, so they compare equal to the bare numbers scripts use
(``ws.readyState == 1``, ``event.code == 1000``), and ``str()``, ``format()`` and ``print()`` give
that number on every supported Python, as the seeds expect (``print(ws.readyState)`` prints ``1``;
before 3.11 an ``IntEnum`` printed ``ReadyState.OPEN``). ``repr()`` still names the member.
"""

from __future__ import annotations

import enum

__all__ = ["CLOSE_CODE_EXPLANATIONS", "CloseCode", "ReadyState", "SocketError"]


class _NumberEnum(enum.IntEnum):
    """An ``IntEnum`` whose ``str()`` and ``format()`` are its number on every Python (3.11's
    ``IntEnum`` behaviour; 3.9 and 3.10 gave ``Class.NAME`` for ``str()``)."""

    def __str__(self) -> str:
        return int.__repr__(self)

    def __format__(self, format_spec: str) -> str:
        return int.__format__(self, format_spec)


class ReadyState(_NumberEnum):
    """The ``readyState`` of a WebSocket or Socket (WHATWG numbering)."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


class CloseCode(_NumberEnum):
    """WebSocket close codes with High Fidelity's names; RFC 6455 names are aliases."""

    Normal = 1000
    GoingAway = 1001
    ProtocolError = 1002
    DatatypeNotSupported = 1003
    Reserved1004 = 1004
    MissingStatusCode = 1005
    AbnormalDisconnection = 1006
    WrongDatatype = 1007
    PolicyViolated = 1008
    TooMuchData = 1009
    MissingExtension = 1010
    BadOperation = 1011
    TlsHandshakeFailed = 1015

    # RFC 6455 section 7.4.1 names.
    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_FRAME_PAYLOAD_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    TLS_HANDSHAKE = 1015


CLOSE_CODE_EXPLANATIONS: dict[int, str] = {
    1000: "normal closure",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1004: "reserved",
    1005: "no status received [internal]",
    1006: "abnormal closure [internal]",
    1007: "invalid frame payload data",
    1008: "policy violation",
    1009: "message too big",
    1010: "mandatory extension",
    1011: "internal error",
    1012: "service restart",
    1013: "try again later",
    1014: "bad gateway",
    1015: "TLS handshake failure [internal]",
}


class SocketError(_NumberEnum):
    """Why a connection failed: High Fidelity's table (after Qt's QAbstractSocket errors).

    ``error.message`` is a readable sentence (Qt's ``errorString()`` wording), for scripts that
    log it as the ArozOS front-end does (``log(error.message)``).
    """

    ConnectionRefusedError = 0
    RemoteHostClosedError = 1
    HostNotFoundError = 2
    SocketAccessError = 3
    SocketResourceError = 4
    SocketTimeoutError = 5
    DatagramTooLargeError = 6
    NetworkError = 7
    AddressInUseError = 8
    SocketAddressNotAvailableError = 9
    UnsupportedSocketOperationError = 10
    ProxyAuthenticationRequiredError = 11
    SslHandshakeFailedError = 12
    UnfinishedSocketOperationError = 13
    ProxyConnectionRefusedError = 14
    ProxyConnectionClosedError = 15
    ProxyConnectionTimeoutError = 16
    ProxyNotFoundError = 17
    ProxyProtocolError = 18
    OperationError = 19
    SslInternalError = 20
    SslInvalidUserDataError = 21
    TemporaryError = 22
    UnknownSocketError = -1

    @property
    def message(self) -> str:
        """A readable description of the error, e.g. ``"Connection refused"``."""
        return _SOCKET_ERROR_MESSAGES[self]


_SOCKET_ERROR_MESSAGES: dict[int, str] = {
    0: "Connection refused",
    1: "The remote host closed the connection",
    2: "Host not found",
    3: "Permission denied",
    4: "Insufficient resources",
    5: "Socket operation timed out",
    6: "Datagram was too large to send",
    7: "Network unreachable",
    8: "Address in use",
    9: "The address is not available",
    10: "Operation on socket is not supported",
    11: "Proxy authentication required",
    12: "SSL handshake failed",
    13: "An operation is already in progress",
    14: "Connection to proxy refused",
    15: "Connection to proxy closed prematurely",
    16: "Proxy connection timed out",
    17: "Proxy server not found",
    18: "Proxy protocol error",
    19: "Operation not permitted in the current state",
    20: "SSL internal error",
    21: "Invalid data for SSL",
    22: "Temporary error; try again",
    -1: "Unknown socket error",
}
