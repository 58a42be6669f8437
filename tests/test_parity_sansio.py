"""Browser parity without sockets: the Chromium fixtures replayed against the sans-I/O core.

``tests/test_parity.py`` replays each fixture against ``WebSocket`` over real sockets, with the
rawserver script the fixture names. Here the same script is turned into bytes and fed straight to
a :class:`~mesiboscript.sansio.ClientConnection`, playing both the server and the I/O layer:

* the server: its handshake answer is ``rawserver.handshake_response`` for the script's
  ``Handshake`` and the key in the client's request (the very bytes the real server sends); each
  ``Send`` is fed as it is; ``DropFin`` is the end of the stream (``connection_lost(None)``),
  ``DropRst`` a reset (``connection_lost(ConnectionResetError())``); ``WaitMessage`` needs a data
  frame from the client; ``ExpectClose`` (and the "respond" phase after the last action) needs the
  client's close frame, echoes its payload when the script says so, then ends the stream; pings
  are answered with pongs as the real server does.
* the I/O layer (``WebSocketLink``): what the core queues is "written" (parsed back into frames,
  each checked masked); held events are handled after the messages before them; a failed
  connection is ended by the client itself (``must_close_transport``); the client's action on
  open (``send_on_open``, ``close_on_open``) runs when ``Opened`` is delivered, and
  ``close_immediately`` runs before the request goes out.

Compared with the fixture: the event kinds and their fields (``Opened`` → open with protocol and
extensions, ``Message`` → message with its data, ``Closed`` → an error event first when
``failure`` is set, then close with code, reason and ``wasClean``); ``readyState`` after the
client's ``close()`` and at the end; the close frame the client sent, its code, and the kinds of
frames before it. Not compared: ``readyState`` inside handlers (the ``WebSocket`` face's job,
compared by ``test_parity.py``). ``DIVERGENCES`` from ``test_parity.py`` apply the same way.

Every scenario runs with the server's writes delivered three ways: one ``receive_data`` per
write (``writes``), all writes up to the next wait joined in one chunk (``joined``: the held
events path), and one byte at a time (``bytes``). Scenarios that need a real network are listed
in ``NEEDS_NETWORK`` with the reason and skipped. A table is printed in the terminal summary.
"""

from __future__ import annotations

from typing import Any, Optional

import pytest

from mesiboscript._validation import check_close
from mesiboscript.sansio import ClientConnection, Closed, Message, Opened, State
from mesiboscript.sansio.deflate import DeflateOptions

from .rawserver import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    SCRIPTS,
    ClientFrame,
    DropFin,
    DropRst,
    ExpectClose,
    Script,
    Send,
    Stall,
    WaitMessage,
    frame,
    handshake_response,
    parse_client_frames,
)
from .test_parity import DIVERGENCES, FIXTURE_LIST, _data, _wire_kinds

#: Scenarios that only make sense with a real network, and why.
NEEDS_NETWORK: dict[str, str] = {
    "refused": "nothing listens on the port: the connect fails in the transport; the core never "
    "sees a byte (its part, connection_lost while CONNECTING, is in test_sansio.py)",
}

MODES = ("writes", "joined", "bytes")


class _Stalled(Exception):
    """The replay reached a point where only a timer could end the connection."""


