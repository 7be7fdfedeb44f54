"""Rate limiting of writes, per user (all of a user's API tokens together): a token
bucket each, so that minting another token does not buy more writes.

A user may send ``burst`` commands at once and ``rate`` a second after that; one more
is refused with 429 and ``Retry-After`` (the seconds until the bucket holds a command
again), before anything is decided or written. Reads are not limited. The buckets live
in the serving process (one per user who wrote lately; an idle one is forgotten once
it is full again), so with several API processes each limits on its own.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from time import monotonic


class RateLimitedError(Exception):
    """Raised when a user has used up their writes for now (429)."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"too many writes by this user; retry after {self.retry_after} s")


class TokenBuckets:
    """One bucket per key (a user id): ``burst`` commands at most, refilled at ``rate``
    a second. ``rate`` 0 turns limiting off."""

    #: Buckets are swept of full ones when there are more than this many.
    SWEEP_ABOVE = 10_000

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = monotonic) -> None:
        if rate < 0 or burst < 1:
            raise ValueError("the rate must be >= 0 and the burst >= 1")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (level, at)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str) -> None:
        """Spend one command of ``key``'s bucket, or raise :class:`RateLimitedError`."""
        if not self.enabled:
            return
        now = self.clock()
        with self._lock:
            level, at = self._buckets.get(key, (float(self.burst), now))
            level = min(float(self.burst), level + (now - at) * self.rate)
            if level < 1:
                self._buckets[key] = (level, now)
                raise RateLimitedError((1 - level) / self.rate)
            self._buckets[key] = (level - 1, now)
            if len(self._buckets) > self.SWEEP_ABOVE:
                self._sweep(now)

    def _sweep(self, now: float) -> None:
        """Forget the buckets that have refilled: they are as good as new."""
        self._buckets = {
            key: (level, at)
            for key, (level, at) in self._buckets.items()
            if level + (now - at) * self.rate < self.burst
        }
