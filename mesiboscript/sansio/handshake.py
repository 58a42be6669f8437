"""The opening handshake (RFC 6455 4.1), sans I/O: the request bytes and the response check."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from typing import Optional

__all__ = [
    "MAX_RESPONSE_HEAD",
    "HandshakeRejected",
    "accept_for",
    "build_request",
    "check_response",
    "make_key",
]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_RESPONSE_HEAD = 64 * 1024  # a longer response head fails the handshake


class HandshakeRejected(Exception):
    """The server's response does not open a WebSocket; the message says why."""


def make_key() -> str:
    """A fresh ``Sec-WebSocket-Key``: 16 random bytes, base64 (RFC 6455 4.1)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_for(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value a server must answer ``key`` with."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode("ascii")).digest()).decode("ascii")


def build_request(
    *,
    resource: str,
    host: str,
    port: int,
    secure: bool,
    key: str,
    protocols: Sequence[str] = (),
    origin: Optional[str] = None,
    headers: Sequence[tuple[str, str]] = (),
    extensions: Optional[str] = None,
) -> bytes:
    """The GET request that asks for the upgrade.

    ``Host`` omits the scheme's default port; ``Origin`` defaults to ``http(s)://host[:port]``
    (what websocket-client and browsers send). ``headers`` were validated by the caller
    (no CR/LF/NUL: no header injection). ``extensions``: the ``Sec-WebSocket-Extensions`` offer.
    """
    hostport = f"[{host}]" if ":" in host else host
    if port != (443 if secure else 80):
        hostport = f"{hostport}:{port}"
    if origin is None:
        origin = f"{'https' if secure else 'http'}://{hostport}"
    lines = [
        f"GET {resource} HTTP/1.1",
        "Upgrade: websocket",
        f"Host: {hostport}",
        f"Origin: {origin}",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        "Connection: Upgrade",
    ]
    if protocols:
        lines.append(f"Sec-WebSocket-Protocol: {','.join(protocols)}")
    if extensions:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def check_response(
    head: str, key: str, protocols: Sequence[str], extensions_offered: bool = False
) -> tuple[str, str]:
    """Check a response head (without the blank line): the chosen subprotocol and the
    ``Sec-WebSocket-Extensions`` value as sent (repeated headers joined with ", "; checked
    against the offer by :func:`~mesiboscript.sansio.deflate.negotiate`).

    Raises:
        HandshakeRejected: not ``101``, a missing or wrong upgrade header, a wrong accept value,
            an extension or subprotocol that was not offered, or none chosen when some were.
    """
    lines = head.split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or not status[0].startswith("HTTP/1.1"):
        raise HandshakeRejected(f"malformed status line {lines[0]!r}")
    if status[1] != "101":
        raise HandshakeRejected(f"unexpected response code {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise HandshakeRejected(f"malformed header line {line!r}")
        name = name.strip().lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if headers.get("upgrade", "").lower() != "websocket":
        raise HandshakeRejected("'Upgrade' header is missing or not 'websocket'")
    tokens = [t.strip().lower() for t in headers.get("connection", "").split(",")]
    if "upgrade" not in tokens:
        raise HandshakeRejected("'Connection' header is missing or has no 'Upgrade' token")
    if headers.get("sec-websocket-accept") != accept_for(key):
        raise HandshakeRejected("incorrect 'Sec-WebSocket-Accept' header value")
    chosen = headers.get("sec-websocket-protocol")
    if chosen is not None and chosen not in protocols:
        raise HandshakeRejected(f"the server chose subprotocol {chosen!r}, which was not offered")
    if chosen is None and protocols:
        raise HandshakeRejected("subprotocols were offered but the server chose none")
    # Checked after the subprotocol, in Chromium's order.
    extensions = headers.get("sec-websocket-extensions")
    if extensions is not None:
        if not extensions_offered:
            raise HandshakeRejected("the server accepted an extension that was not offered")
        if not extensions:  # Chromium's parser rejects an empty value too
            raise HandshakeRejected(
                "'Sec-WebSocket-Extensions' header value is rejected by the parser: "
            )
    return chosen or "", extensions or ""
