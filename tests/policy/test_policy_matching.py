"""Policy values: exact, wildcard, regular expression, and memberOf DNs."""

from __future__ import annotations

import pytest

from tapgate.directory.base import DirectoryUser
from tapgate.errors import PolicyValueError
from tapgate.policy.matching import MAX_VALUE_LENGTH, attribute_values, compile_value, match_policy
from tapgate.policy.model import Policy

# (policy value, attribute value, expected)
PLAIN = [
    # exact
    ("IT", "IT", True),
    ("IT", "it", True),
    ("it", "İT", True),
    ("IT", "ıt", True),
    ("IT", "ITS", False),
    ("IT", "", False),
    ("Bilgi İşlem", "BİLGİ İŞLEM", True),
    ("Bilgi İşlem", "bilgi işlem", True),
    ("Bilgi İşlem", "Bilgi  İşlem ", True),
    ("Bilgi İşlem", "Bilgi Islem", False),
    ("Ayşe Yılmaz", "AYŞE YILMAZ", True),
    ("Ayşe Yılmaz", "Ayse Yilmaz", False),
    ("Çağrı Merkezi", "ÇAĞRI MERKEZİ", True),
    ("Straße", "STRASSE", True),
    ("a.b", "aXb", False),
    ("CN=IT,OU=Groups", "cn=it,ou=groups", True),
    # wildcard
    ("*", "anything", True),
    ("*", "", True),
    ("Bilgi*", "BİLGİ İŞLEM", True),
    ("Bilgi*", "Bilgi", True),
    ("Bilgi*", "Finans", False),
    ("*İşlem", "bilgi işlem", True),
    ("*lem", "bilgi işlem", True),
    ("*Yıl*", "Ayşe YILMAZ", True),
    ("a*b*c", "abc", True),
    ("a*b*c", "aXbYc", True),
    ("a*b*c", "acb", False),
    ("ab*ba", "aba", False),
    ("ab*ba", "abba", True),
    ("a**b", "ab", True),
    (r"a\*b", "a*b", True),
    (r"a\*b", "aXb", False),
    (r"a\**", "a*bc", True),
    (r"a\**", "abc", False),
    (r"C:\\*", "c:\\temp", True),
    ("?*", "x", False),
    ("[ab]*", "a", False),
    # regular expression
    ("/^Sec(urity)?$/", "Security", True),
    ("/^Sec(urity)?$/", "SEC", True),
    ("/^Sec(urity)?$/", "Secure", False),
    ("/Sec/", "Security", False),
    ("/Sec.*/", "security", True),
    ("/BİLGİ.*/", "Bilgi İşlem", True),
    ("/bilgi.*/", "BİLGİ İŞLEM", True),
    ("/Yılmaz/", "YILMAZ", True),
    ("/yilmaz/", "Yılmaz", True),
    ("/[a-z]+ [a-z]+/", "Bilgi Islem", True),
    ("/[a-z]+ [a-z]+/", "Bilgi İşlem", False),
    ("/\\p{L}+ \\p{L}+/", "Bilgi İşlem", True),
    ("/Stra(ß)e/", "STRASSE", True),
    ("/IT|Security/", "security", True),
    ("/\\d{4}/", "2024", True),
    ("/\\D+/", "IT", True),
    ("/a.b/", "a\nb", False),
    ("/", "/", True),
    ("/x", "/X", True),
]


@pytest.mark.parametrize(("value", "candidate", "expected"), PLAIN)
def test_value_matches(value: str, candidate: str, expected: bool) -> None:
    assert compile_value(value).matches(candidate) is expected


@pytest.mark.parametrize(
    ("value", "kind"),
    [("IT", "exact"), ("Bilgi*", "wildcard"), (r"a\*b", "wildcard"), ("/IT/", "regex")],
)
def test_value_kind(value: str, kind: str) -> None:
    assert compile_value(value).kind == kind


def test_compile_value_cached() -> None:
    assert compile_value("Bilgi*") is compile_value("Bilgi*")


GROUP_DN = "CN=Bilgi İşlem,OU=Gruplar,DC=ornek,DC=com,DC=tr"
TURKISH_DN = r"CN=Kaya\, İrem,OU=Kullanıcılar,DC=ornek,DC=com,DC=tr"

# (policy value, memberOf value, expected)
GROUPS = [
    (GROUP_DN, GROUP_DN, True),
    ("cn=BİLGİ İŞLEM, ou=GRUPLAR, dc=ornek, dc=com, dc=tr", GROUP_DN, True),
    (GROUP_DN, r"CN=Bilgi \C4\B0\C5\9Flem,OU=Gruplar,DC=ornek,DC=com,DC=tr", True),
    (GROUP_DN, "CN=Bilgi İşlem,OU=Eski,DC=ornek,DC=com,DC=tr", False),
    (GROUP_DN, "Bilgi İşlem", False),
    (TURKISH_DN, r"cn=kaya\2C irem,ou=kullanicilar,dc=ornek,dc=com,dc=tr", True),
    ("Bilgi İşlem", GROUP_DN, True),
    ("bilgi işlem", GROUP_DN, True),
    ("Gruplar", GROUP_DN, False),
    ("ornek", GROUP_DN, False),
    ("Bilgi İşlem", "OU=Bilgi İşlem,DC=ornek", False),
    ("Bilgi İşlem", "Bilgi İşlem", True),
    ("Kaya, İrem", TURKISH_DN, True),
    ("Bilgi*", GROUP_DN, True),
    ("*", GROUP_DN, True),
    ("*OU=Gruplar*", GROUP_DN, True),
    ("*OU=Eski*", GROUP_DN, False),
    ("/bilgi .*/", GROUP_DN, True),
    ("/cn=.*,ou=gruplar,.*/", GROUP_DN, True),
    ("/Gruplar/", GROUP_DN, False),
]


