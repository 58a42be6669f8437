"""Mesibo's chatbot ``Socket`` example, ported line for line: an HTTP GET over ``sock://``.

The seed (Mesibo "Chatbot and Scripting" reference, ``Socket`` class, "Example"; tabs as there)::

    var s = new Socket("sock://example.com:80");
    s.onconnect = function(s) {
    \tprint("connected");
    \ts.send("GET / HTTP/1.0\\r\\nHost: example.com\\r\\nConnection: close\\r\\n\\r\\n");
    }

    s.ondata = function(s) {
    \tprint(s);
    }

    s.open();

Its ``ondata`` takes one parameter, so it gets the data alone, as here. ``encoding="utf-8"`` makes
that data text, so ``print`` shows the response as the seed does (without it: ``b'HTTP/1.0...'``).

Run ``python examples/mesibo_socket.py`` to GET from a local ``http.server`` it starts on a free
port (no network needed), or ``python examples/mesibo_socket.py sock://HOST:PORT`` to GET from
another server. The script ends by itself: the library keeps the process alive until the socket
closes, as a Mesibo script or a Node program would, and the server closes it
(``Connection: close``).
"""

from __future__ import annotations

import http.server
import sys
import threading
from urllib.parse import urlsplit

from mesiboscript import Socket


class Hello(http.server.BaseHTTPRequestHandler):
    """The local server's one page."""

    def do_GET(self) -> None:
        body = b"Hello from the local server\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the output to what the socket prints


def local_server() -> str:
    """Start an HTTP server on a free port in a daemon thread; return its ``sock://`` URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, name="http-server", daemon=True).start()
    return f"sock://127.0.0.1:{server.server_address[1]}"


url = sys.argv[1] if len(sys.argv) > 1 else local_server()  # "sock://example.com:80"
host = urlsplit(url).hostname

s = Socket(url, encoding="utf-8")


def onconnect(s: Socket) -> None:
    print("connected")
    s.send(f"GET / HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n")


s.onconnect = onconnect

s.ondata = lambda s: print(s)

s.open()
