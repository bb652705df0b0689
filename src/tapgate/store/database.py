"""Engines and sessions for SQLite (default) and PostgreSQL.

SQLite runs in WAL mode with a busy timeout, and write transactions start with BEGIN IMMEDIATE:
without it, two deferred transactions that both upgrade to writing fail with "database is
locked" regardless of the timeout. Reads use a second engine with plain deferred transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from tapgate.errors import ConfigError
from tapgate.store.gate import Gate
from tapgate.store.group_commit import GroupCommit, PendingCommits
from tapgate.store.inline_sqlite import InlineConnection, inline_connector
from tapgate.store.pg_pool import ConnectionPool
from tapgate.store.prepared import Prepared, Statements, psycopg_statements, run_after_commit
from tapgate.store.sqlite_rows import SqliteReaders

log = logging.getLogger(__name__)

_BUSY_TIMEOUT_MS = 10_000
# Idle SQLite connections kept for `read_rows()`.
_SPARE_READERS = 4
# PostgreSQL connections of one node's login path, beside at most 8 for its sessions and one
# for LISTEN: three nodes stay within the server's default of 100 connections.
_PG_POOL_SIZE = 16


@dataclass(frozen=True)
class DatabaseUrl:
    async_url: str
    sync_url: str
    backend: str  # "sqlite" or "postgresql"
    sqlite_path: Path | None
    # The URL psycopg connects to directly (PostgreSQL only).
    libpq_url: str | None = None


def parse_database_url(url: str) -> DatabaseUrl:
    """Map `sqlite:///path` and `postgresql://…` to the async and sync driver URLs."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(
            f"database.url: invalid URL {url!r}; expected sqlite:///PATH or postgresql://USER@HOST/DB"
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ConfigError("database.url: SQLite needs a file path, e.g. sqlite:///./tapgate.db")
        path = Path(parsed.database)
        return DatabaseUrl(
            async_url=str(parsed.set(drivername="sqlite+aiosqlite")),
            sync_url=str(parsed.set(drivername="sqlite")),
            backend="sqlite",
            sqlite_path=path,
        )
    if backend in ("postgresql", "postgres"):
        return DatabaseUrl(
            async_url=parsed.set(drivername="postgresql+psycopg").render_as_string(
                hide_password=False
            ),
            sync_url=parsed.set(drivername="postgresql+psycopg").render_as_string(
                hide_password=False
            ),
            backend="postgresql",
            sqlite_path=None,
            libpq_url=parsed.set(drivername="postgresql").render_as_string(hide_password=False),
        )
    raise ConfigError(f"database.url: unsupported database {backend!r}; use sqlite or postgresql")


