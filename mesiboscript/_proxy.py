"""Proxies, sans-I/O: which proxy a URL uses, and the proxy handshakes as bytes in, bytes out.

- :func:`proxy_for` reads the environment as curl does (``ws_proxy``/``wss_proxy``,
  ``http_proxy``/``https_proxy``, ``all_proxy``, lower case first; ``no_proxy`` with host
  suffixes, IP addresses, CIDR blocks and ``*``; loopback is proxied unless ``no_proxy`` says
  otherwise).
- :class:`Proxy` is one parsed proxy URL (``http``, ``https``, ``socks4``, ``socks4a``,
  ``socks5``, ``socks5h``); its ``repr`` and :attr:`Proxy.display` never show credentials.
- :class:`HttpConnect`, :class:`Socks4` and :class:`Socks5` negotiate a tunnel: the transport
  writes :meth:`~Handshake.data_to_send`, feeds what it reads to :meth:`~Handshake.receive_data`
  until it returns True, and maps :class:`ProxyFailure` to its ``SocketError``.

Nothing here touches a socket, a thread or a clock: the transport drives it on the one I/O loop
(no blocking call per connection, which is what python-socks' sync API would need).
"""

from __future__ import annotations

import base64
import ipaddress
import os
import struct
from collections.abc import Mapping
from typing import Optional, Union
from urllib.parse import unquote, urlsplit

from ._constants import SocketError

__all__ = [
    "Handshake",
    "HttpConnect",
    "Proxy",
    "ProxyFailure",
    "ProxyOption",
    "Socks4",
    "Socks5",
    "check_proxy_option",
    "handshake_for",
    "parse_proxy",
    "proxy_for",
    "select_proxy",
]

_DEFAULT_PORTS = {
    "http": 1080,  # curl's default proxy port, whatever the scheme, but for https
    "https": 443,
    "socks4": 1080,
    "socks4a": 1080,
    "socks5": 1080,
    "socks5h": 1080,
}
# Which environment variables a URL scheme reads, in order (each lower case, then upper case).
_ENV_KEYS = {
    "ws": ("ws_proxy", "http_proxy", "all_proxy"),
    "http": ("ws_proxy", "http_proxy", "all_proxy"),  # Engine.IO polling follows the ws rules
    "wss": ("wss_proxy", "https_proxy", "all_proxy"),
    "https": ("wss_proxy", "https_proxy", "all_proxy"),
    "sock": ("all_proxy",),
    "socks": ("all_proxy",),
}


class Proxy:
    """One proxy: ``scheme://[user:pass@]host:port``. Credentials stay out of ``repr``."""

    __slots__ = ("host", "password", "port", "scheme", "username")

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        username: Optional[str] = None,
        password: Optional[str] = None,
    ) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.username = username
        self.password = password

    @property
    def display(self) -> str:
        """The URL as logs and errors show it: ``user:pass@`` becomes ``***@``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        creds = "***@" if self.username is not None else ""
        return f"{self.scheme}://{creds}{host}:{self.port}"

    @property
    def tls(self) -> bool:
        """TLS to the proxy itself (``https://``)."""
        return self.scheme == "https"

    @property
    def remote_dns(self) -> bool:
        """The proxy resolves the target's name (HTTP CONNECT, SOCKS 4a, SOCKS 5h)."""
        return self.scheme in ("http", "https", "socks4a", "socks5h")

    def __repr__(self) -> str:
        return f"<Proxy {self.display}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Proxy):
            return NotImplemented
        return (self.scheme, self.host, self.port, self.username, self.password) == (
            other.scheme,
            other.host,
            other.port,
            other.username,
            other.password,
        )

    def __hash__(self) -> int:
        return hash((self.scheme, self.host, self.port))


ProxyOption = Union[None, bool, str, Proxy]


def parse_proxy(url: str) -> Proxy:
    """Parse a proxy URL; no scheme means ``http://`` (curl's rule).

    Raises:
        ValueError: an unsupported scheme, no host, a bad port, whitespace or control
            characters. The message shows the URL without its credentials.
    """
    if any(c in url for c in "\r\n\x00\t "):
        raise ValueError("invalid proxy URL: contains whitespace or control characters")
    parts = urlsplit(url if "://" in url else "http://" + url)
    scheme = parts.scheme.lower()
    shown = _redact(url)
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(
            f"unsupported proxy {shown!r}: use http://, https://, socks4://, socks4a://, "
            "socks5:// or socks5h://"
        )
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"invalid proxy {shown!r}: bad port") from None
    if not parts.hostname:
        raise ValueError(f"invalid proxy {shown!r}: no host")
    username = password = None
    if parts.username is not None:
        username = unquote(parts.username)
        password = unquote(parts.password or "")
        if scheme.startswith("socks5") and (
            len(username.encode()) > 255 or len(password.encode()) > 255
        ):
            raise ValueError(f"invalid proxy {shown!r}: SOCKS 5 credentials over 255 bytes")
    return Proxy(scheme, parts.hostname, port or _DEFAULT_PORTS[scheme], username, password)


