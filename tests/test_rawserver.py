"""The test raw server itself: a client that goes away at any moment is recorded, never an
exception in the server's thread (pytest turns one into an error of whichever test runs then)."""

from __future__ import annotations

import socket
import struct

import pytest

from .rawserver import RawServer


@pytest.mark.parametrize("partial", [b"", b"GET /echo_close HT"])
def test_a_client_reset_during_the_request_is_recorded(partial: bytes) -> None:
    srv = RawServer().start()
    try:
        client = socket.create_connection((srv.host, srv.port))
        client.sendall(partial)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # RST
        assert srv.wait_record("", 10).done.wait(10)
    finally:
        srv.stop()  # joins the connection's thread: an exception in it is reported now
    (rec,) = srv.records
    assert rec.end == "client_rst"
    assert rec.request_line == ""
