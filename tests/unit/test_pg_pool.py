"""The login path's PostgreSQL connections, against the real server of the PostgreSQL pass."""

from __future__ import annotations

import asyncio
import os
import resource
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.exc import OperationalError

from tapgate.store import pg_pool
from tapgate.store.pg_pool import ConnectionPool
from tests.support import free_port


@pytest.fixture
def pg_url(db_url: str) -> str:
    if not db_url.startswith("postgresql"):
        pytest.skip("needs PostgreSQL (TAPGATE_TEST_DATABASE_URL)")
    return db_url


async def _backend_pid(connection: psycopg.AsyncConnection) -> int:
    cursor = await connection.execute("SELECT pg_backend_pid()")
    row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


def test_idle_connection_reused(pg_url: str) -> None:
    async def scenario() -> None:
        pool = ConnectionPool(pg_url, 2)
        first = await pool.acquire()
        assert first.autocommit
        pid = await _backend_pid(first)
        await pool.release(first)
        second = await pool.acquire()
        assert second is first
        assert await _backend_pid(second) == pid
        await pool.release(second)
        await pool.close()
        assert first.closed
        with pytest.raises(OperationalError, match="the node is stopping"):
            await pool.acquire()

    asyncio.run(scenario())


def test_server_closed_connection_replaced(pg_url: str) -> None:
    async def scenario() -> None:
        pool = ConnectionPool(pg_url, 2)
        stale = await pool.acquire()
        pid = await _backend_pid(stale)
        await pool.release(stale)
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        # The end of file reaches the idle socket a moment after the backend exits.
        for _ in range(100):
            if not pg_pool._usable(stale):
                break
            await asyncio.sleep(0.01)
        fresh = await pool.acquire()
        assert fresh is not stale
        assert stale.closed
        assert await _backend_pid(fresh) != pid
        await pool.release(fresh)
        await pool.close()

    asyncio.run(scenario())


@pytest.fixture
def many_descriptors() -> Iterator[None]:
    """Hold open descriptors until new ones are numbered above select's limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        if hard != resource.RLIM_INFINITY and hard < 1200:
            pytest.skip(f"the descriptor limit {hard} is too low")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    descriptors = [os.open(os.devnull, os.O_RDONLY) for _ in range(1030)]
    try:
        yield
    finally:
        for fd in descriptors:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_descriptor_above_1024_kept(pg_url: str, many_descriptors: None) -> None:
    async def scenario() -> None:
        pool = ConnectionPool(pg_url, 2)
        first = await pool.acquire()
        assert first.fileno() > 1024
        await pool.release(first)
        second = await pool.acquire()
        assert second is first
        await pool.release(second)
        await pool.close()

    asyncio.run(scenario())


def test_open_transaction_closed_on_release(pg_url: str) -> None:
    async def scenario() -> None:
        pool = ConnectionPool(pg_url, 2)
        first = await pool.acquire()
        await first.execute("BEGIN")
        await pool.release(first)
        assert first.closed
        second = await pool.acquire()
        assert second is not first
        await pool.release(second)
        await pool.close()

    asyncio.run(scenario())


def test_full_pool_times_out(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg_pool, "_CHECKOUT_TIMEOUT_SECONDS", 0.2)

    async def scenario() -> None:
        pool = ConnectionPool(pg_url, 1)
        busy = await pool.acquire()
        with pytest.raises(OperationalError, match="waiting for a free database connection"):
            await pool.acquire()
        await pool.release(busy)
        again = await pool.acquire()
        assert again is busy
        await pool.release(again)
        await pool.close()

    asyncio.run(scenario())


def test_unreachable_server_frees_slot(pg_url: str) -> None:
    async def scenario() -> None:
        pool = ConnectionPool(f"postgresql://postgres@127.0.0.1:{free_port()}/test", 1)
        for _ in range(2):
            # A slot kept by the first failure would make the second wait for the timeout.
            with pytest.raises(OperationalError):
                await asyncio.wait_for(pool.acquire(), 5)
        await pool.close()

    asyncio.run(scenario())


def test_slow_statement_cancelled(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg_pool, "_STATEMENT_TIMEOUT_MS", 200)

    async def scenario() -> None:
        pool = ConnectionPool(pg_url, 1)
        connection = await pool.acquire()
        with pytest.raises(psycopg.errors.QueryCanceled):
            await connection.execute("SELECT pg_sleep(2)")
        await pool.release(connection)
        await pool.close()

    asyncio.run(scenario())
