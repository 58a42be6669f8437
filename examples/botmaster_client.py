"""Chat with a Botmaster bot over Socket.IO: the seed's web client (``client_app.js``), in Python.

The seed (Botmaster 2.x documentation, "Botmaster Socket.io bot mini-tutorial", ``client_app.js``)
connects, sends what the user typed and shows the bot's answers::

    var socket = io('?botmasterUserId=wantedUserId');
    ...
      // create a botmaster compatible message from the text input by user
      const message = {
        text: textInput.value,
      };
      // just send a stringified version of it over the webSocket
      socket.send(JSON.stringify(message));
    ...
    socket.on('message', function(botmasterMessage){
      var messageObject = JSON.parse(botmasterMessage);
      var textMessage = messageObject.message.text;

Sent as written, ``JSON.stringify(message)`` gets no answer from any published Botmaster: the
string reaches the server as a string, and Botmaster reads fields of an *object*. Botmaster 2.x
wants the object ``{text}`` (its later docs send ``socket.send(message)``); Botmaster 3 with
``botmaster-socket.io`` merges the object into its update and bots read ``update.message.text``, so
it wants ``{message: {text}}`` (that package's own client sends ``socket.send({message: {text:
...}})``), and it rejects a string with an "Expected JSON object" error on the server, never a
reply. This client sends ``{"message": {"text": ...}}`` (``--botmaster2``: ``{"text": ...}``) and
accepts the reply as an object (3.x) or a JSON string (2.x)::

    python examples/botmaster_client.py                      # a local bot, two sample texts
    python examples/botmaster_client.py http://localhost:3000 wantedUserId "Hey there botmaster!"

With a URL and no texts it sends each line of standard input until end of file. With no URL it
starts a local bot: the real Botmaster 3 echo bot of ``tests/socketio_servers`` when Node and its
npm packages are there (``npm ci`` in that folder), else the python-socketio server there, which
sends each message back (so the reply has Botmaster's ``{message: {text}}`` shape). Botmaster's
socket.io 1.x speaks Engine.IO v3 and python-socketio v4; ``SocketIO`` finds out by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
from typing import Any, Optional
from urllib.parse import urlencode

from mesiboscript import SocketIO

SERVERS = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "socketio_servers"
)
SAMPLE_TEXTS = ["Hey there botmaster!", "How are you?"]


def start_local_bot() -> tuple[subprocess.Popen[str], str]:
    """Start a local bot; return the process and its URL. Raises RuntimeError if none can run."""
    node = shutil.which("node")
    has_botmaster = os.path.isdir(os.path.join(SERVERS, "node_modules", "botmaster-socket.io"))
    if node and has_botmaster:
        argv = [node, "botmaster_echo_bot.js"]
        kind = "a Botmaster 3 echo bot (botmaster-socket.io)"
    else:
        try:
            import socketio  # noqa: F401  (the server below needs it)
            import uvicorn  # noqa: F401
        except ImportError as exc:
            raise RuntimeError(
                "no local bot can run: install Node and run `npm ci` in tests/socketio_servers, "
                'or pip install python-socketio uvicorn (the "test" extra)'
            ) from exc
        argv = [sys.executable, "python_socketio_server.py"]
        kind = "a python-socketio server that sends each message back"
    proc = subprocess.Popen(
        argv, cwd=SERVERS, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # it prints {"port": N} once it listens
        try:
            port = int(json.loads(line)["port"])
        except (ValueError, KeyError, TypeError):
            continue
        print(f"local bot: {kind} on port {port}", file=sys.stderr)
        return proc, f"http://127.0.0.1:{port}"
    raise RuntimeError(f"{argv} exited ({proc.wait()}) before listening")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", nargs="?", help="the bot's URL (default: start a local bot)")
    parser.add_argument("user_id", nargs="?", default="wantedUserId")
    parser.add_argument("texts", nargs="*", help="texts to send (default: standard input)")
    parser.add_argument(
        "--botmaster2", action="store_true", help='send {"text": ...} (Botmaster 2.x)'
    )
    args = parser.parse_args(argv)

    bot: Optional[subprocess.Popen[str]] = None
    url = args.url
    texts: Any = args.texts
    if url is None:
        try:
            bot, url = start_local_bot()
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            return 1
        texts = texts or SAMPLE_TEXTS
    try:
        return chat(url, args.user_id, texts or (line.rstrip("\n") for line in sys.stdin), args)
    finally:
        if bot is not None:
            bot.terminate()
            bot.wait()


def chat(url: str, user_id: str, texts: Any, args: argparse.Namespace) -> int:
    separator = "&" if "?" in url else "?"
    socket = SocketIO(url + separator + urlencode({"botmasterUserId": user_id}))
    replies = threading.Semaphore(0)
    failed: list[str] = []

    def onmessage(botmaster_message: Any) -> None:
        if isinstance(botmaster_message, str):  # a Botmaster 2.x bot sends a JSON string
            botmaster_message = json.loads(botmaster_message)
        print(botmaster_message["message"]["text"], flush=True)
        replies.release()

    def onconnect_error(data: dict[str, Any]) -> None:
        failed.append(data["message"])
        print(f"could not connect to {url}: {data}", file=sys.stderr)
        replies.release()

    socket.onconnect = lambda: print(f"connected as {user_id}", file=sys.stderr)
    socket.onmessage = onmessage
    socket.onconnect_error = onconnect_error
    socket.ondisconnect = lambda reason: print(f"disconnected: {reason}", file=sys.stderr)

    # What is sent before the connection is up goes out once it is.
    sent = 0
    for text in texts:
        if text.strip():
            socket.send({"text": text} if args.botmaster2 else {"message": {"text": text}})
            sent += 1
    # One reply per text, unless connecting failed.
    for _ in range(sent):
        if not replies.acquire(timeout=30) or failed:
            break
    socket.close()
    socket.wait(10)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
