"""The console's audit log: filters, and CSV and JSON export of the same selection."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tapgate.audit import COLUMNS, EVENTS, audit_to_dict, matching_usernames
from tapgate.store.models import AuditRow
from tapgate.web.admin.layout import console_router, render_admin
from tapgate.web.admin.session import AdminDep
from tapgate.web.rendering import translator
from tapgate.web.waiting import runtime_of

router = console_router()

DEFAULT_LIMIT = 200
MAX_LIMIT = 10_000
EXPORT_COLUMNS = COLUMNS
_UNITS = {"m": 60, "h": 3600, "d": 86400}
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class AuditFilter:
    username: str
    event: str
    outcome: str
    since_text: str
    since: datetime | None
    limit: int
    error: str | None


def parse_since(text: str, now: datetime) -> datetime | None:
    """Read "30m", "24h", "7d" or an ISO date or time (UTC when it has no zone); raise ValueError."""
    if not text:
        return None
    if text[:-1].isascii() and text[:-1].isdigit() and text[-1] in _UNITS and len(text) < 9:
        return now - timedelta(seconds=int(text[:-1]) * _UNITS[text[-1]])
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _filter(request: Request) -> AuditFilter:
    _ = translator(request)
    params = request.query_params
    since_text = params.get("since", "").strip()[:40]
    error = None
    try:
        since = parse_since(since_text, runtime_of(request).clock.now())
    except ValueError:
        since = None
        error = _(
            "“Since” must be a duration such as 30m, 24h or 7d, or a date such as 2026-01-31."
        )
    limit_text = params.get("limit", "").strip()
    limit = int(limit_text) if limit_text.isascii() and limit_text.isdigit() else DEFAULT_LIMIT
    event = params.get("event", "").strip()
    return AuditFilter(
        username=params.get("user", "").strip()[:256],
        event=event if event in EVENTS else "",
        outcome=params.get("outcome", "").strip()[:32],
        since_text=since_text,
        since=since,
        limit=max(1, min(limit, MAX_LIMIT)),
        error=error,
    )


async def newest_records(
    session: AsyncSession, selection: AuditFilter | None, limit: int
) -> list[AuditRow]:
    """Return the newest `limit` records that match `selection`, newest first."""
    query = select(AuditRow)
    if selection is not None:
        if selection.username:
            names = await matching_usernames(session, selection.username)
            query = query.where(AuditRow.username.in_(names))
        if selection.since is not None:
            query = query.where(AuditRow.time >= selection.since)
        if selection.outcome:
            query = query.where(AuditRow.outcome == selection.outcome)
        if selection.event:
            query = query.where(AuditRow.event == selection.event)
    return list((await session.scalars(query.order_by(AuditRow.id.desc()).limit(limit))).all())


async def _records(request: Request, selection: AuditFilter) -> list[AuditRow]:
    async with runtime_of(request).database.read() as session:
        return await newest_records(session, selection, selection.limit)


@router.get("/admin/audit")
async def audit_page(request: Request, admin: AdminDep) -> Response:
    selection = _filter(request)
    rows = await _records(request, selection)
    return render_admin(
        request,
        admin,
        "admin/audit.html",
        "audit",
        {
            "filter": selection,
            "records": rows,
            "events": EVENTS,
            "query": request.url.query,
        },
        status=400 if selection.error else 200,
    )


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = (
        json.dumps(value, ensure_ascii=False, sort_keys=True)
        if isinstance(value, dict)
        else str(value)
    )
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _download_name(extension: str, now: datetime) -> str:
    return f"tapgate-audit-{now.strftime('%Y%m%dT%H%M%SZ')}.{extension}"


@router.get("/admin/audit/export.csv")
async def export_csv(request: Request, admin: AdminDep) -> Response:
    rows = list(reversed(await _records(request, _filter(request))))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        record = audit_to_dict(row)
        writer.writerow([_cell(record.get(column)) for column in EXPORT_COLUMNS])
    name = _download_name("csv", runtime_of(request).clock.now())
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/admin/audit/export.json")
async def export_json(request: Request, admin: AdminDep) -> Response:
    rows = list(reversed(await _records(request, _filter(request))))
    body = json.dumps([audit_to_dict(row) for row in rows], ensure_ascii=False, indent=1)
    name = _download_name("json", runtime_of(request).clock.now())
    return Response(
        body,
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )
