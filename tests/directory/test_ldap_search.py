"""Login names, filters, DNs and entry decoding, without a server."""

from __future__ import annotations

import uuid

import pytest

from tapgate.directory.ldap import LdapSettings
from tapgate.directory.ldap.groups import dn_key, merge_groups, nested_groups
from tapgate.directory.ldap.search import (
    Entry,
    decode_values,
    entry_to_user,
    escape_filter_value,
    login_name,
    requested_attributes,
    user_filter,
    username_attribute,
)


def settings(**changes: object) -> LdapSettings:
    mapping = {"servers": ["ldap://dc1"], "base_dn": "dc=example,dc=com", **changes}
    return LdapSettings.from_mapping("corp", mapping, None)


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("ikaya", "ikaya"),
        ("ikay*", r"ikay\2a"),
        ("*", r"\2a"),
        (")(uid=*", r"\29\28uid=\2a"),
        ("a\\b", r"a\5cb"),
        ("a\x00b", r"a\00b"),
        ("İrem Şahin", "İrem Şahin"),
    ],
)
def test_filter_value_escaped(value: str, escaped: str) -> None:
    assert escape_filter_value(value) == escaped


@pytest.mark.parametrize(
    ("typed", "name"),
    [
        ("gmoser", "gmoser"),
        ("  gmoser ", "gmoser"),
        ("EXAMPLE\\gmoser", "gmoser"),
        ("gmoser@example.com", "gmoser@example.com"),
        ("I\u0307rem", "İrem"),  # NFC joins I and the combining dot above
        ("", None),
        ("   ", None),
        ("EXAMPLE\\", None),
        ("a\nb", None),
        ("x" * 257, None),
    ],
)
def test_login_name_normalized(typed: str, name: str | None) -> None:
    assert login_name(typed) == name


def test_default_filter_built() -> None:
    assert user_filter(settings(), "ikay*") == r"(sAMAccountName=ikay\2a)"


def test_login_attributes_filter_built() -> None:
    configured = settings(login_attributes=["sAMAccountName", "userPrincipalName"])
    expected = "(|(sAMAccountName=gmoser)(userPrincipalName=gmoser))"
    assert user_filter(configured, "gmoser") == expected


def test_login_attributes_combined_with_filter() -> None:
    configured = settings(login_attributes=["uid"], user_filter="(objectClass=person)")
    assert user_filter(configured, "a)") == r"(&(objectClass=person)(uid=a\29))"


def test_username_attribute_from_filter() -> None:
    assert (
        username_attribute(settings(user_filter="(&(objectClass=user)(uid={username}))")) == "uid"
    )
    assert username_attribute(settings(login_attributes=["mail", "uid"])) == "mail"
    assert username_attribute(settings(user_filter="(|(a={username})(b={username}))")) == "a"


def test_requested_attributes_unique() -> None:
    names = requested_attributes(settings(attributes=["MEMBEROF", "department", "employeeID"]))
    assert [name.lower() for name in names].count("memberof") == 1
    assert "employeeID" in names
    assert "sAMAccountName" in names
    assert "objectGUID" in names


def test_guid_decoded_canonically() -> None:
    guid = uuid.UUID("6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f")
    assert decode_values("objectGUID", [guid.bytes_le]) == (str(guid),)


def test_binary_value_decoded_as_hex() -> None:
    assert decode_values("objectSid", [b"\x01\xff"]) == ("01ff",)


def test_entry_identity_prefers_object_guid() -> None:
    guid = uuid.UUID("6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f")
    entry = Entry(
        "CN=Gökhan Moser,DC=example,DC=com",
        {
            "objectGUID": [guid.bytes_le],
            "sAMAccountName": [b"GMoser"],
            "memberOf": [b"CN=VPN,DC=example,DC=com"],
            "displayName": ["Gökhan Moser".encode()],
        },
    )
    user = entry_to_user(settings(), entry, "gmoser")
    assert user.user_id == str(guid)
    assert user.username == "GMoser"
    assert user.display_name == "Gökhan Moser"
    assert user.attribute("memberOf") == ("CN=VPN,DC=example,DC=com",)
    assert user.attribute("distinguishedName") == ("CN=Gökhan Moser,DC=example,DC=com",)


def test_entry_without_uuid_uses_dn() -> None:
    user = entry_to_user(settings(), Entry("cn=x,dc=example,dc=com", {}), "x")
    assert user.user_id == "cn=x,dc=example,dc=com"
    assert user.username == "x"


def test_computed_lockout_sets_locked() -> None:
    entry = Entry("cn=x,dc=y", {"msDS-User-Account-Control-Computed": [b"16"]})
    assert entry_to_user(settings(), entry, "x").locked is True


def test_dn_key_ignores_escaping_and_case() -> None:
    assert dn_key(r"CN=Kaya\, İrem,DC=Ornek") == dn_key(r"cn=kaya\2C İrem,dc=ornek")
    assert dn_key(r"cn=\#a\+b,dc=x") == dn_key(r"cn=\23a\2Bb,dc=x")
    assert dn_key("cn=a,dc=x") != dn_key("cn=b,dc=x")


def test_groups_merged_once() -> None:
    merged = merge_groups(["cn=A,dc=x"], ["CN=a,DC=x", "cn=B,dc=x", "cn=b,dc=x"])
    assert merged == ("cn=A,dc=x", "cn=B,dc=x")


class RecordingConnection:
    """A stand-in for an Active Directory connection, which no test here can reach."""

    def __init__(self, group_dns: list[str]) -> None:
        self.filters: list[str] = []
        self.result: dict[str, object] = {}
        self.response: list[dict[str, object]] = []
        self._group_dns = group_dns

    def search(self, base: str, search_filter: str, *args: object, **kwargs: object) -> bool:
        self.filters.append(search_filter)
        self.result = {"result": 0, "description": "success"}
        self.response = [{"type": "searchResEntry", "dn": dn} for dn in self._group_dns]
        return True


def test_active_directory_uses_in_chain_rule() -> None:
    connection = RecordingConnection(["CN=VPN,DC=example,DC=com"])
    groups = nested_groups(connection, settings(), r"CN=Kaya\, İrem,DC=example,DC=com", True)
    assert groups == ["CN=VPN,DC=example,DC=com"]
    assert connection.filters == [
        r"(member:1.2.840.113556.1.4.1941:=CN=Kaya\5c, İrem,DC=example,DC=com)"
    ]
