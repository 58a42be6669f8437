#!/usr/bin/env bash
# The real Socket.IO servers that tests/test_socketio.py talks to: a Botmaster bot (npm botmaster +
# botmaster-socket.io 1.0.3, socket.io 1.7, Engine.IO v3) and a socket.io 4 server, installed from
# tests/socketio_servers/package-lock.json, plus socket.io 2.x (npm alias socket.io-v2, Engine.IO v3).
# Without Node.js those tests skip, loudly here.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=tests/socketio_servers

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    {
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        echo "!!! node and/or npm not found: the Socket.IO tests against Botmaster and"
        echo "!!! socket.io 4 will be SKIPPED. Install Node.js and npm to run them."
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    } >&2
    exit 0
fi

echo "node $(node --version), npm $(npm --version)"
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)

# Each server must start and report its port, or the tests would fail later for less clear reasons.
for script in botmaster_echo_bot.js socketio2_echo_server.js socketio4_echo_server.js; do
    line=$(cd "$dir" && timeout 30 node -e "
        const { spawn } = require('child_process');
        const child = spawn(process.execPath, ['$script'], { stdio: ['ignore', 'pipe', 'inherit'] });
        child.stdout.once('data', (data) => { process.stdout.write(String(data)); child.kill(); });
        child.on('exit', (code) => process.exit(code === null ? 0 : code));
    ")
    echo "$script: $line"
    case "$line" in
        *'"port"'*) ;;
        *) echo "!!! $script did not report a port" >&2; exit 1 ;;
    esac
done
