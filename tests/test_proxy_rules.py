"""The sans-I/O proxy layer: which proxy the environment gives a URL (curl's rules), and the
HTTP CONNECT, SOCKS 4/4a and SOCKS 5 handshakes driven with bytes, no sockets."""

from __future__ import annotations

import pytest

from mesiboscript import SocketError
from mesiboscript._proxy import (
    HttpConnect,
    Proxy,
    ProxyFailure,
    Socks4,
    Socks5,
    check_proxy_option,
    handshake_for,
    parse_proxy,
    proxy_for,
    select_proxy,
)

# -- the environment ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "env", "expected"),
    [
        ("ws", {"ws_proxy": "http://w:1", "http_proxy": "http://h:1"}, "http://w:1"),
        ("ws", {"http_proxy": "http://h:1", "all_proxy": "socks5://a:1"}, "http://h:1"),
        ("ws", {"all_proxy": "socks5h://a:1"}, "socks5h://a:1"),
        ("ws", {"https_proxy": "http://s:1"}, None),
        ("wss", {"wss_proxy": "http://w:1", "https_proxy": "http://s:1"}, "http://w:1"),
        ("wss", {"https_proxy": "https://s:1", "http_proxy": "http://h:1"}, "https://s:1"),
        ("wss", {"ALL_PROXY": "socks4://a:1"}, "socks4://a:1"),
        ("http", {"ws_proxy": "http://w:1"}, "http://w:1"),  # Engine.IO polling: the ws rules
        ("https", {"https_proxy": "http://s:1"}, "http://s:1"),
        ("sock", {"http_proxy": "http://h:1", "all_proxy": "socks5://a:1"}, "socks5://a:1"),
        ("socks", {"https_proxy": "http://s:1"}, None),
        ("ws", {"http_proxy": "h:3128"}, "http://h:3128"),  # no scheme: http, as curl
        ("ws", {"HTTP_PROXY": "http://upper:1"}, "http://upper:1"),
        ("ws", {"http_proxy": "http://lower:1", "HTTP_PROXY": "http://upper:1"}, "http://lower:1"),
        ("ws", {"http_proxy": "ftp://bad:1"}, None),  # unusable: ignored, not fatal
        ("ws", {"http_proxy": "  "}, None),
    ],
)
def test_environment_variables_in_curls_order(
    scheme: str, env: dict[str, str], expected: str
) -> None:
    proxy = proxy_for(scheme, "example.com", env)
    assert (proxy.display if proxy else None) == expected


@pytest.mark.parametrize(
    ("host", "no_proxy", "bypassed"),
    [
        ("example.com", "*", True),
        ("example.com", "example.com", True),
        ("www.example.com", "example.com", True),
        ("www.example.com", ".example.com", True),
        ("EXAMPLE.com.", "example.COM", True),
        ("notexample.com", "example.com", False),
        ("example.com", "other.org, example.com", True),
        ("example.com", "other.org example.com", True),
        ("example.com", ",,", False),
        ("127.0.0.1", "", False),  # loopback is proxied unless no_proxy says so (curl)
        ("localhost", "", False),
        ("localhost", "localhost", True),
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.0/8", True),
        ("10.1.2.3", "10.0.0.0/16", False),
        ("::1", "::1", True),
        ("[::1]", "[::1]", True),
        ("2001:db8::5", "2001:db8::/32", True),
        ("127.0.0.1", "localhost", False),  # names are not resolved
        ("192.168.1.1", "example.com", False),
    ],
)
def test_no_proxy_suffixes_addresses_cidr_and_star(
    host: str, no_proxy: str, bypassed: bool
) -> None:
    env = {"http_proxy": "http://p:1", "no_proxy": no_proxy}
    assert (proxy_for("ws", host, env) is None) is bypassed
    env = {"http_proxy": "http://p:1", "NO_PROXY": no_proxy}
    assert (proxy_for("ws", host, env) is None) is bypassed


