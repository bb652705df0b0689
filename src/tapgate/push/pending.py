"""The user's open pushes, inside the write transaction that creates a new one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select, update

from tapgate.audit import record_audit
from tapgate.directory.base import DirectoryUser
from tapgate.push.ports import PENDING
from tapgate.store.prepared import Prepared, Statements
from tapgate.store.tables import DEVICES, TRANSACTIONS

# Built once: building a statement and its cache key costs about as much as running it.
_DEVICES = DEVICES.c
_ACTIVE_DEVICES = Prepared(
    select(_DEVICES.id).where(
        _DEVICES.auth_profile == bindparam("auth_profile"),
        _DEVICES.user_id == bindparam("user_id"),
        _DEVICES.revoked_at.is_(None),
    )
)
_TRANSACTIONS = TRANSACTIONS.c
_PENDING = Prepared(
    select(_TRANSACTIONS.id)
    .where(
        _TRANSACTIONS.auth_profile == bindparam("auth_profile"),
        _TRANSACTIONS.user_id == bindparam("user_id"),
        _TRANSACTIONS.status == PENDING,
    )
    .order_by(_TRANSACTIONS.created_at.desc())
)
_SUPERSEDE = Prepared(
    update(TRANSACTIONS)
    .where(_TRANSACTIONS.id == bindparam("old_id"), _TRANSACTIONS.status == PENDING)
    .values(status="canceled", reason="superseded", resolved_at=bindparam("now"))
)


async def active_device_ids(rows: Statements, user: DirectoryUser) -> list[str]:
    """Return the ids of the user's devices that are not revoked."""
    owner = {"auth_profile": user.auth_profile, "user_id": user.user_id}
    return await rows.scalars(_ACTIVE_DEVICES, owner)


async def cancel_older(
    rows: Statements, user: DirectoryUser, max_pending: int, now: datetime
) -> list[str]:
    """Cancel the user's oldest pending pushes so that, with the new one, at most
    `max_pending` stay open. Return the ids this call canceled."""
    owner = {"auth_profile": user.auth_profile, "user_id": user.user_id}
    older = await rows.scalars(_PENDING, owner)
    canceled: list[str] = []
    for old_id in older[max(max_pending - 1, 0) :]:
        if await rows.run(_SUPERSEDE, {"old_id": old_id, "now": now}) == 1:
            canceled.append(old_id)
            await record_audit(
                rows,
                "canceled",
                username=user.username,
                auth_profile=user.auth_profile,
                transaction_id=old_id,
                outcome="canceled",
                reason="superseded",
            )
    return canceled
