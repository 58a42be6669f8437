#!/usr/bin/env bash
# Autobahn|Testsuite, strict: wstest's fuzzingserver (Python 2.7) against the client testee in
# tests/compliance/ (run with $PY), over ws:// and wss://, then the summary, which fails this step on
# any FAILED, NON-STRICT or wrongly closed case. Python 2.7 missing: say so loudly and skip.
# Cases 1-11 whole and a fixed subset of permessage-deflate's 12.*/13.* (run_autobahn.py --ci,
# CI_EXCLUDED says which); AUTOBAHN_FULL=1 runs every case (over an hour on 2 CPUs).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PY:-python3}"
PYENV_ROOT="${PYENV_ROOT:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")}"

py27=$(ls -d "$PYENV_ROOT"/versions/2.7.*/bin/python2.7 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$py27" ] || py27=$(command -v python2.7 || true)
# A pyenv shim can be on PATH without the version behind it: check that it runs.
if [ -z "$py27" ] || ! "$py27" -c 'import sys; assert sys.version_info[:2] == (2, 7)' 2>/dev/null; then
    echo "!!! SKIPPING AUTOBAHN: Python 2.7 not found (pyenv versions/2.7.* or python2.7 on PATH)" >&2
    exit 0
fi

# The 2.7 virtualenv is kept between runs on the same machine, keyed by the requirements it holds.
req=tests/compliance/requirements-autobahn.txt
home="${AUTOBAHN_HOME:-$HOME/.cache/mesiboscript-autobahn}"
stamp="$(sha256sum "$req" | cut -c1-16)-$("$py27" -c 'import sys; print(sys.version.split()[0])' 2>&1)"
venv="$home/py27-$stamp"
if [ ! -e "$venv/.complete" ]; then
    echo "autobahn: building a Python 2.7 virtualenv in $venv"
    rm -rf "$home" && mkdir -p "$home"
    # virtualenv 20.22 dropped Python 2.7 targets; the last release before it still makes them.
    "$PY" -m venv "$home/helper"
    "$home/helper/bin/python" -m pip install -q "virtualenv==20.21.1"
    "$home/helper/bin/python" -m virtualenv -q -p "$py27" "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" 2>&1 \
        | { grep -v "is ignored: it is neither a file nor a directory" || true; }
    "$venv/bin/wstest" --autobahnversion
    touch "$venv/.complete"
fi

reports=tests/compliance/reports
status=0
if [ "${AUTOBAHN_FULL:-0}" = 1 ]; then subset=(); budget=7200; else subset=(--ci); budget=900; fi
timeout $((2 * budget + 120)) "$PY" tests/compliance/run_autobahn.py --wstest "$venv/bin/wstest" \
    --outdir "$reports" --budget "$budget" "${subset[@]}" || status=$?
"$PY" tests/compliance/summarize.py "$reports/ws" "$reports/wss" || status=1
exit "$status"
