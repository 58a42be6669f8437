"""High Fidelity's WebSocket example, ported line for line to Python.

The HiFi / Overte API documentation echoes a message off ws://echo.websocket.org with a script
that sets ``onopen``, ``onmessage`` and ``onclose`` and calls ``send`` and ``close``. That host is
gone, so with no URL argument this script first starts a local echo server written with HiFi's
``WebSocketServer`` (the server half of the same API), then runs the client against it.

    python examples/hifi_echo.py               # local server, no network needed
    python examples/hifi_echo.py ws://HOST/    # any echo server

Like a HiFi script, it has no main loop: the handlers run on mesiboscript's I/O thread, and the
process stays alive until the WebSocket (and the local server) have closed.
"""

from __future__ import annotations

import sys

from mesiboscript import CloseData, MessageData, WebSocket
from mesiboscript.server import ServerWebSocket, WebSocketServer

local_server = None
if len(sys.argv) > 1:
    WEBSOCKET_PING_URL = sys.argv[1]
else:
    # The server side, as a HiFi server script writes it.
    local_server = WebSocketServer()

    def onNewConnection(webSocket: ServerWebSocket) -> None:
        webSocket.onmessage = lambda message: webSocket.send(message.data)

    local_server.onNewConnection = onNewConnection
    WEBSOCKET_PING_URL = local_server.url

# The client side: the documentation's example.
print("Create WebSocket")
webSocket = WebSocket(WEBSOCKET_PING_URL)


def onclose(data: CloseData) -> None:
    print("WebSocket closed")
    print("Ready state:", int(webSocket.readyState))  # 3: CLOSED
    print("Close code:", data.code, "clean:", data.wasClean)
    if local_server is not None:
        local_server.close()


def onmessage(data: MessageData) -> None:
    print("Message received:", data.data)
    print("Close WebSocket")
    webSocket.close()


def onopen() -> None:
    print("WebSocket accepted")
    print("Ready state:", int(webSocket.readyState))  # 1: OPEN
    print("Send ping")
    webSocket.send("ping")


webSocket.onclose = onclose
webSocket.onmessage = onmessage
webSocket.onopen = onopen
