"""A running server deletes audit records past `retention.audit_days` and audits it."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from tapgate.store.database import Database
from tapgate.store.models import AuditRow
from tests.support import Server


async def _add_old_record(db_url: str) -> None:
    database = Database(db_url)
    try:
        async with database.write() as session:
            await session.execute(
                insert(AuditRow),
                [
                    {
                        "time": datetime.now(UTC) - timedelta(days=3),
                        "event": "decision",
                        "username": "ayşe",
                        "details": {},
                    }
                ],
            )
    finally:
        await database.close()


def test_server_prunes_on_start(tmp_path: Path, db_url: str) -> None:
    server = Server(tmp_path, db_url, extra_settings="retention:\n  audit_days: 2\n")
    server.start()
    assert server.stop() == 0
    asyncio.run(_add_old_record(db_url))

    server.start()
    try:
        deadline = time.monotonic() + 15
        pruned: list[dict[str, object]] = []
        while not pruned and time.monotonic() < deadline:
            time.sleep(0.2)
            pruned = server.cli_json("audit", "--event", "records_pruned", "--json")
        old = server.cli_json("audit", "--user", "ayşe", "--json")
        listed = server.cli("audit", "--event", "records_pruned").stdout
    finally:
        assert server.stop() == 0
    assert len(pruned) == 1
    assert pruned[0]["details"] == {
        "audit_records": 1,
        "transactions": 0,
        "audit_days": 2,
        "transaction_days": 30,
    }
    assert old == []
    assert "audit_records=1 transactions=0 audit_days=2 transaction_days=30" in listed
    log = server.log()
    assert "retention audit_days=2 transaction_days=30" in log
    assert "records pruned audit_records=1 transactions=0" in log
    assert "Traceback" not in log
