"""Retention: which audit records and transactions are deleted, in batches, and audited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from tapgate import retention
from tapgate.errors import ConfigError
from tapgate.retention import prune_past_retention
from tapgate.settings import Retention, load_settings
from tapgate.store.database import Database
from tapgate.store.migrate import upgrade
from tapgate.store.models import AuditRow, ChallengeDeliveryRow, TransactionRow

NOW = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    upgrade(db_url)
    instance = Database(db_url)
    yield instance
    await instance.close()


def _transaction(transaction_id: str, status: str, age: timedelta) -> dict[str, Any]:
    created = NOW - age
    return {
        "id": transaction_id,
        "application": "portal",
        "auth_profile": "personel",
        "user_id": "u-1",
        "username": "şükrü.ığdır",
        "push_profile": "ofis",
        "status": status,
        "verification": "tap",
        "nonce": "n",
        "number_digits": 0,
        "code_attempts": 0,
        "require_user_verification": False,
        "context": {"client_ip": "85.105.1.7"},
        "created_at": created,
        "expires_at": created + timedelta(minutes=1),
    }


def _audit(event: str, age: timedelta) -> dict[str, Any]:
    return {"time": NOW - age, "event": event, "username": "İsmail", "details": {}}


async def _seed(database: Database) -> None:
    async with database.write() as session:
        await session.execute(
            insert(TransactionRow),
            [
                _transaction("eski-onay", "approved", timedelta(days=40)),
                _transaction("eski-red", "rejected", timedelta(days=31)),
                _transaction("eski-bekleyen", "pending", timedelta(days=40)),
                _transaction("yeni-onay", "approved", timedelta(days=29)),
            ],
        )
        await session.execute(
            insert(ChallengeDeliveryRow),
            [
                {"transaction_id": "eski-onay", "device_id": "d-1", "provider": "direct"},
                {"transaction_id": "yeni-onay", "device_id": "d-1", "provider": "direct"},
            ],
        )
        await session.execute(
            insert(AuditRow),
            [
                _audit("login_started", timedelta(days=400)),
                _audit("decision", timedelta(days=366)),
                _audit("decision", timedelta(days=364)),
            ],
        )


async def _ids(database: Database, column: Any) -> list[Any]:
    async with database.read() as session:
        return sorted((await session.scalars(select(column))).all())


async def test_prunes_only_past_retention(database: Database) -> None:
    await _seed(database)

    counts = await prune_past_retention(
        database, Retention(audit_days=365, transaction_days=30), NOW
    )

    assert (counts.audit_records, counts.transactions) == (2, 2)
    remaining = await _ids(database, TransactionRow.id)
    assert remaining == ["eski-bekleyen", "yeni-onay"]
    assert await _ids(database, ChallengeDeliveryRow.transaction_id) == ["yeni-onay"]
    async with database.read() as session:
        records = (await session.scalars(select(AuditRow).order_by(AuditRow.id))).all()
    assert [record.event for record in records] == ["decision", "records_pruned"]
    assert records[-1].actor == "tapgate"
    assert records[-1].details == {
        "audit_records": 2,
        "transactions": 2,
        "audit_days": 365,
        "transaction_days": 30,
    }


async def test_forever_keeps_everything(database: Database) -> None:
    await _seed(database)

    counts = await prune_past_retention(
        database, Retention(audit_days=None, transaction_days=None), NOW
    )

    assert (counts.audit_records, counts.transactions) == (0, 0)
    assert len(await _ids(database, TransactionRow.id)) == 4
    assert len(await _ids(database, AuditRow.id)) == 3


async def test_backlog_goes_in_bounded_batches(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH_ROWS", 3)
    monkeypatch.setattr(retention, "MAX_BATCHES", 2)
    async with database.write() as session:
        await session.execute(
            insert(AuditRow), [_audit("decision", timedelta(days=400 + i)) for i in range(10)]
        )
    policy = Retention(audit_days=365, transaction_days=None)

    first = await prune_past_retention(database, policy, NOW)
    second = await prune_past_retention(database, policy, NOW)
    third = await prune_past_retention(database, policy, NOW)

    assert [first.audit_records, second.audit_records, third.audit_records] == [6, 4, 0]
    async with database.read() as session:
        left = await session.scalar(
            select(func.count()).select_from(AuditRow).where(AuditRow.event == "decision")
        )
    assert left == 0


def test_retention_settings_default() -> None:
    settings = load_settings(None, env={})
    assert settings.retention == Retention(audit_days=None, transaction_days=30)


def test_retention_settings_from_file_and_env(tmp_path: Any) -> None:
    path = tmp_path / "tapgate.yaml"
    path.write_text("retention:\n  audit_days: 730\n  transaction_days: forever\n")
    assert load_settings(str(path), env={}).retention == Retention(730, None)
    env = {"TAPGATE_AUDIT_RETENTION_DAYS": "FOREVER", "TAPGATE_TRANSACTION_RETENTION_DAYS": "7"}
    assert load_settings(str(path), env=env).retention == Retention(None, 7)


@pytest.mark.parametrize(
    "value",
    ["0", "-5", "30d", "1.5", "true", "36501", "[30]", "'²'", "'٣٠'", "'３０'", "1:00", "1_000"],
)
def test_retention_settings_invalid(tmp_path: Any, value: str) -> None:
    path = tmp_path / "tapgate.yaml"
    path.write_text(f"retention:\n  audit_days: {value}\n")
    with pytest.raises(ConfigError, match=r"retention\.audit_days: invalid .*whole number of days"):
        load_settings(str(path), env={})


def test_retention_yaml_decimal_not_octal(tmp_path: Any) -> None:
    path = tmp_path / "tapgate.yaml"
    path.write_text("retention:\n  audit_days: 030\n  transaction_days: 0x1e\n")
    assert load_settings(str(path), env={}).retention == Retention(30, 30)


@pytest.mark.parametrize("value", ["²", "9" * 5000, "٣٠"])
def test_retention_env_invalid(tmp_path: Any, value: str) -> None:
    with pytest.raises(ConfigError, match="TAPGATE_AUDIT_RETENTION_DAYS"):
        load_settings(None, env={"TAPGATE_AUDIT_RETENTION_DAYS": value})


async def test_time_budget_stops_a_run(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention, "BATCH_ROWS", 3)
    monkeypatch.setattr(retention, "RUN_SECONDS", 0.0)
    async with database.write() as session:
        await session.execute(
            insert(AuditRow), [_audit("decision", timedelta(days=400 + i)) for i in range(7)]
        )

    counts = await prune_past_retention(database, Retention(365, None), NOW)

    assert counts.audit_records == 3


async def test_two_nodes_count_what_they_deleted(db_url: str, database: Database) -> None:
    async with database.write() as session:
        await session.execute(
            insert(AuditRow), [_audit("decision", timedelta(days=400 + i)) for i in range(2500)]
        )
    other = Database(db_url)
    policy = Retention(audit_days=365, transaction_days=None)
    try:
        first, second = await asyncio.gather(
            prune_past_retention(database, policy, NOW),
            prune_past_retention(other, policy, NOW),
        )
    finally:
        await other.close()

    assert first.audit_records + second.audit_records == 2500
    async with database.read() as session:
        details = (
            await session.scalars(
                select(AuditRow.details).where(AuditRow.event == "records_pruned")
            )
        ).all()
    assert sum(record["audit_records"] for record in details) == 2500


def test_retention_empty_value_rejected(tmp_path: Any) -> None:
    path = tmp_path / "tapgate.yaml"
    path.write_text("retention:\n  audit_days:\n")
    with pytest.raises(ConfigError, match="retention.audit_days is empty"):
        load_settings(str(path), env={})
