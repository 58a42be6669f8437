"""Issue 13, the library side: a seed's script ports without a stumble.

Mesibo's one-parameter ``ondata``, text instead of ``b'...'``, unknown handler names and option
types refused at the assignment, and what ``help()`` and the errors tell a newcomer.
"""

from __future__ import annotations

import inspect
import logging
import pydoc
import queue
import subprocess
import sys
import threading
from typing import Any, Callable, Union

import pytest

from mesiboscript import Socket, SocketIO, WebSocket, _lifetime
from mesiboscript._tcp import takes_data_alone
from mesiboscript.server import WebSocketServer

from .helpers import TIMEOUT, free_port
from .rawserver import RawConnection, RawServer

Data = Union[str, bytes]


def _send_then_close(payload: bytes) -> Any:
    def handler(conn: RawConnection) -> None:
        with conn.sock:
            conn.sock.sendall(payload)

    return handler


def _run(s: Socket) -> None:
    closed = threading.Event()
    s.onclose = lambda s: closed.set()
    s.open()
    assert closed.wait(TIMEOUT)


# -- Mesibo: ondata with one parameter ---------------------------------------------------------


def test_one_parameter_ondata_gets_the_data_alone() -> None:
    # The seed: s.ondata = function(s) { print(s); } -- ported as a one-parameter lambda. Before,
    # each chunk logged a TypeError (the lambda got two arguments) and the script exited 0.
    got: list[Data] = []
    with RawServer(handler=_send_then_close(b"hello")) as server:
        s = Socket(f"sock://127.0.0.1:{server.port}")
        s.ondata = lambda d: got.append(d)
        _run(s)
    assert b"".join(x for x in got if isinstance(x, bytes)) == b"hello"


def test_two_parameter_ondata_gets_the_socket_and_the_data() -> None:
    got: list[tuple[Socket, Data]] = []
    with RawServer(handler=_send_then_close(b"hello")) as server:
        s = Socket(f"sock://127.0.0.1:{server.port}")
        s.ondata = lambda sock, d: got.append((sock, d))
        _run(s)
    assert got
    assert all(sock is s for sock, _ in got)


def test_print_as_ondata_prints_the_data(capsys: pytest.CaptureFixture[str]) -> None:
    # A builtin: its signature cannot be read on Python 3.9; print takes any number, none needed.
    with RawServer(handler=_send_then_close(b"hello")) as server:
        s = Socket(f"sock://127.0.0.1:{server.port}", encoding="utf-8")
        s.ondata = print
        _run(s)
    assert capsys.readouterr().out == "hello\n"
    assert s.ondata is print  # reads back as what was set, not the adapter


class _Handlers:
    def one(self, data: Data) -> None: ...
    def two(self, s: Socket, data: Data) -> None: ...


def test_which_handlers_get_the_data_alone() -> None:
    h = _Handlers()
    alone: list[Callable[..., Any]] = [
        lambda d: None,
        print,
        h.one,
        [].append,
        lambda *args: None,
        lambda d, x=1: None,
    ]
    both: list[Callable[..., Any]] = [
        lambda s, d: None,
        h.two,
        _Handlers.one,
        Socket.queue,
        lambda s, *rest: None,
    ]
    assert [takes_data_alone(f) for f in alone] == [True, True, True, True, True, False]
    assert not any(takes_data_alone(f) for f in both)


def test_socket_queue_as_ondata_still_feeds_read() -> None:
    with RawServer(handler=_send_then_close(b"hello")) as server:
        s = Socket(f"sock://127.0.0.1:{server.port}")
        s.ondata = Socket.queue
        s.open()
        assert s.read(TIMEOUT) == b"hello"
        assert s.read(TIMEOUT) is False  # closed by the peer, and everything read


# -- text instead of b'...' ------------------------------------------------------------------


def test_encoding_decodes_a_character_split_across_two_reads() -> None:
    # The server sends "a" and the first byte of "é"; once the client has answered (so the two
    # halves are surely two reads) the second byte and "b".
    def split(conn: RawConnection) -> None:
        with conn.sock:
            conn.sock.sendall(b"a\xc3")
            conn.recv_until(b"ack")
            conn.sock.sendall(b"\xa9b")

    got: list[Data] = []
    with RawServer(handler=split) as server:
        s = Socket(f"sock://127.0.0.1:{server.port}", encoding="utf-8")

        def ondata(sock: Socket, data: Data) -> None:
            got.append(data)
            if data == "a":
                sock.send("ack")

        s.ondata = ondata
        _run(s)
    assert got == ["a", "éb"]


