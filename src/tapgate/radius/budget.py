"""Calls to the login service that end at a RADIUS client's response time budget.

A NAS gives up after its own timeout and retries, without telling the user why. Replying with
Access-Reject at the budget instead gives the user a message, and canceling the transaction
keeps a push from waiting on the phone for a login that is already over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from tapgate.errors import TapgateError
from tapgate.push import ports
from tapgate.push.ports import LoginPort, LoginRequest, LoginStatus

log = logging.getLogger(__name__)

# Each wait_for_status call covers at most this many seconds, so a lost wake-up costs little.
WAIT_SLICE = 30.0


class BudgetedLogin:
    """A `LoginPort` seen through deadlines on a monotonic clock."""

    def __init__(self, login: LoginPort, clock: Callable[[], float] = time.monotonic) -> None:
        self._login = login
        self._clock = clock
        self._background: set[asyncio.Future[Any]] = set()

    async def start_within(self, request: LoginRequest, deadline: float) -> LoginStatus | None:
        """Run start_login, returning None when it outlasts the deadline.

        start_login is not interrupted, because it may have sent the push already. Instead, a
        transaction it starts after the deadline is canceled as soon as it returns.
        """
        task = asyncio.ensure_future(self._login.start_login(request))
        try:
            done, _ = await asyncio.wait({task}, timeout=max(deadline - self._clock(), 0.0))
        except asyncio.CancelledError:
            self._cancel_when_started(task)
            raise
        if task in done:
            return task.result()
        self._cancel_when_started(task)
        return None

    async def wait_until_final(self, transaction_id: str, deadline: float) -> LoginStatus | None:
        """Return the final status, or None when the deadline passed first and the transaction
        was canceled.

        When the caller is canceled meanwhile (the server stops), the transaction is canceled
        too, so that the phone does not show a push that nothing waits for any more.
        """
        try:
            while True:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                status = await self._login.wait_for_status(
                    transaction_id, min(remaining, WAIT_SLICE)
                )
                if status.final:
                    return status
        except asyncio.CancelledError:
            await self.cancel_quietly(transaction_id)
            raise

        await self._login.cancel(transaction_id)
        # An approval that arrived just before the cancel still counts. The login service resolves
        # a transaction exactly once, so its final status shows which came first.
        status = await self._login.wait_for_status(transaction_id, 0)
        return status if status.status == ports.APPROVED else None

    async def cancel_quietly(self, transaction_id: str) -> None:
        """Cancel a transaction, logging instead of raising when that fails."""
        try:
            await self._login.cancel(transaction_id)
        except TapgateError as error:
            log.warning("radius cancel failed transaction=%s error=%s", transaction_id, error)

    def _cancel_when_started(self, task: asyncio.Future[LoginStatus]) -> None:
        self._keep_until_done(task)
        task.add_done_callback(self._cancel_late_login)

    def _cancel_late_login(self, task: asyncio.Future[LoginStatus]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.warning("radius late login failed error=%s", error)
            return
        status = task.result()
        if status.final or status.transaction_id is None:
            return
        self._keep_until_done(asyncio.ensure_future(self.cancel_quietly(status.transaction_id)))

    def _keep_until_done(self, task: asyncio.Future[Any]) -> None:
        # The event loop keeps only weak references to tasks; this set keeps them alive.
        self._background.add(task)
        task.add_done_callback(self._background.discard)