class Replay:
    """One fixture replayed against a fresh core, the server's writes delivered in one mode."""

    def __init__(self, fx: dict[str, Any], mode: str) -> None:
        client = fx["client"]
        self.action: dict[str, Any] = client["action"]
        self.script: Script = SCRIPTS[client["server_path"]]
        self.mode = mode
        self.conn = ClientConnection(
            resource=f"{client['server_path']}?s={fx['scenario']}",
            host="127.0.0.1",
            port=8765,
            secure=False,
            url=f"ws://127.0.0.1:8765{client['server_path']}",
            protocols=tuple(client["protocols"] or ()),
            max_size=1 << 20,
            compression=DeflateOptions(),  # Chromium offers permessage-deflate, as WebSocket does
        )
        self.events: list[dict[str, Any]] = []
        self.frames: list[ClientFrame] = []  # what the client wrote after its request
        self.read = 0  # how many of them the server has read
        self.request: Optional[bytes] = None
        self.pending: list[bytes] = []  # server writes not yet delivered
        self.ended = False
        self.ready_after_close: Optional[int] = None
        self.notes: list[str] = []

    # -- the I/O layer -----------------------------------------------------------------------

    def _flush(self) -> None:
        """Write what the core queued: the request, then frames (each must be masked)."""
        buf = bytearray()
        for data, _token in self.conn.data_to_send():
            chunk = b"".join(data) if isinstance(data, list) else bytes(data)
            if self.request is None and chunk.startswith(b"GET "):
                self.request = chunk
            else:
                buf += chunk
        frames = parse_client_frames(buf)
        assert not buf, "only whole frames are written"
        assert all(f.masked for f in frames), "clients mask every frame"
        self.frames += frames

    def _deliver(self, events: list[Any]) -> None:
        for event in events:
            if type(event) is Opened:
                self.events.append(
                    {"type": "open", "protocol": event.protocol, "extensions": event.extensions}
                )
                self._on_open()
            elif type(event) is Message:
                self.events.append({"type": "message", "data": _data(event.data)})
            else:
                raise AssertionError(f"unexpected event {event!r}")
        self._flush()
        if self.conn.has_held_events:
            self._deliver(self.conn.next_events())

    def _on_open(self) -> None:
        if "send_on_open" in self.action:
            assert self.conn.send_text(self.action["send_on_open"].encode("utf-8"))
        if "close_on_open" in self.action:
            self.conn.send_close(*check_close(*self._close_args("close_on_open")))
            self.ready_after_close = int(self.conn.state)

    def _close_args(self, key: str) -> tuple[Optional[int], str]:
        args = self.action[key]
        return (args[0] if args else None, args[1] if len(args) > 1 else "")

    def _receive(self, data: bytes) -> None:
        """Bytes from the server, as the transport hands them over (or into ``want``)."""
        pos = 0
        while pos < len(data) and not self.ended:
            want = self.conn.want
            if want is not None:
                n = min(len(want), len(data) - pos)
                want[:n] = data[pos : pos + n]
                del want
                events = self.conn.receive_into(n)
            else:
                n = len(data) - pos
                events = self.conn.receive_data(data[pos:])
            pos += n
            self._deliver(events)
            self._client_may_end()

    def _client_may_end(self) -> None:
        """A failed connection is ended by the client itself, after its queue is written."""
        if not self.ended and self.conn.must_close_transport:
            self._flush()
            self._end(None)

    def _end(self, exc: Optional[BaseException]) -> None:
        if self.ended:
            return
        self.ended = True
        closed: Closed = self.conn.connection_lost(exc)
        if closed.failure is not None:
            self.events.append({"type": "error"})
        self.events.append(
            {
                "type": "close",
                "code": closed.code,
                "reason": closed.reason,
                "wasClean": closed.was_clean,
            }
        )

    # -- the server ------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        self.pending.append(data)

    def _send_pending(self) -> None:
        """Deliver the server's writes so far, in this replay's mode."""
        writes, self.pending = self.pending, []
        if self.mode == "joined":
            writes = [b"".join(writes)] if writes else []
        elif self.mode == "bytes":
            writes = [bytes([b]) for w in writes for b in w]
        for w in writes:
            if self.ended:
                return
            self._receive(w)

    def _next_client_frame(self) -> Optional[ClientFrame]:
        if self.read < len(self.frames):
            self.read += 1
            return self.frames[self.read - 1]
        return None

    def _wait_message(self) -> bool:
        """rawserver's ``WaitMessage``: True once a data frame came; else the script ends."""
        self._send_pending()
        while True:
            f = self._next_client_frame()
            if f is None:
                if not self.ended:
                    raise _Stalled("the server waits for a message that never comes")
                return False
            if f.opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                return True
            if f.opcode == OP_PING:
                self._write(frame(OP_PONG, f.payload))
            elif f.opcode == OP_CLOSE:
                self._write(frame(OP_CLOSE, f.payload))
                self._send_pending()
                self._end(None)
                return False

    def _respond(self, echo_close: bool) -> None:
        """rawserver's respond phase: pongs; on the client's close, echo (maybe), then FIN."""
        self._send_pending()
        while True:
            f = self._next_client_frame()
            if f is None:
                if not self.ended:
                    raise _Stalled("the client never closes: only the server's timeout ends it")
                return
            if f.opcode == OP_PING:
                self._write(frame(OP_PONG, f.payload))
                self._send_pending()
            elif f.opcode == OP_CLOSE:
                if echo_close:
                    self._write(frame(OP_CLOSE, f.payload))
                    self._send_pending()
                self._end(None)
                return

    def run(self) -> None:
        conn = self.conn
        if "close_immediately" in self.action:
            # close() before the I/O thread even connected: the request never goes out.
            conn.send_close(*check_close(*self._close_args("close_immediately")))
            self.ready_after_close = int(conn.state)
            conn.send_request()
            self._flush()
            assert self.request is None
            self._client_may_end()
            return
        conn.send_request()
        self._flush()
        assert self.request is not None
        headers = {}
        for line in self.request.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        hs = self.script.handshake
        if hs.mode in ("silent", "none"):
            raise _Stalled("the server never answers: only the connect timeout ends it")
        offered = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",")]
        self._write(handshake_response(hs, headers["sec-websocket-key"], [p for p in offered if p]))
        if hs.mode == "status":
            self._send_pending()
            self._end(None)  # the server's FIN after the response
            return
        for action in self.script.actions:
            if self.ended:
                break
            if isinstance(action, Send):
                self._write(action.data)
            elif isinstance(action, DropFin):
                self._send_pending()
                self._end(None)
            elif isinstance(action, DropRst):
                self._send_pending()
                self._end(ConnectionResetError(104, "Connection reset by peer"))
            elif isinstance(action, WaitMessage):
                if not self._wait_message():
                    break
            elif isinstance(action, Stall):
                self._send_pending()
                if not self.ended:
                    raise _Stalled("the server stalls and the client has no reason to end")
                break
            else:
                assert isinstance(action, ExpectClose)
                self._respond(echo_close=action.reply)
                break
        else:
            self._respond(echo_close=True)

    def wire(self) -> dict[str, Any]:
        """What the client wrote, as ``ConnRecord.wire_summary`` shows it."""
        close = next((f for f in self.frames if f.opcode == OP_CLOSE), None)
        return {
            "frames": [f.describe() for f in self.frames],
            "close_frame": close is not None,
            "close_code": close.close_code if close else None,
        }


