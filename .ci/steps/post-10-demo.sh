#!/usr/bin/env bash
# The README's first command, run exactly as written in a fresh clone: it must install the package
# and print the echoed message (the demo needs no network beyond the install). Also checked: the
# demo with $PY (the test venv) and through the `mesiboscript` console script.
set -euo pipefail
: "${PY:?PY must point at the CI venv python}"

# Keep in sync with README.md: this step fails if the README no longer shows this exact command.
DEMO_COMMAND='python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[server]" && python -m mesiboscript demo'
EXPECTED="< Hello from mesiboscript!"

check_output() {  # check_output LABEL OUTPUT
    printf '%s\n' "$2"
    if ! grep -qxF -- "$EXPECTED" <<<"$2"; then
        echo "!!! demo ($1) did not print: $EXPECTED" >&2
        exit 1
    fi
}

run() {  # run LABEL COMMAND...: run a demo command and check what it printed
    local label=$1 out
    shift
    echo "--- demo ($label): $*"
    if ! out=$(timeout 300 "$@" 2>&1); then
        printf '%s\n' "$out"
        echo "!!! demo ($label) exited with an error" >&2
        exit 1
    fi
    check_output "$label" "$out"
}

if ! grep -qF -- "$DEMO_COMMAND" README.md; then
    echo "!!! README.md does not show the demo command this step runs:" >&2
    echo "    $DEMO_COMMAND" >&2
    exit 1
fi

run "test venv" "$PY" -m mesiboscript demo

FRESH=$(mktemp -d)
trap 'rm -rf "$FRESH"' EXIT
if git rev-parse --git-dir >/dev/null 2>&1; then
    git clone -q "$PWD" "$FRESH/clone"
else
    echo "!!! not a git checkout: copying the tree instead of cloning it" >&2
    cp -a . "$FRESH/clone"
fi
command -v python3 >/dev/null || { echo "!!! python3 is not on PATH" >&2; exit 1; }
run "README command in a fresh clone" bash -c "cd '$FRESH/clone' && $DEMO_COMMAND"
run "console script" "$FRESH/clone/.venv/bin/mesiboscript" demo
echo "demo OK"
