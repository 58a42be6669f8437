"""The process's lifetime: what keeps it alive, the open sessions, and how it ends.

One registry per process, and the only one: connections and servers :func:`acquire` it while they
may still produce events (CONNECTING, OPEN, CLOSING; a server while listening) and :func:`release`
it once they are done, and each hands in the one way to end it, ``shutdown(code, reason)``. The
Dirigible sessions (:func:`getOpenSessions`, :func:`getSession`) live here too. This module
imports nothing from the connection classes: they call it, never the other way round.

How the process ends:

- The script's main code ends: an :mod:`atexit` hook waits while anything is acquired, as a
  browser tab or a Node script stays alive while a socket is open.
- Ctrl-C (``KeyboardInterrupt`` in the main thread): every owner is shut down with 1001 (going
  away), waiting at most :data:`SHUTDOWN_WAIT` seconds for the closing handshakes, then the
  process ends by SIGINT, as Python does after an uncaught ``KeyboardInterrupt``. If it escaped
  the script (from ``read()``, ``upgrade()``, ``time.sleep()``...), the hook does this at once
  instead of waiting for the connections (which took a second Ctrl-C).
- A handler calls ``sys.exit(code)`` (or raises ``KeyboardInterrupt``) on a library thread: see
  :func:`request_exit`. The process ends with that code after every owner is shut down with
  1001, as the same call in the main thread would end it.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any, Callable, Optional, Protocol, TypeVar

__all__ = [
    "SHUTDOWN_WAIT",
    "acquire",
    "active",
    "bind_handler_thread",
    "closed_session",
    "exit_requested",
    "getOpenSessions",
    "getSession",
    "green_threads",
    "library_thread",
    "open_session",
    "raise_if_exiting",
    "release",
    "request_exit",
    "session_type",
    "shutdown_all",
    "wait_idle",
]

logger = logging.getLogger("mesiboscript")

#: Seconds Ctrl-C or a handler's ``sys.exit()`` waits for the 1001 closing handshakes.
SHUTDOWN_WAIT = 2.0

Shutdown = Callable[[int, str], None]
T = TypeVar("T", bound=type)

_cond = threading.Condition()
_owners: dict[int, tuple[object, Shutdown]] = {}  # id(owner) → (owner, shutdown); under _cond
_sessions: dict[int, object] = {}  # id() → OPEN session, in the order they opened; under _cond
_session_types: tuple[type, ...] = ()
_exit: Optional[BaseException] = None  # the first exit a handler asked for; under _cond
_exit_raised = False  # raised in the main thread's code already; under _cond
_signal_sent = False  # SIGINT sent to the main thread for _exit, not yet handled; under _cond
_sigint_installed = False
_ctrl_c_at_exit = False  # Ctrl-C pressed once the main code had ended
_hooked = False  # the atexit hook is registered; under _cond
_local = threading.local()


# -- what keeps the process alive -------------------------------------------------------------


def acquire(owner: object, shutdown: Shutdown) -> None:
    """Keep the process alive for ``owner`` until :func:`release`.

    ``shutdown(code, reason)`` ends the owner (1001 at Ctrl-C or a handler's exit); it is called
    from any thread, the I/O thread included, and must not block.
    """
    global _hooked
    with _cond:
        _owners[id(owner)] = (owner, shutdown)
        first, _hooked = not _hooked, True
    if first:
        atexit.register(_wait_at_exit)
    if not _sigint_installed:
        _install_sigint_handler()


def release(owner: object) -> None:
    """``owner`` is done (its close event has fired): it no longer keeps the process alive.

    Releasing an owner twice, or one never acquired, does nothing.
    """
    with _cond:
        if _owners.pop(id(owner), None) is not None and not _owners:
            _cond.notify_all()


def active() -> list[object]:
    """The owners keeping the process alive now."""
    with _cond:
        return [owner for owner, _ in _owners.values()]


def wait_idle(timeout: Optional[float] = None) -> bool:
    """Block until nothing keeps the process alive: True; False on timeout or once a handler
    has asked the process to exit (see :func:`exit_requested`).

    Raises:
        RuntimeError: on a thread that runs handlers, which the wait would block.
    """
    if getattr(_local, "running", None) is not None:
        raise RuntimeError("run() cannot wait on the thread that runs handlers: it would block")
    with _cond:
        return _cond.wait_for(lambda: not _owners or _exit is not None, timeout) and not _owners


def shutdown_all(code: int = 1001, reason: str = "", wait: float = SHUTDOWN_WAIT) -> bool:
    """Shut every owner down with ``code``; wait up to ``wait`` seconds for them to finish.

    Returns True when everything finished in time. From a handler's thread it does not wait.
    """
    for owner, shutdown in _snapshot():
        _shut(owner, shutdown, code, reason)
    if getattr(_local, "running", None) is not None:
        return False
    with _cond:
        return _cond.wait_for(lambda: not _owners, wait)


def _snapshot() -> list[tuple[object, Shutdown]]:
    with _cond:
        return list(_owners.values())


def _shut(owner: object, shutdown: Shutdown, code: int, reason: str) -> None:
    try:
        shutdown(code, reason)
    except Exception:
        logger.exception("shutting %r down failed", owner)


# -- sessions (Dirigible) ---------------------------------------------------------------------


_OPEN = 1  # ReadyState.OPEN (this module imports nothing from the connection classes)


def session_type(cls: T) -> T:
    """Class decorator: instances are sessions, which :func:`getSession` returns in handlers."""
    global _session_types
    _session_types = (*_session_types, cls)
    return cls


def open_session(session: object) -> None:
    """``session`` is OPEN: list it in :func:`getOpenSessions`."""
    with _cond:
        _sessions[id(session)] = session


def closed_session(session: object) -> None:
    """``session`` is no longer OPEN."""
    with _cond:
        _sessions.pop(id(session), None)


def getOpenSessions() -> list[Any]:
    """Every session of this process that is OPEN, oldest first (client ``WebSocket`` objects and
    connections accepted by a ``WebSocketServer``). A session whose ``close()`` has begun is no
    longer listed, though it stays registered until its close event."""
    with _cond:
        sessions = list(_sessions.values())
    # readyState is read outside _cond: it takes the session's own lock.
    return [s for s in sessions if getattr(s, "readyState", _OPEN) == _OPEN]


class HandlerThread(Protocol):
    """What :func:`bind_handler_thread` takes (``_dispatch.Dispatcher``)."""

    @property
    def running(self) -> Optional[tuple[Any, ...]]:
        """``None``, or a tuple whose first item is the object whose handler runs now."""


def bind_handler_thread(thread: HandlerThread) -> None:
    """Called on a thread that runs handlers: :func:`getSession` asks ``thread`` there."""
    _local.running = thread


def getSession() -> Any:
    """The session whose handler is running on this thread, else ``None``."""
    thread: Optional[HandlerThread] = getattr(_local, "running", None)
    running = None if thread is None else thread.running
    owner = None if running is None else running[0]
    return owner if isinstance(owner, _session_types) else None


# -- ending the process -----------------------------------------------------------------------


def request_exit(exc: BaseException) -> None:
    """A handler raised ``exc`` (``SystemExit`` or ``KeyboardInterrupt``) on a library thread.

    Raised there, it would end that thread and with it every connection while the process lived
    on (the script's main thread waiting forever). Instead the first request is recorded, every
    owner is shut down with 1001 from here (without blocking: the caller may be the I/O thread,
    which the closing handshakes need), and the main thread is made to end the process:

    - Main code still running (any blocking call included: ``read()``, ``time.sleep()``,
      ``input()``): SIGINT is sent to the main thread, which interrupts the call, and this
      module's SIGINT handler raises a new exception like ``exc`` there, so ``finally`` blocks
      run and Python ends the process with the same status and message as ``sys.exit(code)`` in
      the main code. Installed only where SIGINT had Python's default handler; with the default
      handler still in place (the first connection was made on another thread) the main thread
      gets ``KeyboardInterrupt`` and the exit hook below sets the status. With a handler of the
      script's own (or SIGINT ignored) the main thread is not disturbed, and only ``run()`` and
      the exit hook notice the request.
    - Main code finished (the atexit hook waits for connections): the hook wakes, waits up to
      :data:`SHUTDOWN_WAIT` seconds for the closes, and, as Python has already chosen status 0,
      runs the other exit hooks, flushes the standard streams and ends with ``os._exit(status)``
      (status 0 ends normally instead).

    The SIGINT handler is a plain function calling ``signal.default_int_handler``: Ctrl-C
    raises ``KeyboardInterrupt`` as before. One difference shows: ``asyncio.run()`` (3.11+)
    installs its own Ctrl-C handling only over the default handler, so in a process that made a
    connection from its main thread, Ctrl-C in ``asyncio.run()`` raises ``KeyboardInterrupt``
    where the loop is, as before Python 3.11, instead of cancelling the main task first.
    """
    global _exit
    with _cond:
        if _exit is not None:
            return
        _exit = exc
        _cond.notify_all()
    for owner, shutdown in _snapshot():
        _shut(owner, shutdown, 1001, "")
    _interrupt_main()


def exit_requested() -> Optional[BaseException]:
    """The exit a handler asked for (see :func:`request_exit`), or ``None``."""
    with _cond:
        return _exit


def raise_if_exiting() -> None:
    """In the main thread, after a wait that an exit request ended: raise it here."""
    global _exit_raised
    with _cond:
        exc = _exit
        if exc is None or _exit_raised or threading.current_thread() is not _main():
            return
        _exit_raised = True
    raise _like(exc)


def _main() -> threading.Thread:
    return threading.main_thread()


def _like(exc: BaseException) -> BaseException:
    return SystemExit(*exc.args) if isinstance(exc, SystemExit) else KeyboardInterrupt()


def _status(exc: BaseException) -> int:
    """The exit status Python gives an uncaught ``exc`` in the main code (printing a message);
    negative: killed by that signal."""
    if not isinstance(exc, SystemExit):
        return -signal.SIGINT  # killed by SIGINT, as after an uncaught KeyboardInterrupt
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


# Signals that end or interrupt a process, which Python handles in the main thread only.
_ASYNC_SIGNALS = {
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM")
    if hasattr(signal, name)
}


def library_thread() -> None:
    """Called first by every thread the library starts: it never takes the process's signals.

    The kernel hands a process-directed signal (Ctrl-C's SIGINT) to any thread that does not
    block it. Python runs the handler in the main thread, but only wakes it when the signal
    interrupted the main thread's own system call: delivered to a library thread, a Ctrl-C
    would leave a main thread blocked in ``read()``, ``upgrade()`` or the exit wait asleep, and
    the process alive (seen: 1 run in 10 of a server script). Blocked here, signals always go to
    the main thread.
    """
    if hasattr(signal, "pthread_sigmask") and not green_threads():
        signal.pthread_sigmask(signal.SIG_BLOCK, _ASYNC_SIGNALS)


def green_threads() -> bool:
    """True when ``threading`` is gevent's (``gevent.monkey.patch_all()``): the library's
    "threads" are then greenlets on the main OS thread, whose signal mask is the main code's."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


def _install_sigint_handler() -> None:
    """Take SIGINT over from Python's default handler, to raise a handler's exit in the main
    thread (see :func:`request_exit`); otherwise it behaves as the default (KeyboardInterrupt).

    Only from the main thread (``signal.signal`` works nowhere else), and only over the default
    handler: a script's own handler, or SIGINT ignored, is left alone.
    """
    global _sigint_installed
    if _sigint_installed or threading.current_thread() is not _main():
        return
    _sigint_installed = True
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)


def _on_sigint(signum: int, frame: Optional[FrameType]) -> None:
    global _exit_raised, _signal_sent
    with _cond:
        ours, _signal_sent = _signal_sent, False
        exc = _exit if ours and not _exit_raised and _main().is_alive() else None
        _exit_raised = _exit_raised or exc is not None
    if exc is not None:
        raise _like(exc)
    if ours:
        return  # raise_if_exiting() raised it already, or the exit hook runs: it sees to it
    global _ctrl_c_at_exit
    if not _main().is_alive():
        # The main code has ended: Python is shutting down (threads, then the exit hooks). A
        # KeyboardInterrupt raised before the exit hook runs is printed and forgotten; the
        # hook must still see this Ctrl-C (seen: a server script that then never ended).
        _ctrl_c_at_exit = True
    signal.default_int_handler(signum, frame)  # Ctrl-C


def _interrupt_main() -> None:
    global _signal_sent
    main = _main()
    if not main.is_alive() or main.ident is None or threading.current_thread() is main:
        return  # the exit hook runs (or will): the notify woke it
    handler = signal.getsignal(signal.SIGINT)
    if handler is not _on_sigint and handler is not signal.default_int_handler:
        return  # the script's own handler: not ours to call
    if green_threads():
        # One OS thread: a signal's handler would run in whichever greenlet is current (this
        # one). Throw the exit into the main greenlet instead, where it waits on gevent's hub.
        import gevent

        gevent.get_hub().loop.run_callback(_throw_into_main_greenlet)
        return
    if handler is _on_sigint:
        with _cond:
            _signal_sent = True
    if hasattr(signal, "pthread_kill"):
        signal.pthread_kill(main.ident, signal.SIGINT)  # also interrupts a blocking call
    else:  # Windows: the handler runs at the main thread's next bytecode
        import _thread

        _thread.interrupt_main()


def _throw_into_main_greenlet() -> None:
    """The gevent form of :func:`_interrupt_main` (runs in gevent's hub)."""
    global _exit_raised
    import gevent

    with _cond:
        exc = _exit
        if exc is None or _exit_raised:
            return
        _exit_raised = True
    main = gevent.get_hub().parent  # the greenlet that made the hub: the main code's
    if main is not None and not main.dead:
        main.throw(_like(exc))


def _ended_by_ctrl_c() -> bool:
    """True when a ``KeyboardInterrupt`` escaped the script's main code (Python printed it)."""
    last = getattr(sys, "last_type", None)
    return isinstance(last, type) and issubclass(last, KeyboardInterrupt)


def _wait_at_exit() -> None:
    """The atexit hook: keep the process alive while anything is acquired (see the module doc)."""
    if threading.current_thread() is not _main():
        return
    interrupted = _ended_by_ctrl_c() or _ctrl_c_at_exit
    try:
        if interrupted:
            _interrupted()
        else:
            with _cond:
                _cond.wait_for(lambda: not _owners or _exit is not None)
    except KeyboardInterrupt:
        interrupted = True  # Ctrl-C while waiting
        _interrupted()
    except SystemExit:
        pass  # the SIGINT handler raised a handler's exit while this hook waited: below
    exc = exit_requested()
    if exc is not None:
        with _cond:
            _cond.wait_for(lambda: not _owners, SHUTDOWN_WAIT)
        status = _status(exc)
        if status != 0:  # Python has chosen 0 already: only ending here can report it
            _end_process(status)
    elif interrupted:
        # End by SIGINT, what a shell reports as 130. After a KeyboardInterrupt that escaped the
        # main code Python would too, but code run by another thread meanwhile (the closing
        # handshakes import modules) makes CPython forget it and exit with 1; one raised in
        # this hook Python would report as status 0.
        _end_process(-signal.SIGINT)


def _end_process(status: int) -> None:
    """End now with ``status`` (negative: killed by that signal): run the exit hooks registered
    before this one, flush the standard streams, and skip the rest of the interpreter's
    finalization, as ``os._exit`` does."""
    atexit.unregister(_wait_at_exit)
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass  # closed or broken: nothing more to save
        if status < 0 and hasattr(os, "kill"):
            signal.signal(-status, signal.SIG_DFL)
            os.kill(os.getpid(), -status)
        os._exit(128 - status if status < 0 else status)


def _interrupted() -> None:
    count = len(active())
    if count:
        logger.info("interrupted: closing %d connection(s) with 1001", count)
    shutdown_all(1001, "")
