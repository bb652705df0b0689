"""A full push login through the real server with an LDAP first factor against slapd."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from ldap_server import BASE_DN, SERVICE_DN, SERVICE_PASSWORD, Certificates, Slapd
from tests.support import Api, Server

from tapgate.authenticator.device import enroll, fetch_challenges, send_answer


def objects(slapd_url: str, certificates: Certificates, password_file: Path) -> str:
    return f"""
auth_profiles:
  - name: kurum
    type: ldap
    servers: [{slapd_url}]
    ca_file: {certificates.ca_file}
    bind_dn: {SERVICE_DN}
    bind_password_file: {password_file}
    base_dn: {BASE_DN}
    user_filter: (sAMAccountName={{username}})
    connect_timeout: 2
    operation_timeout: 3
push_profiles:
  - {{name: bt-push, fallback_auth_profiles: [kurum], verification: tap, default: true}}
  - {{name: vpn-push, fallback_auth_profiles: [kurum], verification: tap}}
policies:
  - {{push_profile: bt-push, auth_profile: kurum, attribute: department, values: ["BİLGİ İŞLEM"]}}
  - {{push_profile: vpn-push, auth_profile: kurum, attribute: memberOf,
      values: ["cn=VPN Kullanicilari,ou=Gruplar,{BASE_DN}"]}}
applications:
  - {{name: portal, type: api, methods: [push], require_password: true}}
"""


@pytest.fixture(params=["fast"])
def ldap_server(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    db_url: str,
    slapd: Slapd,
    certificates: Certificates,
) -> Iterator[Server]:
    password_file = tmp_path / "bind.pw"
    password_file.write_text(SERVICE_PASSWORD, encoding="utf-8")
    server = Server(tmp_path, db_url, password_hash=request.param)
    server.start()
    server.apply(objects(slapd.ldap_url, certificates, password_file))
    yield server
    server.stop()
    assert "Traceback" not in server.log()


def test_ldap_user_push_login_routed_by_department(ldap_server: Server) -> None:
    url = ldap_server.cli_json("enroll", "ikaya", "--json")["enrollment_url"]
    phone = enroll(url, "İrem'in telefonu")
    api = Api(ldap_server, "portal")

    started = api.login("ikaya", "İrem-Parola1").json()
    assert started["status"] == "pending"
    challenge = fetch_challenges(phone)[0]
    send_answer(phone, challenge, "approve", number=None, uv=False)
    assert api.status(started["transaction_id"], wait=5)["status"] == "approved"
    pushes = ldap_server.cli_json("audit", "--event", "push_sent", "--json")
    assert pushes[-1]["details"]["push_profile"] == "bt-push"
    assert pushes[-1]["details"]["decided_by"] == "policy 1"


def test_ldap_user_routed_by_member_of(ldap_server: Server) -> None:
    explained = ldap_server.cli_json(
        "policy", "explain", "gmoser", "--application", "portal", "--json"
    )
    assert explained["push_profile"] == "vpn-push"
    assert explained["policy"] == 2


def test_ldap_wrong_password_and_disabled(ldap_server: Server) -> None:
    api = Api(ldap_server, "portal")
    assert api.login("gmoser", "yanlış").json()["reason"] == "invalid_credentials"
    assert api.login("dvogt", "Deniz-Parola1").json()["reason"] == "account_disabled"
    assert api.login("ikay*", "İrem-Parola1").json()["reason"] == "invalid_credentials"


def test_generated_user_gets_no_method(ldap_server: Server) -> None:
    # toplu0001 is in Finans and in no VPN group, so no policy matches.
    api = Api(ldap_server, "portal")
    assert api.login("toplu0001", "Toplu-Parola-1").json()["reason"] == "no_method"


def test_auth_profile_test_reports_steps(ldap_server: Server) -> None:
    result = ldap_server.cli(
        "auth-profile", "test", "kurum", "ikaya", "--password-stdin", stdin="İrem-Parola1\n"
    )
    assert "password: ok" in result.stdout
    assert "department: Bilgi İşlem" in result.stdout


def test_directory_down_fails_closed(
    tmp_path: Path, db_url: str, disposable_slapd: Slapd, certificates: Certificates
) -> None:
    password_file = tmp_path / "bind.pw"
    password_file.write_text(SERVICE_PASSWORD, encoding="utf-8")
    server = Server(tmp_path, db_url)
    server.start()
    try:
        server.apply(objects(disposable_slapd.ldap_url, certificates, password_file))
        api = Api(server, "portal")
        assert api.login("ikaya", "İrem-Parola1").json()["reason"] != "directory_unavailable"
        disposable_slapd.stop()
        assert api.login("ikaya", "İrem-Parola1").json()["reason"] == "directory_unavailable"
    finally:
        server.stop()
    assert "Traceback" not in server.log()


def _median_login_seconds(api: Api, username: str, password: str) -> float:
    # Three logins stay below the five failed attempts a user may make in 15 minutes.
    seconds = []
    for _ in range(3):
        started = time.monotonic()
        assert api.login(username, password).json()["reason"] == "invalid_credentials"
        seconds.append(time.monotonic() - started)
    return statistics.median(seconds)


@pytest.mark.parametrize("ldap_server", ["default"], indirect=True)
def test_ldap_unknown_name_costs_a_bind(ldap_server: Server) -> None:
    """An unknown name costs about what a known name's wrong password does: a bind, not the
    production password hash, which would tell the two apart."""
    api = Api(ldap_server, "portal")
    started = time.monotonic()
    PasswordHasher().hash("Parola-2026!")
    one_hash = time.monotonic() - started

    # Unmeasured, under a third name: the first login may open the server's first database
    # connections.
    assert api.login("ikaya", "yanlış-parola").json()["reason"] == "invalid_credentials"
    known = _median_login_seconds(api, "gmoser", "yanlış-parola")
    unknown = _median_login_seconds(api, "böyle-biri-yok", "yanlış-parola")

    measured = f"unknown {unknown:.3f} s, known {known:.3f} s, one hash {one_hash:.3f} s"
    # Compared with the known name, not in absolute terms: on PostgreSQL a login's own database
    # work can take half a fast hash, while a hash on the unknown path would add a whole one.
    assert unknown - known < one_hash / 2, measured
    assert unknown < known + one_hash / 2, measured
