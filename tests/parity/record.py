"""Record Chromium's WebSocket behaviour for each parity scenario into JSON fixtures.

Runs headless Chromium (Debian's ``chromium``) on a page served from a local HTTP server. The page
opens ``new WebSocket(url)`` against ``tests/rawserver.py`` for every scenario in turn, records
each event (type, readyState inside the listener, code/reason/wasClean for close, data for
message, protocol/extensions for open) and readyState right after construction, and posts the
result back. The harness adds what the client put on the wire (rawserver's record) and the console
message Chromium printed, and writes ``tests/parity/fixtures/<scenario>.json``.

    python tests/parity/record.py              # all scenarios
    python tests/parity/record.py --only bad_utf8 drop_fin
    python tests/parity/record.py --list

Only the standard library and tests/rawserver.py (with tests/helpers.py) are needed (no core, no
npm, no browser download).
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # the repository root: the tests package

from tests.helpers import free_port  # noqa: E402
from tests.rawserver import DEFLATE_INVALID, RawServer  # noqa: E402

FIXTURES = HERE / "fixtures"

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-extensions",
    "--disable-default-apps",
    "--enable-logging=stderr",
    "--v=0",
]


def sc(
    name: str,
    path: Optional[str],
    doc: str,
    *,
    protocols: Optional[list[str]] = None,
    close_on_open: Optional[list[Any]] = None,
    close_immediately: Optional[list[Any]] = None,
    send_on_open: Optional[str] = None,
) -> dict[str, Any]:
    """One scenario: the server path (None: a refused port) and what the client does."""
    action: dict[str, Any] = {}
    if close_on_open is not None:
        action["close_on_open"] = close_on_open
    if close_immediately is not None:
        action["close_immediately"] = close_immediately
    if send_on_open is not None:
        action["send_on_open"] = send_on_open
    return {
        "name": name,
        "doc": doc,
        "server_path": path,
        "protocols": protocols,
        "action": action,
    }


SCENARIOS: list[dict[str, Any]] = [
    # Client-initiated close.
    sc("client_close_noargs", "/echo_close", "close() after open", close_on_open=[]),
    sc("client_close_1000_bye", "/echo_close", 'close(1000, "bye")', close_on_open=[1000, "bye"]),
    sc("client_close_4000_x", "/echo_close", 'close(4000, "x")', close_on_open=[4000, "x"]),
    # Server-initiated close.
    sc("server_close_1000", "/close_1000", "server sends close 1000 'bye'"),
    sc("server_close_4001", "/close_4001", "server sends close 4001 'custom reason'"),
    sc("messages_then_close", "/messages_then_close", "text, binary, then close 1000 'done'"),
    sc("server_close_empty", "/close_empty", "server sends an empty close frame"),
    sc("server_close_then_fin", "/close_then_drop", "close 1000 'bye' then FIN at once"),
    sc("ping_then_close", "/ping_then_close", "ping (client pongs), then close 1000 'bye'"),
    sc("close_twice", "/close_twice", "two close frames back to back"),
    sc("text_after_close", "/text_after_close", "close 1000 'bye', then a text frame"),
    # TCP drops while OPEN.
    sc("tcp_drop_fin", "/drop_fin", "FIN right after the 101, no close frame"),
    sc(
        "tcp_drop_fin_after_message",
        "/drop_fin_after_message",
        "client sends 'ready' on open; server FINs",
        send_on_open="ready",
    ),
    sc(
        "tcp_drop_rst_after_message",
        "/drop_rst_after_message",
        "client sends 'ready' on open; server RSTs",
        send_on_open="ready",
    ),
    # Protocol violations after the handshake.
    sc("reserved_opcode", "/reserved_opcode", "data frame with reserved opcode 3"),
    sc("reserved_control_opcode", "/reserved_control_opcode", "frame with reserved opcode 0xB"),
    sc("rsv_bits", "/rsv_bits", "text frame with RSV1 set, no extension"),
    sc("masked_frame", "/masked_frame", "masked server frame"),
    sc("bad_utf8", "/bad_utf8", "text frame with invalid UTF-8"),
    sc("bad_utf8_fragmented", "/bad_utf8_fragmented", "invalid UTF-8 in a first fragment"),
    sc("bad_utf8_close_reason", "/bad_utf8_close_reason", "close 1000 with invalid UTF-8 reason"),
    sc("close_1byte", "/close_1byte", "close frame with a 1-byte payload"),
    sc("close_1005_on_wire", "/close_1005", "close code 1005 on the wire"),
    sc("close_1006_on_wire", "/close_1006", "close code 1006 on the wire"),
    sc("close_1015_on_wire", "/close_1015", "close code 1015 on the wire"),
    sc("close_999_on_wire", "/close_999", "close code 999 on the wire"),
    sc("close_1004_on_wire", "/close_1004", "close code 1004 on the wire"),
    sc("close_1016_on_wire", "/close_1016", "close code 1016 on the wire"),
    sc("close_2999_on_wire", "/close_2999", "close code 2999 on the wire"),
    sc("close_5000_on_wire", "/close_5000", "close code 5000 on the wire"),
    sc("fragmented_ping", "/fragmented_ping", "ping with FIN clear (fragmented control)"),
    sc("long_ping", "/long_ping", "ping with a 126-byte payload"),
    sc("cont_without_start", "/cont_without_start", "continuation frame, no message started"),
    sc("garbage", "/garbage", "garbage bytes after the 101"),
    # Handshake failures.
    sc("refused", None, "nothing listening on the port"),
    sc("status_200", "/status_200", "HTTP 200 instead of 101"),
    sc("status_403", "/status_403", "HTTP 403 instead of 101"),
    sc("bad_accept", "/bad_accept", "101 with a wrong Sec-WebSocket-Accept"),
    sc("unoffered_protocol", "/unoffered_protocol", "no protocol offered, server picks one"),
    sc(
        "unoffered_protocol_other",
        "/unoffered_protocol",
        "'chat' offered, server picks 'unoffered'",
        protocols=["chat"],
    ),
    sc(
        "protocol_selected",
        "/echo_close",
        "'chat','v2' offered, server picks 'chat'; close() on open",
        protocols=["chat", "v2"],
        close_on_open=[],
    ),
    sc("unoffered_extension", "/unoffered_extension", "101 with an extension never offered"),
    # permessage-deflate: accepted responses, invalid ones, and the extension's frame rules.
    sc("deflate_messages", "/deflate_messages", "compressed text x2, binary, plain text, close"),
    sc("deflate_fragmented", "/deflate_fragmented", "compressed text in 3 fragments, ping between"),
    sc(
        "deflate_no_context",
        "/deflate_no_context",
        "both no_context_takeover; client sends on open",
        send_on_open="ready ready ready ready",
    ),
    sc(
        "deflate_windows",
        "/deflate_windows",
        'server_max_window_bits="10"; client_max_window_bits=10; client sends on open',
        send_on_open="ready ready ready ready",
    ),
    sc(
        "deflate_client_bits_8",
        "/deflate_client_bits_8",
        "client_max_window_bits=8; client sends on open",
        send_on_open="ready ready ready ready",
    ),
    sc("deflate_rsv1_cont", "/deflate_rsv1_cont", "RSV1 on a continuation frame"),
    sc("deflate_rsv1_ping", "/deflate_rsv1_ping", "RSV1 on a ping"),
    sc("deflate_rsv2", "/deflate_rsv2", "RSV2 set with permessage-deflate agreed"),
    sc("deflate_bad_data", "/deflate_bad_data", "RSV1 text frame that is not deflate data"),
    sc("deflate_bad_utf8", "/deflate_bad_utf8", "compressed text with invalid UTF-8"),
    *(
        sc(path[1:], path, f"101 with Sec-WebSocket-Extensions: {value!r}")
        for path, value in DEFLATE_INVALID.items()
    ),
    # close() while CONNECTING.
    sc(
        "close_during_connecting",
        "/slowloris",
        "close() right after the constructor; server never answers",
        close_immediately=[],
    ),
    sc(
        "close_4000_during_connecting",
        "/slowloris",
        'close(4000, "x") right after the constructor; server never answers',
        close_immediately=[4000, "x"],
    ),
    sc(
        "close_during_connecting_answered",
        "/echo_close",
        "close() right after the constructor; server would answer correctly",
        close_immediately=[],
    ),
]

PAGE = r"""<!doctype html>
<meta charset="utf-8"><title>mesiboscript parity</title>
<script>
function hex(buf) {
  return Array.from(new Uint8Array(buf)).map(b => b.toString(16).padStart(2, "0")).join("");
}
function runOne(s) {
  return new Promise(resolve => {
    const out = {name: s.name, events: [], timing_ms: []};
    const t0 = performance.now();
    let ws;
    try {
      ws = s.protocols === null ? new WebSocket(s.url) : new WebSocket(s.url, s.protocols);
    } catch (e) {
      out.constructError = e.name + ": " + e.message;
      resolve(out);
      return;
    }
    ws.binaryType = "arraybuffer";
    out.initialReadyState = ws.readyState;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      out.finalReadyState = ws.readyState;
      resolve(out);
    };
    const rec = (ev) => {
      const e = {type: ev.type, readyState: ws.readyState};
      if (ev.type === "open") { e.protocol = ws.protocol; e.extensions = ws.extensions; }
      if (ev.type === "message") {
        e.data = typeof ev.data === "string" ? {text: ev.data} : {binary: hex(ev.data)};
      }
      if (ev.type === "close") { e.code = ev.code; e.reason = ev.reason; e.wasClean = ev.wasClean; }
      out.events.push(e);
      out.timing_ms.push(Math.round(performance.now() - t0));
      if (ev.type === "open") {
        if (s.action.send_on_open !== undefined) ws.send(s.action.send_on_open);
        if (s.action.close_on_open !== undefined) {
          ws.close(...s.action.close_on_open);
          out.readyStateAfterClose = ws.readyState;
        }
      }
      // Late events (there must be none) have 500 ms to show up.
      if (ev.type === "close") setTimeout(finish, 500);
    };
    for (const t of ["open", "message", "error", "close"]) ws.addEventListener(t, rec);
    setTimeout(() => { out.timedOut = true; finish(); }, s.timeout_ms);
    if (s.action.close_immediately !== undefined) {
      ws.close(...s.action.close_immediately);
      out.readyStateAfterClose = ws.readyState;
    }
  });
}
(async () => {
  const plan = await (await fetch("/plan")).json();
  for (const s of plan) {
    console.log("PARITY-START " + s.name);
    const out = await runOne(s);
    out.userAgent = navigator.userAgent;
    await fetch("/result", {method: "POST", body: JSON.stringify(out)});
  }
  await fetch("/done", {method: "POST", body: "{}"});
})();
</script>
"""


class _State:
    def __init__(self, plan: list[dict[str, Any]]) -> None:
        self.plan = plan
        self.results: dict[str, dict[str, Any]] = {}
        self.done = threading.Event()
        self.progress = threading.Condition()


def _handler(state: _State) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, body: bytes, ctype: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/plan":
                self._reply(json.dumps(state.plan).encode(), "application/json")
            elif self.path.startswith("/run.html"):
                self._reply(PAGE.encode(), "text/html; charset=utf-8")
            else:
                self.send_error(404)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path == "/result":
                out = json.loads(body)
                with state.progress:
                    state.results[out["name"]] = out
                    state.progress.notify_all()
                print(f"  {out['name']}: {[e['type'] for e in out['events']]}", flush=True)
            elif self.path == "/done":
                state.done.set()
            self._reply(b"{}", "application/json")

    return Handler


class Chromium:
    """Headless Chromium driven over ``--remote-debugging-pipe`` (CDP on fds 3 and 4).

    CDP is used for two things only: to navigate once the console is being listened to, and to
    collect the console messages Chromium itself writes for a failed WebSocket (the reason it
    gives, which a page cannot read).
    """

    def __init__(self, binary: str, profile: str, log: Any) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # A tiny exec shim puts the pipe ends on fds 3 and 4, where Chromium expects them.
        shim = (
            "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
            "os.execv(sys.argv[3], sys.argv[3:])"
        )
        cmd = [
            sys.executable,
            "-c",
            shim,
            str(to_child_r),
            str(from_child_w),
            binary,
            *CHROMIUM_FLAGS,
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "about:blank",
        ]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=log,
            pass_fds=(to_child_r, from_child_w),
            start_new_session=True,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self.log_entries: list[str] = []
        self._next_id = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._attached: list[str] = []
        self._reader = threading.Thread(target=self._read, name="cdp-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_child, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                with self._cond:
                    if "id" in msg:
                        self._replies[msg["id"]] = msg
                    elif msg.get("method") == "Log.entryAdded":
                        self.log_entries.append(msg["params"]["entry"].get("text", ""))
                    self._cond.notify_all()

    def call(self, method: str, params: Optional[dict[str, Any]] = None, session: str = "") -> Any:
        with self._cond:
            self._next_id += 1
            mid = self._next_id
        msg: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._replies, 30):
                raise TimeoutError(f"CDP {method}: no reply")
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise RuntimeError(f"CDP {method}: {reply['error']}")
        return reply.get("result", {})

    def open(self, url: str) -> None:
        """Attach to the first page, listen to its console, then navigate to ``url``."""
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        session = self.call(
            "Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}
        )
        sid = session["sessionId"]
        self.call("Log.enable", session=sid)
        self.call("Page.navigate", {"url": url}, session=sid)

    def stop(self) -> None:
        """End the process group this object started, then close the pipes."""
        try:
            with contextlib.suppress(OSError, TimeoutError, RuntimeError):
                self.call("Browser.close")
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # helpers (zygote) that outlived the browser
        os.close(self._to_child)
        self._reader.join(10)
        os.close(self._from_child)


def chromium_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60)
    return out.stdout.strip()


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--only", nargs="*", help="scenario names to record (default: all)")
    ap.add_argument("--out", default=str(FIXTURES), help="fixture folder")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    ap.add_argument("--timeout", type=float, default=20.0, help="per-scenario timeout (s)")
    ap.add_argument("--keep-log", metavar="FILE", help="save Chromium's stderr log there")
    args = ap.parse_args(argv)

    if args.list:
        for s in SCENARIOS:
            print(f"{s['name']:34} {s['server_path'] or '(refused port)':26} {s['doc']}")
        return 0
    if not os.path.exists(args.chromium):
        print(
            f"record.py: no Chromium at {args.chromium}; `apt-get install -y chromium`",
            file=sys.stderr,
        )
        return 2
    chosen = [s for s in SCENARIOS if not args.only or s["name"] in args.only]
    unknown = set(args.only or ()) - {s["name"] for s in SCENARIOS}
    if unknown:
        print(f"record.py: unknown scenarios {sorted(unknown)}", file=sys.stderr)
        return 2
    version = chromium_version(args.chromium)
    print(f"recording {len(chosen)} scenarios with {version}", flush=True)

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    with RawServer(conn_timeout=args.timeout) as srv:
        plan = []
        for s in chosen:
            if s["server_path"] is None:
                url = f"ws://127.0.0.1:{free_port()}/?s={s['name']}"
            else:
                url = srv.url(f"{s['server_path']}?s={s['name']}")
            plan.append(
                {
                    "name": s["name"],
                    "url": url,
                    "protocols": s["protocols"],
                    "action": s["action"],
                    "timeout_ms": int(args.timeout * 1000),
                }
            )
        state = _State(plan)
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
        httpd.daemon_threads = True
        ht = threading.Thread(target=httpd.serve_forever, name="parity-http", daemon=True)
        ht.start()
        page = f"http://127.0.0.1:{httpd.server_address[1]}/run.html"
        profile = tempfile.mkdtemp(prefix="parity-chromium-")
        log_path = Path(profile + ".log")
        try:
            with open(log_path, "wb") as log:
                browser = Chromium(args.chromium, profile, log)
                try:
                    browser.open(page)
                    budget = len(plan) * (args.timeout + 5) + 60
                    if not state.done.wait(budget):
                        print(
                            "record.py: Chromium did not finish the plan in time", file=sys.stderr
                        )
                finally:
                    browser.stop()
        finally:
            httpd.shutdown()
            httpd.server_close()
            ht.join(10)
            shutil.rmtree(profile, ignore_errors=True)
        if args.keep_log:
            shutil.copy(log_path, args.keep_log)
        log_path.unlink()
        console_lines = [
            _console_text(e) for e in browser.log_entries if "WebSocket connection to" in e
        ]

        # Every connection rawserver saw must be over before its record is read.
        deadline = time.monotonic() + args.timeout
        for rec in list(srv.records):
            rec.done.wait(max(0.0, deadline - time.monotonic()))

        missing = [s["name"] for s in chosen if s["name"] not in state.results]
        for s in chosen:
            res = state.results.get(s["name"])
            if res is None:
                continue
            target = f"{s['server_path']}?s={s['name']}"
            recs = [r for r in srv.records if r.target == target]
            console = [c for c in console_lines if f"s={s['name']}'" in c]
            fixture = {
                "scenario": s["name"],
                "doc": s["doc"],
                "client": {
                    "server_path": s["server_path"],
                    "protocols": s["protocols"],
                    "action": s["action"],
                },
                "chromium": {"version": version, "user_agent": res.get("userAgent", "")},
                "constructError": res.get("constructError"),
                "initialReadyState": res.get("initialReadyState"),
                "readyStateAfterClose": res.get("readyStateAfterClose"),
                "finalReadyState": res.get("finalReadyState"),
                "timedOut": bool(res.get("timedOut", False)),
                "events": res["events"],
                "timing_ms": res["timing_ms"],
                "console": console,
                "request": (
                    {
                        "protocols": recs[0].offered_protocols,
                        "extensions": recs[0].offered_extensions,
                    }
                    if recs
                    else None
                ),
                "wire": recs[0].wire_summary() if recs else None,
                "connections": len(recs),
            }
            path = out_dir / f"{s['name']}.json"
            path.write_text(json.dumps(fixture, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print_table(out_dir, [s["name"] for s in chosen])
    if missing:
        print(f"record.py: no result for {missing}", file=sys.stderr)
        return 1
    return 0


def _console_text(text: str) -> str:
    """A console message without the per-run port numbers."""
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)


def print_table(out_dir: Path, names: list[str]) -> None:
    print(f"\n{'scenario':34} {'events (readyState)':44} {'close':22} wire")
    for n in names:
        p = out_dir / f"{n}.json"
        if not p.exists():
            continue
        f = json.loads(p.read_text("utf-8"))
        evs = " ".join(f"{e['type']}({e['readyState']})" for e in f["events"])
        close = next((e for e in f["events"] if e["type"] == "close"), None)
        cl = f"{close['code']} {close['wasClean']} {close['reason']!r}" if close else "-"
        wire = f["wire"]
        w = "-" if wire is None else f"{wire['close_code'] if wire['close_frame'] else 'none'}"
        print(f"{n:34} {evs:44} {cl:22} {w}")


if __name__ == "__main__":
    sys.exit(main())
