"""permessage-deflate (RFC 7692), sans I/O: the offer, the response check, the per-message codec.

The client offers what Chromium offers, ``permessage-deflate; client_max_window_bits``: the server
may then pick any window for our compressor and may say how it compresses. The response is checked
as Chromium checks it (``net/websockets/websocket_deflate_parameters.cc``, the messages are its
words): one ``permessage-deflate`` at most, no other extension, each parameter at most once, the
``*_no_context_takeover`` ones without a value, the window bits ``8``..``15`` written as plain
digits (a quoted-string is unquoted first, RFC 6455 9.1), ``client_max_window_bits`` with a value.

Costs and limits, in numbers (zlib's own formulas, confirmed by ``benchmarks/``):

* compressing takes ``2 ** (window_bits + 2) + 2 ** (mem_level + 9)`` bytes (256 KiB at 15/8),
  decompressing ``2 ** window_bits`` plus about 7 KiB. Both are allocated at the first message that
  needs them, so an idle connection pays nothing for having negotiated compression.
* zlib cannot compress a raw stream with a 256-byte window (it silently uses 512): when the server
  asks for ``client_max_window_bits=8`` the messages go out uncompressed, as RFC 7692 allows.
* decompression runs in steps of at most 64 KiB of output, so a message that inflates past the
  limit (a zip bomb) stops within one step of it, and text is decoded as it inflates.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional, Union

from .handshake import HandshakeRejected

__all__ = [
    "EXTENSION",
    "OFFER",
    "RSV1",
    "DeflateOptions",
    "InflateError",
    "PerMessageDeflate",
    "negotiate",
    "parse_extensions",
]

EXTENSION = "permessage-deflate"
OFFER = "permessage-deflate; client_max_window_bits"  # Chromium's offer, byte for byte
RSV1 = 0x40  # the "compressed" bit of a message's first frame; OR it into build_frame's opcode
_TAIL = b"\x00\x00\xff\xff"  # the empty stored block a sync flush ends with (RFC 7692 7.2.1)
_STEP = 64 * 1024  # the most output one decompression step makes
_BITS = range(8, 16)

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN_RE = re.compile(_TOKEN)
_PARAM_RE = re.compile(rf'({_TOKEN})(?:[ \t]*=[ \t]*(?:({_TOKEN})|"((?:[^"\\]|\\.)*)"))?')
_UNESCAPE_RE = re.compile(r"\\(.)")

Buffer = Union[bytes, bytearray, memoryview]
Params = list[tuple[str, Optional[str]]]


class InflateError(Exception):
    """A compressed message cannot be accepted: ``code`` is the close code (1002 or 1009)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class DeflateOptions:
    """What the client asks for and spends (``compression_options`` of the public classes).

    Args:
        client_max_window_bits: the largest window our compressor uses (8..15; the server may
            ask for less). Memory: ``2 ** (bits + 2)`` bytes.
        server_max_window_bits: ask the server to compress with at most this window (8..15), so
            our decompressor needs ``2 ** bits`` bytes; ``None`` (Chromium's offer) asks nothing.
        mem_level: zlib's memLevel for compression (1..9): ``2 ** (mem_level + 9)`` bytes.
        level: zlib's compression level (0..9, or -1 for zlib's default, 6).
    """

    client_max_window_bits: int = 15
    server_max_window_bits: Optional[int] = None
    mem_level: int = 8
    level: int = -1

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("client_max_window_bits", self.client_max_window_bits, _BITS),
            ("server_max_window_bits", self.server_max_window_bits, _BITS),
            ("mem_level", self.mem_level, range(1, 10)),
            ("level", self.level, range(-1, 10)),
        ):
            if value is None and name == "server_max_window_bits":
                continue
            if type(value) is not int or value not in allowed:
                raise ValueError(
                    f"compression option {name} must be an int in {allowed.start}.."
                    f"{allowed.stop - 1}, not {value!r}"
                )

    @classmethod
    def from_options(
        cls, compression: Optional[str], options: Optional[Mapping[str, object]] = None
    ) -> Optional[DeflateOptions]:
        """The public ``compression``/``compression_options`` keywords, checked.

        Raises:
            ValueError: ``compression`` is neither ``"deflate"`` nor ``None``, or an option is
                unknown or out of range.
        """
        if compression is None:
            return None
        if compression != "deflate":
            raise ValueError(f'compression must be "deflate" or None, not {compression!r}')
        if not options and cls is DeflateOptions:
            return _DEFAULT_OPTIONS  # immutable: one for every connection with the defaults
        options = dict(options or {})
        unknown = sorted(set(options) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown compression option(s): {', '.join(unknown)}")
        return cls(**options)  # type: ignore[arg-type]

    @property
    def offer(self) -> str:
        """The ``Sec-WebSocket-Extensions`` value of the request."""
        if self.server_max_window_bits is None:
            return OFFER
        return f"{OFFER}; server_max_window_bits={self.server_max_window_bits}"


_DEFAULT_OPTIONS = DeflateOptions()


def parse_extensions(value: str) -> list[tuple[str, Params]]:
    """``Sec-WebSocket-Extensions`` (RFC 6455 9.1): ``[(name, [(param, value or None)])]``.

    Raises:
        HandshakeRejected: the value does not follow the grammar (Chromium fails the same).
    """
    result = []
    for item in value.split(","):
        name, *raw_params = item.split(";")
        name = name.strip(" \t")
        params: Params = []
        ok = _TOKEN_RE.fullmatch(name) is not None
        for raw in raw_params:
            match = _PARAM_RE.fullmatch(raw.strip(" \t"))
            if match is None:
                ok = False
                break
            pname, token, quoted = match.groups()
            if quoted is not None:
                token = _UNESCAPE_RE.sub(r"\1", quoted)
                if _TOKEN_RE.fullmatch(token) is None:
                    ok = False
                    break
            params.append((pname, token))
        if not ok:
            raise HandshakeRejected(
                f"'Sec-WebSocket-Extensions' header value is rejected by the parser: {value}"
            )
        result.append((name, params))
    return result


def _window_bits(name: str, value: Optional[str]) -> int:
    # Chromium's GetWindowBits: plain digits, no leading zero (nor "+"), 8..15.
    if value is None or not value.isdigit() or value[0] == "0" or int(value) not in _BITS:
        raise _deflate_error(f"Received invalid {name} parameter")
    return int(value)


def _deflate_error(message: str) -> HandshakeRejected:
    return HandshakeRejected(f"Error in permessage-deflate: {message}")


def negotiate(value: str, options: DeflateOptions) -> PerMessageDeflate:
    """Check the server's ``Sec-WebSocket-Extensions`` against our offer; the agreed codec.

    Raises:
        HandshakeRejected: anything Chromium rejects, and a response that does not honour what
            ``options`` asked of the server (RFC 7692 7.1.2.1).
    """
    found: Optional[Params] = None
    for name, params in parse_extensions(value):
        if name != EXTENSION:
            raise HandshakeRejected(
                f"Found an unsupported extension '{name}' in 'Sec-WebSocket-Extensions' header"
            )
        if found is not None:
            raise HandshakeRejected("Received duplicate permessage-deflate response")
        found = params
    assert found is not None  # parse_extensions returns at least one extension
    seen: set[str] = set()
    server_bits: Optional[int] = None
    client_bits = 15
    no_context = {"server_no_context_takeover": False, "client_no_context_takeover": False}
    for pname, pvalue in found:
        if pname in seen:
            raise _deflate_error(
                f"Received duplicate permessage-deflate extension parameter {pname}"
            )
        seen.add(pname)
        if pname in no_context:
            if pvalue is not None:
                raise _deflate_error(f"Received invalid {pname} parameter")
            no_context[pname] = True
        elif pname == "server_max_window_bits":
            server_bits = _window_bits(pname, pvalue)
        elif pname == "client_max_window_bits":
            if pvalue is None:
                raise _deflate_error("client_max_window_bits must have value")
            client_bits = _window_bits(pname, pvalue)
        else:
            raise _deflate_error("Received an unexpected permessage-deflate extension parameter")
    asked = options.server_max_window_bits
    if asked is not None and (server_bits is None or server_bits > asked):
        raise _deflate_error(
            f"the server did not accept server_max_window_bits={asked} (RFC 7692 7.1.2.1)"
        )
    return PerMessageDeflate(
        server_no_context_takeover=no_context["server_no_context_takeover"],
        client_no_context_takeover=no_context["client_no_context_takeover"],
        server_max_window_bits=server_bits or 15,
        client_max_window_bits=min(client_bits, options.client_max_window_bits),
        mem_level=options.mem_level,
        level=options.level,
    )


class PerMessageDeflate:
    """The agreed permessage-deflate of one connection: compress what we send, inflate what
    arrives. Not thread-safe (the connection's owner serialises calls); zlib's objects are made
    at first use (an idle connection holds none) and again after each message when the peer
    said it keeps no context."""

    def __init__(
        self,
        *,
        server_no_context_takeover: bool,
        client_no_context_takeover: bool,
        server_max_window_bits: int,
        client_max_window_bits: int,
        mem_level: int = 8,
        level: int = -1,
    ) -> None:
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        # zlib cannot compress a raw stream with a 256-byte window (it uses 512, which the peer
        # may not have): send uncompressed then, never with a larger window than agreed.
        self.compressing = client_max_window_bits > 8
        # Inflating with a larger window than the peer's is always safe; zlib-based servers told
        # "8" compress with 9 (the same bump), so 9 is the least used here.
        self._inflate_bits = max(9, server_max_window_bits)
        self._mem_level = mem_level
        self._level = level
        # zlib's compress and decompress objects (their classes are private to zlib).
        self._encoder: Optional[Any] = None
        self._decoder: Optional[Any] = None

    def __repr__(self) -> str:
        return (
            f"<PerMessageDeflate server {self.server_max_window_bits} bits"
            f"{' no context' if self.server_no_context_takeover else ''},"
            f" client {self.client_max_window_bits} bits"
            f"{' no context' if self.client_no_context_takeover else ''}>"
        )

    # -- sending ---------------------------------------------------------------------------

    def compress(self, data: Buffer) -> bytes:
        """One whole message's payload, compressed (RFC 7692 7.2.1: the trailing 4 bytes of
        the sync flush are left out)."""
        encoder = self._encoder
        if encoder is None:
            encoder = zlib.compressobj(
                self._level, zlib.DEFLATED, -self.client_max_window_bits, self._mem_level
            )
            if not self.client_no_context_takeover:
                self._encoder = encoder
        out = encoder.compress(data) + encoder.flush(zlib.Z_SYNC_FLUSH)
        return out[:-4]  # a sync flush always ends with _TAIL

    # -- receiving -------------------------------------------------------------------------

    def decompress(self, data: Buffer, room: int, end: bool = False) -> list[bytes]:
        """Inflate the next piece of a compressed message, in steps of at most 64 KiB.

        ``room``: how many more bytes the message may grow by; past it, :class:`InflateError`
        with 1009 is raised within one step. ``end``: this is the message's last piece (the
        flush tail is added, and the context dropped if the server keeps none).

        Raises:
            InflateError: 1009 past ``room``; 1002 for data that is not a deflate stream.
        """
        decoder = self._decoder
        if decoder is None:
            decoder = self._decoder = zlib.decompressobj(-self._inflate_bits)
        if end:
            data = bytes(data) + _TAIL
        out: list[bytes] = []
        try:
            while True:
                chunk = decoder.decompress(data, _STEP)
                if chunk:
                    room -= len(chunk)
                    if room < 0:
                        raise InflateError(1009, "a compressed message inflates over the limit")
                    out.append(chunk)
                data = decoder.unconsumed_tail
                # A full step may leave output inside zlib with no input left: ask again.
                if not data and len(chunk) < _STEP:
                    break
        except zlib.error as exc:
            raise InflateError(1002, f"a compressed message cannot be inflated ({exc})") from exc
        if end and (self.server_no_context_takeover or decoder.eof):
            self._decoder = None  # a final block ends the stream: a next message starts anew
        return out
