"""Duplicate detection for RADIUS requests (RFC 5080 section 2.2.2).

A NAS retransmits a request with the same source address, source port, Identifier and Request
Authenticator when no reply came in time. A push login can take far longer than a NAS waits, so
the copies usually arrive while the first one is still being processed. The cache therefore
keeps an in-flight state: a copy that arrives then is dropped (it must never start a second
login or push), and a copy that arrives after the reply was sent gets the same reply bytes again.

Pure code: the caller passes a monotonic clock and does the I/O.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# (source address, source port, Identifier, Request Authenticator)
DuplicateKey = tuple[str, int, int, bytes]

DEFAULT_REPLY_LIFETIME = 30.0
DEFAULT_MAX_ENTRIES = 100_000


class Verdict(enum.Enum):
    NEW = "new"
    """First copy: process it, then call `finish` or `forget`."""
    IN_FLIGHT = "in_flight"
    """A copy of a request still being processed: drop it."""
    ANSWERED = "answered"
    """A copy of a request that was replied to: send `Lookup.reply` again."""
    FULL = "full"
    """The cache contains `max_entries` requests. Drop the request, because processing it
    without an entry could start a second login for its retransmissions."""


@dataclass(frozen=True)
class Lookup:
    verdict: Verdict
    reply: bytes | None = None


@dataclass
class _Entry:
    reply: bytes | None = None
    # Monotonic time after which the cached reply is forgotten; None while in flight.
    expires_at: float | None = None


class DuplicateCache:
    """Requests in flight and recently sent replies, keyed by `DuplicateKey`.

    `reply_lifetime` is how many seconds a reply stays cached after it was sent. RFC 5080
    suggests at least the time a NAS spends retransmitting; 30 s covers the common 3 to 5 s
    timeouts with several retries.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        reply_lifetime: float = DEFAULT_REPLY_LIFETIME,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self._clock = clock
        self._reply_lifetime = reply_lifetime
        self._max_entries = max_entries
        self._entries: dict[DuplicateKey, _Entry] = {}
        # Keys with a sent reply, in the order they expire, because every reply is kept equally
        # long. begin() purges before it looks up a key, so each key is queued at most once.
        self._expiry_queue: deque[tuple[float, DuplicateKey]] = deque()

    def __len__(self) -> int:
        return len(self._entries)

    def begin(self, key: DuplicateKey) -> Lookup:
        """Classify a received request; a NEW request is recorded as in flight."""
        self.purge()

        entry = self._entries.get(key)
        if entry is not None and entry.expires_at is None:
            return Lookup(Verdict.IN_FLIGHT)
        if entry is not None:
            return Lookup(Verdict.ANSWERED, entry.reply)

        if len(self._entries) >= self._max_entries:
            return Lookup(Verdict.FULL)
        self._entries[key] = _Entry()
        return Lookup(Verdict.NEW)

    def finish(self, key: DuplicateKey, reply: bytes) -> None:
        """Record the reply sent to a NEW request; copies get it for `reply_lifetime` seconds."""
        entry = self._entries.get(key)
        if entry is None or entry.expires_at is not None:
            return
        entry.reply = reply
        entry.expires_at = self._clock() + self._reply_lifetime
        self._expiry_queue.append((entry.expires_at, key))

    def forget(self, key: DuplicateKey) -> None:
        """Drop a NEW request that got no reply, so that a later copy is processed afresh."""
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at is None:
            del self._entries[key]

    def purge(self) -> None:
        """Remove the replies whose lifetime has passed."""
        now = self._clock()
        while self._expiry_queue and self._expiry_queue[0][0] <= now:
            _, key = self._expiry_queue.popleft()
            self._entries.pop(key, None)