def test_encoding_replaces_a_character_cut_by_the_end() -> None:
    got: list[Data] = []
    with RawServer(handler=_send_then_close(b"ok\xc3")) as server:
        s = Socket(f"sock://127.0.0.1:{server.port}", encoding="utf-8")
        s.ondata = got.append
        _run(s)
    assert "".join(str(x) for x in got) == "ok\ufffd"


def test_encoding_gives_read_text_too() -> None:
    with RawServer(handler=_send_then_close("héllo".encode())) as server:
        s = Socket(f"sock://127.0.0.1:{server.port}", encoding="utf-8")
        s.ondata = Socket.queue
        s.open()
        assert s.read(TIMEOUT) == "héllo"
        assert s.read(TIMEOUT) is False


def test_unknown_encoding_raises_at_construction() -> None:
    with pytest.raises(ValueError, match="unknown encoding 'utf-9'"):
        Socket("sock://127.0.0.1:1", encoding="utf-9")


# -- unknown handler names, option types -------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "name", "hint"),
    [
        (lambda: WebSocket("ws://127.0.0.1:1"), "onOpen", "onopen"),
        (lambda: WebSocket("ws://127.0.0.1:1"), "onmesage", "onmessage"),
        (lambda: Socket("sock://127.0.0.1:1"), "onconect", "onconnect"),
        (lambda: Socket("sock://127.0.0.1:1"), "onData", "ondata"),
        (lambda: WebSocketServer(), "onNewconnection", "onNewConnection"),
    ],
)
def test_unknown_handler_names_raise_with_a_hint(make: Any, name: str, hint: str) -> None:
    obj = make()
    try:
        with pytest.raises(AttributeError, match=f"did you mean {hint!r}"):
            setattr(obj, name, lambda *args: None)
        assert name not in vars(obj)
    finally:
        obj.close()


def test_other_attributes_are_not_checked() -> None:
    ws = WebSocket("ws://127.0.0.1:1")
    ws.note = "mine"  # type: ignore[attr-defined]
    assert ws.note == "mine"  # type: ignore[attr-defined]
    ws.close()


@pytest.mark.parametrize("name", ["keepalive", "verify_host", "enableSsl"])
@pytest.mark.parametrize("value", ["yes", 1, None])
def test_bool_options_refuse_other_types_at_the_assignment(name: str, value: object) -> None:
    s = Socket("sock://127.0.0.1:1")
    with pytest.raises(TypeError, match=f"{name} must be True or False"):
        setattr(s, name, value)
    s.keepalive = True
    assert s.keepalive is True


def test_socket_scheme_error_lists_every_scheme() -> None:
    with pytest.raises(ValueError, match="sock://") as info:
        Socket("ftp://x")
    for scheme in ("sock://", "socks://", "ws://", "wss://"):
        assert scheme in str(info.value)


# -- help() ----------------------------------------------------------------------------------


def test_help_socket_documents_properties_and_handlers() -> None:
    text = pydoc.plain(pydoc.render_doc(Socket))
    for word in (
        "keepalive",
        "verify_host",
        "enableSsl",
        "onconnect(s)",
        "ondata(s, data)",
        "ondata(data)",
        "onwrite(s, nbytes)",
        "onclose(s)",
        "encoding",
    ):
        assert word in text, word
    # The default in the signature (None) is the one the docstring gives.
    assert inspect.signature(Socket).parameters["ping_interval"].default is None
    assert "``None`` (the default) pings" in text


def test_help_websocket_documents_its_handlers() -> None:
    text = pydoc.plain(pydoc.render_doc(WebSocket))
    for word in ("onopen()", "onmessage(event)", "onerror(error)", "onclose(event)"):
        assert word in text, word
    # Each handler attribute carries its own line in "Data descriptors".
    assert "onmessage(event: MessageData)" in text


def test_handler_attributes_read_back() -> None:
    seen: queue.Queue[object] = queue.Queue()
    ws = WebSocket("ws://127.0.0.1:1", onclose=seen.put)
    assert ws.onclose == seen.put
    ws.onclose = None
    assert ws.onclose is None
    ws.close()


