"""High Fidelity's WebSocket example, ported line for line to Python.

The seed (High Fidelity / Vircadia API documentation of ``WebSocket``, "Echo a message off
websocket.org")::

    print("Create WebSocket");
    var WEBSOCKET_PING_URL = "ws://echo.websocket.org";
    var webSocket = new WebSocket(WEBSOCKET_PING_URL);

    webSocket.onclose = function (data) {
        print("WebSocket closed");
        print("Ready state =", webSocket.readyState);  // 3
    };

    webSocket.onmessage = function (data) {
        print("Message received:", data.data);

        print("Close WebSocket");
        webSocket.close();
    };

    webSocket.onopen = function () {
        print("WebSocket opened");
        print("Ready state =", webSocket.readyState);  // 1

        print("Send a test message");
        webSocket.send("Test message");
    };

That host is gone, so with no URL argument this script first starts a local echo server written
with HiFi's ``WebSocketServer`` (the server half of the same API), then runs the client against it.
``print(webSocket.readyState)`` prints ``1`` and ``3`` as in HiFi, on every supported Python.

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
    WEBSOCKET_PING_URL = sys.argv[1]  # var WEBSOCKET_PING_URL = "ws://echo.websocket.org";
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
    print("Ready state =", webSocket.readyState)  # 3
    if local_server is not None:
        local_server.close()


def onmessage(data: MessageData) -> None:
    print("Message received:", data.data)

    print("Close WebSocket")
    webSocket.close()


def onopen() -> None:
    print("WebSocket opened")
    print("Ready state =", webSocket.readyState)  # 1

    print("Send a test message")
    webSocket.send("Test message")


webSocket.onclose = onclose
webSocket.onmessage = onmessage
webSocket.onopen = onopen
