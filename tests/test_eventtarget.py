"""The one event system (mesiboscript/_eventtarget.py), without sockets.

A step-by-step loop stands in for the I/O thread: calls handed to it run when the test says, so
every interleaving of "handler set" and "event fired" is exact.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any, Callable, ClassVar, Optional

import pytest

from mesiboscript._events import MessageData
from mesiboscript._eventtarget import DOMEventTarget, EventHandler, EventTarget, StrictHandlers
from mesiboscript._inbox import Inbox
from mesiboscript._loop import get_loop
from tests.helpers import TIMEOUT


class StepLoop:
    """The loop's interface, run by hand; ``dispatch`` counts and logs like the real one."""

    def __init__(self) -> None:
        self.calls: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self.dispatched = 0
        self.inside = True  # "on the I/O thread"

    def dispatch(self, owner: Any, handler: Callable[..., Any], *args: Any) -> None:
        self.dispatched += 1
        try:
            handler(*args)
        except Exception:
            logging.getLogger("mesiboscript").exception("handler raised")

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> None:
        self.calls.append((callback, args))

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> None:
        self.calls.append((callback, args))  # time is not modelled: the next run() calls it

    def in_loop_thread(self) -> bool:
        return self.inside

    def run(self) -> None:
        while self.calls:
            callback, args = self.calls.popleft()
            callback(*args)


class Target(DOMEventTarget):
    _STATE_AT_EVENT: ClassVar[dict[str, Any]] = {
        "open": "OPEN",
        "message": "OPEN",
        "close": "CLOSED",
    }

    onopen: EventHandler[Callable[..., object]] = EventHandler()
    onmessage: EventHandler[Callable[..., object]] = EventHandler()
    onclose: EventHandler[Callable[..., object]] = EventHandler()

    def __init__(self, loop: StepLoop, inbox_mark: Optional[int] = None) -> None:
        self._lock = threading.Lock()
        self.inbox = (
            Inbox(threading.Condition(self._lock), inbox_mark) if inbox_mark is not None else None
        )
        self.resumed = 0
        self._init_events(loop, self._lock, self.inbox)

    def open(self) -> None:
        self._emit("open", (), (("open-event"),))

    def message(self, data: str) -> bool:
        return self._deliver_message(data)

    def close(self, code: int) -> None:
        self._emit("close", (code,))

    def _inbox_resumed(self) -> None:
        self.resumed += 1


class Strict(StrictHandlers, Target):
    pass


class Held(EventTarget):
    _MAX_HELD = 3

    onchat: EventHandler[Callable[..., object]] = EventHandler()

    def __init__(self, loop: StepLoop) -> None:
        self._lock = threading.Lock()
        self.dropped: list[str] = []
        self._init_events(loop, self._lock)

    def event(self, name: str, *args: Any) -> None:
        if not self._hold(name, args):
            self._fire(name, args)

    def _dropping_held(self, type: str) -> None:
        self.dropped.append(type)


@pytest.fixture
def loop() -> StepLoop:
    return StepLoop()


def recorder() -> tuple[list[Any], Callable[[str], Callable[..., None]]]:
    log: list[Any] = []

    def make(name: str) -> Callable[..., None]:
        def handler(*args: Any) -> None:
            log.append((name, *args))

        handler.__qualname__ = name
        return handler

    return log, make


# -- listeners and attributes -----------------------------------------------------------------


def test_attribute_takes_its_place_among_listeners_when_first_set(loop: StepLoop) -> None:
    t = Target(loop)
    log, make = recorder()
    t.addEventListener("open", make("a"))
    t.onopen = make("attr1")
    t.addEventListener("open", make("b"))
    t.onopen = make("attr2")  # reassigned: keeps the place of the first
    t.open()
    assert log == [("a", "open-event"), ("attr2",), ("b", "open-event")]
    assert t.onopen is not None
    assert t.onopen.__qualname__ == "attr2"


def test_attribute_set_to_none_gives_up_its_place(loop: StepLoop) -> None:
    t = Target(loop)
    log, make = recorder()
    t.onclose = make("attr1")
    t.addEventListener("close", make("a"))
    t.onclose = None
    assert t.onclose is None
    t.onclose = make("attr2")  # now after the listener
    t.close(1000)
    assert log == [("a", 1000), ("attr2", 1000)]


