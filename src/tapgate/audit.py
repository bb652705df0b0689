"""Audit records: one row for every login attempt step, enrollment, decision and admin change.

Records are written in the same database transaction as the change they describe, so a change
without its record (or the reverse) cannot exist.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from tapgate.clock import SystemClock
from tapgate.directory.base import normalize_username
from tapgate.store.models import AuditRow
from tapgate.store.prepared import Prepared, Statements, run_in
from tapgate.store.tables import AUDIT

log = logging.getLogger("tapgate.audit")

EVENTS = (
    "login_started",
    "first_factor",
    "push_sent",
    "decision",
    "expired",
    "canceled",
    "enrollment",
    "device_revoked",
    "device_changed",
    "admin_change",
    "code_entered",
    "fraud_alert",
    "answer_rejected",
    "login_rejected",
    "records_pruned",
)
_KNOWN_EVENTS = frozenset(EVENTS)
_clock = SystemClock()
# The steps every successful push login passes, logged at DEBUG. At INFO a login then logs its
# push ("push sent") and its decision; the audit table keeps every step either way.
_ROUTINE_EVENTS = frozenset({"login_started", "push_sent"})
# The fields of an audit record, in the order exports list them.
COLUMNS = (
    "time",
    "event",
    "username",
    "auth_profile",
    "application",
    "transaction_id",
    "device_id",
    "outcome",
    "reason",
    "actor",
    "source_ip",
    "details",
)
# Built once: adding an ORM object would cost a unit-of-work flush, and building the statement
# on each call costs about as much as running it.
_INSERT = Prepared(insert(AUDIT).inline(), COLUMNS)


async def record_audit(
    session: AsyncSession | Statements,
    event: str,
    *,
    username: str | None = None,
    auth_profile: str | None = None,
    application: str | None = None,
    transaction_id: str | None = None,
    device_id: str | None = None,
    outcome: str | None = None,
    reason: str | None = None,
    actor: str | None = None,
    source_ip: str | None = None,
    details: dict[str, Any] | None = None,
    time: datetime | None = None,
) -> None:
    """Insert one audit record in `session`'s transaction and log it as one line (at DEBUG for
    the routine steps of a successful login)."""
    if event not in _KNOWN_EVENTS:
        # The CLI's and the console's event filters offer only `EVENTS`.
        raise ValueError(f"unknown audit event {event!r}; add it to audit.EVENTS")
    await run_in(
        session,
        _INSERT,
        {
            "time": time or _clock.now(),
            "event": event,
            "username": username,
            "auth_profile": auth_profile,
            "application": application,
            "transaction_id": transaction_id,
            "device_id": device_id,
            "outcome": outcome,
            "reason": reason,
            "actor": actor,
            "source_ip": source_ip,
            "details": details or {},
        },
    )
    routine = event in _ROUTINE_EVENTS or (event == "first_factor" and outcome == "success")
    change = details.get("change") if details else None
    if change is not None:
        # An administrator's change is logged with its text, which contains names but no secret.
        log.info(
            "audit event=%s actor=%r user=%r outcome=%s change=%r",
            event,
            actor,
            username,
            outcome,
            change,
        )
        return
    log.log(
        logging.DEBUG if routine else logging.INFO,
        # %r escapes newlines and control characters a username may carry into the log.
        "audit event=%s user=%r application=%s transaction=%s device=%s outcome=%s reason=%s",
        event,
        username,
        application or "-",
        transaction_id or "-",
        device_id or "-",
        outcome or "-",
        reason or "-",
    )


def audit_to_dict(row: AuditRow) -> dict[str, Any]:
    return {
        "time": row.time.isoformat(),
        "event": row.event,
        "username": row.username,
        "auth_profile": row.auth_profile,
        "application": row.application,
        "transaction_id": row.transaction_id,
        "device_id": row.device_id,
        "outcome": row.outcome,
        "reason": row.reason,
        "actor": row.actor,
        "source_ip": row.source_ip,
        "details": row.details,
    }


async def list_audit(
    session: AsyncSession,
    *,
    username: str | None = None,
    since: datetime | None = None,
    outcome: str | None = None,
    event: str | None = None,
    limit: int = 1000,
) -> list[AuditRow]:
    query = select(AuditRow)
    if username is not None:
        query = query.where(AuditRow.username.in_(await matching_usernames(session, username)))
    if since is not None:
        query = query.where(AuditRow.time >= since)
    if outcome is not None:
        query = query.where(AuditRow.outcome == outcome)
    if event is not None:
        query = query.where(AuditRow.event == event)
    rows = (await session.scalars(query.order_by(AuditRow.id.desc()).limit(limit))).all()
    return sorted(rows, key=lambda r: r.id)


async def matching_usernames(session: AsyncSession, username: str) -> list[str]:
    """Return every username in the audit log that names the same login as `username`.

    A login's first record keeps the name as typed (`ismail`, ` İSMAİL`), and the records after
    the lookup keep the stored one (`İsmail`). Login matches names trimmed and case-folded for
    Turkish and English (`normalize_username`), so the filter does too. The distinct names come
    from the username index, and the rows are then read through it.
    """
    folded = normalize_username(username)
    names = await session.scalars(select(AuditRow.username).distinct())
    return [name for name in names if name is not None and normalize_username(name) == folded]