def test_the_option_none_false_url_or_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("all_proxy", "socks5://env:1")
    assert select_proxy(None, "sock", "h") == Proxy("socks5", "env", 1)
    assert select_proxy(False, "sock", "h") is None
    assert select_proxy("", "sock", "h") is None
    assert select_proxy("http://p:2", "sock", "h") == Proxy("http", "p", 2)
    given = Proxy("socks4", "q", 3)
    assert select_proxy(given, "sock", "h") is given
    for good in (None, False, "socks5h://u:p@h:1", given):
        check_proxy_option(good)
    with pytest.raises(TypeError, match="proxy must be"):
        check_proxy_option(1080)
    with pytest.raises(ValueError, match="unsupported proxy"):
        check_proxy_option("gopher://h:1")


def test_credentials_never_shown() -> None:
    proxy = parse_proxy("socks5://alice:hunter2@p:1")
    assert "hunter2" not in repr(proxy)
    assert "alice" not in proxy.display
    with pytest.raises(ValueError, match="unsupported") as info:
        parse_proxy("ftp://alice:hunter2@p:1")
    assert "hunter2" not in str(info.value)
    assert proxy != "socks5://alice:hunter2@p:1"
    assert len({proxy, parse_proxy("socks5://alice:hunter2@p:1")}) == 1


# -- HTTP CONNECT ------------------------------------------------------------------------------


def test_connect_request_and_reply_in_pieces() -> None:
    shake = HttpConnect("::1", 443, parse_proxy("http://u:p@p:1"))
    request = shake.data_to_send()
    assert request.startswith(b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n")
    assert b"Proxy-Authorization: Basic dTpw\r\n" in request
    assert shake.data_to_send() == b""
    assert shake.receive_data(b"HTTP/1.1 200 Connection established\r\nX: y\r\n") is False
    assert shake.receive_data(b"\r\n") is True


@pytest.mark.parametrize(
    ("reply", "error", "text"),
    [
        (
            b"HTTP/1.1 407 Proxy Auth\r\n\r\n<html>",
            SocketError.ProxyAuthenticationRequiredError,
            "407",
        ),
        (b"HTTP/1.0 401 No\r\n\r\n", SocketError.ProxyAuthenticationRequiredError, "401"),
        (b"HTTP/1.1 502 Bad Gateway\r\n\r\n", SocketError.ProxyProtocolError, "502"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", SocketError.ProxyProtocolError, "not an HTTP reply"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", SocketError.ProxyProtocolError, "not an HTTP reply"),
        (b"HTTP/1.1\r\n\r\n", SocketError.ProxyProtocolError, "not an HTTP reply"),
        (b"HTTP/1.1 200 OK\r\n\r\nx", SocketError.ProxyProtocolError, "before the tunnel"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 12000, SocketError.ProxyProtocolError, "too long"),
        (b"", SocketError.ProxyConnectionClosedError, "closed"),
    ],
)
def test_connect_replies_that_open_no_tunnel(reply: bytes, error: SocketError, text: str) -> None:
    shake = HttpConnect("example.com", 80, parse_proxy("http://p:1"))
    with pytest.raises(ProxyFailure, match=text) as info:
        shake.receive_data(reply)
    assert info.value.error == error


# -- SOCKS 4 and 4a ----------------------------------------------------------------------------


def test_socks4_and_4a_requests() -> None:
    shake = handshake_for(parse_proxy("socks4://bob@p:1"), "10.0.0.1", 80)
    assert isinstance(shake, Socks4)
    assert shake.data_to_send() == b"\x04\x01\x00\x50\x0a\x00\x00\x01bob\x00"
    assert shake.receive_data(b"\x00\x5a\x00\x00") is False
    assert shake.receive_data(b"\x00\x00\x00\x00") is True
    shake = handshake_for(parse_proxy("socks4a://p:1"), "example.com", 443)
    assert shake.data_to_send() == b"\x04\x01\x01\xbb\x00\x00\x00\x01\x00example.com\x00"
    with pytest.raises(ProxyFailure, match="IPv4 addresses only"):
        handshake_for(parse_proxy("socks4://p:1"), "example.com", 80)


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"\x00\x5b", SocketError.ConnectionRefusedError),
        (b"\x00\x5c", SocketError.ProxyAuthenticationRequiredError),
        (b"\x00\x5d", SocketError.ProxyAuthenticationRequiredError),
        (b"\x00\x99", SocketError.ProxyProtocolError),
        (b"\x05\x00", SocketError.ProxyProtocolError),  # a SOCKS 5 server
    ],
)
def test_socks4_failures(reply: bytes, error: SocketError) -> None:
    shake = handshake_for(parse_proxy("socks4a://p:1"), "example.com", 80)
    with pytest.raises(ProxyFailure) as info:
        shake.receive_data(reply + bytes(6))
    assert info.value.error == error


