"""The one event system: ``on*`` attributes, listeners, one-shot memory and late delivery.

Every class with handlers (``WebSocket``, the server's connections, ``Socket``, ``SocketIO``,
``WebSocketServer``) inherits :class:`EventTarget` and names its handler attributes with
:class:`EventHandler`. What it gives them, once:

- Listener order as in the DOM standard: ``addEventListener`` appends; an ``on<type>`` attribute
  takes its place among the listeners when it is first set, keeps it while reassigned, and gives
  it up when set to ``None``.
- One-shot memory (:meth:`EventTarget._emit`): an event such as open or close that fired before
  its handler was set is delivered when the handler is set, once per handler.
- Late delivery in the order things happened: remembered events, messages waiting in an
  :class:`~mesiboscript._inbox.Inbox` and events held for a handler (:meth:`EventTarget._hold`)
  are replayed by sequence number, so a late ``onopen`` still hears open before a message.
- readyState-at-event: while a handler runs on the I/O thread, :meth:`EventTarget._state_at_event`
  reports the state of its event (e.g. OPEN in ``onmessage``), as a browser, where state changes
  and events are tasks run in order.
- Every handler call goes through the loop's one ``dispatch(owner, handler, *args)``.
- Unknown ``on*`` names are refused: assigning ``ws.onOpen = f`` raises ``AttributeError`` with a
  "did you mean 'onopen'?" hint, on every class (such a handler would never be called).
- Typed per event: ``onmessage: EventHandler[Callable[[MessageData], object]]`` lets
  ``mypy --strict`` reject a handler of the wrong arity, or ``m.dta`` inside one.

Threads: handlers are set from any thread, under the owner's lock; events fire on the I/O thread.
Listener lists are replaced, never mutated, so the I/O thread iterates them without the lock.
"""

from __future__ import annotations

import difflib
import functools
import logging
from collections import deque
from contextlib import AbstractContextManager
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    ClassVar,
    Generic,
    Optional,
    Protocol,
    TypeVar,
    Union,
    overload,
)

from . import _lifetime
from ._events import message_event

if TYPE_CHECKING:
    from ._inbox import Inbox

__all__ = ["DOMEventTarget", "EventHandler", "EventTarget", "Signal", "StrictHandlers"]

Handler = Callable[..., Any]
H = TypeVar("H", bound=Callable[..., Any])
logger = logging.getLogger("mesiboscript")
# A failure with no handler to hear it is logged unless one is set within this many seconds:
# scripts set handlers in the statements right after the constructor, and a refused connection
# can fail before that (its events are remembered for those late handlers).
UNHEARD_GRACE = 0.25
_ATTR: Any = object()  # the place of the on<type> handler among a type's listeners
_ATTR_ONLY: list[Any] = [_ATTR]  # the listeners of a type that has its attribute alone (shared)


class _Loop(Protocol):
    """What the event system needs of the I/O loop (:class:`mesiboscript._loop.Loop`)."""

    def dispatch(self, owner: Any, handler: Handler, *args: Any) -> Any: ...
    def call_soon_threadsafe(self, callback: Handler, *args: Any) -> None: ...
    def call_later(self, delay: float, callback: Handler, *args: Any) -> Any: ...
    def in_loop_thread(self) -> bool: ...


class EventHandler(Generic[H]):
    """An ``on<type>`` attribute (a descriptor): reading it gives the handler or ``None``;
    assigning it registers the handler among the type's listeners and delivers what waited.

    ``H`` is the handler's type, for type checkers: declare ``onmessage:
    EventHandler[Callable[[MessageData], object]] = EventHandler(doc=...)``. ``doc`` is what
    ``help()`` shows for the attribute.
    """

    def __init__(self, type: Optional[str] = None, *, doc: str = "") -> None:
        self.type = type or ""
        self.name = ""
        self.__doc__ = doc or "An event handler: a callable, or None."

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        if not self.type:
            self.type = name[2:] if name.startswith("on") else name

    @overload
    def __get__(self, obj: None, objtype: Any = None) -> EventHandler[H]: ...
    @overload
    def __get__(self, obj: object, objtype: Any = None) -> Optional[H]: ...
    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if obj is None:
            return self
        given = obj._attr_given.get(self.type) if obj._attr_given else None
        return given if given is not None else obj._attr_handlers.get(self.type)

    def __set__(self, obj: Any, handler: Optional[H]) -> None:
        obj._set_event_handler(self.type, handler, self.name)


