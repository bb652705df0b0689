"""The hosted login page for an sso application: approved, denied, and links it refuses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from playwright.sync_api import Page, expect

from tests.support import Server
from tests.web.conftest import PASSWORD, enroll_by_command, number_on, phone_for


def start(
    page: Page,
    server: Server,
    username: str,
    return_to: str | None = None,
    application: str = "intranet",
) -> None:
    target = return_to or f"{server.base}/signed-in?next=reports"
    page.goto(f"/login?application={application}&return_to={target}")
    expect(page.get_by_role("heading", name=f"Sign in to {application}")).to_be_visible()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_approved_login_returns_with_transaction(
    server: Server, page: Page, tmp_path: Path, shot: Any
) -> None:
    phone = phone_for(server, tmp_path)
    enroll_by_command(server, phone, "fatih")
    start(page, server, "fatih")
    page.wait_for_url("**/login/wait")
    shot(page, "waiting")

    transaction_id = phone.transaction_id()
    phone.answer("approve", number_on(page))

    page.wait_for_url("**/login/done")
    expect(page.get_by_role("heading", name="Approved")).to_be_visible()
    shot(page, "approved")
    link = page.locator("#continue").get_attribute("href") or ""
    parts = urlsplit(link)
    assert f"{parts.scheme}://{parts.netloc}" == server.base
    assert parts.path == "/signed-in"
    assert parse_qs(parts.query) == {"next": ["reports"], "tapgate_transaction": [transaction_id]}


def test_denied_login_offers_try_again(
    server: Server, page: Page, tmp_path: Path, shot: Any
) -> None:
    phone = phone_for(server, tmp_path)
    enroll_by_command(server, phone, "gül")
    start(page, server, "gül")
    page.wait_for_url("**/login/wait")

    phone.answer("deny")

    page.wait_for_url("**/login/done")
    expect(page.get_by_role("heading", name="Denied")).to_be_visible()
    expect(page.get_by_text("The sign-in was denied on your phone.")).to_be_visible()
    shot(page, "denied")
    page.get_by_role("link", name="Try again").click()
    expect(page.get_by_role("heading", name="Sign in to intranet")).to_be_visible()
    assert "return_to=" in page.url


def test_unanswered_login_expires(server: Server, page: Page, tmp_path: Path, shot: Any) -> None:
    phone = phone_for(server, tmp_path)
    enroll_by_command(server, phone, "leyla")
    start(page, server, "leyla", application="quick-sso")
    page.wait_for_url("**/login/wait")
    expect(page.get_by_text("Check the details and approve it if it is you")).to_be_visible()

    page.wait_for_url("**/login/done", timeout=20_000)

    expect(page.get_by_role("heading", name="Expired")).to_be_visible()
    shot(page, "expired")
    expect(page.get_by_role("link", name="Try again")).to_have_attribute(
        "href", re.compile(r"^/login\?application=quick-sso&return_to=")
    )


def test_code_mode_login_takes_phone_code(
    server: Server, page: Page, tmp_path: Path, shot: Any
) -> None:
    phone = phone_for(server, tmp_path)
    enroll_by_command(server, phone, "mert")
    start(page, server, "mert", application="code-sso")
    page.wait_for_url("**/login/wait")
    page.get_by_label("Code from your phone").fill("123456")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#form-error")).to_contain_text("Approve the sign-in on your phone first")

    code = phone.answer("approve")
    assert re.fullmatch(r"\d{6}", code)
    wrong = "000000" if code != "000000" else "111111"
    page.get_by_label("Code from your phone").fill(wrong)
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#form-error")).to_contain_text("That code is wrong")
    shot(page, "wrong-code")
    page.get_by_label("Code from your phone").fill(code)
    page.get_by_role("button", name="Continue").click()

    page.wait_for_url("**/login/done")
    expect(page.get_by_role("heading", name="Approved")).to_be_visible()


def test_user_without_phone_is_told(server: Server, page: Page) -> None:
    start(page, server, "jale")

    expect(page.locator("#form-error")).to_contain_text("You have no enrolled phone yet")


def test_foreign_return_to_is_refused(server: Server, page: Page, shot: Any) -> None:
    response = page.goto("/login?application=intranet&return_to=https://evil.example/steal")

    assert response is not None and response.status == 400
    expect(page.get_by_role("heading", name="Sign-in link not accepted")).to_be_visible()
    expect(page.locator("form[action='/login']")).to_have_count(0)
    shot(page, "refused")


def test_return_to_tricks_are_refused(server: Server) -> None:
    tricks = [
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "https://evil.example@127.0.0.1/",
        f"{server.base}.evil.example/",
        "http://127.0.0.1:1/other-port",
    ]
    for trick in tricks:
        response = httpx.get(
            f"{server.base}/login", params={"application": "intranet", "return_to": trick}
        )
        assert response.status_code == 400, trick


def test_unknown_application_is_refused(server: Server) -> None:
    response = httpx.get(f"{server.base}/login", params={"application": "no-such-app"})

    assert response.status_code == 400
    assert "does not exist" in response.text


def test_api_application_cannot_use_hosted_login(server: Server) -> None:
    response = httpx.get(f"{server.base}/login", params={"application": "portal"})

    assert response.status_code == 400
