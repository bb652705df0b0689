"""The `direct` delivery hub: streams per device, bounded queues, closing a device."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tapgate.delivery.direct import DirectHub, StreamQueue

DEVICE = "dev-ayse-telefon"
OTHER_DEVICE = "dev-ismail-telefon"
CHALLENGE = {"event": "challenge", "transaction_id": "tx-ayse-vpn"}
QUEUE_SIZE = 64


def drain(queue: StreamQueue) -> list[dict[str, Any] | None]:
    async def read_all() -> list[dict[str, Any] | None]:
        items = []
        while True:
            try:
                items.append(await queue.get(0))
            except TimeoutError:
                return items

    return asyncio.run(read_all())


def fill(hub: DirectHub, queue: StreamQueue) -> None:
    for index in range(QUEUE_SIZE):
        hub.send(DEVICE, {"event": "challenge", "transaction_id": f"tx-{index}"})
    assert queue.full()


def test_connect_marks_connected() -> None:
    hub = DirectHub()
    hub.connect(DEVICE)
    assert hub.is_connected(DEVICE)


def test_unknown_device_not_connected() -> None:
    assert not DirectHub().is_connected(DEVICE)


def test_connected_count_per_device() -> None:
    hub = DirectHub()
    hub.connect(DEVICE)
    hub.connect(DEVICE)
    hub.connect(OTHER_DEVICE)
    assert hub.connected_count == 2


def test_send_queues_event() -> None:
    hub = DirectHub()
    queue = hub.connect(DEVICE)
    hub.send(DEVICE, CHALLENGE)
    assert drain(queue) == [CHALLENGE]


def test_send_reports_delivery() -> None:
    hub = DirectHub()
    hub.connect(DEVICE)
    assert hub.send(DEVICE, CHALLENGE) is True


def test_send_unconnected_returns_false() -> None:
    assert DirectHub().send(DEVICE, CHALLENGE) is False


def test_send_reaches_every_stream() -> None:
    hub = DirectHub()
    first, second = hub.connect(DEVICE), hub.connect(DEVICE)
    hub.send(DEVICE, CHALLENGE)
    assert (drain(first), drain(second)) == ([CHALLENGE], [CHALLENGE])


def test_send_skips_other_device() -> None:
    hub = DirectHub()
    other = hub.connect(OTHER_DEVICE)
    hub.connect(DEVICE)
    hub.send(DEVICE, CHALLENGE)
    assert drain(other) == []


def test_disconnect_removes_device() -> None:
    hub = DirectHub()
    queue = hub.connect(DEVICE)
    hub.disconnect(DEVICE, queue)
    assert not hub.is_connected(DEVICE)


def test_disconnect_keeps_other_stream() -> None:
    hub = DirectHub()
    first = hub.connect(DEVICE)
    hub.connect(DEVICE)
    hub.disconnect(DEVICE, first)
    assert hub.is_connected(DEVICE)


def test_disconnect_twice_harmless() -> None:
    hub = DirectHub()
    queue = hub.connect(DEVICE)
    hub.disconnect(DEVICE, queue)
    hub.disconnect(DEVICE, queue)
    assert hub.connected_count == 0


def test_full_queue_disconnects_stream() -> None:
    hub = DirectHub()
    queue = hub.connect(DEVICE)
    fill(hub, queue)
    hub.send(DEVICE, CHALLENGE)
    assert not hub.is_connected(DEVICE)


def test_full_queue_send_returns_false() -> None:
    hub = DirectHub()
    queue = hub.connect(DEVICE)
    fill(hub, queue)
    assert hub.send(DEVICE, CHALLENGE) is False


def test_full_queue_spares_other_stream() -> None:
    hub = DirectHub()
    slow = hub.connect(DEVICE)
    fill(hub, slow)
    fast = hub.connect(DEVICE)
    delivered = hub.send(DEVICE, CHALLENGE)
    assert (delivered, drain(fast)) == (True, [CHALLENGE])


def test_close_device_sends_none() -> None:
    hub = DirectHub()
    queue = hub.connect(DEVICE)
    hub.send(DEVICE, CHALLENGE)
    hub.close_device(DEVICE)
    assert drain(queue) == [CHALLENGE, None]


def test_close_device_disconnects() -> None:
    hub = DirectHub()
    hub.connect(DEVICE)
    hub.connect(DEVICE)
    hub.close_device(DEVICE)
    assert not hub.is_connected(DEVICE)


def test_close_unknown_device_harmless() -> None:
    hub = DirectHub()
    hub.close_device(DEVICE)
    assert hub.connected_count == 0


def test_full_queue_ends_stream() -> None:
    hub = DirectHub()
    queue = hub.connect(DEVICE)
    fill(hub, queue)
    hub.send(DEVICE, CHALLENGE)
    assert drain(queue)[-1] is None


def test_close_device_ends_full_stream() -> None:
    hub = DirectHub()
    queue = hub.connect(DEVICE)
    fill(hub, queue)
    hub.close_device(DEVICE)
    assert drain(queue)[-1] is None


def test_get_waits_for_event() -> None:
    async def scenario() -> dict[str, Any] | None:
        queue = StreamQueue()
        asyncio.get_running_loop().call_later(0.01, queue.put, CHALLENGE)
        return await queue.get(5)

    assert asyncio.run(scenario()) == CHALLENGE


def test_get_times_out_without_event() -> None:
    async def scenario() -> None:
        await StreamQueue().get(0.01)

    with pytest.raises(TimeoutError):
        asyncio.run(scenario())


def test_get_after_timeout_still_receives() -> None:
    async def scenario() -> dict[str, Any] | None:
        queue = StreamQueue()
        with pytest.raises(TimeoutError):
            await queue.get(0.01)
        queue.put(CHALLENGE)
        return await queue.get(5)

    assert asyncio.run(scenario()) == CHALLENGE


def test_cancelled_get_leaves_queue_usable() -> None:
    async def scenario() -> dict[str, Any] | None:
        queue = StreamQueue()
        reader = asyncio.create_task(queue.get(5))
        await asyncio.sleep(0)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        queue.put(CHALLENGE)
        return await queue.get(5)

    assert asyncio.run(scenario()) == CHALLENGE


def test_ended_stream_logs_one_disconnect(caplog: pytest.LogCaptureFixture) -> None:
    hub = DirectHub()
    queue = hub.connect(DEVICE)
    caplog.set_level(logging.INFO, logger="tapgate.delivery.direct")
    hub.close_device(DEVICE)
    # The stream's own cleanup disconnects the queue again when it reads the end marker.
    hub.disconnect(DEVICE, queue)
    lines = [r.getMessage() for r in caplog.records if "disconnected" in r.getMessage()]
    assert lines == [f"device disconnected device={DEVICE}"]
