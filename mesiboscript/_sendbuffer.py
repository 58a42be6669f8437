"""What was sent and not yet taken by the kernel: one send buffer, across reconnections.

Data passes through two stages:

- *held*: sent while no link is up (before the first connection, while reconnecting). Bounded by
  ``max_held`` bytes: past it :meth:`SendBuffer.push` raises :class:`SendBufferFull`.
- *in flight*: handed to the link (:meth:`SendBuffer.take`), not yet reported wholly written.

When a link goes down, its unsent writes go back to the front of *held*, ahead of anything sent
since, so a next connection writes them first and in order. A stream link reports how many bytes
of the first unsent write did reach the kernel: only its exact tail is held again (each byte is
handed to the kernel once). A message link reports 0: a message whose frame was not completely
written is sent again whole (the old peer cannot have received an incomplete frame).

:meth:`SendBuffer.push` is safe from any thread; the other methods run on the I/O thread. The
counters behind ``buffered_amount`` are shared, under the buffer's own lock.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from typing import Optional

from ._exceptions import InvalidStateError
from ._transport import Buffer

__all__ = ["Chunk", "SendBuffer", "SendBufferFull"]


class SendBufferFull(InvalidStateError, BufferError):
    """``send()`` while disconnected would hold more than ``max_buffer`` bytes."""


class Chunk:
    """One ``send()``: its payload, its size in bytes, and whether it is a text message (ws).

    The chunk itself is the write's token on the link."""

    __slots__ = ("payload", "size", "text")

    def __init__(self, payload: Buffer, text: bool = False) -> None:
        self.payload = payload
        self.size = len(payload)
        self.text = text

    def __repr__(self) -> str:  # sizes only: payloads may be secrets
        return f"<Chunk {self.size} bytes{' text' if self.text else ''}>"


class SendBuffer:
    """Held and in-flight data of one connection owner (see the module docs)."""

    __slots__ = (
        "_closed_reason",
        "_flush_scheduled",
        "_held",
        "_held_bytes",
        "_inflight",
        "_inflight_bytes",
        "_lock",
        "_max_held",
        "_up",
    )

    def __init__(self, max_held: int) -> None:
        self._lock = threading.Lock()
        self._max_held = max_held
        self._held: deque[Chunk] = deque()
        self._held_bytes = 0
        self._inflight: deque[Chunk] = deque()  # I/O thread only
        self._inflight_bytes = 0
        self._up = False
        self._flush_scheduled = False
        self._closed_reason: Optional[str] = None

    # -- any thread ------------------------------------------------------------------------

    @property
    def buffered_amount(self) -> int:
        """Bytes held or in flight."""
        with self._lock:
            return self._held_bytes + self._inflight_bytes

    @property
    def held_bytes(self) -> int:
        with self._lock:
            return self._held_bytes

    def push(self, chunk: Chunk) -> bool:
        """Queue a chunk after everything before it. True when the owner must schedule one
        :meth:`take` on the I/O thread (a link is up and no take is pending yet).

        Raises:
            InvalidStateError: after :meth:`refuse`.
            SendBufferFull: no link is up and holding ``chunk`` would exceed ``max_held``.
        """
        with self._lock:
            if self._closed_reason is not None:
                raise InvalidStateError(self._closed_reason)
            if not self._up and self._held_bytes + chunk.size > self._max_held:
                raise SendBufferFull(
                    f"no connection, and {self._held_bytes} bytes are held already: "
                    f"{chunk.size} more would exceed max_buffer={self._max_held}"
                )
            self._held.append(chunk)
            self._held_bytes += chunk.size
            if self._flush_scheduled or not self._up:
                return False
            self._flush_scheduled = True
            return True

    def refuse(self, reason: str) -> None:
        """From now on :meth:`push` raises ``InvalidStateError(reason)``; what is held stays."""
        with self._lock:
            if self._closed_reason is None:
                self._closed_reason = reason

    # -- I/O thread ------------------------------------------------------------------------

    @property
    def has_held(self) -> bool:
        return bool(self._held)

    def link_up(self) -> None:
        """A link is up: pushes are no longer bounded, and ask for a take."""
        with self._lock:
            self._up = True

    def take(self) -> list[Chunk]:
        """Move everything held to in flight, oldest first: the owner writes these to the link,
        each with itself as the token."""
        with self._lock:
            self._flush_scheduled = False
            if not self._up or not self._held:
                return []
            chunks = list(self._held)
            self._held.clear()
            self._inflight_bytes += self._held_bytes
            self._held_bytes = 0
        self._inflight.extend(chunks)
        return chunks

    def written(self, token: object) -> int:
        """The write with ``token`` is wholly in the kernel, and with it every earlier one (links
        complete writes in order). The bytes newly written, for ``onwrite``; 0 for a stale
        token."""
        inflight = self._inflight
        if not inflight or (inflight[0] is not token and all(c is not token for c in inflight)):
            return 0
        size = 0
        while inflight:
            chunk = inflight.popleft()
            size += chunk.size
            if chunk is token:
                break
        with self._lock:
            self._inflight_bytes -= size
        return size

    def link_down(self, unsent: Iterable[object], unsent_offset: int = 0) -> int:
        """The link went down: hold its unsent writes again, ahead of newer data.

        Args:
            unsent: the tokens of writes not wholly handed to the kernel, oldest first.
            unsent_offset: bytes of the first of them that did reach the kernel (stream links;
                a message link reports 0 and the message is sent again whole).

        Returns:
            The bytes the kernel took that were not reported written yet (for ``onwrite``): the
            head of a cut write, and any write the link neither completed nor listed as unsent.
        """
        unsent_ids = {id(token) for token in unsent}
        again: list[Chunk] = []
        taken = 0
        first = True
        for chunk in self._inflight:
            if id(chunk) not in unsent_ids:
                taken += chunk.size
                continue
            if first and unsent_offset > 0:
                cut = min(unsent_offset, chunk.size)
                taken += cut
                if cut < chunk.size:
                    again.append(Chunk(memoryview(chunk.payload)[cut:], chunk.text))
            else:
                again.append(chunk)
            first = False
        self._inflight.clear()
        with self._lock:
            self._up = False
            self._flush_scheduled = False
            self._held.extendleft(reversed(again))
            self._held_bytes += sum(chunk.size for chunk in again)
            self._inflight_bytes = 0
        return taken

    def drop(self) -> int:
        """Discard everything (the owner closed for good): the bytes never written."""
        with self._lock:
            dropped = self._held_bytes + self._inflight_bytes
            self._held.clear()
            self._held_bytes = 0
            self._inflight_bytes = 0
            self._up = False
        self._inflight.clear()
        return dropped
