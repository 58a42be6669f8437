"""When to try again after a connection ends, and when to stop: one reconnect policy.

Pure: no timers, no threads, no clock of its own. The owner reports what happened (a connection
came up, a connection that was up ended, an attempt failed) with the time from its monotonic clock,
and gets back the delay before its next attempt, or ``None``: stop trying. Used by the Mesibo
``Socket`` (``keepalive``) and meant for ``WebSocket`` and ``SocketIO`` reconnection.

The backoff is the usual exponential one: ``first_delay``, then ``factor`` times the previous one,
capped at ``max_delay``; each delay is multiplied by a random factor in
``[1 - randomization, 1 + randomization]`` and capped again (socket.io-client's ``Backoff`` does
the same). A connection that stayed up ``stable_after`` seconds resets the delay to the first one;
``stable_after=0`` resets it on every successful connection (socket.io-client).

Which failures are worth retrying (:func:`is_fatal`): a certificate that fails verification is
fatal, since the same attempt meets the same certificate. So is a handshake the server refused
with an HTTP 4xx status (an exception in the cause chain with an ``int`` attribute ``status``):
the server understood the request and said no, and only other credentials or another URL can
change that. 408 (Request Timeout) and 429 (Too Many Requests) are the exceptions: they ask the
client to come back later. 5xx answers, refused or reset connections, DNS failures and timeouts
are retried. Retrying a fatal failure would only hide it: the owner closes instead, with the cause
in ``last_error``.
"""

from __future__ import annotations

import dataclasses
import random
import ssl
from typing import Callable, Optional

__all__ = ["SOCKETIO_DEFAULTS", "ReconnectPolicy", "Reconnector", "is_fatal", "never_fatal"]

# 4xx answers that mean "later", not "no".
_RETRYABLE_STATUS = frozenset({408, 429})
# Doubling past this could only overflow: the delay is capped long before.
_MAX_EXPONENT = 64


def is_fatal(exc: BaseException) -> bool:
    """True when retrying cannot fix ``exc``: a certificate verification failure, or an HTTP 4xx
    refusal of the handshake other than 408 and 429, anywhere in its cause chain."""
    seen: set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        status = getattr(current, "status", None)
        if isinstance(status, int) and 400 <= status < 500 and status not in _RETRYABLE_STATUS:
            return True
        current = current.__cause__ or current.__context__
    return False


def never_fatal(exc: BaseException) -> bool:
    """A classification that retries everything (for a caller that decides on its own)."""
    return False


@dataclasses.dataclass(frozen=True)
class ReconnectPolicy:
    """The settings of a reconnect backoff.

    Attributes:
        first_delay: seconds before the first retry.
        max_delay: no delay is longer than this (after jitter too).
        factor: each delay is this many times the previous one.
        randomization: each delay is multiplied by a random number in
            ``[1 - randomization, 1 + randomization]``; 0 turns jitter off.
        stable_after: a connection that stayed up this many seconds resets the delay to
            ``first_delay``; 0 resets it on every successful connection.
        max_attempts: attempts in a row that may fail (never connect) before giving up; a
            connection that came up resets the count. ``None``: never give up.
        fatal: which failures are not retried (default :func:`is_fatal`).
    """

    first_delay: float = 0.1
    max_delay: float = 30.0
    factor: float = 2.0
    randomization: float = 0.2
    stable_after: float = 10.0
    max_attempts: Optional[int] = None
    fatal: Callable[[BaseException], bool] = is_fatal

    def __post_init__(self) -> None:
        for name in ("first_delay", "max_delay"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        if self.max_delay < self.first_delay:
            raise ValueError("max_delay must not be less than first_delay")
        if not self.factor >= 1:
            raise ValueError(f"factor must be >= 1, not {self.factor!r}")
        if not 0 <= self.randomization < 1:
            raise ValueError(f"randomization must be in [0, 1), not {self.randomization!r}")
        if not self.stable_after >= 0:
            raise ValueError(f"stable_after must be >= 0, not {self.stable_after!r}")
        if self.max_attempts is not None and (
            not isinstance(self.max_attempts, int) or self.max_attempts < 1
        ):
            raise ValueError(f"max_attempts must be None or an int >= 1, not {self.max_attempts!r}")


# socket.io-client's Manager defaults: reconnectionDelay 1000 ms doubling to
# reconnectionDelayMax 5000 ms, randomizationFactor 0.5, reconnectionAttempts Infinity, and the
# backoff reset on every successful connection.
SOCKETIO_DEFAULTS = ReconnectPolicy(
    first_delay=1.0, max_delay=5.0, randomization=0.5, stable_after=0.0, max_attempts=None
)


class Reconnector:
    """One connection's reconnect state under a :class:`ReconnectPolicy` (one thread only).

    Report each event; :meth:`lost` and :meth:`failed` return the seconds to wait before the
    next attempt, or ``None`` to stop (``stop_reason`` then says why: ``"fatal"`` or
    ``"max_attempts"``).
    """

    __slots__ = ("_exponent", "_rng", "_up_since", "failures", "policy", "stop_reason")

    def __init__(self, policy: ReconnectPolicy, rng: Optional[random.Random] = None) -> None:
        self.policy = policy
        self._rng = rng if rng is not None else random.Random()
        self._exponent = 0  # how many times the delay has been multiplied by the factor
        self._up_since: Optional[float] = None
        self.failures = 0  # attempts in a row that did not connect
        self.stop_reason: Optional[str] = None

    def connected(self, now: float) -> None:
        """A connection came up at ``now`` (monotonic seconds)."""
        self._up_since = now
        self.failures = 0
        if self.policy.stable_after == 0:
            self._exponent = 0

    def lost(self, now: float, cause: Optional[BaseException] = None) -> Optional[float]:
        """A connection that was up ended at ``now``: the delay before reconnecting, or None."""
        up_since, self._up_since = self._up_since, None
        if up_since is not None and now - up_since >= self.policy.stable_after:
            self._exponent = 0
        if cause is not None and self.policy.fatal(cause):
            self.stop_reason = "fatal"
            return None
        return self._next_delay()

    def failed(self, cause: Optional[BaseException] = None) -> Optional[float]:
        """An attempt ended without connecting: the delay before the next one, or None."""
        self._up_since = None
        self.failures += 1
        if cause is not None and self.policy.fatal(cause):
            self.stop_reason = "fatal"
            return None
        limit = self.policy.max_attempts
        if limit is not None and self.failures >= limit:
            self.stop_reason = "max_attempts"
            return None
        return self._next_delay()

    def _next_delay(self) -> float:
        self.stop_reason = None
        policy = self.policy
        base = min(policy.max_delay, policy.first_delay * policy.factor**self._exponent)
        if base < policy.max_delay and self._exponent < _MAX_EXPONENT:
            self._exponent += 1
        r = policy.randomization
        if r:
            base *= self._rng.uniform(1.0 - r, 1.0 + r)
        return min(base, policy.max_delay)
