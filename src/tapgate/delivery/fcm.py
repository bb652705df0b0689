"""The `fcm` provider: Firebase Cloud Messaging HTTP v1 with a service account.

Access tokens come from the OAuth 2.0 JWT-bearer grant (RFC 7523 §2.1): a JWT signed with the
service account's RSA key is exchanged at the token URL for a bearer token, cached until a
minute before it expires. Challenges go as high-priority data messages whose TTL is the
challenge's remaining lifetime; the data carries only the sealed challenge.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from tapgate.delivery.base import DeliveryResult, DeliveryTarget, Outcome, retry_after_seconds
from tapgate.delivery.config import FCM_SEND_URL, FCM_TOKEN_URL, ProviderSettings
from tapgate.delivery.http import error_detail, new_client
from tapgate.errors import ConfigError

log = logging.getLogger(__name__)

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_ASSERTION_LIFETIME = 3600
_TOKEN_MARGIN = 60


class FcmProvider:
    name = "fcm"

    def __init__(self, settings: ProviderSettings, clock: Callable[[], float] = time.time) -> None:
        try:
            account = json.loads(settings.credential.reveal())
            self._email = str(account["client_email"])
            self._private_key = str(account["private_key"])
            self._key_id = str(account.get("private_key_id", ""))
            self._project = str(account["project_id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                "delivery provider 'fcm': the service account file is not a Google service "
                "account JSON with client_email, private_key and project_id"
            ) from exc
        self._token_url = str(settings.options.get("token_url", FCM_TOKEN_URL))
        send_base = str(settings.options.get("send_url", FCM_SEND_URL))
        self._send_url = f"{send_base}/v1/projects/{self._project}/messages:send"
        self._client = new_client(settings.options)
        self._clock = clock
        self._token: str | None = None
        self._token_expires = 0.0
        self._lock = asyncio.Lock()

    async def _access_token(self) -> str:
        async with self._lock:
            now = self._clock()
            if self._token is not None and now < self._token_expires - _TOKEN_MARGIN:
                return self._token
            issued = int(now)
            assertion = jwt.encode(
                {
                    "iss": self._email,
                    "scope": SCOPE,
                    "aud": self._token_url,
                    "iat": issued,
                    "exp": issued + _ASSERTION_LIFETIME,
                },
                self._private_key,
                algorithm="RS256",
                headers={"kid": self._key_id} if self._key_id else None,
            )
            response = await self._client.post(
                self._token_url, data={"grant_type": GRANT_TYPE, "assertion": assertion}
            )
            if response.status_code != 200:
                raise _TokenError(response)
            body = response.json()
            self._token = str(body["access_token"])
            self._token_expires = now + float(body.get("expires_in", 3600))
            log.info("fcm access token obtained expires_in=%s", body.get("expires_in"))
            return self._token

    def _forget_token(self) -> None:
        self._token = None

    async def send(
        self, device: DeliveryTarget, envelope: dict[str, Any], ttl: int
    ) -> DeliveryResult:
        token = device.address.get("token")
        if not isinstance(token, str) or not token:
            return self._result(device, Outcome.FAILED, detail="device has no FCM token")
        message = {
            "message": {
                "token": token,
                "data": {"tapgate": json.dumps(envelope, separators=(",", ":"))},
                "android": {
                    "priority": "HIGH",
                    "ttl": f"{max(ttl, 0)}s",
                    "collapse_key": device.transaction_id[:64],
                },
            }
        }
        try:
            bearer = await self._access_token()
            response = await self._client.post(
                self._send_url, json=message, headers={"Authorization": f"Bearer {bearer}"}
            )
        except _TokenError as exc:
            outcome = Outcome.RETRY if exc.status >= 500 or exc.status == 429 else Outcome.FAILED
            return self._result(device, outcome, detail=f"token request: {exc}")
        except httpx.HTTPError as exc:
            return self._result(device, Outcome.RETRY, detail=f"{type(exc).__name__}: {exc}")
        return self._map(device, response)

    def _map(self, device: DeliveryTarget, response: httpx.Response) -> DeliveryResult:
        if response.status_code == 200:
            return self._result(device, Outcome.DELIVERED, message_id=response.json().get("name"))
        code = _error_code(response)
        retry_after = retry_after_seconds(response.headers.get("retry-after"))
        if code == "UNREGISTERED":
            return self._result(device, Outcome.STALE, detail=code)
        if response.status_code == 401:
            # The cached access token was revoked or expired early: fetch a new one next time.
            self._forget_token()
            return self._result(device, Outcome.RETRY, detail=code)
        if response.status_code == 429 or response.status_code >= 500:
            return self._result(device, Outcome.RETRY, retry_after=retry_after, detail=code)
        return self._result(device, Outcome.FAILED, detail=code)

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


class _TokenError(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code} {error_detail(response)}")
        self.status = response.status_code


def _error_code(response: httpx.Response) -> str:
    """Return FCM's errorCode (UNREGISTERED, QUOTA_EXCEEDED, ...), else the error status."""
    try:
        error = response.json().get("error", {})
    except ValueError:
        return f"HTTP {response.status_code}"
    for detail in error.get("details", []) or []:
        if isinstance(detail, dict) and detail.get("errorCode"):
            return str(detail["errorCode"])
    return str(error.get("status") or f"HTTP {response.status_code}")