def test_duplicate_listener_is_ignored_and_removal_works(loop: StepLoop) -> None:
    t = Target(loop)
    log, make = recorder()
    a, b = make("a"), make("b")
    t.addEventListener("close", a)
    t.addEventListener("close", a)
    t.addEventListener("close", b)
    t.removeEventListener("close", b)
    t.removeEventListener("close", b)  # not there: nothing happens
    t.removeEventListener("open", a)  # no listeners of that type: nothing happens
    t.close(1000)
    assert log == [("a", 1000)]


def test_remove_every_listener_keeps_the_attribute(loop: StepLoop) -> None:
    t = Target(loop)
    log, make = recorder()
    t.addEventListener("close", make("a"))
    t.onclose = make("attr")
    t.addEventListener("close", make("b"))
    t._remove_listener("close")
    t.close(1000)
    assert log == [("attr", 1000)]


def test_bad_handlers_raise_type_error(loop: StepLoop) -> None:
    t = Target(loop)
    with pytest.raises(TypeError, match="onopen must be callable or None"):
        t.onopen = "not callable"  # type: ignore[assignment]
    with pytest.raises(TypeError, match="listener must be callable"):
        t.addEventListener("open", 3)  # type: ignore[arg-type]
    assert Target.onopen.type == "open"  # the descriptor, read on the class
    assert EventHandler("newConnection").type == "newConnection"


def test_every_call_goes_through_the_loop_dispatch(loop: StepLoop) -> None:
    t = Target(loop)
    log, make = recorder()

    def boom(*args: Any) -> None:
        raise RuntimeError("handler failure")

    t.onclose = boom
    t.addEventListener("close", make("after"))
    t.close(1006)
    assert log == [("after", 1006)]  # the loop logged the failure and went on
    assert loop.dispatched == 2


# -- one-shot memory and late delivery --------------------------------------------------------


def test_late_handler_gets_a_one_shot_event_once(loop: StepLoop) -> None:
    t = Target(loop)
    log, make = recorder()
    t.open()
    handler = make("attr")
    t.onopen = handler
    assert log == []  # delivered on the I/O thread, not in the setter
    loop.run()
    assert log == [("attr",)]
    t.onopen = handler  # the same handler again: it already heard open
    loop.run()
    t.onopen = make("other")  # a new handler hears it once
    t.addEventListener("open", make("listener"))
    loop.run()
    loop.run()
    assert log == [("attr",), ("other",), ("listener", "open-event")]


def test_the_same_bound_method_set_twice_hears_the_event_once(loop: StepLoop) -> None:
    t = Target(loop)
    heard: list[Any] = []
    t.close(1000)
    t.onclose = heard.append
    loop.run()
    t.onclose = heard.append  # another bound-method object, equal to the first
    loop.run()
    assert heard == [1000]


def test_handlers_set_during_the_event_do_not_hear_it_twice(loop: StepLoop) -> None:
    t = Target(loop)
    log, make = recorder()
    late = make("late")

    def first() -> None:
        log.append(("first",))
        t.addEventListener("open", late)  # added while open is being dispatched

    t.onopen = first
    t.open()
    loop.run()
    assert log == [("first",), ("late", "open-event")]


def test_late_delivery_replays_in_the_order_things_happened(loop: StepLoop) -> None:
    t = Target(loop, inbox_mark=1 << 20)
    log, make = recorder()
    t.open()
    assert t.message("m1") is False
    t.message("m2")
    t.close(1000)
    # Set in the "wrong" order, all before the I/O thread runs the late delivery.
    t.onclose = make("close")
    t.onmessage = lambda event: log.append(("message", event.data))
    t.onopen = make("open")
    loop.run()
    assert log == [("open",), ("message", "m1"), ("message", "m2"), ("close", 1000)]


