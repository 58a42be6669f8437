"""Run the Autobahn|Testsuite fuzzingserver against the client testee, over ws:// and wss://.

The fuzzingserver (``wstest``, a Python 2.7 program) listens on a free loopback port in strict mode
(``failByDrop``); the testee runs with this Python. For wss:// a CA and a server certificate are
made at run time with trustme and the testee trusts that CA through ``cafile=``. Reports land in
``OUTDIR/ws`` and ``OUTDIR/wss`` (``index.json`` each); summarize.py reads them.

    python tests/compliance/run_autobahn.py --wstest /path/to/py27/bin/wstest
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # the repository root: the tests package

from tests.helpers import Certificates, free_port  # noqa: E402

# Every case runs, permessage-deflate's 12.* and 13.* included; ``--exclude`` can leave some out.
EXCLUDED: list[str] = []
# ``--ci``: the fixed subset of 12.*/13.* that CI runs. Each case of 12.x/13.x sends 1000 compressed
# messages; the fuzzingserver (Python 2.7) needs minutes for the large ones. CI keeps, in every one
# of the 12 groups, the sizes 16 B to 4 KiB whole (cases .1-.5) and 8 KiB in 256-byte fragments
# (.11): every permessage-deflate setting of 12/13 and fragmented compressed messages.
CI_EXCLUDED = [f"{group}.*.{n}" for group in (12, 13) for n in range(6, 19) if n != 11]


def _wait_listening(port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"wstest exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)  # polling a port that another process opens; no event to wait on
    raise RuntimeError(f"wstest did not listen on port {port}")


def _make_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1, as PEM files in ``directory``."""
    certs = Certificates()
    try:
        files = certs.pem_files(directory, "127.0.0.1", "localhost")
    finally:
        certs.close()  # the CA's own folder; the files written here stay
    return Path(files["ca"]), Path(files["cert"]), Path(files["key"])


def run_one(
    transport: str,
    wstest: str,
    testee: list[str],
    outdir: Path,
    cases: list[str],
    budget: float,
    exclude: list[str] = EXCLUDED,
) -> int:
    """Run one fuzzingserver + testee pair; return the testee's exit code."""
    if outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True)
    port = free_port()
    url = f"{transport}://127.0.0.1:{port}"
    spec: dict[str, object] = {
        "url": url,
        "outdir": str(outdir),
        "options": {"failByDrop": True},
        "cases": cases,
        "exclude-cases": exclude,
        "exclude-agent-cases": {},
    }
    testee_args = ["--url", url, "--events", str(outdir / "testee-events.json")]
    if transport == "wss":
        ca_path, cert_path, key_path = _make_certificate(outdir)
        spec["cert"] = str(cert_path)
        spec["key"] = str(key_path)
        testee_args += ["--cafile", str(ca_path)]
    spec_path = outdir / "fuzzingserver.json"
    spec_path.write_text(json.dumps(spec, indent=1), encoding="utf-8")

    log = open(outdir / "wstest.log", "wb")  # noqa: SIM115 (closed in finally)
    server = subprocess.Popen(
        [wstest, "-m", "fuzzingserver", "-s", str(spec_path), "-u", "0"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=str(outdir),
    )
    started = time.monotonic()
    try:
        _wait_listening(port, server, time.monotonic() + 60)
        print(f"autobahn {transport}: fuzzingserver on {url}", flush=True)
        try:
            code = subprocess.call(testee + testee_args, timeout=budget)
        except subprocess.TimeoutExpired:
            print(f"!!! autobahn {transport}: testee exceeded {budget:.0f}s", flush=True)
            code = 124
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    took = time.monotonic() - started
    print(f"autobahn {transport}: testee exit {code} after {took:.0f}s", flush=True)
    if code != 0:
        tail = (outdir / "wstest.log").read_text(errors="replace").splitlines()[-20:]
        print("\n".join(f"  wstest| {line}" for line in tail), flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wstest", required=True, help="wstest from the Python 2.7 virtualenv")
    parser.add_argument("--python", default=sys.executable, help="Python that runs the testee")
    parser.add_argument(
        "--testee", default=str(HERE / "autobahn_testee.py"), help="testee script to run"
    )
    parser.add_argument("--outdir", default=str(HERE / "reports"))
    parser.add_argument("--transport", choices=["ws", "wss"], action="append")
    parser.add_argument("--cases", nargs="+", default=["*"], help="e.g. 1.* 6.4.*")
    parser.add_argument("--exclude", nargs="*", default=EXCLUDED, help="cases to leave out")
    parser.add_argument(
        "--ci", action="store_true", help="leave out the slow 12.*/13.* cases (CI_EXCLUDED)"
    )
    parser.add_argument("--budget", type=float, default=420.0, help="seconds per transport")
    args = parser.parse_args(argv)

    testee = [args.python, args.testee]
    worst = 0
    for transport in args.transport or ["ws", "wss"]:
        code = run_one(
            transport,
            args.wstest,
            testee,
            Path(args.outdir).resolve() / transport,
            args.cases,
            args.budget,
            [*args.exclude, *(CI_EXCLUDED if args.ci else [])],
        )
        worst = worst or code
    return worst


if __name__ == "__main__":
    sys.exit(main())
