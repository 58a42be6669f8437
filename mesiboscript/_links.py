"""The link interface: one connection attempt of a ``Socket`` (or ``WebSocket``), as its owner sees
it. (Placeholder of the declaration; the socket branch brings StreamLink and the full docs.)"""

from __future__ import annotations

import dataclasses
from typing import Optional, Protocol, Union

__all__ = ["Link", "LinkEnd", "LinkListener"]

Buffer = Union[bytes, bytearray, memoryview]


@dataclasses.dataclass(frozen=True)
class LinkEnd:
    code: int
    reason: str
    was_clean: bool
    failure: Optional[BaseException]
    cause: Optional[BaseException]
    unsent: tuple[object, ...] = ()
    unsent_offset: int = 0


class LinkListener(Protocol):
    def link_up(self, link: Link) -> None: ...
    def link_data(self, link: Link, data: Union[str, bytes]) -> None: ...
    def link_written(self, link: Link, token: object) -> None: ...
    def link_down(self, link: Link, end: LinkEnd) -> None: ...


class Link(Protocol):
    def start(self) -> None: ...
    def write(self, data: Buffer, token: object = None, *, text: bool = False) -> None: ...
    def close(self, code: Optional[int] = 1000, reason: bytes = b"") -> None: ...
    def abort(self, failure: Optional[BaseException] = None) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    @property
    def pending_bytes(self) -> int: ...
