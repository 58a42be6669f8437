"""Browser parity: replay Chromium's recorded scenarios against ``mesiboscript.WebSocket``.

Each ``tests/parity/fixtures/<scenario>.json`` was recorded by ``tests/parity/record.py`` from
headless Chromium against ``tests/rawserver.py``; it says what the client does (protocols offered,
close() after open or right after the constructor, a message sent on open), which rawserver script
the server runs, and what Chromium observed. This test needs no browser: it runs the same script on
a fresh rawserver and the same client actions with this library, and compares.

Comparison rules (what is compared, and what is not because it is not portable):

* Compared exactly: the event kinds in order; ``readyState`` read inside each handler; for
  ``close`` the code, reason and ``wasClean``; for ``message`` the data; for ``open`` the
  ``protocol`` and ``extensions``; ``readyState`` right after ``close()`` called inside the open
  handler. Every scenario runs three times, handlers attached right after the constructor in one
  style each: ``attr`` (the four ``on*``), ``listener`` (``addEventListener``), ``both``
  (listeners, then ``on*``; each must see every event, as the contract's late-handler rule says).
  The close event is the last event (events are compared after the server saw the TCP end).
* Compared as "not behind Chromium": ``readyState`` read on the test thread right after the
  constructor and right after a ``close()`` made there. A browser cannot change it before the
  script yields; here the I/O thread runs concurrently and may legitimately be further on
  (e.g. CLOSED already for a refused port), never earlier.
* Compared on the wire (rawserver's record): whether the client sent a close frame and its status
  code, and the kinds of frames it sent before it (a pong answering a ping, a message sent on
  open). *Not* compared: the close reason text (Chromium writes its own words, e.g. "Invalid UTF-8
  in text frame"), and whether the client ended TCP with FIN or RST.
* Compared on the request: the offered ``Sec-WebSocket-Extensions`` (Chromium's
  ``permessage-deflate; client_max_window_bits``), and on the wire whether each data frame was
  compressed (RSV1).
* Not compared: timings (``timing_ms`` is informational), and the wire of ``close()`` during
  CONNECTING, where Chromium sometimes reaches the server before aborting and sometimes not:
  there only "no close frame" is required.
* ``DIVERGENCES`` lists scenarios where this library follows RFC 6455 / Autobahn strict rather
  than Chromium, each with its reason; there the expected values are replaced as documented, and
  the table marks the row "divergence".

A parity table (scenario | chromium | mesiboscript | match) is printed in pytest's terminal
summary.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

import mesiboscript
from mesiboscript import WebSocket

from .helpers import TIMEOUT, free_port
from .rawserver import RawServer

FIXTURES = Path(__file__).resolve().parent / "parity" / "fixtures"

_FAIL_EVENTS = [
    {"type": "open", "readyState": 1, "protocol": "", "extensions": ""},
    {"type": "error", "readyState": 3},
    {"type": "close", "readyState": 3, "code": 1006, "reason": "", "wasClean": False},
]

#: Where this library deliberately differs from Chromium: scenario → (why, replacements).
#: Replacements may set "events", "wire_close_code" and/or "wire_kinds".
DIVERGENCES: dict[str, tuple[str, dict[str, Any]]] = {
    # RFC 6455 8.1 and Autobahn 6.x: invalid UTF-8 in a text message fails with 1007.
    # Chromium sends 1002 (the events are the same either way).
    "bad_utf8": ("RFC 6455 8.1: invalid UTF-8 -> 1007 (Chromium: 1002)", {"wire_close_code": 1007}),
    "bad_utf8_fragmented": (
        "RFC 6455 8.1: invalid UTF-8 -> 1007 (Chromium: 1002)",
        {"wire_close_code": 1007},
    ),
    "deflate_bad_utf8": (
        "RFC 6455 8.1: invalid UTF-8 -> 1007 (Chromium: 1002)",
        {"wire_close_code": 1007},
    ),
    "deflate_client_bits_8": (
        "RFC 7692 7.1.2.2: client_max_window_bits=8 -> sent uncompressed (Chromium compresses "
        "with zlib's 512-byte window, larger than the server allowed)",
        {"wire_kinds": ["text", "close"]},
    ),
    "bad_utf8_close_reason": (
        "RFC 6455 8.1 / Autobahn 7.5.1: invalid UTF-8 close reason -> 1007 (Chromium: 1002)",
        {"wire_close_code": 1007},
    ),
}
# Autobahn 7.9.x (strict) fails a client that accepts these close codes; Chromium accepts them.
for _code in (999, 1004, 1016, 2999, 5000):
    DIVERGENCES[f"close_{_code}_on_wire"] = (
        f"Autobahn 7.9.x: close code {_code} is invalid -> fail, 1002 "
        "(Chromium: clean close with that code)",
        {"events": _FAIL_EVENTS, "wire_close_code": 1002},
    )


def _fixtures() -> list[dict[str, Any]]:
    return [json.loads(p.read_text("utf-8")) for p in sorted(FIXTURES.glob("*.json"))]


FIXTURE_LIST = _fixtures()


# -- the parity table, printed in the terminal summary -------------------------------------------


class _ParityReport:
    """Collects one result per (scenario, style) and prints the table at the end of the run."""

    def __init__(self) -> None:
        # scenario -> style -> (chromium, mesiboscript, ok, divergence reason)
        self.results: dict[str, dict[str, tuple[str, str, bool, str]]] = {}

    def rows(self) -> list[tuple[str, str, str, str]]:
        out = []
        for name in sorted(self.results):
            by_style = self.results[name]
            first = next(iter(by_style.values()))
            mine = {r[1] for r in by_style.values()}
            if len(mine) == 1:
                mine_text = first[1]
            else:
                mine_text = "; ".join(f"{st}: {r[1]}" for st, r in by_style.items())
            failed = [st for st, r in by_style.items() if not r[2]]
            if failed:
                verdict = f"NO ({', '.join(failed)})"
            elif first[3]:
                verdict = "divergence (documented)"
            else:
                verdict = "yes"
            out.append((name, first[0], mine_text, verdict))
        return out

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        rows = self.rows()
        if not rows:
            return
        tr = terminalreporter
        tr.section("browser parity (Chromium fixtures vs mesiboscript)")
        version = FIXTURE_LIST[0]["chromium"]["version"] if FIXTURE_LIST else "?"
        tr.write_line(f"fixtures recorded with {version}; styles run: {', '.join(STYLES)}")
        w = max(len(r[0]) for r in rows)
        wc = max(len(r[1]) for r in rows)
        wm = max(len(r[2]) for r in rows)
        tr.write_line(f"{'scenario':{w}} | {'chromium':{wc}} | {'mesiboscript':{wm}} | match")
        tr.write_line(f"{'-' * w}-+-{'-' * wc}-+-{'-' * wm}-+------")
        counts: dict[str, int] = {}
        for name, c, m, verdict in rows:
            key = "NO" if verdict.startswith("NO") else verdict
            counts[key] = counts.get(key, 0) + 1
            tr.write_line(f"{name:{w}} | {c:{wc}} | {m:{wm}} | {verdict}")
        tr.write_line("parity: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))


@pytest.fixture(scope="module")
def parity_report(request: pytest.FixtureRequest) -> _ParityReport:
    pm = request.config.pluginmanager
    report = pm.get_plugin("mesiboscript-parity-report")
    if report is None:
        report = _ParityReport()
        pm.register(report, "mesiboscript-parity-report")
    return report


@pytest.fixture(scope="module")
def rawserver() -> Iterator[RawServer]:
    with RawServer(conn_timeout=TIMEOUT) as srv:
        yield srv


# -- running one scenario --------------------------------------------------------------------


def _answered_late(srv: RawServer, path: str) -> str:
    """The script at ``path``, answering the handshake only after a while (``path + "/late"``).

    A page runs ``close()`` right after ``new WebSocket()`` before any network event can happen;
    here the I/O thread may finish the handshake between those two statements. Holding the answer
    back gives close() the same head start (the server still answers if the client never gives
    up, and the test then sees the open).
    """
    late = path + "/late"
    if late not in srv.scripts:
        script = srv.scripts[path]
        srv.add(
            late,
            dataclasses.replace(
                script, handshake=dataclasses.replace(script.handshake, late=TIMEOUT)
            ),
        )
    return late


def _data(data: Any) -> dict[str, str]:
    if isinstance(data, str):
        return {"text": data}
    return {"binary": bytes(data).hex()}


STYLES = ("attr", "listener", "both")


class _Run:
    """One client run, handlers attached in one style right after the constructor.

    ``attr``: the four ``on*`` attributes; ``listener``: ``addEventListener`` for the four types;
    ``both``: listeners first, then ``on*`` (both must see every event). The client's action
    (send or close() on open) runs once, in the last handler attached for ``open``.
    """

    def __init__(self, ws: WebSocket, action: dict[str, Any], style: str) -> None:
        self.ws = ws
        self.action = action
        self.listener_events: list[dict[str, Any]] = []
        self.attr_events: list[dict[str, Any]] = []
        self.ready_after_close: Optional[int] = None
        self.closed = threading.Event()
        self.listener_closed = threading.Event()
        self.handler_errors: list[BaseException] = []
        self.style = style
        # In "both", the on* handlers go first: messages that arrive before any message handler
        # wait for the first one, so the on* sequence is complete; listeners added a moment
        # later get every open/error/close but may miss messages already delivered (on threads
        # the I/O thread can run between two statements; a browser's cannot).
        if style in ("attr", "both"):
            ws.onopen = self._onopen
            ws.onmessage = self._onmessage
            ws.onerror = self._onerror
            ws.onclose = self._onclose
        if style in ("listener", "both"):
            for t in ("open", "message", "error", "close"):
                ws.addEventListener(t, self._listener)

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.listener_events if self.style == "listener" else self.attr_events

    def _event(self, kind: str, ev: Any) -> dict[str, Any]:
        e: dict[str, Any] = {"type": kind, "readyState": int(self.ws.readyState)}
        if kind == "open":
            e["protocol"] = self.ws.protocol
            e["extensions"] = self.ws.extensions
        elif kind == "message":
            e["data"] = _data(ev.data)
        elif kind == "close":
            e["code"] = int(ev.code)
            e["reason"] = ev.reason
            e["wasClean"] = bool(ev.wasClean)
        return e

    def _act_on_open(self) -> None:
        try:
            if "send_on_open" in self.action:
                self.ws.send(self.action["send_on_open"])
            if "close_on_open" in self.action:
                self.ws.close(*self.action["close_on_open"])
                self.ready_after_close = int(self.ws.readyState)
        except BaseException as exc:  # reported by the test, not lost in the log
            self.handler_errors.append(exc)
            raise

    def _listener(self, ev: Any) -> None:
        self.listener_events.append(self._event(ev.type, ev))
        if ev.type == "close":
            self.listener_closed.set()
        if self.style == "listener":
            if ev.type == "open":
                self._act_on_open()
            elif ev.type == "close":
                self.closed.set()

    def _onopen(self) -> None:
        self.attr_events.append(self._event("open", None))
        self._act_on_open()

    def _onmessage(self, ev: Any) -> None:
        self.attr_events.append(self._event("message", ev))

    def _onerror(self, error: Any) -> None:
        self.attr_events.append(self._event("error", error))

    def _onclose(self, ev: Any) -> None:
        self.attr_events.append(self._event("close", ev))
        self.closed.set()


def _describe(events: list[dict[str, Any]]) -> str:
    parts = []
    for e in events:
        if e["type"] == "close":
            parts.append(f"close({e['readyState']}:{e['code']},{str(e['wasClean'])[0]})")
        else:
            parts.append(f"{e['type']}({e['readyState']})")
    return " ".join(parts)


def _wire_kinds(wire: Optional[dict[str, Any]]) -> list[str]:
    """Frame kinds the client sent up to its close frame (pings left out: timing-dependent)."""
    if wire is None:
        return []
    kinds = []
    for f in wire["frames"]:
        if f["opcode"] == "ping":
            continue
        kinds.append(f["opcode"] + ("+rsv1" if f.get("rsv") == 4 else ""))
        if f["opcode"] == "close":
            break
    return kinds


def _same_but_for_early_messages(late: list[Any], full: list[Any]) -> bool:
    """``late`` equals ``full`` except that it may lack messages delivered before it existed.

    ``readyState`` is left out: when the first handler of an event calls ``close()``, the ones
    after it see CLOSING, in a browser too (``full`` itself is compared with Chromium exactly).
    """
    late = [{k: v for k, v in e.items() if k != "readyState"} for e in late]
    full = [{k: v for k, v in e.items() if k != "readyState"} for e in full]
    others = [e for e in full if e["type"] != "message"]
    if [e for e in late if e["type"] != "message"] != others:
        return False
    late_messages = [e for e in late if e["type"] == "message"]
    full_messages = [e for e in full if e["type"] == "message"]
    return full_messages[len(full_messages) - len(late_messages) :] == late_messages


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("fx", FIXTURE_LIST, ids=[f["scenario"] for f in FIXTURE_LIST])
def test_parity(
    fx: dict[str, Any], style: str, rawserver: RawServer, parity_report: _ParityReport
) -> None:
    name = fx["scenario"]
    tag = f"{name}-{style}"
    client = fx["client"]
    why, override = DIVERGENCES.get(name, ("", {}))
    want_events = override.get("events", fx["events"])
    want_wire = fx["wire"]
    want_close_code = override.get("wire_close_code", want_wire and want_wire["close_code"])
    connecting_close = "close_immediately" in client["action"]

    if client["server_path"] is None:
        url = f"ws://127.0.0.1:{free_port()}/?s={tag}"
    elif connecting_close:
        url = rawserver.url(f"{_answered_late(rawserver, client['server_path'])}?s={tag}")
    else:
        url = rawserver.url(f"{client['server_path']}?s={tag}")
    ws = WebSocket(url, client["protocols"])
    initial = int(ws.readyState)
    run = _Run(ws, client["action"], style)
    if connecting_close:
        ws.close(*client["action"]["close_immediately"])
        run.ready_after_close = int(ws.readyState)
    closed = run.closed.wait(TIMEOUT)
    if style == "both":  # listeners added late get their events a moment after the on* ones
        closed = run.listener_closed.wait(TIMEOUT) and closed

    rec = None
    if client["server_path"] is not None and not connecting_close:
        rec = rawserver.wait_record(f"{client['server_path']}?s={tag}", TIMEOUT)
    elif connecting_close:
        # Chromium may or may not have reached the server: whatever did must be over.
        recs = [r for r in rawserver.records if r.target.endswith(f"?s={tag}")]
        for r in recs:
            assert r.done.wait(TIMEOUT)
        rec = recs[0] if recs else None

    got_events = run.events
    mismatches: list[str] = []
    if not closed:
        mismatches.append(f"no close event in {TIMEOUT}s")
    if run.handler_errors:
        mismatches.append(f"client action raised {run.handler_errors!r}")
    if got_events != want_events:
        mismatches.append(f"events: chromium {want_events} != mesiboscript {got_events}")
    if style == "both" and not _same_but_for_early_messages(run.listener_events, got_events):
        mismatches.append(
            f"addEventListener saw {run.listener_events}, on* handlers saw {got_events}"
        )
    # Read on this thread, not in a handler: the I/O thread runs concurrently and may be ahead of
    # the browser's single-threaded guarantee, never behind it.
    if not fx["initialReadyState"] <= initial <= 3:
        mismatches.append(f"readyState after constructor {initial} < {fx['initialReadyState']}")
    want_after_close = fx["readyStateAfterClose"]
    if want_after_close is None or "close_on_open" in client["action"]:
        ready_after_close_ok = run.ready_after_close == want_after_close  # in a handler: exact
    else:
        ready_after_close_ok = (
            run.ready_after_close is not None and want_after_close <= run.ready_after_close <= 3
        )
    if not ready_after_close_ok:
        mismatches.append(f"readyState after close() {run.ready_after_close} != {want_after_close}")
    if int(ws.readyState) != fx["finalReadyState"]:
        mismatches.append(f"final readyState {int(ws.readyState)} != {fx['finalReadyState']}")

    got_wire = rec.wire_summary() if rec is not None else None
    if connecting_close:
        if got_wire is not None and got_wire["close_frame"]:
            mismatches.append(f"close() while CONNECTING put a close frame on the wire: {got_wire}")
    elif want_wire is not None:
        assert got_wire is not None
        if got_wire["close_frame"] != want_wire["close_frame"] or (
            got_wire["close_code"] != want_close_code
        ):
            mismatches.append(
                f"wire close: chromium {want_wire['close_frame'] and want_close_code} "
                f"!= mesiboscript {got_wire['close_frame'] and got_wire['close_code']}"
            )
        want_kinds = override.get("wire_kinds", _wire_kinds(want_wire))
        if _wire_kinds(got_wire) != want_kinds:
            mismatches.append(f"wire frames: chromium {want_kinds} != {_wire_kinds(got_wire)}")
    if (
        rec is not None
        and not connecting_close
        and rec.offered_extensions != fx["request"]["extensions"]
    ):
        mismatches.append(
            f"offer: chromium {fx['request']['extensions']!r} != {rec.offered_extensions!r}"
        )

    def wire_text(close_frame: bool, code: Optional[int]) -> str:
        if not close_frame:
            return "wire none"
        return f"wire {'empty' if code is None else code}"

    c_wire = (
        "-"
        if want_wire is None or connecting_close
        else wire_text(want_wire["close_frame"], want_wire["close_code"])
    )
    m_wire = (
        "-"
        if got_wire is None or connecting_close
        else wire_text(got_wire["close_frame"], got_wire["close_code"])
    )
    parity_report.results.setdefault(name, {})[style] = (
        f"{_describe(fx['events'])} {c_wire}",
        f"{_describe(got_events)} {m_wire}",
        not mismatches,
        why,
    )
    assert not mismatches, f"{tag}: " + "; ".join(mismatches) + (f" [{why}]" if why else "")
    assert not mesiboscript.getOpenSessions()
