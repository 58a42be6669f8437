"""The send buffer without sockets: held, in flight, the unsent tail held again in order."""

from __future__ import annotations

import threading

import pytest

from mesiboscript import InvalidStateError
from mesiboscript._sendbuffer import Chunk, SendBuffer, SendBufferFull


def payloads(chunks: list[Chunk]) -> list[bytes]:
    return [bytes(c.payload) for c in chunks]


def test_held_while_down_bounded_by_max_held() -> None:
    buf = SendBuffer(max_held=10)
    assert buf.push(Chunk(b"12345")) is False  # no link: held, nothing to schedule
    assert buf.push(Chunk(b"67890")) is False
    with pytest.raises(SendBufferFull, match="max_buffer=10"):
        buf.push(Chunk(b"x"))
    assert isinstance(SendBufferFull("x"), InvalidStateError)
    assert buf.buffered_amount == 10
    assert buf.take() == []  # not up: nothing goes out
    buf.link_up()
    assert payloads(buf.take()) == [b"12345", b"67890"]
    assert buf.held_bytes == 0
    assert buf.buffered_amount == 10  # in flight now


def test_no_bound_while_up_and_one_take_scheduled_per_batch() -> None:
    buf = SendBuffer(max_held=1)
    buf.link_up()
    assert buf.push(Chunk(b"a" * 100)) is True  # schedule a take
    assert buf.push(Chunk(b"b")) is False  # already scheduled
    assert payloads(buf.take()) == [b"a" * 100, b"b"]
    assert buf.push(Chunk(b"c")) is True  # the take ran: schedule again


def test_written_completes_in_order_and_ignores_stale_tokens() -> None:
    buf = SendBuffer(max_held=100)
    buf.link_up()
    a, b, c = Chunk(b"aa"), Chunk(b"bbb"), Chunk(b"c")
    for chunk in (a, b, c):
        buf.push(chunk)
    buf.take()
    assert buf.written(b) == 5  # b and a before it
    assert buf.buffered_amount == 1
    assert buf.written(a) == 0  # already counted
    assert buf.written(Chunk(b"zz")) == 0  # not ours
    assert buf.written(c) == 1
    assert buf.buffered_amount == 0


def test_a_cut_stream_write_is_held_again_as_its_exact_tail_ahead_of_newer_data() -> None:
    buf = SendBuffer(max_held=5)
    buf.link_up()
    first, cut, whole = Chunk(b"done"), Chunk(b"0123456789"), Chunk(b"later")
    for chunk in (first, cut, whole):
        buf.push(chunk)
    buf.take()
    assert buf.written(first) == 4
    buf.push(Chunk(b"new"))  # sent while up, not taken yet
    taken = buf.link_down([cut, whole], unsent_offset=3)
    assert taken == 3  # "012" reached the kernel: reported once, never sent again
    assert buf.buffered_amount == 7 + 5 + 3
    # Held again beyond max_held: what was already sent is never refused.
    with pytest.raises(SendBufferFull):
        buf.push(Chunk(b"x"))
    buf.link_up()
    assert payloads(buf.take()) == [b"3456789", b"later", b"new"]


def test_a_message_link_sends_unsent_messages_again_whole() -> None:
    buf = SendBuffer(max_held=100)
    buf.link_up()
    sent = [Chunk(b"one"), Chunk(b"two", text=True), Chunk(b"three")]
    for chunk in sent:
        buf.push(chunk)
    buf.take()
    buf.written(sent[0])
    assert buf.link_down(sent[1:], 0) == 0
    buf.link_up()
    again = buf.take()
    assert again == sent[1:]  # the same chunks: whole, text flag kept
    assert again[0].text is True


def test_writes_neither_completed_nor_unsent_count_as_taken() -> None:
    buf = SendBuffer(max_held=100)
    buf.link_up()
    a, b = Chunk(b"aa"), Chunk(b"bbb")
    buf.push(a)
    buf.push(b)
    buf.take()
    assert buf.link_down([b]) == 2
    assert buf.buffered_amount == 3


def test_a_cut_at_the_end_of_a_write_holds_nothing_of_it() -> None:
    buf = SendBuffer(max_held=100)
    buf.link_up()
    a = Chunk(b"abc")
    buf.push(a)
    buf.take()
    assert buf.link_down([a], unsent_offset=3) == 3
    assert buf.buffered_amount == 0
    assert not buf.has_held


def test_refuse_then_drop() -> None:
    buf = SendBuffer(max_held=100)
    buf.push(Chunk(b"held"))
    buf.refuse("send() on a socket that is CLOSING")
    with pytest.raises(InvalidStateError, match="CLOSING"):
        buf.push(Chunk(b"late"))
    assert buf.has_held  # still to be written by a graceful close
    assert buf.drop() == 4
    assert buf.buffered_amount == 0
    assert not buf.has_held


def test_push_from_many_threads_keeps_each_threads_order() -> None:
    buf = SendBuffer(max_held=1 << 20)
    start = threading.Barrier(4)

    def sender(name: bytes) -> None:
        start.wait()
        for i in range(500):
            buf.push(Chunk(name + str(i).encode()))

    threads = [threading.Thread(target=sender, args=(n,)) for n in (b"a", b"b", b"c", b"d")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    buf.link_up()
    taken = payloads(buf.take())
    assert len(taken) == 2000
    for name in (b"a", b"b", b"c", b"d"):
        mine = [int(p[1:]) for p in taken if p[:1] == name]
        assert mine == list(range(500))
    assert buf.buffered_amount == sum(len(p) for p in taken)


def test_chunk_repr_shows_no_payload() -> None:
    assert "secret" not in repr(Chunk(b"secret"))
