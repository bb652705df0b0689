"""The writers' gate: FIFO hand-over, a non-waiting acquire, and cancelled waiters."""

from __future__ import annotations

import asyncio

import pytest

from tapgate.store.gate import Gate


def test_try_acquire_only_when_free() -> None:
    gate = Gate()
    assert gate.try_acquire()
    assert gate.locked()
    assert not gate.try_acquire()
    gate.release()
    assert not gate.locked()


def test_release_of_free_gate_raises() -> None:
    with pytest.raises(RuntimeError):
        Gate().release()


def test_waiters_get_gate_in_arrival_order() -> None:
    order: list[str] = []

    async def writer(gate: Gate, name: str) -> None:
        async with gate:
            order.append(name)
            await asyncio.sleep(0)

    async def scenario() -> None:
        gate = Gate()
        assert gate.try_acquire()
        tasks = [asyncio.create_task(writer(gate, name)) for name in ("ayşe", "ılgın", "şenol")]
        await asyncio.sleep(0)
        # No caller may jump the queue while writers wait.
        gate.release()
        assert gate.locked()
        assert not gate.try_acquire()
        await asyncio.gather(*tasks)
        assert not gate.locked()

    asyncio.run(scenario())
    assert order == ["ayşe", "ılgın", "şenol"]


def test_cancelled_waiter_passes_gate_on() -> None:
    async def scenario() -> None:
        gate = Gate()
        assert gate.try_acquire()
        first = asyncio.create_task(gate.acquire())
        second = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0)
        # Hand the gate to the first waiter, then cancel it before it runs.
        gate.release()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.wait_for(second, 1)
        assert gate.locked()
        gate.release()
        assert not gate.locked()

    asyncio.run(scenario())


def test_cancelled_waiter_leaves_queue() -> None:
    async def scenario() -> None:
        gate = Gate()
        assert gate.try_acquire()
        waiting = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        gate.release()
        # No stale waiter keeps the free gate from being taken at once.
        assert gate.try_acquire()

    asyncio.run(scenario())


def test_acquire_then_waits_its_turn() -> None:
    order: list[str] = []

    async def scenario() -> None:
        gate = Gate()
        gate.acquire_then(lambda: order.append("at once"))
        assert order == ["at once"]
        queued = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0)
        gate.acquire_then(lambda: order.append("commit"))
        gate.release()
        await queued
        order.append("writer")
        gate.release()
        await asyncio.sleep(0)
        assert order == ["at once", "writer", "commit"]
        assert gate.locked()
        gate.release()

    asyncio.run(scenario())
