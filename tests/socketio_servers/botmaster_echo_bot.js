'use strict';
// A Botmaster bot on botmaster-socket.io (socket.io 1.7, Engine.IO protocol v3), as the seed system
// runs it: a web client connects with ?botmasterUserId=ID, sends {text} (or {message: {text}}) with
// socket.send, and the bot replies with bot.reply(), which the client receives as a `message` event
// carrying {recipient: {id}, message: {text}}.
//
// The extras below are only for the mesiboscript tests: they hang off the same socket.io 1.7 server
// (socketioBot.ioServer) so that acks, namespaces, binary attachments, middleware errors and a
// server-side disconnect can be checked against a real Socket.IO protocol v4 / Engine.IO v3 peer.
//
// Usage: node botmaster_echo_bot.js [--port N] [--ping-interval MS] [--ping-timeout MS]
// Listens on 127.0.0.1 (port 0 = a free port) and prints one JSON line: {"port": N}.

const http = require('http');
const Botmaster = require('botmaster');
const SocketioBot = require('botmaster-socket.io');

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? Number(process.argv[i + 1]) : fallback;
}

const server = http.createServer();
const botmaster = new Botmaster({ server });
const socketioBot = new SocketioBot({ id: 'mesiboscript-echo-bot', server });
botmaster.addBot(socketioBot);

botmaster.use({
  type: 'incoming',
  name: 'echo',
  controller: (bot, update) => {
    const text = (update.message && update.message.text) || update.text || '';
    return bot.reply(update, text);
  },
});

botmaster.on('error', (bot, err) => {
  console.error(`botmaster error: ${err.message}`);
});

// Engine.IO heartbeat settings are read at each handshake; shorter values let tests see pings.
const eio = socketioBot.ioServer.eio;
eio.pingInterval = option('--ping-interval', eio.pingInterval);
eio.pingTimeout = option('--ping-timeout', eio.pingTimeout);

function testHandlers(socket) {
  // Acknowledged echo: the ack carries the arguments back.
  socket.on('echo', function () {
    const args = Array.prototype.slice.call(arguments);
    const ack = typeof args[args.length - 1] === 'function' ? args.pop() : null;
    if (ack) ack.apply(null, args);
    else socket.emit.apply(socket, ['echo'].concat(args));
  });
  // Ask the client for an ack and report what came back.
  socket.on('call-me', (event, arg) => {
    socket.emit(event, arg, function () {
      socket.emit('call-me-result', Array.prototype.slice.call(arguments));
    });
  });
  socket.on('disconnect-me', () => socket.disconnect(true));
}

const io = socketioBot.ioServer;
io.on('connection', testHandlers);
io.of('/chat').on('connection', (socket) => {
  socket.emit('welcome', socket.nsp.name);
  testHandlers(socket);
});
io.of('/private').use((socket, next) => next(new Error('not authorized')));
io.of('/private').on('connection', testHandlers);

server.listen(option('--port', 0), '127.0.0.1', () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
