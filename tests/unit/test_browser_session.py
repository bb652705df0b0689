"""The session cookie on browser pages only, and the security headers on every response."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tapgate.web.security import SESSION_COOKIE, BrowserSession, SecurityHeaders


def make_app() -> FastAPI:
    app = FastAPI()

    async def probe(request: Request) -> JSONResponse:
        has_session = "session" in request.scope
        if has_session:
            request.session["seen"] = True
        return JSONResponse({"session": has_session})

    for path in ("/register", "/admin", "/api/v1/auth", "/device/v1/answer", "/healthz"):
        app.add_api_route(path, probe)
    app.add_middleware(BrowserSession, secret_key="k" * 32, https=False)
    app.add_middleware(SecurityHeaders, https=False)
    return app


async def get(app: FastAPI, path: str, cookies: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", cookies=cookies
    ) as client:
        return await client.get(path)


@pytest.mark.parametrize("path", ["/register", "/admin"])
async def test_page_gets_session(path: str) -> None:
    response = await get(make_app(), path)

    assert response.json() == {"session": True}
    assert response.headers["set-cookie"].startswith(f"{SESSION_COOKIE}=")


@pytest.mark.parametrize("path", ["/api/v1/auth", "/device/v1/answer", "/healthz"])
async def test_api_skips_session(path: str) -> None:
    response = await get(make_app(), path, cookies={SESSION_COOKIE: "forged"})

    assert response.json() == {"session": False}
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize("path", ["/register", "/api/v1/auth"])
async def test_security_headers_on_every_path(path: str) -> None:
    response = await get(make_app(), path)

    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_security_headers_keep_route_value() -> None:
    app = make_app()

    async def framed() -> JSONResponse:
        return JSONResponse({}, headers={"X-Frame-Options": "SAMEORIGIN"})

    app.add_api_route("/framed", framed)
    response = await get(app, "/framed")

    assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