# -- the table -----------------------------------------------------------------------------------


class _SansioParityReport:
    """One row per scenario, printed at the end of the run."""

    def __init__(self) -> None:
        self.results: dict[str, dict[str, tuple[str, str, bool, str]]] = {}
        self.skipped: dict[str, str] = {}

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results and not self.skipped:
            return
        tr = terminalreporter
        tr.section("browser parity without sockets (Chromium fixtures vs the sans-I/O core)")
        tr.write_line(f"modes run: {', '.join(MODES)}")
        rows = []
        for name in sorted(self.results):
            by_mode = self.results[name]
            first = next(iter(by_mode.values()))
            failed = [m for m, r in by_mode.items() if not r[2]]
            mine = {r[1] for r in by_mode.values()}
            mine_text = (
                first[1]
                if len(mine) == 1
                else "; ".join(f"{m}: {r[1]}" for m, r in by_mode.items())
            )
            if failed:
                verdict = f"NO ({', '.join(failed)})"
            elif first[3]:
                verdict = "divergence (documented)"
            else:
                verdict = "yes"
            rows.append((name, first[0], mine_text, verdict))
        for name, why in sorted(self.skipped.items()):
            rows.append((name, "-", "-", f"skipped: {why.split(':')[0]}"))
        w = max(len(r[0]) for r in rows)
        wc = max(len(r[1]) for r in rows)
        wm = max(len(r[2]) for r in rows)
        tr.write_line(f"{'scenario':{w}} | {'chromium':{wc}} | {'sans-I/O core':{wm}} | match")
        tr.write_line(f"{'-' * w}-+-{'-' * wc}-+-{'-' * wm}-+------")
        counts: dict[str, int] = {}
        for name, c, m, verdict in rows:
            key = verdict.split(" (")[0] if not verdict.startswith("skipped") else "skipped"
            counts[key] = counts.get(key, 0) + 1
            tr.write_line(f"{name:{w}} | {c:{wc}} | {m:{wm}} | {verdict}")
        tr.write_line(
            "sans-I/O parity: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        )


@pytest.fixture(scope="module")
def sansio_report(request: pytest.FixtureRequest) -> _SansioParityReport:
    pm = request.config.pluginmanager
    report = pm.get_plugin("mesiboscript-sansio-parity-report")
    if report is None:
        report = _SansioParityReport()
        pm.register(report, "mesiboscript-sansio-parity-report")
    return report


# -- the test ------------------------------------------------------------------------------------


def _strip(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "readyState"} for e in events]


