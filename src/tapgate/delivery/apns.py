"""The `apns` provider: Apple Push Notification service over HTTP/2 with token authentication.

The provider token is an ES256 JWT ({iss: team id, iat}, header kid = key id) signed with the
.p8 key; Apple accepts one for an hour and rejects refreshing it more often than every 20
minutes, so it is reused for 50 minutes. The notification shows a generic alert and carries the
sealed challenge; the app's notification service extension (mutable-content) opens it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from tapgate.delivery.base import DeliveryResult, DeliveryTarget, Outcome, retry_after_seconds
from tapgate.delivery.config import APNS_URL, ProviderSettings
from tapgate.delivery.http import new_client
from tapgate.errors import ConfigError

log = logging.getLogger(__name__)

TOKEN_REUSE_SECONDS = 50 * 60
# Reasons meaning the token will never work again for this app (Apple's "Handling notification
# responses from APNs"); 410 Unregistered is handled apart because of its timestamp.
_STALE_REASONS = {"BadDeviceToken", "DeviceTokenNotForTopic"}


class ApnsProvider:
    name = "apns"

    def __init__(self, settings: ProviderSettings, clock: Callable[[], float] = time.time) -> None:
        try:
            key = load_pem_private_key(settings.credential.reveal().encode(), password=None)
        except ValueError as exc:
            raise ConfigError(
                "delivery provider 'apns': key_file is not a PEM (.p8) private key"
            ) from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError("delivery provider 'apns': key_file must hold a P-256 (ES256) key")
        self._key = key
        self._team_id = str(settings.options["team_id"])
        self._key_id = str(settings.options["key_id"])
        self._topic = str(settings.options["topic"])
        self._base = str(settings.options.get("base_url", APNS_URL))
        self._client = new_client(settings.options, http1=False)
        self._clock = clock
        self._token: str | None = None
        self._token_issued = 0.0

    def _provider_token(self) -> str:
        now = self._clock()
        if self._token is None or now - self._token_issued >= TOKEN_REUSE_SECONDS:
            self._token = jwt.encode(
                {"iss": self._team_id, "iat": int(now)},
                self._key,
                algorithm="ES256",
                headers={"kid": self._key_id},
            )
            self._token_issued = now
        return self._token

    async def send(
        self, device: DeliveryTarget, envelope: dict[str, Any], ttl: int
    ) -> DeliveryResult:
        token = device.address.get("token")
        if not isinstance(token, str) or not token.isalnum():
            return self._result(device, Outcome.FAILED, detail="device has no valid APNs token")
        payload = {
            "aps": {
                "alert": {"title": "Sign-in request", "body": "Open tapgate to review it"},
                "sound": "default",
                "mutable-content": 1,
            },
            "tapgate": envelope,
        }
        headers = {
            "authorization": f"bearer {self._provider_token()}",
            "apns-topic": self._topic,
            "apns-push-type": "alert",
            "apns-priority": "10",
            "apns-expiration": str(int(self._clock()) + max(ttl, 0)),
            "apns-collapse-id": device.transaction_id[:64],
        }
        try:
            response = await self._client.post(
                f"{self._base}/3/device/{token}", json=payload, headers=headers
            )
        except httpx.HTTPError as exc:
            return self._result(device, Outcome.RETRY, detail=f"{type(exc).__name__}: {exc}")
        return self._map(device, response)

    def _map(self, device: DeliveryTarget, response: httpx.Response) -> DeliveryResult:
        if response.status_code == 200:
            return self._result(
                device, Outcome.DELIVERED, message_id=response.headers.get("apns-id")
            )
        try:
            body = response.json()
        except ValueError:
            body = {}
        reason = str(body.get("reason") or f"HTTP {response.status_code}")
        if response.status_code == 410:
            return self._unregistered(device, reason, body.get("timestamp"))
        if reason in _STALE_REASONS:
            return self._result(device, Outcome.STALE, detail=reason)
        if reason == "ExpiredProviderToken":
            self._token = None
            return self._result(device, Outcome.RETRY, detail=reason)
        if response.status_code == 429 or response.status_code >= 500:
            retry_after = retry_after_seconds(response.headers.get("retry-after"))
            return self._result(device, Outcome.RETRY, retry_after=retry_after, detail=reason)
        return self._result(device, Outcome.FAILED, detail=reason)

    def _unregistered(self, device: DeliveryTarget, reason: str, timestamp: Any) -> DeliveryResult:
        """Mark the token stale unless the device registered it after the time Apple gives as
        the moment the token became invalid, since such a token is newer than that verdict."""
        if isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
            invalid_since = datetime.fromtimestamp(timestamp / 1000, UTC)
            if invalid_since < device.registered_at:
                return self._result(
                    device,
                    Outcome.FAILED,
                    detail=f"{reason} before the token was registered ({invalid_since.isoformat()})",
                )
        return self._result(device, Outcome.STALE, detail=reason)

    def _result(
        self,
        device: DeliveryTarget,
        outcome: Outcome,
        *,
        message_id: str | None = None,
        retry_after: float | None = None,
        detail: str = "",
    ) -> DeliveryResult:
        return DeliveryResult(outcome, self.name, device.device_id, message_id, retry_after, detail)

    async def close(self) -> None:
        await self._client.aclose()
