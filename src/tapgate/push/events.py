"""Wake-ups for requests waiting on a transaction.

Single node: an in-process wake-up per waiter. The row stays the truth: waiters re-read it on
every wake-up and on their own timer, so a lost wake-up only delays an answer.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tapgate.push.ports import LoginStatus


class Wakeup:
    """One waiter's wake-up flag.

    It is awaited with a timeout through a future and a timer handle. `asyncio.wait_for` on an
    `asyncio.Event` would start a task for every wait, and a status request waits at least once.
    """

    __slots__ = ("_flag", "_future", "final")

    def __init__(self) -> None:
        self._flag = False
        self._future: asyncio.Future[None] | None = None
        # The final status, when the process that resolved the transaction passed it along.
        self.final: LoginStatus | None = None

    def set(self) -> None:
        self._flag = True
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)

    def clear(self) -> None:
        self._flag = False

    def is_set(self) -> bool:
        return self._flag

    async def wait(self, timeout: float) -> bool:
        """Wait until the flag is set or `timeout` seconds pass; return whether it is set."""
        if self._flag:
            return True
        loop = asyncio.get_running_loop()
        future = self._future = loop.create_future()
        timer = loop.call_later(timeout, _resolve, future)
        try:
            await future
        finally:
            timer.cancel()
            self._future = None
        return self._flag


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class EventBus:
    def __init__(self) -> None:
        self._waiters: dict[str, set[Wakeup]] = {}
        # Set when the server begins to shut down (see `close`).
        self.closed = False

    def subscribe(self, transaction_id: str) -> Wakeup:
        wakeup = Wakeup()
        waiters = self._waiters.get(transaction_id)
        if waiters is None:
            self._waiters[transaction_id] = {wakeup}
        else:
            waiters.add(wakeup)
        return wakeup

    def unsubscribe(self, transaction_id: str, wakeup: Wakeup) -> None:
        waiters = self._waiters.get(transaction_id)
        if waiters is not None:
            waiters.discard(wakeup)
            if not waiters:
                del self._waiters[transaction_id]

    def publish(self, transaction_id: str, final: LoginStatus | None = None) -> None:
        """Wake the transaction's waiters; `final` spares them reading the status again.

        Synchronous, so that it can run inside the commit that closed the transaction."""
        for wakeup in list(self._waiters.get(transaction_id, ())):
            if final is not None:
                wakeup.final = final
            wakeup.set()

    def close(self) -> None:
        """Wake every waiter once, because the server is shutting down.

        Waiters that asked to end at shutdown return their current status; the others re-read
        and wait again until their own timeout.
        """
        self.closed = True
        for waiters in list(self._waiters.values()):
            for wakeup in list(waiters):
                wakeup.set()
