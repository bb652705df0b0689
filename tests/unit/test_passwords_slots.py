"""How many password hashes run at once, and what happens to those waiting at shutdown."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tapgate.directory import passwords
from tapgate.directory.passwords import hash_slots
from tapgate.errors import DirectoryUnavailable
from tapgate.secret import Secret


@pytest.mark.parametrize(
    ("cores", "memory_cost_kib", "slots"),
    [
        (2, 65536, 2),  # the default profile: one 64 MiB hash a core
        (8, 65536, 8),
        (1, 65536, 2),  # never fewer than two
        (2, 1024, 8),  # the cheap profile: four a core
        (2, 32768, 4),  # in between: bounded by 64 MiB a core
        (2, 0, 8),
    ],
)
def test_hash_slots(cores: int, memory_cost_kib: int, slots: int) -> None:
    assert hash_slots(cores, memory_cost_kib) == slots


async def test_stopped_checks_reject_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """At shutdown a check already hashing finishes and every queued one fails at once."""
    monkeypatch.setattr(passwords, "_stopping", False)
    monkeypatch.setattr(passwords, "_semaphore", asyncio.Semaphore(1))
    release = threading.Event()
    started = threading.Event()

    def slow_verify(stored: str | None, password: str) -> bool:
        started.set()
        release.wait(10)
        return password == "Şifre-2026!"

    monkeypatch.setattr(passwords, "_verify", slow_verify)
    running = asyncio.create_task(passwords.verify_password("stored", Secret("Şifre-2026!")))
    queued = [
        asyncio.create_task(passwords.verify_password("stored", Secret("yanlış-şifre")))
        for _ in range(5)
    ]
    await asyncio.to_thread(started.wait, 10)
    passwords.stop_password_checks()
    release.set()
    assert await asyncio.wait_for(running, 10) is True
    for task in queued:
        with pytest.raises(DirectoryUnavailable, match="shutting down"):
            await asyncio.wait_for(task, 10)
    with pytest.raises(DirectoryUnavailable):
        await passwords.verify_password(None, Secret("ığüşöç-İ"))
