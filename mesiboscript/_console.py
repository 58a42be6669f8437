"""The terminal of ``python -m mesiboscript connect``: output, colour, and the line being typed.

In a terminal the user types at a ``> `` prompt while messages arrive. As in wscat, a message
never destroys the line being typed: it is printed above it, and the prompt comes back with what
was typed and the cursor where it was.

That takes one thread doing both the reading and the printing: readline writes to the terminal
as each key is read, so a message printed from another thread at the same moment would garble the
line. With GNU readline (or libedit) the reading runs on readline's alternate interface
(``rl_callback_read_char``: one key at a time, between which anything may be printed), reached
through ``ctypes`` because the stdlib ``readline`` module offers only the blocking ``input()``;
a ``select`` on standard input and on a wake-up pipe lets the I/O thread hand lines to print to
that thread. History and ``~/.inputrc`` are readline's as usual. Without ``readline`` (Windows) or
its symbols, ``input()`` reads on a thread and a message redraws the prompt only.
"""

from __future__ import annotations

import os
import queue
import re
import select
import signal
import sys
import threading
import unicodedata
from typing import Any, Optional, TextIO

__all__ = ["BLUE", "GREEN", "PROMPT", "YELLOW", "Console", "escape", "wants_colour"]

PROMPT = "> "

# What a terminal would act on rather than show: C0 and C1 controls (tab and newline excepted)
# and the bidirectional overrides that reorder what is shown. Shown escaped, as repr() would.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

# wscat's colours: received messages blue, connect/disconnect green, errors yellow.
BLUE, GREEN, YELLOW = "\x1b[34m", "\x1b[32m", "\x1b[33m"
_DEFAULT_COLOUR = "\x1b[39m"

Events = queue.Queue[tuple[str, Any]]


def escape(text: str) -> str:
    """``text`` with the characters a terminal would obey (a server's ``\\x1b[2J`` clears the
    screen, ``\\r`` overwrites the line) shown escaped: ``\\x1b``, ``\\r``, ``\\u202e``."""
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


