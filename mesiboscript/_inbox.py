"""What arrived and waits to be read: shared by ``WebSocket`` and ``Socket``.

Both keep incoming data for a blocking ``read()`` (ArozOS) and, on a WebSocket, for a message
handler set late. The queue is bounded by flow control rather than by dropping: past a high-water
mark the owner stops reading its socket (the peer feels TCP backpressure), and once the queue has
drained to a quarter of the mark, reading resumes. The owner pauses and resumes its transport on
the I/O thread; this class only says when.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable, Optional, Union

from ._condition import Condition
from ._exceptions import InvalidStateError
from ._loop import Loop

Data = Union[str, bytes]
_NO_ITEMS: deque[Data] = deque(maxlen=0)  # shared: an inbox's items until its first message


class Inbox:
    """A FIFO of ``str``/``bytes`` with a high-water mark in bytes (and optionally in items).

    It shares its owner's condition, so ``read()`` can also wake on the owner's state (closed)
    and the owner's ``notify_all()`` wakes readers.
    """

    # One per connection: slots keep the 10 000-idle-connection footprint as it was.
    __slots__ = ("_bytes", "_cond", "_max_bytes", "_max_items", "items", "paused", "watch")

    def __init__(
        self,
        cond: Union[Condition, threading.Condition],
        max_bytes: int,
        max_items: Optional[int] = None,
    ) -> None:
        self._cond = cond
        self._max_bytes = max_bytes
        self._max_items = max_items
        # Read without the lock on the I/O thread's fast path (is anything waiting?). Made at
        # the first message: an idle connection's deque would cost 0.7 KB.
        self.items: deque[Data] = _NO_ITEMS
        self._bytes = 0
        self.paused = False
        #: Called after each put (on the putting thread, lock released): a reader that cannot block
        #: a thread (``mesiboscript.aio``) is woken by it. It must be quick and never raise.
        self.watch: Optional[Callable[[], None]] = None

    def __len__(self) -> int:
        return len(self.items)

    @property
    def nbytes(self) -> int:
        """The bytes (or characters, for ``str``) waiting."""
        return self._bytes

    def put(self, data: Data) -> bool:
        """Keep ``data`` (any thread). True when the owner must stop reading now."""
        with self._cond:
            items = self.items
            if items is _NO_ITEMS:
                items = self.items = deque()
            items.append(data)
            self._bytes += len(data)
            self._cond.notify_all()
            pause = not self.paused and (
                self._bytes > self._max_bytes
                or (self._max_items is not None and len(self.items) > self._max_items)
            )
            if pause:
                self.paused = True
        if self.watch is not None:
            self.watch()  # after the lock: the reader it wakes takes the lock at once
        return pause

    def pop(self) -> Data:
        """The oldest item; the caller knows there is one."""
        with self._cond:
            return self._pop_locked()

    def _pop_locked(self) -> Data:
        data = self.items.popleft()
        self._bytes -= len(data)
        return data

    def resume(self) -> bool:
        """True, once, when paused and drained to a quarter of the mark: resume reading now."""
        with self._cond:
            if not self.paused or self._bytes > self._max_bytes // 4:
                return False
            if self._max_items is not None and len(self.items) > self._max_items // 4:
                return False
            self.paused = False
            return True

    def read(self, timeout: Optional[float], closed: Callable[[], bool]) -> Union[Data, bool, None]:
        """Wait for the next item: it; ``None`` on timeout; ``False`` once ``closed()`` and empty.

        ``closed`` is called with the owner's lock held.
        """
        with self._cond:
            if timeout != 0:  # read(0) polls: Condition.wait(0) would cost a lock and a swap
                self._cond.wait_for(lambda: bool(self.items) or closed(), timeout)
            if not self.items:
                return False if closed() else None
            return self._pop_locked()


def not_on_loop(loop: Loop, name: str, instead: str) -> None:
    """Refuse a blocking call on the I/O thread, where it could only deadlock."""
    if loop.in_loop_thread():
        raise InvalidStateError(
            f"{name}() blocks, and would deadlock inside a handler: use {instead} instead"
        )
