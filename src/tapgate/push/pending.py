"""The user's open pushes, inside the write transaction that creates a new one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tapgate.audit import record_audit
from tapgate.directory.base import DirectoryUser
from tapgate.push.ports import PENDING
from tapgate.store.tables import DEVICES, TRANSACTIONS

# Built once: building a statement and its cache key costs about as much as running it.
_DEVICES = DEVICES.c
_ACTIVE_DEVICES = select(_DEVICES.id).where(
    _DEVICES.auth_profile == bindparam("auth_profile"),
    _DEVICES.user_id == bindparam("user_id"),
    _DEVICES.revoked_at.is_(None),
)
_TRANSACTIONS = TRANSACTIONS.c
_PENDING = (
    select(_TRANSACTIONS.id)
    .where(
        _TRANSACTIONS.auth_profile == bindparam("auth_profile"),
        _TRANSACTIONS.user_id == bindparam("user_id"),
        _TRANSACTIONS.status == PENDING,
    )
    .order_by(_TRANSACTIONS.created_at.desc())
)


async def active_device_ids(session: AsyncSession, user: DirectoryUser) -> list[str]:
    """Return the ids of the user's devices that are not revoked."""
    owner = {"auth_profile": user.auth_profile, "user_id": user.user_id}
    return list((await session.scalars(_ACTIVE_DEVICES, owner)).all())


async def cancel_older(
    session: AsyncSession, user: DirectoryUser, max_pending: int, now: datetime
) -> list[str]:
    """Cancel the user's oldest pending pushes so that, with the new one, at most
    `max_pending` stay open. Return the ids this call canceled."""
    owner = {"auth_profile": user.auth_profile, "user_id": user.user_id}
    older = (await session.scalars(_PENDING, owner)).all()
    canceled: list[str] = []
    for old_id in older[max(max_pending - 1, 0) :]:
        result = await session.execute(
            update(TRANSACTIONS)
            .where(_TRANSACTIONS.id == old_id, _TRANSACTIONS.status == PENDING)
            .values(status="canceled", reason="superseded", resolved_at=now)
        )
        if getattr(result, "rowcount", 0) == 1:
            canceled.append(old_id)
            await record_audit(
                session,
                "canceled",
                username=user.username,
                auth_profile=user.auth_profile,
                transaction_id=old_id,
                outcome="canceled",
                reason="superseded",
            )
    return canceled
