"""Eclipse Dirigible's ``net/websocket`` chat service, ported line for line to Python.

Dirigible's ``net/websocket`` is a *server-side* API: the platform's ``/service/js`` WebSocket
endpoint runs a service script for each client message, with the message's ``params`` as the
``core/context`` values; ``websocket.getSession()`` is the session of the client whose message is
being handled, ``core/globals`` keeps state between runs, and the session's ``sendText`` answers.
The seed (Dirigible 2.x documentation, ``net/websocket``, "Basic Usage")::

    /* globals $ */
    /* eslint-env node, dirigible */

    var globals = require("core/globals");
    var websocket = require("net/websocket");
    var context = require("core/context");

    var websocketSession = websocket.getSession();
    var type = context.get("type");
    var from = context.get("from");
    var to = context.get("to");
    var message = context.get("message");

    if (type == "welcome") {
        websocketSession.sendText("Welcome " + from + "!");
        globals.set("chat-session-" + from, websocketSession);
        var chatMembers = globals.get("chat-members");
        if (chatMembers === null) {
            chatMembers = [];
            globals.set("chat-members", chatMembers);
        }
        chatMembers.push(from);
        console.error("registered " + from);
    }

    if (type == "message") {
        var toSession = globals.get("chat-session-" + to);
        if (toSession !== null) {
            toSession.sendText(message);
            console.error("send to " + to);
        } else {
            console.error("no session for " + to);
        }
    }

    if (type == "list") {
        var chatMembers = globals.get("chat-members");
        console.error("list: " + JSON.stringify(chatMembers));
        websocketSession.sendText(JSON.stringify(chatMembers));
    }


    /**
    -- Client 1
    var jsSocket = new WebSocket("ws://localhost:8080/service/js");
    jsSocket.send('{"module": "/chat/chat_service.js","params": {"type":"welcome", "from":"Tom"}}');

    -- Client 2
    var jsSocket = new WebSocket("ws://localhost:8080/service/js");
    jsSocket.send('{"module": "/chat/chat_service.js","params": {"type":"welcome", "from":"Jerry"}}');

    -- Client 1
    jsSocket.send('{"module": "/chat/chat_service.js","params": {"type":"message", "from":"Tom", "to":"Jerry", "message": "Hello Jerry!"}}');

    -- Client 2
    jsSocket.send('{"module": "/chat/chat_service.js","params": {"type":"message", "from":"Jerry", "to":"Tom", "message": "Hi Tom!"}}');

    jsSocket.send('{"module": "/chat/chat_service.js","params": {"type":"list", "from":"Tom"}}');

    */

Here the ``/service/js`` endpoint is a ``WebSocketServer`` (:func:`service_js`): for each message it
sets the context to the message's ``params`` and runs the named module, on the connection's
handler, so ``websocket.getSession()`` is that client's session. :func:`chat_service` is the seed,
line for line (``from`` is a Python keyword: ``from_``; ``null`` is ``None``). The clients are
``WebSocket`` objects sending the seed's own messages, in the seed's order (the last one, "list",
goes from the second browser console, as written), each waiting for its answer with ``read()``.

    python examples/dirigible_chat.py           # local /service/js endpoint, no network
    python examples/dirigible_chat.py ws://localhost:8080/service/js   # a Dirigible 2.x server

Output: what each client receives, then how many sessions were open on each side; the service's
``console.error`` lines go to stderr.
"""

# ruff: noqa: E501, N806  (the seed's long lines and camelCase names, kept)

from __future__ import annotations

import json
import sys
from typing import Any, Callable, Optional

import mesiboscript as websocket  # var websocket = require("net/websocket");
from mesiboscript import MessageData, WebSocket, getOpenSessions
from mesiboscript.server import ServerWebSocket, WebSocketServer

TIMEOUT = 10.0


