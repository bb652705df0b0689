"""Sliding-window counters kept in the database, so every node sees the same counts.

Defaults: 5 failed first factors per user in 15 minutes (kept below Active Directory's usual
lockout threshold so tapgate never locks a directory account), 50 per source, and the push
profile's push limit (10 in 10 minutes by default).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from tapgate.store.models import RateEventRow
from tapgate.store.prepared import Prepared, Statements, run_in, scalar_in
from tapgate.store.tables import RATE_EVENTS

FAILED_USER = "fail_user"
FAILED_SOURCE = "fail_source"
PUSH_SENT = "push"


@dataclass(frozen=True)
class Limit:
    count: int
    window: timedelta


USER_FAILURES = Limit(5, timedelta(minutes=15))
SOURCE_FAILURES = Limit(50, timedelta(minutes=15))
# The length of `RateEventRow.key`.
KEY_CHARACTERS = 320


def user_key(auth_profile: str, user_id: str) -> str:
    """Return the counter key of a user that an auth profile found."""
    return _fitting(f"{auth_profile}:{user_id}")


def unknown_user_key(normalized_name: str) -> str:
    """Return the counter key of a name that no auth profile finds.

    Unknown names get counters of their own, so `rate_limited` cannot tell which names exist."""
    return _fitting(f"unknown:{normalized_name}")


def _fitting(key: str) -> str:
    """Return `key`, or a hash of it when it is longer than the column.

    Case folding can make a name three times longer than typed ("ß" becomes "ss", "ﬃ" becomes
    "ffi"), so a 256-character name may give a key that PostgreSQL would reject."""
    if len(key) <= KEY_CHARACTERS:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


# Built once: building a statement and its cache key costs about as much as running it.
_EVENTS = RATE_EVENTS.c
_COUNT = Prepared(
    select(func.count())
    .select_from(RATE_EVENTS)
    .where(
        _EVENTS.kind == bindparam("kind"),
        _EVENTS.key == bindparam("key"),
        _EVENTS.at > bindparam("since"),
    )
)
_ADD = Prepared(insert(RATE_EVENTS).returning(_EVENTS.id), ("kind", "key", "at"))
_RELEASE = Prepared(delete(RATE_EVENTS).where(_EVENTS.id == bindparam("event_id")))
_CLEAR = Prepared(
    delete(RATE_EVENTS).where(_EVENTS.kind == FAILED_USER, _EVENTS.key == bindparam("key"))
)
_LOCK = Prepared(select(func.pg_advisory_xact_lock(func.hashtextextended(bindparam("key"), 0))))

# A session or the prepared statements of `Database.write_rows()`.
Target = AsyncSession | Statements


async def count_events(session: Target, kind: str, key: str, since: datetime) -> int:
    return int(await scalar_in(session, _COUNT, {"kind": kind, "key": key, "since": since}))


async def over_limit(session: Target, kind: str, key: str, limit: Limit, now: datetime) -> bool:
    return await count_events(session, kind, key, now - limit.window) >= limit.count


def add_event(session: AsyncSession, kind: str, key: str, now: datetime) -> None:
    session.add(RateEventRow(kind=kind, key=key, at=now))


async def lock_keys(session: Target, keys: list[str]) -> None:
    """Serialize check-then-count for these keys across connections until the transaction ends.

    SQLite write transactions already run one at a time (BEGIN IMMEDIATE); PostgreSQL needs a
    transaction-scoped advisory lock per key, taken in sorted order so two callers cannot
    deadlock.
    """
    dialect = session.dialect if isinstance(session, Statements) else session.get_bind().dialect
    if dialect.name != "postgresql":
        return
    for key in sorted(set(keys)):
        await scalar_in(session, _LOCK, {"key": key})


async def reserve(
    session: Target, checks: list[tuple[str, str, Limit]], now: datetime
) -> list[int] | None:
    """Count one attempt under every (kind, key, limit) at once, unless any limit is reached.

    Returns the ids of the events added, or None when a limit is reached (nothing added). An
    attempt counts as a failure from the start, so simultaneous guesses cannot all pass the
    check before any of them is counted; a caller whose attempt succeeds releases its events.
    """
    await lock_keys(session, [f"{kind}:{key}" for kind, key, _ in checks])
    for kind, key, limit in checks:
        if await over_limit(session, kind, key, limit, now):
            return None
    event_ids = []
    for kind, key, _ in checks:
        event_ids.append(int(await scalar_in(session, _ADD, {"kind": kind, "key": key, "at": now})))
    return event_ids


async def wait_for_room(
    session: AsyncSession, checks: list[tuple[str, str, Limit]], now: datetime
) -> timedelta | None:
    """Return how long until every (kind, key, limit) admits one more event, or None when all do.

    A sliding window admits again once enough of its oldest events have left it: with n events
    in the window and a limit of c, the (n - c + 1)-th oldest event has to leave.
    """
    wait: timedelta | None = None
    for kind, key, limit in checks:
        times = list(
            await session.scalars(
                select(RateEventRow.at)
                .where(
                    RateEventRow.kind == kind,
                    RateEventRow.key == key,
                    RateEventRow.at > now - limit.window,
                )
                .order_by(RateEventRow.at)
            )
        )
        if len(times) < limit.count:
            continue
        leaves = times[len(times) - limit.count] + limit.window - now
        wait = leaves if wait is None else max(wait, leaves)
    return wait


async def release(session: Target, event_ids: list[int]) -> None:
    for event_id in event_ids:
        await run_in(session, _RELEASE, {"event_id": event_id})


async def prune_events(session: AsyncSession, before: datetime) -> None:
    await session.execute(delete(RateEventRow).where(RateEventRow.at < before))


async def clear_failures(session: Target, key: str) -> int:
    """Forget a user's failed first factors after a success or an unlock; return their number."""
    return await run_in(session, _CLEAR, {"key": key})
