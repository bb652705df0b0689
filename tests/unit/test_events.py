"""Wake-ups of waiters on a transaction: set, timeout, shutdown."""

from __future__ import annotations

import asyncio

from tapgate.push.events import EventBus, Wakeup
from tapgate.push.ports import LoginStatus


def test_wakeup_times_out_unset() -> None:
    async def scenario() -> tuple[bool, float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        woken = await Wakeup().wait(0.05)
        return woken, loop.time() - started

    woken, elapsed = asyncio.run(scenario())
    assert woken is False
    assert elapsed >= 0.04


def test_wakeup_set_before_wait_returns_at_once() -> None:
    async def scenario() -> bool:
        wakeup = Wakeup()
        wakeup.set()
        return await asyncio.wait_for(wakeup.wait(30), 1)

    assert asyncio.run(scenario()) is True


def test_publish_wakes_only_that_transaction() -> None:
    async def scenario() -> tuple[bool, bool]:
        bus = EventBus()
        mine, other = bus.subscribe("tx-ayşe"), bus.subscribe("tx-ismail")
        waiting = asyncio.gather(mine.wait(5), other.wait(0.05))
        await asyncio.sleep(0)
        bus.publish("tx-ayşe")
        woken_mine, woken_other = await waiting
        return woken_mine, woken_other

    assert asyncio.run(scenario()) == (True, False)


def test_close_wakes_every_waiter() -> None:
    async def scenario() -> list[bool]:
        bus = EventBus()
        waiters = [bus.subscribe(f"tx-{n}") for n in range(3)]
        waiting = asyncio.gather(*(wakeup.wait(5) for wakeup in waiters))
        await asyncio.sleep(0)
        bus.close()
        assert bus.closed
        return list(await asyncio.wait_for(waiting, 1))

    assert asyncio.run(scenario()) == [True, True, True]


def test_cancelled_wait_leaves_wakeup_usable() -> None:
    async def scenario() -> bool:
        wakeup = Wakeup()
        task = asyncio.create_task(wakeup.wait(5))
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        later = asyncio.create_task(wakeup.wait(5))
        await asyncio.sleep(0)
        wakeup.set()
        return await asyncio.wait_for(later, 1)

    assert asyncio.run(scenario()) is True


def test_publish_passes_the_final_status() -> None:
    async def scenario() -> tuple[bool, LoginStatus | None, LoginStatus | None]:
        bus = EventBus()
        wakeup, plain = bus.subscribe("tx-ayşe"), bus.subscribe("tx-berk")
        final = LoginStatus("tx-ayşe", "approved", application="portal")
        bus.publish("tx-ayşe", final)
        bus.publish("tx-berk")
        return await wakeup.wait(1), wakeup.final, plain.final

    woken, final, plain = asyncio.run(scenario())
    assert woken is True
    assert final is not None
    assert (final.status, final.application) == ("approved", "portal")
    assert plain is None
