"""Administrative commands: policies, devices, user state, apply and export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tapgate.authenticator.device import fetch_challenges, send_answer
from tests.e2e.conftest import PASSWORD, enroll_device
from tests.support import Api, Server


def test_policy_add_move_remove(server: Server) -> None:
    server.cli(
        "policy",
        "add",
        "--push-profile",
        "ofis",
        "--auth-profile",
        "personel",
        "--attribute",
        "group_name",
        "--value",
        "Bilgi İşlem",
    )
    server.cli(
        "policy",
        "add",
        "--push-profile",
        "ofis-sayi",
        "--auth-profile",
        "personel",
        "--attribute",
        "email",
        "--value",
        "*@ornek.com.tr",
        "--position",
        "1",
    )
    listed = server.cli_json("policy", "list", "--json")
    assert [p["push_profile"] for p in listed] == ["ofis-sayi", "ofis"]

    server.cli("policy", "move", "2", "1")
    assert [p["push_profile"] for p in server.cli_json("policy", "list", "--json")] == [
        "ofis",
        "ofis-sayi",
    ]
    server.cli("policy", "remove", "1")
    assert [p["position"] for p in server.cli_json("policy", "list", "--json")] == [1]


def test_policy_add_rejects_backreference(server: Server) -> None:
    result = server.cli(
        "policy",
        "add",
        "--push-profile",
        "ofis",
        "--auth-profile",
        "personel",
        "--attribute",
        "group_name",
        "--value",
        "/(a)\\1/",
        check=False,
    )
    assert result.returncode == 1
    assert "error:" in result.stderr
    assert server.cli_json("policy", "list", "--json") == []


def test_policy_change_takes_effect_without_restart(server: Server) -> None:
    enroll_device(server, "berk")
    api = Api(server, "parolasiz")
    assert api.login("berk").json()["status"] == "pending"
    server.cli(
        "policy",
        "add",
        "--push-profile",
        "ofis",
        "--auth-profile",
        "personel",
        "--attribute",
        "group_name",
        "--value",
        "Yok",
    )
    assert api.login("berk").json()["reason"] == "no_method"


def test_policy_changes_are_audited(server: Server) -> None:
    server.cli(
        "policy",
        "add",
        "--push-profile",
        "ofis",
        "--auth-profile",
        "personel",
        "--attribute",
        "title",
        "--value",
        "Müdür",
    )
    records = server.cli_json("audit", "--event", "admin_change", "--json")
    assert any("policies" in json.dumps(r["details"]) for r in records)


def test_revoked_device_cannot_answer(server: Server) -> None:
    phone = enroll_device(server, "ayşe")
    api = Api(server, "portal")
    transaction_id = api.login("ayşe", PASSWORD).json()["transaction_id"]
    challenge = fetch_challenges(phone)[0]

    devices = server.cli_json("device", "list", "ayşe", "--json")
    assert [d["device_id"] for d in devices] == [phone.device_id]
    server.cli("device", "revoke", phone.device_id)
    assert send_answer(phone, challenge, "approve", number=None, uv=False)["accepted"] is False
    assert api.status(transaction_id)["status"] == "pending"
    assert api.login("ayşe", PASSWORD).json()["reason"] == "no_device"


def test_disabled_and_expired_users_rejected(server: Server) -> None:
    enroll_device(server, "berk")
    api = Api(server, "portal")
    server.cli("user", "disable", "berk", "--auth-profile", "personel")
    assert api.login("berk", PASSWORD).json()["reason"] == "account_disabled"
    server.cli("user", "enable", "berk", "--auth-profile", "personel")
    assert api.login("berk", PASSWORD).json()["status"] == "pending"

    server.cli(
        "user",
        "add",
        "gül",
        "--auth-profile",
        "personel",
        "--password-stdin",
        "--expires",
        "2020-01-01",
        stdin=PASSWORD + "\n",
    )
    assert api.login("gül", PASSWORD).json()["reason"] == "account_expired"


def test_disabled_user_gets_no_enrollment(server: Server) -> None:
    server.cli("user", "disable", "berk", "--auth-profile", "personel")
    result = server.cli("enroll", "berk", "--json", check=False)
    assert result.returncode == 1
    assert "account_disabled" in result.stderr


def test_wrong_password_never_reveals_account_state(server: Server) -> None:
    server.cli("user", "disable", "berk", "--auth-profile", "personel")
    api = Api(server, "portal")
    assert api.login("berk", "yanlış").json()["reason"] == "invalid_credentials"


def test_unlock_after_fraud(server: Server) -> None:
    phone = enroll_device(server, "berk")
    api = Api(server, "portal")
    api.login("berk", PASSWORD)
    send_answer(phone, fetch_challenges(phone)[0], "fraud", number=None, uv=False)
    assert api.login("berk", PASSWORD).json()["reason"] == "fraud_locked"
    unlocked = server.cli("user", "unlock", "berk")
    assert unlocked.stdout.strip() == "unlocked berk: lifted the fraud lock"
    assert api.login("berk", PASSWORD).json()["status"] == "pending"


def test_unlock_forgets_failed_passwords(server: Server) -> None:
    enroll_device(server, "berk")
    api = Api(server, "portal")
    for _ in range(5):
        assert api.login("berk", "yanlış-şifre").json()["reason"] == "invalid_credentials"
    assert api.login("berk", PASSWORD).json()["reason"] == "rate_limited"
    unlocked = server.cli("user", "unlock", "berk")
    assert unlocked.stdout.strip() == "unlocked berk: forgot 5 failed passwords"
    assert api.login("berk", PASSWORD).json()["status"] == "pending"
    again = server.cli("user", "unlock", "berk")
    assert again.stdout.startswith("berk had no fraud lock and no failed passwords.")
    assert "limit=push_rate_limit" in again.stdout


def test_duplicate_username_in_any_case_rejected(server: Server) -> None:
    result = server.cli("user", "add", "AYŞE", "--auth-profile", "personel", check=False)
    assert result.returncode == 1
    assert "already exists" in result.stderr


def test_user_add_to_unknown_profile(server: Server) -> None:
    result = server.cli("user", "add", "zeynep", "--auth-profile", "yok", check=False)
    assert result.returncode == 1
    assert "yok" in result.stderr


def test_export_is_stable_and_reapplies(server: Server, tmp_path: Path) -> None:
    first = server.cli("export").stdout
    path = tmp_path / "exported.yaml"
    path.write_text(first, encoding="utf-8")
    assert server.cli("apply", str(path)).stdout.strip() == "no changes"
    assert server.cli("export").stdout == first


def test_apply_rejects_second_default_and_changes_nothing(server: Server, tmp_path: Path) -> None:
    before = server.cli("export").stdout
    path = tmp_path / "bad.yaml"
    path.write_text(
        "push_profiles:\n  - {name: a, fallback_auth_profiles: [personel], default: true}\n"
        "  - {name: b, fallback_auth_profiles: [personel], default: true}\n",
        encoding="utf-8",
    )
    result = server.cli("apply", str(path), check=False)
    assert result.returncode == 1
    assert "default" in result.stderr
    assert server.cli("export").stdout == before


def test_apply_unknown_key_names_it(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "applications:\n  - {name: x, type: api, methods: [push], colour: red}\n", encoding="utf-8"
    )
    result = server.cli("apply", str(path), check=False)
    assert result.returncode == 1
    assert "colour" in result.stderr


def test_apply_prune_deletes_unmentioned(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(
        "auth_profiles:\n  - {name: personel, type: local}\n"
        "push_profiles:\n  - {name: ofis, fallback_auth_profiles: [personel], default: true}\n"
        "applications:\n  - {name: portal, type: api, methods: [ofis]}\n",
        encoding="utf-8",
    )
    output = server.cli("apply", str(path), "--prune").stdout
    assert "deleted application portal-sayi" in output
    assert "deleted push profile ofis-kod" in output


def test_policy_explain_text_without_method(server: Server) -> None:
    server.cli(
        "policy",
        "add",
        "--push-profile",
        "ofis",
        "--auth-profile",
        "personel",
        "--attribute",
        "group_name",
        "--value",
        "Bilgi İşlem",
    )
    output = server.cli("policy", "explain", "berk", "--application", "portal").stdout
    assert "method: none  push profile: none  policy: none" in output
    assert "group_name: (none)" in output
    assert "None" not in output


def test_push_limit_audited_apart_from_first_factor(server: Server) -> None:
    enroll_device(server, "İsmail")
    api = Api(server, "portal")
    replies = [api.login("İsmail", PASSWORD).json() for _ in range(11)]
    reasons = [reply.get("reason") for reply in replies]
    assert reasons[:10] == [None] * 10
    assert reasons[10] == "rate_limited"
    # The push limit's window is 10 minutes by default.
    assert 9 * 60 < replies[10]["retry_after"] <= 10 * 60
    records = server.cli_json("audit", "--user", "İsmail", "--event", "login_rejected", "--json")
    assert [r["reason"] for r in records] == ["rate_limited"]
    assert records[0]["details"]["limit"] == "push_rate_limit"
    first_factor = server.cli_json("audit", "--user", "İsmail", "--event", "first_factor", "--json")
    assert {r["outcome"] for r in first_factor} == {"success"}
    unlocked = server.cli("user", "unlock", "İsmail")
    assert "push profile's rate_limit" in unlocked.stdout


def test_user_list_single_auth_profile(server: Server) -> None:
    listed = server.cli_json("user", "list", "--json")
    assert "İsmail" in [u["username"] for u in listed]


def test_audit_user_matches_like_login(server: Server) -> None:
    """Login finds İsmail however the name is typed, and so does `audit --user`."""
    enroll_device(server, "İsmail")
    api = Api(server, "portal")
    typed = ["ismail", " İSMAİL", "İsmail"]
    transactions = [api.login(name, PASSWORD).json()["transaction_id"] for name in typed]
    started = server.cli_json("audit", "--user", "ISMAIL", "--event", "login_started", "--json")
    assert sorted(r["username"] for r in started) == sorted(typed)
    pushed = server.cli_json("audit", "--user", "ismail", "--event", "push_sent", "--json")
    assert {r["transaction_id"] for r in pushed} == set(transactions)
    assert server.cli_json("audit", "--user", "ismet", "--json") == []


def test_audit_links_login_records(server: Server) -> None:
    """Each record of one login carries its transaction id, from login_started on."""
    enroll_device(server, "ayşe")
    api = Api(server, "portal")
    pushed = api.login("ayşe", PASSWORD).json()["transaction_id"]
    rejected = api.login("ayşe", "yanlış-parola").json()
    unknown = api.login("kimse-yok", PASSWORD).json()

    records = server.cli_json("audit", "--json")
    events = {}
    for transaction_id in (pushed, rejected["transaction_id"], unknown["transaction_id"]):
        events[transaction_id] = [
            r["event"] for r in records if r["transaction_id"] == transaction_id
        ]

    assert events[pushed] == ["login_started", "first_factor", "push_sent"]
    assert events[rejected["transaction_id"]] == ["login_started", "first_factor"]
    assert events[unknown["transaction_id"]] == ["login_started", "first_factor"]
    assert rejected["reason"] == "invalid_credentials"
    assert unknown["reason"] == "invalid_credentials"


@pytest.mark.parametrize(
    ("options", "stdin", "expected"),
    [
        (["--password-stdin"], "kısa\n", "the password has 4 characters"),
        (["--email", "şule.example.com.tr"], None, "--email 'şule.example.com.tr'"),
        (["--mobile", "abc"], None, "--mobile 'abc' is not a phone number"),
    ],
)
def test_user_add_rejects_bad_fields(
    server: Server, options: list[str], stdin: str | None, expected: str
) -> None:
    result = server.cli(
        "user", "add", "şule", "--auth-profile", "personel", *options, stdin=stdin, check=False
    )
    assert result.returncode == 1
    assert expected in result.stderr
    assert "kısa" not in result.stderr
    assert server.cli("user", "list", "--json", check=False).stdout.count("şule") == 0


def test_user_add_accepts_turkish_fields(server: Server) -> None:
    server.cli(
        "user",
        "add",
        "şule",
        "--auth-profile",
        "personel",
        "--password-stdin",
        "--email",
        "şule@example.com.tr",
        "--mobile",
        "0555 444 33 22",
        "--first-name",
        "Şule",
        stdin="Parola-2026!\n",
    )
    listed = {u["username"]: u for u in server.cli_json("user", "list", "--json")}
    assert listed["şule"]["email"] == "şule@example.com.tr"
    assert listed["şule"]["first_name"] == "Şule"


def test_client_revoke_stops_its_tokens(server: Server) -> None:
    api = Api(server, "portal")
    assert api.login("ayşe", PASSWORD).status_code in (200, 202)
    listed = server.cli_json("client", "list", "portal", "--json")
    assert len(listed) == 1
    client_id = listed[0]["client_id"]
    revoked = server.cli("client", "revoke", client_id)
    assert "tapgate client add portal" in revoked.stdout
    response = api.login("ayşe", PASSWORD)
    assert response.status_code == 401
    assert server.cli_json("client", "list", "--json") == []
    assert server.cli_json("client", "list", "--all", "--json")[0]["revoked_at"] is not None
    again = server.cli("client", "revoke", client_id, check=False)
    assert again.returncode == 1
    assert "no active API client" in again.stderr
    changes = server.cli_json("audit", "--event", "admin_change", "--json")
    assert f"revoked API client {client_id}" in [c["details"].get("change") for c in changes]


def test_enroll_unknown_user_names_profile(server: Server) -> None:
    result = server.cli("enroll", "bilinmeyen-ğ", check=False)
    assert result.returncode != 0
    assert "user 'bilinmeyen-ğ' not found in auth profile 'personel';" in result.stderr


def test_user_show_with_devices_and_state(server: Server) -> None:
    phone = enroll_device(server, "İsmail", "İş telefonu")
    server.cli("user", "disable", "İsmail", "--auth-profile", "personel")

    user_info = server.cli_json("user", "show", "ismail", "--json")
    text = server.cli("user", "show", "ismail").stdout

    assert user_info["username"] == "İsmail"
    assert user_info["auth_profile"] == "personel"
    assert user_info["account_problem"] == "account_disabled"
    assert user_info["push_lock"] is None
    assert user_info["attributes"]["email"] == ["İsmail@ornek.com.tr"]
    assert user_info["attributes"]["mobile"] == ["05554443322"]
    assert user_info["devices"] == [
        {
            "device_id": phone.device_id,
            "name": "İş telefonu",
            "platform": "tapgate-cli",
            "revoked": False,
        }
    ]
    assert "account: account_disabled" in text
    assert f"device {phone.device_id}: İş telefonu (tapgate-cli) active" in text


def test_user_show_unknown_user(server: Server) -> None:
    result = server.cli("user", "show", "yok-ğ", check=False)
    assert result.returncode != 0
    assert "user 'yok-ğ' not found in auth profile 'personel';" in result.stderr


def test_audit_unknown_event_rejected(server: Server) -> None:
    result = server.cli("audit", "--event", "nosuch", check=False)
    assert result.returncode == 2
    assert "unknown event 'nosuch'; the events are login_started" in result.stderr


def test_device_list_without_devices(server: Server) -> None:
    listed = server.cli("device", "list", "berk").stdout
    assert "berk has no devices; tapgate enroll USERNAME issues an enrollment link" in listed


def test_user_list_table(server: Server) -> None:
    lines = server.cli("user", "list").stdout.splitlines()
    assert lines[0].split() == ["USERNAME", "NAME", "EMAIL", "MOBILE", "STATE"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"ayşe", "İsmail", "berk"}
    assert "İsmail@ornek.com.tr" in rows["İsmail"]
    assert rows["berk"].split()[-2:] == ["05554443322", "active"]
    # The email column starts at the same place on every line.
    column = lines[0].index("EMAIL")
    for name, line in rows.items():
        assert line[column:].startswith(f"{name}@ornek.com.tr"), line


def test_audit_text_shows_source_address(server: Server) -> None:
    Api(server, "portal").login("ayşe", "yanlış-parola-1", client_ip="85.105.9.9")
    listed = server.cli("audit", "--user", "ayşe", "--event", "first_factor").stdout
    assert "source_ip=85.105.9.9" in listed
