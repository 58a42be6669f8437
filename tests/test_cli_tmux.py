"""The interactive ``connect`` in a real terminal emulator (tmux), driven as a person would:
keys typed, the screen read. What wscat users expect: line editing and history, a message that
arrives while typing leaves the typed line alone, the server's control characters shown escaped,
colour unless ``NO_COLOR``, Ctrl-D closes at once, no prompt left behind, and the terminal as it
was after the program ends, however it ends."""

from __future__ import annotations

import queue
import shlex
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, Optional

import pytest

from .helpers import TIMEOUT, AsyncServers, Tmux
from .test_cli import ROOT

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX terminal"),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (.ci/run installs it)"),
]


class Peer:
    """A WebSocket server the test drives: it records what the client sends (``received``) and
    sends or closes when the test says so."""

    def __init__(self, servers: AsyncServers) -> None:
        self.servers = servers
        self.received: queue.Queue[tuple[str, float]] = queue.Queue()
        self.connected = threading.Event()
        self.conn: Any = None
        self.close_code: Optional[int] = None
        self.closed_at: Optional[float] = None
        self.server = servers.serve(self._handler)
        self.url = f"ws://127.0.0.1:{self.server.port}/"

    async def _handler(self, conn: Any) -> None:
        self.conn = conn
        self.connected.set()
        async for message in conn:
            self.received.put((message, time.monotonic()))
        self.close_code = conn.close_code
        self.closed_at = time.monotonic()

    def send(self, text: str) -> None:
        assert self.connected.wait(TIMEOUT)
        self.servers.run(self.conn.send(text))

    def close(self, code: int, reason: str) -> None:
        self.servers.run(self.conn.close(code, reason))

    def next_message(self) -> str:
        message, _at = self.received.get(timeout=TIMEOUT)
        return message


@pytest.fixture
def peer(servers: AsyncServers) -> Iterator[Peer]:
    p = Peer(servers)
    yield p
    servers.stop(p.server)


def connect(url: str, *options: str, env: str = "-u NO_COLOR") -> Tmux:
    """``mesiboscript connect`` in a tmux pane; when it ends, its exit status and the terminal's
    settings (``stty -a``) are shown below it."""
    command = shlex.join([sys.executable, "-m", "mesiboscript", "connect", url, *options])
    return Tmux(
        f'env {env} {command}; echo "exit status $?"; stty -a; echo "(stty done)"', cwd=ROOT
    )


def prompt_line(term: Tmux) -> str:
    return term.lines()[-1]


def wait_ready(term: Tmux) -> None:
    """Connected, and the prompt is up: keys typed earlier are echoed by the terminal itself
    (readline has not taken the terminal yet), as they are before any line editor starts."""
    term.wait_for("(press CTRL+C to quit)")
    term.wait_for(lambda: prompt_line(term) == ">", "the prompt")


def after_exit(term: Tmux, status: int) -> list[str]:
    """Wait for the program to end with ``status``; the lines it left (``stty`` output cut)."""
    term.wait_for("(stty done)")
    lines = term.lines()[:-1]
    end = next(i for i, line in enumerate(lines) if line.endswith(f"exit status {status}"))
    assert lines[end] == f"exit status {status}", f"left on the last line: {lines[end]!r}"
    shown, stty = lines[:end], " ".join(lines[end + 1 :])
    # readline turned echo and line mode off while it read: they are back on.
    assert " icanon " in f" {stty} ", stty
    assert " echo " in f" {stty} ", stty
    return shown


def test_editing_history_and_a_message_while_typing(peer: Peer) -> None:
    with connect(peer.url) as term:
        wait_ready(term)

        # Line editing: the cursor moves back, a letter goes in mid-line.
        term.type("hello wrld")
        term.keys("Left", "Left", "Left")
        term.type("o")
        term.wait_for(lambda: prompt_line(term) == "> hello world", "the edited line")
        before = term.cursor()

        # A message arrives while the line is being typed; it carries control characters a
        # terminal would obey (clear the screen, carriage return, bell, right-to-left override).
        peer.send("news\x1b[2J\r\x07\u202e!")
        term.wait_for("< news\\x1b[2J\\r\\x07\\u202e!")
        lines = term.lines()
        assert lines[-2:] == ["< news\\x1b[2J\\r\\x07\\u202e!", "> hello world"], lines
        # The cursor is back where it was in the line (after "hello wo"), one row lower.
        assert term.cursor() == (before[0], before[1] + 1)

        # Typing goes on where the cursor is, in the line readline keeps.
        term.type("!")
        term.wait_for(lambda: prompt_line(term) == "> hello wo!rld", "the insertion")
        term.keys("Enter")
        assert peer.next_message() == "hello wo!rld"

        # History: up brings the last line back.
        term.keys("Up")
        term.wait_for(lambda: prompt_line(term) == "> hello wo!rld", "the recalled line")
        term.keys("Enter")
        assert peer.next_message() == "hello wo!rld"

        # Ctrl-D right after a line: that line is written, then the client closes at once (it
        # waited two seconds for replies before).
        term.type("last")
        term.keys("Enter", "C-d")
        message, sent_at = peer.received.get(timeout=TIMEOUT)
        assert message == "last"
        shown = after_exit(term, 0)
        assert peer.close_code == 1000
        assert peer.closed_at is not None
        assert peer.closed_at - sent_at < 1.5
        # No prompt left behind: the last thing shown is the close.
        assert shown[-1] == 'Disconnected (code: 1000, reason: "", wasClean: True)', shown
        assert shown[0].startswith("Connected to "), shown


