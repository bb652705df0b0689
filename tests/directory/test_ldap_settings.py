"""LdapSettings.from_mapping: defaults, and an error that names the key for every bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tapgate.directory.ldap import LdapSettings
from tapgate.directory.ldap.settings import DEFAULT_ATTRIBUTES, DEFAULT_USER_FILTER
from tapgate.errors import ObjectError
from tapgate.secret import Secret

BASE = {
    "servers": ["ldaps://dc1.example.com", "ldap://dc2.example.com:3389"],
    "bind_dn": "CN=svc-mfa,OU=Service,DC=example,DC=com",
    "bind_password": "svc-secret",
    "base_dn": "DC=example,DC=com",
}


def settings(**changes: Any) -> LdapSettings:
    mapping = {**BASE, **changes}
    return LdapSettings.from_mapping(
        "corp", {k: v for k, v in mapping.items() if v is not None}, None
    )


def test_defaults() -> None:
    result = settings()
    assert result.servers == ("ldaps://dc1.example.com", "ldap://dc2.example.com:3389")
    assert result.scope == "sub"
    assert result.user_filter == DEFAULT_USER_FILTER
    assert result.login_attributes == ()
    assert result.attributes == DEFAULT_ATTRIBUTES
    assert result.start_tls is True
    assert result.ca_file is None
    assert result.connect_timeout == 5.0
    assert result.operation_timeout == 10.0
    assert result.nested_groups is False
    assert result.follow_referrals is False
    assert result.bind_password == Secret("svc-secret")


def test_password_absent_from_repr() -> None:
    assert "svc-secret" not in repr(settings())


def test_name_and_type_keys_accepted() -> None:
    assert settings(name="corp", type="ldap").name == "corp"


def test_given_password_wins_over_file(tmp_path: Path) -> None:
    mapping = {**BASE, "bind_password_file": str(tmp_path / "missing")}
    del mapping["bind_password"]
    result = LdapSettings.from_mapping("corp", mapping, Secret("from-store"))
    assert result.bind_password == Secret("from-store")
    assert result.bind_password_file == str(tmp_path / "missing")


def test_password_file_read_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "bind.pw"
    path.write_text("svc-secret\n")
    result = settings(bind_password=None, bind_password_file=str(path))
    assert result.bind_password == Secret("svc-secret")


def test_login_attributes_drop_default_filter() -> None:
    result = settings(login_attributes=["sAMAccountName", "userPrincipalName"])
    assert result.user_filter is None


def test_login_attributes_allow_filter_without_placeholder() -> None:
    result = settings(login_attributes=["uid"], user_filter="(objectClass=person)")
    assert result.user_filter == "(objectClass=person)"


def test_upn_bind_name_accepted() -> None:
    assert settings(bind_dn="svc-mfa@example.com").bind_dn == "svc-mfa@example.com"


def test_down_level_bind_name_accepted() -> None:
    assert settings(bind_dn="EXAMPLE\\svc-mfa").bind_dn == "EXAMPLE\\svc-mfa"


def test_anonymous_without_bind_dn() -> None:
    result = settings(bind_dn=None, bind_password=None)
    assert result.bind_dn is None
    assert result.bind_password is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sever": ["ldap://x"]}, "unknown key 'sever'"),
        ({"type": "local"}, "type must be 'ldap'"),
        ({"servers": []}, "servers must be a non-empty list"),
        ({"servers": "ldap://dc1"}, "servers must be a non-empty list"),
        ({"servers": ["http://dc1"]}, "'http://dc1' is invalid"),
        ({"servers": ["ldap://"]}, "'ldap://' is invalid"),
        ({"servers": ["ldap://dc1:99999"]}, "invalid port"),
        ({"servers": ["ldap://dc1/dc=x"]}, "only scheme, host and port"),
        ({"servers": [389]}, "is not a URL string"),
        ({"base_dn": None}, "base_dn is missing"),
        ({"base_dn": "not a dn"}, "base_dn 'not a dn' is not a valid distinguished name"),
        ({"bind_dn": "cn=a,b"}, "bind_dn 'cn=a,b' is not a valid distinguished name"),
        ({"bind_password": None}, "bind_dn needs a password"),
        ({"bind_password": ""}, "bind_dn needs a password"),
        ({"bind_dn": None}, "bind_dn is missing"),
        ({"bind_password_file": "/x"}, "not both"),
        ({"bind_password": 5}, "bind_password must be a string"),
        ({"scope": "subtree"}, "scope must be one of sub, one, base"),
        ({"user_filter": "sAMAccountName={username}"}, "filter in parentheses"),
        ({"user_filter": "(uid=x)"}, "must contain {username}"),
        ({"user_filter": "(&(uid={username})"}, "is not a valid LDAP filter"),
        ({"login_attributes": []}, "login_attributes must be a non-empty list"),
        ({"login_attributes": ["bad name"]}, "'bad name' is not a valid attribute name"),
        ({"attributes": ["memberOf", "(x)"]}, "'(x)' is not a valid attribute name"),
        ({"start_tls": "yes"}, "start_tls must be true or false"),
        ({"nested_groups": 1}, "nested_groups must be true or false"),
        ({"follow_referrals": None, "start_tls": None, "connect_timeout": 0}, "connect_timeout"),
        ({"operation_timeout": True}, "operation_timeout must be a number"),
        ({"operation_timeout": "10"}, "operation_timeout must be a number"),
        ({"ca_file": "/nonexistent/ca.pem"}, "is not a readable file"),
    ],
)
def test_invalid_mapping_names_key(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ObjectError, match="^auth profile 'corp': ") as raised:
        settings(**changes)
    assert message in str(raised.value)


def test_unreadable_password_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(ObjectError, match="bind_password_file .* cannot be read"):
        settings(bind_password=None, bind_password_file=str(tmp_path / "absent"))


def test_password_without_bind_dn_rejected() -> None:
    with pytest.raises(ObjectError, match="bind_dn is missing"):
        LdapSettings.from_mapping(
            "corp", {"servers": ["ldap://dc1"], "base_dn": "dc=x"}, Secret("pw")
        )


def test_ca_file_without_certificate_rejected(tmp_path: Path) -> None:
    path = tmp_path / "ca.pem"
    path.write_text("not a certificate\n")
    with pytest.raises(ObjectError, match="contains no PEM CA certificate"):
        settings(ca_file=str(path))


def test_time_budget_adds_timeouts() -> None:
    assert settings(connect_timeout=2, operation_timeout=3).time_budget == 5.0


def test_given_password_kept() -> None:
    configured = LdapSettings.from_mapping(
        "corp",
        {"servers": ["ldap://dc1"], "base_dn": "dc=x", "bind_dn": "cn=svc,dc=x"},
        Secret("pw"),
    )
    assert configured.bind_password is not None
    assert configured.bind_password.reveal() == "pw"
