#!/usr/bin/env bash
# Node's `ws` with perMessageDeflate, the second permessage-deflate peer of
# tests/test_compression.py, installed from tests/ws_node_server/package-lock.json (one package,
# about 2 s). Without Node.js those tests skip, loudly here.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=tests/ws_node_server

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "!!! node and/or npm not found: the permessage-deflate tests against Node's ws will be SKIPPED" >&2
    exit 0
fi
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
echo "ws $(node -p "require('./$dir/node_modules/ws/package.json').version")"
