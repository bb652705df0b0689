"""A rate limit for log lines about packets an outsider can send at will.

Unknown sources and forged packets cost an attacker nothing. The server therefore writes each
kind of line at most once per interval and key, with the number of lines suppressed since.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

DEFAULT_INTERVAL = 60.0
DEFAULT_MAX_KEYS = 10_000


class LogThrottle:
    """Decides whether a log line for `key` may be written now."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        interval: float = DEFAULT_INTERVAL,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        self._clock = clock
        self._interval = interval
        self._max_keys = max_keys
        # key -> (monotonic time of the last line written, lines suppressed since then)
        self._keys: dict[Hashable, tuple[float, int]] = {}

    def allow(self, key: Hashable) -> int | None:
        """Return None to suppress the line, or the number of lines suppressed since the last
        one written for `key` (0 for the first), which the caller adds to the line."""
        now = self._clock()
        last = self._keys.get(key)
        if last is not None and now - last[0] < self._interval:
            self._keys[key] = (last[0], last[1] + 1)
            return None

        if last is None and len(self._keys) >= self._max_keys:
            # Too many distinct keys (spoofed sources): start over rather than grow.
            self._keys.clear()
        self._keys[key] = (now, 0)
        return 0 if last is None else last[1]