def _sqlite_pragmas(dbapi_connection: Any) -> None:
    # Take transaction control from the driver: tapgate sends BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # The timeout first: setting the journal mode needs a lock that another process's write
    # transaction may hold, and without a timeout that fails at once.
    cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    # Asked first: setting it, even to the mode the file has already, fails with "database is
    # locked" while another connection holds the write lock.
    cursor.execute("PRAGMA journal_mode")
    if cursor.fetchone()[0].lower() != "wal":
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_setup(engine: AsyncEngine, immediate: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        _sqlite_pragmas(dbapi_connection)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        statement = "BEGIN IMMEDIATE" if immediate else "BEGIN"
        driver = connection.connection.driver_connection
        if isinstance(driver, InlineConnection):
            # Straight to sqlite3: exec_driver_sql would run the full statement path of
            # SQLAlchemy's async adapter, which cost more than the BEGIN itself. Its errors
            # ("database is locked") get SQLAlchemy's classes, as a statement's would.
            try:
                driver.begin(statement)
            except sqlite3.Error as exc:
                raise DBAPIError.instance(statement, None, exc, sqlite3.Error) from exc
        else:
            connection.exec_driver_sql(statement)


class Database:
    """The two session factories the rest of the code uses: `read()` and `write()`."""

    def __init__(self, url: str) -> None:
        self.url = parse_database_url(url)
        if self.url.sqlite_path is not None:
            self.url.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            # Statements run on the event loop thread; see tapgate.store.inline_sqlite for why.
            connect = inline_connector(self.url.sqlite_path)
            self.write_engine = create_async_engine(
                self.url.async_url, pool_size=1, max_overflow=0, async_creator=connect
            )
            self.read_engine = create_async_engine(
                self.url.async_url, pool_size=4, max_overflow=4, async_creator=connect
            )
            _sqlite_setup(self.write_engine, immediate=True)
            _sqlite_setup(self.read_engine, immediate=False)
        else:
            # Sessions serve the console, enrollment and the CLI. The login path has its own
            # connections (`_pg_pool`).
            self.write_engine = create_async_engine(
                self.url.async_url, pool_size=4, max_overflow=4, pool_pre_ping=True
            )
            self.read_engine = self.write_engine
            assert self.url.libpq_url is not None
            self._pg_pool = ConnectionPool(self.url.libpq_url, _PG_POOL_SIZE)
        self._writer = async_sessionmaker(self.write_engine, expire_on_commit=False)
        self._reader = async_sessionmaker(self.read_engine, expire_on_commit=False)
        # SQLite only: one writer at a time in this process, whether it writes through a
        # session or through `write_rows()`, which use different connections.
        self._write_gate = Gate()
        self._group = GroupCommit(
            self._sqlite_connect,
            self.write_engine.dialect,
            self._write_gate,
            # Read at each wait, so that a test can shorten the module's value.
            lambda: _BUSY_TIMEOUT_MS / 1000,
        )
        self._stamp_of_turn: int | None = None
        self._readers = SqliteReaders(
            self._sqlite_connect, self.write_engine.dialect, _SPARE_READERS
        )

    @property
    def backend(self) -> str:
        return self.url.backend

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """Open a write transaction; commit on success, roll back on any exception."""
        if self.url.sqlite_path is None:
            async with self._writer() as session, session.begin():
                yield session
            return
        async with self._write_gate:
            # The session uses another connection, which cannot write while the batch of
            # `write_rows()` holds SQLite's write lock.
            self._group.flush()
            try:
                async with self._writer() as session, session.begin():
                    yield session
            finally:
                # This commit moves the change stamp.
                self._forget_stamp()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._reader() as session, session.begin():
            yield session

    def write_rows(
        self, pending: PendingCommits | None = None
    ) -> AbstractAsyncContextManager[Statements]:
        """Open a write transaction for `Prepared` statements; commit on success.

        The login path uses this instead of `write()`: see tapgate.store.prepared for why. On
        SQLite the transaction is a savepoint in a commit shared with the other blocks of this
        turn of the event loop (tapgate.store.group_commit); it has committed when this returns,
        or, with `pending`, when `pending.wait()` returns. On PostgreSQL it has always committed
        when this returns.
        """
        if self.url.sqlite_path is None:
            return self._postgresql_statements(write=True)
        return self._group.block(pending)

    def read_rows(self) -> AbstractAsyncContextManager[Statements]:
        """Open a read transaction for `Prepared` statements."""
        if self.url.sqlite_path is None:
            return self._postgresql_statements()
        return self._readers.transaction()

    async def read_first(self, prepared: Prepared, values: Mapping[str, Any]) -> Any:
        """Run one `Prepared` SELECT in a read transaction of its own; return its first row."""
        if self.url.sqlite_path is None:
            async with self._postgresql_statements() as rows:
                return await rows.first(prepared, values)
        return await self._readers.first(prepared, values)

    async def run_alone(self, prepared: Prepared, values: Mapping[str, Any]) -> Any:
        """Run one statement as a transaction of its own; return its first row, or None.

        On PostgreSQL that is one round trip, without BEGIN and COMMIT.
        """
        if self.url.sqlite_path is None:
            async with self._postgresql_statements() as rows:
                return await rows.first(prepared, values)
        async with self.write_rows() as rows:
            return await rows.first(prepared, values)

    def change_stamp(self) -> int | None:
        """Return a number that changes whenever another connection commits, or None.

        This is SQLite's `data_version` on the `write_rows()` connection. Commits by any other
        connection change it, in this process (sessions, readers) or another (the CLI), but
        the commits of `write_rows()` itself do not. A cache of rows that only sessions or other
        processes write, such as the objects or the access tokens, is therefore current while
        the number stays the same. PostgreSQL has no such number, so there it is None and
        callers read again.

        The number is read once per turn of the event loop, as if every caller in the turn had
        asked at its start. A session's commit discards it at once.
        """
        if self.url.sqlite_path is None:
            return None
        if self._stamp_of_turn is not None:
            return self._stamp_of_turn
        try:
            row = self._group.connection.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error as exc:
            log.warning("reading data_version failed error=%s", exc)
            return None
        stamp = int(row[0])
        try:
            asyncio.get_running_loop().call_soon(self._forget_stamp)
        except RuntimeError:
            return stamp  # no event loop, so no turn to keep it for
        self._stamp_of_turn = stamp
        return stamp

    def _forget_stamp(self) -> None:
        self._stamp_of_turn = None

    def _sqlite_connect(self) -> sqlite3.Connection:
        assert self.url.sqlite_path is not None
        try:
            connection = sqlite3.connect(str(self.url.sqlite_path), check_same_thread=False)
        except sqlite3.Error as exc:
            raise DBAPIError.instance("connect", None, exc, sqlite3.Error) from exc
        try:
            _sqlite_pragmas(connection)
        except sqlite3.Error as exc:
            connection.close()
            raise DBAPIError.instance("PRAGMA", None, exc, sqlite3.Error) from exc
        return connection

    @asynccontextmanager
    async def _postgresql_statements(self, *, write: bool = False) -> AsyncIterator[Statements]:
        import psycopg

        callbacks: list[Callable[[], None]] = []
        connection = await self._pg_pool.acquire()
        try:
            cursor = connection.cursor()
            statements = psycopg_statements(
                self.write_engine.dialect, cursor, callbacks.append if write else None
            )
            if not write:
                yield statements
                return
            try:
                await cursor.execute(b"BEGIN")
            except psycopg.Error as exc:
                raise DBAPIError.instance("BEGIN", None, exc, psycopg.Error) from exc
            try:
                yield statements
            except BaseException:
                with contextlib.suppress(psycopg.Error):
                    await cursor.execute(b"ROLLBACK")
                raise
            try:
                await cursor.execute(b"COMMIT")
            except psycopg.Error as exc:
                raise DBAPIError.instance("COMMIT", None, exc, psycopg.Error) from exc
        finally:
            await self._pg_pool.release(connection)
        run_after_commit(callbacks)

    async def ping(self) -> None:
        async with self.read_engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def schema_revision(self) -> str | None:
        async with self.read_engine.connect() as connection:
            result = await connection.execute(text("SELECT version_num FROM alembic_version"))
            return result.scalar_one_or_none()

    async def close(self) -> None:
        if self.url.sqlite_path is None:
            await self._pg_pool.close()
        self._readers.close()
        await self._group.close()
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()
