'use strict';
// A socket.io 4 server (Socket.IO protocol v5, Engine.IO protocol v4) for the mesiboscript tests.
//
// Usage: node socketio4_echo_server.js [--port N] [--ping-interval MS] [--ping-timeout MS]
//                                      [--path /socket.io/] [--allow-eio3] [--refuse-eio4]
//                                      [--transports polling,websocket] [--recovery]
// Listens on 127.0.0.1 (port 0 = a free port) and prints one JSON line: {"port": N}.
// --refuse-eio4 (implies --allow-eio3) refuses Engine.IO v4 requests in allowRequest, as a server
// that only speaks v3 would: the client must fall back to v3. --transports restricts the server's
// transports; --recovery turns on connectionStateRecovery (socket.io >= 4.6).
//
// Namespace "/": `message` is echoed back with socket.send; `echo` acks (or re-emits) its arguments;
// `call-me` emits an event that asks the client for an ack and reports the ack's arguments in
// `call-me-result`; `disconnect-me` disconnects the socket from the server side; the handshake's
// auth payload is sent back as `auth` on connection; `drop-me` closes the Engine.IO connection
// (the client sees a transport close and reconnects) and, 200 ms later, emits `missed` to everyone:
// with --recovery a reconnecting client gets it on recovery.
// Namespace "/chat": the same, plus a `welcome` event. Namespace "/private": middleware rejects any
// client whose auth.token is not "secret", with error data attached.

const http = require('http');
const { Server } = require('socket.io');

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const refuseEIO4 = process.argv.includes('--refuse-eio4');
const server = http.createServer();
const io = new Server(server, {
  path: option('--path', '/socket.io'),
  pingInterval: Number(option('--ping-interval', 25000)),
  pingTimeout: Number(option('--ping-timeout', 20000)),
  allowEIO3: refuseEIO4 || process.argv.includes('--allow-eio3'),
  allowRequest: (req, callback) => callback(null, !(refuseEIO4 && /[?&]EIO=4(&|$)/.test(req.url))),
  maxHttpBufferSize: 1e7,
  transports: option('--transports', 'polling,websocket').split(','),
  connectionStateRecovery: process.argv.includes('--recovery')
    ? { maxDisconnectionDuration: 60000, skipMiddlewares: true }
    : undefined,
});

function handlers(socket) {
  socket.emit('auth', socket.handshake.auth || {});
  socket.on('message', (...args) => socket.send(...args));
  socket.on('echo', (...args) => {
    const ack = typeof args[args.length - 1] === 'function' ? args.pop() : null;
    if (ack) ack(...args);
    else socket.emit('echo', ...args);
  });
  socket.on('call-me', (event, arg) => {
    socket.emit(event, arg, (...reply) => socket.emit('call-me-result', reply));
  });
  socket.on('disconnect-me', () => socket.disconnect(true));
  socket.on('drop-me', () => {
    socket.conn.close();
    setTimeout(() => io.emit('missed', 'while away'), 200);
  });
  socket.emit('recovered', socket.recovered);
}

io.on('connection', handlers);
io.of('/chat').on('connection', (socket) => {
  socket.emit('welcome', socket.nsp.name);
  handlers(socket);
});
const privateNsp = io.of('/private');
privateNsp.use((socket, next) => {
  if (socket.handshake.auth && socket.handshake.auth.token === 'secret') return next();
  const err = new Error('not authorized');
  err.data = { reason: 'bad token' };
  return next(err);
});
privateNsp.on('connection', handlers);

server.listen(Number(option('--port', 0)), '127.0.0.1', () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
