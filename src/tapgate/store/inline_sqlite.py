"""SQLite connections for SQLAlchemy's asyncio engine that run each call on the event loop thread.

SQLAlchemy's `sqlite+aiosqlite` dialect expects aiosqlite's connection, which hands every call
(cursor, execute, fetch, commit) to a thread of its own and wakes the event loop when it is
done. On a 2-core virtual machine that hand-off cost about 90 µs of CPU per query against 1 µs
for sqlite3 called directly (benchmark in docs/benchmarks.md), and a push login makes about
thirty of them. The statements tapgate runs on SQLite are short indexed reads and writes, so
this module keeps aiosqlite's interface but calls sqlite3 in place.

The cost: a statement that waits for SQLite's write lock (busy_timeout) blocks the event loop
while it waits. Within one process the single-connection write pool already serializes
writers, and WAL readers do not wait for writers. So only another process that writes the same
file, such as a `tapgate apply` command, can make the server wait, until its transaction ends.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any


class InlineCursor:
    """An aiosqlite-shaped cursor over a sqlite3 cursor; every method completes at once."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Any = ()) -> InlineCursor:
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InlineCursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class _ImmediateQueue:
    """Stands in for aiosqlite's job queue, which SQLAlchemy's dialect uses directly to set
    `isolation_level`: the job runs at once and its future is resolved."""

    def put_nowait(self, job: tuple[Any, Callable[[], Any]]) -> None:
        future, function = job
        try:
            result = function()
        except Exception as exc:  # handed to the awaiting caller, as aiosqlite does
            future.set_exception(exc)
        else:
            future.set_result(result)


class InlineConnection:
    """An aiosqlite-shaped connection over a sqlite3 connection used on the event loop thread."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        # SQLAlchemy's adapter checks `_connection` before commit and rollback.
        self._connection: sqlite3.Connection | None = connection
        self._tx = _ImmediateQueue()

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Any = ()) -> InlineCursor:
        return await self.cursor().execute(sql, parameters)

    def begin(self, statement: str) -> None:
        """Run a BEGIN statement at once, from SQLAlchemy's synchronous "begin" event."""
        self._conn.execute(statement)

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    def stop(self) -> None:
        """Close at once; SQLAlchemy calls this when it terminates a connection."""
        if self._connection is not None:
            self._connection = None
            self._conn.close()


def inline_connector(path: Path) -> Callable[[], Awaitable[InlineConnection]]:
    """Return the `async_creator` for `create_async_engine` that opens `path`."""

    async def connect() -> InlineConnection:
        # The pool may drop a connection from another thread (garbage collection at exit).
        return InlineConnection(sqlite3.connect(str(path), check_same_thread=False))

    return connect
