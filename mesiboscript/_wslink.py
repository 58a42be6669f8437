"""``WebSocketLink``: one ws/wss connection on the I/O loop — a :class:`Transport` driving the
sans-I/O :class:`~mesiboscript.sansio.ClientConnection`, plus the timers the core has no clock for.

This is the I/O half of every WebSocket client in the package: ``WebSocket`` wraps one in the
browser's API, and the Mesibo ``Socket`` uses one as its ws/wss :class:`~mesiboscript._links.Link`.
It never decides how a connection ends: it feeds the core what the socket read, writes what the core
queued (:meth:`WebSocketLink._pump`), tells the core when a timer fired or the socket ended, and
reports the core's events to its listener.

Threads: the core is guarded by :attr:`WebSocketLink.cond` (shared with the owner, whose inbox and
``upgrade()`` wait on it). ``send_threadsafe``/``close_threadsafe`` may be called from any thread;
everything else runs on the I/O thread, and listener calls are made without the lock held.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional, Union

from ._condition import Condition
from ._constants import ReadyState, SocketError
from ._exceptions import ConnectionFailed
from ._links import LinkEnd, LinkListener
from ._loop import Loop, TimerHandle
from ._proxy import ProxyOption
from ._transport import Buffer, Transport, TransportListener
from ._validation import ParsedURL
from .sansio.connection import ClientConnection
from .sansio.deflate import DeflateOptions
from .sansio.events import Message, Opened
from .sansio.frames import BINARY, TEXT, Frame, build_frame

__all__ = ["DEFAULT_MAX_SIZE", "WebSocketLink"]

DEFAULT_MAX_SIZE = 16 * 1024 * 1024  # the largest message accepted unless told otherwise
# The states the per-message paths compare with, as module globals (an enum class attribute
# costs ten times as much to look up).
_CONNECTING, _OPEN, _CLOSING = ReadyState.CONNECTING, ReadyState.OPEN, ReadyState.CLOSING


class WebSocketLink(TransportListener):
    """One WebSocket connection attempt over the loop.

    Args:
        loop: the I/O loop.
        listener: told of open, each message, each write done and the end (exactly once).
        parsed: the validated URL.
        display_url: the URL as error messages show it (no credentials).
        lock, cond: the lock guarding the core and a condition over it (the owner's, shared so
            its inbox and ``upgrade()`` wait on the same); default: the link's own.
        Other keywords: as :class:`~mesiboscript.WebSocket` documents them.
    """

    def __init__(
        self,
        loop: Loop,
        listener: LinkListener,
        parsed: ParsedURL,
        *,
        display_url: str,
        protocols: tuple[str, ...] = (),
        headers: tuple[tuple[str, str], ...] = (),
        origin: Optional[str] = None,
        tls: Any = None,
        proxy: ProxyOption = False,
        proxy_tls: Any = None,
        connect_timeout: Optional[float] = 30.0,
        ping_interval: Optional[float] = None,
        ping_timeout: Optional[float] = 20.0,
        close_timeout: float = 5.0,
        max_size: int = DEFAULT_MAX_SIZE,
        compression: Optional[DeflateOptions] = None,
        lock: Optional[Any] = None,
        cond: Optional[Condition] = None,
    ) -> None:
        if cond is None:
            lock = threading.RLock()
            cond = Condition(lock)
        assert lock is not None, "a shared condition comes with its lock"
        # The lock guards the core; the condition (over the same lock) tells waiters of a new
        # state. `with self._lock` is the C lock's own context manager: the per-message paths
        # take it, not the condition's (a Python-level __enter__/__exit__ pair per use).
        self._lock = lock
        self.cond = cond
        self.core = ClientConnection(
            resource=parsed.resource,
            host=parsed.host,
            port=parsed.port,
            secure=parsed.secure,
            url=display_url,
            protocols=protocols,
            origin=origin,
            headers=headers,
            max_size=max_size,
            compression=compression,
        )
        self._loop = loop
        self._listener = listener
        self._deliver = listener.link_data  # bound once: called for every message
        self._host = parsed.host
        self._port = parsed.port
        self._display_url = display_url
        self._tls = tls
        self._proxy = proxy
        self._proxy_tls = proxy_tls
        self._connect_timeout = connect_timeout
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._close_timeout = close_timeout
        self._transport: Optional[Transport] = None
        self._pump_scheduled = False  # under cond
        # Direct sends and reads from other threads (send_threadsafe, read_here).
        self._hot = _Hot()  # one attribute: the instance dict stays a small shared-key one
        # Tokens of writes the core refused (closing): rare, a tuple (none costs no list).
        self._rejected: tuple[object, ...] = ()
        # bufferedAmount = accepted - written: each counter has one writer (senders under cond;
        # the I/O thread), so a write completing takes no lock.
        self._accepted = 0
        self._written = 0
        self._timer: Optional[TimerHandle] = None  # connect, then close timeout
        self._close_timer_armed = False
        self._tcp_closing = False
        self._ping_timer: Optional[TimerHandle] = None
        self._ended = False
        self._aborted: Optional[tuple[Optional[BaseException]]] = None  # (failure,) once aborted

    def __repr__(self) -> str:
        return f"<WebSocketLink {self._display_url} {self.core.state.name}>"

    # -- any thread ------------------------------------------------------------------------

    @property
    def state(self) -> ReadyState:
        return self.core.state

    @property
    def buffered(self) -> int:
        """Bytes of messages accepted for sending and not yet handed to the kernel."""
        return self._accepted - self._written

    def send_threadsafe(
        self, opcode: int, payload: Buffer, token: object = None, compress: bool = True
    ) -> bool:
        """Send a message from any thread; False when the core refused it (not OPEN, or our
        close frame is out). :attr:`buffered` counts what is not in the kernel yet (the
        standard's ``bufferedAmount`` grows even once closing has begun). With
        permessage-deflate agreed the core compresses it under the lock (the compressor's
        context follows the wire's order), unless ``compress`` is false.

        Right after a message came in (the request/response pattern: ``read()`` or a handler
        answering), and with nothing queued, the frame goes to the kernel at once from this
        thread (:meth:`Transport.try_send_now`, under the lock, so nothing can overtake it or
        be overtaken): no wake-up of the I/O thread. Otherwise, or for what the kernel did not
        take, it is queued and written on the I/O thread's next turn, with whatever else was
        queued meanwhile (one system call for a batch: a stream of sends costs one wake-up per
        batch, not a system call per message)."""
        size = len(payload)
        frame: Optional[Frame] = None
        if not compress or self.core.deflate is None:
            frame = build_frame(opcode, payload)  # masked before the lock
        hot = self._hot
        with self._lock:
            if frame is None:
                # Compressed under the lock: the compressor's context follows the wire's order.
                frame = self.core.encode_message(opcode, payload)
                if frame is None:
                    self._accepted += size
                    return False
            if (
                not self._pump_scheduled  # first: always so while handlers run
                and token is None
                and hot.rx_count != hot.rx_direct
                and not hot.io_writing
                and self.core.can_send
                and not self.core.has_data_to_send
                and self._transport is not None
                and not self._loop.in_loop_thread()  # handlers' sends wait for the pump
            ):
                sent = self._transport.try_send_now(frame)
                if sent >= 0:
                    hot.rx_direct = hot.rx_count
                    if type(frame) is bytes and sent == len(frame):
                        return True  # the kernel took it all (the common case)
                    frame = _unsent(frame, sent)
                    if frame is None:
                        return True
            self._accepted += size
            if not self.core.send_frame(frame, (token, size)):
                return False
            if self._pump_scheduled:
                return True
            self._pump_scheduled = True
        self._loop.call_soon_threadsafe(self._pump)
        return True

    def read_here(
        self, wait: Optional[float], keep: Callable[[list[Union[str, bytes]]], object]
    ) -> object:
        """A blocking ``read()`` with no message handler reads the socket itself, on its own
        thread (:meth:`Transport.caller_read`): the messages it completes go to ``keep``, in
        order, before anything the I/O thread reads later; what ``keep`` returns (a message
        it hands straight to the caller, else True) is returned. Pongs, a close frame and a
        protocol violation are the I/O thread's to answer: it is called for them (rare, one
        wake-up).

        Returns ``keep``'s answer when bytes were read, False when none came within ``wait``,
        None when the caller must wait for the I/O thread instead (not open, TLS, frames held
        back, ...).
        """
        transport = self._transport
        hot = self._hot
        if transport is None or self._ended or self.core.state is not _OPEN:
            return None  # (no lock: a stale answer is checked again under the read gate)
        if hot.draining:
            return None  # not worth a wait (and a lease on the socket) only to be refused
        hot.keep = keep
        return transport.caller_read(wait, self._caller_received, self._may_read_here)

    def _may_read_here(self) -> bool:
        # With the transport's read gate held: nothing another reader left for the I/O thread.
        core = self.core
        return core.state is _OPEN and not core.has_held_events and not self._hot.draining

    def _caller_received(self, got: Union[bytes, int]) -> object:
        # On the caller's thread, with the transport's read gate held (see read_here).
        hot = self._hot
        hot.rx_count += 1
        core = self.core
        with self._lock:
            before = core.state
            events = core.receive_data(got) if type(got) is bytes else core.receive_into(got)  # type: ignore[arg-type]
            if core.state is not before:
                self.cond.notify_all()
            later = core.has_held_events or core.state is not _OPEN
            pump = not later and core.has_data_to_send and not self._pump_scheduled
            if pump:
                self._pump_scheduled = True
            if later:
                hot.draining = True  # no caller read until the I/O thread handled it
            want = core.want
        if want is not None and self._transport is not None:
            self._transport.read_into(want)
        messages = [event.data for event in events if type(event) is Message]
        handed = hot.keep(messages) if messages else True
        # After the messages are kept: what the I/O thread delivers next comes after them.
        if later:
            self._loop.call_soon_threadsafe(self._drain_held)
        elif pump:
            self._loop.call_soon_threadsafe(self._pump)
        return handed

    def _drain_held(self) -> None:
        # On the I/O thread: what a caller's read left held in the core (frames behind its
        # messages, input behind the inflation budget). Caller reads wait until the messages
        # are delivered (draining), else theirs could overtake them.
        self._after_input([], False)
        with self._lock:
            self._hot.draining = False

    def close_threadsafe(self, code: Optional[int], reason: bytes) -> None:
        """Start closing from any thread (the core decides what that means in its state)."""
        with self._lock:
            before = self.core.state
            self.core.send_close(code, reason)
            if self.core.state is not before:
                self.cond.notify_all()
            self._pump_scheduled = True
        self._loop.call_soon_threadsafe(self._pump)

    # -- Link (I/O thread) -----------------------------------------------------------------

    def start(self) -> None:
        if self._ended:
            return
        if self.core.state is not _CONNECTING:  # closed before it started
            self._pump()
            return
        self._transport = Transport(
            self._loop,
            self,
            self._host,
            self._port,
            tls=self._tls,
            proxy=self._proxy,
            proxy_tls=self._proxy_tls,
        )
        if self._connect_timeout is not None:
            self._timer = self._loop.call_later(self._connect_timeout, self._on_connect_timeout)
        self._transport.allow_send_now(self._lock)
        self._transport.start()

    def write(self, data: Buffer, token: object = None, *, text: bool = False) -> None:
        if not self.send_threadsafe(TEXT if text else BINARY, data, token) and token is not None:
            self._rejected += (token,)  # refused (closing): reported unsent at the end

    def close(self, code: Optional[int] = 1000, reason: bytes = b"") -> None:
        """The owner's graceful close: the closing handshake once open; before that, as
        :meth:`abort` with no failure (there is nothing to close gracefully)."""
        if self.core.state is _CONNECTING:
            self.abort()
        else:
            self.close_threadsafe(code, reason)

    def abort(self, failure: Optional[BaseException] = None) -> None:
        """End now, dropping what is queued. The owner asked for it: the end reports ``failure``
        (and no other) as its failure and cause."""
        if self._ended or self._aborted is not None:
            return
        self._aborted = (failure,)
        if self._transport is not None:
            self._transport.abort()
        else:
            self._end(None)

    def pause_reading(self) -> None:
        self._hot.paused = True
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._hot.paused = False
        if self.core.holds_input:
            # What the core holds comes before the socket's next bytes: handled first, on
            # the loop's next turn (not inside the handler or input call that resumed).
            self._loop.call_soon(self._resume_held)
        elif self._transport is not None:
            self._transport.resume_reading()

    def _resume_held(self) -> None:
        if self._ended or self._hot.paused:
            return
        with self._lock:
            self._pump_scheduled = True  # as for input: sends from handlers wait for the pump
        self._after_input([], False)
        if not self._ended and not self._hot.paused and self._transport is not None:
            self._transport.resume_reading()

    @property
    def pending_bytes(self) -> int:
        return self._transport.pending_bytes if self._transport is not None else 0

    @property
    def socket(self) -> Any:
        """The connected socket, or ``None`` (tests look at what waits unread in it)."""
        return self._transport.socket if self._transport is not None else None

    def flush_now(self) -> None:
        """Write what is queued now, as far as the kernel takes it without blocking."""
        self._pump()
        if self._transport is not None:
            self._transport.flush_now()

    # -- the pump: what the core queued goes out; the core's closing decisions are carried out

    def _pump(self) -> None:
        core = self.core
        with self._lock:
            self._pump_scheduled = False
            frames = core.data_to_send()
            state = core.state
            if state >= _CLOSING:
                must_close = core.must_close_transport
                opened = core.opened
            # Until these are on the transport's queue, no direct send may overtake them.
            self._hot.io_writing = bool(frames)
        transport = self._transport
        if transport is None:
            self._hot.io_writing = False
            if state >= _CLOSING:
                self._end(None)  # closed or failed before the connection started
            return
        if frames:
            if len(frames) > 1:
                frames = _coalesce(frames)
            last = len(frames) - 1
            try:
                for i, (frame, token) in enumerate(frames):
                    transport.write(frame, token, i == last)
            finally:
                self._hot.io_writing = False
        if state < _CLOSING or self._ended:
            return
        if must_close:
            if not opened:
                transport.abort()  # nothing to say to a server that never answered
                return
            if not self._tcp_closing:
                self._tcp_closing = True
                transport.close()  # after the queue (and our close frame) is written
        if not self._close_timer_armed:
            # The server closes TCP first (RFC 6455 7.1.1); a peer that does not, or that stops
            # reading our close frame, cannot hold the connection past the close timeout.
            self._close_timer_armed = True
            self._set_timer(self._close_timeout, self._on_close_timeout)

    def _core_fail(self, failure: BaseException, wire_code: Optional[int] = None) -> None:
        with self._lock:
            before = self.core.state
            self.core.fail(wire_code, failure)
            if self.core.state is not before:
                self.cond.notify_all()
        self._pump()

    # -- transport callbacks (I/O thread) --------------------------------------------------

    def connection_made(self) -> None:
        with self._lock:
            self.core.send_request()
        self._pump()

    def data_received(self, data: bytes) -> None:
        self._hot.rx_count += 1
        with self._lock:
            # Sends made while this input is handled (handlers, other threads) are queued and
            # written together after the handlers (_after_input), as the standard's event loop
            # does: no wake-up and no direct send meanwhile (bufferedAmount counts them).
            self._pump_scheduled = True
            before = self.core.state
            events = self.core.receive_data(data)
            if self.core.state is not before:
                self.cond.notify_all()
        self._after_input(events)

    def buffer_updated(self, nbytes: int) -> None:
        self._hot.rx_count += 1
        with self._lock:
            # Sends made while this input is handled (handlers, other threads) are queued and
            # written together after the handlers (_after_input), as the standard's event loop
            # does: no wake-up and no direct send meanwhile (bufferedAmount counts them).
            self._pump_scheduled = True
            before = self.core.state
            events = self.core.receive_into(nbytes)
            if self.core.state is not before:
                self.cond.notify_all()
        self._after_input(events)

    def _after_input(self, events: list[Any], reading: bool = True) -> None:
        core = self.core
        want = core.want
        if want is not None and self._transport is not None and reading:
            self._transport.read_into(want)
        deliver = self._deliver
        while True:
            for event in events:
                if type(event) is Message:
                    deliver(self, event.data)
                elif type(event) is Opened:
                    self._opened()
                if self._ended:
                    return
            if not core.has_held_events or (self._hot.paused and core.holds_input):
                break  # nothing held, or input held back until the owner resumes reading
            # A close frame or a violation came after these messages: handle it now that their
            # handlers have run (what they sent goes out before our close frame).
            with self._lock:
                before = core.state
                events = core.next_events()
                if core.state is not before:
                    self.cond.notify_all()
        # Pongs, a close frame's echo and what handlers sent go out now, in one write.
        if core.has_data_to_send or core.state >= _CLOSING:
            self._pump()
            return
        with self._lock:
            if not core.has_data_to_send:  # else a sender queued since, counting on this pump
                self._pump_scheduled = False
                return
        self._pump()

    def _opened(self) -> None:
        self._cancel_timer()
        if self._ping_interval is not None:
            self._ping_timer = self._loop.call_later(self._ping_interval, self._send_ping)
        self._listener.link_up(self)

    def write_done(self, token: Any) -> None:
        owner_token, size = token
        self._written += size
        if owner_token is not None:
            self._listener.link_written(self, owner_token)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self._end(exc)

    def _end(self, exc: Optional[BaseException]) -> None:
        if self._ended:
            return
        self._ended = True
        self._cancel_timer()
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        with self._lock:
            closed = self.core.connection_lost(exc)
            self.cond.notify_all()
        # What the transport has not written yet: (the owner's token, the payload's size), in order.
        written = self._transport.unwritten_tokens() if self._transport is not None else []
        unsent = (*(t for t, _ in written if t is not None), *self._rejected)
        self._rejected = ()
        failure, cause = closed.failure, closed.cause
        if self._aborted is not None:
            failure = cause = self._aborted[0]
        end = LinkEnd(closed.code, closed.reason, closed.was_clean, failure, cause, unsent)
        self._listener.link_down(self, end)

    # -- timers ----------------------------------------------------------------------------

    def _set_timer(self, delay: float, callback: Callable[[], None]) -> None:
        self._cancel_timer()
        self._timer = self._loop.call_later(delay, callback)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_connect_timeout(self) -> None:
        self._timer = None
        self._core_fail(
            ConnectionFailed(
                f"timed out after {self._connect_timeout} s opening {self._display_url}",
                self._transport.timeout_error
                if self._transport is not None
                else SocketError.SocketTimeoutError,
            )
        )

    def _on_close_timeout(self) -> None:
        self._timer = None
        if self._transport is not None:
            self._transport.abort()

    def _send_ping(self) -> None:
        self._ping_timer = None
        if self._ended or self._ping_interval is None:
            return
        with self._lock:
            sent = self.core.send_ping()
        if not sent:
            return
        reads = self._hot.rx_count  # any input since is a sign of life (no clock per read)
        self._pump()
        if self._ping_timeout is not None:
            self._loop.call_later(self._ping_timeout, self._check_alive, reads)
        self._ping_timer = self._loop.call_later(self._ping_interval, self._send_ping)

    def _check_alive(self, reads: int) -> None:
        if self._ended or self._hot.rx_count != reads:
            return
        self._core_fail(
            ConnectionFailed(
                f"no reply within {self._ping_timeout} s of a ping", SocketError.SocketTimeoutError
            )
        )


def _coalesce(frames: list[tuple[Frame, Any]]) -> list[tuple[Frame, Any]]:
    """Small frames no owner waits for (``send()``'s, pongs, a close frame) joined into one
    write with one token: a batch of 10 000 pipelined messages is one transport write and one
    ``write_done`` rather than 10 000 (their sizes add up in the token: bufferedAmount is
    exact once the batch is in the kernel). Writes an owner waits for stay on their own."""
    out: list[tuple[Frame, Any]] = []
    batch: list[bytes] = []
    size = 0
    for frame, token in frames:
        if type(frame) is bytes and (token is None or token[0] is None):
            batch.append(frame)
            if token is not None:
                size += token[1]
            continue
        if batch:
            out.append((b"".join(batch), (None, size) if size else None))
            batch = []
            size = 0
        out.append((frame, token))
    if batch:
        out.append((b"".join(batch), (None, size) if size else None))
    return out


class _Hot:
    """A link's state for direct sends and reads (see send_threadsafe and read_here), apart
    from the link: a 30th attribute would make every link's instance dict five times larger
    (CPython keeps up to 29 attributes in a compact shared-key dict)."""

    __slots__ = ("draining", "io_writing", "keep", "paused", "rx_count", "rx_direct")

    def __init__(self) -> None:
        # The I/O thread is between taking the core's frames and queueing them on the
        # transport (set under the lock): no direct send may overtake them.
        self.io_writing = False
        # Reads so far (also how a ping's timeout knows input came), and at the last direct
        # send: at most one direct send per read (a stream of sends is batched by the I/O
        # thread instead).
        self.rx_count = 0
        self.rx_direct = 0
        self.keep: Callable[[list[Union[str, bytes]]], object] = _ignore  # read_here's
        # The owner paused reading (its inbox is past the high-water mark): input the core
        # holds back (messages inflated to its budget) waits too (I/O thread only).
        self.paused = False
        # A caller's read left input held in the core for the I/O thread (under the lock).
        self.draining = False


def _ignore(messages: list[Union[str, bytes]]) -> object:
    return True


def _unsent(frame: Frame, sent: int) -> Optional[Frame]:
    """What of ``frame`` (a buffer or a list of pieces) is left after ``sent`` bytes went out."""
    if type(frame) is not list:
        return frame[sent:] if sent < len(frame) else None
    for i, piece in enumerate(frame):
        if sent < len(piece):
            rest = memoryview(piece)[sent:] if sent else piece
            return [rest, *frame[i + 1 :]]  # type: ignore[list-item]
        sent -= len(piece)
    return None
