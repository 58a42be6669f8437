"""What an idle connection keeps (issue 18: 10 000 idle connections at a few KB each), and the
behaviour of what is now made on first use instead of in the constructor."""

from __future__ import annotations

import threading

from mesiboscript import WebSocket
from mesiboscript._validation import _parse_url, parse_url

from .helpers import TIMEOUT, Recorder


def test_an_idle_connection_keeps_compact_dicts_and_no_condition(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    rec = Recorder(ws)
    assert rec.opened.wait(TIMEOUT)
    link = ws._link
    transport = link._transport
    # CPython keeps at most 29 attributes in a compact shared-key instance dict; a 30th makes
    # every connection's dict ~1.3 KB bigger.
    for obj in (ws, link, transport, link.core):
        assert len(vars(obj)) <= 29, type(obj).__name__
    # No thread waits on it: no threading.Condition (and its waiter deque) is made.
    assert ws._cond._cond is None
    # Nothing queued, nothing waiting.
    assert ws._futures is None
    assert ws._id is None
    ws.close()
    rec.wait_closed()


def test_a_thread_waiting_in_upgrade_is_woken_and_leaves_no_condition(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(ws.upgrade(TIMEOUT)))
    waiter.start()
    waiter.join(TIMEOUT)
    assert results == [True]
    assert ws._cond._cond is None
    ws.close()
    assert ws.read(TIMEOUT) is False


def test_get_id_is_one_value_whichever_thread_asks_first(echo_url: str) -> None:
    ws = WebSocket(echo_url)
    start = threading.Barrier(8)
    ids: list[str] = []

    def ask() -> None:
        start.wait(TIMEOUT)
        ids.append(ws.getId())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert len(ids) == 8
    assert len(set(ids)) == 1
    assert len(ids[0]) == 32
    other = WebSocket(echo_url)
    assert other.getId() != ids[0]
    for each in (ws, other):
        each.close()
        assert each.read(TIMEOUT) is False


def test_parsed_urls_are_shared_but_never_with_credentials() -> None:
    first = parse_url("ws://example.com:8080/path?q=1")
    assert parse_url("ws://example.com:8080/path?q=1") is first
    with_credentials = parse_url("ws://user:secret@example.com/")
    assert with_credentials.userinfo == "user:secret"
    assert parse_url("ws://user:secret@example.com/") is not with_credentials
    assert parse_url("ws://user:secret@example.com/") == with_credentials
    _parse_url.cache_clear()  # nothing else to check in it: it never held the credentials