def test_waiting_messages_go_before_a_newer_one(loop: StepLoop) -> None:
    t = Target(loop, inbox_mark=1 << 20)
    got: list[Any] = []
    t.message("old")
    t.onmessage = lambda event: got.append(event.data)  # delivery scheduled, not yet run
    t.message("new")  # the I/O thread gets a message first: the waiting one goes before it
    assert got == ["old", "new"]
    loop.run()
    assert got == ["old", "new"]
    assert t.inbox is not None
    assert not t.inbox.items


def test_late_open_goes_before_a_message(loop: StepLoop) -> None:
    t = Target(loop, inbox_mark=1 << 20)
    log, make = recorder()
    t.open()
    t.onopen = make("open")
    t.onmessage = lambda event: log.append(("message", event.data))
    t.message("m")  # before the scheduled late delivery ran
    assert log == [("open",), ("message", "m")]


def test_message_handler_set_while_a_message_was_kept(loop: StepLoop) -> None:
    """The I/O thread decided "no handler" and keeps the message; a handler set in between
    (after its check of the inbox found nothing) must not leave the message waiting."""
    t = Target(loop)
    got: list[Any] = []

    class RacingInbox(Inbox):
        def put(self, data: Any) -> bool:
            t.onmessage = lambda event: got.append(event.data)  # the inbox is still empty here
            return super().put(data)

    t.inbox = RacingInbox(threading.Condition(t._lock), 1 << 20)
    t._init_events(loop, t._lock, t.inbox)
    t.message("m")
    assert got == ["m"]


def test_a_pause_drained_at_once_is_not_reported(loop: StepLoop) -> None:
    """Past the mark with a handler set meanwhile: the inbox drains and resumes at once, so the
    caller must not pause reading (nothing would ever resume it)."""
    t = Target(loop)
    got: list[Any] = []

    class RacingInbox(Inbox):
        def put(self, data: Any) -> bool:
            t.onmessage = lambda event: got.append(event.data)
            return super().put(data)

    t.inbox = RacingInbox(threading.Condition(t._lock), 4)
    t._init_events(loop, t._lock, t.inbox)
    assert t.message("past the mark") is False
    assert got == ["past the mark"]
    assert not t.inbox.paused
    assert t.resumed == 1


def test_messages_stay_for_read_without_a_handler(loop: StepLoop) -> None:
    t = Target(loop, inbox_mark=10)
    assert t.message("12345") is False
    assert t.message("67890+") is True  # past the mark: the owner stops reading
    assert t.message("more") is False  # already paused: said once
    assert t.inbox is not None
    assert list(t.inbox.items) == ["12345", "67890+", "more"]
    got: list[Any] = []
    t.onmessage = lambda event: got.append(event)
    loop.run()
    assert [m.data for m in got] == ["12345", "67890+", "more"]
    assert all(isinstance(m, MessageData) and m.target is t for m in got)
    assert t.resumed == 1  # drained: the owner resumes reading


def test_messages_fast_path_and_listeners(loop: StepLoop) -> None:
    t = Target(loop, inbox_mark=1 << 20)
    log: list[Any] = []
    t.onmessage = lambda event: log.append(("attr", event.data))
    t.message("a")  # only onmessage: the fast path
    t.addEventListener("message", lambda event: log.append(("listener", event.data)))
    t.message("b")
    assert log == [("attr", "a"), ("attr", "b"), ("listener", "b")]


def test_ready_state_at_event_on_the_io_thread(loop: StepLoop) -> None:
    t = Target(loop, inbox_mark=1 << 20)
    seen: list[Any] = []
    t.onopen = lambda: seen.append(t._state_at_event())
    t.onmessage = lambda event: seen.append(t._state_at_event())
    t.onclose = lambda code: seen.append(t._state_at_event())
    t.open()
    t.message("m")
    t.close(1000)
    assert seen == ["OPEN", "OPEN", "CLOSED"]
    assert t._state_at_event() is None  # outside a handler
    loop.inside = False
    t.onopen = lambda: seen.append(t._state_at_event())
    loop.run()
    assert seen[-1] is None  # another thread never sees the event's state


