"""Test helpers: real servers on 127.0.0.1 port 0, and a recorder of WebSocket events."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Optional

import mesiboscript

# One scaled unit for every wait: raise MESIBOSCRIPT_TESTS_TIMEOUT_FACTOR on slow machines.
TIMEOUT = 10.0 * float(os.environ.get("MESIBOSCRIPT_TESTS_TIMEOUT_FACTOR", "1"))
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Recorder:
    """Attaches all four handlers and records (kind, readyState, details) in order."""

    def __init__(self, ws: mesiboscript.WebSocket) -> None:
        self.ws = ws
        self.events: list[tuple[Any, ...]] = []
        self.messages: list[Any] = []
        self.opened = threading.Event()
        self.closed = threading.Event()
        self.close_data: Optional[mesiboscript.CloseData] = None
        self.error: Optional[mesiboscript.SocketError] = None
        ws.onopen = self._open
        ws.onmessage = self._message
        ws.onerror = self._error
        ws.onclose = self._close

    def _open(self) -> None:
        self.events.append(("open", int(self.ws.readyState)))
        self.opened.set()

    def _message(self, event: mesiboscript.MessageData) -> None:
        self.events.append(("message", int(self.ws.readyState)))
        self.messages.append(event.data)

    def _error(self, error: mesiboscript.SocketError) -> None:
        self.error = error
        self.events.append(("error", int(self.ws.readyState)))

    def _close(self, event: mesiboscript.CloseData) -> None:
        self.close_data = event
        self.events.append(("close", int(self.ws.readyState), event.code, event.wasClean))
        self.closed.set()

    def wait_closed(self) -> mesiboscript.CloseData:
        assert self.closed.wait(TIMEOUT), f"no close event; events so far: {self.events}"
        assert self.close_data is not None
        return self.close_data

    def kinds(self) -> list[str]:
        return [e[0] for e in self.events]


class AsyncServers:
    """One asyncio loop on a thread, hosting `websockets` servers for the whole test session."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="test-servers", daemon=True
        )
        self.thread.start()

    def run(self, coro: Any, timeout: float = TIMEOUT) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def serve(self, handler: Callable[..., Any], ssl: Any = None, **kwargs: Any) -> Any:
        from websockets.asyncio.server import serve

        async def start() -> Any:
            return await serve(handler, "127.0.0.1", 0, ssl=ssl, **kwargs)

        server = self.run(start())
        server.port = server.sockets[0].getsockname()[1]
        return server

    def stop(self, server: Any) -> None:
        async def stop() -> None:
            server.close()
            await server.wait_closed()

        self.run(stop())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.loop.close()


# -- a raw server for misbehaving peers --------------------------------------------------------


def frame(
    opcode: int,
    payload: bytes = b"",
    fin: bool = True,
    rsv: int = 0,
    mask: bool = False,
    length: Optional[int] = None,
) -> bytes:
    """A server frame, possibly malformed on purpose."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if mask:
        key = b"\x01\x02\x03\x04"
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        head += key
    return head + payload


def close_frame(code: Optional[int] = None, reason: bytes = b"") -> bytes:
    return frame(0x8, b"" if code is None else struct.pack("!H", code) + reason)


class RawConnection:
    """The server side of one accepted connection, in blocking mode with a timeout."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(TIMEOUT)
        self.buf = b""
        self.request = b""

    def recv_until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("client closed")
            self.buf += chunk
        head, _, self.buf = self.buf.partition(marker)
        return head

    def handshake(
        self, status: str = "101 Switching Protocols", extra: str = "", accept: Optional[str] = None
    ) -> bytes:
        """Answer the upgrade request (correctly unless told otherwise); return the request."""
        self.request = self.recv_until(b"\r\n\r\n")
        key = b""
        for line in self.request.split(b"\r\n"):
            if line.lower().startswith(b"sec-websocket-key:"):
                key = line.split(b":", 1)[1].strip()
        if accept is None:
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        self.sock.sendall(
            (
                f"HTTP/1.1 {status}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n{extra}\r\n"
            ).encode()
        )
        return self.request

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("client closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self) -> tuple[int, bytes]:
        """One client frame: (opcode, unmasked payload)."""
        b0, b1 = self.read_exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.read_exact(8))[0]
        key = self.read_exact(4) if b1 & 0x80 else b"\0\0\0\0"
        data = self.read_exact(n)
        return b0 & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(data))

    def read_close_code(self) -> Optional[int]:
        """Read frames until the client's close frame; its code (None for an empty body)."""
        while True:
            opcode, payload = self.read_frame()
            if opcode == 0x8:
                return struct.unpack("!H", payload[:2])[0] if payload else None

    def wait_eof(self) -> bool:
        """True once the client has closed its side."""
        try:
            while self.sock.recv(65536):
                pass
        except OSError:
            pass
        return True


class RawServer:
    """A TCP (or TLS) server on 127.0.0.1:0 that runs ``script(conn)`` on a thread per
    connection. Records how many connections it accepted, every request head a script read, and
    every script's result (or the exception that ended it)."""

    def __init__(
        self, script: Callable[[RawConnection], Any], tls: Optional[ssl.SSLContext] = None
    ) -> None:
        self.script = script
        self.tls = tls
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.accepted = 0
        self.requests: list[bytes] = []
        self.results: list[Any] = []
        self.lock = threading.Lock()
        self.finished = threading.Condition(self.lock)
        self.threads: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._accept, name="raw-server", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}/"

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        result: Any = None
        conn: Optional[RawConnection] = None
        try:
            sock.settimeout(TIMEOUT)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            conn = RawConnection(sock)
            result = self.script(conn)
        except Exception as exc:  # the client's behaviour under test may break the script
            result = exc
        finally:
            sock.close()
            with self.finished:
                if conn is not None and conn.request:
                    self.requests.append(conn.request)
                self.results.append(result)
                self.finished.notify_all()

    def wait_results(self, count: int = 1) -> list[Any]:
        """Wait until ``count`` scripts have finished; all results so far, in finishing order."""
        with self.finished:
            ok = self.finished.wait_for(lambda: len(self.results) >= count, TIMEOUT)
        assert ok, f"the server script did not finish: {self.results}"
        return self.results

    def result(self) -> Any:
        """The first script's result."""
        return self.wait_results(1)[0]

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        self.listener.close()
        self.thread.join(TIMEOUT)
        for thread in self.threads:
            thread.join(TIMEOUT)

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def free_port() -> int:
    """A port with nothing listening (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = TIMEOUT) -> None:
    """Poll a condition that no event signals (a handler's side effect seen from the test)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def interruptible(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    """Start a child Python with pipes; the test stops it with SIGINT, as Ctrl+C would.

    The child handles SIGINT only if it does not inherit it ignored: conftest sees to that.
    """
    return subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )
