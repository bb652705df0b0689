"""Core statements compiled once per dialect and run on the driver's own connection.

A login runs about twenty short statements. Through SQLAlchemy's asyncio layer each one costs
a greenlet switch, an execution context, a cache-key lookup and a result object. Measured here,
a write transaction with three inserts took 667 µs of CPU that way against 32 µs through
sqlite3 directly. SQLAlchemy has no public "compile once, execute raw" path, so this module keeps
SQLAlchemy for what it does well (the SQL text of each dialect, the type conversions of the
models' columns, the connection pools) and does the execution itself: `Prepared` caches the SQL
text, bind order and type processors of one statement per dialect, and `Statements` runs them
on the DBAPI connection of a pooled SQLAlchemy connection.

Only statements with plain bind parameters are supported (no expanding `IN` lists); a statement
that needs more goes through an ordinary session.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable

log = logging.getLogger(__name__)

_Processor = Callable[[Any], Any] | None
_ABSENT = object()


@dataclass(frozen=True)
class _Compiled:
    sql: str
    # Bind names in the order of the positional markers (qmark), or None for named markers.
    order: tuple[str, ...] | None
    # Values of the statement's own literals (`status == "pending"` becomes a bind parameter).
    defaults: dict[str, Any]
    binds: tuple[tuple[str, Callable[[Any], Any]], ...]
    results: tuple[_Processor, ...]
    row: Callable[[Sequence[Any]], Any]
    # For qmark: each positional marker's name, default (or _ABSENT) and bind processor.
    plan: tuple[tuple[str, Any, _Processor], ...] | None = None


class Prepared:
    """One statement, compiled the first time each dialect runs it.

    `columns` names the inserted or updated columns of an INSERT or UPDATE whose values come as
    parameters; the result columns of a SELECT or RETURNING come from the statement.
    """

    def __init__(self, statement: Executable, columns: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.columns = list(columns) if columns is not None else None
        self._compiled: dict[str, _Compiled] = {}

    def compiled(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            found = self._compiled[dialect.name] = self._compile(dialect)
        return found

    def _compile(self, dialect: Dialect) -> _Compiled:
        statement = cast(ClauseElement, self.statement)
        compiled = statement.compile(dialect=dialect, column_keys=self.columns)
        assert isinstance(compiled, SQLCompiler)
        binds = []
        defaults: dict[str, Any] = {}
        for name, bind in compiled.binds.items():
            if name.startswith("%("):
                continue  # an anonymous name's entry; the rendered name has one too
            if not bind.required:
                defaults[name] = bind.effective_value
            processor = _bind_processor(bind.type, dialect)
            if processor is not None:
                binds.append((name, processor))
        # Columns with Python-side defaults that the parameters leave out: a session computes
        # them at execution, so they are filled in here from the column's scalar default.
        for column in [*compiled.insert_prefetch, *compiled.update_prefetch]:
            default = column.default if column in compiled.insert_prefetch else column.onupdate
            if default is None or not getattr(default, "is_scalar", False):
                raise ValueError(
                    f"column {column.key!r} has a computed default; pass it as a parameter"
                )
            defaults[column.key] = default.arg  # type: ignore[attr-defined]
        names: list[str] = []
        results: list[_Processor] = []
        exported = getattr(self.statement, "exported_columns", None)
        if exported is not None and (
            getattr(self.statement, "is_select", False) or _returns(self.statement)
        ):
            for column in exported:
                names.append(column.key)
                results.append(_result_processor(column.type, dialect))
        row_type = namedtuple("Row", names, rename=True)  # type: ignore[misc]  # noqa: PYI024
        positional = compiled.positiontup
        order = tuple(positional) if dialect.paramstyle == "qmark" and positional else None
        processors = dict(binds)
        return _Compiled(
            sql=compiled.string,
            order=order,
            defaults=defaults,
            binds=tuple(binds),
            results=tuple(results),
            row=row_type._make,
            plan=None
            if order is None
            else tuple((name, defaults.get(name, _ABSENT), processors.get(name)) for name in order),
        )


def _is_sqlite_datetime(type_: Any, dialect: Dialect) -> bool:
    impl = getattr(type_, "impl_instance", type_)
    return dialect.name == "sqlite" and isinstance(impl, DateTime)


def _sqlite_datetime_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not UTC:
        offset = value.utcoffset()
        if offset is None:
            raise ValueError("naive datetime given to a UTC column")
        if offset:
            value -= offset
    # The text SQLAlchemy's SQLite dialect writes: the UTC wall clock, without the offset
    # that isoformat appends after the 26 characters of date and time.
    return value.isoformat(" ", "microseconds")[:26]


def _sqlite_datetime_value(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


# SQLAlchemy's SQLite DATETIME processors format and parse with Python string operations and a
# regular expression. datetime's own ISO methods read and write the same text in C, and those
# processors were the largest share of the statements' own cost in the profile.
def _bind_processor(type_: Any, dialect: Dialect) -> _Processor:
    if _is_sqlite_datetime(type_, dialect):
        return _sqlite_datetime_text
    processor: _Processor = type_.dialect_impl(dialect).bind_processor(dialect)
    return processor


def _result_processor(type_: Any, dialect: Dialect) -> _Processor:
    if _is_sqlite_datetime(type_, dialect):
        return _sqlite_datetime_value
    processor: _Processor = type_.dialect_impl(dialect).result_processor(dialect, None)
    return processor


def _returns(statement: Executable) -> bool:
    return bool(getattr(statement, "_returning", ()))


class Statements:
    """Runs `Prepared` statements inside one transaction on one driver connection.

    Each method returns processed rows: named tuples whose fields are the result columns.
    """

    def __init__(
        self,
        dialect: Dialect,
        cursor_factory: _CursorFactory,
        after_commit: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self.dialect = dialect
        self._cursor = cursor_factory
        self._after_commit = after_commit

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` the moment this write transaction commits, before the code that
        awaits the commit resumes; never after a rollback.

        The callback must not block or raise: it runs inside the commit, once for every block
        the commit holds. What it starts (a wake-up, a stream write) is then one turn of the
        event loop sooner than code after the `async with` could start it.
        """
        if self._after_commit is None:
            raise RuntimeError("after_commit needs a write transaction")
        self._after_commit(callback)

    def _parameters(self, compiled: _Compiled, values: Mapping[str, Any] | None) -> Any:
        plan = compiled.plan
        if plan is not None:
            # Positional markers: one pass in marker order, no merged dictionary. A login runs
            # about thirty statements, and the merge took about 5 % of its server CPU.
            supplied = values or {}
            out: list[Any] = []
            for name, default, processor in plan:
                value = supplied.get(name, default)
                if value is _ABSENT:
                    out.append(None)
                elif processor is None:
                    out.append(value)
                else:
                    out.append(processor(value))
            return out
        parameters = {**compiled.defaults, **values} if values else dict(compiled.defaults)
        for name, processor in compiled.binds:
            if name in parameters:
                parameters[name] = processor(parameters[name])
        if compiled.order is not None:
            return [parameters.get(name) for name in compiled.order]
        return parameters

    async def _run(
        self, prepared: Prepared, values: Mapping[str, Any] | None, fetch: bool
    ) -> tuple[int, list[Any]]:
        compiled = prepared.compiled(self.dialect)
        rowcount, raw = await self._cursor(compiled.sql, self._parameters(compiled, values), fetch)
        if not raw:
            return rowcount, []
        processors = compiled.results
        make = compiled.row
        if not any(processors):
            return rowcount, [make(row) for row in raw]
        return rowcount, [
            make([p(v) if p is not None else v for p, v in zip(processors, row, strict=True)])
            for row in raw
        ]

    async def run(self, prepared: Prepared, values: Mapping[str, Any] | None = None) -> int:
        """Execute a statement; return the number of rows it changed."""
        rowcount, _ = await self._run(prepared, values, fetch=False)
        return rowcount

    async def all(self, prepared: Prepared, values: Mapping[str, Any] | None = None) -> list[Any]:
        _, rows = await self._run(prepared, values, fetch=True)
        return rows

    async def first(self, prepared: Prepared, values: Mapping[str, Any] | None = None) -> Any:
        rows = await self.all(prepared, values)
        return rows[0] if rows else None

    async def scalar(self, prepared: Prepared, values: Mapping[str, Any] | None = None) -> Any:
        row = await self.first(prepared, values)
        return row[0] if row is not None else None

    async def scalars(
        self, prepared: Prepared, values: Mapping[str, Any] | None = None
    ) -> list[Any]:
        return [row[0] for row in await self.all(prepared, values)]


