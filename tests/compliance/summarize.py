"""Summarise Autobahn|Testsuite reports: one line per run, and every bad case in detail.

    python tests/compliance/summarize.py tests/compliance/reports/ws tests/compliance/reports/wss

Each argument is a fuzzingserver report directory (with ``index.json``); the run's label is the
directory's name. Exits 1 if any case is FAILED or NON-STRICT, if a case's closing behaviour is
wrong (wrong close code, unclean or failed close), or if the report is missing cases the testee
ran. INFORMATIONAL is fine; UNIMPLEMENTED would mean a permessage-deflate case was not agreed.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

BEHAVIORS = ["OK", "NON-STRICT", "INFORMATIONAL", "FAILED", "UNIMPLEMENTED"]
BAD = {"FAILED", "NON-STRICT", "UNIMPLEMENTED"}  # 12.*/13.* need permessage-deflate agreed
# "FAILED BY CLIENT" and "INFORMATIONAL" are acceptable closing behaviours.
BAD_CLOSE = {"FAILED", "UNCLEAN", "WRONG CODE"}


def _case_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case_id.split("."))


def _describe(directory: Path, case_id: str, entry: dict[str, Any], testee: dict[str, Any]) -> str:
    """What the case expected and what happened, from its report and the testee's record."""
    lines = [f"  {case_id}: {entry['behavior']} / close {entry['behaviorClose']}"]
    try:
        report = json.loads((directory / entry["reportfile"]).read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError) as exc:
        lines.append(f"    (no case report: {exc})")
        return "\n".join(lines)
    description = " ".join(str(report.get("description", "")).split())
    lines.append(f"    case: {description}")
    lines.append(f"    expectation: {' '.join(str(report.get('expectation', '')).split())}")
    lines.append(f"    result: {report.get('result')} | {report.get('resultClose')}")
    received = json.dumps(report.get("received"))
    if len(received) > 300:
        received = received[:300] + "..."
    lines.append(f"    expected events: {json.dumps(report.get('expected'))[:300]}")
    lines.append(f"    received events: {received}")
    lines.append(
        "    close: expected {} | remote code {} reason {!r}, wasClean {}, closedByMe {},"
        " droppedByMe {}".format(
            report.get("expectedClose"),
            report.get("remoteCloseCode"),
            report.get("remoteCloseReason"),
            report.get("wasClean"),
            report.get("closedByMe"),
            report.get("droppedByMe"),
        )
    )
    record = testee.get(str(report.get("case")))
    if record is not None:
        lines.append(f"    library did: {json.dumps(record, sort_keys=True)}")
    return "\n".join(lines)


def summarize(directory: Path) -> bool:
    """Print the run's summary line and its bad cases; return True if the run is clean."""
    label = directory.name
    index_path = directory / "index.json"
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"autobahn {label}: FAILED, no report ({exc})")
        return False
    testee: dict[str, Any] = {}
    events_path = directory / "testee-events.json"
    if events_path.exists():
        testee = json.loads(events_path.read_text(encoding="utf-8"))
    if not index:
        print(f"autobahn {label}: FAILED, empty report")
        return False

    ok = True
    for agent, cases in sorted(index.items()):
        counts = Counter(entry["behavior"] for entry in cases.values())
        bad = [c for c, e in cases.items() if e["behavior"] in BAD]
        bad_close = [
            c
            for c, e in cases.items()
            if e["behavior"] not in BAD and e["behaviorClose"] in BAD_CLOSE
        ]
        parts = [f"{counts.get(b, 0)} {b}" for b in BEHAVIORS]
        parts += [f"{n} {b}" for b, n in sorted(counts.items()) if b not in BEHAVIORS]
        if bad_close:
            parts.append(f"{len(bad_close)} BAD CLOSE")
        suffix = "" if len(index) == 1 else f" [{agent}]"
        print(f"autobahn {label}{suffix}: {', '.join(parts)}")
        unknown = [b for b in counts if b not in BEHAVIORS]
        if testee and len(cases) != len(testee):
            print(f"  the testee ran {len(testee)} cases but the report has {len(cases)}")
            ok = False
        for case_id in sorted(bad + bad_close, key=_case_key):
            print(_describe(directory, case_id, cases[case_id], testee))
        if bad or bad_close or unknown:
            ok = False
    return ok


def main(argv: list[str] | None = None) -> int:
    directories = [Path(arg) for arg in (argv if argv is not None else sys.argv[1:])]
    if not directories:
        print(__doc__)
        return 2
    results = [summarize(directory) for directory in directories]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
