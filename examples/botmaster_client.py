"""Chat with a Botmaster bot over Socket.IO: the seed's web client (client_app.js), in Python.

The browser client connects with ``io('?botmasterUserId=wantedUserId')``, sends each line the user
types with ``socket.send(...)`` and shows ``botmasterMessage.message.text`` of every ``message``
event. This does the same from a terminal:

    python examples/botmaster_client.py http://localhost:3000 wantedUserId "Hey there botmaster!"

With no texts on the command line it sends each line read from standard input until end of file;
with no arguments at all it prints this help.
Botmaster's socket.io 1.x speaks Engine.IO v3; ``SocketIO`` finds that out by itself, so the same
script talks to a socket.io 4 server unchanged.
"""

from __future__ import annotations

import sys
import threading
from urllib.parse import urlencode

from mesiboscript import SocketIO


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0
    url = argv[1]
    user_id = argv[2] if len(argv) > 2 else "wantedUserId"
    texts = argv[3:]

    separator = "&" if "?" in url else "?"
    socket = SocketIO(url + separator + urlencode({"botmasterUserId": user_id}))
    replies = threading.Semaphore(0)
    failed: list[str] = []

    def onmessage(botmaster_message: dict) -> None:  # type: ignore[type-arg]
        print(botmaster_message["message"]["text"], flush=True)
        replies.release()

    def onconnect_error(data: dict) -> None:  # type: ignore[type-arg]
        failed.append(data["message"])
        print(f"could not connect to {url}: {data}", file=sys.stderr)
        replies.release()

    socket.onconnect = lambda: print(f"connected as {user_id}", file=sys.stderr)
    socket.onmessage = onmessage
    socket.onconnect_error = onconnect_error
    socket.ondisconnect = lambda reason: print(f"disconnected: {reason}", file=sys.stderr)

    # What is sent before the connection is up goes out once it is.
    sent = 0
    for text in texts or (line.rstrip("\n") for line in sys.stdin):
        if text.strip():
            socket.send({"text": text})
            sent += 1
    # One reply per text, unless connecting failed.
    for _ in range(sent):
        if not replies.acquire(timeout=30) or failed:
            break
    socket.close()
    socket.wait(10)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
