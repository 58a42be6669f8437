"""The I/O loop's own guarantees: a library callback that raises never ends the thread, removing
an unknown socket is harmless, a cancelled timer lets go of what it held, the resolver queues
past its thread limit; plus StreamLink's close timer and the dispatcher's FAILED marker."""

from __future__ import annotations

import functools
import gc
import logging
import socket
import threading
import weakref
from typing import Any, Optional

import pytest

from mesiboscript._dispatch import FAILED
from mesiboscript._links import LinkEnd, StreamLink
from mesiboscript._loop import TimerHandle, get_loop

from .helpers import TIMEOUT, on_loop


def test_a_raising_callback_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> None:
        raise RuntimeError("library bug")

    with caplog.at_level(logging.ERROR, logger="mesiboscript"):
        get_loop().call_soon_threadsafe(broken)
        assert on_loop(lambda: "still running") == "still running"
    assert "internal error in the mesiboscript I/O thread" in caplog.text
    assert "library bug" in caplog.text


def test_removing_a_socket_the_loop_does_not_watch_does_nothing() -> None:
    a, b = socket.socketpair()
    with a, b:
        on_loop(lambda: get_loop().remove(a))  # never registered
    on_loop(lambda: get_loop().remove(a))  # closed
    assert on_loop(lambda: "still running") == "still running"


def test_a_cancelled_timer_lets_go_of_its_callback_and_arguments() -> None:
    class Held:
        pass

    held = Held()
    ref = weakref.ref(held)
    fired: list[object] = []

    def schedule(obj: object) -> TimerHandle:
        return get_loop().call_later(TIMEOUT, fired.append, obj)

    handle = on_loop(functools.partial(schedule, held))
    on_loop(handle.cancel)
    del held
    gc.collect()
    assert ref() is None  # a cancelled connect timer keeps no connection alive
    assert handle.cancelled
    handle.callback(*handle.args)  # what is left is a no-op
    assert fired == []


def test_cancelled_timers_leave_the_heap_and_the_others_still_fire_in_order() -> None:
    # Thousands of connections opening at once each cancel a 30 s connect timer: the heap must
    # not hold those dead handles (and their memory) for 30 s.
    loop = get_loop()
    fired: list[int] = []
    done = threading.Event()

    def schedule() -> list[TimerHandle]:
        dead = [loop.call_later(TIMEOUT * 10, fired.append, -1) for _ in range(1000)]
        live = [loop.call_later(0.01 * (i + 1), fired.append, i) for i in range(3)]
        loop.call_later(0.05, done.set)
        for handle in dead:
            handle.cancel()
            handle.cancel()  # twice: counted once
        return live

    live = on_loop(schedule)
    assert on_loop(lambda: sum(1 for h in loop._timers if h.cancelled)) < 500
    assert done.wait(TIMEOUT)
    assert fired == [0, 1, 2]
    assert not any(h.cancelled for h in live)


def test_more_names_than_resolver_threads_are_all_answered() -> None:
    answers: list[Optional[BaseException]] = []
    cond = threading.Condition()
    count = 64  # many times the thread limit: the rest queue

    def answered(infos: Any, exc: Optional[BaseException]) -> None:
        with cond:
            answers.append(exc)
            cond.notify_all()

    def submit() -> None:
        for _ in range(count):
            get_loop().resolve("localhost", 80, answered)

    on_loop(submit)
    with cond:
        assert cond.wait_for(lambda: len(answers) == count, TIMEOUT), answers
    assert answers == [None] * count


def test_failed_has_a_readable_repr() -> None:
    assert repr(FAILED) == "FAILED"


# -- StreamLink ---------------------------------------------------------------------------------


class Events:
    """A LinkListener: the link's end, and its repr while up."""

    def __init__(self) -> None:
        self.up = threading.Event()
        self.down = threading.Event()
        self.end: Optional[LinkEnd] = None
        self.written: list[object] = []
        self.up_repr = ""

    def link_up(self, link: Any) -> None:
        self.up_repr = repr(link)
        self.up.set()

    def link_data(self, link: Any, data: Any) -> None:
        pass

    def link_written(self, link: Any, token: object) -> None:
        self.written.append(token)

    def link_down(self, link: Any, end: LinkEnd) -> None:
        self.end = end
        self.down.set()


def test_a_slow_reader_keeps_a_closing_stream_link_alive_while_it_takes_bytes(
    listener: socket.socket,
) -> None:
    events = Events()
    port = listener.getsockname()[1]
    link = StreamLink(get_loop(), events, "127.0.0.1", port, close_timeout=0.2)
    assert repr(link) == f"<StreamLink 127.0.0.1:{port} connecting>"
    on_loop(link.start)
    peer, _ = listener.accept()
    payload = b"x" * (32 * 1024 * 1024)  # more than the kernel buffers: close() must wait
    with peer:
        assert events.up.wait(TIMEOUT)
        assert events.up_repr == f"<StreamLink 127.0.0.1:{port} up>"

        def write_and_close() -> None:
            link.write(payload, "all")
            link.close()
            link.close()  # already closing: nothing more
            assert link.pending_bytes > 0

        on_loop(write_and_close)
        # Read slowly: each close-timeout period sees progress, so the timer is re-armed.
        peer.settimeout(TIMEOUT)
        received = 0
        while True:
            data = peer.recv(256 * 1024)
            if not data:
                break
            received += len(data)
            if not events.down.is_set():
                threading.Event().wait(0.01)  # pacing only: the test holds for any speed
    assert events.down.wait(TIMEOUT)
    assert received == len(payload)
    assert events.end == LinkEnd(1000, "", True)
    assert events.written == ["all"]
    assert repr(link) == f"<StreamLink 127.0.0.1:{port} down>"
    on_loop(lambda: link.write(b"late", "late"))  # down: ignored
    on_loop(link.close)  # down: nothing
    assert events.written == ["all"]
