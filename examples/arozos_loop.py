"""ArozOS's AGI WebSocket test script, ported line for line to Python.

The seed (ArozOS, an AGI script by tobychui)::

    /*
        WebSocket Test Script

        This is a special test script and should not be mixed in with normal
        AGI module test scripts. Please test this seperately

        Author: tobychui
    */

    function setup(){
        //Require the WebSocket Library
        var succ = requirelib("websocket");
        if (!succ){
            console.log("WebSocket Open Failed");
            return false
        }

        //Upgrade the current connection to WebSocket, set timeout to 30 seconds
        //Timeout value: if after 30 seconds nothing has been send / received, the websocket will be closed
        //set this value to 0 to display auto socket closing
        succ = websocket.upgrade(30);
        if (!succ){
            console.log("WebSocket Upgrade Failed");
            return false
        }

        console.log("WebSocket Opened!")
        return true;
    }

    function waitForStart(){
        websocket.send("Send 'start' to start websocket.send test");
        var recv = "";
        for (var i = 0; i < 10; i++){
            //Read the websocket input from Client (Web UI)
            recv = websocket.read();
            if (recv == null){
                console.log("Read Failed!")
                return
            }
            if (recv != "start"){
                websocket.send(recv + " reveived. Type 'start' to start testing. (Retry count: " + i + "/10)");
            }else{
                websocket.send("'start' command received. Starting test");
                break;
            }
        }
    }

    function loop(i){
        //If the process reach here, that means the WebSocket connection has been opened
        console.log("Sending: Hello World: " + i);

        //Sebd Hello World {i} to Client (Web UI)
        websocket.send("Hello World: " + i);

        //Wait for 1 second before next send
        delay(1000);
    }

    function closing(){
        //Try to close the WebSocket connection
        websocket.close();
    }

    //Start executing the script
    if (setup()){
        waitForStart();
        for (var i = 0; i < 10; i++){
            loop(i);
        }
        closing();
    }else{
        console.log("WebSocket Setup Failed.")
    }

The script upgrades its connection with ``websocket.upgrade(30)``, sends a prompt, reads until the
other side says ``start`` (at most ten tries), sends "Hello World: i" ten times a second apart, and
closes. Here the script is the client (``upgrade`` opens the connection and waits for it), and the
other side, the ArozOS "Web UI", is a local ``WebSocketServer`` started by this script when no URL
is given. Against a plain echo server (``python -m mesiboscript serve``) it works too: it reads
back its own prompt ten times, then loops. As the ArozOS front-end does
(``socket.onerror = function(error) { log(error.message) }``), a failure is logged with
``error.message``.

    python examples/arozos_loop.py [URL] [--delay MS]
"""

# ruff: noqa: E501  (the seed's long lines, quoted as they are)

from __future__ import annotations

import argparse
import threading
import time
from typing import Optional, Union

from mesiboscript import CloseData, MessageData, WebSocket
from mesiboscript.server import ServerWebSocket, WebSocketServer

websocket: WebSocket
DELAY_MS = 1000.0


def delay(ms: float) -> None:
    time.sleep(ms / 1000.0)  # AGI's delay(): the script's pacing, not synchronisation


def setup(url: str) -> bool:
    global websocket
    websocket = WebSocket(url)
    # The ArozOS front-end's handler: socket.onerror = function(error) { log(error.message) }
    websocket.onerror = lambda error: print("WebSocket error: " + error.message)

    # Upgrade (here: open) the connection, waiting at most 30 seconds.
    succ = websocket.upgrade(30)
    if not succ:
        print("WebSocket Upgrade Failed")
        return False

    print("WebSocket Opened!")
    return True


def waitForStart() -> None:
    websocket.send("Send 'start' to start websocket.send test")
    recv: Union[str, bytes, bool, None] = ""
    for i in range(10):
        # Read the websocket input from the client (Web UI). None/False: nothing more to read.
        recv = websocket.read(30)
        if recv is None or recv is False:
            print("Read Failed!")
            return
        if recv != "start":
            websocket.send(
                f"{recv!s} reveived. Type 'start' to start testing. (Retry count: {i}/10)"
            )
        else:
            websocket.send("'start' command received. Starting test")
            break


def loop(i: int) -> None:
    # If the process reaches here, the WebSocket connection has been opened.
    print("Sending: Hello World: " + str(i))

    # Send Hello World {i} to the client (Web UI).
    websocket.send("Hello World: " + str(i))

    # Wait before the next send.
    delay(DELAY_MS)


def closing() -> None:
    # Close the WebSocket connection.
    websocket.close()


class WebUI:
    """The other side: answers the prompt with ``start`` and collects what the script sends."""

    def __init__(self) -> None:
        self.server = WebSocketServer()
        self.received: list[str] = []
        self.closed = threading.Event()
        self.server.onNewConnection = self.on_new_connection

    def on_new_connection(self, ws: ServerWebSocket) -> None:
        def on_message(message: MessageData) -> None:
            text = str(message.data)
            if text.startswith("Send 'start'"):
                ws.send("start")
            else:
                self.received.append(text)

        def on_close(event: CloseData) -> None:
            self.closed.set()

        ws.onmessage = on_message
        ws.onclose = on_close


def main(argv: Optional[list[str]] = None) -> int:
    global DELAY_MS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", nargs="?", help="server URL (default: a local Web UI server)")
    parser.add_argument("--delay", type=float, default=DELAY_MS, help="ms between sends")
    args = parser.parse_args(argv)
    DELAY_MS = args.delay

    web_ui = None if args.url else WebUI()
    url = args.url or (web_ui.server.url if web_ui else "")

    # Start executing the script.
    if setup(url):
        waitForStart()
        for i in range(10):
            loop(i)
        closing()
    else:
        print("WebSocket Setup Failed.")
        return 1

    if web_ui is not None:
        web_ui.closed.wait(30)
        print(f"Web UI received {len(web_ui.received)} messages; last: {web_ui.received[-1]!r}")
        web_ui.server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