class _Store:
    """Dirigible's ``core/globals`` and ``core/context``: ``get`` gives ``None`` (JavaScript's
    ``null``) for a name never set."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        return self._values.get(name)

    def set(self, name: str, value: Any) -> None:
        self._values[name] = value

    def reset(self, values: dict[str, Any]) -> None:
        """The platform's side: a new run's context."""
        self._values = dict(values)


class console:  # noqa: N801  (the seed's global object)
    @staticmethod
    def error(text: str) -> None:
        print(text, file=sys.stderr)


class JSON:
    @staticmethod
    def stringify(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


globals = _Store()  # var globals = require("core/globals");  (shared by every run)
context = _Store()  # var context = require("core/context");  (set for each run)


def chat_service() -> None:
    """/chat/chat_service.js: the seed's service script, line for line."""
    websocketSession = websocket.getSession()
    type = context.get("type")
    from_ = context.get("from")
    to = context.get("to")
    message = context.get("message")

    if type == "welcome":
        websocketSession.sendText("Welcome " + from_ + "!")
        globals.set("chat-session-" + from_, websocketSession)
        chatMembers = globals.get("chat-members")
        if chatMembers is None:
            chatMembers = []
            globals.set("chat-members", chatMembers)
        chatMembers.append(from_)
        console.error("registered " + from_)

    if type == "message":
        toSession = globals.get("chat-session-" + to)
        if toSession is not None:
            toSession.sendText(message)
            console.error("send to " + to)
        else:
            console.error("no session for " + to)

    if type == "list":
        chatMembers = globals.get("chat-members")
        console.error("list: " + JSON.stringify(chatMembers))
        websocketSession.sendText(JSON.stringify(chatMembers))


MODULES: dict[str, Callable[[], None]] = {"/chat/chat_service.js": chat_service}


def service_js() -> WebSocketServer:
    """Dirigible's ``/service/js`` endpoint: each message names a module and its ``params``; the
    module runs with them as its context, in the handler of the client's connection."""
    server = WebSocketServer()

    def on_new_connection(session: ServerWebSocket) -> None:
        def on_message(event: MessageData) -> None:
            request = json.loads(event.data)
            context.reset(request.get("params") or {})
            MODULES[request["module"]]()

        session.onmessage = on_message

    server.onNewConnection = on_new_connection
    return server


def main() -> int:
    server: Optional[WebSocketServer] = None
    if len(sys.argv) > 1:
        url = sys.argv[1]
    else:
        server = service_js()
        url = server.url + "service/js"

    def receive(name: str, client: WebSocket) -> None:
        data = client.read(TIMEOUT)
        print(f"{name} received: {data!s}")

    # -- Client 1
    tom = WebSocket(url)
    tom.upgrade(TIMEOUT)
    tom.send('{"module": "/chat/chat_service.js","params": {"type":"welcome", "from":"Tom"}}')
    receive("Tom", tom)

    # -- Client 2
    jerry = WebSocket(url)
    jerry.upgrade(TIMEOUT)
    jerry.send('{"module": "/chat/chat_service.js","params": {"type":"welcome", "from":"Jerry"}}')
    receive("Jerry", jerry)

    # -- Client 1
    tom.send(
        '{"module": "/chat/chat_service.js","params": {"type":"message", "from":"Tom", "to":"Jerry", "message": "Hello Jerry!"}}'
    )
    receive("Jerry", jerry)

    # -- Client 2
    jerry.send(
        '{"module": "/chat/chat_service.js","params": {"type":"message", "from":"Jerry", "to":"Tom", "message": "Hi Tom!"}}'
    )
    receive("Tom", tom)

    jerry.send('{"module": "/chat/chat_service.js","params": {"type":"list", "from":"Tom"}}')
    receive("Jerry", jerry)

    if server is not None:
        print("Open sessions on the server:", len(server.getOpenSessions()))
    print("Open sessions in this process:", len(getOpenSessions()))
    for client in (tom, jerry):
        client.close()
        client.read(TIMEOUT)  # False once closed
    if server is not None:
        server.close()
    print("Open sessions after closing:", len(getOpenSessions()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
