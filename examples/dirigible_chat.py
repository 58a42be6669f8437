"""A chat in the style of Eclipse Dirigible's ``net/websocket`` sessions, in Python.

Two clients (alice and bob) join a chat room, the script lists the open sessions with
``getOpenSessions()`` and ``getId()``, alice speaks to everyone with ``sendText``, and bob answers
her alone with a direct message (``@alice ...``) sent by ``sendTextAsync``. Handlers find out which
session they belong to with ``getSession()``, as Dirigible handlers do.

With no URL argument the chat room is a local ``WebSocketServer`` started by this script; pass the
URL of a compatible room to use another one (it relays ``@name text`` to ``name`` only, anything
else to everyone else, and learns names from ``?name=`` in the URL).

    python examples/dirigible_chat.py
"""

from __future__ import annotations

import queue
import sys
from typing import Optional
from urllib.parse import parse_qs, urlsplit

from mesiboscript import MessageData, WebSocket, getOpenSessions, getSession
from mesiboscript.server import ServerWebSocket, WebSocketServer

TIMEOUT = 10.0


def start_chat_room() -> WebSocketServer:
    """The room: remembers each member's name and relays messages."""
    room = WebSocketServer()
    members: dict[str, ServerWebSocket] = {}

    def on_new_connection(ws: ServerWebSocket) -> None:
        name = parse_qs(urlsplit(ws.url).query).get("name", ["anonymous"])[0]
        members[name] = ws

        def on_message(message: MessageData) -> None:
            text = str(message.data)
            if text.startswith("@"):
                target, _, body = text[1:].partition(" ")
                if target in members:
                    members[target].send(f"{name} (direct): {body}")
                return
            for other_name, other in list(members.items()):
                if other_name != name:
                    other.send(f"{name}: {text}")

        ws.onmessage = on_message
        ws.onclose = lambda event: members.pop(name, None)

    room.onNewConnection = on_new_connection
    return room


def main() -> int:
    room: Optional[WebSocketServer] = None
    if len(sys.argv) > 1:
        room_url = sys.argv[1]
    else:
        room = start_chat_room()
        room_url = room.url + "chat"

    inbox: queue.Queue[tuple[str, str]] = queue.Queue()
    names: dict[str, str] = {}  # session id -> member name

    def on_message(message: MessageData) -> None:
        session = getSession()  # the WebSocket whose handler is running
        assert session is not None
        inbox.put((names[session.getId()], str(message.data)))

    members = {}
    for name in ("alice", "bob"):
        ws = WebSocket(f"{room_url}?name={name}")
        names[ws.getId()] = name
        ws.onmessage = on_message
        members[name] = ws
    for name, ws in members.items():
        if not ws.upgrade(TIMEOUT):
            print(f"{name} could not join {room_url}: {ws.last_error}")
            return 1

    print("Open sessions:")
    for session in getOpenSessions():
        print(f"  {names[session.getId()]}: {session.getId()}")

    members["alice"].sendText("Hello everyone!")
    who, text = inbox.get(timeout=TIMEOUT)
    print(f"{who} received: {text}")

    sent = members["bob"].sendTextAsync("@alice Hi alice, this is just for you.")
    sent.result(TIMEOUT)  # the Future completes once the frame is written
    who, text = inbox.get(timeout=TIMEOUT)
    print(f"{who} received: {text}")

    for ws in members.values():
        ws.close()
    for ws in members.values():
        ws.read(TIMEOUT)  # False once closed: a blocking way to wait for the close
    print("Open sessions after closing:", len(getOpenSessions()))
    if room is not None:
        room.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
