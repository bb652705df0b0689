"""SQLite write transactions that share one commit (group commit).

A push login writes several short transactions. Each commit appends every page the transaction
changed to the WAL. Logins running at the same time change the same pages, the ends of the
audit table and of its indexes, so one commit each writes those pages again and again. On a
copy of the benchmark's database, with the statements of four logins, one commit per block
cost 109 µs of CPU a login. One commit for the blocks of four logins cost 59 µs a login
(SQLite 3.40, the machine in docs/benchmarks.md).

`GroupCommit.block()` runs each caller's statements inside a SAVEPOINT of one open transaction
and commits that transaction at the next turn of the event loop, so every block started in the
meantime shares the commit. A block returns only after the commit that contains it, so a caller
gets the same durability as from its own transaction. A block that raises rolls back to its
savepoint and undoes only its own statements. A failed COMMIT fails every block in it.
SQLite has no such feature of its own and Python's sqlite3 module has none either, hence this.

The shared COMMIT runs on the event loop, holding the gate. It ran on a thread of its own for a
while, so that the loop could serve requests meanwhile. But handing the COMMIT to the thread
and its end back to the loop cost more than the COMMIT itself (about 0.1 ms at the median for
a batch). The thread waited for the GIL and the loop's next turn, and every block queued
behind the gate meanwhile. At 200 concurrent logins with a 0.18 s think time, moving the
COMMIT back onto the loop took the server's time from a login request to the challenge sent
from 21–26 ms to 9–11 ms at the median, and from an answer to its reply from 13–16 ms to
7–9 ms. Paired runs put the cost at 2 to 4 % more server CPU a login. WAL checkpoints, which
made a COMMIT take milliseconds, run apart, in `store.checkpoint`.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

from tapgate.store.checkpoint import BACKSTOP_PAGES, Checkpointer
from tapgate.store.gate import Gate
from tapgate.store.prepared import Statements, run_after_commit, sqlite_statements

log = logging.getLogger(__name__)

_SAVEPOINT = "SAVEPOINT write_rows"
_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
_FIRST_RETRY_SECONDS = 0.001
_LAST_RETRY_SECONDS = 0.05
_RELEASE = "RELEASE write_rows"
_ROLLBACK_TO = "ROLLBACK TO write_rows"


@dataclass
class _Batch:
    """One open transaction and the blocks waiting for its commit."""

    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    # `Statements.after_commit` callbacks of the blocks that did not fail, in block order.
    after_commit: list[Callable[[], None]] = field(default_factory=list)


class GroupCommit:
    """The SQLite connection of `Database.write_rows()` and its shared commits.

    `gate` is the lock that orders every writer of this process. Its holder is either a block
    of the open batch or a session writer, which calls `flush()` first.
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        dialect: Dialect,
        gate: Gate,
        busy_timeout: Callable[[], float],
    ) -> None:
        self._connect = connect
        self._busy_timeout = busy_timeout
        self._dialect = dialect
        self.gate = gate
        self._connection: sqlite3.Connection | None = None
        self.statements: Statements | None = None
        self._batch: _Batch | None = None
        self.checkpointer = Checkpointer(connect)

    @property
    def connection(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = self._connect()
            try:
                connection.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
                # BEGIN IMMEDIATE waits for another process's write lock in `_begin`, on the
                # event loop, instead of in SQLite's busy handler, which would stop the loop.
                connection.execute("PRAGMA busy_timeout=0")
            except sqlite3.Error:
                connection.close()
                raise
            self._connection = connection
            self.statements = sqlite_statements(self._dialect, connection, self._after_commit)
        return self._connection

    def _after_commit(self, callback: Callable[[], None]) -> None:
        if self._batch is None:
            raise RuntimeError("after_commit needs a write block")
        self._batch.after_commit.append(callback)

    def block(self, pending: PendingCommits | None = None) -> Block:
        """Return one caller's transaction: a savepoint in the open batch, exited once the batch
        has committed, or at once with the commit added to `pending`."""
        return Block(self, pending)

    def flush(self) -> None:
        """Commit the open batch now; the caller holds the gate or runs outside every block."""
        batch = self._batch
        if batch is None:
            return
        self._batch = None
        try:
            self.connection.commit()
        except sqlite3.Error as exc:
            self._settle(batch, exc)
            return
        self._settle(batch, None)

    async def close(self) -> None:
        """Commit the open batch, and close the connections."""
        self.flush()
        await self.checkpointer.close()
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def begin_block(self) -> tuple[_Batch, Statements]:
        """Open the caller's savepoint in the open batch, or in a new one.

        The caller must have acquired the gate."""
        connection = self.connection
        batch = self._batch if self._batch is not None else await self._begin(connection)
        self._run(connection, batch, _SAVEPOINT)
        assert self.statements is not None
        return batch, self.statements

    def end_block(self, batch: _Batch, failed: bool) -> asyncio.Future[None] | None:
        """Close the caller's savepoint and return the future of its commit, or None after a
        rollback. The caller must have acquired the gate."""
        connection = self.connection
        if failed:
            self._run(connection, batch, _ROLLBACK_TO)
            self._run(connection, batch, _RELEASE)
            return None
        self._run(connection, batch, _RELEASE)
        waiter = asyncio.get_running_loop().create_future()
        batch.waiters.append(waiter)
        return waiter

    async def _begin(self, connection: sqlite3.Connection) -> _Batch:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._busy_timeout()
        delay = _FIRST_RETRY_SECONDS
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.Error as exc:
                busy = getattr(exc, "sqlite_errorcode", None) in _BUSY_CODES
                if not busy or loop.time() >= deadline:
                    if busy:
                        log.warning(
                            "timed out waiting for the SQLite write lock seconds=%.1f error=%s",
                            self._busy_timeout(),
                            exc,
                        )
                    raise DBAPIError.instance("BEGIN IMMEDIATE", None, exc, sqlite3.Error) from exc
            # Another process, such as a CLI command, holds SQLite's write lock.
            await asyncio.sleep(delay)
            delay = min(delay * 2, _LAST_RETRY_SECONDS)
        batch = self._batch = _Batch()
        # Every batch is committed, even one whose only block raised, so the write lock is
        # never kept past this turn of the event loop by an idle transaction.
        asyncio.get_running_loop().call_soon(self._commit_when_free, batch)
        return batch

    def _run(self, connection: sqlite3.Connection, batch: _Batch, statement: str) -> None:
        """Run a savepoint statement; if it fails, the batch is rolled back and fails whole."""
        try:
            connection.execute(statement)
        except sqlite3.Error as exc:
            # SQLite rolls the whole transaction back after some errors (a full disk, an I/O
            # error). The savepoint is then gone, so every block of the batch is lost.
            if self._batch is batch:
                self._batch = None
                if connection.in_transaction:
                    connection.rollback()
                log.warning(
                    "group commit abandoned blocks=%d statement=%s error=%s",
                    len(batch.waiters),
                    statement,
                    exc,
                )
                _fail(batch, exc, statement)
            raise DBAPIError.instance(statement, None, exc, sqlite3.Error) from exc

    def _commit_when_free(self, batch: _Batch) -> None:
        if self._batch is not batch:
            return  # a session writer has flushed it already
        # The commit queues for the gate behind the blocks already waiting, so they join this
        # batch first. Blocks that come later start the next batch.
        self.gate.acquire_then(lambda: self._commit_holding_gate(batch))

    def _commit_holding_gate(self, batch: _Batch) -> None:
        try:
            if self._batch is batch:  # else a session writer has flushed it already
                self.flush()
        finally:
            self.gate.release()

    def _settle(self, batch: _Batch, error: BaseException | None) -> None:
        if error is None:
            run_after_commit(batch.after_commit)
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self.checkpointer.after_commit()
            return
        assert self._connection is not None
        try:
            self._connection.rollback()
        except sqlite3.Error as exc:
            # The waiters still receive the commit's own error below.
            log.warning("rollback after a failed group commit failed error=%s", exc)
        log.warning("group commit failed blocks=%d error=%s", len(batch.waiters), error)
        if isinstance(error, sqlite3.Error):
            _fail(batch, error, "COMMIT")
        else:
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_exception(error)


class PendingCommits:
    """Commits of blocks whose callers wait for them later, all at once.

    A login's first block only records that the login started. Waiting for its commit before
    going on cost a full commit cycle, three turns of the event loop. Given a `PendingCommits`,
    the block returns at once, and the login's next block usually joins the same commit. Batches commit
    in order, so once a later block has committed the earlier ones have too, unless their
    commit failed; `wait()` raises that failure.
    """

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    def add(self, waiter: asyncio.Future[None]) -> None:
        # A caller that fails before `wait()` never reads the outcome, so reading it here keeps
        # asyncio from reporting a never-retrieved exception. The group commit logs failures.
        waiter.add_done_callback(_read_outcome)
        self._waiters.append(waiter)

    async def wait(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            await waiter


def _read_outcome(waiter: asyncio.Future[None]) -> None:
    if not waiter.cancelled():
        waiter.exception()


class Block:
    """One caller's statements in a shared commit, as an async context manager.

    A class rather than an `asynccontextmanager` generator for the same reason as
    `sqlite_rows.ReadTransaction`: a login runs four of these. With `pending`, the block
    returns without waiting for its commit and adds the commit to `pending` instead.
    """

    __slots__ = ("_group", "_batch", "_pending", "_callbacks_before")

    def __init__(self, group: GroupCommit, pending: PendingCommits | None = None) -> None:
        self._group = group
        self._pending = pending

    async def __aenter__(self) -> Statements:
        gate = self._group.gate
        await gate.acquire()
        try:
            self._batch, statements = await self._group.begin_block()
        except BaseException:
            gate.release()
            raise
        self._callbacks_before = len(self._batch.after_commit)
        return statements

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        group = self._group
        if exc_type is not None:
            # The savepoint's rows are rolled back, so what the block meant to announce is too.
            del self._batch.after_commit[self._callbacks_before :]
        try:
            waiter = group.end_block(self._batch, failed=exc_type is not None)
        finally:
            group.gate.release()
        if waiter is None:
            return
        if self._pending is not None:
            self._pending.add(waiter)
            return
        await waiter


def _fail(batch: _Batch, exc: sqlite3.Error, statement: str) -> None:
    for waiter in batch.waiters:
        if not waiter.done():
            waiter.set_exception(DBAPIError.instance(statement, None, exc, sqlite3.Error))
