"""End-to-end push logins: the real server, the Auth API over HTTP, the authenticator as a process."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tapgate.authenticator.device import fetch_challenges, send_answer
from tests.e2e.conftest import PASSWORD, enroll_device, state_file
from tests.support import Api, Server


def pending(server: Server, state: Path) -> list[dict[str, object]]:
    result: list[dict[str, object]] = server.cli_json(
        "authenticator", "pending", "--state", str(state), "--json"
    )
    return result


def test_tap_approve_with_authenticator_process(server: Server, tmp_path: Path) -> None:
    phone = state_file(server, "ayşe", tmp_path)
    api = Api(server, "portal")

    started = api.login("AYŞE", PASSWORD, client_ip="85.105.1.1", user_agent="Firefox 140")
    assert started.status_code == 202
    transaction_id = started.json()["transaction_id"]
    challenges = pending(server, phone)
    assert [c["transaction_id"] for c in challenges] == [transaction_id]
    assert challenges[0]["client_ip"] == "85.105.1.1"
    assert challenges[0]["location"] == "TR"
    assert challenges[0]["application"] == "portal"
    assert challenges[0]["user_agent"] == "Firefox 140"

    server.cli("authenticator", "answer", "--state", str(phone), transaction_id, "--approve")
    assert api.status(transaction_id, wait=5)["status"] == "approved"


def test_state_file_is_private(server: Server, tmp_path: Path) -> None:
    phone = state_file(server, "berk", tmp_path)
    assert stat.S_IMODE(phone.stat().st_mode) == 0o600


def test_deny_then_second_answer_changes_nothing(server: Server, tmp_path: Path) -> None:
    phone = state_file(server, "ayşe", tmp_path)
    api = Api(server, "portal")
    transaction_id = api.login("ayşe", PASSWORD).json()["transaction_id"]

    server.cli("authenticator", "pending", "--state", str(phone))
    server.cli("authenticator", "answer", "--state", str(phone), transaction_id, "--deny")
    assert api.status(transaction_id, wait=5)["status"] == "denied"

    second = server.cli(
        "authenticator", "answer", "--state", str(phone), transaction_id, "--approve", check=False
    )
    assert second.returncode != 0
    assert api.status(transaction_id)["status"] == "denied"
    events = [r["event"] for r in server.cli_json("audit", "--user", "ayşe", "--json")]
    assert "answer_rejected" in events


def test_fraud_locks_further_pushes(server: Server) -> None:
    device = enroll_device(server, "berk")
    api = Api(server, "portal")
    transaction_id = api.login("berk", PASSWORD).json()["transaction_id"]
    challenge = fetch_challenges(device)[0]

    assert send_answer(device, challenge, "fraud", number=None, uv=False)["status"] == "fraud"
    assert api.status(transaction_id)["status"] == "fraud"
    again = api.login("berk", PASSWORD).json()
    assert again["status"] == "rejected"
    assert again["reason"] == "fraud_locked"
    events = [r["event"] for r in server.cli_json("audit", "--user", "berk", "--json")]
    assert "fraud_alert" in events


def test_expiry_without_answer(server: Server) -> None:
    enroll_device(server, "berk")
    api = Api(server, "portal-kisa")
    transaction_id = api.login("berk").json()["transaction_id"]
    assert api.status(transaction_id, wait=10)["status"] == "expired"
    events = [r["event"] for r in server.cli_json("audit", "--user", "berk", "--json")]
    assert "expired" in events


def test_number_mode_right_and_wrong_number(server: Server, tmp_path: Path) -> None:
    phone = state_file(server, "İsmail", tmp_path)
    api = Api(server, "portal-sayi")

    first = api.login("ismail", PASSWORD).json()
    number = first["number"]
    assert len(number) == 2
    listed = server.cli("authenticator", "pending", "--state", str(phone), "--json").stdout
    assert f'"{number}"' not in listed
    wrong = f"{(int(number) + 1) % 100:02d}"
    server.cli(
        "authenticator",
        "answer",
        "--state",
        str(phone),
        first["transaction_id"],
        "--approve",
        "--number",
        wrong,
        check=False,
    )
    assert api.status(first["transaction_id"])["status"] == "denied"

    second = api.login("İSMAİL", PASSWORD).json()
    server.cli(
        "authenticator",
        "answer",
        "--state",
        str(phone),
        second["transaction_id"],
        "--approve",
        "--number",
        second["number"],
    )
    assert api.status(second["transaction_id"], wait=5)["status"] == "approved"


def test_number_read_from_standard_input(server: Server, tmp_path: Path) -> None:
    phone = state_file(server, "İsmail", tmp_path)
    api = Api(server, "portal-sayi")
    started = api.login("ismail", PASSWORD).json()
    server.cli(
        "authenticator",
        "answer",
        "--state",
        str(phone),
        started["transaction_id"],
        "--approve",
        stdin=started["number"] + "\n",
    )
    assert api.status(started["transaction_id"], wait=5)["status"] == "approved"


def test_code_mode_needs_the_code(server: Server, tmp_path: Path) -> None:
    phone = state_file(server, "berk", tmp_path)
    api = Api(server, "portal-kod")
    transaction_id = api.login("berk", PASSWORD).json()["transaction_id"]

    early = api_code(api, transaction_id, "123456")
    assert early.status_code == 409
    output = server.cli(
        "authenticator", "answer", "--state", str(phone), transaction_id, "--approve"
    ).stdout
    code = output.strip().splitlines()[-1]
    assert code.isdigit() and len(code) == 6
    assert api.status(transaction_id)["status"] == "pending"

    wrong = "000000" if code != "000000" else "111111"
    assert api_code(api, transaction_id, wrong).json()["status"] == "pending"
    assert api_code(api, transaction_id, code).json()["status"] == "approved"


def api_code(api: Api, transaction_id: str, code: str):  # type: ignore[no-untyped-def]
    import httpx

    return httpx.post(
        f"{api.base}/api/v1/auth/{transaction_id}/code", json={"code": code}, headers=api.headers
    )


def test_code_mode_wrong_codes_deny(server: Server) -> None:
    device = enroll_device(server, "ayşe")
    api = Api(server, "portal-kod")
    transaction_id = api.login("ayşe", PASSWORD).json()["transaction_id"]
    result = send_answer(device, fetch_challenges(device)[0], "approve", number=None, uv=False)
    wrong = "999999" if result["code"] != "999999" else "888888"
    statuses = [api_code(api, transaction_id, wrong).json()["status"] for _ in range(5)]
    assert statuses[-1] == "denied"
    assert api_code(api, transaction_id, result["code"]).json()["status"] == "denied"


def test_several_devices_first_answer_wins(server: Server) -> None:
    phone = enroll_device(server, "ayşe", "Telefon")
    tablet = enroll_device(server, "ayşe", "Tablet")
    api = Api(server, "portal")
    transaction_id = api.login("ayşe", PASSWORD).json()["transaction_id"]

    phone_view = fetch_challenges(phone)
    tablet_view = fetch_challenges(tablet)
    assert [c["transaction_id"] for c in phone_view] == [transaction_id]
    assert [c["transaction_id"] for c in tablet_view] == [transaction_id]

    assert send_answer(tablet, tablet_view[0], "approve", number=None, uv=False)["accepted"] is True
    late = send_answer(phone, phone_view[0], "deny", number=None, uv=False)
    assert late["accepted"] is False
    assert api.status(transaction_id)["status"] == "approved"
    assert fetch_challenges(phone) == []


def test_pending_json_fields(server: Server, tmp_path: Path) -> None:
    phone = state_file(server, "berk", tmp_path)
    api = Api(server, "portal")
    api.login("berk", PASSWORD, client_ip="10.1.2.3", user_agent="Edge")
    listed = json.loads(
        server.cli("authenticator", "pending", "--state", str(phone), "--json").stdout
    )
    expected = {
        "transaction_id",
        "application",
        "username",
        "client_ip",
        "location",
        "user_agent",
        "created_at",
        "expires_at",
        "verification",
    }
    assert expected <= set(listed[0])
    assert isinstance(listed[0]["transaction_id"], str)
    assert listed[0]["location"] == "private network"


def test_user_verification_required(server: Server, tmp_path: Path) -> None:
    url = server.cli_json("enroll", "ayşe", "--json")["enrollment_url"]
    phone = tmp_path / "pin-phone.json"
    server.cli("authenticator", "enroll", url, "--state", str(phone), "--pin-stdin", stdin="4821\n")
    api = Api(server, "portal-pin")

    first = api.login("ayşe").json()["transaction_id"]
    server.cli("authenticator", "pending", "--state", str(phone))
    wrong_pin = server.cli(
        "authenticator",
        "answer",
        "--state",
        str(phone),
        first,
        "--approve",
        stdin="0000\n",
        check=False,
    )
    assert wrong_pin.returncode != 0
    assert api.status(first)["status"] == "pending"

    server.cli("authenticator", "answer", "--state", str(phone), first, "--approve", stdin="4821\n")
    assert api.status(first, wait=5)["status"] == "approved"
