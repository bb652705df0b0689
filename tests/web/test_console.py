"""The admin console in a browser: sign-in with push, first phone, policies, audit export, forms."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.support import Server
from tests.web.conftest import (
    ADMIN_PASSWORD,
    Phone,
    decode_qr,
    new_context,
    number_on,
    phone_for,
    tapgate,
)


def enter_password(page: Page, name: str, password: str) -> None:
    page.goto("/admin")
    page.wait_for_url(re.compile(r"/login\?return_to=%2Fadmin$"))
    expect(page.get_by_role("heading", name="Sign in to the tapgate console")).to_be_visible()
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def enroll_first_phone(page: Page, phone: Phone, tmp_path: Path, shot: Any = None) -> None:
    """On the page the password led to, enroll `phone` and confirm it."""
    page.wait_for_url("**/admin/enroll")
    if shot:
        shot(page, "enroll-intro")
    page.get_by_role("button", name="Show the QR code").click()
    code = phone.enroll(decode_qr(page, tmp_path), "Yönetici telefonu")
    assert code is not None
    page.wait_for_url("**/admin/enroll/confirm")
    page.get_by_label("Confirmation code").fill(code)
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(re.compile(r"/admin$"))


def approve_sign_in(page: Page, phone: Phone) -> None:
    page.wait_for_url("**/login/wait")
    number = number_on(page)
    assert re.fullmatch(r"\d{6}", number)
    phone.answer("approve", number)
    page.wait_for_url(re.compile(r"/admin$"))


@pytest.fixture(scope="module")
def admin_session(
    browser: Browser, server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[BrowserContext, Phone]]:
    """A browser context signed in to the console as `yonetici`, and that administrator's phone."""
    context = new_context(browser, server)
    page = context.new_page()
    phone = phone_for(server, tmp_path_factory.mktemp("admin"))
    enter_password(page, "yonetici", ADMIN_PASSWORD)
    enroll_first_phone(page, phone, phone.state.parent)
    page.close()
    yield context, phone
    context.close()


@pytest.fixture(scope="module")
def admin(admin_session: tuple[BrowserContext, Phone]) -> BrowserContext:
    return admin_session[0]


@pytest.fixture(scope="module")
def admin_phone(admin_session: tuple[BrowserContext, Phone]) -> Phone:
    return admin_session[1]


@pytest.fixture
def admin_page(admin: BrowserContext) -> Iterator[Page]:
    page = admin.new_page()
    yield page
    page.close()


def test_console_requires_sign_in(server: Server) -> None:
    response = httpx.get(f"{server.base}/admin/policies")

    assert response.status_code == 303
    assert response.headers["location"] == "/login?return_to=%2Fadmin%2Fpolicies"


def test_first_sign_in_enrolls_then_push_signs_in(
    server: Server,
    page: Page,
    tmp_path: Path,
    shot: Any,
) -> None:
    tapgate(server, "admin", "create", "ikinci", "--password-stdin", stdin="Ikinci-Parola-22\n")
    phone = phone_for(server, tmp_path)

    enter_password(page, "ikinci", "Ikinci-Parola-22")
    enroll_first_phone(page, phone, tmp_path, shot)
    expect(page.get_by_text("Signed in as ikinci")).to_be_visible()
    shot(page, "overview")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login")
    enter_password(page, "ikinci", "Ikinci-Parola-22")
    shot(page, "push")
    approve_sign_in(page, phone)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def test_wrong_admin_password_is_rejected(server: Server, page: Page) -> None:
    enter_password(page, "yonetici", "not-the-password")

    expect(page.locator("#form-error")).to_have_text("The username or password is wrong.")


def test_console_rate_limit_names_minutes(server: Server, page: Page) -> None:
    # A name of its own: the other tests' wrong passwords do not count towards its limit, and
    # an unknown name reaches the limit as a real one does.
    for attempt in range(5):
        enter_password(page, "sınır-deneyen", f"yanlış-{attempt}")
        expect(page.locator("#form-error")).to_have_text("The username or password is wrong.")

    enter_password(page, "sınır-deneyen", "yanlış-5")

    expect(page.locator("#form-error")).to_have_text("Too many attempts. Try again in 15 min.")


