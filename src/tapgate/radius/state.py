"""Single-use State values that tie an Access-Challenge to the user's next Access-Request.

RFC 2865 section 5.24: the NAS copies the State of an Access-Challenge unchanged into the
request that carries the user's response. Each value here is 16 random octets, bound to the
RADIUS client, the User-Name and the transaction of the first request, usable once, and
forgotten after its lifetime. Pure code: the caller passes a monotonic clock.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

STATE_SIZE = 16
DEFAULT_LIFETIME = 300.0
DEFAULT_MAX_ENTRIES = 100_000
# Seconds between scans for expired challenges; redeem checks expiry on its own.
PURGE_INTERVAL = 1.0


class TooManyChallenges(Exception):
    """The store contains `max_entries` open challenges, so no State can be issued."""


@dataclass(frozen=True)
class PendingChallenge:
    """An open Access-Challenge: which login it continues and until when (monotonic seconds)."""

    transaction_id: str
    client_name: str
    username: str
    verification: str
    expires_at: float


class ChallengeStates:
    """Issues and redeems State values."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        lifetime: float = DEFAULT_LIFETIME,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self._clock = clock
        self._lifetime = lifetime
        self._max_entries = max_entries
        self._pending: dict[bytes, PendingChallenge] = {}
        self._next_purge = 0.0

    def __len__(self) -> int:
        return len(self._pending)

    def issue(
        self,
        *,
        transaction_id: str,
        client_name: str,
        username: str,
        verification: str,
        lifetime: float | None = None,
    ) -> tuple[bytes, PendingChallenge]:
        """Create a State for a challenge that lives `lifetime` seconds, at most the store's
        own lifetime. Raises TooManyChallenges when the store is full."""
        if self._clock() >= self._next_purge or len(self._pending) >= self._max_entries:
            self.purge()
        if len(self._pending) >= self._max_entries:
            raise TooManyChallenges(f"{len(self._pending)} challenges are open")

        seconds = self._lifetime if lifetime is None else min(lifetime, self._lifetime)
        challenge = PendingChallenge(
            transaction_id=transaction_id,
            client_name=client_name,
            username=username,
            verification=verification,
            expires_at=self._clock() + max(seconds, 0.0),
        )
        state = secrets.token_bytes(STATE_SIZE)
        self._pending[state] = challenge
        return state, challenge

    def redeem(self, state: bytes, *, client_name: str, username: str) -> PendingChallenge | None:
        """Consume a State and return its challenge, or None when it is unknown, expired, or
        sent by another client or for another User-Name. A State is consumed by any attempt,
        so a second use fails even when the first one was refused."""
        challenge = self._pending.pop(state, None)
        if challenge is None or challenge.expires_at <= self._clock():
            return None
        if challenge.client_name != client_name or challenge.username != username:
            return None
        return challenge

    def purge(self) -> None:
        """Forget the challenges whose lifetime has passed."""
        now = self._clock()
        self._next_purge = now + PURGE_INTERVAL
        expired = [state for state, item in self._pending.items() if item.expires_at <= now]
        for state in expired:
            del self._pending[state]
