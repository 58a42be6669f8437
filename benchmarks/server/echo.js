'use strict';
// WebSocket echo server for mesiboscript's benchmarks.
//
// Written in Node with `ws` and the native `bufferutil` (masking) so that the server is not what a
// Python client's benchmark measures. It echoes every message back with its own type (text stays
// text, binary stays binary) and accepts as many connections as the file-descriptor limit allows.
//
// Usage: node echo.js [--port N] [--host 127.0.0.1]
//   Prints one JSON line {"event":"listening","port":N,...} once it listens.
//   Reads commands on stdin, one per line, and answers each with one JSON line:
//     stats   {"event":"stats","cpu_user_us":..,"cpu_system_us":..,"wall_us":..,"connections":..}
//   On end of stdin, SIGTERM or SIGINT it prints {"event":"exit",...} with the same fields (its
//   total CPU use since start) and exits.

const http = require('http');
const readline = require('readline');
const { WebSocketServer } = require('ws');

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

function nativeModule(name) {
  try {
    require(name);
    return true;
  } catch (e) {
    return false;
  }
}

const host = arg('--host', '127.0.0.1');
const port = Number(arg('--port', '0'));
const started = process.hrtime.bigint();
let connections = 0;
let accepted = 0;
let messages = 0;

const server = http.createServer((req, res) => {
  res.writeHead(426, { 'Content-Type': 'text/plain' });
  res.end('WebSocket echo server\n');
});
// No per-message deflate (the clients under test do not compress either); 256 MiB messages at most.
const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 256 * 1024 * 1024 });

wss.on('connection', (ws) => {
  connections += 1;
  accepted += 1;
  ws.on('message', (data, isBinary) => {
    messages += 1;
    ws.send(data, { binary: isBinary });
  });
  ws.on('error', () => {});
  ws.on('close', () => {
    connections -= 1;
  });
});

function stats(event) {
  const cpu = process.cpuUsage();
  return JSON.stringify({
    event,
    cpu_user_us: cpu.user,
    cpu_system_us: cpu.system,
    wall_us: Number((process.hrtime.bigint() - started) / 1000n),
    connections,
    accepted,
    messages,
    rss_bytes: process.memoryUsage().rss,
  });
}

let exiting = false;
function shutdown() {
  if (exiting) return;
  exiting = true;
  process.stdout.write(stats('exit') + '\n', () => process.exit(0));
}

// A large backlog: concurrent clients open 1 000 connections at once (the kernel caps it at
// net.core.somaxconn).
server.listen({ host, port, backlog: 65535 }, () => {
  const info = {
    event: 'listening',
    host,
    port: server.address().port,
    pid: process.pid,
    node: process.version,
    ws: require('ws/package.json').version,
    bufferutil: nativeModule('bufferutil'),
    utf8_validate: nativeModule('utf-8-validate'),
  };
  process.stdout.write(JSON.stringify(info) + '\n');
});

// The harness is gone (its end of the pipe closed): nothing is left to report to.
process.stdout.on('error', () => process.exit(0));

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line.trim() === 'stats') process.stdout.write(stats('stats') + '\n');
});
rl.on('close', shutdown);
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
