"""The PostgreSQL connections of the login path, in autocommit mode, pooled without round trips.

A login on PostgreSQL runs about ten short transactions. Through SQLAlchemy's asyncio engine
each one cost a greenlet, a pool checkout and a pre-ping round trip. psycopg then sent BEGIN as
a round trip of its own, because a connection outside autocommit mode starts a transaction
before its first statement, and COMMIT as another. A read of one row took four round trips.

Connections here are in autocommit mode: a read is one round trip, and a write sends BEGIN and
COMMIT itself. Under PostgreSQL's default READ COMMITTED isolation every statement of a read
transaction takes its own snapshot anyway, so reading outside a transaction returns the same rows.

psycopg_pool does the same job, but its checkout takes an asyncio lock and logs at each call,
and after a connection fails its check the caller sleeps a back-off of about a second before
the next one. The check here costs no round trip: an idle connection to a server that closed it
(restart, `pg_terminate_backend`, an idle timeout) has its socket readable, so a readable idle
socket means the connection is dropped and another is taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
from collections import deque
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

# Used unless the database URL sets its own connect_timeout.
_CONNECT_TIMEOUT_SECONDS = 10
# SQLAlchemy's default pool timeout, which the login path used before.
_CHECKOUT_TIMEOUT_SECONDS = 30.0
# A login's statements take milliseconds. One that waits this long for a lock or a stalled
# server is cancelled by the server, and its request gets a 503 instead of hanging.
# NOTE: the client sets no time limit of its own, so on a network that silently drops packets a
# statement waits until TCP gives up, and a SIGTERM then ends its request with a 500.
_STATEMENT_TIMEOUT_MS = 10_000


class ConnectionPool:
    """A pool of at most `size` connections to `conninfo`, opened on demand, kept while idle."""

    def __init__(self, conninfo: str, size: int) -> None:
        self._conninfo = conninfo
        self._connect_options: dict[str, Any] = {"autocommit": True}
        settings = conninfo_to_dict(conninfo)
        if "connect_timeout" not in settings:
            self._connect_options["connect_timeout"] = _CONNECT_TIMEOUT_SECONDS
        if "options" not in settings:
            self._connect_options["options"] = f"-c statement_timeout={_STATEMENT_TIMEOUT_MS}"
        self._size = size
        self._idle: deque[psycopg.AsyncConnection[Any]] = deque()
        self._slots: asyncio.Semaphore | None = None
        self._closed = False

    async def acquire(self) -> psycopg.AsyncConnection[Any]:
        """Return an idle connection in autocommit mode, which the caller must `release`.

        Raises SQLAlchemy's OperationalError when no connection can be opened, or when none is
        free within the checkout timeout, like the statements' own errors.
        """
        if self._closed:
            # The node is stopping: the request gets the 503 of a database that is away.
            error = psycopg.OperationalError("the node is stopping, so its database pool is closed")
            raise DBAPIError.instance("connect", None, error, psycopg.Error)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._size)
        try:
            if self._slots.locked():
                async with asyncio.timeout(_CHECKOUT_TIMEOUT_SECONDS):
                    await self._slots.acquire()
            else:
                # A free slot is taken at once, so the timeout's timer is not needed.
                await self._slots.acquire()
        except TimeoutError:
            error = psycopg.OperationalError(
                f"timed out after {_CHECKOUT_TIMEOUT_SECONDS:.0f} s waiting for a free database "
                f"connection: all {self._size} are in use; check the database's speed and load"
            )
            log.warning("database connection checkout timed out size=%d", self._size)
            raise DBAPIError.instance("connect", None, error, psycopg.Error) from None
        try:
            while self._idle:
                connection = self._idle.pop()
                if _usable(connection):
                    return connection
                log.info(
                    "dropping a database connection the server closed backend_pid=%s",
                    connection.info.backend_pid,
                )
                await _close_quietly(connection)
            try:
                return await psycopg.AsyncConnection.connect(
                    self._conninfo, **self._connect_options
                )
            except psycopg.Error as exc:
                raise DBAPIError.instance("connect", None, exc, psycopg.Error) from exc
        except BaseException:
            self._slots.release()
            raise

    async def release(self, connection: psycopg.AsyncConnection[Any]) -> None:
        """Return a connection to the pool, or close it if it is broken, mid-statement or in a
        transaction, so that the next caller never inherits another caller's state."""
        assert self._slots is not None
        try:
            if (
                self._closed
                or connection.closed
                or connection.broken
                or connection.info.transaction_status != TransactionStatus.IDLE
            ):
                await _close_quietly(connection)
            else:
                self._idle.append(connection)
        finally:
            self._slots.release()

    async def close(self) -> None:
        """Close the idle connections; those in use are closed when they are released."""
        self._closed = True
        while self._idle:
            await _close_quietly(self._idle.pop())


def _usable(connection: psycopg.AsyncConnection[Any]) -> bool:
    if connection.closed or connection.broken:
        return False
    if connection.info.transaction_status != TransactionStatus.IDLE:
        return False
    # poll, because select fails for descriptors above 1024, which a node holding a thousand
    # device streams has.
    poller = select.poll()
    try:
        poller.register(connection.fileno(), select.POLLIN)
    except (OSError, ValueError):
        return False
    # An idle connection that does not LISTEN gets data only when the server closes it, or,
    # rarely, when the server reports a changed setting, which then costs one new connection.
    return not poller.poll(0)


async def _close_quietly(connection: psycopg.AsyncConnection[Any]) -> None:
    with contextlib.suppress(Exception):
        await connection.close()
