"""The `direct` delivery hub: streams per device, bounded mailboxes, closing a device."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tapgate.delivery.direct import DirectHub, Mailbox

DEVICE = "dev-ayse-telefon"
OTHER_DEVICE = "dev-ismail-telefon"
CHALLENGE = {"event": "challenge", "transaction_id": "tx-ayse-vpn"}
MAILBOX_SIZE = 64


def drain(mailbox: Mailbox) -> list[dict[str, Any] | None]:
    async def read_all() -> list[dict[str, Any] | None]:
        items = []
        while True:
            try:
                items.append(await mailbox.get(0))
            except TimeoutError:
                return items

    return asyncio.run(read_all())


def fill(hub: DirectHub, mailbox: Mailbox) -> None:
    for index in range(MAILBOX_SIZE):
        hub.send(DEVICE, {"event": "challenge", "transaction_id": f"tx-{index}"})
    assert mailbox.full()


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


def test_send_mailboxs_event() -> None:
    hub = DirectHub()
    mailbox = hub.connect(DEVICE)
    hub.send(DEVICE, CHALLENGE)
    assert drain(mailbox) == [CHALLENGE]


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
    mailbox = hub.connect(DEVICE)
    hub.disconnect(DEVICE, mailbox)
    assert not hub.is_connected(DEVICE)


def test_disconnect_keeps_other_stream() -> None:
    hub = DirectHub()
    first = hub.connect(DEVICE)
    hub.connect(DEVICE)
    hub.disconnect(DEVICE, first)
    assert hub.is_connected(DEVICE)


def test_disconnect_twice_harmless() -> None:
    hub = DirectHub()
    mailbox = hub.connect(DEVICE)
    hub.disconnect(DEVICE, mailbox)
    hub.disconnect(DEVICE, mailbox)
    assert hub.connected_count == 0


def test_full_mailbox_disconnects_stream() -> None:
    hub = DirectHub()
    mailbox = hub.connect(DEVICE)
    fill(hub, mailbox)
    hub.send(DEVICE, CHALLENGE)
    assert not hub.is_connected(DEVICE)


def test_full_mailbox_send_returns_false() -> None:
    hub = DirectHub()
    mailbox = hub.connect(DEVICE)
    fill(hub, mailbox)
    assert hub.send(DEVICE, CHALLENGE) is False


def test_full_mailbox_spares_other_stream() -> None:
    hub = DirectHub()
    slow = hub.connect(DEVICE)
    fill(hub, slow)
    fast = hub.connect(DEVICE)
    delivered = hub.send(DEVICE, CHALLENGE)
    assert (delivered, drain(fast)) == (True, [CHALLENGE])


def test_close_device_sends_none() -> None:
    hub = DirectHub()
    mailbox = hub.connect(DEVICE)
    hub.send(DEVICE, CHALLENGE)
    hub.close_device(DEVICE)
    assert drain(mailbox) == [CHALLENGE, None]


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


def test_full_mailbox_ends_stream() -> None:
    hub = DirectHub()
    mailbox = hub.connect(DEVICE)
    fill(hub, mailbox)
    hub.send(DEVICE, CHALLENGE)
    assert drain(mailbox)[-1] is None


def test_close_device_ends_full_stream() -> None:
    hub = DirectHub()
    mailbox = hub.connect(DEVICE)
    fill(hub, mailbox)
    hub.close_device(DEVICE)
    assert drain(mailbox)[-1] is None


def test_get_waits_for_event() -> None:
    async def scenario() -> dict[str, Any] | None:
        mailbox = Mailbox()
        asyncio.get_running_loop().call_later(0.01, mailbox.put, CHALLENGE)
        return await mailbox.get(5)

    assert asyncio.run(scenario()) == CHALLENGE


def test_get_times_out_without_event() -> None:
    async def scenario() -> None:
        await Mailbox().get(0.01)

    with pytest.raises(TimeoutError):
        asyncio.run(scenario())


def test_get_after_timeout_still_receives() -> None:
    async def scenario() -> dict[str, Any] | None:
        mailbox = Mailbox()
        with pytest.raises(TimeoutError):
            await mailbox.get(0.01)
        mailbox.put(CHALLENGE)
        return await mailbox.get(5)

    assert asyncio.run(scenario()) == CHALLENGE


def test_cancelled_get_leaves_mailbox_usable() -> None:
    async def scenario() -> dict[str, Any] | None:
        mailbox = Mailbox()
        reader = asyncio.create_task(mailbox.get(5))
        await asyncio.sleep(0)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        mailbox.put(CHALLENGE)
        return await mailbox.get(5)

    assert asyncio.run(scenario()) == CHALLENGE


def test_ended_stream_logs_one_disconnect(caplog: pytest.LogCaptureFixture) -> None:
    hub = DirectHub()
    mailbox = hub.connect(DEVICE)
    caplog.set_level(logging.INFO, logger="tapgate.delivery.direct")
    hub.close_device(DEVICE)
    # The stream's own cleanup disconnects the mailbox again when it reads the end marker.
    hub.disconnect(DEVICE, mailbox)
    lines = [r.getMessage() for r in caplog.records if "disconnected" in r.getMessage()]
    assert lines == [f"device disconnected device={DEVICE}"]
