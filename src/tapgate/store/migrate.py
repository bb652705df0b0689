"""Schema migrations under a lock, so nodes that start together migrate once.

PostgreSQL: a session-level advisory lock. SQLite: an exclusive `flock` on a file beside the
database. Migrations run on a synchronous connection because Alembic's API is synchronous.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import OperationalError

from tapgate.errors import ConfigError
from tapgate.store.database import parse_database_url

log = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).parent / "migrations"
# Arbitrary constant shared by every node: the advisory lock id for migrations.
_ADVISORY_LOCK_ID = 0x7A6761_7465


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def create_private_file(path: Path) -> None:
    """Create a new SQLite file readable by its owner only (it holds password hashes); SQLite
    gives its -wal and -shm files the same mode."""
    if path.exists():
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot create database file {path}: {exc.strerror}") from exc


@functools.cache
def head_revision() -> str:
    """Return the newest revision in the installed migrations, read once because /readyz
    calls this on every probe."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


@contextmanager
def _connect(url: str) -> Iterator[Connection]:
    parsed = parse_database_url(url)
    if parsed.sqlite_path is not None:
        create_private_file(parsed.sqlite_path)
    # Ten seconds unless the URL sets its own connect_timeout, which a connect argument would
    # override.
    timeout = parsed.backend == "postgresql" and "connect_timeout" not in parsed.sync_url
    engine = create_engine(parsed.sync_url, connect_args={"connect_timeout": 10} if timeout else {})
    try:
        with engine.connect() as connection:
            yield connection
    except OperationalError as exc:
        raise ConfigError(
            f"database {parsed.backend} is not reachable: {exc.orig}; check database.url and that "
            "the server is running"
        ) from exc
    finally:
        engine.dispose()


@contextmanager
def _migration_lock(url: str, connection: Connection) -> Iterator[None]:
    parsed = parse_database_url(url)
    if parsed.sqlite_path is not None:
        lock_path = parsed.sqlite_path.with_name(parsed.sqlite_path.name + ".migrate-lock")
        with open(lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    else:
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _ADVISORY_LOCK_ID})
            connection.commit()


def current_revision(url: str) -> str | None:
    with _connect(url) as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str) -> tuple[str | None, str]:
    """Bring the schema to the newest revision; return (revision before, revision after)."""
    with _connect(url) as connection, _migration_lock(url, connection):
        before = MigrationContext.configure(connection).get_current_revision()
        head = head_revision()
        if before != head:
            log.info("migrating schema from=%s to=%s", before, head)
            config = _config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
        return before, head
