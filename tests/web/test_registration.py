"""The registration panel in a browser: first phone, second phone with push approval, rename, remove."""

from __future__ import annotations

import queue
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tapgate.authenticator.device import ProtocolError, stream_events
from tapgate.authenticator.state import load_state
from tests.support import Server
from tests.web.conftest import PASSWORD, Phone, decode_qr, enroll_by_command, number_on, phone_for


def sign_in(page: Page, username: str, password: str = PASSWORD) -> None:
    page.goto("/register")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def enroll_new_phone(page: Page, phone: Phone, tmp_path: Path, name: str) -> str:
    """Start an enrollment on the devices page and register `phone`; return its code."""
    page.locator("#add-device").click()
    expect(page.get_by_role("heading", name="Scan the QR code")).to_be_visible()
    url = decode_qr(page, tmp_path)
    assert url == (page.locator("#enrollment-url").text_content() or "").strip()
    assert page.locator("#same-phone-link").get_attribute("href") == url

    code = phone.enroll(url, name)
    assert code is not None and re.fullmatch(r"\d{6}", code)
    page.wait_for_url("**/register/enroll/confirm")
    return code


def test_first_phone_enrolls_with_code(
    server: Server, page: Page, tmp_path: Path, shot: Any
) -> None:
    sign_in(page, "ayşe")
    page.wait_for_url("**/register/devices")
    expect(page.get_by_text("You have no enrolled phone yet")).to_be_visible()
    shot(page, "devices-empty")

    phone = phone_for(server, tmp_path)
    page.locator("#add-device").click()
    shot(page, "qr")
    url = decode_qr(page, tmp_path)
    code = phone.enroll(url, "Ayşe iPhone")
    assert code is not None
    page.wait_for_url("**/register/enroll/confirm")
    expect(page.get_by_text("Ayşe iPhone (tapgate-cli) has registered")).to_be_visible()

    wrong = "000000" if code != "000000" else "111111"
    page.get_by_label("Confirmation code").fill(wrong)
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#form-error")).to_contain_text("Attempts left: 4 of 5")
    shot(page, "wrong-code")

    page.get_by_label("Confirmation code").fill(code)
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url("**/register/devices")
    expect(page.get_by_role("status").first).to_contain_text("Ayşe iPhone is enrolled")
    device = page.locator(".device-list li")
    expect(device).to_have_count(1)
    expect(device).to_contain_text("Ayşe iPhone")
    expect(device).to_contain_text("tapgate-cli")
    expect(device).to_contain_text("Active")
    shot(page, "devices-one")

    assert phone.pending() == []


def test_unconfirmed_phone_cannot_poll(server: Server, page: Page, tmp_path: Path) -> None:
    sign_in(page, "cem")
    page.wait_for_url("**/register/devices")
    phone = phone_for(server, tmp_path)
    enroll_new_phone(page, phone, tmp_path, "Cem Android")

    with pytest.raises(ProtocolError, match="401"):
        phone.pending()


def test_five_wrong_codes_void_enrollment(
    server: Server, page: Page, tmp_path: Path, shot: Any
) -> None:
    sign_in(page, "nur")
    page.wait_for_url("**/register/devices")
    phone = phone_for(server, tmp_path)
    code = enroll_new_phone(page, phone, tmp_path, "Nur Telefon")
    wrong = "000000" if code != "000000" else "111111"

    for _attempt in range(5):
        page.get_by_label("Confirmation code").fill(wrong)
        page.get_by_role("button", name="Confirm").click()
        page.wait_for_load_state()

    expect(page.get_by_role("heading", name="This enrollment cannot be completed")).to_be_visible()
    shot(page, "voided")
    page.goto("/register/enroll/confirm")
    expect(page.get_by_label("Confirmation code")).to_have_count(0)
    page.goto("/register/devices")
    expect(page.locator(".device-list li")).to_have_count(0)
    with pytest.raises(ProtocolError, match="401"):
        phone.pending()


def test_second_phone_needs_approval_and_notifies(
    server: Server, page: Page, tmp_path: Path, shot: Any
) -> None:
    first = phone_for(server, tmp_path, "first")
    enroll_by_command(server, first, "berk", "Berk Pixel")

    sign_in(page, "berk")
    page.wait_for_url("**/login/wait")
    shot(page, "waiting")
    first.answer("approve", number_on(page))
    page.wait_for_url("**/register/devices")
    expect(page.locator(".device-list li")).to_have_count(1)

    notices: queue.Queue[dict[str, Any]] = queue.Queue()
    state = load_state(first.state)

    def listen() -> None:
        for event in stream_events(state):
            notices.put(event)
            if event.get("event") == "notice":
                return

    threading.Thread(target=listen, daemon=True).start()
    second = phone_for(server, tmp_path, "second")
    code = enroll_new_phone(page, second, tmp_path, "Berk Tablet")
    page.get_by_label("Confirmation code").fill(code)
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url("**/register/devices")
    expect(page.locator(".device-list li")).to_have_count(2)

    notice = None
    while notice is None:
        event = notices.get(timeout=15)
        if event.get("event") == "notice":
            notice = event
    assert notice["notice"] == "device_enrolled"
    assert notice["device_name"] == "Berk Tablet"


def test_denied_push_keeps_panel_closed(server: Server, page: Page, tmp_path: Path) -> None:
    phone = phone_for(server, tmp_path)
    enroll_by_command(server, phone, "hakan")

    sign_in(page, "hakan")
    page.wait_for_url("**/login/wait")
    phone.answer("deny")

    page.wait_for_url("**/login/done")
    expect(page.get_by_role("heading", name="Denied")).to_be_visible()
    page.get_by_role("link", name="Try again").click()
    page.wait_for_url("**/register")


def test_rename_and_remove_phone(server: Server, page: Page, tmp_path: Path, shot: Any) -> None:
    phone = phone_for(server, tmp_path)
    enroll_by_command(server, phone, "deniz", "Eski telefon")
    sign_in(page, "deniz")
    page.wait_for_url("**/login/wait")
    phone.answer("approve", number_on(page))
    page.wait_for_url("**/register/devices")

    page.get_by_text("Rename or remove").click()
    page.get_by_label("New name").fill("Kayıp telefon")
    page.get_by_role("button", name="Rename").click()
    expect(page.locator(".device-list li")).to_contain_text("Kayıp telefon")

    page.get_by_text("Rename or remove").click()
    page.get_by_role("link", name="This phone is lost: remove it").click()
    shot(page, "remove")
    page.get_by_role("button", name="Remove this phone").click()
    page.wait_for_url("**/register/devices")
    expect(page.get_by_role("status").first).to_contain_text("Kayıp telefon was removed")
    expect(page.locator(".device-list li")).to_have_count(0)

    with pytest.raises(ProtocolError, match="401"):
        phone.pending()


def test_wrong_password_shows_form_again(server: Server, page: Page) -> None:
    sign_in(page, "ece", "wrong-password")

    expect(page.locator("#form-error")).to_have_text("The username or password is wrong.")
    expect(page.get_by_label("Username")).to_have_value("ece")


def test_empty_username_is_rejected(server: Server, page: Page) -> None:
    page.goto("/register")
    page.get_by_role("button", name="Sign in").click()

    expect(page.locator("#form-error")).to_have_text("Enter your username.")