def test_denied_push_keeps_console_closed(
    server: Server, browser: Browser, admin_phone: Phone
) -> None:
    context = new_context(browser, server)
    page = context.new_page()
    enter_password(page, "yonetici", ADMIN_PASSWORD)
    page.wait_for_url("**/login/wait")

    admin_phone.answer("deny")

    page.wait_for_url("**/login/done")
    expect(page.get_by_role("heading", name="Denied")).to_be_visible()
    page.goto("/admin")
    page.wait_for_url(re.compile(r"/login\?return_to=%2Fadmin$"))
    context.close()


def test_policy_created_checked_and_explained(admin_page: Page, shot: Any) -> None:
    page = admin_page
    page.goto("/admin/policies/new")
    page.get_by_label("Push profile").select_option("office")
    page.get_by_label("Auth profile").select_option("staff")
    page.get_by_label("Attribute").select_option("group_name")
    page.get_by_label("Values", exact=True).fill("/(unclosed/")
    expect(page.locator("#value-checks .bad")).to_be_visible()
    shot(page, "invalid-regex")

    page.get_by_label("Values", exact=True).fill("/^perso.*$/\nIT")
    expect(page.locator("#value-checks .ok")).to_have_count(2)
    shot(page, "valid-values")
    page.get_by_role("button", name="Save policy").click()
    page.wait_for_url("**/admin/policies")
    expect(page.locator("#policy-list tbody tr")).to_have_count(1)
    expect(page.locator("#policy-list tbody tr").first).to_contain_text("/^perso.*$/")

    page.locator("#explain-username").fill("ayşe")
    page.get_by_role("button", name="Explain").click()
    explanation = page.locator("#explanation")
    expect(explanation).to_contain_text("office")
    expect(explanation).to_contain_text("policy 1")
    expect(explanation).to_contain_text("Attributes from auth profile staff")
    shot(page, "explained")

    response = page.request.get("/admin/policies/explain?username=ay%C5%9Fe")
    assert response.status == 200
    result = response.json()
    assert (result["push_profile"], result["policy"], result["auth_profile"]) == (
        "office",
        1,
        "staff",
    )
    assert result["lookups"][0]["found"] is True
    assert result["evaluations"][0]["decided"] is True
    for path, status in (
        ("/admin/policies/explain?username=nobody-here", 404),
        ("/admin/policies/explain?username=ay%C5%9Fe&application=missing", 404),
        ("/admin/policies/explain", 400),
    ):
        response = page.request.get(path)
        assert response.status == status, path
        assert response.json()["error"], path


def test_policies_move_and_delete(admin_page: Page) -> None:
    page = admin_page
    for value in ("Muhasebe", "Bilgi*"):
        page.goto("/admin/policies/new")
        page.get_by_label("Push profile").select_option("office")
        page.get_by_label("Auth profile").select_option("staff")
        page.get_by_label("Attribute").select_option("department")
        page.get_by_label("Values", exact=True).fill(value)
        page.get_by_role("button", name="Save policy").click()
        page.wait_for_url("**/admin/policies")
    rows = page.locator("#policy-list tbody tr")
    last = rows.last
    expect(last).to_contain_text("Bilgi*")
    count = rows.count()

    last.get_by_role("button", name=re.compile(r"Move policy \d+ up")).click()
    page.wait_for_url("**/admin/policies")
    expect(rows.nth(count - 2)).to_contain_text("Bilgi*")

    page.on("dialog", lambda dialog: dialog.accept())
    rows.nth(count - 2).get_by_role("button", name="Delete").click()
    page.wait_for_url("**/admin/policies")
    expect(rows).to_have_count(count - 1)
    expect(page.locator("#policy-list")).not_to_contain_text("Bilgi*")


def test_stale_policy_form_is_refused(admin_page: Page) -> None:
    page = admin_page
    page.goto("/admin/policies/new")
    page.get_by_label("Push profile").select_option("office")
    page.get_by_label("Auth profile").select_option("staff")
    page.get_by_label("Values", exact=True).fill("Satış")
    other = page.context.new_page()
    other.goto("/admin/push-profiles/office")
    other.get_by_label("Timeout (seconds)").fill("90")
    other.get_by_role("button", name="Save").click()
    expect(other.get_by_role("status").first).to_have_text("Saved.")
    other.close()

    page.get_by_role("button", name="Save policy").click()

    expect(page.locator("#form-error")).to_contain_text(
        "The settings changed while you were editing"
    )


