"""Stand-ins for FCM, APNs and Web Push that speak each service's wire protocol.

Each checks what the real service checks (the JWT-bearer grant and bearer token; the ES256
provider token and apns-* headers over HTTP/2; the VAPID JWT and the aes128gcm payload) and can
answer a given token or subscription with any of the service's real errors, queued per address.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import http_ece
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Canned:
    """One queued error answer: status, JSON body and headers."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


class MockBase:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.rejected: list[str] = []
        self.errors: dict[str, list[Canned]] = defaultdict(list)
        self.base = ""

    def fail(self, address: str, *answers: Canned) -> None:
        """Answer the next requests for `address` with these errors, in order."""
        self.errors[address].extend(answers)

    def _canned(self, address: str) -> Response | None:
        if self.errors.get(address):
            canned = self.errors[address].pop(0)
            return JSONResponse(canned.body, status_code=canned.status, headers=canned.headers)
        return None

    def _reject(self, status: int, reason: str) -> Response:
        self.rejected.append(reason)
        return JSONResponse({"error": reason}, status_code=status)


# ---- FCM -------------------------------------------------------------------------------------


class FcmMock(MockBase):
    PROJECT = "tapgate-test"

    def __init__(self) -> None:
        super().__init__()
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.email = "push@tapgate-test.iam.gserviceaccount.com"
        self.tokens: set[str] = set()
        self.token_requests = 0

    def service_account(self) -> str:
        pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return json.dumps(
            {
                "type": "service_account",
                "project_id": self.PROJECT,
                "private_key_id": "key-1",
                "private_key": pem,
                "client_email": self.email,
                "token_uri": f"{self.base}/token",
            }
        )

    def unregistered(self) -> Canned:
        return Canned(
            404,
            {
                "error": {
                    "code": 404,
                    "message": "Requested entity was not found.",
                    "status": "NOT_FOUND",
                    "details": [
                        {
                            "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                            "errorCode": "UNREGISTERED",
                        }
                    ],
                }
            },
        )

    def quota(self, retry_after: int) -> Canned:
        return Canned(
            429,
            {
                "error": {
                    "code": 429,
                    "status": "RESOURCE_EXHAUSTED",
                    "details": [
                        {
                            "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                            "errorCode": "QUOTA_EXCEEDED",
                        }
                    ],
                }
            },
            {"Retry-After": str(retry_after)},
        )

    def unavailable(self) -> Canned:
        return Canned(503, {"error": {"code": 503, "status": "UNAVAILABLE"}})

    async def token(self, request: Request) -> Response:
        form = await request.form()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self._reject(400, "unsupported_grant_type")
        try:
            claims = jwt.decode(
                str(form.get("assertion")),
                self.key.public_key(),
                algorithms=["RS256"],
                audience=f"{self.base}/token",
                issuer=self.email,
            )
        except jwt.PyJWTError as exc:
            return self._reject(400, f"invalid_grant: {exc}")
        if claims.get("scope") != "https://www.googleapis.com/auth/firebase.messaging":
            return self._reject(400, "invalid_scope")
        if claims["exp"] - claims["iat"] > 3600:
            return self._reject(400, "invalid_grant: assertion lives over an hour")
        self.token_requests += 1
        access = secrets.token_urlsafe(24)
        self.tokens.add(access)
        return JSONResponse({"access_token": access, "expires_in": 3599, "token_type": "Bearer"})

    async def send(self, request: Request) -> Response:
        # Every handler reads the whole body first: hypercorn fails on HTTP/2 data frames that
        # arrive for a stream it already answered.
        body = await request.json()
        if request.scope.get("http_version") != "2":
            return self._reject(505, "HTTP/2 expected")
        if request.path_params["project"] != self.PROJECT:
            return self._reject(404, "unknown project")
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or bearer not in self.tokens:
            return self._reject(401, "UNAUTHENTICATED")
        message = body["message"]
        token = message["token"]
        canned = self._canned(token)
        if canned is not None:
            return canned
        android = message.get("android", {})
        if android.get("priority") != "HIGH" or not str(android.get("ttl", "")).endswith("s"):
            return self._reject(400, "INVALID_ARGUMENT: high priority and ttl expected")
        if not all(isinstance(v, str) for v in message.get("data", {}).values()):
            return self._reject(400, "INVALID_ARGUMENT: data values must be strings")
        self.received.append(message)
        return JSONResponse({"name": f"projects/{self.PROJECT}/messages/{len(self.received)}"})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/token", self.token, methods=["POST"]),
                Route("/v1/projects/{project}/messages:send", self.send, methods=["POST"]),
            ]
        )


# ---- APNs ------------------------------------------------------------------------------------


