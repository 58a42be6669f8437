"""More of Mesibo's ``Socket``: option and argument checks, lone surrogates on a stream, a socket
opened and closed inside a handler, ``enableSsl`` on a ws:// URL, data with no ``ondata`` left."""

from __future__ import annotations

import queue
from typing import Any

import pytest

from mesiboscript import WebSocket
from mesiboscript._tcp import Socket

from .helpers import TIMEOUT, Recorder, free_port
from .rawserver import RawConnection, RawServer
from .test_tcp import echo_forever


def test_bad_max_buffer_and_queue_arguments() -> None:
    with pytest.raises(ValueError, match="max_buffer"):
        Socket("sock://127.0.0.1:1", max_buffer=-1)
    s = Socket(f"sock://127.0.0.1:{free_port()}")
    with pytest.raises(TypeError, match="takes the data"):
        s.queue()
    with pytest.raises(TypeError, match="str or bytes"):
        s.queue(s, 42)
    with pytest.raises(TypeError, match="must be callable"):
        s.ondata = 42  # type: ignore[assignment]


def test_lone_surrogates_go_out_as_replacement_characters() -> None:
    def handler(conn: RawConnection) -> bytes:
        return conn.read_exact(5)

    with RawServer(handler=handler) as server:
        s = Socket(f"sock://127.0.0.1:{server.port}", ondata=lambda s, data: None)
        rec = Recorder(s)
        s.open()
        s.send("a\ud800b")
        assert server.result() == b"a\xef\xbf\xbdb"
        s.close()
        s.close()  # a second close does nothing
        rec.wait_closed()
        assert rec.kinds() == ["connect", "close"]


def test_open_then_close_inside_a_handler_fires_close_only(echo_url: str) -> None:
    # Both run before the I/O thread gets to the first attempt: it is never made.
    made: queue.Queue[Recorder] = queue.Queue()

    def onopen() -> None:
        s = Socket(f"sock://127.0.0.1:{free_port()}", ondata=lambda s, data: None)
        made.put(Recorder(s))
        s.open()
        s.close()

    ws = WebSocket(echo_url)
    ws.onopen = onopen
    rec = made.get(timeout=TIMEOUT)
    rec.wait_closed()
    assert rec.kinds() == ["close"]
    assert rec.s.last_error is None
    ws.close()


def test_enable_ssl_turns_a_ws_url_into_wss(wss_echo_url: str, client_ssl: Any) -> None:
    s = Socket(wss_echo_url.replace("wss://", "ws://"), ssl_context=client_ssl)
    s.enableSsl = True
    s.ondata = Socket.queue
    assert s.upgrade(TIMEOUT) is True
    s.send("over TLS")
    assert s.read(TIMEOUT) == "over TLS"
    s.close()
    assert s.read(TIMEOUT) is False


def test_data_with_no_ondata_left_is_kept_for_read() -> None:
    with RawServer(handler=echo_forever) as server:
        s = Socket(f"sock://127.0.0.1:{server.port}", ondata=lambda s, data: None)
        s.onconnect = lambda s: setattr(s, "ondata", None)
        assert s.upgrade(TIMEOUT) is True
        s.send(b"kept")
        assert s.read(TIMEOUT) == b"kept"
        s.close()
        assert s.read(TIMEOUT) is False
