"""Web Push through a real server process, signed delivery receipts and the latency metric."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tapgate.authenticator.device import open_challenge, request_header, send_receipt
from tapgate.authenticator.state import DeviceState
from tapgate.crypto.signing import private_key_from_text, sign
from tests.delivery.devices import enroll_with_delivery
from tests.delivery.mocks import Canned, WebPushMock
from tests.support import Api, Server, database_url

OBJECTS = """
auth_profiles:
  - {{name: personel, type: local}}
push_profiles:
  - {{name: tarayici, fallback_auth_profiles: [personel], timeout: 30, verification: tap, default: true, delivery: [direct, webpush], max_pending: 5, rate_limit: {{count: 1000, window: 60}}}}
applications:
  - {{name: portal, type: api, methods: [tarayici], require_password: false}}
delivery_providers:
  - type: webpush
    vapid_private_key_file: {vapid}
    subject: mailto:security@example.com
    allowed_endpoint_hosts: [127.0.0.1]
    ca_file: {ca_file}
"""


@dataclass
class Site:
    server: Server
    api: Api


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, pki: tuple[trustme.CA, Path]) -> Iterator[Site]:
    """One server for this module; each test enrolls its own browser."""
    tmp_path = tmp_path_factory.mktemp("receipts")
    with database_url(tmp_path) as db_url:
        yield from _site(tmp_path, db_url, pki)


def _site(tmp_path: Path, db_url: str, pki: tuple[trustme.CA, Path]) -> Iterator[Site]:
    vapid = tmp_path / "vapid.pem"
    vapid.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = Server(tmp_path, db_url)
    server.start()
    try:
        server.apply(OBJECTS.format(vapid=vapid, ca_file=pki[1]))
        for name in ("deniz", "ekin"):
            server.cli("user", "add", name, "--auth-profile", "personel")
        yield Site(server, Api(server, "portal"))
    finally:
        if server.process and server.process.poll() is None:
            server.stop()
    assert "Traceback" not in server.log()


def enroll_browser(site: Site, mock: WebPushMock, username: str) -> tuple[DeviceState, str]:
    subscription = mock.subscribe()
    url = site.server.cli_json("enroll", username, "--json")["enrollment_url"]
    state = enroll_with_delivery(url, {"webpush": subscription.as_json()})
    return state, subscription.endpoint.rsplit("/", 1)[1]


def wait_push(mock: WebPushMock, subscription: str, transaction_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for item in mock.received:
            if (
                item["subscription"] == subscription
                and item["payload"]["transaction_id"] == transaction_id
            ):
                return dict(item["payload"])
        time.sleep(0.05)
    raise AssertionError("the push never reached the Web Push service")


def test_webpush_challenge_reaches_browser(site: Site, webpush_mock: WebPushMock) -> None:
    state, subscription = enroll_browser(site, webpush_mock, "deniz")
    transaction_id = site.api.login("deniz", client_ip="192.0.2.44").json()["transaction_id"]

    sealed = wait_push(webpush_mock, subscription, transaction_id)
    message = open_challenge(state, sealed)

    assert message["transaction_id"] == transaction_id
    assert message["client_ip"] == "192.0.2.44"
    assert "192.0.2.44" not in str(sealed)


def test_receipt_sets_delivered(site: Site, webpush_mock: WebPushMock) -> None:
    state, subscription = enroll_browser(site, webpush_mock, "deniz")
    receipts_before = _latency_count(site.server, "webpush")
    started = site.api.login("deniz").json()
    assert started["delivered"] is False
    message = open_challenge(
        state, wait_push(webpush_mock, subscription, started["transaction_id"])
    )

    assert send_receipt(state, message, "webpush") == {"recorded": True, "first": True}
    assert site.api.status(started["transaction_id"])["delivered"] is True
    assert send_receipt(state, message, "webpush")["first"] is False

    assert _latency_count(site.server, "webpush") == receipts_before + 1


def _latency_count(server: Server, provider: str) -> float:
    for line in httpx.get(server.base + "/metrics").text.splitlines():
        if line.startswith(f'tapgate_delivery_latency_seconds_count{{provider="{provider}"}}'):
            return float(line.split()[-1])
    return 0.0


def _receipt(state: DeviceState, message: dict[str, Any], **changes: Any) -> httpx.Response:
    receipt = {
        "v": 1,
        "aud": state.public_url,
        "iat": int(time.time()),
        "device_id": state.device_id,
        "transaction_id": message["transaction_id"],
        "nonce": message["nonce"],
        "type": "receipt",
        **changes,
    }
    signature = sign(private_key_from_text(state.signing_key), receipt)
    return httpx.post(
        f"{state.public_url}/device/v1/receipt", json={"message": receipt, "signature": signature}
    )


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        pytest.param({"nonce": "not-the-challenge-nonce"}, 401, id="wrong-nonce"),
        pytest.param({"iat": 1_000_000}, 401, id="old-iat"),
        pytest.param({"aud": "https://other.example.com"}, 401, id="other-audience"),
        pytest.param({"type": "answer"}, 400, id="wrong-type"),
        pytest.param({"via": "pigeon"}, 400, id="unknown-via"),
        pytest.param({"transaction_id": "unknown-transaction"}, 404, id="unknown-transaction"),
    ],
)
def test_receipt_rejected(
    site: Site, webpush_mock: WebPushMock, changes: dict[str, Any], status: int
) -> None:
    state, subscription = enroll_browser(site, webpush_mock, "deniz")
    transaction_id = site.api.login("deniz").json()["transaction_id"]
    message = open_challenge(state, wait_push(webpush_mock, subscription, transaction_id))

    assert _receipt(state, message, **changes).status_code == status
    assert site.api.status(transaction_id)["delivered"] is False


def test_receipt_from_other_user_rejected(site: Site, webpush_mock: WebPushMock) -> None:
    state, subscription = enroll_browser(site, webpush_mock, "deniz")
    other, _ = enroll_browser(site, webpush_mock, "ekin")
    transaction_id = site.api.login("deniz").json()["transaction_id"]
    message = open_challenge(state, wait_push(webpush_mock, subscription, transaction_id))

    assert _receipt(other, message, device_id=other.device_id).status_code == 401
    assert site.api.status(transaction_id)["delivered"] is False


def test_receipt_bad_signature_rejected(site: Site, webpush_mock: WebPushMock) -> None:
    state, subscription = enroll_browser(site, webpush_mock, "deniz")
    transaction_id = site.api.login("deniz").json()["transaction_id"]
    message = open_challenge(state, wait_push(webpush_mock, subscription, transaction_id))
    receipt = {
        "v": 1,
        "aud": state.public_url,
        "iat": int(time.time()),
        "device_id": state.device_id,
        "transaction_id": transaction_id,
        "nonce": message["nonce"],
        "type": "receipt",
    }
    forged = sign(private_key_from_text(state.agreement_key), receipt)
    response = httpx.post(
        f"{state.public_url}/device/v1/receipt", json={"message": receipt, "signature": forged}
    )
    assert response.status_code == 401


def test_gone_subscription_skipped_next_login(site: Site, webpush_mock: WebPushMock) -> None:
    state, subscription = enroll_browser(site, webpush_mock, "deniz")
    webpush_mock.fail(subscription, Canned(410))
    site.api.login("deniz")
    deadline = time.monotonic() + 10
    while webpush_mock.errors.get(subscription) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not webpush_mock.errors.get(subscription), "the push was never attempted"

    webpush_mock.fail(subscription, Canned(500))  # left in place unless the address is tried
    second = site.api.login("deniz").json()["transaction_id"]
    time.sleep(1.5)
    assert webpush_mock.errors.pop(subscription), "a stale subscription was tried again"
    # The challenge is still there for signed polling.
    path = "/device/v1/challenges"
    response = httpx.get(
        state.public_url + path, headers={"Authorization": request_header(state, "GET", path)}
    )
    assert second in [c["message"]["transaction_id"] for c in response.json()["challenges"]]
