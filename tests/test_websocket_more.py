"""More of the client ``WebSocket``: a copy made from another, credentials in the URL, lone
surrogates in text, ``binaryType``."""

from __future__ import annotations

import base64

import pytest

from mesiboscript import WebSocket

from .helpers import TIMEOUT, Recorder
from .rawserver import RawConnection, RawServer


def test_a_websocket_made_from_another_keeps_its_url_and_options() -> None:
    def handler(conn: RawConnection) -> bytes:
        request = conn.handshake()
        conn.read_close_code()
        return request

    with RawServer(handler=handler) as server:
        first = WebSocket(server.url("/copied"), headers={"X-Test": "kept"})
        second = WebSocket(first)
        assert second.url == first.url
        for ws in (first, second):
            recorder = Recorder(ws)
            assert recorder.opened.wait(TIMEOUT)
            ws.close()
            recorder.wait_closed()
        for request in server.wait_results(2):
            assert b"GET /copied " in request
            assert b"X-Test: kept" in request


def test_credentials_in_the_url_go_as_basic_auth_not_in_repr() -> None:
    def handler(conn: RawConnection) -> bytes:
        request = conn.handshake()
        conn.read_close_code()
        return request

    with RawServer(handler=handler) as server:
        ws = WebSocket(f"ws://user:s3cret@127.0.0.1:{server.port}/")
        recorder = Recorder(ws)
        assert recorder.opened.wait(TIMEOUT)
        assert "s3cret" not in repr(ws)
        ws.close()
        recorder.wait_closed()
        request = server.result()
    token = base64.b64encode(b"user:s3cret")
    assert b"Authorization: Basic " + token in request


def test_lone_surrogates_are_sent_as_replacement_characters(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    recorder = Recorder(ws, on_message=lambda event: ws.close())
    ws.onopen = lambda: ws.send("a\udc00b")
    recorder.wait_closed()
    assert recorder.messages == ["a\ufffdb"]


def test_binary_type_is_kept_and_checked(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    recorder = Recorder(ws)
    assert ws.binaryType == "blob"
    ws.binaryType = "arraybuffer"
    assert ws.binaryType == "arraybuffer"
    with pytest.raises(ValueError, match="binaryType must be"):
        ws.binaryType = "text"
    assert recorder.opened.wait(TIMEOUT)
    ws.close()
    recorder.wait_closed()
