"""Validation of what scripts pass in: URLs, protocols, headers, close codes. Pure functions.

Everything here raises :class:`InvalidArgumentError` (a ``ValueError``) at the call that caused it,
before anything is sent, as the WHATWG WebSocket constructor and ``close()`` do.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import NamedTuple, Optional, Union
from urllib.parse import quote, urlsplit

from ._exceptions import MesiboScriptError

__all__ = [
    "InvalidArgumentError",
    "ParsedURL",
    "check_close",
    "check_header",
    "parse_protocols",
    "parse_url",
]


class InvalidArgumentError(MesiboScriptError, ValueError):
    """A bad argument: the browser's SyntaxError/InvalidAccessError, as a ``ValueError``."""


# RFC 7230 token: the grammar of header names and of Sec-WebSocket-Protocol elements.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_FORBIDDEN_IN_VALUES = re.compile(r"[\r\n\x00]")
_DEFAULT_PORTS = {"ws": 80, "wss": 443, "http": 80, "https": 443}
_SCHEME_ALIASES = {"http": "ws", "https": "wss"}


class ParsedURL(NamedTuple):
    """A validated URL: ``url`` is its serialisation (what the ``url`` property returns)."""

    url: str
    scheme: str
    host: str  # without brackets; IDNA-encoded
    port: int
    resource: str  # path and query, as sent in the request line
    secure: bool
    userinfo: Optional[str]

    @property
    def display(self) -> str:
        """The URL for logs, exceptions and ``repr()``: credentials shown as ``***``."""
        if not self.userinfo:
            return self.url
        scheme, _, rest = self.url.partition("://")
        return f"{scheme}://***@{rest[len(self.userinfo) + 1 :]}"


def _fail(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(message)


def parse_url(
    url: object,
    schemes: tuple[str, ...] = ("ws", "wss"),
    secure_schemes: tuple[str, ...] = ("wss",),
    require_port: bool = False,
) -> ParsedURL:
    """Parse and validate a URL the way the WebSocket constructor does.

    ``http``/``https`` map to ``ws``/``wss`` when those are accepted. Relative URLs, other schemes,
    fragments, control characters and bad ports raise ``InvalidArgumentError``.
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    if "@" in url:  # credentials are not kept in the cache below once the connection is gone
        return _parse_url.__wrapped__(url, schemes, secure_schemes, require_port)
    return _parse_url(url, schemes, secure_schemes, require_port)


# A process opens many connections to the same few URLs (10 000 idle ones: one); parsing and
# checking one costs ~10 us. The result is immutable; failures are not kept (they raise).
@functools.lru_cache(maxsize=256)
def _parse_url(
    url: str, schemes: tuple[str, ...], secure_schemes: tuple[str, ...], require_port: bool
) -> ParsedURL:
    if _FORBIDDEN_IN_VALUES.search(url) or "\t" in url:
        raise _fail(f"invalid URL {url!r}: contains a tab, CR, LF or NUL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _fail(f"invalid URL {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if not scheme or not parts.netloc:
        raise _fail(f"invalid URL {url!r}: not an absolute URL")
    if "ws" in schemes:
        scheme = _SCHEME_ALIASES.get(scheme, scheme)
    if scheme not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes)
        raise _fail(f"invalid URL {url!r}: the scheme must be one of {allowed}")
    if parts.fragment or url.endswith("#"):
        raise _fail(f"invalid URL {url!r}: fragments are not allowed in WebSocket URLs")
    host = parts.hostname or ""
    if not host:
        raise _fail(f"invalid URL {url!r}: no host")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            host = host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise _fail(f"invalid URL {url!r}: bad host name") from None
        if not re.fullmatch(r"[a-z0-9\-_.]+", host):
            raise _fail(f"invalid URL {url!r}: bad host name") from None
    if port is None:
        if require_port:
            raise _fail(f"invalid URL {url!r}: a port is required for {scheme}://")
        port = _DEFAULT_PORTS.get(scheme, 0)
    if not 0 < port < 65536:
        raise _fail(f"invalid URL {url!r}: bad port")
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    resource = path + ("?" + quote(parts.query, safe="/%:@!$&'()*+,;=-._~?") if parts.query else "")
    secure = scheme in secure_schemes
    netloc_host = f"[{host}]" if ":" in host else host
    default = _DEFAULT_PORTS.get(scheme)
    netloc = netloc_host if port == default else f"{netloc_host}:{port}"
    userinfo = parts.netloc.rpartition("@")[0] or None
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    serialised = f"{scheme}://{netloc}{resource}"
    return ParsedURL(serialised, scheme, host, port, resource, secure, userinfo)


def parse_protocols(protocols: Union[str, list[str], tuple[str, ...], None]) -> list[str]:
    """Validate subprotocols: tokens, no duplicates (case-insensitive)."""
    if protocols is None:
        return []
    items = [protocols] if isinstance(protocols, str) else list(protocols)
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, str) or not _TOKEN.match(item):
            raise _fail(f"invalid subprotocol {item!r}: must be a non-empty HTTP token")
        if item.lower() in seen:
            raise _fail(f"duplicate subprotocol {item!r}")
        seen.add(item.lower())
    return items


def check_header(name: object, value: object) -> tuple[str, str]:
    """Validate one extra request header; CR, LF and NUL are refused (header injection)."""
    if not isinstance(name, str) or not _TOKEN.match(name):
        raise _fail(f"invalid header name {name!r}")
    if not isinstance(value, str):
        raise TypeError(f"header {name!r} value must be a str, not {type(value).__name__}")
    if _FORBIDDEN_IN_VALUES.search(value):
        raise _fail(f"invalid value for header {name!r}: contains CR, LF or NUL")
    return name, value


def check_close(code: object, reason: object) -> tuple[Optional[int], bytes]:
    """Validate ``close(code, reason)`` as the standard does; return the code and encoded reason."""
    if code is not None:
        if isinstance(code, bool) or not isinstance(code, int):
            raise TypeError(f"close code must be an int, not {type(code).__name__}")
        if code != 1000 and not 3000 <= code <= 4999:
            raise _fail(f"invalid close code {code}: must be 1000 or in 3000-4999")
    if not isinstance(reason, str):
        raise TypeError(f"close reason must be a str, not {type(reason).__name__}")
    # A USVString: lone surrogates become U+FFFD, as WebIDL converts them.
    encoded = reason.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")
    if len(encoded) > 123:
        raise _fail(f"close reason is {len(encoded)} bytes of UTF-8; at most 123 are allowed")
    return code, encoded
