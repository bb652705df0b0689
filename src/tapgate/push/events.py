"""Wake-ups for requests waiting on a transaction.

Single node: an in-process event per transaction. The row stays the truth: waiters re-read it on
every wake-up and on their own timer, so a lost wake-up only delays an answer.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict


class EventBus:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)

    def subscribe(self, transaction_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters[transaction_id].add(event)
        return event

    def unsubscribe(self, transaction_id: str, event: asyncio.Event) -> None:
        waiters = self._waiters.get(transaction_id)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                del self._waiters[transaction_id]

    async def publish(self, transaction_id: str) -> None:
        for event in list(self._waiters.get(transaction_id, ())):
            event.set()
