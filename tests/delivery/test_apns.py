"""The apns provider against a local APNs stand-in that accepts only HTTP/2."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import trustme

from tapgate.delivery.apns import ApnsProvider
from tapgate.delivery.base import Outcome
from tests.delivery.conftest import apns_settings, target
from tests.delivery.mocks import ApnsMock

SEALED = {"v": 1, "transaction_id": "tx-0123456789abcdef", "ciphertext": "opaque"}
TOKEN = "a1b2c3d4" * 8


async def _send(mock: ApnsMock, ca_file: Path, token: str, registered_at: datetime | None = None):  # type: ignore[no-untyped-def]
    provider = ApnsProvider(apns_settings(mock, ca_file))
    try:
        return await provider.send(target({"token": token}, registered_at), SEALED, 55)
    finally:
        await provider.close()


async def test_apns_sends_required_headers(
    apns_mock: ApnsMock, pki: tuple[trustme.CA, Path]
) -> None:
    result = await _send(apns_mock, pki[1], TOKEN)
    assert result.outcome == Outcome.DELIVERED
    assert result.message_id is not None
    headers = apns_mock.received[-1]["headers"]
    assert headers["apns-topic"] == ApnsMock.TOPIC
    assert headers["apns-push-type"] == "alert"
    assert headers["apns-priority"] == "10"
    assert headers["apns-collapse-id"] == "tx-0123456789abcdef"
    assert abs(int(headers["apns-expiration"]) - (time.time() + 55)) < 5


async def test_apns_payload_is_sealed(apns_mock: ApnsMock, pki: tuple[trustme.CA, Path]) -> None:
    await _send(apns_mock, pki[1], TOKEN)
    payload = apns_mock.received[-1]["payload"]
    assert payload["tapgate"] == SEALED
    assert payload["aps"]["mutable-content"] == 1


async def test_apns_reuses_provider_token(
    apns_mock: ApnsMock, pki: tuple[trustme.CA, Path]
) -> None:
    provider = ApnsProvider(apns_settings(apns_mock, pki[1]))
    before = set(apns_mock.provider_tokens)
    try:
        for _ in range(3):
            await provider.send(target({"token": TOKEN}), SEALED, 30)
    finally:
        await provider.close()
    assert len(apns_mock.provider_tokens - before) <= 1


async def test_apns_token_renewed_after_50_minutes() -> None:
    from tapgate.delivery.apns import TOKEN_REUSE_SECONDS

    assert TOKEN_REUSE_SECONDS == 3000


async def test_apns_410_after_registration_stale(
    apns_mock: ApnsMock, pki: tuple[trustme.CA, Path]
) -> None:
    registered = datetime(2026, 1, 1, tzinfo=UTC)
    apns_mock.fail("dead" + TOKEN[4:], ApnsMock.gone(int(registered.timestamp() * 1000) + 60_000))
    result = await _send(apns_mock, pki[1], "dead" + TOKEN[4:], registered)
    assert result.outcome == Outcome.STALE


async def test_apns_410_before_registration_kept(
    apns_mock: ApnsMock, pki: tuple[trustme.CA, Path]
) -> None:
    """Apple invalidated an older token; the device registered this one later, so keep it."""
    registered = datetime(2026, 1, 1, tzinfo=UTC)
    token = "beef" + TOKEN[4:]
    apns_mock.fail(token, ApnsMock.gone(int(registered.timestamp() * 1000) - 60_000))
    result = await _send(apns_mock, pki[1], token, registered)
    assert result.outcome == Outcome.FAILED


async def test_apns_bad_device_token_stale(
    apns_mock: ApnsMock, pki: tuple[trustme.CA, Path]
) -> None:
    token = "bad0" + TOKEN[4:]
    apns_mock.fail(token, ApnsMock.bad_token())
    result = await _send(apns_mock, pki[1], token)
    assert result.outcome == Outcome.STALE
    assert result.detail == "BadDeviceToken"


async def test_apns_throttled_retry(apns_mock: ApnsMock, pki: tuple[trustme.CA, Path]) -> None:
    token = "5100" + TOKEN[4:]
    apns_mock.fail(token, ApnsMock.too_many(3))
    result = await _send(apns_mock, pki[1], token)
    assert result.outcome == Outcome.RETRY
    assert result.retry_after == 3.0


async def test_apns_unavailable_retry(apns_mock: ApnsMock, pki: tuple[trustme.CA, Path]) -> None:
    token = "5030" + TOKEN[4:]
    apns_mock.fail(token, ApnsMock.unavailable())
    result = await _send(apns_mock, pki[1], token)
    assert result.outcome == Outcome.RETRY
