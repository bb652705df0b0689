"""Argon2id password hashing off the event loop, with a cap on hashes running at once.

One hash takes about 0.4 s with argon2-cffi's defaults, so hashing on the event loop would stall
every other request; too many in parallel would exhaust memory (64 MiB each). `tapgate serve`
hashes in child processes (`HashPool`); everything else, such as the CLI, on threads.
"""

from __future__ import annotations

import asyncio
import logging
import os

from argon2 import PasswordHasher

from tapgate.directory.hash_pool import HashPool
from tapgate.directory.hash_worker import check_password
from tapgate.errors import DirectoryUnavailable
from tapgate.secret import Secret

log = logging.getLogger("tapgate.passwords")


def _make_hasher() -> PasswordHasher:
    # TAPGATE_PASSWORD_HASH=fast makes hashing cheap; only tests and benchmarks set it.
    if os.environ.get("TAPGATE_PASSWORD_HASH") == "fast":
        return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return PasswordHasher()


def hash_slots(cores: int, memory_cost_kib: int) -> int:
    """Return how many hashes may run at once.

    As many as cores with the default profile's 64 MiB a hash, so memory stays at 64 MiB a
    core. A cheap hash (TAPGATE_PASSWORD_HASH=fast, 1 MiB) takes about 0.4 ms of CPU, and its
    thread then waits longer for the GIL, held by the event loop, than it hashes. Up to four a
    core keep more hashes going: in one pair of benchmark runs at 10 and 200 concurrent logins,
    689 and 711 logins a second against 673 and 638 with two.
    """
    cores = max(2, cores)
    return max(cores, min(4 * cores, cores * 65536 // max(1, memory_cost_kib)))


_hasher = _make_hasher()
_MAX_CONCURRENT_HASHES = hash_slots(os.cpu_count() or 2, _hasher.memory_cost)
_semaphore: asyncio.Semaphore | None = None
# Set by `start_hash_pool` while `tapgate serve` runs.
_pool: HashPool | None = None
# Set by `stop_password_checks` when the server shuts down.
_stopping = False
# Verified against when a user is unknown, so that unknown users cost the same time; made on
# first use because one hash costs as much as a login.
_dummy_hash: str | None = None


def _timing_hash() -> str:
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash("tapgate-timing-equalizer")
    return _dummy_hash


def _gate() -> asyncio.Semaphore:
    global _semaphore
    if _semaphore is None:
        _semaphore = asyncio.Semaphore(_MAX_CONCURRENT_HASHES)
    return _semaphore


async def start_hash_pool() -> HashPool | None:
    """Start one hashing child process a core and use them from now on.

    Returns None, and hashing stays on threads, when a child cannot start.
    """
    global _pool
    pool = HashPool(
        os.cpu_count() or 1, _hasher.time_cost, _hasher.memory_cost, _hasher.parallelism
    )
    try:
        await pool.start()
    except DirectoryUnavailable as exc:
        await pool.close()
        log.warning("password hashing stays on threads error=%s", exc)
        return None
    _pool = pool
    return pool


async def stop_hash_pool() -> None:
    """End the child processes of `start_hash_pool`; later hashes run on threads again."""
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        await pool.close()


async def hash_password(password: Secret) -> str:
    async with _gate():
        if _pool is not None:
            return await _pool.hash(password)
        return await asyncio.to_thread(_hasher.hash, password.reveal())


def _verify(stored: str | None, password: str) -> bool:
    # The timing hash is made only when it is needed: one costs as much as a login.
    timing_hash = _timing_hash() if stored is None else ""
    return check_password(_hasher, timing_hash, stored, password)


async def verify_password(stored: str | None, password: Secret) -> bool:
    """Check `password` against `stored`; with no stored hash, spend the same time and fail.

    Raises `DirectoryUnavailable` once `stop_password_checks` has run, without checking.
    """
    async with _gate():
        if _stopping:
            raise DirectoryUnavailable("the server is shutting down; the password was not checked")
        if _pool is not None:
            return await _pool.verify(stored, password)
        return await asyncio.to_thread(_verify, stored, password.reveal())


def password_checks_stopped() -> bool:
    """Return whether `stop_password_checks` has run in this process."""
    return _stopping


def stop_password_checks() -> None:
    """Make every password check that has not started fail at once with `DirectoryUnavailable`.

    `tapgate serve` calls this when it begins to shut down. With the production hash a check takes
    about 0.2 s of a core, so a queue of checks can outlast the server's grace period, whose end
    cancels them with a 500. Rejected instead, each login ends as `directory_unavailable`, which
    the front doors report as worth retrying. Checks that hold a slot still finish, and each
    slot they free goes to a waiting check, which then fails at once.
    """
    global _stopping
    _stopping = True


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)
