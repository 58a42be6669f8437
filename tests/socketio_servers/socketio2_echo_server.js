'use strict';
// A socket.io 2.x server (Socket.IO protocol v4, Engine.IO protocol v3) for the mesiboscript tests:
// the generation between Botmaster's socket.io 1.7 and socket.io 3/4 (npm alias socket.io-v2).
//
// Usage: node socketio2_echo_server.js [--port N] [--ping-interval MS] [--ping-timeout MS]
// Listens on 127.0.0.1 (port 0 = a free port) and prints one JSON line: {"port": N}.
// Handlers as in socketio4_echo_server.js: `message` echoed with socket.send, `echo` acked (or
// re-emitted), `call-me`, `disconnect-me`; namespace /chat emits `welcome`; /private refuses all.

const http = require('http');
const io = require('socket.io-v2');

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? Number(process.argv[i + 1]) : fallback;
}

const server = http.createServer();
const sio = io(server, {
  pingInterval: option('--ping-interval', 25000),
  pingTimeout: option('--ping-timeout', 5000),
  maxHttpBufferSize: 1e7,
});

function handlers(socket) {
  socket.on('message', function () {
    socket.send.apply(socket, Array.prototype.slice.call(arguments).filter((a) => typeof a !== 'function'));
  });
  socket.on('echo', function () {
    const args = Array.prototype.slice.call(arguments);
    const ack = typeof args[args.length - 1] === 'function' ? args.pop() : null;
    if (ack) ack.apply(null, args);
    else socket.emit.apply(socket, ['echo'].concat(args));
  });
  socket.on('call-me', (event, arg) => {
    socket.emit(event, arg, function () {
      socket.emit('call-me-result', Array.prototype.slice.call(arguments));
    });
  });
  socket.on('disconnect-me', () => socket.disconnect(true));
}

sio.on('connection', handlers);
sio.of('/chat').on('connection', (socket) => {
  socket.emit('welcome', socket.nsp.name);
  handlers(socket);
});
sio.of('/private').use((socket, next) => next(new Error('not authorized')));
sio.of('/private').on('connection', handlers);

server.listen(option('--port', 0), '127.0.0.1', () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
