"""Everything a running node needs, built once from the settings and shared by the front doors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tapgate.api.clients import TokenCache
from tapgate.clock import Clock, SystemClock
from tapgate.delivery.direct import DirectHub
from tapgate.devices.requests import prune_nonces
from tapgate.geo import Locator
from tapgate.keys import KeyRing, load_or_create_key_file
from tapgate.objects.runtime import ObjectCache
from tapgate.push import joins, ratelimit
from tapgate.push.events import EventBus
from tapgate.push.service import LoginService
from tapgate.retention import prune_past_retention
from tapgate.settings import Settings
from tapgate.store.database import Database

log = logging.getLogger(__name__)

SWEEP_SECONDS = 1.0


@dataclass
class Runtime:
    settings: Settings
    database: Database
    keyring: KeyRing
    clock: Clock
    objects: ObjectCache
    bus: EventBus
    hub: DirectHub
    login: LoginService
    tokens: TokenCache = field(default_factory=TokenCache)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, clock: Clock | None = None) -> Runtime:
        clock = clock or SystemClock()
        database = Database(settings.database_url)
        keyring = KeyRing(load_or_create_key_file(settings.key_file))
        objects = ObjectCache(database, keyring, clock)
        bus = EventBus()
        hub = DirectHub()
        login = LoginService(
            database,
            objects,
            keyring,
            clock,
            bus,
            hub,
            Locator(settings.city_database),
            settings.public_url,
        )
        return cls(settings, database, keyring, clock, objects, bus, hub, login)

    def start_background(self) -> None:
        self._tasks.append(asyncio.create_task(self._sweep(), name="expiry-sweeper"))
        self.login.fanout.start()

    async def _sweep(self) -> None:
        """Expire overdue transactions, prune old counters and delete rows past their retention
        period, whatever node is alive."""
        rounds = 0
        while True:
            try:
                await self.login.expire_due()
                rounds += 1
                # The first round after a start, then once a minute.
                if rounds % 60 == 1:
                    now = self.clock.now()
                    await prune_nonces(self.database, now)
                    await joins.prune(self.login)
                    async with self.database.write() as session:
                        await ratelimit.prune_events(session, now - timedelta(days=1))
                    await self._prune_past_retention(now)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep sweeping through a database outage
                log.warning("expiry sweep failed error=%s", exc)
            await asyncio.sleep(SWEEP_SECONDS)

    async def _prune_past_retention(self, now: datetime) -> None:
        counts = await prune_past_retention(self.database, self.settings.retention, now)
        if counts.audit_records or counts.transactions:
            log.info(
                "records pruned audit_records=%d transactions=%d %s",
                counts.audit_records,
                counts.transactions,
                self.settings.retention.describe(),
            )

    def close_first(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Register a front door's stop, run by `close` while the database is still open, so
        the requests it lets finish can still record their outcome."""
        self._closers.append(closer)

    async def close(self) -> None:
        closers, self._closers = self._closers, []
        for closer in closers:
            try:
                await closer()
            except Exception:
                log.exception("stopping a front door failed")
        await self.login.fanout.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.objects.close()
        await self.database.close()
