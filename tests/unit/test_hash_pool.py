"""Password checks and hashes in child processes: replies, order, a crashed child and shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator

import pytest
from argon2 import PasswordHasher

from tapgate.directory import hash_pool, passwords
from tapgate.directory.hash_pool import HashPool
from tapgate.directory.hash_worker import answer
from tapgate.errors import DirectoryUnavailable
from tapgate.secret import Secret

PASSWORD = "Şifre-İğ ış\n2026"
# The cheap profile that the tests use everywhere: 1 iteration, 1 MiB, 1 lane.
_CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
async def pool() -> AsyncIterator[HashPool]:
    started = HashPool(2, 1, 1024, 1)
    await started.start()
    yield started
    await started.close()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_pool_checks_passwords(pool: HashPool) -> None:
    stored = _CHEAP.hash(PASSWORD)

    assert await pool.verify(stored, Secret(PASSWORD)) is True
    assert await pool.verify(stored, Secret("yanlış")) is False
    assert await pool.verify(None, Secret(PASSWORD)) is False
    assert await pool.verify("not-an-argon2-hash", Secret(PASSWORD)) is False
    # A lone surrogate, which a JSON escape can carry, has no UTF-8 form.
    assert await pool.verify(stored, Secret("\ud800")) is False


async def test_pool_hash_verifies_in_parent(pool: HashPool) -> None:
    stored = await pool.hash(Secret(PASSWORD))

    assert stored.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert _CHEAP.verify(stored, PASSWORD)


async def test_pool_hash_rejects_surrogate(pool: HashPool) -> None:
    with pytest.raises(ValueError, match="could not be hashed"):
        await pool.hash(Secret("\ud800"))
    assert await pool.verify(_CHEAP.hash("ğ"), Secret("ğ")) is True


async def test_pool_replies_in_order(pool: HashPool) -> None:
    stored = _CHEAP.hash(PASSWORD)
    expected = [index % 3 != 0 for index in range(300)]

    results = await asyncio.gather(
        *(pool.verify(stored, Secret(PASSWORD if right else "yanlış")) for right in expected)
    )

    assert results == expected


async def test_pool_cancelled_request_keeps_order(pool: HashPool) -> None:
    stored = _CHEAP.hash(PASSWORD)
    cancelled = [asyncio.create_task(pool.verify(stored, Secret(PASSWORD))) for _ in range(6)]
    after = [asyncio.create_task(pool.verify(stored, Secret("yanlış"))) for _ in range(6)]
    await asyncio.sleep(0)

    for task in cancelled:
        task.cancel()

    assert await asyncio.gather(*after) == [False] * 6
    assert await pool.verify(stored, Secret(PASSWORD)) is True


async def test_pool_replaces_killed_worker(pool: HashPool) -> None:
    stored = _CHEAP.hash(PASSWORD)
    pids = {worker.pid for worker in pool._workers}
    victim = pool._workers[0]
    assert victim.pid is not None
    # Queued behind many checks, so some are still waiting when the child dies.
    waiting = [victim.send(["verify", stored, PASSWORD]) for _ in range(200)]

    os.kill(victim.pid, signal.SIGKILL)
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)

    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert failures
    assert all(isinstance(failure, DirectoryUnavailable) for failure in failures)
    assert "exited" in str(failures[0])
    assert await pool.verify(stored, Secret(PASSWORD)) is True
    results = await asyncio.gather(*(pool.verify(stored, Secret(PASSWORD)) for _ in range(20)))
    assert all(results)
    new_pids = {worker.pid for worker in pool._workers}
    assert len(new_pids) == 2
    assert new_pids != pids
    assert victim.pid not in new_pids


async def test_pool_close_ends_children() -> None:
    pool = HashPool(2, 1, 1024, 1)
    await pool.start()
    pids = [worker.pid for worker in pool._workers]
    assert all(pid is not None and _alive(pid) for pid in pids)

    await pool.close()

    assert not any(pid is not None and _alive(pid) for pid in pids)
    with pytest.raises(DirectoryUnavailable, match="stopped"):
        await pool.verify(None, Secret(PASSWORD))


async def test_worker_ignores_interrupt(pool: HashPool) -> None:
    """A Ctrl+C in a terminal reaches the whole process group; the server decides when to end."""
    worker = pool._workers[0]
    assert worker.pid is not None

    os.kill(worker.pid, signal.SIGINT)
    os.kill(worker.pid, signal.SIGTERM)

    assert await pool.verify(_CHEAP.hash("ş"), Secret("ş")) is True
    assert worker.alive


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not JSON"),
        ('{"verify": 1}', "non-empty JSON array"),
        ("[]", "non-empty JSON array"),
        ('["verify", null]', "'verify'"),
        ('["verify", 5, "Şifre-gizli"]', "'verify'"),
        ('["hash", 7]', "'hash'"),
        ('["drop", "Şifre-gizli"]', "'drop'"),
    ],
)
def test_worker_rejects_malformed_request(line: str, message: str) -> None:
    reply = answer(_CHEAP, _CHEAP.hash("x"), line)

    assert reply[0] == "error"
    assert message in reply[1]
    assert "gizli" not in json.dumps(reply)


async def test_pool_kills_stuck_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hash_pool, "_REPLY_SECONDS", 0.5)
    pool = HashPool(1, 1, 1024, 1)
    await pool.start()
    stored = _CHEAP.hash(PASSWORD)
    stuck = pool._workers[0]
    assert stuck.pid is not None

    os.kill(stuck.pid, signal.SIGSTOP)
    try:
        with pytest.raises(DirectoryUnavailable, match="timed out"):
            await pool.verify(stored, Secret(PASSWORD))
        await asyncio.wait_for(stuck.exited, 5)

        assert await pool.verify(stored, Secret(PASSWORD)) is True
        assert stuck not in pool._workers
    finally:
        await pool.close()


async def test_pool_start_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hash_pool.sys, "executable", "/nonexistent/python3")
    pool = HashPool(2, 1, 1024, 1)

    with pytest.raises(DirectoryUnavailable, match="did not start"):
        await pool.start()
    await pool.close()


async def test_pool_partial_start_ends_children(monkeypatch: pytest.MonkeyPatch) -> None:
    """When one of two children cannot start, start fails and close still ends the other."""
    pool = HashPool(2, 1, 1024, 1)
    spawn = pool._spawn
    calls = 0

    async def second_fails() -> object:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise DirectoryUnavailable("the password hashing worker did not start: test")
        return await spawn()

    monkeypatch.setattr(pool, "_spawn", second_fails)

    with pytest.raises(DirectoryUnavailable, match="did not start"):
        await pool.start()
    assert len(pool._workers) == 1
    started_pid = pool._workers[0].pid
    assert started_pid is not None
    assert _alive(started_pid)

    await pool.close()
    for _ in range(100):
        if not _alive(started_pid):
            break
        await asyncio.sleep(0.05)
    assert not _alive(started_pid)


async def test_failed_pool_keeps_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hash_pool.sys, "executable", "/nonexistent/python3")
    monkeypatch.setattr(passwords, "_pool", None)

    assert await passwords.start_hash_pool() is None
    assert passwords._pool is None
    assert await passwords.verify_password(_CHEAP.hash("ğ"), Secret("ğ")) is True


async def test_empty_stored_hash_fails(pool: HashPool) -> None:
    """An empty stored hash is invalid; it must not verify against the timing hash."""
    assert await pool.verify("", Secret("tapgate-timing-equalizer")) is False
    assert await passwords.verify_password("", Secret("tapgate-timing-equalizer")) is False
