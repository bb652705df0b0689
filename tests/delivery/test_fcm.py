"""The fcm provider against a local FCM HTTP v1 stand-in over HTTP/2 and TLS."""

from __future__ import annotations

import time
from pathlib import Path

import trustme

from tapgate.delivery.base import Outcome
from tapgate.delivery.fcm import FcmProvider
from tests.delivery.conftest import fcm_settings, target
from tests.delivery.mocks import FcmMock

SEALED = {"v": 1, "transaction_id": "tx-0123456789abcdef", "ciphertext": "opaque"}


async def test_fcm_sends_high_priority_data(
    fcm_mock: FcmMock, pki: tuple[trustme.CA, Path]
) -> None:
    provider = FcmProvider(fcm_settings(fcm_mock, pki[1]))
    try:
        result = await provider.send(target({"token": "phone-a"}), SEALED, 42)
    finally:
        await provider.close()
    assert result.outcome == Outcome.DELIVERED
    assert result.message_id is not None
    message = fcm_mock.received[-1]
    assert message["token"] == "phone-a"
    assert message["android"]["priority"] == "HIGH"
    assert message["android"]["ttl"] == "42s"
    assert '"ciphertext":"opaque"' in message["data"]["tapgate"]


async def test_fcm_caches_access_token(fcm_mock: FcmMock, pki: tuple[trustme.CA, Path]) -> None:
    provider = FcmProvider(fcm_settings(fcm_mock, pki[1]))
    before = fcm_mock.token_requests
    try:
        for _ in range(3):
            assert (
                await provider.send(target({"token": "phone-b"}), SEALED, 30)
            ).outcome == Outcome.DELIVERED
    finally:
        await provider.close()
    assert fcm_mock.token_requests - before == 1


async def test_fcm_refreshes_expired_token(fcm_mock: FcmMock, pki: tuple[trustme.CA, Path]) -> None:
    provider = FcmProvider(fcm_settings(fcm_mock, pki[1]))
    before = fcm_mock.token_requests
    try:
        await provider.send(target({"token": "phone-c"}), SEALED, 30)
        # Less than the 60-second margin left of the cached token's lifetime.
        provider._token_expires = time.time() + 30
        await provider.send(target({"token": "phone-c"}), SEALED, 30)
    finally:
        await provider.close()
    assert fcm_mock.token_requests - before == 2


async def test_fcm_unregistered_is_stale(fcm_mock: FcmMock, pki: tuple[trustme.CA, Path]) -> None:
    fcm_mock.fail("gone-token", fcm_mock.unregistered())
    provider = FcmProvider(fcm_settings(fcm_mock, pki[1]))
    try:
        result = await provider.send(target({"token": "gone-token"}), SEALED, 30)
    finally:
        await provider.close()
    assert result.outcome == Outcome.STALE
    assert result.detail == "UNREGISTERED"


async def test_fcm_quota_retry_after(fcm_mock: FcmMock, pki: tuple[trustme.CA, Path]) -> None:
    fcm_mock.fail("busy-token", fcm_mock.quota(7))
    provider = FcmProvider(fcm_settings(fcm_mock, pki[1]))
    try:
        result = await provider.send(target({"token": "busy-token"}), SEALED, 30)
    finally:
        await provider.close()
    assert result.outcome == Outcome.RETRY
    assert result.retry_after == 7.0


async def test_fcm_unavailable_is_retry(fcm_mock: FcmMock, pki: tuple[trustme.CA, Path]) -> None:
    fcm_mock.fail("down-token", fcm_mock.unavailable())
    provider = FcmProvider(fcm_settings(fcm_mock, pki[1]))
    try:
        result = await provider.send(target({"token": "down-token"}), SEALED, 30)
    finally:
        await provider.close()
    assert result.outcome == Outcome.RETRY


async def test_fcm_wrong_key_rejected(fcm_mock: FcmMock, pki: tuple[trustme.CA, Path]) -> None:
    """A service account whose key the token endpoint does not know gets no token."""
    impostor = FcmMock()
    impostor.base = fcm_mock.base
    settings = fcm_settings(impostor, pki[1])
    provider = FcmProvider(settings)
    try:
        result = await provider.send(target({"token": "phone-d"}), SEALED, 30)
    finally:
        await provider.close()
    assert result.outcome == Outcome.FAILED
    assert "invalid_grant" in result.detail
