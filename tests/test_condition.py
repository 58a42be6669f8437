"""The connection's condition variable (``_condition.Condition``): ``threading.Condition``'s
behaviour for ``with``, ``wait_for`` and ``notify_all``, with nothing allocated while no thread
waits (an idle connection)."""

from __future__ import annotations

import threading
import time

from mesiboscript._condition import Condition


def _waiters(
    cond: Condition, n: int, state: dict[str, int], results: list[object]
) -> list[threading.Thread]:
    def wait() -> None:
        with cond:
            results.append(cond.wait_for(lambda: state["value"] >= 1, 10))

    threads = [threading.Thread(target=wait) for _ in range(n)]
    for thread in threads:
        thread.start()
    return threads


def _wait_until(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline
        time.sleep(0.001)


def test_every_waiter_is_woken_by_notify_all_from_another_thread() -> None:
    lock = threading.RLock()
    cond = Condition(lock)
    state = {"value": 0}
    results: list[object] = []
    threads = _waiters(cond, 3, state, results)
    _wait_until(lambda: cond._waiting == 3)
    notifier = threading.Thread(target=lambda: _set(cond, state))
    notifier.start()
    for thread in [*threads, notifier]:
        thread.join(10)
    assert results == [True, True, True]
    assert cond._cond is None  # nothing kept once no thread waits


def _set(cond: Condition, state: dict[str, int]) -> None:
    with cond:
        state["value"] = 1
        cond.notify_all()


def test_nothing_is_allocated_until_a_thread_waits() -> None:
    cond = Condition(threading.RLock())
    with cond:
        cond.notify_all()  # no waiter: nothing to do
        assert cond.wait_for(lambda: 5) == 5  # true at once: no waiting condition made
        assert cond.wait_for(lambda: 0, 0) == 0  # a poll never waits
    assert cond._cond is None


def test_a_timeout_returns_the_predicates_last_value() -> None:
    cond = Condition(threading.Lock())
    started = time.monotonic()
    with cond:
        assert cond.wait_for(lambda: [], 0.05) == []
    assert time.monotonic() - started >= 0.04
    assert cond._cond is None


def test_a_waiter_holding_the_reentrant_lock_twice_releases_it_while_waiting() -> None:
    # The exit hook can find the lock taken once more by the same thread (see WebSocket's lock):
    # a wait still releases it wholly, so the notifier can take it.
    lock = threading.RLock()
    cond = Condition(lock)
    state = {"value": 0}
    results: list[object] = []

    def wait() -> None:
        with lock, cond:
            results.append(cond.wait_for(lambda: state["value"] >= 1, 10))

    waiter = threading.Thread(target=wait)
    waiter.start()
    _wait_until(lambda: cond._waiting == 1)
    _set(cond, state)
    waiter.join(10)
    assert results == [True]


def test_a_waiter_arriving_while_another_wakes_shares_its_condition() -> None:
    cond = Condition(threading.RLock())
    state = {"value": 0}
    results: list[object] = []
    first = _waiters(cond, 1, state, results)
    _wait_until(lambda: cond._waiting == 1)
    with cond:
        waiting = cond._cond
        state["value"] = 1
        cond.notify_all()
        state["value"] = 0  # the first waiter wakes to a false predicate and waits again
        second = _waiters(cond, 1, state, results)
    _wait_until(lambda: cond._waiting == 2)
    assert cond._cond is waiting
    _set(cond, state)
    for thread in [*first, *second]:
        thread.join(10)
    assert results == [True, True]
    assert cond._cond is None
