"""The bounded inbox behind read() and late onmessage: when it says pause, and when resume."""

from __future__ import annotations

import threading

from mesiboscript._inbox import Inbox


def test_pause_past_the_byte_mark_once_and_resume_at_a_quarter() -> None:
    inbox = Inbox(threading.Condition(), max_bytes=100)
    assert inbox.put(b"x" * 100) is False  # at the mark, not past it
    assert inbox.put(b"y") is True  # past it: stop reading
    assert inbox.put(b"z") is False  # already paused: said once
    assert (len(inbox), inbox.nbytes, inbox.paused) == (3, 102, True)
    assert inbox.resume() is False  # 102 > 25
    assert inbox.pop() == b"x" * 100
    assert inbox.resume() is True  # 2 <= 25: resume, once
    assert inbox.resume() is False
    assert [inbox.pop(), inbox.pop()] == [b"y", b"z"]
    assert (len(inbox), inbox.nbytes) == (0, 0)


def test_the_item_mark_counts_too() -> None:
    inbox = Inbox(threading.Condition(), max_bytes=1 << 20, max_items=8)
    assert [inbox.put("m") for _ in range(9)] == [False] * 8 + [True]
    for _ in range(6):
        inbox.pop()
    assert inbox.resume() is False  # 3 items > 8 // 4
    inbox.pop()
    assert inbox.resume() is True


def test_read_waits_and_tells_timeout_from_closed() -> None:
    cond = threading.Condition()
    inbox = Inbox(cond, max_bytes=100)
    closed = threading.Event()
    assert inbox.read(0.01, closed.is_set) is None  # timeout
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(inbox.read(10, closed.is_set)))
    reader.start()
    inbox.put("hello")  # wakes the reader
    reader.join(10)
    assert got == ["hello"]
    inbox.put("last")
    closed.set()
    assert inbox.read(0, closed.is_set) == "last"  # what came before the close is still read
    assert inbox.read(0, closed.is_set) is False
