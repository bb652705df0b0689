"""Prepared statements against a migrated database: the same values as the ORM reads and writes."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from tapgate.store import database as database_module
from tapgate.store.database import Database
from tapgate.store.migrate import upgrade
from tapgate.store.models import TransactionRow
from tapgate.store.prepared import Prepared
from tapgate.store.tables import TRANSACTIONS

_COLUMNS = (
    "id",
    "application",
    "username",
    "status",
    "verification",
    "nonce",
    "context",
    "created_at",
    "expires_at",
)
_ADD = Prepared(insert(TRANSACTIONS), _COLUMNS)
_READ = Prepared(select(TRANSACTIONS).where(TRANSACTIONS.c.id == bindparam("id")))
_CLOSE = Prepared(
    update(TRANSACTIONS)
    .where(TRANSACTIONS.c.id == bindparam("id"), TRANSACTIONS.c.status == "pending")
    .values(status="approved", resolved_at=bindparam("now"))
)


def _values(transaction_id: str, created_at: datetime) -> dict[str, object]:
    return {
        "id": transaction_id,
        "application": "vpn",
        "username": "Ayşe Yılmaz",
        "status": "pending",
        "verification": "number",
        "nonce": "n",
        "context": {"location": "İstanbul", "user_agent": "şğı"},
        "created_at": created_at,
        "expires_at": created_at + timedelta(seconds=30),
    }


def test_round_trip_matches_the_orm(db_url: str) -> None:
    upgrade(db_url)
    created_at = datetime(2026, 12, 5, 8, 30, 0, 123456, tzinfo=UTC)

    async def scenario() -> None:
        database = Database(db_url)
        try:
            async with database.write_rows() as rows:
                await rows.run(_ADD, _values("tx-1", created_at))
            async with database.read() as session:
                orm_row = await session.get(TransactionRow, "tx-1")
            assert orm_row is not None
            assert orm_row.created_at == created_at
            assert orm_row.context["location"] == "İstanbul"

            async with database.read_rows() as rows:
                row = await rows.first(_READ, {"id": "tx-1"})
                missing = await rows.first(_READ, {"id": "tx-2"})
            assert missing is None
            assert row.expires_at == created_at + timedelta(seconds=30)
            assert row.expires_at.tzinfo is not None
            assert row.context == {"location": "İstanbul", "user_agent": "şğı"}
            assert row.resolved_at is None
            # Left out of the insert: the columns' scalar defaults, as a session writes them.
            assert (row.number_digits, row.code_attempts) == (0, 0)

            # The literal "pending" in the WHERE clause is bound from the statement itself.
            async with database.write_rows() as rows:
                changed = await rows.run(_CLOSE, {"id": "tx-1", "now": created_at})
            async with database.write_rows() as rows:
                again = await rows.run(_CLOSE, {"id": "tx-1", "now": created_at})
            assert (changed, again) == (1, 0)
            async with database.read_rows() as rows:
                assert (await rows.first(_READ, {"id": "tx-1"})).status == "approved"
        finally:
            await database.close()

    asyncio.run(scenario())


def test_failed_transaction_leaves_nothing_and_raises_sqlalchemy_errors(db_url: str) -> None:
    upgrade(db_url)
    now = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)

    async def scenario() -> None:
        database = Database(db_url)
        try:
            with pytest.raises(IntegrityError):
                async with database.write_rows() as rows:
                    await rows.run(_ADD, _values("tx-a", now))
                    await rows.run(_ADD, _values("tx-a", now))
            async with database.read_rows() as rows:
                assert await rows.first(_READ, {"id": "tx-a"}) is None
            # The connection is usable after the rollback.
            async with database.write_rows() as rows:
                await rows.run(_ADD, _values("tx-b", now))
            async with database.read_rows() as rows:
                assert (await rows.first(_READ, {"id": "tx-b"})).id == "tx-b"
        finally:
            await database.close()

    asyncio.run(scenario())


def test_naive_datetime_is_refused(db_url: str) -> None:
    upgrade(db_url)

    async def scenario() -> None:
        database = Database(db_url)
        try:
            with pytest.raises(ValueError, match="naive datetime"):
                async with database.write_rows() as rows:
                    await rows.run(_ADD, _values("tx-n", datetime(2026, 12, 5, 9, 0)))
        finally:
            await database.close()

    asyncio.run(scenario())


def test_locked_sqlite_raises_sqlalchemy_errors_on_both_paths(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process's write lock surfaces as SQLAlchemy's OperationalError, which the API
    answers with 503, whether the write goes through a session or prepared statements."""
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite's file lock")
    upgrade(db_url)
    monkeypatch.setattr(database_module, "_BUSY_TIMEOUT_MS", 100)
    holder = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")

    async def scenario() -> None:
        database = Database(db_url)
        try:
            with pytest.raises(OperationalError, match="locked"):
                async with database.write() as session:
                    await session.execute(select(TRANSACTIONS.c.id))
            with pytest.raises(OperationalError, match="locked"):
                async with database.write_rows() as rows:
                    await rows.run(_ADD, _values("tx-l", datetime(2026, 12, 5, tzinfo=UTC)))
        finally:
            await database.close()

    try:
        asyncio.run(scenario())
    finally:
        holder.execute("ROLLBACK")
        holder.close()
