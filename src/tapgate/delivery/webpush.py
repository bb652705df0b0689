"""The `webpush` provider: Web Push with VAPID (RFC 8292) and aes128gcm payloads (RFC 8291).

The device registers its browser's push subscription ({endpoint, keys: {p256dh, auth}}). The
payload, already the sealed challenge, is encrypted once more to the subscription as RFC 8291
requires. Endpoints are accepted only on the configured push service hosts, since the URL comes
from the device and tapgate must not post to arbitrary hosts on its behalf.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import http_ece
import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from tapgate.delivery.base import DeliveryResult, DeliveryTarget, Outcome, retry_after_seconds
from tapgate.delivery.config import WEBPUSH_HOSTS, ProviderSettings
from tapgate.delivery.http import error_detail, new_client
from tapgate.errors import ConfigError

log = logging.getLogger(__name__)

# RFC 8292 §2: the JWT must expire within 24 hours; 12 hours leaves room for clock skew.
_VAPID_LIFETIME = 12 * 3600


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class WebPushProvider:
    name = "webpush"

    def __init__(self, settings: ProviderSettings, clock: Callable[[], float] = time.time) -> None:
        try:
            self._vapid = Vapid02.from_pem(settings.credential.reveal().encode())
        except Exception as exc:  # py-vapid raises bare ValueError/TypeError subclasses alike
            raise ConfigError(
                "delivery provider 'webpush': vapid_private_key_file is not a PEM P-256 key"
            ) from exc
        self._subject = str(settings.options["subject"])
        self._hosts = tuple(settings.options.get("allowed_endpoint_hosts", WEBPUSH_HOSTS))
        self._client = new_client(settings.options)
        self._clock = clock

    def _endpoint_allowed(self, endpoint: str) -> bool:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        if parts.scheme != "https" and not (parts.scheme == "http" and host == "127.0.0.1"):
            return False
        return any(fnmatch.fnmatchcase(host, pattern) for pattern in self._hosts)

    def _authorization(self, endpoint: str) -> str:
        parts = urlsplit(endpoint)
        claims = {
            "aud": f"{parts.scheme}://{parts.netloc}",
            "exp": int(self._clock()) + _VAPID_LIFETIME,
            "sub": self._subject,
        }
        return str(self._vapid.sign(claims)["Authorization"])

    async def send(
        self, device: DeliveryTarget, envelope: dict[str, Any], ttl: int
    ) -> DeliveryResult:
        endpoint = device.address.get("endpoint")
        keys = device.address.get("keys")
        if not isinstance(endpoint, str) or not isinstance(keys, dict):
            return self._result(device, Outcome.FAILED, detail="device has no push subscription")
        if not self._endpoint_allowed(endpoint):
            return self._result(
                device,
                Outcome.FAILED,
                detail=f"endpoint host {urlsplit(endpoint).hostname!r} is not in allowed_endpoint_hosts",
            )
        try:
            body = http_ece.encrypt(
                json.dumps(envelope, separators=(",", ":")).encode(),
                private_key=ec.generate_private_key(ec.SECP256R1()),
                dh=_b64url(str(keys["p256dh"])),
                auth_secret=_b64url(str(keys["auth"])),
                version="aes128gcm",
            )
        except (KeyError, ValueError, TypeError) as exc:
            return self._result(device, Outcome.FAILED, detail=f"invalid subscription keys: {exc}")
        headers = {
            "Authorization": self._authorization(endpoint),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(max(ttl, 0)),
            "Urgency": "high",
            # RFC 8030 §5.4: a newer message with the same topic replaces an undelivered one.
            "Topic": device.transaction_id[:32],
        }
        try:
            response = await self._client.post(endpoint, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return self._result(device, Outcome.RETRY, detail=f"{type(exc).__name__}: {exc}")
        status = response.status_code
        if status in (200, 201, 202):
            return self._result(
                device, Outcome.DELIVERED, message_id=response.headers.get("location")
            )
        detail = f"HTTP {status} {error_detail(response, 100)}".strip()
        if status in (404, 410):
            return self._result(device, Outcome.STALE, detail=detail)
        if status == 429 or status >= 500:
            retry_after = retry_after_seconds(response.headers.get("retry-after"))
            return self._result(device, Outcome.RETRY, retry_after=retry_after, detail=detail)
        return self._result(device, Outcome.FAILED, detail=detail)

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
