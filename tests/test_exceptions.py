"""The exception hierarchy and the one map from lower-layer errors to ``SocketError``."""

from __future__ import annotations

import errno
import socket
import ssl

import pytest

from mesiboscript import SocketError
from mesiboscript._exceptions import (
    ConnectionClosed,
    ConnectionFailed,
    InvalidStateError,
    MesiboScriptError,
    ProtocolError,
    socket_error_for,
)

# What a socket, ssl, the resolver or the library itself raises, and what a script is told.
CASES = [
    (ConnectionFailed("refused", SocketError.ConnectionRefusedError), "ConnectionRefusedError"),
    (ssl.SSLCertVerificationError(1, "certificate verify failed"), "SslHandshakeFailedError"),
    (ssl.SSLError(1, "tlsv1 alert internal error"), "SslHandshakeFailedError"),
    # The peer ended the TLS session (close_notify, or TCP EOF inside TLS): a closed peer.
    (ssl.SSLZeroReturnError(6, "TLS/SSL connection has been closed"), "RemoteHostClosedError"),
    (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), "RemoteHostClosedError"),
    (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "HostNotFoundError"),
    (socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"), "TemporaryError"),
    (socket.timeout("timed out"), "SocketTimeoutError"),
    (TimeoutError("timed out"), "SocketTimeoutError"),
    (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "ConnectionRefusedError"),
    (ConnectionResetError(errno.ECONNRESET, "reset"), "RemoteHostClosedError"),
    (OSError(errno.EMFILE, "too many open files"), "SocketResourceError"),
    (OSError(errno.EADDRINUSE, "in use"), "AddressInUseError"),
    (OSError(errno.ENETUNREACH, "unreachable"), "NetworkError"),
    (OSError(errno.EILSEQ, "an errno with no entry"), "NetworkError"),
    # No errno: ended by the peer all the same.
    (ConnectionResetError("reset, no errno"), "RemoteHostClosedError"),
    (EOFError("end of stream"), "RemoteHostClosedError"),
    (ValueError("not a network error"), "UnknownSocketError"),
]


@pytest.mark.parametrize(("exc", "name"), CASES, ids=[type(c[0]).__name__ for c in CASES])
def test_socket_error_for(exc: BaseException, name: str) -> None:
    assert socket_error_for(exc) == SocketError[name]


def test_the_hierarchy_is_catchable_as_builtin_errors() -> None:
    """Each library error is also the built-in error a script would catch without knowing it."""
    assert issubclass(InvalidStateError, RuntimeError)
    assert issubclass(ConnectionFailed, OSError)
    for cls in (InvalidStateError, ConnectionFailed, ProtocolError, ConnectionClosed):
        assert issubclass(cls, MesiboScriptError)


def test_connection_failed_names_its_error() -> None:
    failed = ConnectionFailed("connect to 127.0.0.1:9 refused", SocketError.ConnectionRefusedError)
    assert str(failed) == "connect to 127.0.0.1:9 refused"
    assert failed.error == SocketError.ConnectionRefusedError
    assert ConnectionFailed("lost").error == SocketError.UnknownSocketError
    bare = ConnectionFailed("x", SocketError.NetworkError)
    bare.args = ()
    assert str(bare) == "NetworkError"


def test_protocol_error_and_connection_closed_carry_their_codes() -> None:
    assert ProtocolError("bad frame", 1002).code == 1002
    closed = ConnectionClosed("closed before the send completed")
    assert (closed.code, closed.reason) == (1006, "")
    closed = ConnectionClosed("closed by the server", 4000, "done")
    assert (closed.code, closed.reason) == (4000, "done")