def test_audit_export_names_the_administrator(admin_page: Page, shot: Any) -> None:
    page = admin_page
    page.goto("/admin/applications/intranet")
    page.get_by_role("button", name="Create API client").click()
    expect(page.locator("#client-secret")).to_be_visible()

    page.goto("/admin/audit?event=admin_change")
    expect(page.locator("table tbody tr").first).to_contain_text("yonetici")
    times = page.locator("table tbody tr time").evaluate_all("nodes => nodes.map(n => n.dateTime)")
    assert times == sorted(times, reverse=True)
    shot(page, "audit")

    with page.expect_download() as download_info:
        page.locator("#export-csv").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert rows
    assert all(row["event"] == "admin_change" for row in rows)
    assert any(row["actor"] == "yonetici" for row in rows)

    response = page.request.get("/admin/audit/export.json?event=admin_change&limit=5")
    assert response.status == 200
    records = json.loads(response.text())
    assert 0 < len(records) <= 5
    assert {
        "time",
        "event",
        "username",
        "application",
        "transaction_id",
        "outcome",
        "reason",
    } <= set(records[0])


def test_api_client_secret_is_shown_once(server: Server, admin_page: Page) -> None:
    page = admin_page
    page.goto("/admin/applications/portal")
    page.get_by_role("button", name="Create API client").click()
    client_id = page.locator("#client-id").inner_text().strip()
    secret = page.locator("#client-secret").inner_text().strip()

    token = httpx.post(
        f"{server.base}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
    )
    assert token.status_code == 200
    page.goto("/admin/applications/portal")
    expect(page.locator("#client-secret")).to_have_count(0)
    expect(page.get_by_text(client_id)).to_be_visible()


def test_local_user_added_and_disabled(admin_page: Page) -> None:
    page = admin_page
    page.goto("/admin/users/new?auth_profile=staff")
    page.get_by_label("Username").fill("yeni.kullanici")
    page.get_by_label("Email").fill("yeni@ornek.com.tr")
    page.get_by_label("Groups").fill("muhasebe, personel")
    page.get_by_label("Password", exact=True).fill("kısa")
    page.get_by_label("Repeat the password").fill("kısa")
    page.get_by_role("button", name="Add user").click()
    expect(page.locator("#form-error")).to_contain_text("at least 8 characters")

    page.get_by_label("Password", exact=True).fill("Yeni-Parola-1")
    page.get_by_label("Repeat the password").fill("Yeni-Parola-1")
    page.get_by_role("button", name="Add user").click()
    expect(page.get_by_role("status").first).to_contain_text("User yeni.kullanici added.")

    page.get_by_role("button", name="Disable user").click()
    expect(page.get_by_role("status").first).to_contain_text("yeni.kullanici is disabled.")
    page.goto("/admin/users?auth_profile=staff&q=yeni")
    expect(page.locator("table tbody tr").first).to_contain_text("Disabled")


def test_auth_profile_test_finds_user(admin_page: Page) -> None:
    page = admin_page
    page.goto("/admin/auth-profiles/staff")
    page.get_by_label("Username to look up").fill("ayşe")
    page.get_by_role("button", name="Run test").click()

    expect(page.locator("#test-output")).to_contain_text("user 'ayşe': found")


def test_issued_enrollment_enrolls_and_revokes(
    server: Server, admin_page: Page, tmp_path: Path
) -> None:
    page = admin_page
    page.goto("/admin/devices")
    page.locator("#enroll-username").fill("ilker")
    page.get_by_role("button", name="Issue enrollment").click()
    expect(page.get_by_role("heading", name="Enrollment for ilker")).to_be_visible()
    url = decode_qr(page, tmp_path)
    phone = phone_for(server, tmp_path)
    assert phone.enroll(url, "İlker Telefon") is None

    page.goto("/admin/devices?q=ilker")
    row = page.locator("#device-table tbody tr").first
    expect(row).to_contain_text("İlker Telefon")
    page.on("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status").first).to_contain_text("was revoked")
    expect(page.locator("#device-table")).not_to_contain_text("İlker Telefon")


