"""The command line: ``python -m mesiboscript`` (or ``mesiboscript``).

- ``connect URL``: an interactive client like wscat. Lines typed are sent (read with the stdlib
  ``readline`` when there is one: editing and history); messages are printed after ``< ``, above
  the line being typed, with control characters escaped; the close code is shown. ``--exec`` and
  piped standard input script it.
- ``serve [SCHEME ...]``: echo servers for ``ws``, ``wss``, ``sock``, ``socks``.
- ``demo``: starts an embedded echo server, echoes one message through it with the library's
  ``WebSocket``, prints it and exits 0. Needs no network.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import signal
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Any, Optional, TextIO

from ._console import BLUE, GREEN, Console, escape
from ._version import __version__

__all__ = ["main"]

DEMO_MESSAGE = "Hello from mesiboscript!"

EXIT_OK = 0
EXIT_FAILED = 1  # the connection failed or closed uncleanly
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _show(data: Any) -> str:
    if isinstance(data, str):
        return escape(data)
    raw = bytes(data)
    return f"[binary, {len(raw)} bytes] {raw.hex()}"


def _show_stream(data: bytes) -> str:
    text = data.decode("utf-8", "replace")
    if text.endswith("\n"):
        text = text[:-2] if text.endswith("\r\n") else text[:-1]
    return escape(text)


def _read_lines(source: TextIO, events: queue.Queue[tuple[str, Any]]) -> None:
    """Feed lines from piped standard input into the event queue; ``eof`` at the end."""
    try:
        for line in iter(source.readline, ""):
            events.put(("line", line.rstrip("\r\n")))
    except (OSError, ValueError):
        pass  # standard input closed under us: same as end of input
    events.put(("eof", None))


# -- connect --------------------------------------------------------------------------------


def _client_tls(args: argparse.Namespace) -> dict[str, Any]:
    if args.insecure:
        # One line, where Python's warning would print two (and the library's, for socks://,
        # two more): the choice was the user's, the reminder is enough.
        print(
            "warning: --insecure: the server's certificate and host name are not checked",
            file=sys.stderr,
        )
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return {"ssl_context": context}
    if args.cafile:
        return {"cafile": args.cafile}
    return {}


def _open_websocket(
    args: argparse.Namespace, console: Console, events: queue.Queue[tuple[str, Any]]
) -> Any:
    from . import WebSocket

    headers: dict[str, str] = {}
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep:
            raise ValueError(f"--header must look like 'Name: value', not {header!r}")
        headers[name.strip()] = value.strip()
    secure = args.url.lower().startswith(("wss:", "https:"))
    options: dict[str, Any] = dict(_client_tls(args)) if secure else {}
    if headers:
        options["headers"] = headers
    if args.origin:
        options["origin"] = args.origin
    if args.connect_timeout is not None:
        options["connect_timeout"] = args.connect_timeout
    ws = WebSocket(args.url, args.subprotocol or None, **options)

    def on_error(error: Any) -> None:
        cause = ws.last_error
        console.error(f"error: {error.name}" + (f": {escape(str(cause))}" if cause else ""))

    def on_close(event: Any) -> None:
        console.line(
            f'Disconnected (code: {int(event.code)}, reason: "{escape(event.reason)}", '
            f"wasClean: {event.wasClean})",
            GREEN,
            final=True,
        )
        events.put(("close", event.wasClean))

    def on_message(event: Any) -> None:
        console.line("< " + _show(event.data), BLUE)
        events.put(("message", None))

    ws.onopen = lambda: events.put(("open", ws.protocol))
    ws.onmessage = on_message
    ws.onerror = on_error
    ws.onclose = on_close
    return ws


def _open_stream(
    args: argparse.Namespace, console: Console, events: queue.Queue[tuple[str, Any]]
) -> Any:
    import mesiboscript

    socket_class = getattr(mesiboscript, "Socket", None)
    if socket_class is None:
        raise ValueError("sock:// and socks:// need mesiboscript.Socket, not in this version")
    if args.header or args.origin or args.subprotocol:
        raise ValueError("--header, --origin and --subprotocol are for ws:// and wss:// only")
    tls = _client_tls(args) if args.url.lower().startswith("socks:") else {}
    sock = socket_class(args.url, **tls)

    def on_data(_s: Any, data: Any) -> None:
        console.line("< " + (_show_stream(data) if isinstance(data, bytes) else _show(data)), BLUE)
        events.put(("message", None))

    def on_close(_s: Any) -> None:
        console.line("Disconnected", GREEN, final=True)
        events.put(("close", True))

    sock.onconnect = lambda _s: events.put(("open", ""))
    sock.ondata = on_data
    sock.onclose = on_close
    sock.open()
    return sock


# What ``connect`` accepts; http(s):// are taken as ws(s)://, as a browser's WebSocket does.
_CONNECT_SCHEMES = ("ws", "wss", "sock", "socks")
_SCHEME_LIST = "ws://, wss://, sock:// or socks:// (http:// and https:// mean ws:// and wss://)"


def _connect(args: argparse.Namespace) -> int:
    scheme, sep, _rest = args.url.partition("://")
    if not sep or scheme.lower() not in (*_CONNECT_SCHEMES, "http", "https"):
        what = f"the scheme {scheme}://" if sep else "no scheme"
        print(f"mesiboscript connect: {args.url!r} has {what}; use {_SCHEME_LIST}", file=sys.stderr)
        return EXIT_USAGE
    stream = scheme.lower() in ("sock", "socks")
    interactive = not args.exec and sys.stdin.isatty() and sys.stdout.isatty()
    # In a terminal, Ctrl-D closes at once (what was typed is written first); piped input waits
    # for replies.
    wait = args.wait if args.wait is not None else (0.0 if interactive else 2.0)
    console = Console(sys.stdout, sys.stderr, interactive)
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    try:
        conn = (_open_stream if stream else _open_websocket)(args, console, events)
    except (ValueError, TypeError) as exc:
        print(f"mesiboscript connect: {exc}", file=sys.stderr)
        return EXIT_USAGE

    def send(text: str) -> None:
        if not interactive:  # a terminal already shows what was typed
            console.line("> " + text)
        conn.send(text + "\n" if stream else text)

    received = 0
    closed: Optional[bool] = None  # the close event's wasClean, once it came

    def handle(kind: str, value: Any) -> None:
        nonlocal received, closed
        if kind == "message":
            received += 1
            if args.count and received >= args.count:
                _close(conn, stream)
        elif kind == "close":
            closed = bool(value)

    with _terminal_restored(interactive), contextlib.closing(console):
        try:
            # Wait until connected (or failed: the library's connect timeout bounds this).
            while True:
                kind, value = events.get()
                if kind == "open":
                    break
                handle(kind, value)
                if closed is not None:
                    return EXIT_FAILED
            suffix = f" (subprotocol: {value})" if value else ""
            if interactive:
                console.line(f"Connected to {args.url}{suffix} (press CTRL+C to quit)", GREEN)
            else:
                console.line(f"Connected to {args.url}{suffix}")

            if args.exec:
                for command in args.exec:
                    send(command)
            else:
                if interactive:
                    console.start_reading(events)
                else:
                    reader = threading.Thread(
                        target=_read_lines,
                        args=(sys.stdin, events),
                        name="mesiboscript-stdin",
                        daemon=True,
                    )
                    reader.start()
                while closed is None:
                    kind, value = events.get()
                    if kind == "line":
                        send(value)
                    elif kind == "eof":
                        break
                    else:
                        handle(kind, value)

            # Input is over: wait for replies (--wait seconds, or --count messages), then close.
            deadline = time.monotonic() + wait
            while closed is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    kind, value = events.get(timeout=remaining)
                except queue.Empty:
                    break
                handle(kind, value)
            return _finish(conn, events, handle, lambda: closed, stream)
        except KeyboardInterrupt:
            _finish(conn, events, handle, lambda: closed, stream)
            return EXIT_INTERRUPTED


@contextlib.contextmanager
def _terminal_restored(interactive: bool) -> Iterator[None]:
    """Put the terminal back as it was on the way out.

    readline switches the terminal to character-at-a-time input without echo while it reads a
    line. When the connection ends while the user is typing, the program exits with that read
    still open on its thread: without this the shell would be left echoing nothing.
    """
    saved: Any = None
    if interactive:
        try:
            import termios

            saved = termios.tcgetattr(sys.stdin.fileno())
        except (ImportError, OSError, ValueError):  # not POSIX, or not a terminal after all
            saved = None
    try:
        yield
    finally:
        if saved is not None:
            import termios

            try:
                termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
            except (OSError, ValueError):
                pass  # the terminal is gone: nothing to restore


def _close(conn: Any, stream: bool) -> None:
    if stream:
        conn.close()
    else:
        conn.close(1000)  # a normal closure, rather than the 1005 of close() with no code


def _finish(
    conn: Any,
    events: queue.Queue[tuple[str, Any]],
    handle: Callable[[str, Any], None],
    closed: Callable[[], Optional[bool]],
    stream: bool,
) -> int:
    """Close (if still open) and wait for the close event; the exit status follows it."""
    if closed() is None:
        _close(conn, stream)
        deadline = time.monotonic() + 10.0
        while closed() is None and time.monotonic() < deadline:
            try:
                kind, value = events.get(timeout=deadline - time.monotonic())
            except queue.Empty:
                break
            handle(kind, value)
    return EXIT_OK if closed() else EXIT_FAILED


# -- serve ----------------------------------------------------------------------------------


def _missing_extra(command: str, schemes: Sequence[str]) -> Optional[str]:
    """The one-line error for echo servers the installed extras cannot run, or None.

    The servers run on ``websockets`` (the ``server`` extra, which ``demo`` needs); TLS servers
    also need ``trustme`` for their throwaway CA, and ``serve`` is the ``testing`` extra, which has
    both. Checked before anything starts, so the user gets one line naming what to install
    rather than a traceback.
    """
    from importlib.util import find_spec

    tls = [scheme for scheme in schemes if scheme in ("wss", "socks")]
    extra = "server" if command == "demo" and not tls else "testing"
    needs = [("websockets", "the echo servers run on it")]
    if tls:
        needs.append(("trustme", f"it makes the certificate of {', '.join(tls)}"))
    for package, why in needs:
        if find_spec(package) is None:
            return (
                f"mesiboscript {command}: {package} is not installed ({why}): "
                f'pip install "mesiboscript[{extra}]"'
            )
    return None


def _serve(args: argparse.Namespace) -> int:
    schemes = args.schemes or ["ws"]
    unknown = [scheme for scheme in schemes if scheme not in ("ws", "wss", "sock", "socks")]
    if unknown:
        print(f"mesiboscript serve: unknown scheme {unknown[0]!r}", file=sys.stderr)
        return EXIT_USAGE
    if args.port and len(schemes) > 1:
        print("mesiboscript serve: --port needs a single scheme", file=sys.stderr)
        return EXIT_USAGE
    missing = _missing_extra("serve", schemes)
    if missing:
        print(missing, file=sys.stderr)
        return EXIT_USAGE
    try:
        from .testing import EchoServer
    except ImportError as exc:  # installed, but broken
        print(f"mesiboscript serve: {exc}", file=sys.stderr)
        return EXIT_USAGE

    stop = threading.Event()

    def on_signal(signum: int, frame: Optional[FrameType]) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    servers: list[Any] = []
    try:
        for scheme in schemes:
            try:
                server = EchoServer(
                    scheme,
                    host=args.host,
                    port=args.port,
                    greeting=args.greeting,
                    delay=args.delay / 1000.0,
                    script=args.script,
                )
            except (ValueError, OSError, ImportError) as exc:
                print(f"mesiboscript serve: {scheme}: {exc}", file=sys.stderr)
                return EXIT_USAGE
            servers.append(server)
            print(f"{scheme} echo server listening on {server.url}", flush=True)
            if server.ca is not None:
                print(f"  clients must trust the test CA: --cafile {server.ca.cafile}", flush=True)
        print("Press CTRL+C to stop.", flush=True)
        try:
            while not stop.wait(3600):
                pass
        except KeyboardInterrupt:
            pass  # the usual way to stop a foreground server
        return EXIT_OK
    finally:
        for server in servers:
            server.close()
        signal.signal(signal.SIGTERM, previous)


# -- demo -----------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    scheme = "wss" if args.tls else "ws"
    missing = _missing_extra("demo", [scheme])
    if missing:
        print(missing, file=sys.stderr)
        return EXIT_USAGE
    from . import WebSocket
    from .testing import EchoServer

    with EchoServer(scheme) as server:
        print(f"Echo server listening on {server.url}", flush=True)
        options: dict[str, Any] = {}
        if server.ca is not None:
            options["cafile"] = server.ca.cafile
        done = threading.Event()
        echoed: list[Any] = []
        ws = WebSocket(server.url, **options)

        def onopen() -> None:
            print(f"> {args.message}", flush=True)
            ws.send(args.message)

        def onmessage(event: Any) -> None:
            echoed.append(event.data)
            print(f"< {event.data}", flush=True)
            ws.close(1000, "demo done")

        def onclose(event: Any) -> None:
            print(f"Closed: code {event.code}, wasClean {event.wasClean}", flush=True)
            done.set()

        ws.onopen = onopen
        ws.onmessage = onmessage
        ws.onclose = onclose
        if not done.wait(30.0):
            print("demo: no answer within 30 s", file=sys.stderr)
            ws.close()
            return EXIT_FAILED
    return EXIT_OK if echoed == [args.message] else EXIT_FAILED


# -- arguments ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mesiboscript",
        description="Sockets and WebSockets with the browser's semantics: a client, echo "
        "servers and a demo.",
    )
    parser.add_argument("--version", action="version", version=f"mesiboscript {__version__}")
    commands = parser.add_subparsers(dest="command")
    commands.required = True

    connect = commands.add_parser(
        "connect",
        help="talk to a server interactively (like wscat)",
        description=f"Connect to URL: {_SCHEME_LIST}. Lines typed or piped are "
        "sent; received messages are printed after '< '. The close code is shown on disconnect.",
    )
    connect.add_argument("url", metavar="URL")
    connect.add_argument(
        "-x",
        "--exec",
        action="append",
        default=[],
        metavar="MESSAGE",
        help="send MESSAGE after connecting instead of reading input (repeatable)",
    )
    connect.add_argument(
        "-w",
        "--wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="after the input ends, wait this long for replies before closing (default 2; "
        "0 in a terminal, where Ctrl-D closes at once)",
    )
    connect.add_argument(
        "-n", "--count", type=int, default=0, metavar="N", help="close after N messages received"
    )
    connect.add_argument(
        "-s", "--subprotocol", action="append", default=[], help="offer a subprotocol"
    )
    connect.add_argument(
        "-H", "--header", action="append", default=[], help="extra header, 'Name: value'"
    )
    connect.add_argument("-o", "--origin", help="the Origin header")
    connect.add_argument("--cafile", help="trust this CA certificate (PEM) for wss:// / socks://")
    connect.add_argument(
        "--insecure", action="store_true", help="do not verify the server's certificate"
    )
    connect.add_argument("--connect-timeout", type=float, metavar="SECONDS")
    connect.set_defaults(run=_connect)

    serve = commands.add_parser(
        "serve",
        help="run echo servers",
        description="Run echo servers until Ctrl-C. TLS servers use a certificate from a "
        "throwaway CA whose file is printed. A ws/wss URL path scripts the server: "
        "/close/4000/bye, /drop, /delay/100, /greet/hello, /status/403.",
    )
    serve.add_argument(
        "schemes",
        nargs="*",
        metavar="SCHEME",
        help="ws (default), wss, sock, socks",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("-p", "--port", type=int, default=0, help="port (default: a free one)")
    serve.add_argument("--greeting", help="send this to each client on connect")
    serve.add_argument(
        "--delay", type=float, default=0.0, metavar="MS", help="delay each echo (ms)"
    )
    serve.add_argument(
        "--script",
        metavar="PATH",
        help="script every connection, e.g. /echo/1/close (on sock/socks /echo/N counts lines)",
    )
    serve.set_defaults(run=_serve)

    demo = commands.add_parser(
        "demo",
        help="echo one message through an embedded server (no network needed)",
        description="Start an echo server on 127.0.0.1, connect with mesiboscript.WebSocket, send "
        "a message, print the echo and exit.",
    )
    demo.add_argument("--message", default=DEMO_MESSAGE, help="what to send")
    demo.add_argument("--tls", action="store_true", help="use wss:// with a throwaway CA")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