@pytest.mark.parametrize(("value", "member", "expected"), GROUPS)
def test_group_matches(value: str, member: str, expected: bool) -> None:
    assert compile_value(value).matches_group(member) is expected


# (value, expected position of the fault in the value, or None)
INVALID = [
    ("", 0),
    ("//", 1),
    ("/(a)\\1/", 4),
    ("/(?=a)b/", 1),
    ("/(?<!a)b/", 1),
    ("/a(b/", None),
    ("/a)b/", None),
    ("/x[abc/", 2),
    ("/ab\\/", 3),
    ("/x{2,1}/", 2),
    ("/a**/", 2),
    ("/\\pL{1000}/", None),
    ("x" * (MAX_VALUE_LENGTH + 1), MAX_VALUE_LENGTH),
]


@pytest.mark.parametrize(("value", "position"), INVALID)
def test_invalid_value_position(value: str, position: int | None) -> None:
    with pytest.raises(PolicyValueError) as caught:
        compile_value(value)
    assert caught.value.position == position


@pytest.mark.parametrize(("value", "_position"), INVALID)
def test_invalid_value_named(value: str, _position: int | None) -> None:
    with pytest.raises(PolicyValueError) as caught:
        compile_value(value)
    assert caught.value.value == value


def test_backreference_hint() -> None:
    with pytest.raises(PolicyValueError, match="backreferences are not supported"):
        compile_value("/(a)\\1/")


def test_lookaround_hint() -> None:
    with pytest.raises(PolicyValueError, match="lookaround is not supported"):
        compile_value("/(?=a)b/")


def test_max_length_accepted() -> None:
    assert compile_value("x" * MAX_VALUE_LENGTH).kind == "exact"


def make_user(**attributes: tuple[str, ...]) -> DirectoryUser:
    return DirectoryUser(
        auth_profile="corp",
        user_id="guid-1",
        username="ayilmaz",
        display_name="Ayşe Yılmaz",
        attributes={name.lower(): values for name, values in attributes.items()},
    )


def test_attribute_values_any_case() -> None:
    user = make_user(department=("Bilgi İşlem",))
    assert attribute_values(user, "DEPARTMENT") == ("Bilgi İşlem",)


def test_attribute_values_username_field() -> None:
    assert attribute_values(make_user(), "username") == ("ayilmaz",)


def test_attribute_values_display_name_field() -> None:
    assert attribute_values(make_user(), "displayName") == ("Ayşe Yılmaz",)


def test_attribute_values_missing() -> None:
    assert attribute_values(make_user(), "title") == ()


def policy(attribute: str, *values: str, auth_profile: str = "corp") -> Policy:
    return Policy(1, "it-push", auth_profile, attribute, values)


# (policy, user attributes, matched, explanation)
POLICIES = [
    (
        policy("department", "IT", "Bilgi*"),
        {"department": ("BİLGİ İŞLEM",)},
        True,
        "department 'BİLGİ İŞLEM' matches 'Bilgi*'",
    ),
    (
        policy("department", "IT", "Bilgi*"),
        {"department": ("Finans",)},
        False,
        "department 'Finans' matches none of ['IT', 'Bilgi*']",
    ),
    (
        policy("title", "*"),
        {"department": ("Finans",)},
        False,
        "user has no attribute title",
    ),
    (
        policy("title", "*"),
        {"title": ()},
        False,
        "user has no attribute title",
    ),
    (
        policy("department", "IT", auth_profile="staff"),
        {"department": ("IT",)},
        False,
        "auth profile staff is not the user's (corp)",
    ),
    (
        policy("memberOf", "Bilgi İşlem"),
        {"memberof": ("CN=Muhasebe,OU=Gruplar,DC=ornek", "CN=Bilgi İşlem,OU=Gruplar,DC=ornek")},
        True,
        "memberOf 'CN=Bilgi İşlem,OU=Gruplar,DC=ornek' matches 'Bilgi İşlem'",
    ),
    (
        policy("memberOf", "VPN"),
        {"memberof": tuple(f"CN=G{number},DC=x" for number in range(7))},
        False,
        "memberOf values 'CN=G0,DC=x', 'CN=G1,DC=x', 'CN=G2,DC=x', 'CN=G3,DC=x', "
        "'CN=G4,DC=x' and 2 more match none of ['VPN']",
    ),
    (
        policy("group_name", "vpn-users"),
        {"group_name": ("staff", "VPN-Users")},
        True,
        "group_name 'VPN-Users' matches 'vpn-users'",
    ),
    (
        policy("username", "AYILMAZ"),
        {},
        True,
        "username 'ayilmaz' matches 'AYILMAZ'",
    ),
    (
        policy("department", "IT", "/(a)\\1/"),
        {"department": ("Finans",)},
        False,
        "department 'Finans' matches none of ['IT', '/(a)\\\\1/']; value '/(a)\\\\1/' is "
        "skipped because it is invalid: invalid regular expression '/(a)\\\\1/': invalid "
        "escape sequence: \\1 (backreferences are not supported)",
    ),
]


@pytest.mark.parametrize(("rule", "attributes", "matched", "_explanation"), POLICIES)
def test_match_policy(
    rule: Policy, attributes: dict[str, tuple[str, ...]], matched: bool, _explanation: str
) -> None:
    assert match_policy(rule, make_user(**attributes)).matched is matched


@pytest.mark.parametrize(("rule", "attributes", "_matched", "explanation"), POLICIES)
def test_match_policy_explanation(
    rule: Policy, attributes: dict[str, tuple[str, ...]], _matched: bool, explanation: str
) -> None:
    assert match_policy(rule, make_user(**attributes)).explanation == explanation
