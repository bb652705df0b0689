"""The delivery router on a real database, with the real providers against the service mocks."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from tapgate.crypto.signing import new_private_key, public_key_to_text
from tapgate.delivery.config import parse_delivery_provider, write_delivery_providers
from tapgate.delivery.router import DeliveryRouter
from tapgate.delivery.sealing import open_sealed
from tapgate.keys import KeyRing
from tapgate.objects.repository import bump_object_version
from tapgate.store.database import Database
from tapgate.store.migrate import upgrade
from tapgate.store.models import ChallengeDeliveryRow, DeviceRow, TransactionRow
from tests.delivery.mocks import FcmMock, WebPushMock

PUBLIC_URL = "http://127.0.0.1:9"


@pytest.fixture
async def router(
    db_url: str,
    tmp_path: Path,
    fcm_mock: FcmMock,
    webpush_mock: WebPushMock,
    pki: tuple[trustme.CA, Path],
) -> AsyncIterator[DeliveryRouter]:
    upgrade(db_url)
    database = Database(db_url)
    keyring = KeyRing(secrets.token_bytes(32))
    (tmp_path / "fcm.json").write_text(fcm_mock.service_account())
    vapid = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "vapid.pem").write_bytes(vapid)
    specs = {
        "fcm": parse_delivery_provider(
            {
                "type": "fcm",
                "service_account_file": str(tmp_path / "fcm.json"),
                "token_url": f"{fcm_mock.base}/token",
                "send_url": fcm_mock.base,
                "ca_file": str(pki[1]),
            },
            0,
        ),
        "webpush": parse_delivery_provider(
            {
                "type": "webpush",
                "vapid_private_key_file": str(tmp_path / "vapid.pem"),
                "subject": "mailto:it@example.com",
                "allowed_endpoint_hosts": ["127.0.0.1"],
                "ca_file": str(pki[1]),
            },
            1,
        ),
    }
    async with database.write() as session:
        await write_delivery_providers(session, keyring, specs, specs)
        await bump_object_version(session)
    instance = DeliveryRouter(database, keyring, PUBLIC_URL)
    yield instance
    await instance.stop()
    await database.close()


class Devices:
    """Devices of one user with their agreement keys, to open what reached them."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}

    async def add(self, router: DeliveryRouter, delivery: dict[str, Any]) -> str:
        device_id = secrets.token_hex(8)
        key = new_private_key()
        self.keys[device_id] = key
        async with router.database.write() as session:
            session.add(
                DeviceRow(
                    id=device_id,
                    auth_profile="personel",
                    user_id="u1",
                    username="ayşe",
                    name="Telefon",
                    platform="android",
                    signing_key=public_key_to_text(new_private_key().public_key()),
                    agreement_key=public_key_to_text(key.public_key()),
                    delivery=delivery,
                    created_at=datetime.now(UTC),
                )
            )
        return device_id


async def new_transaction(router: DeliveryRouter, lifetime: float = 30) -> TransactionRow:
    now = datetime.now(UTC)
    row = TransactionRow(
        id=secrets.token_urlsafe(16),
        application="vpn",
        auth_profile="personel",
        user_id="u1",
        username="ayşe",
        push_profile="ofis",
        status="pending",
        verification="tap",
        nonce=secrets.token_urlsafe(16),
        context={"application": "vpn", "client_ip": "203.0.113.5", "created_at": now.isoformat()},
        created_at=now,
        expires_at=now + timedelta(seconds=lifetime),
    )
    async with router.database.write() as session:
        session.add(row)
    return row


async def delivery_rows(
    router: DeliveryRouter, transaction_id: str
) -> dict[str, ChallengeDeliveryRow]:
    async with router.database.read() as session:
        rows = await session.scalars(
            select(ChallengeDeliveryRow).where(
                ChallengeDeliveryRow.transaction_id == transaction_id
            )
        )
        return {row.device_id: row for row in rows}


async def test_router_uses_preference_order(router: DeliveryRouter, fcm_mock: FcmMock) -> None:
    devices = Devices()
    token = secrets.token_hex(8)
    device = await devices.add(router, {"fcm": {"token": token}, "webpush": {"endpoint": "x"}})
    row = await new_transaction(router)

    router.dispatch(row, [device], ("fcm", "webpush"))
    await router.wait_idle()

    rows = await delivery_rows(router, row.id)
    assert rows[device].provider == "fcm"
    sent = [m for m in fcm_mock.received if m["token"] == token]
    assert len(sent) == 1


async def test_router_delivery_opens_on_device(router: DeliveryRouter, fcm_mock: FcmMock) -> None:
    import json

    devices = Devices()
    token = secrets.token_hex(8)
    device = await devices.add(router, {"fcm": {"token": token}})
    row = await new_transaction(router)

    router.dispatch(row, [device], ("fcm",))
    await router.wait_idle()

    data = next(m for m in fcm_mock.received if m["token"] == token)["data"]["tapgate"]
    assert "203.0.113.5" not in data
    envelope = open_sealed(json.loads(data), devices.keys[device], device)
    assert envelope["message"]["client_ip"] == "203.0.113.5"
    assert envelope["message"]["transaction_id"] == row.id