def check_proxy_option(proxy: object) -> None:
    """Validate the public ``proxy`` option at construction (``None``, ``False`` or a URL).

    Raises:
        TypeError: not one of those types.
        ValueError: a URL :func:`parse_proxy` rejects.
    """
    if proxy is None or proxy is False or isinstance(proxy, Proxy):
        return
    if not isinstance(proxy, str):
        raise TypeError(f"proxy must be None, False or a URL, not {type(proxy).__name__}")
    parse_proxy(proxy)


def select_proxy(option: ProxyOption, scheme: str, host: str) -> Optional[Proxy]:
    """The proxy a connection to ``scheme://host`` uses under the ``proxy`` option: ``None``
    reads the environment (:func:`proxy_for`), ``False`` (or ``""``) means none."""
    if option is None or option is True:
        return proxy_for(scheme, host)
    if option is False or option == "":
        return None
    if isinstance(option, Proxy):
        return option
    return parse_proxy(option)


def proxy_for(scheme: str, host: str, env: Optional[Mapping[str, str]] = None) -> Optional[Proxy]:
    """The proxy curl would use for ``scheme://host``, from the environment.

    An unparsable proxy variable is ignored (as a browser ignores a bad PAC answer) rather
    than failing every connection in the process.
    """
    env = os.environ if env is None else env
    for key in _ENV_KEYS.get(scheme, ("all_proxy",)):
        value = _getenv(env, key)
        if value:
            # no_proxy is read only when a proxy is set (each lookup of a variable that is not
            # set costs ~0.7 us, and this runs for every connection).
            if _no_proxy(host, _getenv(env, "no_proxy")):
                return None
            try:
                return parse_proxy(value)
            except ValueError:
                return None
    return None


def _getenv(env: Mapping[str, str], key: str) -> str:
    value = env.get(key)
    if value is None:
        value = env.get(key.upper())
    return (value or "").strip()


def _no_proxy(host: str, rules: str) -> bool:
    """curl's ``no_proxy``: ``*``; host names matching an entry or ending in ``.entry`` (a
    leading dot is optional); IP addresses equal to an entry or inside a CIDR entry."""
    if not rules:
        return False
    host = host.strip("[]").rstrip(".").lower()
    try:
        ip: Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for entry in rules.replace(" ", ",").split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if ip is not None:
            try:
                if ip in ipaddress.ip_network(entry.strip("[]"), strict=False):
                    return True
            except ValueError:
                pass
            continue
        entry = entry.lstrip(".").rstrip(".")
        if host == entry or host.endswith("." + entry):
            return True
    return False


def _redact(url: str) -> str:
    scheme, sep, rest = url.rpartition("://")
    if "@" in rest.split("/", 1)[0]:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


# -- the handshakes ----------------------------------------------------------------------------


class ProxyFailure(Exception):
    """The proxy refused or broke the handshake; ``error`` is the HiFi ``SocketError``."""

    def __init__(self, message: str, error: SocketError) -> None:
        super().__init__(message)
        self.error = error


