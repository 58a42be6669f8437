"""The one background I/O thread: a selector loop, timers, a wake-up socket and handler dispatch.

Only this thread touches sockets. Other threads hand it work with :meth:`Loop.call_soon_threadsafe`
(a deque plus one wake-up byte per batch). User handlers run here, through :meth:`Loop.dispatch`
(a :class:`._dispatch.Dispatcher`: nothing a handler raises ends the thread).

Lifetime: the thread is a daemon; what keeps the process alive while connections are open, and
how Ctrl-C or a handler's ``sys.exit()`` end it, is :mod:`._lifetime`'s.
"""

from __future__ import annotations

import heapq
import logging
import selectors
import socket
import threading
import time
from collections import deque
from typing import Any, Callable, Optional

from . import _lifetime
from ._dispatch import Dispatcher

__all__ = ["Loop", "TimerHandle", "get_loop", "in_io_thread", "logger"]

logger = logging.getLogger("mesiboscript")

Callback = Callable[..., Any]


def _noop(*args: Any) -> None:
    pass


class TimerHandle:
    """A call scheduled with :meth:`Loop.call_later`; ``cancel()`` is safe from the loop thread."""

    __slots__ = ("args", "callback", "cancelled", "loop", "when")

    def __init__(self, when: float, callback: Callback, args: tuple[Any, ...], loop: Loop) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False
        self.loop = loop

    def cancel(self) -> None:
        # Drop the references now, as asyncio does: a cancelled 30 s connect timer must not
        # keep a closed connection (and everything it holds) alive until it would have fired.
        if self.cancelled:
            return
        self.cancelled = True
        self.callback = _noop
        self.args = ()
        self.loop._timer_cancelled()

    def __lt__(self, other: TimerHandle) -> bool:
        return self.when < other.when


