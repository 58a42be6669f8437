"""The public surface: exports, enum tables, and validation at the call that gets bad input."""

from __future__ import annotations

import pathlib

import pytest

import mesiboscript
from mesiboscript import CloseCode, ReadyState, SocketError, WebSocket


def test_all_matches_the_exported_names() -> None:
    public = {name for name in dir(mesiboscript) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(mesiboscript, name)).__name__ == "module"}
    lazy = {"WebSocketServer"}  # imported on first use: it needs the optional websockets package
    assert set(mesiboscript.__all__) == public - modules - {"annotations"} | {"__version__"} | lazy
    assert all(getattr(mesiboscript, name) is not None for name in mesiboscript.__all__)
    for name in (
        "WebSocket",
        "Socket",
        "SocketIO",
        "WebSocketServer",
        "ReadyState",
        "CloseCode",
        "SocketError",
        "MessageData",
        "CloseData",
        "getSession",
        "getOpenSessions",
        "run",
        "MesiboScriptError",
    ):
        if name in ("Socket", "WebSocketServer") and not hasattr(mesiboscript, name):
            continue  # exported once those modules land
        assert name in mesiboscript.__all__, name


def test_py_typed_is_shipped() -> None:
    assert (pathlib.Path(mesiboscript.__file__).parent / "py.typed").exists()


def test_ready_states() -> None:
    assert [(s.name, s.value) for s in ReadyState] == [
        ("CONNECTING", 0),
        ("OPEN", 1),
        ("CLOSING", 2),
        ("CLOSED", 3),
    ]
    for state in ReadyState:
        assert getattr(WebSocket, state.name) == state == state.value


def test_close_codes_have_the_hifi_names() -> None:
    expected = {
        "Normal": 1000,
        "GoingAway": 1001,
        "ProtocolError": 1002,
        "DatatypeNotSupported": 1003,
        "Reserved1004": 1004,
        "MissingStatusCode": 1005,
        "AbnormalDisconnection": 1006,
        "WrongDatatype": 1007,
        "PolicyViolated": 1008,
        "TooMuchData": 1009,
        "MissingExtension": 1010,
        "BadOperation": 1011,
        "TlsHandshakeFailed": 1015,
    }
    assert {c.name: c.value for c in CloseCode} == expected
    assert CloseCode["NORMAL_CLOSURE"] is CloseCode["Normal"]  # RFC 6455 names are aliases
    assert CloseCode(1009) == 1009


def test_socket_errors_are_the_hifi_table() -> None:
    names = [
        "ConnectionRefusedError",
        "RemoteHostClosedError",
        "HostNotFoundError",
        "SocketAccessError",
        "SocketResourceError",
        "SocketTimeoutError",
        "DatagramTooLargeError",
        "NetworkError",
        "AddressInUseError",
        "SocketAddressNotAvailableError",
        "UnsupportedSocketOperationError",
        "ProxyAuthenticationRequiredError",
        "SslHandshakeFailedError",
        "UnfinishedSocketOperationError",
        "ProxyConnectionRefusedError",
        "ProxyConnectionClosedError",
        "ProxyConnectionTimeoutError",
        "ProxyNotFoundError",
        "ProxyProtocolError",
        "OperationError",
        "SslInternalError",
        "SslInvalidUserDataError",
        "TemporaryError",
    ]
    assert [(e.name, e.value) for e in SocketError] == [
        *((name, i) for i, name in enumerate(names)),
        ("UnknownSocketError", -1),
    ]


@pytest.mark.parametrize(
    "member",
    [
        ReadyState.OPEN,
        ReadyState.CLOSED,
        CloseCode.Normal,
        CloseCode.NO_STATUS_RCVD,
        SocketError.UnknownSocketError,
    ],
)
def test_enum_members_print_as_their_number(
    member: int, capsys: pytest.CaptureFixture[str]
) -> None:
    # The HiFi seed prints webSocket.readyState and expects 1 / 3; on Python 3.9 and 3.10 an
    # IntEnum printed "ReadyState.OPEN".
    number = int(member)
    assert str(member) == f"{member}" == format(member, "") == str(number)
    assert format(member, ">6") == format(number, ">6")
    print(member)
    assert capsys.readouterr().out == f"{number}\n"
    assert repr(member).startswith(f"<{type(member).__name__}.{member.name}: ")  # type: ignore[attr-defined]


