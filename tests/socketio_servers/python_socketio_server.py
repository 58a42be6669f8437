"""A python-socketio 5 server (Socket.IO protocol v5, Engine.IO v4) for the mesiboscript tests.

It runs python-socketio's ASGI app on uvicorn in this process (the tests start it as a subprocess,
so its threads and sockets stay out of theirs). Handlers mirror ``socketio4_echo_server.js``.

Usage: python python_socketio_server.py [--port N] [--ping-interval S] [--ping-timeout S]
Listens on 127.0.0.1 (port 0 = a free port), and prints one JSON line: {"port": N}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from typing import Any

import socketio
import uvicorn


def build_app(ping_interval: float, ping_timeout: float) -> Any:
    sio = socketio.AsyncServer(
        async_mode="asgi",
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        max_http_buffer_size=10_000_000,
        cors_allowed_origins="*",
        namespaces="*",
    )

    async def on_connect(sid: str, environ: dict[str, Any], auth: Any, namespace: str) -> None:
        authorized = isinstance(auth, dict) and auth.get("token") == "secret"
        if namespace == "/private" and not authorized:
            raise socketio.exceptions.ConnectionRefusedError(
                "not authorized", {"reason": "bad token"}
            )
        if namespace == "/chat":
            await sio.emit("welcome", namespace, to=sid, namespace=namespace)
        await sio.emit("auth", auth if auth is not None else {}, to=sid, namespace=namespace)

    async def on_message(sid: str, *args: Any, namespace: str) -> None:
        await sio.send(args[0] if len(args) == 1 else list(args), to=sid, namespace=namespace)

    async def on_echo(sid: str, *args: Any, namespace: str) -> Any:
        return args  # python-socketio sends a returned tuple back as the ack's arguments

    async def on_call_me(sid: str, event: str, arg: Any, namespace: str) -> None:
        async def got(*reply: Any) -> None:
            await sio.emit("call-me-result", list(reply), to=sid, namespace=namespace)

        await sio.emit(event, arg, to=sid, namespace=namespace, callback=got)

    async def on_disconnect_me(sid: str, namespace: str) -> None:
        await sio.disconnect(sid, namespace=namespace)

    for nsp in ("/", "/chat", "/private"):
        sio.on("connect", _bind(on_connect, nsp), namespace=nsp)
        sio.on("message", _bind(on_message, nsp), namespace=nsp)
        sio.on("echo", _bind(on_echo, nsp), namespace=nsp)
        sio.on("call-me", _bind(on_call_me, nsp), namespace=nsp)
        sio.on("disconnect-me", _bind(on_disconnect_me, nsp), namespace=nsp)
    return socketio.ASGIApp(sio)


def _bind(fn: Any, namespace: str) -> Any:
    async def handler(*args: Any) -> Any:
        return await fn(*args, namespace=namespace)

    return handler


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ping-interval", type=float, default=25.0)
    parser.add_argument("--ping-timeout", type=float, default=20.0)
    parser.add_argument("--port", type=int, default=0)
    options = parser.parse_args()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", options.port))
    config = uvicorn.Config(
        build_app(options.ping_interval, options.ping_timeout),
        ws="wsproto",
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
        await task

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