# -- a failure nobody listens to is logged -----------------------------------------------------


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "mesiboscript" and r.levelno == logging.WARNING
    ]


def test_refused_websocket_with_only_onopen_logs_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Before: nothing was printed and the script exited 0.
    port = free_port()
    ws = WebSocket(f"ws://user:secret@127.0.0.1:{port}/chat")
    ws.onopen = lambda: None
    ws.onmessage = lambda m: None
    assert ws.upgrade(TIMEOUT) is False
    assert _lifetime.wait_idle(TIMEOUT)  # closed, and the warning decided
    [line] = _warnings(caplog)
    assert f"ws://***@127.0.0.1:{port}/chat" in line
    assert "refused" in line
    assert "secret" not in line


@pytest.mark.parametrize("listen", ["onerror", "onclose", "error", "close"])
def test_a_failure_someone_listens_to_is_not_logged(
    listen: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Set right after the constructor: often after the refusal, which is remembered for it.
    ws = WebSocket(f"ws://127.0.0.1:{free_port()}/")
    if listen.startswith("on"):
        setattr(ws, listen, lambda e: None)
    else:
        ws.addEventListener(listen, lambda e: None)
    assert ws.upgrade(TIMEOUT) is False
    assert _lifetime.wait_idle(TIMEOUT)
    assert _warnings(caplog) == []


def test_refused_socket_without_onclose_logs_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    s = Socket(f"sock://127.0.0.1:{port}")
    s.ondata = print
    s.open()
    assert _lifetime.wait_idle(TIMEOUT)
    [line] = _warnings(caplog)
    assert f"sock://127.0.0.1:{port}" in line
    assert "refused" in line


def test_refused_socket_with_onclose_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    s = Socket(f"sock://127.0.0.1:{free_port()}")
    s.ondata = print
    s.onclose = lambda s: None
    s.open()
    assert _lifetime.wait_idle(TIMEOUT)
    assert _warnings(caplog) == []


def test_socket_repr_and_warning_hide_credentials(caplog: pytest.LogCaptureFixture) -> None:
    s = Socket(f"ws://user:secret@127.0.0.1:{free_port()}/")
    assert "secret" not in repr(s)  # before: <Socket ws://user:secret@...>
    s.ondata = print
    s.open()
    assert _lifetime.wait_idle(TIMEOUT)
    [line] = _warnings(caplog)
    assert "secret" not in line
    assert "***@" in line


@pytest.mark.parametrize("transports", [("websocket",), ("polling", "websocket")])
def test_refused_socketio_with_only_onconnect_logs_one_warning(
    transports: tuple[str, ...], caplog: pytest.LogCaptureFixture
) -> None:
    # Before: nothing was printed; repr() and the URL errors showed the password.
    port = free_port()
    sio = SocketIO(f"http://user:secret@127.0.0.1:{port}/", transports=transports)
    sio.onconnect = lambda: None
    assert "secret" not in repr(sio)
    assert _lifetime.wait_idle(TIMEOUT)
    [line] = _warnings(caplog)
    assert f"http://***@127.0.0.1:{port}/" in line
    assert "secret" not in line
    with pytest.raises(ValueError, match=r"\*\*\*@") as raised:
        SocketIO("http://user:secret@127.0.0.1:1/#fragment")
    assert "secret" not in str(raised.value)


def test_refused_socketio_with_onconnect_error_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sio = SocketIO(f"http://127.0.0.1:{free_port()}/")
    sio.onconnect_error = lambda data: None
    assert _lifetime.wait_idle(TIMEOUT)
    assert _warnings(caplog) == []


def test_a_script_that_ends_at_once_still_shows_the_warning(tmp_path: Any) -> None:
    script = tmp_path / "refused.py"
    script.write_text(
        "import logging\n"
        "from mesiboscript import WebSocket\n"
        "logging.basicConfig(format='%(levelname)s %(message)s')\n"
        f"ws = WebSocket('ws://127.0.0.1:{free_port()}/')\n"
        "ws.onopen = lambda: print('open')\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=TIMEOUT * 3
    )
    assert result.returncode == 0
    warnings = [x for x in result.stderr.splitlines() if x.startswith("WARNING")]
    assert len(warnings) == 1, result.stderr
    assert "refused" in warnings[0]
