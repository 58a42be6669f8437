"""More of the handler machinery: a listener that unsets ``on<type>`` while an event is being
delivered (the attribute's turn comes later in that same event)."""

from __future__ import annotations

from typing import Any

from mesiboscript import WebSocket
from mesiboscript._events import MessageData, message_event

from .helpers import Recorder


def test_an_attribute_handler_unset_by_an_earlier_listener_is_skipped(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    recorder = Recorder(ws)  # onopen, onmessage, onerror, onclose
    calls: list[str] = []

    def first(event: Any) -> None:
        calls.append("listener")
        ws.onmessage = None  # the attribute comes after this listener: it is not called now
        ws.close()

    ws.removeEventListener("message", first)  # unknown: ignored
    ws.onmessage = None
    ws.addEventListener("message", first)
    ws.onmessage = lambda event: calls.append("attribute")
    ws.onopen = lambda: ws.send("one")
    recorder.wait_closed()
    assert calls == ["listener"]


def test_message_event_is_the_dataclass_made_faster() -> None:
    # message_event fills MessageData's fields itself (no frozen __init__): it must stay the
    # same object as the dataclass makes, whatever fields MessageData gains.
    target = object()
    for data in ("text", b"\x00bytes"):
        fast, slow = message_event(data, target), MessageData(data, target=target)
        assert vars(fast) == vars(slow)
        assert fast == slow
        assert hash(fast) == hash(slow)
        assert repr(fast) == repr(slow)
