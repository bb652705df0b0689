"""Shared SQLite commits of `write_rows()`, the change stamp, and the access-token cache."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from tapgate.api.clients import TokenCache, application_for_token
from tapgate.clock import SystemClock
from tapgate.directory.local import LocalAuthProfile, NewLocalUser, add_local_user
from tapgate.keys import KeyRing
from tapgate.store.checkpoint import BACKSTOP_PAGES
from tapgate.store.database import Database
from tapgate.store.group_commit import PendingCommits
from tapgate.store.migrate import upgrade
from tapgate.store.models import AccessTokenRow, ApiClientRow, ApplicationRow, AuthProfileRow
from tapgate.store.prepared import Prepared
from tapgate.store.tables import TRANSACTIONS

_NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
_ADD = Prepared(
    insert(TRANSACTIONS),
    ("id", "application", "username", "status", "verification", "nonce", "context")
    + ("created_at", "expires_at"),
)
_IDS = Prepared(select(TRANSACTIONS.c.id).order_by(TRANSACTIONS.c.id))
_ONE = Prepared(select(TRANSACTIONS.c.id).where(TRANSACTIONS.c.id == bindparam("id")))


def _values(transaction_id: str) -> dict[str, object]:
    return {
        "id": transaction_id,
        "application": "vpn",
        "username": "İsmail Şahin",
        "status": "pending",
        "verification": "tap",
        "nonce": "n",
        "context": {"location": "Muğla"},
        "created_at": _NOW,
        "expires_at": _NOW + timedelta(seconds=30),
    }


def _sqlite_path(db_url: str) -> str:
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite only: PostgreSQL commits each block on its own")
    return db_url.removeprefix("sqlite:///")


def _committed_ids(path: str) -> list[str]:
    """Read through a separate connection, which reads only committed rows."""
    with sqlite3.connect(path) as connection:
        return [row[0] for row in connection.execute("SELECT id FROM transactions ORDER BY id")]


def test_blocks_of_one_turn_share_a_commit(db_url: str) -> None:
    path = _sqlite_path(db_url)
    upgrade(db_url)
    commits: list[int] = []

    async def write(database: Database, transaction_id: str) -> list[str]:
        async with database.write_rows() as rows:
            await rows.run(_ADD, _values(transaction_id))
        # Once the block has returned, its row is visible to every other connection.
        return _committed_ids(path)

    async def scenario() -> None:
        database = Database(db_url)
        try:
            connection = database._group.connection
            connection.set_trace_callback(
                lambda sql: commits.append(1) if sql == "COMMIT" else None
            )
            seen = await asyncio.gather(*(write(database, f"tx-{n}") for n in range(5)))
            for visible in seen:
                assert visible == [f"tx-{n}" for n in range(5)]
        finally:
            await database.close()

    asyncio.run(scenario())
    assert len(commits) == 1


def test_failed_block_undoes_only_its_own_rows(db_url: str) -> None:
    path = _sqlite_path(db_url)
    upgrade(db_url)

    async def good(database: Database, transaction_id: str) -> None:
        async with database.write_rows() as rows:
            await rows.run(_ADD, _values(transaction_id))

    async def duplicate(database: Database) -> None:
        async with database.write_rows() as rows:
            await rows.run(_ADD, _values("tx-own"))
            await rows.run(_ADD, _values("tx-a"))

    async def scenario() -> list[BaseException | None]:
        database = Database(db_url)
        try:
            return await asyncio.gather(
                good(database, "tx-a"),
                duplicate(database),
                good(database, "tx-b"),
                return_exceptions=True,
            )
        finally:
            await database.close()

    results = asyncio.run(scenario())
    assert results[0] is None
    assert isinstance(results[1], IntegrityError)
    assert results[2] is None
    assert _committed_ids(path) == ["tx-a", "tx-b"]


def test_failed_commit_fails_every_block(db_url: str) -> None:
    _sqlite_path(db_url)
    upgrade(db_url)

    async def write(database: Database, transaction_id: str) -> None:
        async with database.write_rows() as rows:
            await rows.run(_ADD, _values(transaction_id))

    async def scenario() -> list[BaseException | None]:
        database = Database(db_url)
        real = database._group.connection
        try:
            # A connection whose COMMIT fails as a full disk would make it fail.
            database._group._connection = _FailingCommit(real)  # type: ignore[assignment]
            results = await asyncio.gather(
                write(database, "tx-1"), write(database, "tx-2"), return_exceptions=True
            )
            database._group._connection = real
            async with database.read_rows() as rows:
                left = await rows.scalars(_IDS)
            assert left == []
            # The connection works again for the next batch.
            await write(database, "tx-3")
            async with database.read_rows() as rows:
                assert await rows.scalars(_IDS) == ["tx-3"]
            return results
        finally:
            database._group._connection = real
            await database.close()

    results = asyncio.run(scenario())
    assert all(isinstance(result, OperationalError) for result in results)


def test_pending_block_joins_the_next_blocks_commit(db_url: str) -> None:
    path = _sqlite_path(db_url)
    upgrade(db_url)
    commits: list[int] = []

    async def scenario() -> tuple[list[str], list[str]]:
        database = Database(db_url)
        try:
            database._group.connection.set_trace_callback(
                lambda sql: commits.append(1) if sql == "COMMIT" else None
            )
            pending = PendingCommits()
            async with database.write_rows(pending) as rows:
                await rows.run(_ADD, _values("tx-başladı"))
            # Returned before its commit, so no other connection can read the row yet.
            before = _committed_ids(path)
            async with database.write_rows() as rows:
                await rows.run(_ADD, _values("tx-gönderildi"))
            await pending.wait()
            return before, _committed_ids(path)
        finally:
            await database.close()

    before, after = asyncio.run(scenario())
    assert before == []
    assert after == ["tx-başladı", "tx-gönderildi"]
    assert len(commits) == 1


def test_pending_wait_raises_a_failed_commit(db_url: str) -> None:
    _sqlite_path(db_url)
    upgrade(db_url)

    async def scenario() -> None:
        database = Database(db_url)
        real = database._group.connection
        try:
            database._group._connection = _FailingCommit(real)  # type: ignore[assignment]
            pending = PendingCommits()
            async with database.write_rows(pending) as rows:
                await rows.run(_ADD, _values("tx-1"))
            with pytest.raises(OperationalError):
                await pending.wait()
        finally:
            database._group._connection = real
            await database.close()

    asyncio.run(scenario())


class _FailingCommit:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def commit(self) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    def __getattr__(self, name: str) -> object:
        return getattr(self._connection, name)


def test_cancelled_writer_still_commits(db_url: str) -> None:
    path = _sqlite_path(db_url)
    upgrade(db_url)

    async def scenario() -> None:
        database = Database(db_url)
        try:

            async def write() -> None:
                async with database.write_rows() as rows:
                    await rows.run(_ADD, _values("tx-c"))

            task = asyncio.create_task(write())
            # Let the block run and wait for its commit, then cancel the waiting task.
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0)
        finally:
            await database.close()

    asyncio.run(scenario())
    assert _committed_ids(path) == ["tx-c"]


def test_session_writer_commits_the_open_batch_first(db_url: str) -> None:
    path = _sqlite_path(db_url)
    upgrade(db_url)

    async def scenario() -> None:
        database = Database(db_url)
        try:

            async def prepared_write() -> None:
                async with database.write_rows() as rows:
                    await rows.run(_ADD, _values("tx-p"))

            async def session_write() -> None:
                async with database.write() as session:
                    session.add(ApplicationRow(name="vpn", kind="api", methods=[]))

            await asyncio.gather(prepared_write(), session_write())
        finally:
            await database.close()

    asyncio.run(scenario())
    assert _committed_ids(path) == ["tx-p"]
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT name FROM applications").fetchall() == [("vpn",)]


def test_write_lock_held_elsewhere_raises_operational_error(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _sqlite_path(db_url)
    upgrade(db_url)
    from tapgate.store import database as database_module

    monkeypatch.setattr(database_module, "_BUSY_TIMEOUT_MS", 100)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")

    async def scenario() -> None:
        database = Database(db_url)
        try:
            with pytest.raises(OperationalError, match="locked"):
                async with database.write_rows() as rows:
                    await rows.run(_ADD, _values("tx-l"))
            holder.execute("ROLLBACK")
            async with database.write_rows() as rows:
                await rows.run(_ADD, _values("tx-m"))
            async with database.read_rows() as rows:
                assert await rows.first(_ONE, {"id": "tx-m"}) is not None
        finally:
            await database.close()

    try:
        asyncio.run(scenario())
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()


def test_change_stamp_moves_only_for_other_connections(db_url: str) -> None:
    path = _sqlite_path(db_url)
    upgrade(db_url)

    async def scenario() -> None:
        database = Database(db_url)
        try:
            first = database.change_stamp()
            async with database.write_rows() as rows:
                await rows.run(_ADD, _values("tx-own"))
            assert database.change_stamp() == first
            async with database.write() as session:
                session.add(ApplicationRow(name="portal", kind="api", methods=[]))
            after_session = database.change_stamp()
            assert after_session != first
            with sqlite3.connect(path) as other:
                other.execute("UPDATE applications SET kind = 'radius' WHERE name = 'portal'")
            # Within one turn of the event loop the stamp read at its start holds.
            assert database.change_stamp() == after_session
            await asyncio.sleep(0)
            assert database.change_stamp() != after_session
        finally:
            await database.close()

    asyncio.run(scenario())


def test_token_cache_forgets_a_deleted_token(db_url: str) -> None:
    path = _sqlite_path(db_url)
    upgrade(db_url)
    keyring = KeyRing(b"k" * 32)
    token = "erişim-jetonu-ş"

    async def scenario() -> None:
        database = Database(db_url)
        cache = TokenCache()
        try:
            async with database.write() as session:
                session.add(ApplicationRow(name="portal", kind="api", methods=[]))
                session.add(
                    ApiClientRow(
                        client_id="tg_ayse",
                        secret_hash="x",
                        application="portal",
                        created_at=_NOW,
                    )
                )
                session.add(
                    AccessTokenRow(
                        token_hash=keyring.hash_token(token),
                        client_id="tg_ayse",
                        application="portal",
                        expires_at=_NOW + timedelta(hours=1),
                    )
                )
            found = await application_for_token(database, keyring, cache, token, _NOW)
            assert found == "portal"
            reads = 0
            real_read_rows = database.read_rows

            def counting_read_rows() -> Any:
                nonlocal reads
                reads += 1
                return real_read_rows()

            database.read_rows = counting_read_rows  # type: ignore[method-assign]
            # Served from the cache, without a read.
            assert await application_for_token(database, keyring, cache, token, _NOW) == "portal"
            assert reads == 0
            # Past the token's expiry the cache does not serve it.
            late = _NOW + timedelta(hours=2)
            assert await application_for_token(database, keyring, cache, token, late) is None
            # Another process deletes the token, and the next request finds it gone.
            with sqlite3.connect(path) as other:
                other.execute("DELETE FROM access_tokens")
            await asyncio.sleep(0)
            assert await application_for_token(database, keyring, cache, token, _NOW) is None
        finally:
            await database.close()

    asyncio.run(scenario())


def test_local_user_cache_follows_changes(db_url: str) -> None:
    path = _sqlite_path(db_url)
    upgrade(db_url)

    async def scenario() -> None:
        database = Database(db_url)
        profile = LocalAuthProfile("personel", database, SystemClock())
        try:
            async with database.write() as session:
                session.add(AuthProfileRow(name="personel", kind="local", position=0, config={}))
            async with database.write() as session:
                await add_local_user(
                    session, "personel", NewLocalUser("İsmail", mobile="05554443322"), _NOW
                )
            found = await profile.find_user("ismail")
            assert found is not None
            assert found.username == "İsmail"

            reads = 0
            real_read_rows = database.read_rows

            def counting_read_rows() -> Any:
                nonlocal reads
                reads += 1
                return real_read_rows()

            database.read_rows = counting_read_rows  # type: ignore[method-assign]
            assert await profile.find_user("İSMAİL") == found
            assert reads == 0
            assert await profile.account_problem(found, _NOW) is None

            # Another process disables the user; the next login reads the row again.
            with sqlite3.connect(path) as other:
                other.execute("UPDATE local_users SET disabled = 1")
            await asyncio.sleep(0)
            again = await profile.find_user("ismail")
            assert reads == 1
            assert again is not None
            assert await profile.account_problem(again, _NOW) == "account_disabled"
        finally:
            await database.close()

    asyncio.run(scenario())


class _RecordingCommit:
    """A connection that notes which thread runs its COMMIT."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        self.threads: list[str] = []

    def commit(self) -> None:
        self.threads.append(threading.current_thread().name)
        self._connection.commit()

    def __getattr__(self, name: str) -> object:
        return getattr(self._connection, name)