class Handshake:
    """A tunnel negotiation: bytes in, bytes out, no I/O."""

    def __init__(self) -> None:
        self._out = bytearray()
        self._in = bytearray()
        self.done = False

    def data_to_send(self) -> bytes:
        """What to write now (empty when waiting for the proxy)."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def receive_data(self, data: bytes) -> bool:
        """Feed what the proxy sent; True once the tunnel is open.

        Raises:
            ProxyFailure: the proxy said no, or said something this handshake cannot parse.
        """
        if not data:
            raise ProxyFailure(
                "the proxy closed the connection before the tunnel was open",
                SocketError.ProxyConnectionClosedError,
            )
        self._in += data
        self.done = self._parse()
        if self.done and self._in:
            # The client speaks first in TLS and in WebSocket: nothing may follow the reply.
            raise ProxyFailure(
                "the proxy sent data before the tunnel was open", SocketError.ProxyProtocolError
            )
        return self.done

    def _parse(self) -> bool:  # pragma: no cover - every handshake defines it
        raise NotImplementedError


class HttpConnect(Handshake):
    """HTTP ``CONNECT host:port`` with optional Basic ``Proxy-Authorization``."""

    def __init__(self, host: str, port: int, proxy: Proxy) -> None:
        super().__init__()
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
        if proxy.username is not None:
            creds = f"{proxy.username}:{proxy.password or ''}".encode()
            lines.append("Proxy-Authorization: Basic " + base64.b64encode(creds).decode("ascii"))
        self._out += ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")

    def _parse(self) -> bool:
        # A CONNECT reply has no body: read up to the blank line, byte-exactly.
        end = self._in.find(b"\r\n\r\n")
        if end < 0:
            if len(self._in) > 65536:
                raise ProxyFailure("proxy reply too long", SocketError.ProxyProtocolError)
            return False
        head = bytes(self._in[:end])
        del self._in[: end + 4]
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(None, 2)
        if (
            len(parts) < 2
            or not parts[0].startswith("HTTP/1.")
            or len(parts[1]) != 3
            or not parts[1].isdigit()
        ):
            raise ProxyFailure(
                f"not an HTTP reply from the proxy: {status_line[:80]!r}",
                SocketError.ProxyProtocolError,
            )
        status = int(parts[1])
        if status in (401, 407):
            raise ProxyFailure(
                f"the proxy wants authentication: {status_line}",
                SocketError.ProxyAuthenticationRequiredError,
            )
        if not 200 <= status < 300:
            raise ProxyFailure(f"proxy refused: {status_line}", SocketError.ProxyProtocolError)
        return True


# SOCKS 4 reply codes (CD) and SOCKS 5 reply codes (REP) → what a script can act on (Qt's map).
_SOCKS4_ERRORS = {
    91: ("request rejected or failed", SocketError.ConnectionRefusedError),
    92: (
        "the proxy cannot reach identd on the client",
        SocketError.ProxyAuthenticationRequiredError,
    ),
    93: ("identd reports a different user id", SocketError.ProxyAuthenticationRequiredError),
}
_SOCKS5_ERRORS = {
    1: ("general SOCKS server failure", SocketError.ProxyConnectionClosedError),
    2: ("connection not allowed by ruleset", SocketError.SocketAccessError),
    3: ("network unreachable", SocketError.NetworkError),
    4: ("host unreachable", SocketError.HostNotFoundError),
    5: ("connection refused", SocketError.ConnectionRefusedError),
    6: ("TTL expired", SocketError.SocketTimeoutError),
    7: ("command not supported", SocketError.ProxyProtocolError),
    8: ("address type not supported", SocketError.ProxyProtocolError),
}


class Socks4(Handshake):
    """SOCKS 4 (an IPv4 address the client resolved) or 4a (the proxy resolves the name)."""

    def __init__(self, host: str, port: int, proxy: Proxy) -> None:
        super().__init__()
        user = (proxy.username or "").encode()
        try:
            address = ipaddress.IPv4Address(host)
            name = b""
        except ValueError:
            if proxy.scheme != "socks4a":
                raise ProxyFailure(
                    f"SOCKS 4 connects to IPv4 addresses only, not {host}",
                    SocketError.ProxyProtocolError,
                ) from None
            address = ipaddress.IPv4Address("0.0.0.1")  # 4a: the name follows the user id
            name = host.encode("idna") + b"\x00"
        self._out += struct.pack(">BBH", 4, 1, port) + address.packed + user + b"\x00" + name

    def _parse(self) -> bool:
        if len(self._in) < 8:
            return False
        version, code = self._in[0], self._in[1]
        del self._in[:8]
        if version != 0:
            raise ProxyFailure(
                f"not a SOCKS 4 reply (version {version})", SocketError.ProxyProtocolError
            )
        if code == 90:
            return True
        message, error = _SOCKS4_ERRORS.get(
            code, (f"unknown reply {code}", SocketError.ProxyProtocolError)
        )
        raise ProxyFailure(f"SOCKS 4 proxy: {message}", error)


class Socks5(Handshake):
    """SOCKS 5 (RFC 1928) with no authentication or username/password (RFC 1929)."""

    def __init__(self, host: str, port: int, proxy: Proxy) -> None:
        super().__init__()
        self._proxy = proxy
        self._stage = "method"
        try:
            ip = ipaddress.ip_address(host)
            address = bytes([1 if ip.version == 4 else 4]) + ip.packed
        except ValueError:
            name = host.encode("idna")
            if len(name) > 255:
                raise ProxyFailure(
                    "host name too long for SOCKS 5", SocketError.ProxyProtocolError
                ) from None
            address = bytes([3, len(name)]) + name
        self._request = b"\x05\x01\x00" + address + struct.pack(">H", port)
        methods = b"\x00\x02" if proxy.username is not None else b"\x00"
        self._out += bytes([5, len(methods)]) + methods

    def _parse(self) -> bool:
        while True:
            if self._stage == "method":
                if len(self._in) < 2:
                    return False
                version, method = self._in[0], self._in[1]
                del self._in[:2]
                self._check_version(version)
                if method == 0:
                    self._send_request()
                elif method == 2 and self._proxy.username is not None:
                    user = self._proxy.username.encode()
                    password = (self._proxy.password or "").encode()
                    self._out += bytes([1, len(user)]) + user + bytes([len(password)]) + password
                    self._stage = "auth"
                elif method == 0xFF:
                    raise ProxyFailure(
                        "the SOCKS 5 proxy accepts none of the offered authentication methods",
                        SocketError.ProxyAuthenticationRequiredError,
                    )
                else:
                    raise ProxyFailure(
                        f"the SOCKS 5 proxy chose a method not offered ({method})",
                        SocketError.ProxyProtocolError,
                    )
            elif self._stage == "auth":
                if len(self._in) < 2:
                    return False
                status = self._in[1]
                del self._in[:2]
                if status != 0:
                    raise ProxyFailure(
                        "the SOCKS 5 proxy rejected the user name or password",
                        SocketError.ProxyAuthenticationRequiredError,
                    )
                self._send_request()
            else:
                return self._parse_reply()

    def _check_version(self, version: int) -> None:
        if version != 5:
            raise ProxyFailure(
                f"not a SOCKS 5 reply (version {version})", SocketError.ProxyProtocolError
            )

    def _send_request(self) -> None:
        self._out += self._request
        self._stage = "reply"

    def _parse_reply(self) -> bool:
        if len(self._in) < 5:
            return False
        self._check_version(self._in[0])
        code, atyp = self._in[1], self._in[3]
        if code != 0:
            message, error = _SOCKS5_ERRORS.get(
                code, (f"unknown reply {code}", SocketError.ProxyProtocolError)
            )
            raise ProxyFailure(f"SOCKS 5 proxy: {message}", error)
        if atyp == 1:
            size = 4 + 4 + 2
        elif atyp == 4:
            size = 4 + 16 + 2
        elif atyp == 3:
            size = 4 + 1 + self._in[4] + 2
        else:
            raise ProxyFailure(
                f"SOCKS 5 reply with unknown address type {atyp}", SocketError.ProxyProtocolError
            )
        if len(self._in) < size:
            return False
        del self._in[:size]
        return True


def handshake_for(proxy: Proxy, host: str, port: int) -> Handshake:
    """The handshake that opens a tunnel to ``host:port`` through ``proxy`` (``host`` is an
    address the client resolved for ``socks4``/``socks5``, a name otherwise)."""
    if proxy.scheme in ("http", "https"):
        return HttpConnect(host, port, proxy)
    if proxy.scheme.startswith("socks4"):
        return Socks4(host, port, proxy)
    return Socks5(host, port, proxy)
