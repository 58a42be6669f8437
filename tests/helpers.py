"""Test helpers: the wait unit, the one event recorder, free ports, certificates, and servers.

Standard library only at import (``tests/rawserver.py`` and ``tests/parity/record.py`` use it
without the package): mesiboscript, websockets and trustme load when a helper is used.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

if TYPE_CHECKING:
    import mesiboscript

# One scaled unit for every wait: raise MESIBOSCRIPT_TESTS_TIMEOUT_FACTOR on slow machines.
TIMEOUT = 10.0 * float(os.environ.get("MESIBOSCRIPT_TESTS_TIMEOUT_FACTOR", "1"))


class Recorder:
    """Records one connection's events in order, as (kind, readyState, details), for a test to
    check and wait on. The tests' one event recorder.

    A WebSocket (client, or a server's connection) gets its four ``on*`` handlers and records
    ``("open", rs)``, ``("message", rs)``, ``("error", rs)``, ``("close", rs, code, wasClean)``;
    ``messages`` holds the data, ``errors``/``error`` the SocketErrors, ``close_data`` the close
    event, ``close_after`` its time in seconds after the recorder was made.

    A Mesibo ``Socket`` gets ``onconnect``/``ondata``/``onwrite``/``onclose`` and records
    ``("connect", rs)``, ``("data",)``, ``("write", nbytes)``, ``("close", rs)``; ``data`` joins
    the bytes received, ``written`` lists onwrite's counts, ``connects`` counts connections, and
    ``on_connect(socket, n)`` runs in the n-th onconnect.

    ``on_message(event)`` (WebSocket) runs in onmessage once the message is recorded: a test's
    own reaction (an echo), where a second listener cannot be added.
    """

    def __init__(
        self,
        conn: Any,
        on_connect: Optional[Callable[[Any, int], None]] = None,
        on_message: Optional[Callable[[Any], None]] = None,
    ) -> None:
        from mesiboscript import Socket

        self.ws = conn
        self.s = conn
        self.events: list[tuple[Any, ...]] = []
        self.messages: list[Any] = []
        self.errors: list[mesiboscript.SocketError] = []
        self.error: Optional[mesiboscript.SocketError] = None
        self.close_data: Optional[mesiboscript.CloseData] = None
        self.close_after: Optional[float] = None
        self.data = bytearray()
        self.written: list[int] = []
        self.connects = 0
        self.threads: set[str] = set()
        self.cond = threading.Condition()
        self.opened = threading.Event()
        self.closed = threading.Event()
        self._t0 = time.monotonic()
        self._on_connect = on_connect
        self._on_message = on_message
        if isinstance(conn, Socket):
            conn.onconnect = self._connect
            conn.ondata = self._data
            conn.onwrite = self._write
            conn.onclose = self._socket_close
        else:
            conn.onopen = self._open
            conn.onmessage = self._message
            conn.onerror = self._error
            conn.onclose = self._close

    def _note(self, *event: Any) -> None:
        with self.cond:
            self.events.append(event)
            self.threads.add(threading.current_thread().name)
            self.cond.notify_all()

    # -- WebSocket -----------------------------------------------------------------------------

    def _open(self) -> None:
        self._note("open", int(self.ws.readyState))
        self.opened.set()

    def _message(self, event: mesiboscript.MessageData) -> None:
        with self.cond:
            self.messages.append(event.data)
        self._note("message", int(self.ws.readyState))
        if self._on_message is not None:
            self._on_message(event)

    def _error(self, error: mesiboscript.SocketError) -> None:
        with self.cond:
            self.error = error
            self.errors.append(error)
        self._note("error", int(self.ws.readyState))

    def _close(self, event: mesiboscript.CloseData) -> None:
        self.close_data = event
        self.close_after = time.monotonic() - self._t0
        self._note("close", int(self.ws.readyState), event.code, event.wasClean)
        self.closed.set()

    # -- Socket --------------------------------------------------------------------------------

    def _connect(self, s: Any) -> None:
        assert s is self.s
        self.connects += 1
        self._note("connect", int(s.readyState))
        self.opened.set()
        if self._on_connect is not None:
            self._on_connect(s, self.connects)

    def _data(self, s: Any, data: Any) -> None:
        with self.cond:
            self.messages.append(data)
            if isinstance(data, bytes):
                self.data += data
        self._note("data")

    def _write(self, s: Any, nbytes: int) -> None:
        with self.cond:
            self.written.append(nbytes)
        self._note("write", nbytes)

    def _socket_close(self, s: Any) -> None:
        self.close_after = time.monotonic() - self._t0
        self._note("close", int(s.readyState))
        self.closed.set()

    # -- waiting -------------------------------------------------------------------------------

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
        """Wait until ``predicate()`` (checked at each event) holds."""
        with self.cond:
            ok = self.cond.wait_for(predicate, timeout)
        assert ok, f"timed out waiting for {what}; events: {self.events[-20:]}"

    def wait_data(self, size: int) -> bytes:
        """A Socket's bytes, once at least ``size`` arrived."""
        self.wait(lambda: len(self.data) >= size, f"{size} bytes")
        return bytes(self.data)

    def wait_closed(self, timeout: float = TIMEOUT) -> mesiboscript.CloseData:
        """Wait for the close event; its CloseData (None for a Socket, whose onclose has none)."""
        assert self.closed.wait(timeout), f"no close event; events so far: {self.events[-20:]}"
        return self.close_data  # type: ignore[return-value]

    def kinds(self) -> list[str]:
        """The kinds of events, in order (a Socket's onwrite left out)."""
        return [e[0] for e in self.events if e[0] != "write"]


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


def closing_server(servers: AsyncServers) -> tuple[Any, list[Any], threading.Event]:
    """A server that records each connection's close code: ``(server, codes, closed)``, where
    ``closed`` is set each time a connection has ended."""
    codes: list[Any] = []
    closed = threading.Event()

    async def handler(conn: Any) -> None:
        await conn.wait_closed()
        codes.append(conn.close_code)
        closed.set()

    return servers.serve(handler), codes, closed


# -- ports and certificates ----------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released): connecting to it is refused,
    and a server started later may bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Certificates:
    """Certificates made at test time (trustme), all signed by one throwaway CA. The tests' one
    TLS helper.

    Built on :class:`mesiboscript.testing.CertificateAuthority`; conftest's ``certs`` wraps the
    plugin's session ``echo_ca``, so the echo servers and every server a test starts share one
    trust root (``cafile``, ``client_context()``). ``Certificates()`` makes a CA of its own: one
    that clients do not trust.
    """

    def __init__(self, authority: Any = None) -> None:
        from mesiboscript.testing import CertificateAuthority

        self._owned = authority is None
        self.authority = CertificateAuthority() if authority is None else authority
        self.trustme: Any = self.authority.trustme
        self.cafile: str = self.authority.cafile

    def server_context(self, *hosts: str, expired: bool = False) -> ssl.SSLContext:
        """A server context with a certificate for ``hosts`` (default 127.0.0.1 and localhost);
        ``expired``: valid last month, expired yesterday."""
        dates: dict[str, Any] = {}
        if expired:
            now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
            dates = {
                "not_before": now - datetime.timedelta(days=30),
                "not_after": now - datetime.timedelta(days=1),
            }
        cert = self.trustme.issue_cert(*(hosts or ("127.0.0.1", "localhost")), **dates)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA (and checks host names)."""
        context: ssl.SSLContext = self.authority.client_context()
        return context

    def pem_files(self, folder: Path, *hosts: str) -> dict[str, str]:
        """PEM files for servers outside Python (socat, openssl): ``cert`` (the chain), ``key``,
        and ``ca`` (what a client trusts), for ``hosts`` (default localhost and 127.0.0.1)."""
        leaf = self.trustme.issue_cert(*(hosts or ("localhost", "127.0.0.1")))
        paths = {"cert": folder / "cert.pem", "key": folder / "key.pem", "ca": folder / "ca.pem"}
        paths["cert"].write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(paths["key"]))
        self.trustme.cert_pem.write_to_path(str(paths["ca"]))
        return {name: str(path) for name, path in paths.items()}

    def close(self) -> None:
        """Remove the CA's files, if this helper made the CA."""
        if self._owned:
            self.authority.close()


# -- waiting and child processes --------------------------------------------------------------


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


def on_loop(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on the library's I/O thread and wait for what it returns (or raises)."""
    from mesiboscript._loop import get_loop  # here: this module imports only the stdlib

    done = threading.Event()
    result: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # re-raised in the test thread
            errors.append(exc)
        finally:
            done.set()

    get_loop().call_soon_threadsafe(run)
    assert done.wait(TIMEOUT)
    if errors:
        raise errors[0]
    return result[0]


class Terminal:
    """A command run in a pseudo-terminal (POSIX), read as a person sees it: ``screen`` is
    everything it printed so far."""

    def __init__(self, *args: str, cwd: Union[str, Path, None] = None) -> None:
        import pty

        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            close_fds=True,
        )
        os.close(slave)
        self.screen = b""

    def read_until(self, marker: bytes) -> None:
        """Read what the program prints until ``marker`` has appeared (fails after TIMEOUT)."""
        import select

        deadline = time.monotonic() + TIMEOUT
        while marker not in self.screen:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"never saw {marker!r}; the terminal shows {self.screen!r}"
            if select.select([self.master], [], [], remaining)[0]:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # EIO: the program closed the terminal
                    chunk = b""
                assert chunk, f"terminal closed before {marker!r}; it shows {self.screen!r}"
                self.screen += chunk

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self.master)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Tmux:
    """A shell command run in a tmux pane: a real terminal emulator, read as a person sees it.

    ``screen()`` is what the pane shows now (``colours=True``: with its colour codes);
    ``wait_for`` polls it until a condition holds or TIMEOUT passes (the pane announces nothing:
    polling what is shown is the only wait there is). ``keys`` sends tmux key names (``Left``,
    ``C-d``, ``Enter``); ``type`` sends text literally. The pane stays after its command exits, so
    the last screen can still be read. Each helper has a tmux server of its own.
    """

    def __init__(
        self, command: str, cwd: Union[str, Path, None] = None, size: tuple[int, int] = (100, 30)
    ) -> None:
        import shutil
        import tempfile

        tmux = shutil.which("tmux")
        assert tmux, "tmux is not installed (.ci/run installs it)"
        self._dir = tempfile.mkdtemp(prefix="mesiboscript-tmux-")
        config = Path(self._dir) / "tmux.conf"
        # remain-on-exit before the command starts: a quick exit still leaves its screen.
        config.write_text("set -g remain-on-exit on\nset -g history-limit 1000\n")
        self._base = [tmux, "-S", str(Path(self._dir) / "socket"), "-f", str(config)]
        width, height = size
        self._tmux(
            "new-session", "-d", "-s", "test", "-x", str(width), "-y", str(height),
            "-c", str(cwd or os.getcwd()), command,
        )  # fmt: skip

    def _tmux(self, *args: str) -> str:
        result = subprocess.run(
            [*self._base, *args], capture_output=True, text=True, timeout=TIMEOUT
        )
        assert result.returncode == 0, f"tmux {args}: {result.stderr}"
        return result.stdout

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "test", *keys)

    def type(self, text: str) -> None:
        self._tmux("send-keys", "-t", "test", "-l", text)

    def screen(self, colours: bool = False) -> str:
        """What the pane shows, with what scrolled off the top above it."""
        options = ["-p", "-S", "-", "-t", "test", *(["-e"] if colours else [])]
        return self._tmux("capture-pane", *options)

    def lines(self) -> list[str]:
        """The screen's lines, trailing blank ones left out."""
        shown = [line.rstrip() for line in self.screen().splitlines()]
        while shown and not shown[-1]:
            shown.pop()
        return shown

    def cursor(self) -> tuple[int, int]:
        x, y = self._tmux("display-message", "-p", "-t", "test", "#{cursor_x} #{cursor_y}").split()
        return int(x), int(y)

    def wait_for(
        self, condition: Union[str, Callable[[], bool]], what: str = "", timeout: float = TIMEOUT
    ) -> None:
        """Wait until the screen shows ``condition`` (a str) or ``condition()`` holds."""

        def shown() -> bool:
            return isinstance(condition, str) and condition in self.screen()

        check: Callable[[], bool] = shown if isinstance(condition, str) else condition
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, (
                f"timed out waiting for {what or condition!r}; the screen shows:\n{self.screen()}"
            )
            time.sleep(0.05)  # a tmux client per poll: not faster

    def close(self) -> None:
        import shutil

        subprocess.run([*self._base, "kill-server"], capture_output=True, timeout=TIMEOUT)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Tmux:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
