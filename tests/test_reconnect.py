"""The reconnect policy without sockets: backoff, jitter, the stable reset, giving up."""

from __future__ import annotations

import random
import ssl
from typing import Optional

import pytest

from mesiboscript import ConnectionFailed
from mesiboscript._reconnect import (
    SOCKETIO_DEFAULTS,
    Reconnector,
    ReconnectPolicy,
    is_fatal,
    never_fatal,
)


def no_jitter(**options: object) -> Reconnector:
    return Reconnector(ReconnectPolicy(randomization=0.0, **options))  # type: ignore[arg-type]


def test_doubles_from_the_first_delay_up_to_the_maximum() -> None:
    r = no_jitter(first_delay=0.1, max_delay=1.0)
    delays = [r.failed() for _ in range(7)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    assert r.failures == 7


def test_other_factors() -> None:
    r = no_jitter(first_delay=1.0, max_delay=100.0, factor=3.0)
    assert [r.failed() for _ in range(4)] == pytest.approx([1.0, 3.0, 9.0, 27.0])
    flat = no_jitter(first_delay=2.0, max_delay=10.0, factor=1.0)
    assert [flat.failed() for _ in range(3)] == pytest.approx([2.0, 2.0, 2.0])


def test_jitter_stays_within_the_randomization_and_under_the_maximum() -> None:
    policy = ReconnectPolicy(first_delay=1.0, max_delay=4.0, randomization=0.2)
    r = Reconnector(policy, random.Random(12))
    delays = [r.failed() for _ in range(200)]
    assert all(d is not None for d in delays)
    first, second = delays[0], delays[1]
    assert first is not None
    assert 0.8 <= first <= 1.2
    assert second is not None
    assert 1.6 <= second <= 2.4
    capped = [d for d in delays[3:] if d is not None]
    assert all(3.2 <= d <= 4.0 for d in capped)  # capped again after jitter
    assert len(set(capped)) > 1  # really random
    assert max(capped) == 4.0  # half of them would have been above the cap


def test_a_seeded_random_makes_the_delays_reproducible() -> None:
    def run(seed: int) -> list[Optional[float]]:
        r = Reconnector(ReconnectPolicy(), random.Random(seed))
        return [r.failed() for _ in range(10)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_a_stable_connection_resets_the_delay_and_a_short_one_does_not() -> None:
    r = no_jitter(first_delay=1.0, max_delay=60.0, stable_after=10.0)
    assert [r.failed(), r.failed(), r.failed()] == pytest.approx([1.0, 2.0, 4.0])
    r.connected(now=100.0)
    assert r.failures == 0  # the attempts in a row start again
    assert r.lost(now=105.0) == pytest.approx(8.0)  # up 5 s: not stable, keeps doubling
    r.connected(now=200.0)
    assert r.lost(now=210.0) == pytest.approx(1.0)  # up 10 s: back to the first delay
    assert r.failed() == pytest.approx(2.0)


def test_stable_after_zero_resets_on_every_connection() -> None:
    r = no_jitter(first_delay=1.0, max_delay=60.0, stable_after=0.0)
    assert [r.failed(), r.failed()] == pytest.approx([1.0, 2.0])
    r.connected(now=0.0)
    assert r.lost(now=0.0) == pytest.approx(1.0)


def test_max_attempts_counts_failures_in_a_row() -> None:
    r = no_jitter(max_attempts=3)
    assert r.failed() is not None
    assert r.failed() is not None
    r.connected(now=0.0)  # a connection resets the count
    assert r.lost(now=1.0) is not None  # a drop is not a failed attempt
    assert r.failed() is not None
    assert r.failed() is not None
    assert r.stop_reason is None
    assert r.failed() is None
    assert r.stop_reason == "max_attempts"
    assert r.failures == 3


def cert_failure() -> ConnectionFailed:
    exc = ConnectionFailed("cannot connect")
    exc.__cause__ = ssl.SSLCertVerificationError(1, "certificate verify failed")
    return exc


class Refused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def test_certificate_failures_and_4xx_refusals_are_fatal() -> None:
    assert is_fatal(cert_failure())
    assert is_fatal(ssl.SSLCertVerificationError(1, "x"))
    for status in (400, 401, 403, 404, 426):
        assert is_fatal(Refused(status)), status
    wrapped = ConnectionFailed("handshake failed")
    wrapped.__cause__ = Refused(403)
    assert is_fatal(wrapped)


def test_transient_failures_are_retried() -> None:
    for status in (408, 429, 500, 502, 503):
        assert not is_fatal(Refused(status)), status
    assert not is_fatal(ConnectionRefusedError(111, "refused"))
    assert not is_fatal(ssl.SSLError(1, "handshake failure"))  # an alert, not the certificate
    assert not is_fatal(TimeoutError())
    loop = ConnectionFailed("a")
    other = ConnectionFailed("b")
    loop.__cause__, other.__cause__ = other, loop  # a cycle ends the walk
    assert not is_fatal(loop)


def test_a_fatal_failure_stops_at_once() -> None:
    r = no_jitter()
    assert r.failed(ConnectionRefusedError()) is not None
    assert r.failed(cert_failure()) is None
    assert r.stop_reason == "fatal"
    r.connected(now=0.0)
    assert r.lost(now=1.0, cause=Refused(401)) is None
    assert r.lost(now=1.0, cause=ConnectionResetError()) is not None
    assert r.stop_reason is None


def test_a_caller_can_retry_everything() -> None:
    r = Reconnector(ReconnectPolicy(fatal=never_fatal, randomization=0.0))
    assert r.failed(cert_failure()) is not None


def test_socketio_client_defaults() -> None:
    """socket.io-client: 1 s doubling to 5 s, randomization 0.5, unlimited attempts, reset on
    every successful connection."""
    r = Reconnector(SOCKETIO_DEFAULTS, random.Random(3))
    delays = [r.failed() for _ in range(50)]
    assert all(d is not None for d in delays)
    assert [d for d in delays if d is not None and not 0.5 <= d <= 5.0] == []
    first = delays[0]
    assert first is not None
    assert 0.5 <= first <= 1.5
    assert r.stop_reason is None
    r.connected(now=0.0)
    again = r.lost(now=0.1)
    assert again is not None
    assert 0.5 <= again <= 1.5


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"first_delay": 0}, "first_delay"),
        ({"max_delay": -1}, "max_delay"),
        ({"first_delay": 2.0, "max_delay": 1.0}, "max_delay"),
        ({"factor": 0.5}, "factor"),
        ({"randomization": 1.0}, "randomization"),
        ({"randomization": -0.1}, "randomization"),
        ({"stable_after": -1}, "stable_after"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 1.5}, "max_attempts"),
    ],
)
def test_bad_settings(options: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ReconnectPolicy(**options)  # type: ignore[arg-type]