def _wire_text(wire: Optional[dict[str, Any]]) -> str:
    if wire is None:
        return "-"
    if not wire["close_frame"]:
        return "wire none"
    return f"wire {'empty' if wire['close_code'] is None else wire['close_code']}"


def _kinds(events: list[dict[str, Any]]) -> str:
    return " ".join(
        f"close({e['code']},{str(e['wasClean'])[0]})" if e["type"] == "close" else e["type"]
        for e in events
    )


def test_every_fixture_is_replayed_or_skipped_with_a_reason() -> None:
    names = {fx["scenario"] for fx in FIXTURE_LIST}
    assert set(NEEDS_NETWORK) <= names, "a skip names a scenario that no longer exists"
    for fx in FIXTURE_LIST:
        if fx["client"]["server_path"] is None:
            assert fx["scenario"] in NEEDS_NETWORK
        else:
            assert fx["client"]["server_path"] in SCRIPTS
    assert len(names) - len(NEEDS_NETWORK) >= 40


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fx", FIXTURE_LIST, ids=[f["scenario"] for f in FIXTURE_LIST])
def test_parity_without_sockets(
    fx: dict[str, Any], mode: str, sansio_report: _SansioParityReport
) -> None:
    name = fx["scenario"]
    if name in NEEDS_NETWORK:
        sansio_report.skipped[name] = NEEDS_NETWORK[name]
        pytest.skip(NEEDS_NETWORK[name])
    why, override = DIVERGENCES.get(name, ("", {}))
    want_events = _strip(override.get("events", fx["events"]))
    want_wire = fx["wire"]
    want_close_code = override.get("wire_close_code", want_wire and want_wire["close_code"])
    connecting_close = "close_immediately" in fx["client"]["action"]

    replay = Replay(fx, mode)
    mismatches: list[str] = []
    try:
        replay.run()
    except _Stalled as exc:
        mismatches.append(f"stalled: {exc}")
    got_events = replay.events
    got_wire = replay.wire()

    if got_events != want_events:
        mismatches.append(f"events: chromium {want_events} != core {got_events}")
    if replay.conn.state is not State.CLOSED or int(replay.conn.state) != fx["finalReadyState"]:
        mismatches.append(f"final state {replay.conn.state.name}")
    if replay.ready_after_close != fx["readyStateAfterClose"]:
        mismatches.append(
            f"readyState after close() {replay.ready_after_close} != {fx['readyStateAfterClose']}"
        )
    if connecting_close:
        if got_wire["close_frame"]:
            mismatches.append(f"close() while CONNECTING put a close frame on the wire: {got_wire}")
    elif want_wire is not None:
        if (got_wire["close_frame"], got_wire["close_code"]) != (
            want_wire["close_frame"],
            want_close_code,
        ):
            mismatches.append(
                f"wire close: chromium {want_wire['close_frame'] and want_close_code} "
                f"!= core {got_wire['close_frame'] and got_wire['close_code']}"
            )
        want_kinds = override.get("wire_kinds", _wire_kinds(want_wire))
        if _wire_kinds(got_wire) != want_kinds:
            mismatches.append(f"wire frames: chromium {want_kinds} != core {_wire_kinds(got_wire)}")

    shown_wire = None if connecting_close else want_wire
    sansio_report.results.setdefault(name, {})[mode] = (
        f"{_kinds(fx['events'])} {_wire_text(shown_wire)}",
        f"{_kinds(got_events)} {_wire_text(None if connecting_close else got_wire)}",
        not mismatches,
        why,
    )
    assert not mismatches, f"{name}-{mode}: " + "; ".join(mismatches) + (f" [{why}]" if why else "")