def run_after_commit(callbacks: Sequence[Callable[[], None]]) -> None:
    """Run the callbacks of `Statements.after_commit` of a transaction that has committed."""
    for callback in callbacks:
        try:
            callback()
        except Exception:
            # The commit is kept and its waiters still resume. The row remains the truth, so a
            # lost wake-up or stream write only delays the waiters until their own re-check.
            log.exception("a callback after a commit failed")


# (sql, parameters, fetch) -> (rowcount, rows)
_CursorFactory = Callable[[str, Any, bool], Any]


async def run_in(
    target: AsyncSession | Statements, prepared: Prepared, values: Mapping[str, Any] | None = None
) -> int:
    """Execute in a session or in `Statements`, for code that both kinds of caller share."""
    if isinstance(target, Statements):
        return await target.run(prepared, values)
    result = await target.execute(prepared.statement, dict(values or {}))
    return int(getattr(result, "rowcount", 0) or 0)


async def scalar_in(
    target: AsyncSession | Statements, prepared: Prepared, values: Mapping[str, Any] | None = None
) -> Any:
    if isinstance(target, Statements):
        return await target.scalar(prepared, values)
    return (await target.execute(prepared.statement, dict(values or {}))).scalar()


def sqlite_statements(
    dialect: Dialect,
    connection: sqlite3.Connection,
    after_commit: Callable[[Callable[[], None]], None] | None = None,
) -> Statements:
    """Statements on a sqlite3 connection; each call completes before it returns."""

    async def execute(sql: str, parameters: Any, fetch: bool) -> tuple[int, list[Any]]:
        try:
            cursor = connection.execute(sql, parameters)
            try:
                return cursor.rowcount, cursor.fetchall() if fetch else []
            finally:
                cursor.close()
        except sqlite3.Error as exc:
            # The same exception classes a session raises, so callers catch one kind.
            raise DBAPIError.instance(sql, None, exc, sqlite3.Error) from exc

    return Statements(dialect, execute, after_commit)


