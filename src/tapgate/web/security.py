"""Browser-facing protections: the session cookie, CSRF tokens, security headers, client address.

CSRF uses the synchronizer-token pattern: each session stores one random token, every form sends
it back in the `csrf_token` field, and a POST without the matching token is rejected with 403
before its handler runs. The session itself is Starlette's signed cookie (HttpOnly,
SameSite=Lax, Secure when `public_url` is https).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets

from fastapi import FastAPI, Request
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tapgate.settings import Settings

log = logging.getLogger(__name__)

SESSION_COOKIE = "tapgate_session"
# The cookie outlives every sign-in it carries; each kind of sign-in checks its own age.
SESSION_MAX_AGE = 12 * 60 * 60
CSRF_FIELD = "csrf_token"
_CSRF_KEY = "csrf"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


# The Auth API, the device API, the token endpoint and the health and metrics probes.
API_PATH_PREFIXES = ("/api/", "/device/", "/oauth/", "/healthz", "/readyz", "/metrics")


class CsrfRejected(Exception):
    """A state-changing request arrived without the session's CSRF token."""


def csrf_token(request: Request) -> str:
    """Return the session's CSRF token, creating it on first use."""
    token = request.session.get(_CSRF_KEY)
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        request.session[_CSRF_KEY] = token
    return token


def rotate_csrf_token(request: Request) -> None:
    """Replace the token after a sign-in, so a token seen before it is worth nothing after."""
    request.session[_CSRF_KEY] = secrets.token_urlsafe(32)


async def require_csrf(request: Request) -> None:
    """Reject a POST whose form does not carry the session's CSRF token (router dependency)."""
    if request.method != "POST":
        return
    expected = request.session.get(_CSRF_KEY)
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    if not isinstance(expected, str) or not isinstance(sent, str) or not sent:
        raise CsrfRejected()
    if not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CsrfRejected()


def security_headers(*, https: bool) -> list[tuple[bytes, bytes]]:
    """Return the content security policy and related headers, encoded for ASGI."""
    headers = {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    }
    if https:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]


class SecurityHeaders:
    """Add the content security policy and related headers to every response that lacks them."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        # Encoded once here, because this runs on every response.
        self.raw_headers = security_headers(https=https)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(raw for raw in self.raw_headers if raw[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BrowserSession:
    """Starlette's session middleware, on every path except the machine APIs.

    Applications and devices never send the session cookie and no API route reads the session,
    so their requests skip the cookie's signature check and the response wrapper.
    """

    def __init__(self, app: ASGIApp, *, secret_key: str, https: bool) -> None:
        self.app = app
        self.with_session = SessionMiddleware(
            app,
            secret_key=secret_key,
            session_cookie=SESSION_COOKIE,
            max_age=SESSION_MAX_AGE,
            same_site="lax",
            https_only=https,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(API_PATH_PREFIXES):
            await self.app(scope, receive, send)
            return
        await self.with_session(scope, receive, send)


def install_security(app: FastAPI, settings: Settings, session_key: str) -> None:
    """Add the session cookie and the security headers to `app`."""
    https = settings.public_url.startswith("https://")
    app.add_middleware(BrowserSession, secret_key=session_key, https=https)
    app.add_middleware(SecurityHeaders, https=https)


def client_ip(request: Request, settings: Settings) -> str | None:
    """Return the browser's address: the peer, or X-Forwarded-For when the peer is a trusted proxy.

    The forwarded list is read from the right, skipping trusted proxies, so a browser cannot
    choose its own address by sending the header itself.
    """
    peer = request.client.host if request.client else None
    if peer is None or not settings.trusted_proxies:
        return peer
    if not _is_trusted(peer, settings):
        return peer

    forwarded = request.headers.get("x-forwarded-for", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            log.info("ignoring malformed X-Forwarded-For peer=%s", peer)
            return peer
        if not _is_trusted(str(address), settings):
            return str(address)
    return peer


def _is_trusted(address: str, settings: Settings) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in settings.trusted_proxies)
