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
  connection: a WARNING names it (its qualified name and its owner's ``repr``) when it returns,
  as asyncio's debug mode does for a slow callback. No other thread watches: the process keeps
  one I/O thread (a watchdog thread cost a wake-up every 25 ms while handlers ran, and a thread).
"""

from __future__ import annotations

import logging
import time
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
        #: (owner, handler) of the handler running now, else None; read by getSession(),
        #: written only by this dispatcher's thread.
        self.running: Optional[_Running] = None

    def bind(self) -> None:
        """On the thread that will run handlers: make it known to ``getSession()``."""
        _lifetime.bind_handler_thread(self)

    def run(self, owner: Any, handler: Handler, *args: Any) -> Any:
        """Run ``handler(*args)`` for ``owner``: what it returns, or :data:`FAILED` if it raised
        (what it raised is dealt with as the module says)."""
        outer = self.running
        self.running = (owner, handler)
        start = _monotonic()
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
            elapsed = _monotonic() - start
            if elapsed > SLOW_HANDLER:
                self.report((owner, handler), elapsed)
        return FAILED

    def report(self, running: _Running, elapsed: float) -> None:
        """Warn that the handler ``running`` held this thread for ``elapsed`` seconds."""
        owner, handler = running
        logger.warning(
            "handler %s of %r held the %s thread for %.0f ms (over %.0f ms): every "
            "connection waits meanwhile; hand long work to another thread",
            _name(handler),
            owner,
            self.thread_name,
            elapsed * 1000,
            SLOW_HANDLER * 1000,
        )
