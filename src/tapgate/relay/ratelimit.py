"""Token buckets keyed by server id or device source address, kept in memory."""

from __future__ import annotations

import time
from collections.abc import Callable

from tapgate.relay.config import RateLimit

_MAX_KEYS = 100_000


class TokenBuckets:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, limit: RateLimit) -> float:
        """Take one token; return 0 when allowed, else the seconds until a token is free."""
        now = self._clock()
        tokens, updated = self._buckets.get(key, (float(limit.burst), now))
        tokens = min(float(limit.burst), tokens + (now - updated) * limit.per_second)
        if tokens >= 1.0:
            if len(self._buckets) >= _MAX_KEYS and key not in self._buckets:
                self._forget_full(now, limit)
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / limit.per_second

    def _forget_full(self, now: float, limit: RateLimit) -> None:
        """Drop buckets that have refilled, so the table stays bounded under many sources."""
        refill = limit.burst / limit.per_second
        for key in [k for k, (_, at) in self._buckets.items() if now - at > refill]:
            del self._buckets[key]