class _Fired:
    """A one-shot event that happened: its arguments and the handlers that already got it."""

    __slots__ = ("args", "done", "listener_args", "seq")

    def __init__(
        self, seq: int, args: tuple[Any, ...], listener_args: Optional[tuple[Any, ...]]
    ) -> None:
        self.seq = seq
        self.args = args
        self.listener_args = listener_args
        self.done: list[Handler] = []  # compared with ==: a bound method set twice is one handler


def _capture(handler: Handler, results: list[Any]) -> Handler:
    """``handler``, also appending what it returns to ``results`` (when it does not raise).

    The loop's dispatch returns nothing; Socket.IO acknowledgements need the value. The wrapper
    keeps the handler's name for the loop's log lines.
    """

    @functools.wraps(handler)
    def call(*args: Any) -> None:
        results.append(handler(*args))

    return call


class EventTarget:
    """The mixin behind every class with handlers (see the module docstring).

    Subclasses call :meth:`_init_events` in their constructor, before any handler is set, and
    declare their handler attributes with :class:`EventHandler`. The underscore methods below are
    the interface for subclasses (:class:`DOMEventTarget` adds the DOM's public methods).

    Class attributes a subclass may set:

    - ``_STATE_AT_EVENT``: event type -> the ready state handlers of that event see on the I/O
      thread (through :meth:`_state_at_event`).
    - ``_MAX_HELD``: how many events of one type :meth:`_hold` keeps (the oldest are dropped).
    """

    _STATE_AT_EVENT: ClassVar[dict[str, Any]] = {}
    _MAX_HELD: ClassVar[Optional[int]] = None
    _MESSAGE_STATE: ClassVar[Any] = None  # _STATE_AT_EVENT["message"], for the fast path

    # Per-instance state that starts at these class-level values and is set on an instance only
    # when it changes (a constructor's attribute costs 0.3 us through __setattr__ below).
    # What was set, where _adapt_handler wrapped it.
    _attr_given: Optional[dict[str, Handler]] = None
    _ev_held: Optional[dict[str, deque[tuple[int, Any]]]] = None
    _ev_seq = 0  # orders what late delivery replays (I/O thread)
    _ev_inbox_seq = 0  # where the waiting messages sit in that order

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._MESSAGE_STATE = cls._STATE_AT_EVENT.get("message")

    def _init_events(
        self, loop: _Loop, lock: AbstractContextManager[Any], inbox: Optional[Inbox] = None
    ) -> None:
        """Set up the event state. ``lock`` is the owner's (guards listener changes); ``inbox``
        holds messages that wait for a message handler (or ``read()``), if the owner has one."""
        self._ev_loop = loop
        self._ev_lock = lock
        self._ev_inbox = inbox
        self._listeners: dict[str, list[Any]] = {}  # replaced, never mutated
        self._attr_handlers: dict[str, Handler] = {}  # what is called
        self._ev_fired: dict[str, _Fired] = {}
        # Something waits for a handler just set: deliver it before any newer event.
        self._ev_late = False
        # The state handlers of the running event see (I/O thread), in a box: written twice per
        # message, and an item assignment skips the class's __setattr__ (which checks on* names).
        self._at_event: list[Any] = [None]

    # -- handlers (any thread) -------------------------------------------------------------

    def _add_listener(self, type: str, listener: Handler) -> None:
        if not callable(listener):
            raise TypeError("listener must be callable")
        with self._ev_lock:
            current = self._listeners.get(type, [])
            if listener in current:
                return
            self._listeners[type] = [*current, listener]
            waiting = self._is_waiting(type)
        if waiting:
            self._schedule_pending()

    def _remove_listener(self, type: str, listener: Optional[Handler] = None) -> None:
        """Remove ``listener``, or (``None``) every listener but the ``on<type>`` attribute."""
        with self._ev_lock:
            current = self._listeners.get(type)
            if not current:
                return
            if listener is None:
                kept = [x for x in current if x is _ATTR]
            elif listener in current:
                kept = [x for x in current if x is _ATTR or x != listener]
            else:
                return
            self._listeners[type] = kept

    def _set_event_handler(self, type: str, handler: Optional[Handler], name: str = "") -> None:
        if handler is not None and not callable(handler):
            raise TypeError(f"{name or 'on' + type} must be callable or None")
        call = None if handler is None else self._adapt_handler(type, handler)
        with self._ev_lock:
            current = self._listeners.get(type, [])
            has_place = any(x is _ATTR for x in current)
            if handler is None or call is None:
                self._attr_handlers.pop(type, None)
                if self._attr_given:
                    self._attr_given.pop(type, None)
                if has_place:
                    self._listeners[type] = [x for x in current if x is not _ATTR]
                return
            self._attr_handlers[type] = call
            if call is handler:
                if self._attr_given:
                    self._attr_given.pop(type, None)
            else:
                if self._attr_given is None:
                    self._attr_given = {}
                self._attr_given[type] = handler
            if not has_place:
                # Lists are replaced, never mutated: the usual one (the attribute alone) is shared.
                self._listeners[type] = [*current, _ATTR] if current else _ATTR_ONLY
            waiting = self._is_waiting(type)
        if waiting:
            self._schedule_pending()

    def _adapt_handler(self, type: str, handler: Handler) -> Handler:
        """What to call for the ``on<type>`` attribute set to ``handler`` (any thread, once per
        assignment); the attribute still reads back as ``handler``. (Hook: e.g. Mesibo's
        ``ondata`` taking the data alone.)"""
        return handler

    def _unheard(self, *types: str) -> bool:
        """No handler or listener is set for any of ``types``."""
        return not any(self._listeners.get(type) for type in types)

    def _warn_if_unheard(self, types: tuple[str, ...], message: str, *args: Any) -> None:
        """A failure happened (I/O thread): log ``message % args`` as one WARNING on the
        ``mesiboscript`` logger, as a browser's console does, unless a handler or listener of one
        of ``types`` is set now or within :data:`UNHEARD_GRACE` seconds. The process stays
        alive until that is decided, so a script that ends at once still shows the line."""
        if not self._unheard(*types):
            return
        token = _Undecided()
        undecided = [True]

        def decide(*_: Any) -> None:
            try:
                undecided.pop()  # once, whichever comes first: the timer or a shutdown
            except IndexError:
                return
            if self._unheard(*types):
                logger.warning(message, *args)
            _lifetime.release(token)

        _lifetime.acquire(token, decide)
        self._ev_loop.call_later(UNHEARD_GRACE, decide)

    def _listeners_of(self, type: str) -> list[Handler]:
        """The listeners of ``type`` (not the ``on<type>`` attribute), in order."""
        return [x for x in self._listeners.get(type, ()) if x is not _ATTR]

    def _is_waiting(self, type: str) -> bool:
        # Called with the lock held, after the handler was added; the I/O thread records an
        # event before it reads the listeners, so one of the two sides always sees the other.
        if type in self._ev_fired:
            return True
        held = self._ev_held
        if held is not None and held.get(type):
            return True
        inbox = self._ev_inbox
        return type == "message" and inbox is not None and bool(inbox.items)

    def _schedule_pending(self) -> None:
        self._ev_late = True
        self._ev_loop.call_soon_threadsafe(self._deliver_pending)

    # -- firing (I/O thread) ---------------------------------------------------------------

    def _state_at_event(self) -> Any:
        """The ready state of the event whose handler runs now (I/O thread), else ``None``."""
        state = self._at_event[0]
        if state is not None and self._ev_loop.in_loop_thread():
            return state
        return None

    def _closing_at_event(self, closing: Any) -> Any:
        """``close()`` was called: the state the running handler saw (``None`` outside one), and
        from now on its event's later handlers see ``closing`` (if that is further along).

        Call it with the owner's lock held, where the owner decides whether to close.
        """
        state = self._state_at_event()
        if state is not None and state < closing:
            self._at_event[0] = closing
        return state

    def _fire(
        self,
        type: str,
        args: tuple[Any, ...] = (),
        listener_args: Optional[tuple[Any, ...]] = None,
        done: Optional[list[Handler]] = None,
        results: Optional[list[Any]] = None,
        session: Any = None,
    ) -> bool:
        """Call the handlers of ``type`` in order: the attribute with ``args``, listeners with
        ``listener_args`` (default ``args``). Skip and extend ``done`` if given; append return
        values to ``results`` if given. ``session``: the object the handlers run for (what
        ``getSession()`` returns in them; default this one). False when no handler is set."""
        listeners = self._listeners.get(type)
        if not listeners:
            return False
        dispatch = self._ev_loop.dispatch
        owner = self if session is None else session
        at_event = self._at_event
        saved = at_event[0]
        at_event[0] = self._STATE_AT_EVENT.get(type)
        try:
            for listener in listeners:
                if listener is _ATTR:
                    handler = self._attr_handlers.get(type)
                    if handler is None:
                        continue
                    call_args = args
                else:
                    handler = listener
                    call_args = args if listener_args is None else listener_args
                if done is not None:
                    if handler in done:
                        continue
                    done.append(handler)
                if results is not None:
                    handler = _capture(handler, results)
                dispatch(owner, handler, *call_args)
        finally:
            at_event[0] = saved
        return True

    def _emit(
        self, type: str, args: tuple[Any, ...] = (), listener_args: Optional[tuple[Any, ...]] = None
    ) -> None:
        """Fire a one-shot event (open, error, close) and remember it: a handler set later still
        gets it, once."""
        if self._ev_late:
            self._deliver_pending()  # what happened earlier goes first
        self._ev_seq += 1
        fired = _Fired(self._ev_seq, args, listener_args)
        self._ev_fired.pop(type, None)  # a type fired again moves to its new place in the order
        self._ev_fired[type] = fired
        self._fire(type, args, listener_args, fired.done)

    def _dispatch_event(
        self,
        type: str,
        args: tuple[Any, ...] = (),
        listener_args: Optional[tuple[Any, ...]] = None,
        session: Any = None,
    ) -> bool:
        """Fire a repeating event now, remembering nothing. False when no handler is set."""
        if self._ev_late:
            self._deliver_pending()
        return self._fire(type, args, listener_args, session=session)

    def _hold(self, type: str, item: Any) -> bool:
        """Hold ``item`` for ``type`` while no handler is set (or older items wait); True if held.

        Not held, the caller delivers it now. Held items go to :meth:`_deliver_held` once a
        handler is set, oldest first.
        """
        if self._ev_late:
            self._deliver_pending()
        with self._ev_lock:
            held = self._ev_held
            queue = held.get(type) if held is not None else None
            if not queue and self._listeners.get(type):
                return False
            if held is None:
                held = self._ev_held = {}
            if queue is None:
                queue = held[type] = deque(maxlen=self._MAX_HELD)
            if len(queue) == queue.maxlen:
                self._dropping_held(type)
            self._ev_seq += 1
            queue.append((self._ev_seq, item))
            return True

    def _dropping_held(self, type: str) -> None:
        """The held queue of ``type`` is full: its oldest item is dropped now. (Hook.)"""

    def _deliver_held(self, type: str, item: Any) -> None:
        """Deliver one held item (a tuple of handler arguments, unless a subclass says else)."""
        self._fire(type, item)

    def _deliver_message(self, data: Union[str, bytes]) -> bool:
        """A message arrived (I/O thread): fire it, or keep it in the inbox (no handler yet, or
        older messages wait). True when the inbox is past its mark: stop reading now."""
        listeners = self._listeners.get("message")
        if (
            listeners is not None
            and len(listeners) == 1
            and listeners[0] is _ATTR
            and not self._ev_late
            and not self._ev_inbox.items  # type: ignore[union-attr]
        ):
            # The common case, only onmessage and nothing waiting: what _fire does, minus its
            # general bookkeeping, which is a tenth of the Python time of a small message.
            handler = self._attr_handlers.get("message")
            if handler is not None:
                at_event = self._at_event
                saved = at_event[0]
                at_event[0] = self._MESSAGE_STATE
                try:
                    self._ev_loop.dispatch(self, handler, message_event(data, self))
                finally:
                    at_event[0] = saved
                return False
        return self._deliver_message_slowly(data)

    def _message_listened(self) -> bool:
        """A message handler or listener is set (or one set late waits for its delivery)."""
        return bool(self._listeners.get("message")) or self._ev_late

    def _keep_message(self, data: Union[str, bytes]) -> bool:
        """A message read on a user thread (a blocking ``read()`` reads the socket itself while
        no message handler is set): keep it in the inbox, and if a handler was set meanwhile,
        have the I/O thread deliver it there. True when the inbox is past its mark."""
        inbox = self._ev_inbox
        assert inbox is not None
        if not inbox.items:
            self._ev_inbox_seq = self._ev_seq
        pause = inbox.put(data)
        if self._listeners.get("message"):
            self._schedule_pending()
        return pause

    def _deliver_message_slowly(self, data: Union[str, bytes]) -> bool:
        if self._ev_late:
            self._deliver_pending()
        inbox = self._ev_inbox
        assert inbox is not None
        listeners = self._listeners.get("message")
        if inbox.items or not listeners:
            if not inbox.items:
                self._ev_inbox_seq = self._ev_seq
            pause = inbox.put(data)
            if self._listeners.get("message"):
                # A handler set while this was decided: it must not wait for the next message.
                # If that drained the inbox, the resume came already: the caller must not pause.
                self._deliver_pending()
                return pause and inbox.paused
            return pause
        self._fire("message", (message_event(data, self),))
        return False

    def _deliver_pending(self) -> None:
        """Deliver what waited for a handler, in the order it happened (I/O thread)."""
        self._ev_late = False
        pending = list(self._ev_fired.items())  # in the order they fired
        inbox = self._ev_inbox
        delivered_messages = False
        index = 0
        while True:
            # The next thing in order that has a handler now: a remembered event, the waiting
            # messages, or a held item. Handlers may change as we go, so look again each time.
            best_seq, best_kind, best_type = -1, "", ""
            if index < len(pending):
                best_seq, best_kind, best_type = pending[index][1].seq, "once", pending[index][0]
            if (
                inbox is not None
                and inbox.items
                and self._listeners.get("message")
                and (not best_kind or self._ev_inbox_seq < best_seq)
            ):
                best_seq, best_kind, best_type = self._ev_inbox_seq, "message", "message"
            if self._ev_held:
                for type, queue in self._ev_held.items():
                    if queue and self._listeners.get(type):
                        seq = queue[0][0]
                        if not best_kind or seq < best_seq:
                            best_seq, best_kind, best_type = seq, "held", type
            if not best_kind:
                break
            if best_kind == "once":
                fired = pending[index][1]
                index += 1
                self._fire(best_type, fired.args, fired.listener_args, fired.done)
            elif best_kind == "message":
                assert inbox is not None
                event = message_event(inbox.pop(), self)
                delivered_messages = True
                self._fire("message", (event,))
            else:
                with self._ev_lock:
                    queue = self._ev_held[best_type] if self._ev_held else deque()
                    if not queue:
                        continue
                    item = queue.popleft()[1]
                self._deliver_held(best_type, item)
        if delivered_messages and inbox is not None and inbox.resume():
            self._inbox_resumed()

    def _inbox_resumed(self) -> None:
        """The inbox drained under its low mark: resume reading. (Hook, I/O thread.)"""

    # -- unknown on* names -----------------------------------------------------------------

    if not TYPE_CHECKING:  # mypy flags unknown attributes itself

        def __setattr__(self, name: str, value: Any) -> None:
            # ws.onOpen = f would never be called: refuse it, with a hint. Only names starting
            # with "on" are checked; assignments on per-message paths avoid this (see _at_event).
            if name[:2] == "on" and not hasattr(type(self), name):
                raise self._unknown_handler(name)
            object.__setattr__(self, name, value)

    def _unknown_handler(self, name: str) -> AttributeError:
        """The error for assigning ``name``, an ``on*`` attribute this class does not have."""
        known = sorted(
            attr
            for klass in type(self).__mro__
            for attr, value in vars(klass).items()
            if isinstance(value, EventHandler)
        )
        lower = {attr.lower(): attr for attr in known}
        guess = lower.get(name.lower()) or next(
            iter(difflib.get_close_matches(name, known, n=1)), None
        )
        hint = f"; did you mean {guess!r}?" if guess else f" (handlers: {', '.join(known)})"
        return AttributeError(f"{type(self).__name__} has no handler {name!r}{hint}")


