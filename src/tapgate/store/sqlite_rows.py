"""SQLite read transactions for `Prepared` statements, on a small pool of connections.

WAL readers never wait for the writer, so a few connections serve every reader. One is taken
per transaction because a caller may await other work inside it. The transaction is a class
with `__aenter__` and `__aexit__`, not an `asynccontextmanager` generator, because a push login
opens four of them. With this class and `group_commit.Block` in place of generators, a login in
the benchmark (`tapgate bench --hash none`, K=200) cost 1.08 ms of server CPU instead of 1.17.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

from tapgate.store.prepared import Prepared, Statements, sqlite_statements

_Reader = tuple[sqlite3.Connection, Statements]


class SqliteReaders:
    """Idle reader connections, at most `spare` of them, each with its `Statements`."""

    def __init__(
        self, connect: Callable[[], sqlite3.Connection], dialect: Dialect, spare: int
    ) -> None:
        self._connect = connect
        self._dialect = dialect
        self._spare = spare
        self._idle: list[_Reader] = []

    def transaction(self) -> ReadTransaction:
        return ReadTransaction(self)

    async def first(self, prepared: Prepared, values: Mapping[str, Any]) -> Any:
        """Run one SELECT on its own and return its first row, or None.

        A single statement in autocommit mode reads one consistent snapshot, so it needs no
        BEGIN and COMMIT of its own. Without them a status read runs one statement, not three.
        """
        reader = self.take()
        try:
            row = await reader[1].first(prepared, values)
        except BaseException:
            reader[0].close()
            raise
        self.give_back(reader)
        return row

    def take(self) -> _Reader:
        if self._idle:
            return self._idle.pop()
        connection = self._connect()
        return connection, sqlite_statements(self._dialect, connection)

    def give_back(self, reader: _Reader) -> None:
        if len(self._idle) < self._spare:
            self._idle.append(reader)
        else:
            reader[0].close()

    def close(self) -> None:
        for connection, _ in self._idle:
            connection.close()
        self._idle.clear()


class ReadTransaction:
    """One read transaction: BEGIN on entry, COMMIT on a clean exit."""

    __slots__ = ("_readers", "_reader")

    def __init__(self, readers: SqliteReaders) -> None:
        self._readers = readers

    async def __aenter__(self) -> Statements:
        reader = self._readers.take()
        try:
            reader[0].execute("BEGIN")
        except sqlite3.Error as exc:
            reader[0].close()
            raise DBAPIError.instance("BEGIN", None, exc, sqlite3.Error) from exc
        self._reader = reader
        return reader[1]

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection = self._reader[0]
        if exc_type is not None:
            # A connection that saw an error is not reused: it may be in any state.
            with contextlib.suppress(sqlite3.Error):
                connection.rollback()
            connection.close()
            return
        try:
            connection.commit()
        except sqlite3.Error as error:
            connection.close()
            raise DBAPIError.instance("COMMIT", None, error, sqlite3.Error) from error
        self._readers.give_back(self._reader)
