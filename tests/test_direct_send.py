"""Sends written from the calling thread (``Transport.try_send_now``, issue 18) keep the one
order the README promises: whatever overtakes the I/O thread's queue, nothing does; what the
kernel does not take at once is queued and written before anything sent later; inside a
handler, sends still wait for the pump after the handlers (``bufferedAmount`` counts them)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from mesiboscript import WebSocket
from mesiboscript._transport import Transport

from .helpers import TIMEOUT


@pytest.fixture
def direct_sends(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """What every ``try_send_now`` returned (-1: refused, else bytes taken)."""
    results: list[int] = []
    real = Transport.try_send_now

    def spy(self: Transport, data: Any) -> int:
        taken = real(self, data)
        results.append(taken)
        return taken

    monkeypatch.setattr(Transport, "try_send_now", spy)
    return results


def _open(url: str, compression: Any = None) -> WebSocket:
    # A compressed message is compressed under the link's lock (the compressor's context
    # follows the wire's order), then goes the same way as an uncompressed one.
    ws = WebSocket(url, compression=compression)
    assert ws.upgrade(TIMEOUT)
    if compression is not None:
        assert ws.extensions.startswith("permessage-deflate")
    return ws


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_read_ping_pong_sends_directly(
    echo_url: str, direct_sends: list[int], compression: Any
) -> None:
    ws = _open(echo_url, compression)
    for i in range(50):
        ws.send(f"m{i}")
        assert ws.read(TIMEOUT) == f"m{i}"
    assert ws.bufferedAmount == 0
    ws.close()
    # The request/response pattern is the direct path's case: each send follows an echo.
    assert sum(1 for taken in direct_sends if taken > 0) >= 45


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_handler_sends_race_direct_sends_and_keep_order(
    echo_url: str, direct_sends: list[int], compression: Any
) -> None:
    """The handler's sends (queued, pumped after it returns) happen before the main thread's
    next send, which may go directly: the echo must show them in exactly that order (and,
    compressed, the server inflates each with the context of the one before)."""
    ws = _open(echo_url, compression)
    rounds = 200
    seen: list[str] = []
    echoed = threading.Semaphore(0)
    sent = threading.Semaphore(0)
    done = threading.Event()

    def on_message(event: Any) -> None:
        seen.append(event.data)
        if event.data.startswith("u"):
            i = int(event.data[1:])
            ws.send(f"h{i}a")
            ws.send(f"h{i}b")
            echoed.release()  # after both sends: the main thread's next send comes after them
            if i + 1 < rounds:
                # The handler's sends are not written until it returns: the main thread's
                # next send is made meanwhile, and must still go after them.
                assert sent.acquire(timeout=TIMEOUT)
        if len(seen) == 3 * rounds:
            done.set()

    ws.onmessage = on_message
    for i in range(rounds):
        ws.send(f"u{i}")
        if i:
            sent.release()
        assert echoed.acquire(timeout=TIMEOUT)
    assert done.wait(TIMEOUT)
    ws.close()
    assert seen == [m for i in range(rounds) for m in (f"u{i}", f"h{i}a", f"h{i}b")]
    assert any(taken > 0 for taken in direct_sends)


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_many_threads_send_while_main_reads(echo_url: str, compression: Any) -> None:
    ws = _open(echo_url, compression)
    senders, each = 6, 300

    def sender(n: int) -> None:
        for i in range(each):
            ws.send(f"{n}:{i}")

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(senders)]
    for t in threads:
        t.start()
    got: list[str] = []
    for _ in range(senders * each):
        data = ws.read(TIMEOUT)
        assert isinstance(data, str)
        got.append(data)
    for t in threads:
        t.join(TIMEOUT)
    ws.close()
    for n in range(senders):
        assert [m for m in got if m.startswith(f"{n}:")] == [f"{n}:{i}" for i in range(each)]
    assert ws.bufferedAmount == 0


def test_what_the_kernel_does_not_take_goes_before_later_sends(
    echo_url: str, direct_sends: list[int]
) -> None:
    ws = _open(echo_url)
    big = bytes(range(256)) * (32 * 1024)  # 8 MiB: more than loopback takes at once
    ws.send(big)
    ws.send("after")  # no echo came in between: queued behind the rest of the big frame
    assert ws.read(TIMEOUT) == big
    assert ws.read(TIMEOUT) == "after"
    ws.close()
    assert 0 < direct_sends[0] < len(big)  # a partial direct write, the rest queued


def test_handler_sends_still_count_in_buffered_amount(
    echo_url: str, direct_sends: list[int]
) -> None:
    ws = _open(echo_url)
    seen: list[int] = []
    done = threading.Event()

    def on_message(event: Any) -> None:
        if event.data == "go":  # not for the echo of what it sends
            ws.send("x" * 10)
            seen.append(ws.bufferedAmount)
            done.set()

    ws.onmessage = on_message
    ws.send("go")
    assert done.wait(TIMEOUT)
    ws.close()
    assert seen == [10]


def test_queued_small_frames_go_out_as_one_write() -> None:
    from mesiboscript._wslink import _coalesce

    owner = object()
    frames: list[Any] = [
        (b"a", (None, 1)),
        (b"pong", None),
        (b"bb", (None, 2)),
        (b"cc", (owner, 2)),  # someone waits for this one: alone
        ([b"h", b"big"], (None, 3)),  # pieces of a large frame: alone
        (b"d", (None, 1)),
        (b"close", None),
    ]
    assert _coalesce(frames) == [
        (b"apongbb", (None, 3)),
        (b"cc", (owner, 2)),
        ([b"h", b"big"], (None, 3)),
        (b"dclose", (None, 1)),
    ]
    assert _coalesce([(b"ping", None), (b"x", None)]) == [(b"pingx", None)]


def test_pipelined_sends_and_futures_complete_in_order(echo_url: str) -> None:
    ws = _open(echo_url)
    got: list[str] = []
    done = threading.Event()
    total = 2000

    def on_message(event: Any) -> None:
        got.append(event.data)
        if len(got) == total:
            done.set()

    ws.onmessage = on_message
    futures = []
    for i in range(total):
        if i % 100 == 0:
            futures.append(ws.sendTextAsync(f"f{i}"))
        else:
            ws.send(f"s{i}")
    for future in futures:
        future.result(TIMEOUT)
    assert done.wait(TIMEOUT)
    assert got == [f"f{i}" if i % 100 == 0 else f"s{i}" for i in range(total)]
    assert ws.bufferedAmount == 0
    ws.close()
