"""What every page promises: CSRF, security headers, cookie flags, Turkish, small screens."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support import Server
from tests.web.conftest import new_context

PAGES = ("/register", "/login", "/login?application=intranet")


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


@pytest.mark.parametrize("path", ["/register", "/login"])
def test_post_without_csrf_token_is_forbidden(server: Server, path: str) -> None:
    with httpx.Client(base_url=server.base) as client:
        client.get(path)
        response = client.post(path, data={"username": "kaan", "password": "x"})

    assert response.status_code == 403
    assert "This form has expired" in response.text


def test_post_with_wrong_csrf_token_is_forbidden(server: Server) -> None:
    with httpx.Client(base_url=server.base) as client:
        client.get("/register")
        response = client.post(
            "/register", data={"username": "kaan", "password": "x", "csrf_token": "guess"}
        )

    assert response.status_code == 403


def test_post_without_session_is_forbidden(server: Server) -> None:
    response = httpx.post(f"{server.base}/admin/policies", data={"csrf_token": "x", "values": "IT"})

    assert response.status_code == 403


def test_post_with_session_token_is_accepted(server: Server) -> None:
    with httpx.Client(base_url=server.base) as client:
        token = csrf_token(client.get("/register").text)
        response = client.post("/register", data={"username": "", "csrf_token": token})

    assert response.status_code == 400
    assert "Enter your username." in response.text


@pytest.mark.parametrize("path", PAGES)
def test_security_headers_are_sent(server: Server, path: str) -> None:
    response = httpx.get(server.base + path)

    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["cache-control"] == "no-store"


def test_session_cookie_is_http_only_and_same_site(server: Server) -> None:
    response = httpx.get(f"{server.base}/register")

    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith("tapgate_session=")
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    # The test server's public_url is http on loopback; with https the cookie is also Secure.
    assert "secure" not in cookie


def test_static_files_are_served(server: Server) -> None:
    for path, kind in (
        ("/static/tapgate.css", "text/css"),
        ("/static/js/waiting.js", "javascript"),
    ):
        response = httpx.get(server.base + path)
        assert response.status_code == 200, path
        assert kind in response.headers["content-type"], path


def test_pages_run_without_csp_violations(server: Server, page: Page) -> None:
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    for path in PAGES:
        page.goto(path)
        expect(page.locator("form").first).to_be_attached()

    assert not [text for text in messages if "Content Security Policy" in text]


def test_turkish_interface(server: Server, browser: Browser, shot: Any) -> None:
    context = new_context(browser, server, locale="tr-TR")
    page = context.new_page()
    page.goto("/register")

    expect(page.locator("html")).to_have_attribute("lang", "tr")
    expect(page.get_by_role("heading", name="Telefonunuzu kaydedin")).to_be_visible()
    expect(page.get_by_label("Kullanıcı adı")).to_be_visible()
    expect(page.get_by_label("Parola")).to_be_visible()
    shot(page, "register-tr")

    page.get_by_role("button", name="Giriş yap").click()
    expect(page.locator("#form-error")).to_have_text("Kullanıcı adınızı girin.")
    page.get_by_label("Kullanıcı adı").fill("kaan")
    page.get_by_label("Parola").fill("yanlış")
    page.get_by_role("button", name="Giriş yap").click()
    expect(page.locator("#form-error")).to_have_text("Kullanıcı adı veya parola yanlış.")

    page.goto("/login")
    expect(page.get_by_role("heading", name="tapgate konsoluna giriş")).to_be_visible()
    shot(page, "console-tr")
    context.close()


def test_language_switch_is_remembered(server: Server, browser: Browser) -> None:
    context = new_context(browser, server, locale="tr-TR")
    page = context.new_page()
    page.goto("/login")
    expect(page.get_by_role("button", name="Giriş yap")).to_be_visible()

    page.get_by_role("link", name="English").click()
    page.wait_for_url("**/login")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    page.goto("/register")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    context.close()


def test_language_switch_stays_on_this_site(server: Server) -> None:
    response = httpx.get(f"{server.base}/language/tr", params={"next": "//evil.example/"})

    assert response.status_code == 303
    assert response.headers["location"] == "/register"


def test_small_screen_layout(server: Server, browser: Browser, shot: Any) -> None:
    context = browser.new_context(
        base_url=server.base, viewport={"width": 390, "height": 844}, is_mobile=True
    )
    page = context.new_page()
    for path in ("/register", "/login"):
        page.goto(path)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, path
        shot(page, "mobile" + path.replace("/", "-"))
    context.close()