def test_commit_runs_on_the_event_loop(db_url: str) -> None:
    path = _sqlite_path(db_url)
    upgrade(db_url)

    async def write(database: Database, transaction_id: str) -> list[str]:
        async with database.write_rows() as rows:
            await rows.run(_ADD, _values(transaction_id))
        return _committed_ids(path)

    async def scenario() -> list[str]:
        database = Database(db_url)
        real = database._group.connection
        recording = _RecordingCommit(real)
        database._group._connection = recording  # type: ignore[assignment]
        try:
            await write(database, "tx-1")
            seen = await write(database, "tx-2")
            assert not database._write_gate.locked()
            assert recording.threads == [threading.current_thread().name] * 2
            return seen
        finally:
            database._group._connection = real
            await database.close()

    assert asyncio.run(scenario()) == ["tx-1", "tx-2"]


def test_checkpoints_run_on_their_own_thread(db_url: str) -> None:
    _sqlite_path(db_url)
    upgrade(db_url)
    threads: list[str] = []

    async def scenario() -> None:
        database = Database(db_url)
        checkpointer = database._group.checkpointer
        checkpointer._interval = 0.0
        original = checkpointer._checkpoint

        def recorded() -> None:
            threads.append(threading.current_thread().name)
            original()

        checkpointer._checkpoint = recorded  # type: ignore[method-assign]
        try:
            for n in range(3):
                async with database.write_rows() as rows:
                    await rows.run(_ADD, _values(f"tx-{n}"))
            backstop = database._group.connection.execute("PRAGMA wal_autocheckpoint")
            assert backstop.fetchone()[0] == BACKSTOP_PAGES
        finally:
            await database.close()

    asyncio.run(scenario())
    assert threads
    assert all(name.startswith("tapgate-checkpoint") for name in threads)