def test_socket_errors_have_a_readable_message() -> None:
    # The ArozOS front-end's onerror does log(error.message).
    assert SocketError.ConnectionRefusedError.message == "Connection refused"
    assert SocketError.HostNotFoundError.message == "Host not found"
    messages = [e.message for e in SocketError]
    assert all(messages)
    assert len(set(messages)) == len(messages)


def test_one_exception_root() -> None:
    for name in (
        "InvalidStateError",
        "InvalidArgumentError",
        "ConnectionFailed",
        "ConnectionClosed",
        "ProtocolError",
    ):
        assert issubclass(getattr(mesiboscript, name), mesiboscript.MesiboScriptError)
    assert issubclass(mesiboscript.InvalidArgumentError, ValueError)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ws://example.com", "ws://example.com/"),
        ("WS://Example.COM:80/a b?x=é", "ws://example.com/a%20b?x=%C3%A9"),
        ("wss://example.com:443/", "wss://example.com/"),
        ("wss://example.com:8443/chat?room=1", "wss://example.com:8443/chat?room=1"),
        ("http://example.com/", "ws://example.com/"),
        ("https://example.com/", "wss://example.com/"),
        ("ws://[::1]:9000/", "ws://[::1]:9000/"),
        ("ws://user:pw@example.com/", "ws://user:pw@example.com/"),
        ("ws://bücher.example/", "ws://xn--bcher-kva.example/"),
    ],
)
def test_urls_are_parsed_and_serialised(url: str, expected: str) -> None:
    from mesiboscript._validation import parse_url

    assert parse_url(url).url == expected


@pytest.mark.parametrize(
    "url",
    [
        "",
        "example.com",
        "/relative",
        "//example.com/",
        "ftp://example.com/",
        "ws://example.com/#fragment",
        "ws://example.com/#",
        "ws://",
        "ws://:80/",
        "ws://example.com:99999/",
        "ws://example.com:0/",
        "ws://exa mple.com/",
        "ws://example.com/\r\nX-Injected: 1",
        "ws://example.com/\x00",
    ],
)
def test_bad_urls_raise_at_construction(url: str) -> None:
    with pytest.raises(ValueError, match="URL"):
        WebSocket(url)
    assert mesiboscript.getOpenSessions() == []


def test_url_must_be_a_string() -> None:
    with pytest.raises(TypeError):
        WebSocket(b"ws://example.com/")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "protocols",
    [["chat", "chat"], ["chat", "CHAT"], [""], ["a b"], ["a,b"], ["é"], ["x\r\n"], ["x\n"], [1]],
)
def test_bad_protocols_raise(protocols: list[object]) -> None:
    with pytest.raises(ValueError, match="subprotocol"):
        WebSocket("ws://127.0.0.1:1/", protocols)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [
        {"headers": {"X-A": "a\r\nb"}},
        {"headers": {"Bad Name": "x"}},
        {"origin": "http://x\r\n"},
        {"connect_timeout": 0},
        {"ping_interval": -1},
        {"max_size": 0},
        {"proxy": "ftp://127.0.0.1:1080"},
    ],
)
def test_bad_options_raise(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"(?i)header|origin|must be|proxy"):
        WebSocket("ws://127.0.0.1:1/", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("code", [0, 999, 1001, 1005, 1006, 1015, 2999, 5000, 65536])
def test_close_codes_outside_1000_and_3000_4999_are_refused(code: int) -> None:
    from mesiboscript._validation import check_close

    with pytest.raises(ValueError, match="close code"):
        check_close(code, "")


def test_close_reason_limit() -> None:
    from mesiboscript._validation import check_close

    assert check_close(1000, "é" * 61) == (1000, "é".encode() * 61)  # 122 bytes
    assert check_close(4999, "x" * 123)[1] == b"x" * 123
    with pytest.raises(ValueError, match="123"):
        check_close(1000, "x" * 124)
    with pytest.raises(ValueError, match="123"):
        check_close(1000, "é" * 62)
    with pytest.raises(TypeError):
        check_close("1000", "")
    with pytest.raises(TypeError):
        check_close(True, "")
    assert check_close(None, "") == (None, b"")
