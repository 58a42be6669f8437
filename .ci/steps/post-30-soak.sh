#!/usr/bin/env bash
# Soak: 10 000 connect/close cycles and 1 000 000 echoed messages against a local websockets server,
# asserting no leaked threads or file descriptors and flat RSS (tests/soak/soak.py prints figures).
# SOAK_ARGS overrides the amounts, e.g. SOAK_ARGS="--cycles 1000 --messages 100000".
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PY:-python3}"
# shellcheck disable=SC2086  # SOAK_ARGS is a list of flags
timeout --kill-after=10 600 "$PY" tests/soak/soak.py --timeout 250 ${SOAK_ARGS:-}
