"""Engines and sessions for SQLite (default) and PostgreSQL.

SQLite runs in WAL mode with a busy timeout, and write transactions start with BEGIN IMMEDIATE:
without it, two deferred transactions that both upgrade to writing fail with "database is
locked" regardless of the timeout. Reads use a second engine with plain deferred transactions.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from tapgate.errors import ConfigError
from tapgate.store.inline_sqlite import InlineConnection, inline_connector

log = logging.getLogger(__name__)

_BUSY_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class DatabaseUrl:
    async_url: str
    sync_url: str
    backend: str  # "sqlite" or "postgresql"
    sqlite_path: Path | None


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
        )
    raise ConfigError(f"database.url: unsupported database {backend!r}; use sqlite or postgresql")


def _sqlite_setup(engine: AsyncEngine, immediate: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so that the "begin" hook below decides.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        statement = "BEGIN IMMEDIATE" if immediate else "BEGIN"
        driver = connection.connection.driver_connection
        if isinstance(driver, InlineConnection):
            # Straight to sqlite3: exec_driver_sql would run the full statement path of
            # SQLAlchemy's async adapter, which cost more than the BEGIN itself.
            driver.begin(statement)
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
            self.write_engine = create_async_engine(
                self.url.async_url, pool_size=8, max_overflow=8, pool_pre_ping=True
            )
            self.read_engine = self.write_engine
        self._writer = async_sessionmaker(self.write_engine, expire_on_commit=False)
        self._reader = async_sessionmaker(self.read_engine, expire_on_commit=False)

    @property
    def backend(self) -> str:
        return self.url.backend

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """Open a write transaction; commit on success, roll back on any exception."""
        async with self._writer() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._reader() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read_rows(self) -> AsyncIterator[AsyncConnection]:
        """Open a read transaction on a plain connection, for Core statements.

        Cheaper than `read()`, because no ORM session is set up around the connection.
        """
        async with self.read_engine.begin() as connection:
            yield connection

    async def ping(self) -> None:
        async with self.read_engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def schema_revision(self) -> str | None:
        async with self.read_engine.connect() as connection:
            result = await connection.execute(text("SELECT version_num FROM alembic_version"))
            return result.scalar_one_or_none()

    async def close(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()
