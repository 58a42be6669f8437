"""Real proxies for the tests, each on a free loopback port with a generated configuration.

- ``tinyproxy``: HTTP CONNECT, with or without Basic authentication.
- ``microsocks``: SOCKS 5, with or without a user name and password.
- ``danted`` (Dante): SOCKS 4 (it answers SOCKS 4a requests with "rejected").
- ``socat`` with a certificate in front of a tinyproxy: an ``https://`` proxy.
- :class:`Socks4aServer`: a small SOCKS 4/4a server written here, since no Debian proxy speaks 4a
  (Dante rejects it, microsocks speaks only 5); it can require a user id.

The Debian packages are installed by ``.ci/run``; a test whose proxy is missing skips saying which
package to install.
"""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Optional

import pytest

from .helpers import TIMEOUT, free_port

USER, PASSWORD = "user", "s3cret"


def _need(program: str, package: str) -> str:
    path = shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin")
    if path is None:
        pytest.skip(f"{program} is not installed: apt-get install {package} (.ci/run does)")
    return path


def wait_listening(port: int, proc: Optional[subprocess.Popen[bytes]] = None) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                pytest.fail(f"{proc.args!r} exited ({proc.returncode}) before listening")
            if time.monotonic() > deadline:
                pytest.fail(f"nothing listens on port {port} after {TIMEOUT} s")
            time.sleep(0.02)  # polling for readiness, not for correctness


class ProxyProcess:
    """A proxy in a child process: ``port``, ``url(credentials)`` and ``stop()``."""

    def __init__(self, scheme: str, argv: list[str], port: int, cwd: Path) -> None:
        self.scheme = scheme
        self.port = port
        self.log = cwd / f"{Path(argv[0]).name}-{port}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_listening(port, self.proc)
        except BaseException:
            self.stop()
            raise

    def url(self, credentials: Optional[str] = None, scheme: Optional[str] = None) -> str:
        creds = f"{credentials}@" if credentials else ""
        return f"{scheme or self.scheme}://{creds}127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(TIMEOUT)


def tinyproxy(folder: Path, auth: bool = False) -> ProxyProcess:
    program = _need("tinyproxy", "tinyproxy")
    port = free_port()
    config = folder / f"tinyproxy-{port}.conf"
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        "Timeout 60",
        "MaxClients 200",
        "LogLevel Connect",
        "Allow 127.0.0.1",
    ]
    if auth:
        lines.append(f"BasicAuth {USER} {PASSWORD}")
    config.write_text("\n".join(lines) + "\n")
    return ProxyProcess("http", [program, "-d", "-c", str(config)], port, folder)


def microsocks(folder: Path, auth: bool = False) -> ProxyProcess:
    program = _need("microsocks", "microsocks")
    port = free_port()
    argv = [program, "-i", "127.0.0.1", "-p", str(port)]
    if auth:
        argv += ["-u", USER, "-P", PASSWORD]
    return ProxyProcess("socks5", argv, port, folder)


def danted(folder: Path) -> ProxyProcess:
    program = _need("danted", "dante-server")
    port = free_port()
    config = folder / f"danted-{port}.conf"
    config.write_text(
        "logoutput: stderr\n"
        f"internal: 127.0.0.1 port = {port}\n"
        "external: 127.0.0.1\n"
        "clientmethod: none\n"
        "socksmethod: none\n"
        "user.privileged: root\n"
        "user.unprivileged: nobody\n"
        "client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }\n"
        "socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 command: connect }\n"
    )
    pid = folder / f"danted-{port}.pid"
    return ProxyProcess(
        "socks4", [program, "-f", str(config), "-N", "1", "-p", str(pid)], port, folder
    )


def tls_front(folder: Path, pem: dict[str, str], target: ProxyProcess) -> ProxyProcess:
    """``socat`` terminating TLS (a certificate for 127.0.0.1) in front of ``target``."""
    program = _need("socat", "socat")
    port = free_port()
    listen = (
        f"OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,verify=0,"
        f"cert={pem['cert']},key={pem['key']}"
    )
    return ProxyProcess("https", [program, listen, f"TCP:127.0.0.1:{target.port}"], port, folder)


class Socks4aServer:
    """SOCKS 4 and 4a on 127.0.0.1, a thread per connection; ``user_id`` required when set."""

    def __init__(self, user_id: Optional[str] = None) -> None:
        self.scheme = "socks4a"
        self.user_id = user_id
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, credentials: Optional[str] = None, scheme: Optional[str] = None) -> str:
        creds = f"{credentials}@" if credentials else ""
        return f"{scheme or self.scheme}://{creds}127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_until_nul(conn: socket.socket) -> bytes:
        data = b""
        while not data.endswith(b"\x00"):
            chunk = conn.recv(1)
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data[:-1]

    def _handle(self, conn: socket.socket) -> None:
        try:
            head = b""
            while len(head) < 8:
                chunk = conn.recv(8 - len(head))
                if not chunk:
                    return
                head += chunk
            _, _, port = struct.unpack(">BBH", head[:4])
            user = self._read_until_nul(conn).decode()
            host = socket.inet_ntoa(head[4:8])
            if head[4:7] == b"\x00\x00\x00" and head[7]:
                host = self._read_until_nul(conn).decode()
            if self.user_id is not None and user != self.user_id:
                conn.sendall(b"\x00\x5d" + bytes(6))
                return
            try:
                upstream = socket.create_connection((host, port), timeout=TIMEOUT)
            except OSError:
                conn.sendall(b"\x00\x5b" + bytes(6))
                return
            conn.sendall(b"\x00\x5a" + bytes(6))
            with self._lock:
                self._conns.append(upstream)
            threading.Thread(target=_pipe, args=(upstream, conn), daemon=True).start()
            _pipe(conn, upstream)
        except OSError:
            pass
        finally:
            conn.close()

    def stop(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            for conn in self._conns:
                conn.close()
        self._thread.join(TIMEOUT)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
