"""The webpush provider against a Web Push stand-in that decrypts with the subscription keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tapgate.delivery.base import Outcome
from tapgate.delivery.webpush import WebPushProvider
from tests.delivery.conftest import target, webpush_settings
from tests.delivery.mocks import Canned, WebPushMock

SEALED = {"v": 1, "transaction_id": "tx-0123456789abcdef", "ciphertext": "opaque"}


@pytest.fixture(scope="module")
def vapid_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


async def _send(mock: WebPushMock, ca_file: Path, vapid_pem: str, address: dict[str, object]):  # type: ignore[no-untyped-def]
    provider = WebPushProvider(webpush_settings(vapid_pem, ca_file))
    try:
        return await provider.send(target(address), SEALED, 45)
    finally:
        await provider.close()


async def test_webpush_payload_decrypts(
    webpush_mock: WebPushMock, pki: tuple[trustme.CA, Path], vapid_pem: str
) -> None:
    subscription = webpush_mock.subscribe()
    result = await _send(webpush_mock, pki[1], vapid_pem, subscription.as_json())
    assert result.outcome == Outcome.DELIVERED
    received = webpush_mock.received[-1]
    assert received["payload"] == SEALED
    assert received["ttl"] == 45
    assert received["urgency"] == "high"
    assert received["topic"] == "tx-0123456789abcdef"


@pytest.mark.parametrize("status", [404, 410])
async def test_webpush_gone_is_stale(
    webpush_mock: WebPushMock, pki: tuple[trustme.CA, Path], vapid_pem: str, status: int
) -> None:
    subscription = webpush_mock.subscribe()
    webpush_mock.fail(subscription.endpoint.rsplit("/", 1)[1], Canned(status))
    result = await _send(webpush_mock, pki[1], vapid_pem, subscription.as_json())
    assert result.outcome == Outcome.STALE


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_webpush_throttle_or_error_retry(
    webpush_mock: WebPushMock, pki: tuple[trustme.CA, Path], vapid_pem: str, status: int
) -> None:
    subscription = webpush_mock.subscribe()
    webpush_mock.fail(
        subscription.endpoint.rsplit("/", 1)[1], Canned(status, headers={"Retry-After": "2"})
    )
    result = await _send(webpush_mock, pki[1], vapid_pem, subscription.as_json())
    assert result.outcome == Outcome.RETRY
    assert result.retry_after == 2.0


async def test_webpush_foreign_host_refused(
    webpush_mock: WebPushMock, pki: tuple[trustme.CA, Path], vapid_pem: str
) -> None:
    subscription = webpush_mock.subscribe().as_json()
    subscription["endpoint"] = "https://internal.example.com/push/x"
    result = await _send(webpush_mock, pki[1], vapid_pem, subscription)
    assert result.outcome == Outcome.FAILED
    assert "allowed_endpoint_hosts" in result.detail


async def test_webpush_wrong_keys_not_decryptable(
    webpush_mock: WebPushMock, pki: tuple[trustme.CA, Path], vapid_pem: str
) -> None:
    """Encrypted to another browser's keys, the payload does not open at this subscription."""
    subscription = webpush_mock.subscribe()
    other = webpush_mock.subscribe().as_json()
    address = {"endpoint": subscription.endpoint, "keys": other["keys"]}
    before = len(webpush_mock.received)
    result = await _send(webpush_mock, pki[1], vapid_pem, address)
    assert result.outcome != Outcome.DELIVERED
    assert len(webpush_mock.received) == before
