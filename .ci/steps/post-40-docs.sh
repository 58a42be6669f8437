#!/usr/bin/env bash
# The API reference (docs/api/, Sphinx autodoc from the docstrings): built with every warning an
# error, then checked to document every public name (docs/api/check_reference.py).
set -euo pipefail
: "${PY:?PY must point at the CI venv python}"

"$PY" -m pip install -q -e ".[docs]"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
"$PY" -m sphinx -W --keep-going -q -b html docs/api "$OUT/html"
"$PY" docs/api/check_reference.py "$OUT/html"
echo "API reference OK"
