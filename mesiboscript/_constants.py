"""Enums shared by every mirrored API: ready states, close codes, socket errors.

All are :class:`enum.IntEnum`, so they compare equal to the bare numbers scripts use
(``ws.readyState == 1``, ``event.code == 1000``).
"""

from __future__ import annotations

import enum

__all__ = ["CLOSE_CODE_EXPLANATIONS", "CloseCode", "ReadyState", "SocketError"]


class ReadyState(enum.IntEnum):
    """The ``readyState`` of a WebSocket or Socket (WHATWG numbering)."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


class CloseCode(enum.IntEnum):
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


class SocketError(enum.IntEnum):
    """Why a connection failed: High Fidelity's table (after Qt's QAbstractSocket errors)."""

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
