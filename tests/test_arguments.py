"""Arguments refused before anything touches the network: URLs, headers, close(), TLS options."""

from __future__ import annotations

import ssl
from typing import Any

import pytest

import mesiboscript
from mesiboscript import Socket, WebSocket
from mesiboscript.testing import EchoServer

from .helpers import Recorder, free_port


@pytest.mark.parametrize(
    "host",
    [
        "a" * 64 + ".example",  # a DNS label is at most 63 characters: IDNA refuses it
        "bad host.example",
        "b\u00fccher..example",  # an empty label
    ],
)
def test_bad_host_names_are_refused(host: str) -> None:
    with pytest.raises(mesiboscript.InvalidArgumentError, match="bad host name"):
        WebSocket(f"ws://{host}/")


def test_international_host_names_are_accepted() -> None:
    """A Unicode name is converted to its IDNA form; the connection then fails to resolve it."""
    ws = WebSocket("ws://b\u00fccher.invalid/", connect_timeout=5)
    rec = Recorder(ws)
    rec.wait_closed()
    assert rec.error == mesiboscript.SocketError.HostNotFoundError


@pytest.mark.parametrize("value", [1, b"bytes", None])
def test_header_values_must_be_text(value: Any) -> None:
    with pytest.raises(TypeError, match="must be a str"):
        WebSocket(f"ws://127.0.0.1:{free_port()}/", headers={"X-Test": value})


def test_close_reason_must_be_text(echo_server: EchoServer) -> None:
    ws = WebSocket(echo_server.url)
    rec = Recorder(ws)
    assert rec.opened.wait(10)
    with pytest.raises(TypeError, match="close reason must be a str"):
        ws.close(1000, b"bytes")  # type: ignore[arg-type]
    assert ws.readyState == WebSocket.OPEN
    ws.close(1000, "text")
    assert rec.wait_closed().reason == "text"


def test_ssl_context_and_cafile_together_are_refused() -> None:
    """Either the caller's own context or a CA file: never a silent choice between them."""
    context = ssl.create_default_context()
    port = free_port()
    with pytest.raises(ValueError, match="either ssl_context or cafile"):
        WebSocket(f"wss://127.0.0.1:{port}/", ssl_context=context, cafile="ca.pem")
    with pytest.raises(ValueError, match="either ssl_context or cafile"):
        Socket(f"socks://127.0.0.1:{port}", ssl_context=context, cafile="ca.pem")