def test_every_page_renders(admin_page: Page, shot: Any) -> None:
    page = admin_page
    for path in (
        "/admin",
        "/admin/auth-profiles",
        "/admin/auth-profiles/new?type=ldap",
        "/admin/push-profiles",
        "/admin/push-profiles/office",
        "/admin/policies",
        "/admin/applications",
        "/admin/applications/new",
        "/admin/radius-clients",
        "/admin/radius-clients/new",
        "/admin/users",
        "/admin/devices",
        "/admin/audit",
        "/admin/admins",
    ):
        response = page.goto(path)
        assert response is not None and response.status == 200, path
        expect(page.locator("main h1")).to_be_visible()
        shot(page, path.strip("/").replace("/", "-").replace("?", "-").replace("=", "-"))


BAD_FORMS: list[tuple[str, dict[str, str]]] = [
    (
        "/admin/push-profiles",
        {"name": "x y", "timeout": "abc", "verification": "??", "delivery": "pigeon"},
    ),
    (
        "/admin/push-profiles",
        {"name": "p2", "fallback_auth_profiles": "nope", "timeout": "99999999999999"},
    ),
    (
        "/admin/auth-profiles",
        {"name": "ldap1", "type": "ldap", "servers": "not a url", "connect_timeout": "x"},
    ),
    ("/admin/auth-profiles", {"name": "", "type": "weird"}),
    ("/admin/applications", {"name": "a", "type": "bogus", "methods": ""}),
    (
        "/admin/radius-clients",
        {"name": "fw", "address": "999.1.1.1", "application": "none", "timeout": "-"},
    ),
    (
        "/admin/policies",
        {
            "push_profile": "office",
            "auth_profile": "staff",
            "attribute": "nope",
            "values": "",
            "version": "x",
            "position": "9999",
        },
    ),
    ("/admin/policies/0/move", {"direction": "sideways"}),
    (
        "/admin/users",
        {"auth_profile": "staff", "username": "", "expires": "tomorrow", "email": "x"},
    ),
    ("/admin/users/does-not-exist/password", {"password": "a"}),
    ("/admin/admins", {"name": "@@", "password": "x", "password_repeat": "x"}),
    ("/admin/devices/enroll", {"username": "nobody-here"}),
    ("/admin/devices/locks/lift", {"auth_profile": "staff", "user_id": "x"}),
    ("/admin/auth-profiles/missing/delete", {}),
    ("/login/code", {"code": "12ab"}),
    ("/register/enroll/confirm", {"code": "x"}),
]


def test_bad_form_values_never_fail_the_server(admin_page: Page) -> None:
    page = admin_page
    page.goto("/admin")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
    for path, fields in BAD_FORMS:
        response = page.request.post(path, form={**fields, "csrf_token": token}, max_redirects=0)
        assert response.status < 500, (path, response.status)
        assert response.status != 403, path
    for path in (
        "/admin/policies/check?value=%2F(%2F",
        "/admin/policies/suggest?auth_profile=staff&attribute=group_name",
        "/admin/policies/explain?username=%00%FF&application=%2F..",
        "/admin/audit?since=yesterday&limit=-4",
        "/admin/users/../../etc",
        "/admin/policies/abc",
    ):
        response = page.request.get(path, max_redirects=0)
        assert response.status < 500, path


def test_console_in_turkish(server: Server, admin: BrowserContext, shot: Any) -> None:
    admin.add_cookies([{"name": "tapgate_lang", "value": "tr", "url": server.base}])
    page = admin.new_page()
    try:
        page.goto("/admin/policies")
        expect(page.get_by_role("heading", name="Politikalar", exact=True)).to_be_visible()
        expect(page.get_by_role("link", name="Denetim kaydı")).to_be_visible()
        shot(page, "policies-tr")
        page.goto("/admin")
        expect(page.get_by_role("heading", name="Genel bakış")).to_be_visible()
        shot(page, "overview-tr")
    finally:
        page.close()
        admin.add_cookies([{"name": "tapgate_lang", "value": "en", "url": server.base}])
