"""Echo servers for tests: ``ws``, ``wss``, ``sock`` and ``socks`` on port 0, scriptable.

``ws``/``wss`` run on the ``websockets`` package's asyncio server; ``sock``/``socks`` on
``asyncio.start_server``. Each server owns one event loop on one background thread, started by the
constructor and stopped by :meth:`EchoServer.close` (or the ``with`` block).

A connection's behaviour is a small script: the constructor's ``greeting``, ``delay`` and
``script`` options, then, for ``ws``/``wss``, the commands in the URL path (see
:func:`parse_script`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import weakref
from collections.abc import Sequence
from http import HTTPStatus
from types import TracebackType
from typing import Any, Optional, Union
from urllib.parse import unquote

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from ..server import _BackgroundLoop

__all__ = ["SCHEMES", "CertificateAuthority", "EchoServer", "parse_script"]

SCHEMES = ("ws", "wss", "sock", "socks")
_TLS_SCHEMES = ("wss", "socks")

# A step of a connection's script: ("greet", data), ("delay", seconds), ("echo", count or None),
# ("close", code or None, reason), ("drop",), ("status", http_status).
Step = tuple[Any, ...]

_TERMINAL = ("close", "drop", "status")


def parse_script(path: str, scheme: str = "ws") -> list[Step]:
    """Parse a behaviour script written as a URL path.

    Commands, applied in order to each connection:

    - ``/greet/<text>``: send ``text`` (percent-decoded).
    - ``/delay/<ms>``: wait ``ms`` milliseconds before each later echo.
    - ``/echo/<n>``: echo ``n`` messages (``sock``/``socks``: ``n`` lines, each echoed when its
      ``\\n`` arrives), then go on with the script.
    - ``/close[/<code>[/<reason>]]``: close (ws: with that close frame; no code sends an empty
      one, which the client reports as 1005; sock: a clean TCP close). Ends the script.
    - ``/drop``: drop the TCP connection without a close frame (sock: with a reset). Ends it.
    - ``/status/<code>``: refuse the WebSocket handshake with that HTTP status (ws only, first).

    After the last command the server echoes until the client closes. A path whose first segment is
    not a command (``/``, ``/chat``) is plain echo. Anything malformed raises ``ValueError``.
    """
    resource = path.split("?", 1)[0].strip("/")
    segments = [unquote(part) for part in resource.split("/")] if resource else []
    if not segments or segments[0] not in ("greet", "delay", "echo", *_TERMINAL):
        return []
    stream = scheme in ("sock", "socks")
    steps: list[Step] = []
    i = 0

    def arg(command: str) -> str:
        nonlocal i
        if i >= len(segments):
            raise ValueError(f"{command!r} needs an argument in {path!r}")
        value = segments[i]
        i += 1
        return value

    while i < len(segments):
        command = segments[i]
        i += 1
        if command == "greet":
            steps.append(("greet", arg(command)))
        elif command == "delay":
            text = arg(command)
            try:
                ms = float(text)
            except ValueError:
                raise ValueError(f"delay must be a number of milliseconds, not {text!r}") from None
            if not 0 <= ms <= 600_000:
                raise ValueError(f"delay must be 0-600000 ms, not {text!r}")
            steps.append(("delay", ms / 1000.0))
        elif command == "echo":
            count: Optional[int] = None
            if i < len(segments) and segments[i].isdigit():
                count = int(segments[i])
                i += 1
            steps.append(("echo", count))
        elif command == "close":
            code: Optional[int] = None
            reason = ""
            if i < len(segments):
                if stream:
                    raise ValueError(f"{scheme}:// close takes no code or reason: {path!r}")
                if not segments[i].isdigit():
                    raise ValueError(f"close code must be a number, not {segments[i]!r}")
                code = int(segments[i])
                if not (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999):
                    raise ValueError(f"{code} is not a close code a server may send")
                i += 1
                if i < len(segments):
                    reason = segments[i]
                    i += 1
                    if len(reason.encode("utf-8")) > 123:
                        raise ValueError("a close reason is at most 123 UTF-8 bytes")
            steps.append(("close", code, reason))
        elif command == "drop":
            steps.append(("drop",))
        elif command == "status":
            if stream:
                raise ValueError(f"{scheme}:// has no handshake to refuse: {path!r}")
            if steps:
                raise ValueError(f"status must come first: {path!r}")
            text = arg(command)
            if not text.isdigit() or not 200 <= int(text) <= 599 or int(text) == 101:
                raise ValueError(f"status must be an HTTP status in 200-599, not {text!r}")
            steps.append(("status", int(text)))
        else:
            raise ValueError(f"unknown echo server command {command!r} in {path!r}")
        if steps[-1][0] in _TERMINAL and i < len(segments):
            raise ValueError(f"nothing may follow {command!r} in {path!r}")
    return steps


class CertificateAuthority:
    """A throwaway certificate authority (made with ``trustme``) and a server certificate.

    The server certificate covers ``127.0.0.1``, ``localhost`` and ``::1`` unless ``hosts`` says
    otherwise. Files live in a temporary folder removed by :meth:`close` (or garbage collection).

    Attributes:
        cafile: Path of the CA certificate (PEM): what a client is told to trust.
        certfile: Path of the server certificate chain (PEM), for servers such as socat.
        keyfile: Path of the server's private key (PEM).
    """

    def __init__(self, hosts: Sequence[str] = ("127.0.0.1", "localhost", "::1")) -> None:
        try:
            import trustme
        except ImportError as exc:
            raise ImportError(
                "certificates for test servers need the 'trustme' package: "
                "pip install 'mesiboscript[testing]'"
            ) from exc
        self.trustme = trustme.CA()
        self._leaf = self.trustme.issue_cert(*hosts)
        self._dir = tempfile.mkdtemp(prefix="mesiboscript-ca-")
        self._finalizer = weakref.finalize(self, shutil.rmtree, self._dir, True)
        self.cafile = os.path.join(self._dir, "ca.pem")
        self.certfile = os.path.join(self._dir, "server-chain.pem")
        self.keyfile = os.path.join(self._dir, "server-key.pem")
        self.trustme.cert_pem.write_to_path(self.cafile)
        with open(self.certfile, "wb") as chain:
            for blob in self._leaf.cert_chain_pems:
                chain.write(blob.bytes())
        self._leaf.private_key_pem.write_to_path(self.keyfile)

    def client_context(self) -> ssl.SSLContext:
        """A client ``ssl.SSLContext`` that trusts this CA (and verifies host names)."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.trustme.configure_trust(context)
        return context

    def server_context(self) -> ssl.SSLContext:
        """A server ``ssl.SSLContext`` holding the certificate this CA issued."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._leaf.configure_cert(context)
        return context

    def close(self) -> None:
        """Remove the temporary files."""
        self._finalizer()

    def __enter__(self) -> CertificateAuthority:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()


class EchoServer:
    """An echo server on ``127.0.0.1`` and a free port, running until :meth:`close`.

    ``EchoServer("ws")`` echoes every message back (text as text, binary as binary);
    ``EchoServer("sock")`` echoes bytes as they arrive (a counted ``/echo/<n>`` counts lines).
    ``wss`` and ``socks`` use a certificate from a :class:`CertificateAuthority` made on the fly
    (or the one passed as ``ca``): clients trust it through ``server.ca.cafile`` or
    ``server.ca.client_context()``.

    Use it as a context manager::

        with EchoServer("ws") as server:
            ws = WebSocket(server.url)                  # echo
            ws = WebSocket(server.url + "close/4000/bye")  # closes with 4000 "bye"

    Args:
        scheme: ``ws``, ``wss``, ``sock`` or ``socks``.
        host: Address to bind.
        port: Port (0: a free one).
        greeting: Sent to each client on connect (``str`` as text, ``bytes`` as binary).
        delay: Seconds to wait before each echo.
        script: Behaviour for every connection, in the URL path syntax of :func:`parse_script`
            (for ``ws``/``wss`` the request's own path is applied after it).
        ca: The :class:`CertificateAuthority` to use for ``wss``/``socks``.
        subprotocols: Subprotocols the ``ws``/``wss`` server accepts.
        max_size: Largest message a ``ws``/``wss`` client may send (bigger: close 1009).
        ping_interval: Seconds between the ``ws``/``wss`` server's pings (``None``: none).
    """

    def __init__(
        self,
        scheme: str = "ws",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        greeting: Union[str, bytes, None] = None,
        delay: float = 0.0,
        script: Optional[str] = None,
        ca: Optional[CertificateAuthority] = None,
        subprotocols: Optional[Sequence[str]] = None,
        max_size: Optional[int] = 2**20,
        ping_interval: Optional[float] = None,
    ) -> None:
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, not {scheme!r}")
        if delay < 0:
            raise ValueError("delay must be >= 0")
        if ca is not None and scheme not in _TLS_SCHEMES:
            raise ValueError(f"{scheme}:// does not use TLS: ca= makes no sense")
        steps: list[Step] = []
        if greeting is not None:
            if not isinstance(greeting, (str, bytes)):
                raise TypeError("greeting must be str or bytes")
            steps.append(("greet", greeting))
        if delay:
            steps.append(("delay", float(delay)))
        if script is not None:
            steps.extend(parse_script(script, scheme))
            if any(step[0] == "status" for step in steps):
                raise ValueError("status/<code> belongs in a client's URL, not in script=")
        self._base_steps = steps
        self.scheme = scheme
        self.host = host
        self._owns_ca = False
        self.ca: Optional[CertificateAuthority] = None
        if scheme in _TLS_SCHEMES:
            self._owns_ca = ca is None
            self.ca = ca if ca is not None else CertificateAuthority()
        self.connection_count = 0  # connections accepted so far
        self.open_connections = 0  # connections not yet closed
        self._writers: set[asyncio.StreamWriter] = set()
        self._ws_server: Optional[Server] = None
        self._tcp_server: Optional[asyncio.AbstractServer] = None
        self._lock = threading.Lock()
        self._closed = False
        self._bg = _BackgroundLoop(f"mesiboscript-echo-{scheme}")
        context = self.ca.server_context() if self.ca is not None else None
        try:
            self.port: int = self._bg.run(
                self._start(host, port, context, subprotocols, max_size, ping_interval), 30.0
            )
        except BaseException:
            self._bg.stop()
            if self._owns_ca and self.ca is not None:
                self.ca.close()
            raise

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT/`` (append a script: ``url + "close/4000/bye"``), or
        ``sock://127.0.0.1:PORT``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.scheme in ("ws", "wss"):
            return f"{self.scheme}://{host}:{self.port}/"
        return f"{self.scheme}://{host}:{self.port}"

    def __repr__(self) -> str:
        return f"<EchoServer {self.url}{' closed' if self._closed else ''}>"

    def __enter__(self) -> EchoServer:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop: ``ws`` clients get 1001, ``sock`` clients a TCP close; the thread ends."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._bg.run(self._stop(), 30.0)
        finally:
            self._bg.stop()
            if self._owns_ca and self.ca is not None:
                self.ca.close()

    # -- on the loop thread ------------------------------------------------------------------

    async def _start(
        self,
        host: str,
        port: int,
        context: Optional[ssl.SSLContext],
        subprotocols: Optional[Sequence[str]],
        max_size: Optional[int],
        ping_interval: Optional[float],
    ) -> int:
        if self.scheme in ("ws", "wss"):
            self._ws_server = await serve(
                self._ws_handler,
                host,
                port,
                ssl=context,
                process_request=self._process_request,
                subprotocols=[Subprotocol(p) for p in subprotocols] if subprotocols else None,
                max_size=max_size,
                ping_interval=ping_interval,
                server_header="mesiboscript-echo",
            )
            sockets = self._ws_server.sockets
        else:
            self._tcp_server = await asyncio.start_server(
                self._tcp_handler, host, port, ssl=context
            )
            sockets = self._tcp_server.sockets
        port_bound: int = next(iter(sockets)).getsockname()[1]
        return port_bound

    async def _stop(self) -> None:
        if self._ws_server is not None:
            self._ws_server.close()  # 1001 to every client
            try:
                await asyncio.wait_for(self._ws_server.wait_closed(), 5.0)
            except asyncio.TimeoutError:
                for conn in list(self._ws_server.connections):
                    conn.transport.abort()
        if self._tcp_server is not None:
            self._tcp_server.close()
            for writer in list(self._writers):
                writer.close()
            try:
                await asyncio.wait_for(self._tcp_server.wait_closed(), 5.0)
            except asyncio.TimeoutError:
                for writer in list(self._writers):
                    writer.transport.abort()

    def _process_request(self, conn: ServerConnection, request: Request) -> Optional[Response]:
        try:
            steps = parse_script(request.path, self.scheme)
        except ValueError as exc:
            return _respond(HTTPStatus.NOT_FOUND, f"{exc}\n")
        if steps and steps[0][0] == "status":
            return _respond(steps[0][1], "refused by the test server's script\n")
        return None

    async def _ws_handler(self, conn: ServerConnection) -> None:
        self.connection_count += 1
        self.open_connections += 1
        path = conn.request.path if conn.request is not None else "/"
        steps = self._base_steps + parse_script(path, self.scheme)
        delay = 0.0
        try:
            for step in steps:
                kind = step[0]
                if kind == "greet":
                    await conn.send(step[1])
                elif kind == "delay":
                    delay = step[1]
                elif kind == "echo":
                    await self._ws_echo(conn, delay, step[1])
                elif kind == "close":
                    # No code: an empty close frame (the client reports 1005). websockets'
                    # annotation (which varies by version) says int only.
                    close: Any = conn.close
                    await close(step[1], step[2])
                    return
                elif kind == "drop":
                    conn.transport.abort()
                    return
            await self._ws_echo(conn, delay, None)
        except ConnectionClosed:
            pass
        finally:
            await conn.wait_closed()
            self.open_connections -= 1

    async def _ws_echo(self, conn: ServerConnection, delay: float, count: Optional[int]) -> None:
        done = 0
        while count is None or done < count:
            message = await conn.recv()
            if delay:
                await asyncio.sleep(delay)
            await conn.send(message)
            done += 1

    async def _tcp_handler(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connection_count += 1
        self.open_connections += 1
        self._writers.add(writer)
        delay = 0.0
        try:
            for step in self._base_steps:
                kind = step[0]
                if kind == "greet":
                    data = step[1]
                    writer.write(data.encode("utf-8") if isinstance(data, str) else data)
                    await writer.drain()
                elif kind == "delay":
                    delay = step[1]
                elif kind == "echo":
                    if not await self._tcp_echo(reader, writer, delay, step[1]):
                        return
                elif kind == "close":
                    return  # the finally block closes cleanly
                elif kind == "drop":
                    _reset(writer)
                    return
            await self._tcp_echo(reader, writer, delay, None)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            if not writer.transport.is_closing():
                writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 5.0)
            except (ConnectionError, ssl.SSLError, asyncio.TimeoutError):
                writer.transport.abort()
            self.open_connections -= 1

    async def _tcp_echo(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        delay: float,
        count: Optional[int],
    ) -> bool:
        """Echo ``count`` lines (None: everything, as it arrives, until EOF). False once the client
        has closed.

        A stream has no messages, so a counted echo counts lines, as a person typing into
        ``connect sock://`` or ``nc`` sees them: each line is echoed once its ``\\n`` has
        arrived, and bytes after the last counted line wait for the next step of the script. A
        client that closes mid-line gets the partial line back.
        """
        if count is None:
            while True:
                data = await reader.read(65536)
                if not data:
                    return False
                await self._tcp_send(writer, delay, data)
        for _ in range(count):
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as exc:
                    if exc.partial:
                        await self._tcp_send(writer, delay, exc.partial)
                    return False
                except asyncio.LimitOverrunError as exc:
                    # A line longer than the reader's buffer: echo what came, keep counting it.
                    await self._tcp_send(writer, 0.0, await reader.read(exc.consumed))
                    continue
                await self._tcp_send(writer, delay, line)
                break
        return True

    @staticmethod
    async def _tcp_send(writer: asyncio.StreamWriter, delay: float, data: bytes) -> None:
        if delay:
            await asyncio.sleep(delay)
        writer.write(data)
        await writer.drain()


def _respond(status: int, text: str) -> Response:
    body = text.encode("utf-8")
    headers = Headers(
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    )
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Refused"
    return Response(status, phrase, headers, body)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0) instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass  # not a TCP socket after all: a plain abort will do
    writer.transport.abort()