def psycopg_statements(
    dialect: Dialect,
    cursor: Any,
    after_commit: Callable[[Callable[[], None]], None] | None = None,
) -> Statements:
    """Statements on a psycopg `AsyncCursor`, which the transaction's statements share.

    One cursor for the transaction spares each statement building its own, and the SQL goes
    to psycopg as bytes encoded once, so psycopg neither encodes it again nor hashes a new
    copy for its query cache on each statement.
    """

    import psycopg
    from psycopg.pq import ExecStatus

    async def execute(sql: str, parameters: Any, fetch: bool) -> tuple[int, list[Any]]:
        encoded = _ENCODED_SQL.get(sql)
        if encoded is None:
            encoded = _ENCODED_SQL[sql] = sql.encode()
        try:
            await cursor.execute(encoded, parameters, prepare=True)
            # The result's status, not `cursor.description`, which builds a column object
            # for every column of the result.
            result = cursor.pgresult
            if fetch and result is not None and result.status == ExecStatus.TUPLES_OK:
                return cursor.rowcount, await cursor.fetchall()
            return cursor.rowcount, []
        except psycopg.Error as exc:
            raise DBAPIError.instance(sql, None, exc, psycopg.Error) from exc

    return Statements(dialect, execute, after_commit)


# SQL text of the `Prepared` statements as bytes, for psycopg. One entry per statement, so the
# dictionary stays as small as the set of statements.
_ENCODED_SQL: dict[str, bytes] = {}