class Loop:
    """The selector loop. One per process, created by :func:`get_loop`."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._calls: deque[tuple[Callback, tuple[Any, ...]]] = deque()
        self._timers: list[TimerHandle] = []
        self._cancelled = 0  # cancelled timers, most of them still in _timers
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._wake_pending = False
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._dispatcher = Dispatcher("mesiboscript I/O")
        #: ``dispatch(owner, handler, *args)``: run a user handler on the loop thread; what it
        #: returns, or ``_dispatch.FAILED`` if it raised.
        self.dispatch = self._dispatcher.run
        # The thread's id, compared with get_ident() on every send and read (cheaper than
        # current_thread()); set by the thread itself before it runs anything.
        self._ident: Optional[int] = None
        self._thread = threading.Thread(target=self._run, name="mesiboscript-io", daemon=True)
        self._thread.start()
        self._ident = self._thread.ident
        self._resolver = _Resolver(self)

    # -- thread hand-off ---------------------------------------------------------------------

    def in_loop_thread(self) -> bool:
        return threading.get_ident() == self._ident  # looked up now: gevent may patch it

    def call_soon(self, callback: Callback, *args: Any) -> None:
        """Schedule a call on the loop thread (from the loop thread)."""
        self._calls.append((callback, args))

    def call_soon_threadsafe(self, callback: Callback, *args: Any) -> None:
        """Schedule a call on the loop thread, from any thread."""
        self._calls.append((callback, args))
        if not self._wake_pending and not self.in_loop_thread():
            self._wake_pending = True
            try:
                self._wake_w.send(b"\0")
            except (BlockingIOError, InterruptedError):
                pass  # the pipe is full of wake-ups already

    def call_later(self, delay: float, callback: Callback, *args: Any) -> TimerHandle:
        """Schedule a call after ``delay`` seconds (from the loop thread)."""
        handle = TimerHandle(time.monotonic() + delay, callback, args, self)
        heapq.heappush(self._timers, handle)
        return handle

    def _timer_cancelled(self) -> None:
        # Every connection cancels its 30 s connect timer once open: with thousands opened at
        # once, the heap would hold that many dead handles for 30 s. Dropped once they are more
        # than half of it, as asyncio does.
        self._cancelled += 1
        timers = self._timers
        if self._cancelled > 64 and self._cancelled * 2 > len(timers) and self.in_loop_thread():
            timers[:] = [handle for handle in timers if not handle.cancelled]  # same list: _run's
            heapq.heapify(timers)
            self._cancelled = 0

    def resolve(
        self, host: str, port: int, callback: Callable[[Any, Optional[BaseException]], None]
    ) -> None:
        """Resolve ``host`` off the loop thread; ``callback(infos, exc)`` runs on the loop."""
        self._resolver.submit(host, port, callback)

    # -- selector ----------------------------------------------------------------------------

    def add(self, sock: socket.socket, events: int, callback: Callable[[int], None]) -> None:
        self._selector.register(sock, events, callback)

    def modify(self, sock: socket.socket, events: int, callback: Callable[[int], None]) -> None:
        self._selector.modify(sock, events, callback)

    def remove(self, sock: socket.socket) -> None:
        try:
            self._selector.unregister(sock)
        except (KeyError, ValueError):
            pass  # never registered, or the socket is already closed

    # -- the loop ----------------------------------------------------------------------------

    def _run(self) -> None:
        self._ident = threading.get_ident()
        _lifetime.library_thread()
        self._dispatcher.bind()
        select = self._selector.select
        calls = self._calls
        timers = self._timers
        while True:
            while timers and timers[0].cancelled:
                # A cancelled timer at the head (an opened connection's connect timeout) would
                # cost two clock reads per turn until it is due: dropped now.
                heapq.heappop(timers)
                if self._cancelled:
                    self._cancelled -= 1
            if calls:
                timeout: Optional[float] = 0
            elif timers:
                timeout = timers[0].when - time.monotonic()
                if timeout < 0:
                    timeout = 0
            else:
                timeout = None
            try:
                events = select(timeout)
            except InterruptedError:
                continue
            for key, mask in events:
                callback = key.data
                if callback is None:
                    self._drain_wake()
                    continue
                try:
                    callback(mask)
                except BaseException:  # as in _call, without a call and a tuple per event
                    logger.exception("internal error in the mesiboscript I/O thread")
            if timers:
                now = time.monotonic()
                while timers and timers[0].when <= now:
                    handle = heapq.heappop(timers)
                    if not handle.cancelled:
                        self._call(handle.callback, handle.args)
                    elif self._cancelled:
                        self._cancelled -= 1
            # Run what is queued now; calls queued by these calls wait for the next turn, after
            # the selector has been polled, so a busy connection cannot starve the others.
            for _ in range(len(calls)):
                callback, args = calls.popleft()
                self._call(callback, args)

    def _call(self, callback: Callback, args: tuple[Any, ...]) -> None:
        try:
            callback(*args)
        except BaseException:
            # Library callbacks catch their own errors (and handlers run in dispatch, which
            # deals with SystemExit); reaching here is a bug, never fatal to the thread.
            logger.exception("internal error in the mesiboscript I/O thread")

    def _drain_wake(self) -> None:
        # Drain first, clear the flag after: a wake-up byte sent in between stays in the pipe
        # (one spurious turn). The other order can swallow a byte while the flag stays set,
        # and every later call_soon_threadsafe would then skip its wake-up: a lost wake-up.
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        self._wake_pending = False


class _Resolver:
    """getaddrinfo on up to four short-lived threads, which exit when there is nothing to do."""

    MAX_THREADS = 4

    def __init__(self, loop: Loop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._queue: deque[tuple[str, int, Callable[[Any, Optional[BaseException]], None]]]
        self._queue = deque()
        self._threads = 0

    def submit(
        self, host: str, port: int, callback: Callable[[Any, Optional[BaseException]], None]
    ) -> None:
        with self._lock:
            self._queue.append((host, port, callback))
            if self._threads >= self.MAX_THREADS:
                return
            self._threads += 1
        threading.Thread(target=self._work, name="mesiboscript-dns", daemon=True).start()

    def _work(self) -> None:
        _lifetime.library_thread()
        while True:
            with self._lock:
                if not self._queue:
                    self._threads -= 1
                    return
                host, port, callback = self._queue.popleft()
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except Exception as exc:
                self._loop.call_soon_threadsafe(callback, None, exc)
            else:
                self._loop.call_soon_threadsafe(callback, infos, None)


_loop: Optional[Loop] = None
_loop_lock = threading.Lock()


def get_loop() -> Loop:
    """The process's loop, started on first use."""
    global _loop
    if _loop is None:
        with _loop_lock:
            if _loop is None:
                _loop = Loop()
    return _loop


def in_io_thread() -> bool:
    """True on the I/O thread (in a client connection's handler)."""
    loop = _loop
    return loop is not None and loop.in_loop_thread()