def test_late_close_replayed_to_the_late_handler_sees_closed(loop: StepLoop) -> None:
    t = Target(loop)
    seen: list[Any] = []
    t.close(1006)
    t.onclose = lambda code: seen.append((code, t._state_at_event()))
    loop.run()
    assert seen == [(1006, "CLOSED")]


# -- held events (Socket.IO's named events) ---------------------------------------------------


def test_held_events_wait_per_type_and_replay_in_arrival_order(loop: StepLoop) -> None:
    h = Held(loop)
    log, make = recorder()
    h.event("chat", 1)
    h.event("news", 2)
    h.event("chat", 3)
    h.onchat = make("chat")
    h._add_listener("news", make("news"))
    loop.run()
    assert log == [("chat", 1), ("news", 2), ("chat", 3)]
    h.event("chat", 4)  # a handler is set: not held
    assert log[-1] == ("chat", 4)


def test_held_events_of_a_type_without_handler_do_not_block_others(loop: StepLoop) -> None:
    h = Held(loop)
    log, make = recorder()
    h.event("news", 1)
    h.onchat = make("chat")
    h.event("chat", 2)
    loop.run()
    assert log == [("chat", 2)]
    h._add_listener("news", make("news"))
    loop.run()
    assert log == [("chat", 2), ("news", 1)]


def test_held_events_are_bounded_oldest_dropped(loop: StepLoop) -> None:
    h = Held(loop)
    log, make = recorder()
    for i in range(5):
        h.event("chat", i)
    assert h.dropped == ["chat", "chat"]
    h.onchat = make("chat")
    loop.run()
    assert log == [("chat", 2), ("chat", 3), ("chat", 4)]


def test_results_collect_return_values_of_handlers_that_did_not_raise(loop: StepLoop) -> None:
    h = Held(loop)
    results: list[Any] = []

    def answer(x: int) -> int:
        return x * 2

    def fails(x: int) -> int:
        raise RuntimeError("no")

    h.onchat = answer
    h._add_listener("chat", fails)
    h._add_listener("chat", lambda x: None)
    assert h._fire("chat", (21,), results=results)
    assert results == [42, None]
    assert not h._fire("nothing", (), results=results)


def test_captured_handler_keeps_its_name_for_the_log(loop: StepLoop) -> None:
    names: list[str] = []

    class NamingLoop(StepLoop):
        def dispatch(self, owner: Any, handler: Callable[..., Any], *args: Any) -> None:
            names.append(handler.__qualname__)
            super().dispatch(owner, handler, *args)

    h = Held(NamingLoop())

    def my_handler() -> str:
        return "ack"

    h.onchat = my_handler
    h._fire("chat", (), results=[])
    assert names == [my_handler.__qualname__]


# -- unknown on* attributes -------------------------------------------------------------------


def test_unknown_on_attribute_raises_with_a_hint(loop: StepLoop) -> None:
    t = Strict(loop)
    with pytest.raises(AttributeError, match="did you mean 'onopen'"):
        t.onOpen = lambda: None  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="did you mean 'onmessage'"):
        t.onmesage = lambda event: None  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="handlers: onclose, onmessage, onopen"):
        t.onxyzzy = 1  # type: ignore[attr-defined]
    t.onopen = lambda: None  # the real ones work
    t.other = 1  # type: ignore[attr-defined]  # other names are not checked
    assert t.other == 1  # type: ignore[attr-defined]


# -- on the real loop, from another thread ----------------------------------------------------


def test_on_the_real_loop_a_handler_set_from_another_thread_hears_a_past_event() -> None:
    loop = get_loop()
    t = Target.__new__(Target)
    t._lock = threading.Lock()
    t.inbox = None
    t._init_events(loop, t._lock)
    heard = threading.Event()
    seen: list[Any] = []
    done = threading.Event()

    def fire() -> None:
        t.close(1000)
        done.set()

    loop.call_soon_threadsafe(fire)
    assert done.wait(TIMEOUT)

    def onclose(code: int) -> None:
        seen.append((code, t._state_at_event(), threading.current_thread().name))
        heard.set()

    t.onclose = onclose
    assert heard.wait(TIMEOUT)
    assert seen == [(1000, "CLOSED", "mesiboscript-io")]
