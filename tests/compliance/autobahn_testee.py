"""Autobahn|Testsuite client testee written with mesiboscript's public API only.

For every case the fuzzingserver offers, open ``/runCase?case=N&agent=AGENT``, echo each message
back with the same type, and wait for the close event; then ask the server to write its reports.
What the library did in each case (events, close code, the cause of a failure) is written to a JSON
file beside the reports, so a FAILED or NON-STRICT case can be diagnosed from the artefacts alone.

    python tests/compliance/autobahn_testee.py --url ws://127.0.0.1:9001 [--cafile ca.pem]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

from mesiboscript import CloseData, MessageData, WebSocket

# Autobahn's largest messages are 16 MiB (cases 9.1.6 and 9.2.6); the library's default limit is
# meant for hostile peers, not for a conformance run.
MAX_SIZE = 64 * 1024 * 1024


def _open(url: str, cafile: str | None, **handlers: Any) -> WebSocket:
    options: dict[str, Any] = {"max_size": MAX_SIZE, **handlers}
    if cafile is not None:
        options["cafile"] = cafile
    return WebSocket(url, **options)


def _case_count(base: str, cafile: str | None, timeout: float) -> int:
    """Ask the fuzzingserver how many cases it will run (it sends one text message)."""
    got: list[str] = []
    closed = threading.Event()
    ws = _open(base + "/getCaseCount", cafile)

    def onmessage(event: MessageData) -> None:
        got.append(str(event.data))

    ws.onmessage = onmessage
    ws.onclose = lambda event: closed.set()
    if not closed.wait(timeout) or not got:
        raise SystemExit(f"getCaseCount failed: {ws.last_error!r}")
    return int(got[0])


def _run_case(url: str, cafile: str | None, timeout: float) -> dict[str, Any]:
    """Echo one case and return what the library reported."""
    record: dict[str, Any] = {"events": [], "messages": 0}
    closed = threading.Event()
    started = time.monotonic()

    def onopen() -> None:
        record["events"].append("open")

    def onmessage(event: MessageData) -> None:
        # str -> text frame, bytes -> binary frame: the same type goes back.
        record["messages"] += 1
        event.target.send(event.data)

    def onerror(error: object) -> None:
        record["events"].append(f"error:{error!r}")

    def onclose(event: CloseData) -> None:
        record["events"].append("close")
        record["code"] = int(event.code)
        record["reason"] = event.reason
        record["wasClean"] = event.wasClean
        closed.set()

    # Handlers go in with the constructor, so they are in place before the first byte arrives.
    ws = _open(url, cafile, onopen=onopen, onmessage=onmessage, onerror=onerror, onclose=onclose)
    if not closed.wait(timeout):
        record["events"].append("TIMEOUT")
        ws.close()
        closed.wait(10)
    record["seconds"] = round(time.monotonic() - started, 3)
    if ws.last_error is not None:
        record["last_error"] = repr(ws.last_error)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="fuzzingserver URL, ws:// or wss://")
    parser.add_argument("--agent", default="mesiboscript")
    parser.add_argument("--cafile", help="CA bundle that signed the wss:// server certificate")
    parser.add_argument("--events", help="write what the library did in each case to this JSON")
    # Autobahn's own limit for its longest cases (12.*/13.* with 1000 messages of 128 KiB) is
    # 480 s; on a loaded machine over wss they took over 60 s. A real hang still ends the case.
    parser.add_argument("--case-timeout", type=float, default=540.0)
    args = parser.parse_args(argv)

    base = args.url.rstrip("/")
    count = _case_count(base, args.cafile, args.case_timeout)
    print(f"testee: {count} cases against {base}", flush=True)
    records: dict[str, Any] = {}
    timeouts = 0
    for case in range(1, count + 1):
        url = f"{base}/runCase?case={case}&agent={args.agent}"
        record = _run_case(url, args.cafile, args.case_timeout)
        records[str(case)] = record
        if "TIMEOUT" in record["events"]:
            timeouts += 1
            print(f"testee: case {case} did not close within {args.case_timeout}s", flush=True)
        if case % 50 == 0:
            print(f"testee: {case}/{count}", flush=True)

    # Writing the reports is itself a WebSocket connection that the server closes.
    closed = threading.Event()
    ws = _open(f"{base}/updateReports?agent={args.agent}", args.cafile)
    ws.onclose = lambda event: closed.set()
    if not closed.wait(120):
        print("testee: updateReports did not close", file=sys.stderr)
        return 1
    if args.events:
        with open(args.events, "w", encoding="utf-8") as fh:
            json.dump(records, fh, indent=1, sort_keys=True)
    print(f"testee: done, {timeouts} case(s) timed out", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
