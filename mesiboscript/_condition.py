"""A condition variable that costs nothing until a thread waits on it.

Every connection has one (``upgrade()`` and ``read()`` wait on it; the I/O thread notifies it at
each state change and each message kept for ``read()``), but most connections never have a
thread waiting: a script with handlers, or 10 000 idle connections. A ``threading.Condition``
costs about 1.3 KB at once (a waiter deque of 0.76 KB and five bound methods); this one holds the
lock and, only while a thread waits, a ``threading.Condition`` over it.

Rules: ``wait_for`` and ``notify_all`` are called with the lock held (as for
``threading.Condition``), so the waiting condition is made, used and dropped under the lock, and
a notifier always sees the condition a waiter waits on.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional, TypeVar

__all__ = ["Condition"]

T = TypeVar("T")


class Condition:
    """``threading.Condition(lock)``'s ``with``, ``wait_for`` and ``notify_all``, allocated only
    while a thread waits."""

    __slots__ = ("_cond", "_lock", "_waiting")

    def __init__(self, lock: Any) -> None:
        self._lock = lock
        self._cond: Optional[threading.Condition] = None  # while a thread waits
        self._waiting = 0  # threads in wait_for

    def __enter__(self) -> Any:
        return self._lock.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._lock.__exit__(*exc)

    def wait_for(self, predicate: Callable[[], T], timeout: Optional[float] = None) -> T:
        """Wait until ``predicate()`` is true or ``timeout`` seconds passed; its last value."""
        result = predicate()
        if result or (timeout is not None and timeout <= 0):
            return result
        cond = self._cond
        if cond is None:
            cond = self._cond = threading.Condition(self._lock)
        self._waiting += 1
        try:
            return cond.wait_for(predicate, timeout)
        finally:  # the lock is held again here (Condition.wait takes it back whatever happened)
            self._waiting -= 1
            if not self._waiting:
                self._cond = None

    def notify_all(self) -> None:
        """Wake every waiting thread (none: nothing to do)."""
        cond = self._cond
        if cond is not None:
            cond.notify_all()