class _Undecided:
    """Keeps the process alive while a failure's warning is undecided (``_lifetime`` owner)."""

    def __repr__(self) -> str:
        return "<a failure's warning, pending>"


class DOMEventTarget(EventTarget):
    """An :class:`EventTarget` with the DOM's public ``addEventListener``/``removeEventListener``
    (``WebSocket`` and the server's connections; ``SocketIO`` has ``on``/``off`` instead)."""

    def addEventListener(self, type: str, listener: Handler) -> None:
        """Call ``listener(event)`` for each event of ``type``; adding it twice does nothing."""
        self._add_listener(type, listener)

    def removeEventListener(self, type: str, listener: Handler) -> None:
        """Stop calling ``listener`` for ``type``; unknown listeners are ignored."""
        self._remove_listener(type, listener)


class StrictHandlers:
    """Kept for existing imports: every :class:`EventTarget` now refuses unknown ``on*`` names
    itself (this mixin adds nothing)."""


class Signal:
    """A Qt-style signal, as HiFi scripts use them: ``server.newConnection.connect(fn)``.

    Its slots are listeners of its owner's event of the same name, so they run with the
    ``on<name>`` handler, in the order they were set, through the one dispatch.
    """

    def __init__(self, owner: EventTarget, type: str) -> None:
        self._owner = owner
        self._type = type

    def connect(self, slot: Handler) -> None:
        """Call ``slot`` each time the signal is emitted (connecting it twice: once)."""
        if not callable(slot):
            raise TypeError(f"slot must be callable, not {type(slot).__name__}")
        self._owner._add_listener(self._type, slot)

    def disconnect(self, slot: Handler) -> None:
        """Stop calling ``slot``; ValueError if it was not connected."""
        if slot not in self.slots():
            raise ValueError(f"{slot!r} is not connected")
        self._owner._remove_listener(self._type, slot)

    def slots(self) -> list[Handler]:
        return self._owner._listeners_of(self._type)
