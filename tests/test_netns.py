"""Links that die silently, in network namespaces made by the test.

Two namespaces joined by a veth pair: the server (tests/netns_peers.py) in one, the client in the
other, each a child process started with ``ip netns exec``. The link is cut by an nftables rule
in the server's namespace that drops every packet, both ways: neither end hears anything (no
reset, no unreachable). Everything made is removed afterwards. Without root, ``ip`` or ``nft``,
these tests skip, saying why; nothing else depends on them.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from .helpers import TIMEOUT

ROOT = Path(__file__).parent.parent
SERVER_IP, CLIENT_IP = "10.213.0.1", "10.213.0.2"
# Measured detection times, for the report (printed at the end of the module with -s).
DETECTION: list[tuple[float, float, float]] = []


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)


class Peer:
    """A child process in a namespace; its JSON-line events arrive on a queue."""

    def __init__(self, namespace: str, *args: str) -> None:
        argv = ["ip", "netns", "exec", namespace, sys.executable, "-m", "tests.netns_peers"]
        self.proc = subprocess.Popen(
            [*argv, *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                continue

    def expect(
        self, predicate: Callable[[dict[str, Any]], bool], what: str, timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                event = self.events.get(timeout=max(remaining, 0))
            except queue.Empty:
                raise AssertionError(f"no {what} within {timeout} s; saw {self.seen}") from None
            self.seen.append(event)
            if predicate(event):
                return event

    def tell(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(TIMEOUT)
        self._reader.join(TIMEOUT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class Link:
    """Two namespaces and a veth pair between them; :meth:`cut` and :meth:`restore`."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}"
        self.server_ns, self.client_ns = f"msc{tag}s", f"msc{tag}c"
        self._made: list[str] = []
        self.cut_at = 0.0

    def make(self) -> None:
        if os.geteuid() != 0:
            pytest.skip("SKIPPED LOUDLY: link-fault tests need root (ip netns, nftables)")
        for tool in ("ip", "nft"):
            if shutil.which(tool) is None and shutil.which(tool, path="/usr/sbin:/sbin") is None:
                pytest.skip(f"SKIPPED LOUDLY: {tool} is not installed (iproute2, nftables)")
        veth_s, veth_c = f"{self.server_ns}v", f"{self.client_ns}v"
        steps = [
            ["ip", "netns", "add", self.server_ns],
            ["ip", "netns", "add", self.client_ns],
            ["ip", "link", "add", veth_s, "type", "veth", "peer", "name", veth_c],
            ["ip", "link", "set", veth_s, "netns", self.server_ns],
            ["ip", "link", "set", veth_c, "netns", self.client_ns],
        ]
        for ns, veth, ip in (
            (self.server_ns, veth_s, SERVER_IP),
            (self.client_ns, veth_c, CLIENT_IP),
        ):
            steps += [
                ["ip", "-n", ns, "link", "set", "lo", "up"],
                ["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", veth],
                ["ip", "-n", ns, "link", "set", veth, "up"],
            ]
        for step in steps:
            result = _run(*step)
            if result.returncode != 0:
                message = f"{' '.join(step)}: {result.stderr.strip()}"
                if step[:3] == ["ip", "netns", "add"] and not self._made:
                    pytest.skip(f"SKIPPED LOUDLY: no network namespaces here ({message})")
                raise AssertionError(message)
            if step[:3] == ["ip", "netns", "add"]:
                self._made.append(step[3])

    def cut(self) -> None:
        rules = (
            "table inet msccut {\n"
            " chain i { type filter hook input priority 0; policy drop; }\n"
            " chain o { type filter hook output priority 0; policy drop; }\n"
            "}\n"
        )
        result = subprocess.run(
            ["ip", "netns", "exec", self.server_ns, "nft", "-f", "-"],
            input=rules,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        self.cut_at = time.monotonic()

    def restore(self) -> None:
        result = _run(
            "ip", "netns", "exec", self.server_ns, "nft", "delete", "table", "inet", "msccut"
        )
        assert result.returncode == 0, result.stderr

    def remove(self) -> None:
        for ns in reversed(self._made):  # the veth pair goes with its namespaces
            _run("ip", "netns", "del", ns)
        self._made.clear()


@pytest.fixture
def link() -> Iterator[Link]:
    made = Link()
    try:
        made.make()
        yield made
    finally:
        made.remove()


@pytest.fixture
def peers(link: Link) -> Iterator[Callable[..., Peer]]:
    started: list[Peer] = []

    def start(namespace: str, *args: str) -> Peer:
        peer = Peer(namespace, *args)
        started.append(peer)
        return peer

    yield start
    for peer in reversed(started):
        peer.stop()


def _data(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event["event"] == "data" and event["data"] == text


def _server(link: Link, peers: Callable[..., Peer]) -> tuple[Peer, int]:
    server = peers(link.server_ns, "server", SERVER_IP)
    port = int(server.expect(lambda e: e["event"] == "port", "the server's port")["port"])
    return server, port


@pytest.mark.parametrize(("interval", "timeout"), [(0.5, 0.5), (1.0, 1.0), (0.25, 1.0)])
def test_half_open_websocket_closes_1006_in_bounded_time(
    link: Link, peers: Callable[..., Peer], interval: float, timeout: float
) -> None:
    _, port = _server(link, peers)
    client = peers(link.client_ns, "ws", SERVER_IP, str(port), str(interval), str(timeout))
    client.expect(lambda e: e["event"] == "open", "open")
    link.cut()
    closed = client.expect(lambda e: e["event"] == "close", "the close event")
    detected = closed["t"] - link.cut_at
    DETECTION.append((interval, timeout, detected))
    assert closed["code"] == 1006
    assert closed["wasClean"] is False
    # The last ping before the cut went at most `interval` earlier; its pong or the next
    # ping's answer is missed within `interval + timeout`.
    assert detected <= interval + timeout + 0.5, f"detected after {detected:.2f} s"


def test_keepalive_socket_reconnects_holds_and_sends_nothing_twice(
    link: Link, peers: Callable[..., Peer]
) -> None:
    server, port = _server(link, peers)
    client = peers(link.client_ns, "socket", SERVER_IP, str(port))
    client.expect(lambda e: e["event"] == "connect", "the first connection")
    before = [f"before-{i}" for i in range(5)]
    for text in before:
        client.tell(f"send {text}")
    for text in before:
        client.expect(_data(text), text)

    link.cut()
    gray = [f"gray-{i}" for i in range(3)]  # handed over while the link is dead, not yet known
    for text in gray:
        client.tell(f"send {text}")
    client.expect(lambda e: e["event"] == "state" and e["state"] == "CONNECTING", "the drop")
    detected = time.monotonic() - link.cut_at
    held = [f"held-{i}" for i in range(5)]  # sent while reconnecting: held
    for text in held:
        client.tell(f"send {text}")
    client.expect(lambda e: e["event"] == "sent" and e["msg"] == held[-1], "the last send")
    sent = {e["msg"]: e for e in client.seen if e["event"] == "sent"}
    assert all(sent[text]["state"] == "CONNECTING" for text in held)

    link.restore()
    restored = time.monotonic()
    client.expect(lambda e: e["event"] == "connect", "the reconnection")
    reconnected = time.monotonic() - restored
    for text in held:
        client.expect(_data(text), text)
    after = [f"after-{i}" for i in range(3)]
    for text in after:
        client.tell(f"send {text}")
    for text in after:
        client.expect(_data(text), text)
    client.tell("close")
    client.expect(lambda e: e["event"] == "closed", "onclose")
    server.expect(lambda e: e["event"] == "disconnect" and e["conn"] >= 2, "the last end")

    received = [e for e in server.seen if e["event"] == "message"]
    texts = [e["msg"] for e in received]
    assert len(texts) == len(set(texts)), f"something was delivered twice: {texts}"
    assert [t for t in texts if t.startswith("before")] == before
    assert {e["conn"] for e in received if e["msg"] in before} == {1}
    second = [e["msg"] for e in received if e["conn"] > 1]
    assert [t for t in second if t.startswith("held")] == held
    assert second[-len(after) :] == after
    lost = [t for t in gray if t not in texts]
    old_conn = [e["msg"] for e in received if e["msg"] in gray and e["conn"] == 1]
    print(
        f"\nkeepalive Socket under a cut link: drop detected after {detected:.2f} s, "
        f"reconnected {reconnected:.2f} s after the link came back; held {len(held)}/{len(held)} "
        f"delivered once; in flight at the cut: {len(gray) - len(lost)} delivered "
        f"({len(old_conn)} on the old connection, by the kernel's retransmission once the link "
        f"came back), {len(lost)} lost, 0 twice"
    )


def teardown_module() -> None:
    for interval, timeout, detected in DETECTION:
        print(
            f"\nhalf-open: ping_interval={interval} ping_timeout={timeout}: "
            f"1006 after {detected:.2f} s"
        )
