"""Fixtures of the delivery tests: a private CA, and the push service mocks on real TLS."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trustme

from tapgate.delivery.base import DeliveryTarget
from tapgate.delivery.config import ProviderSettings
from tapgate.secret import Secret
from tests.delivery.mocks import ApnsMock, FcmMock, WebPushMock
from tests.delivery.tlsserver import TlsServer


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    """A CA for every mock and the relay; the path is its certificate, for ca_file options."""
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("pki") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, path


@pytest.fixture(scope="session")
def fcm_mock(
    pki: tuple[trustme.CA, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FcmMock]:
    mock = FcmMock()
    server = TlsServer(mock.app(), pki[0], tmp_path_factory.mktemp("fcm")).start()
    mock.base = server.base
    yield mock
    server.stop()


@pytest.fixture(scope="session")
def apns_mock(
    pki: tuple[trustme.CA, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApnsMock]:
    mock = ApnsMock()
    # APNs speaks only HTTP/2.
    server = TlsServer(mock.app(), pki[0], tmp_path_factory.mktemp("apns"), alpn=("h2",)).start()
    mock.base = server.base
    yield mock
    server.stop()


@pytest.fixture(scope="session")
def webpush_mock(
    pki: tuple[trustme.CA, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebPushMock]:
    mock = WebPushMock()
    server = TlsServer(mock.app(), pki[0], tmp_path_factory.mktemp("webpush")).start()
    mock.base = server.base
    yield mock
    server.stop()


def fcm_settings(mock: FcmMock, ca_file: Path) -> ProviderSettings:
    return ProviderSettings(
        "fcm",
        {
            "service_account_file": "unused",
            "token_url": f"{mock.base}/token",
            "send_url": mock.base,
            "ca_file": str(ca_file),
        },
        Secret(mock.service_account()),
    )


def apns_settings(mock: ApnsMock, ca_file: Path) -> ProviderSettings:
    return ProviderSettings(
        "apns",
        {
            "team_id": mock.TEAM_ID,
            "key_id": mock.KEY_ID,
            "key_file": "unused",
            "topic": mock.TOPIC,
            "base_url": mock.base,
            "ca_file": str(ca_file),
        },
        Secret(mock.key_pem()),
    )


def webpush_settings(vapid_pem: str, ca_file: Path) -> ProviderSettings:
    return ProviderSettings(
        "webpush",
        {
            "vapid_private_key_file": "unused",
            "subject": "mailto:security@example.com",
            "allowed_endpoint_hosts": ["127.0.0.1"],
            "ca_file": str(ca_file),
        },
        Secret(vapid_pem),
    )


def target(address: dict[str, object], registered_at: datetime | None = None) -> DeliveryTarget:
    return DeliveryTarget(
        device_id="device-1",
        transaction_id="tx-0123456789abcdef",
        address=address,
        registered_at=registered_at or datetime(2026, 1, 1, tzinfo=UTC),
    )