def test_lock_wait_keeps_loop_running(db_url: str) -> None:
    path = _sqlite_path(db_url)
    upgrade(db_url)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    async def scenario() -> None:
        database = Database(db_url)
        running = asyncio.create_task(ticker())
        try:
            async with database.write_rows() as rows:
                await rows.run(_ADD, _values("tx-before"))
            # Another process's write transaction, which ends after 0.4 s.
            holder.execute("BEGIN IMMEDIATE")
            asyncio.get_running_loop().call_later(0.4, holder.execute, "COMMIT")
            started = ticks
            async with database.write_rows() as rows:
                await rows.run(_ADD, _values("tx-after-wait"))
            # The loop ran about every 10 ms while the block waited for the lock.
            assert ticks - started >= 20
        finally:
            running.cancel()
            await database.close()

    try:
        asyncio.run(scenario())
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
    assert _committed_ids(path) == ["tx-after-wait", "tx-before"]


def test_after_commit_runs_before_block_returns(db_url: str) -> None:
    path = _sqlite_path(db_url)
    upgrade(db_url)
    seen_at_callback: dict[str, list[str]] = {}
    events: list[str] = []

    async def write(database: Database, transaction_id: str) -> None:
        async with database.write_rows() as rows:
            await rows.run(_ADD, _values(transaction_id))
            rows.after_commit(
                lambda: seen_at_callback.setdefault(transaction_id, _committed_ids(path))
            )
            rows.after_commit(lambda: events.append(f"callback {transaction_id}"))
        events.append(f"returned {transaction_id}")

    async def scenario() -> None:
        database = Database(db_url)
        try:
            await asyncio.gather(write(database, "tx-1"), write(database, "tx-2"))
        finally:
            await database.close()

    asyncio.run(scenario())
    # Both blocks shared one commit, and each callback saw both rows committed.
    assert seen_at_callback == {"tx-1": ["tx-1", "tx-2"], "tx-2": ["tx-1", "tx-2"]}
    # Every callback of the commit ran before any block's caller resumed.
    assert events == ["callback tx-1", "callback tx-2", "returned tx-1", "returned tx-2"]


