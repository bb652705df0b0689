"""Tell every node that a transaction changed, so waiting requests wake and devices hear of it.

One node (SQLite): the in-process event bus and the local device streams. Several nodes on
PostgreSQL: the same locally, plus a NOTIFY that carries only ids; every other node re-reads the
rows and acts for the waiters and device streams it holds. The rows stay the truth: a lost
notification only delays a waiter until its own re-check timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import make_url

from tapgate.delivery.direct import DirectHub
from tapgate.delivery.router import DeliveryRouter
from tapgate.keys import KeyRing
from tapgate.push.events import EventBus
from tapgate.push.ports import LoginStatus
from tapgate.push.publish import publish_challenge, publish_closed
from tapgate.store.database import Database
from tapgate.store.models import DeviceRow, TransactionRow
from tapgate.store.prepared import Prepared
from tapgate.store.tables import TRANSACTIONS

log = logging.getLogger(__name__)

CHANNEL = "tapgate_events"
# PostgreSQL's NOTIFY payload limit is 8000 bytes; above this the device list is left out and
# receivers look the devices up themselves.
_MAX_PAYLOAD = 7000
_RECONNECT_MAX_SECONDS = 10.0
# Events handled at once by one node's listener; each may hold a pooled connection briefly.
_MAX_HANDLERS = 64
_NOTIFY = Prepared(select(func.pg_notify(CHANNEL, bindparam("payload"))))
# The node of a device stream reads the new transaction through this to sign its challenge.
_TRANSACTION = Prepared(select(TRANSACTIONS).where(TRANSACTIONS.c.id == bindparam("id")))


class Fanout:
    def __init__(
        self, database: Database, keyring: KeyRing, public_url: str, bus: EventBus, hub: DirectHub
    ) -> None:
        self.database = database
        self.keyring = keyring
        self.public_url = public_url
        self.bus = bus
        self.hub = hub
        self.node_id = uuid.uuid4().hex[:12]
        self.clustered = database.backend == "postgresql"
        self._task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.router = DeliveryRouter(database, keyring, public_url)

    # ---- senders ------------------------------------------------------------------------------

    async def transaction_changed(self, transaction_id: str) -> None:
        self.bus.publish(transaction_id)
        await self._notify({"k": "tx", "id": transaction_id})

    def deliver_challenge(self, row: TransactionRow, device_ids: list[str]) -> int:
        """Send a new challenge to this node's streams of `device_ids` and return how many took it.

        Synchronous, so that it can run inside the commit that created the transaction
        (`Statements.after_commit`)."""
        return publish_challenge(self.hub, self.keyring, self.public_url, row, device_ids)

    async def challenge_created(
        self,
        row: TransactionRow,
        device_ids: list[str],
        delivery: tuple[str, ...] = ("direct",),
        delivered: int | None = None,
    ) -> int:
        """Deliver a new challenge; return how many local streams took it. The router sends it
        through the push profile's other `delivery` providers in the background.

        `delivered` is the count of a `deliver_challenge` that already ran at the commit."""
        if delivered is None:
            delivered = self.deliver_challenge(row, device_ids)
        connected = [d for d in device_ids if self.hub.is_connected(d)]
        self.router.dispatch(row, device_ids, delivery, connected)
        await self._notify({"k": "challenge", "id": row.id, "d": device_ids})
        return delivered

    async def transaction_closed(
        self, transaction_id: str, status: str, device_ids: list[str]
    ) -> None:
        """Wake the transaction's waiters and tell the devices it closed, on every node."""
        self.close_locally(transaction_id, status, device_ids)
        await self.announce_closed(transaction_id, status, device_ids)

    def close_locally(
        self,
        transaction_id: str,
        status: str,
        device_ids: list[str],
        final: LoginStatus | None = None,
    ) -> None:
        """Wake this node's waiters and tell this node's streams of `device_ids` that the
        transaction closed.

        `final` is the status as the closing write left it; local waiters return it without
        reading the row again. Synchronous, so that it can run inside the closing commit.
        """
        self.bus.publish(transaction_id, final)
        publish_closed(self.hub, device_ids, transaction_id, status)

    async def announce_closed(
        self, transaction_id: str, status: str, device_ids: list[str]
    ) -> None:
        """Tell the other nodes that a transaction closed. They read the row themselves."""
        await self._notify({"k": "closed", "id": transaction_id, "s": status, "d": device_ids})

    async def _notify(self, payload: dict[str, Any]) -> None:
        if not self.clustered:
            return
        payload["n"] = self.node_id
        text_payload = json.dumps(payload, separators=(",", ":"))
        if len(text_payload) > _MAX_PAYLOAD:
            payload.pop("d", None)
            text_payload = json.dumps(payload, separators=(",", ":"))
        try:
            await self.database.run_alone(_NOTIFY, {"payload": text_payload})
        except Exception as exc:  # a hint that fails is covered by the waiters' own re-checks
            log.warning("notify failed transaction=%s error=%s", payload.get("id"), exc)

    # ---- receiver -----------------------------------------------------------------------------

    def start(self) -> None:
        self.router.start()
        if self.clustered and self._task is None:
            self._task = asyncio.create_task(self._listen_forever(), name="fanout-listener")

    async def stop(self) -> None:
        await self.router.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for handler in list(self._handlers):
            handler.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _listen_forever(self) -> None:
        import psycopg

        url = (
            make_url(self.database.url.sync_url)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )
        delay = 0.5
        first = True
        while True:
            try:
                connection = await psycopg.AsyncConnection.connect(url, autocommit=True)
            except psycopg.Error as exc:
                log.warning("listener cannot connect, retrying in %.1f s error=%s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX_SECONDS)
                continue
            notifications = connection.notifies()
            try:
                await connection.execute(f"LISTEN {CHANNEL}")
                log.info("listening for cluster events node=%s", self.node_id)
                delay = 0.5
                if not first:
                    await self._rescan()
                first = False
                async for notification in notifications:
                    await self._dispatch(notification.payload)
            except psycopg.Error as exc:
                log.warning("listener connection lost, reconnecting error=%s", exc)
            finally:
                # Closing the connection while the notifies() generator is suspended hangs, so
                # the generator goes first.
                with contextlib.suppress(Exception):
                    await notifications.aclose()
                with contextlib.suppress(Exception):
                    await connection.close()
            await asyncio.sleep(delay)

    async def _dispatch(self, raw: str) -> None:
        """Handle one event without holding up the ones behind it.

        An event that needs a database read (a challenge for a local device, or a closed
        transaction whose devices are not listed) waits for a pooled connection, which under
        load queues behind requests. Handled in the listener's loop, it would delay every
        wake-up behind it, so it runs as a task. Past `_MAX_HANDLERS` running tasks the
        listener handles events itself, which slows it down instead of piling up tasks.
        """
        if len(self._handlers) >= _MAX_HANDLERS:
            await self._handle(raw)
            return
        task = asyncio.create_task(self._handle(raw))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _handle(self, raw: str) -> None:
        try:
            payload = json.loads(raw)
        except ValueError:
            log.warning("ignored malformed cluster event")
            return
        if not isinstance(payload, dict) or payload.get("n") == self.node_id:
            return
        transaction_id = payload.get("id")
        if not isinstance(transaction_id, str):
            return
        try:
            kind = payload.get("k")
            if kind in ("tx", "closed"):
                self.bus.publish(transaction_id)
            if kind == "closed":
                device_ids = payload.get("d") or await self._device_ids(transaction_id)
                publish_closed(
                    self.hub, self._local(device_ids), transaction_id, str(payload.get("s"))
                )
            elif kind == "challenge":
                device_ids = self._local(payload.get("d") or await self._device_ids(transaction_id))
                if device_ids:
                    row = await self.database.read_first(_TRANSACTION, {"id": transaction_id})
                    if row is not None and row.status == "pending":
                        publish_challenge(self.hub, self.keyring, self.public_url, row, device_ids)
        except Exception as exc:  # one bad event must not stop the listener
            log.warning("cluster event failed transaction=%s error=%s", transaction_id, exc)

    def _local(self, device_ids: list[str]) -> list[str]:
        return [d for d in device_ids if self.hub.is_connected(d)]

    async def _device_ids(self, transaction_id: str) -> list[str]:
        async with self.database.read() as session:
            row = await session.get(TransactionRow, transaction_id)
            if row is None or row.user_id is None:
                return []
            ids = await session.scalars(
                select(DeviceRow.id).where(
                    DeviceRow.auth_profile == row.auth_profile, DeviceRow.user_id == row.user_id
                )
            )
            return list(ids.all())

    async def _rescan(self) -> None:
        """After a reconnect, wake every local waiter and re-send open challenges to local streams,
        since notifications sent while the listener was away are lost."""
        async with self.database.read() as session:
            rows = (
                await session.scalars(
                    select(TransactionRow).where(TransactionRow.status == "pending")
                )
            ).all()
        for row in rows:
            self.bus.publish(row.id)
            device_ids = self._local(await self._device_ids(row.id))
            if device_ids:
                publish_challenge(self.hub, self.keyring, self.public_url, row, device_ids)
        log.info("listener rescanned pending transactions count=%d", len(rows))