# -- SOCKS 5 ------------------------------------------------------------------------------------


def test_socks5_with_password_and_each_address_type() -> None:
    shake = handshake_for(parse_proxy("socks5h://us:pw@p:1"), "example.com", 443)
    assert isinstance(shake, Socks5)
    assert shake.data_to_send() == b"\x05\x02\x00\x02"
    assert shake.receive_data(b"\x05\x02") is False
    assert shake.data_to_send() == b"\x01\x02us\x02pw"
    assert shake.receive_data(b"\x01\x00") is False
    assert shake.data_to_send() == b"\x05\x01\x00\x03\x0bexample.com\x01\xbb"
    # The bound address of each type, fed in pieces.
    assert shake.receive_data(b"\x05\x00\x00\x03\x04ab") is False
    assert shake.receive_data(b"cd\x00\x01") is True
    for host, atyp, size in (("127.0.0.1", 1, 4), ("::1", 4, 16)):
        shake = handshake_for(parse_proxy("socks5://p:1"), host, 80)
        assert shake.data_to_send() == b"\x05\x01\x00"
        assert shake.receive_data(b"\x05\x00") is False
        request = shake.data_to_send()
        assert request[3] == atyp
        assert len(request) == 4 + size + 2
        assert shake.receive_data(b"\x05\x00\x00" + bytes([atyp]) + bytes(size + 2)) is True


@pytest.mark.parametrize(
    ("replies", "error", "text"),
    [
        ([b"\x05\xff"], SocketError.ProxyAuthenticationRequiredError, "none of the offered"),
        ([b"\x05\x02", b"\x01\x01"], SocketError.ProxyAuthenticationRequiredError, "rejected"),
        ([b"\x05\x01"], SocketError.ProxyProtocolError, "not offered"),
        ([b"HTTP/1.0 400"], SocketError.ProxyProtocolError, "not a SOCKS 5 reply"),
        ([b"\x05\x00", b"\x05\x05\x00\x01\x00"], SocketError.ConnectionRefusedError, "refused"),
        ([b"\x05\x00", b"\x05\x04\x00\x01\x00"], SocketError.HostNotFoundError, "unreachable"),
        ([b"\x05\x00", b"\x05\x01\x00\x01\x00"], SocketError.ProxyConnectionClosedError, "general"),
        ([b"\x05\x00", b"\x05\x02\x00\x01\x00"], SocketError.SocketAccessError, "not allowed"),
        ([b"\x05\x00", b"\x05\x09\x00\x01\x00"], SocketError.ProxyProtocolError, "unknown reply"),
        ([b"\x05\x00", b"\x05\x00\x00\x07\x00"], SocketError.ProxyProtocolError, "address type"),
    ],
)
def test_socks5_failures(replies: list[bytes], error: SocketError, text: str) -> None:
    shake = handshake_for(parse_proxy("socks5://us:pw@p:1"), "example.com", 80)
    for reply in replies[:-1]:
        shake.receive_data(reply)
    with pytest.raises(ProxyFailure, match=text) as info:
        shake.receive_data(replies[-1])
    assert info.value.error == error


def test_socks5_name_too_long() -> None:
    with pytest.raises(ProxyFailure, match="too long"):
        handshake_for(parse_proxy("socks5h://p:1"), "a" * 63 + "." + "b" * 63 + ".c" * 70, 80)