def test_after_commit_skips_failed_block(db_url: str) -> None:
    _sqlite_path(db_url)
    upgrade(db_url)
    ran: list[str] = []

    async def write(database: Database, transaction_id: str, fail: bool) -> None:
        async with database.write_rows() as rows:
            rows.after_commit(lambda: ran.append(transaction_id))
            await rows.run(_ADD, _values(transaction_id))
            if fail:
                raise ValueError("Şule's block gave up")

    async def scenario() -> list[BaseException | None]:
        database = Database(db_url)
        try:
            return await asyncio.gather(
                write(database, "tx-a", False),
                write(database, "tx-b", True),
                write(database, "tx-c", False),
                return_exceptions=True,
            )
        finally:
            await database.close()

    results = asyncio.run(scenario())
    assert isinstance(results[1], ValueError)
    assert ran == ["tx-a", "tx-c"]


def test_after_commit_skips_failed_commit(db_url: str) -> None:
    _sqlite_path(db_url)
    upgrade(db_url)
    ran: list[str] = []

    async def scenario() -> BaseException | None:
        database = Database(db_url)
        real = database._group.connection
        try:
            database._group._connection = _FailingCommit(real)  # type: ignore[assignment]
            try:
                async with database.write_rows() as rows:
                    await rows.run(_ADD, _values("tx-1"))
                    rows.after_commit(lambda: ran.append("tx-1"))
            except OperationalError as exc:
                return exc
            return None
        finally:
            database._group._connection = real
            await database.close()

    assert isinstance(asyncio.run(scenario()), OperationalError)
    assert ran == []


def test_failing_callback_keeps_the_commit(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    upgrade(db_url)
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("stream gone")

    async def scenario() -> list[str]:
        database = Database(db_url)
        try:
            async with database.write_rows() as rows:
                await rows.run(_ADD, _values("tx-ı"))
                rows.after_commit(broken)
                rows.after_commit(lambda: ran.append("after"))
            async with database.read_rows() as rows:
                return list(await rows.scalars(_IDS))
        finally:
            await database.close()

    assert asyncio.run(scenario()) == ["tx-ı"]
    assert ran == ["after"]
    assert "a callback after a commit failed" in caplog.text


def test_after_commit_needs_write_transaction(db_url: str) -> None:
    upgrade(db_url)

    async def scenario() -> None:
        database = Database(db_url)
        try:
            async with database.read_rows() as rows:
                with pytest.raises(RuntimeError, match="write"):
                    rows.after_commit(lambda: None)
        finally:
            await database.close()

    asyncio.run(scenario())
