"""The log line of each audit record: routine steps of a successful login at DEBUG."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest

from tapgate.audit import record_audit
from tapgate.store.database import Database
from tapgate.store.migrate import upgrade


@pytest.mark.parametrize(
    ("event", "outcome", "level"),
    [
        ("login_started", None, logging.DEBUG),
        ("first_factor", "success", logging.DEBUG),
        ("push_sent", "pending", logging.DEBUG),
        ("first_factor", "rejected", logging.INFO),
        ("decision", "approved", logging.INFO),
        ("enrollment", "rejected", logging.INFO),
        ("admin_change", "applied", logging.INFO),
    ],
)
def test_audit_line_level(
    db_url: str, caplog: pytest.LogCaptureFixture, event: str, outcome: str | None, level: int
) -> None:
    upgrade(db_url)

    async def scenario() -> None:
        database = Database(db_url)
        try:
            async with database.write_rows() as rows:
                await record_audit(rows, event, username="Ayşe Işık", outcome=outcome)
        finally:
            await database.close()

    with caplog.at_level(logging.DEBUG, logger="tapgate.audit"):
        asyncio.run(scenario())
    lines = [r for r in caplog.records if r.name == "tapgate.audit"]
    assert len(lines) == 1
    assert lines[0].levelno == level
    assert f"event={event} " in lines[0].getMessage()


def test_admin_change_line_names_change(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    upgrade(db_url)

    async def scenario() -> None:
        database = Database(db_url)
        try:
            async with database.write_rows() as rows:
                await record_audit(
                    rows,
                    "admin_change",
                    actor="tapgate apply",
                    outcome="applied",
                    details={"change": "created auth profile personel-ğüş"},
                )
        finally:
            await database.close()

    with caplog.at_level(logging.INFO, logger="tapgate.audit"):
        asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if r.name == "tapgate.audit"]
    assert lines == [
        "audit event=admin_change actor='tapgate apply' user=None outcome=applied "
        "change='created auth profile personel-ğüş'"
    ]


async def test_unknown_event_rejected() -> None:
    with pytest.raises(ValueError, match="unknown audit event 'login_failed'"):
        await record_audit(cast(Any, None), "login_failed")