def test_the_server_closes_while_the_user_types(peer: Peer) -> None:
    with connect(peer.url) as term:
        wait_ready(term)
        term.type("never sent")
        term.wait_for(lambda: prompt_line(term) == "> never sent", "the typed line")
        peer.close(4000, "bye\x1b[31m")
        shown = after_exit(term, 0)
        # The typed line is erased with its prompt; the reason is shown escaped.
        assert shown[-1] == 'Disconnected (code: 4000, reason: "bye\\x1b[31m", wasClean: True)'
        assert not any(line.startswith(">") for line in shown), shown


def test_ctrl_c_closes_and_restores_the_terminal(peer: Peer) -> None:
    with connect(peer.url) as term:
        wait_ready(term)
        term.type("half a line")
        term.wait_for(lambda: prompt_line(term) == "> half a line", "the typed line")
        term.keys("C-c")
        shown = after_exit(term, 130)
        assert shown[-1].startswith("Disconnected (code: 1000"), shown
        assert peer.close_code == 1000


def test_colour_on_a_terminal_unless_no_color(peer: Peer) -> None:
    with connect(peer.url) as term:
        wait_ready(term)
        peer.send("blue")
        term.wait_for("< blue")
        coloured = term.screen(colours=True)
        assert "\x1b[32mConnected to" in coloured, repr(coloured)
        assert "\x1b[34m< blue" in coloured, repr(coloured)
        term.keys("C-d")
        after_exit(term, 0)
    with connect(peer.url, env="NO_COLOR=1") as term:
        wait_ready(term)
        peer.send("plain")
        term.wait_for("< plain")
        assert "\x1b[3" not in term.screen(colours=True)
        term.keys("C-d")
        after_exit(term, 0)


def test_a_message_while_a_long_line_wraps(peer: Peer) -> None:
    """The typed line is longer than the terminal is wide: all its rows are redrawn, once."""
    with connect(peer.url) as term:
        wait_ready(term)
        typed = "".join(f"{n:03d}-" for n in range(40))  # 160 characters on a 100-column screen
        term.type(typed)
        term.wait_for(lambda: "".join(term.lines()[-2:]) == "> " + typed, "the wrapped line")
        peer.send("over the top")
        term.wait_for("< over the top")
        lines = term.lines()
        assert lines[-3] == "< over the top", lines
        assert "".join(lines[-2:]) == "> " + typed, lines
        assert sum(line.startswith("> ") for line in lines) == 1, lines
        term.keys("Enter")
        assert peer.next_message() == typed
        term.keys("C-d")
        after_exit(term, 0)


def test_a_burst_of_messages_while_typing_and_sending(peer: Peer) -> None:
    """Messages arrive without pause while lines are typed and sent: every message is shown on
    a line of its own, the prompt is on the last line only, and what is typed arrives whole."""
    with connect(peer.url) as term:
        wait_ready(term)
        stop = threading.Event()

        def flood() -> None:
            n = 0
            while not stop.is_set():
                peer.send(f"m{n}")
                n += 1

        sender = threading.Thread(target=flood)
        sender.start()
        try:
            for word in ("alpha", "beta", "gamma"):
                term.type(word)
                term.keys("Enter")
                assert peer.next_message() == word
            term.type("still typing")
        finally:
            stop.set()
            sender.join(TIMEOUT)
        term.wait_for(lambda: prompt_line(term) == "> still typing", "the typed line, last")
        lines = term.lines()
        shown = ("< m", "Connected", "> alpha", "> beta", "> gamma")
        odd = [(i, line) for i, line in enumerate(lines[:-1]) if not line.startswith(shown)]
        assert not odd, (odd, lines[-3:])
        term.keys("Enter")
        assert peer.next_message() == "still typing"
        term.keys("C-d")
        after_exit(term, 0)
