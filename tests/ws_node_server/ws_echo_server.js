// An echo server on Node's `ws` with permessage-deflate, for tests/test_compression.py.
// Usage: node ws_echo_server.js '<perMessageDeflate options as JSON>'
// Prints {"port": N} once listening on 127.0.0.1 (port 0: a free port). Each message is echoed
// with its type; a text message "extensions?" is answered with the header ws agreed, and
// "compressed?" with whether the last message arrived compressed (RSV1).
'use strict';
const { WebSocketServer } = require('ws');

const options = JSON.parse(process.argv[2] || '{}');
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: options });
wss.on('connection', (ws, request) => {
  ws.on('message', (data, isBinary) => {
    const text = isBinary ? null : data.toString();
    if (text === 'extensions?') {
      ws.send(request.headers['sec-websocket-extensions'] || '');
      ws.send(ws.extensions);
      return;
    }
    ws.send(data, { binary: isBinary });
  });
});
wss.on('listening', () => {
  process.stdout.write(JSON.stringify({ port: wss.address().port }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