class ApnsMock(MockBase):
    TEAM_ID = "TEAM123456"
    KEY_ID = "KEY1234567"
    TOPIC = "com.example.tapgate"

    def __init__(self) -> None:
        super().__init__()
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.provider_tokens: set[str] = set()

    def key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    @staticmethod
    def gone(timestamp_ms: int) -> Canned:
        return Canned(410, {"reason": "Unregistered", "timestamp": timestamp_ms})

    @staticmethod
    def bad_token() -> Canned:
        return Canned(400, {"reason": "BadDeviceToken"})

    @staticmethod
    def too_many(retry_after: int | None = None) -> Canned:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return Canned(429, {"reason": "TooManyRequests"}, headers)

    @staticmethod
    def unavailable() -> Canned:
        return Canned(503, {"reason": "ServiceUnavailable"})

    async def push(self, request: Request) -> Response:
        payload = await request.json()
        if request.scope.get("http_version") != "2":
            return self._reject(505, "HTTP/2 expected")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "bearer":
            return self._reject(403, "MissingProviderToken")
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, self.key.public_key(), algorithms=["ES256"])
        except jwt.PyJWTError:
            return self._reject(403, "InvalidProviderToken")
        if header.get("kid") != self.KEY_ID or claims.get("iss") != self.TEAM_ID:
            return self._reject(403, "InvalidProviderToken")
        if abs(time.time() - claims.get("iat", 0)) > 3600:
            return self._reject(403, "ExpiredProviderToken")
        headers = request.headers
        if headers.get("apns-topic") != self.TOPIC:
            return self._reject(400, "TopicDisallowed")
        if headers.get("apns-push-type") not in ("alert", "background"):
            return self._reject(400, "InvalidPushType")
        if headers.get("apns-priority") not in ("5", "10"):
            return self._reject(400, "BadPriority")
        if not headers.get("apns-expiration", "").isdigit():
            return self._reject(400, "BadExpirationDate")
        collapse = headers.get("apns-collapse-id", "")
        if not collapse or len(collapse.encode()) > 64:
            return self._reject(400, "BadCollapseId")
        device_token = request.path_params["token"]
        canned = self._canned(device_token)
        if canned is not None:
            return canned
        self.provider_tokens.add(token)
        self.received.append({"token": device_token, "headers": dict(headers), "payload": payload})
        return Response(status_code=200, headers={"apns-id": f"apns-{len(self.received)}"})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/3/device/{token}", self.push, methods=["POST"])])


# ---- Web Push --------------------------------------------------------------------------------


@dataclass
class Subscription:
    """A browser's push subscription, with the private keys only the browser would hold."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes

    def as_json(self) -> dict[str, Any]:
        point = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": self.endpoint,
            "keys": {"p256dh": b64url(point), "auth": b64url(self.auth)},
        }


class WebPushMock(MockBase):
    def __init__(self) -> None:
        super().__init__()
        self.subscriptions: dict[str, Subscription] = {}

    def subscribe(self) -> Subscription:
        sub_id = secrets.token_urlsafe(12)
        subscription = Subscription(
            f"{self.base}/push/{sub_id}",
            ec.generate_private_key(ec.SECP256R1()),
            secrets.token_bytes(16),
        )
        self.subscriptions[sub_id] = subscription
        return subscription

    async def push(self, request: Request) -> Response:
        body = await request.body()
        sub_id = request.path_params["sub"]
        subscription = self.subscriptions.get(sub_id)
        if subscription is None:
            return self._reject(404, "no such subscription")
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        fields = dict(part.strip().split("=", 1) for part in credentials.split(",") if "=" in part)
        if scheme != "vapid" or "t" not in fields or "k" not in fields:
            return self._reject(401, "VAPID authorization missing")
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP256R1(), b64url_decode(fields["k"])
            )
            claims = jwt.decode(fields["t"], public, algorithms=["ES256"], audience=self.base)
        except (jwt.PyJWTError, ValueError):
            return self._reject(403, "VAPID JWT invalid")
        if claims["exp"] > time.time() + 24 * 3600:
            return self._reject(403, "VAPID JWT lives over 24 hours")
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            return self._reject(403, "VAPID sub must be a mailto: or https: URL")
        if request.headers.get("content-encoding") != "aes128gcm":
            return self._reject(415, "aes128gcm expected")
        if not request.headers.get("ttl", "").isdigit():
            return self._reject(400, "TTL header missing")
        canned = self._canned(sub_id)
        if canned is not None:
            return canned
        plain = http_ece.decrypt(
            body,
            private_key=subscription.private_key,
            auth_secret=subscription.auth,
            version="aes128gcm",
        )
        self.received.append(
            {
                "subscription": sub_id,
                "ttl": int(request.headers["ttl"]),
                "urgency": request.headers.get("urgency"),
                "topic": request.headers.get("topic"),
                "payload": json.loads(plain),
            }
        )
        return Response(
            status_code=201, headers={"Location": f"{self.base}/message/{len(self.received)}"}
        )

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/push/{sub}", self.push, methods=["POST"])])
