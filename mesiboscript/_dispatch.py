"""Running user handlers: what they raise never ends the thread, and a slow one is reported.

The I/O thread, where every handler runs (clients' and servers' alike), has one
:class:`Dispatcher`: ``Loop.dispatch``. A handler is the script's code running on the thread
every connection shares, so:

- ``Exception``: logged with its traceback on the ``mesiboscript`` logger; the thread goes on.
- ``SystemExit`` / ``KeyboardInterrupt``: the script asked the process to end. Raised here it
  would end only this thread, and with it every connection, while the process lived on; it is
  handed to :func:`._lifetime.request_exit`, which ends the process as the main thread would.
- Any other ``BaseException`` (``GeneratorExit``, a custom one): logged; the thread goes on.
- A handler that holds the thread longer than :data:`SLOW_HANDLER` seconds stalls every other
  connection: a WARNING names it (its qualified name and its owner's ``repr``) while it still
  runs, so a handler that never returns is named too. A watchdog thread looks every quarter of
  the threshold (only while handlers run), so any handler running 1.25 times the threshold is
  reported, and none shorter than the threshold; the hot path reads no clock.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any, Callable, Optional

from . import _lifetime

__all__ = ["FAILED", "SLOW_HANDLER", "Dispatcher"]

logger = logging.getLogger("mesiboscript")

#: Seconds a handler may hold its thread before a warning; asyncio's debug mode uses 0.1.
SLOW_HANDLER = 0.1

Handler = Callable[..., Any]
_monotonic = time.monotonic


class _Failed:
    """The type of :data:`FAILED`."""

    def __repr__(self) -> str:
        return "FAILED"


#: What :meth:`Dispatcher.run` returns when the handler raised.
FAILED: Any = _Failed()
_Running = tuple[Any, Handler]  # owner, handler


def _name(handler: Handler) -> str:
    return getattr(handler, "__qualname__", None) or repr(handler)


class Dispatcher:
    """Runs handlers on one thread: call :meth:`bind` on that thread before the first."""

    def __init__(self, thread_name: str) -> None:
        self.thread_name = thread_name
        #: (owner, handler) of the handler running now, else None; read by getSession() and
        #: by the watchdog, written only by this dispatcher's thread. A new tuple per call.
        self.running: Optional[_Running] = None
        self.watched = False  # the watchdog looks at this dispatcher
        self.seen: Optional[_Running] = None  # what the watchdog saw running last (its own)
        self.seen_at = 0.0  # when it first saw it
        self.reported: Optional[_Running] = None  # the slow handler already warned about

    def bind(self) -> None:
        """On the thread that will run handlers: make it known to ``getSession()``."""
        _lifetime.bind_handler_thread(self)

    def run(self, owner: Any, handler: Handler, *args: Any) -> Any:
        """Run ``handler(*args)`` for ``owner``: what it returns, or :data:`FAILED` if it raised
        (what it raised is dealt with as the module says)."""
        outer = self.running
        self.running = (owner, handler)
        if not self.watched:
            _watchdog.watch(self)
        try:
            return handler(*args)
        except Exception:
            logger.exception("handler %s of %r raised", _name(handler), owner)
        except (SystemExit, KeyboardInterrupt) as exc:
            logger.info(
                "handler %s of %r raised %s: closing every connection with 1001 and exiting",
                _name(handler),
                owner,
                type(exc).__name__,
            )
            _lifetime.request_exit(exc)
        except BaseException:
            logger.exception("handler %s of %r raised", _name(handler), owner)
        finally:
            self.running = outer
        return FAILED

    def report(self, running: _Running, elapsed: float) -> None:
        """Warn that the handler ``running`` has held this thread for ``elapsed`` seconds."""
        self.reported = running
        owner, handler = running
        logger.warning(
            "handler %s of %r has held the %s thread for %.0f ms (over %.0f ms): every "
            "connection waits meanwhile; hand long work to another thread",
            _name(handler),
            owner,
            self.thread_name,
            elapsed * 1000,
            SLOW_HANDLER * 1000,
        )


class _Watchdog:
    """One daemon thread that reports handlers still running past :data:`SLOW_HANDLER`.

    It looks every quarter threshold only while some dispatcher runs handlers; an idle process
    costs it nothing. A handler seen running at two looks at least the threshold apart has run
    at least that long. A dispatcher arms it with :meth:`watch` when it
    starts a handler unwatched: one flag test per handler on the hot path.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed = threading.Event()
        self._dispatchers: weakref.WeakSet[Dispatcher] = weakref.WeakSet()
        self._thread: Optional[threading.Thread] = None

    def watch(self, dispatcher: Dispatcher) -> None:
        dispatcher.watched = True
        with self._lock:
            self._dispatchers.add(dispatcher)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="mesiboscript-watchdog", daemon=True
                )
                self._thread.start()
        self._armed.set()

    def _run(self) -> None:
        _lifetime.library_thread()
        while True:
            self._armed.wait()
            self._armed.clear()
            # Sleep first: looking at once would find a short handler done, unwatch, and be
            # re-armed by the next one: a wake-up per handler instead of one per period.
            time.sleep(SLOW_HANDLER / 4)
            while self._look():
                time.sleep(SLOW_HANDLER / 4)

    def _look(self) -> bool:
        """Report what runs too long; stop watching idle dispatchers. True while any is watched."""
        with self._lock:
            dispatchers = list(self._dispatchers)
        watching = False
        now = _monotonic()
        for d in dispatchers:
            running = d.running
            if running is None:
                # Unwatch, then look again: a handler that started in between either saw
                # watched=False (and re-armed) or is seen here.
                d.watched = False
                running = d.running
                if running is None:
                    d.seen = None
                    continue
                d.watched = True
            watching = True
            if running is not d.seen:  # a new call (each has its own tuple)
                d.seen, d.seen_at = running, now
            elif d.reported is not running and now - d.seen_at >= SLOW_HANDLER:
                d.report(running, now - d.seen_at)
        return watching


_watchdog = _Watchdog()
