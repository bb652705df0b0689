"""Deleting audit records and finished transactions once their retention period has passed.

Both tables grow with every login: in the benchmark, about 1.8 KB of database a login. Audit
records and transactions name users and carry their IP addresses and user agents, which data
protection laws (GDPR, Turkey's KVKK) require deleting once they are no longer needed. How long
they are needed is the operator's decision (`retention` in the settings file), so audit records
are kept forever unless a period is set.

Rows go in batches, each in a transaction of its own, so the write lock is held for
milliseconds at a time and logins go on meanwhile. A backlog (the first run after a period is
shortened, say) is worked off over several sweeps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tapgate.audit import record_audit
from tapgate.push.ports import FINAL_STATUSES
from tapgate.settings import Retention
from tapgate.store.database import Database
from tapgate.store.models import ChallengeDeliveryRow
from tapgate.store.tables import AUDIT, TRANSACTIONS

log = logging.getLogger(__name__)

BATCH_ROWS = 1000
# A run deletes batches of a table while they come back full, for at most this long, so that a
# backlog delays the sweep's other work only briefly. On SQLite on the benchmark machine, the
# first run over a backlog of 300,000 audit records deleted 133,000, while logins started during
# it took 3.5 ms at the median and 30 ms at most. The next run, a minute later, goes on.
RUN_SECONDS = 0.5
MAX_BATCHES = 10_000
# The counts a `records_pruned` audit record carries in its details.
PRUNE_DETAILS = ("audit_records", "transactions", "audit_days", "transaction_days")


@dataclass(frozen=True)
class PruneCounts:
    audit_records: int = 0
    transactions: int = 0


async def prune_past_retention(
    database: Database, retention: Retention, now: datetime
) -> PruneCounts:
    """Delete what is older than the retention periods, and audit the deletion if any rows were
    deleted."""
    audit_records = transactions = 0
    if retention.transaction_days is not None:
        cutoff = now - timedelta(days=retention.transaction_days)
        transactions = await _prune_transactions(database, cutoff)
    if retention.audit_days is not None:
        cutoff = now - timedelta(days=retention.audit_days)
        audit_records = await _prune_audit(database, cutoff)
    counts = PruneCounts(audit_records, transactions)
    if audit_records or transactions:
        async with database.write() as session:
            await record_audit(
                session,
                "records_pruned",
                actor="tapgate",
                outcome="applied",
                details={
                    "audit_records": audit_records,
                    "transactions": transactions,
                    "audit_days": retention.audit_days,
                    "transaction_days": retention.transaction_days,
                },
            )
    return counts


async def _prune_transactions(database: Database, cutoff: datetime) -> int:
    """Delete finished transactions that expired before `cutoff`, with their deliveries."""
    columns = TRANSACTIONS.c
    # A transaction expires minutes after it starts. Listing the final statuses, rather than
    # excluding `pending`, lets SQLite and PostgreSQL use the (status, expires_at) index.
    oldest = (
        select(columns.id)
        .where(columns.status.in_(sorted(FINAL_STATUSES)), columns.expires_at < cutoff)
        .limit(BATCH_ROWS)
    )

    async def delete_batch(session: AsyncSession, ids: list[Any]) -> int:
        await session.execute(
            delete(ChallengeDeliveryRow).where(ChallengeDeliveryRow.transaction_id.in_(ids))
        )
        return _rowcount(await session.execute(delete(TRANSACTIONS).where(columns.id.in_(ids))))

    return await _delete_in_batches(database, "transactions", oldest, delete_batch)


async def _prune_audit(database: Database, cutoff: datetime) -> int:
    """Delete audit records older than `cutoff`, oldest first."""
    columns = AUDIT.c
    oldest = (
        select(columns.id).where(columns.time < cutoff).order_by(columns.time).limit(BATCH_ROWS)
    )

    async def delete_batch(session: AsyncSession, ids: list[Any]) -> int:
        return _rowcount(await session.execute(delete(AUDIT).where(columns.id.in_(ids))))

    return await _delete_in_batches(database, "audit", oldest, delete_batch)


async def _delete_in_batches(
    database: Database,
    table: str,
    oldest: Select[Any],
    delete_batch: Callable[[AsyncSession, list[Any]], Awaitable[int]],
) -> int:
    """Delete the rows `oldest` selects, `BATCH_ROWS` at a time and each batch in a transaction
    of its own. Stop after a batch that is not full or once `RUN_SECONDS` have passed, and
    return how many rows were deleted."""
    # On PostgreSQL, nodes pruning at the same time skip each other's rows instead of waiting
    # for them and then deleting nothing. SQLite has a single writer and ignores the clause.
    claim = oldest.with_for_update(skip_locked=True)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RUN_SECONDS
    deleted = 0
    for _ in range(MAX_BATCHES):
        async with database.write() as session:
            ids = list((await session.scalars(claim)).all())
            if not ids:
                break
            deleted += await delete_batch(session, ids)
        if len(ids) < BATCH_ROWS:
            break
        # SQLite's statements run on the event loop's thread, so requests get a turn between
        # batches.
        await asyncio.sleep(0)
        if loop.time() >= deadline:
            log.info("retention backlog remains table=%s deleted=%d", table, deleted)
            break
    return deleted


def _rowcount(result: Any) -> int:
    # The rows the DELETE removed, which another node may have removed first.
    return int(getattr(result, "rowcount", 0) or 0)
