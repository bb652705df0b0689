"""The console's first page: logins of the last 24 hours, open pushes, devices, recent events."""

from __future__ import annotations

from datetime import timedelta

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import func, select

from tapgate.push.ports import PENDING
from tapgate.store.models import AdminRow, DeviceRow, TransactionRow, UserLockRow
from tapgate.web.admin.audit import newest_records
from tapgate.web.admin.layout import console_router, render_admin
from tapgate.web.admin.session import ADMIN_AUTH_PROFILE, AdminDep
from tapgate.web.waiting import runtime_of

router = console_router()

# Every transaction status, in the order the overview lists them.
STATUS_ORDER = ("approved", "denied", "fraud", "expired", "canceled", "rejected", "pending")
RECENT_EVENTS = 12


@router.get("/admin")
async def overview(request: Request, admin: AdminDep) -> Response:
    runtime = runtime_of(request)
    now = runtime.clock.now()
    since = now - timedelta(hours=24)
    async with runtime.database.read() as session:
        counted = (
            await session.execute(
                select(TransactionRow.status, func.count())
                .where(TransactionRow.created_at >= since)
                .group_by(TransactionRow.status)
            )
        ).all()
        pending_now = await session.scalar(
            select(func.count())
            .select_from(TransactionRow)
            .where(TransactionRow.status == PENDING, TransactionRow.expires_at > now)
        )
        user_devices = await session.scalar(
            select(func.count())
            .select_from(DeviceRow)
            .where(DeviceRow.revoked_at.is_(None), DeviceRow.auth_profile != ADMIN_AUTH_PROFILE)
        )
        enrolled_today = await session.scalar(
            select(func.count())
            .select_from(DeviceRow)
            .where(DeviceRow.created_at >= since, DeviceRow.auth_profile != ADMIN_AUTH_PROFILE)
        )
        locks = await session.scalar(select(func.count()).select_from(UserLockRow))
        administrators = await session.scalar(select(func.count()).select_from(AdminRow))
        recent = await newest_records(session, None, RECENT_EVENTS)

    by_status = {str(status): int(count) for status, count in counted}
    rows = [(status, by_status.get(status, 0)) for status in STATUS_ORDER]
    total = sum(count for _status, count in rows)
    return render_admin(
        request,
        admin,
        "admin/overview.html",
        "overview",
        {
            "rows": rows,
            "total": total,
            "pending_now": int(pending_now or 0),
            "user_devices": int(user_devices or 0),
            "enrolled_today": int(enrolled_today or 0),
            "connected": runtime.hub.connected_count,
            "locks": int(locks or 0),
            "administrators": int(administrators or 0),
            "recent": recent,
        },
    )