def wants_colour(stream: TextIO) -> bool:
    """Colour on a terminal only, and never when ``NO_COLOR`` is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def cell_width(text: str) -> int:
    """Columns ``text`` takes in a terminal: wide East Asian characters two, combining ones 0."""
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


def _block_signals() -> None:
    if hasattr(signal, "pthread_sigmask"):
        # Ctrl-C must reach the main thread (waiting on the event queue), not a reader.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


class _Readline:
    """readline's alternate (callback) interface, through ctypes; None from :meth:`load` where
    the library or one of its symbols is missing."""

    def __init__(self, module: Any, library: Any, ctypes: Any) -> None:
        self.module = module
        self.lib = library
        self.point = ctypes.c_int.in_dll(library, "rl_point")
        self.line_buffer = ctypes.c_char_p.in_dll(library, "rl_line_buffer")
        for name in (
            "rl_callback_handler_install",
            "rl_callback_read_char",
            "rl_callback_handler_remove",
            "rl_on_new_line",
            "rl_redisplay",
        ):
            getattr(library, name)  # AttributeError if missing
        self.line_type = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
        library.rl_callback_handler_install.argtypes = [ctypes.c_char_p, self.line_type]
        library.rl_callback_handler_install.restype = None
        self.free = ctypes.CDLL(None).free
        self.free.argtypes = [ctypes.c_void_p]
        self.string_at = ctypes.string_at

    @classmethod
    def load(cls) -> Optional[_Readline]:
        try:
            import ctypes
            import readline

            return cls(readline, ctypes.CDLL(readline.__file__), ctypes)
        except (ImportError, OSError, ValueError, AttributeError, TypeError):
            return None

    def typed(self, encoding: str) -> tuple[str, str]:
        """The line being typed, split at the cursor."""
        raw = self.line_buffer.value or b""
        point = max(0, min(len(raw), int(self.point.value)))
        return raw[:point].decode(encoding, "replace"), raw[point:].decode(encoding, "replace")


class Console:
    """The output of ``connect``, safe from any thread, and in a terminal the typed input.

    ``line``/``error`` print; in a terminal, between :meth:`start_reading` and :meth:`stop`,
    they hand the text to the reading thread, which prints it above the line being typed.
    ``final=True`` marks the last line (the close): no prompt comes back after it. Colour is on
    where the stream is a terminal and ``NO_COLOR`` is not set.
    """

    def __init__(self, out: TextIO, err: TextIO, interactive: bool) -> None:
        self.out = out
        self.err = err
        self.interactive = interactive
        self.colour_out = wants_colour(out)
        self.colour_err = wants_colour(err)
        self._lock = threading.Lock()
        self._pending: list[tuple[TextIO, str, bool]] = []
        self._reading = False  # a reader owns the terminal: output goes through it
        self._stopping = False
        self._finished = False  # the last line is printed: no prompt comes back
        self._thread: Optional[threading.Thread] = None
        self._wake_r, self._wake_w = -1, -1
        self._readline: Optional[_Readline] = None
        self._prompt_shown = False  # the input() fallback: a prompt is on screen

    # -- output ----------------------------------------------------------------------------------

    def _paint(self, text: str, colour: Optional[str], on: bool) -> str:
        return f"{colour}{text}{_DEFAULT_COLOUR}" if colour and on else text

    def line(self, text: str, colour: Optional[str] = None, final: bool = False) -> None:
        """Print a line on standard output; ``final``: the last one, no prompt after it."""
        self._print(self.out, self._paint(text, colour, self.colour_out), final)

    def error(self, text: str) -> None:
        self._print(self.err, self._paint(text, YELLOW, self.colour_err), False)

    def _print(self, stream: TextIO, text: str, final: bool) -> None:
        with self._lock:
            if self._reading and self._readline is not None:
                self._pending.append((stream, text, final))
                os.write(self._wake_w, b"!")
                return
            erase = self._reading and self._prompt_shown and not self._finished
            if erase:
                self.out.write("\r\x1b[K")
                self.out.flush()
            stream.write(text + "\n")
            stream.flush()
            self._finished = self._finished or final
            if erase and not self._finished:
                self.out.write(PROMPT)
            self.out.flush()

    # -- input -----------------------------------------------------------------------------------

    def start_reading(self, events: Events) -> None:
        """Read typed lines into ``events`` (``("line", text)``, then ``("eof", None)`` at
        Ctrl-D) on a thread of its own, which also prints from now on."""
        self._readline = _Readline.load()
        if self._readline is not None:
            self._wake_r, self._wake_w = os.pipe()
        target = self._readline_loop if self._readline is not None else self._input_loop
        with self._lock:
            self._reading = True
        self._thread = threading.Thread(
            target=target, args=(events,), name="mesiboscript-terminal", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Print what is pending and give the terminal back (readline's settings undone)."""
        with self._lock:
            if not self._reading:
                return
            self._stopping = True
            if self._readline is not None:
                os.write(self._wake_w, b"!")
        if self._readline is not None and self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            self._reading = False

    close = stop  # for contextlib.closing

    def _readline_loop(self, events: Events) -> None:
        _block_signals()
        rl = self._readline
        assert rl is not None
        encoding = getattr(self.out, "encoding", None) or "utf-8"
        stdin = sys.stdin.fileno()
        eof = False

        def on_line(pointer: Optional[int]) -> None:
            nonlocal eof
            if pointer is None:
                eof = True
                return
            text = rl.string_at(pointer).decode(encoding, "replace")
            rl.free(pointer)
            if text:
                rl.module.add_history(text)
            events.put(("line", text))

        callback = rl.line_type(on_line)  # referenced here for as long as readline may call it
        rl.lib.rl_callback_handler_install(PROMPT.encode(encoding), callback)
        editing = True
        try:
            while True:
                ready = select.select([self._wake_r, *([stdin] if editing else [])], [], [])[0]
                if editing and stdin in ready:
                    rl.lib.rl_callback_read_char()
                    if eof:  # Ctrl-D: the prompt goes, the terminal is given back
                        rl.lib.rl_callback_handler_remove()
                        editing = False
                        self.out.write("\r\x1b[K")
                        self.out.flush()
                        events.put(("eof", None))
                if self._wake_r in ready:
                    os.read(self._wake_r, 4096)
                    with self._lock:
                        pending, self._pending = self._pending, []
                        stopping = self._stopping
                    for stream, text, final in pending:
                        editing = self._show(rl, encoding, stream, text, final, editing)
                    if stopping:
                        return
        except (OSError, ValueError):
            events.put(("eof", None))  # the terminal went away
        finally:
            if editing:
                self._erase(rl, encoding)
                self.out.flush()
                rl.lib.rl_callback_handler_remove()
            del callback

    def _erase(self, rl: _Readline, encoding: str) -> None:
        """Move to the first row of the prompt (typed text may wrap) and clear to the end."""
        before, _after = rl.typed(encoding)
        try:  # the terminal's own width: $COLUMNS (which shutil prefers) may be stale
            columns = os.get_terminal_size(self.out.fileno()).columns or 80
        except (OSError, ValueError):
            columns = 80
        rows_up = cell_width(PROMPT + before) // columns
        self.out.write((f"\x1b[{rows_up}A" if rows_up else "") + "\r\x1b[J")

    def _show(
        self, rl: _Readline, encoding: str, stream: TextIO, text: str, final: bool, editing: bool
    ) -> bool:
        """Print ``text`` above the line being typed (on the reading thread, between keys);
        whether the prompt stays."""
        if editing:
            self._erase(rl, encoding)
            self.out.flush()
        stream.write(text + "\n")
        stream.flush()
        if editing and final:
            rl.lib.rl_callback_handler_remove()  # no prompt after the last line
            editing = False
        elif editing:
            rl.lib.rl_on_new_line()  # readline draws the prompt, the line and the cursor anew
            rl.lib.rl_redisplay()
        self.out.flush()
        return editing

    def _input_loop(self, events: Events) -> None:
        """Without readline's callback interface: ``input()`` (with the stdlib ``readline``
        when there is one) on this thread; a message redraws the prompt, not the typed text."""
        _block_signals()
        try:
            while True:
                with self._lock:
                    self._prompt_shown = not self._finished
                    prompt = "" if self._finished else PROMPT
                events.put(("line", input(prompt)))
        except (EOFError, OSError, ValueError):
            with self._lock:
                if self._prompt_shown and not self._finished:
                    self.out.write("\r\x1b[K")
                    self.out.flush()
                self._prompt_shown = False
            events.put(("eof", None))