async def test_router_skips_direct_when_connected(
    router: DeliveryRouter, fcm_mock: FcmMock
) -> None:
    devices = Devices()
    token = secrets.token_hex(8)
    device = await devices.add(router, {"fcm": {"token": token}})
    row = await new_transaction(router)

    router.dispatch(row, [device], ("direct", "fcm"), connected=[device])
    await router.wait_idle()

    assert (await delivery_rows(router, row.id))[device].provider == "direct"
    assert not [m for m in fcm_mock.received if m["token"] == token]


async def test_stale_address_marked_and_skipped(
    router: DeliveryRouter, fcm_mock: FcmMock, webpush_mock: WebPushMock
) -> None:
    devices = Devices()
    token = secrets.token_hex(8)
    subscription = webpush_mock.subscribe()
    device = await devices.add(router, {"fcm": {"token": token}, "webpush": subscription.as_json()})
    fcm_mock.fail(token, fcm_mock.unregistered())
    first = await new_transaction(router)

    router.dispatch(first, [device], ("fcm", "webpush"))
    await router.wait_idle()

    async with router.database.read() as session:
        stored = await session.get(DeviceRow, device)
    assert stored is not None
    assert "fcm" in stored.delivery["stale"]
    assert (await delivery_rows(router, first.id))[device].provider == "webpush"

    fcm_mock.fail(token, fcm_mock.unregistered())  # would be answered again if it were tried
    second = await new_transaction(router)
    router.dispatch(second, [device], ("fcm", "webpush"))
    await router.wait_idle()
    assert fcm_mock.errors[token], "the stale FCM token was tried again"
    assert (await delivery_rows(router, second.id))[device].provider == "webpush"
    fcm_mock.errors.pop(token)


async def test_retry_after_server_errors(router: DeliveryRouter, fcm_mock: FcmMock) -> None:
    devices = Devices()
    token = secrets.token_hex(8)
    device = await devices.add(router, {"fcm": {"token": token}})
    fcm_mock.fail(token, fcm_mock.unavailable(), fcm_mock.quota(1))
    row = await new_transaction(router)

    started = time.monotonic()
    router.dispatch(row, [device], ("fcm",))
    await router.wait_idle()
    elapsed = time.monotonic() - started

    assert (await delivery_rows(router, row.id))[device].provider == "fcm"
    assert elapsed >= 1.0, "Retry-After: 1 was not respected"


async def test_retries_stop_at_expiry(router: DeliveryRouter, fcm_mock: FcmMock) -> None:
    devices = Devices()
    token = secrets.token_hex(8)
    device = await devices.add(router, {"fcm": {"token": token}})
    fcm_mock.fail(token, *[fcm_mock.unavailable()] * 50)
    row = await new_transaction(router, lifetime=3)

    started = time.monotonic()
    router.dispatch(row, [device], ("fcm",))
    await router.wait_idle()
    fcm_mock.errors.pop(token)

    assert time.monotonic() - started < 4
    assert (await delivery_rows(router, row.id))[device].outcome == "undelivered"


async def test_dispatch_does_not_block(router: DeliveryRouter, fcm_mock: FcmMock) -> None:
    devices = Devices()
    token = secrets.token_hex(8)
    device = await devices.add(router, {"fcm": {"token": token}})
    fcm_mock.fail(token, fcm_mock.quota(2))
    row = await new_transaction(router)

    started = time.monotonic()
    router.dispatch(row, [device], ("fcm",))
    assert time.monotonic() - started < 0.05
    await router.wait_idle()


async def test_failing_device_spares_others(
    router: DeliveryRouter, fcm_mock: FcmMock, webpush_mock: WebPushMock
) -> None:
    devices = Devices()
    broken = await devices.add(
        router, {"webpush": {"endpoint": "https://evil.example/x", "keys": {}}}
    )
    slow_token = secrets.token_hex(8)
    slow = await devices.add(router, {"fcm": {"token": slow_token}})
    fcm_mock.fail(slow_token, fcm_mock.unavailable())
    good_token = secrets.token_hex(8)
    good = await devices.add(router, {"fcm": {"token": good_token}})
    row = await new_transaction(router)

    router.dispatch(row, [broken, slow, good], ("fcm", "webpush"))
    await router.wait_idle()

    rows = await delivery_rows(router, row.id)
    assert rows[broken].outcome == "undelivered"
    assert rows[slow].provider == "fcm"
    assert rows[good].provider == "fcm"


async def test_unconfigured_provider_left_to_polling(router: DeliveryRouter) -> None:
    devices = Devices()
    device = await devices.add(router, {"apns": {"token": "ab" * 32}})
    row = await new_transaction(router)

    router.dispatch(row, [device], ("apns",))
    await router.wait_idle()

    assert (await delivery_rows(router, row.id))[device].outcome == "undelivered"


async def test_resolved_transaction_not_retried(router: DeliveryRouter, fcm_mock: FcmMock) -> None:
    devices = Devices()
    token = secrets.token_hex(8)
    device = await devices.add(router, {"fcm": {"token": token}})
    fcm_mock.fail(token, *[fcm_mock.unavailable()] * 20)
    row = await new_transaction(router, lifetime=20)

    router.dispatch(row, [device], ("fcm",))
    await asyncio.sleep(0.2)
    async with router.database.write() as session:
        stored = await session.get(TransactionRow, row.id)
        assert stored is not None
        stored.status = "approved"
    started = time.monotonic()
    await router.wait_idle()
    fcm_mock.errors.pop(token, None)
    assert time.monotonic() - started < 3
