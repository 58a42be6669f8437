"""The exception hierarchy, and the one place that maps lower-layer errors to SocketError."""

from __future__ import annotations

import errno
import socket
import ssl

from ._constants import SocketError

__all__ = [
    "ConnectionClosed",
    "ConnectionFailed",
    "InvalidStateError",
    "MesiboScriptError",
    "ProtocolError",
    "socket_error_for",
]


class MesiboScriptError(Exception):
    """Root of every exception this library raises on purpose."""


class InvalidStateError(MesiboScriptError, RuntimeError):
    """The call is not allowed in the object's current state (e.g. ``send`` while CONNECTING)."""


class ConnectionFailed(MesiboScriptError, OSError):
    """A connection could not be made or was lost; ``error`` says why, ``__cause__`` is from."""

    def __init__(self, message: str, error: SocketError = SocketError.UnknownSocketError) -> None:
        super().__init__(message)
        self.error = error

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else self.error.name


class ProtocolError(MesiboScriptError):
    """The peer broke the protocol; ``code`` is the close code the standard names for it."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class ConnectionClosed(MesiboScriptError):
    """The connection closed before the operation completed (e.g. a pending ``sendTextAsync``)."""

    def __init__(self, message: str, code: int = 1006, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


_ERRNO_MAP = {
    errno.ECONNREFUSED: SocketError.ConnectionRefusedError,
    errno.ECONNRESET: SocketError.RemoteHostClosedError,
    errno.EPIPE: SocketError.RemoteHostClosedError,
    errno.ECONNABORTED: SocketError.RemoteHostClosedError,
    errno.ETIMEDOUT: SocketError.SocketTimeoutError,
    errno.EACCES: SocketError.SocketAccessError,
    errno.EPERM: SocketError.SocketAccessError,
    errno.EMFILE: SocketError.SocketResourceError,
    errno.ENFILE: SocketError.SocketResourceError,
    errno.ENOBUFS: SocketError.SocketResourceError,
    errno.ENOMEM: SocketError.SocketResourceError,
    errno.EADDRINUSE: SocketError.AddressInUseError,
    errno.EADDRNOTAVAIL: SocketError.SocketAddressNotAvailableError,
    errno.ENETUNREACH: SocketError.NetworkError,
    errno.EHOSTUNREACH: SocketError.NetworkError,
    errno.ENETDOWN: SocketError.NetworkError,
    errno.EAFNOSUPPORT: SocketError.UnsupportedSocketOperationError,
}


def socket_error_for(exc: BaseException) -> SocketError:
    """Map an exception from socket, ssl, DNS or this library to the HiFi ``SocketError``."""
    if isinstance(exc, ConnectionFailed):
        return exc.error
    if isinstance(exc, (ssl.SSLCertVerificationError, ssl.SSLError)):
        # SSLError subclasses OSError: test it first. A TLS alert or a bad certificate both
        # surface as a failed handshake, which is what a script can act on.
        if isinstance(exc, (ssl.SSLZeroReturnError, ssl.SSLEOFError)):
            return SocketError.RemoteHostClosedError
        return SocketError.SslHandshakeFailedError
    if isinstance(exc, socket.gaierror):
        if exc.errno in (socket.EAI_AGAIN,):
            return SocketError.TemporaryError
        return SocketError.HostNotFoundError
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return SocketError.SocketTimeoutError
    if isinstance(exc, OSError) and exc.errno is not None:
        return _ERRNO_MAP.get(exc.errno, SocketError.NetworkError)
    if isinstance(exc, (ConnectionError, EOFError)):
        return SocketError.RemoteHostClosedError
    return SocketError.UnknownSocketError
