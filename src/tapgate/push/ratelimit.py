"""Sliding-window counters kept in the database, so every node sees the same counts.

Defaults: 5 failed first factors per user in 15 minutes (kept below Active Directory's usual
lockout threshold so tapgate never locks a directory account), 50 per source, and the push
profile's push limit (10 in 10 minutes by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tapgate.store.models import RateEventRow

FAILED_USER = "fail_user"
FAILED_SOURCE = "fail_source"
PUSH_SENT = "push"


@dataclass(frozen=True)
class Limit:
    count: int
    window: timedelta


USER_FAILURES = Limit(5, timedelta(minutes=15))
SOURCE_FAILURES = Limit(50, timedelta(minutes=15))


async def count_events(session: AsyncSession, kind: str, key: str, since: datetime) -> int:
    query = (
        select(func.count())
        .select_from(RateEventRow)
        .where(RateEventRow.kind == kind, RateEventRow.key == key, RateEventRow.at > since)
    )
    return int((await session.execute(query)).scalar_one())


async def over_limit(
    session: AsyncSession, kind: str, key: str, limit: Limit, now: datetime
) -> bool:
    return await count_events(session, kind, key, now - limit.window) >= limit.count


def add_event(session: AsyncSession, kind: str, key: str, now: datetime) -> None:
    session.add(RateEventRow(kind=kind, key=key, at=now))


async def prune_events(session: AsyncSession, before: datetime) -> None:
    await session.execute(delete(RateEventRow).where(RateEventRow.at < before))


async def clear_failures(session: AsyncSession, key: str) -> None:
    """Forget a user's failed first factors after a success."""
    await session.execute(
        delete(RateEventRow).where(RateEventRow.kind == FAILED_USER, RateEventRow.key == key)
    )
