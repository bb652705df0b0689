"""Parsing and comparing distinguished names (RFC 4514)."""

from __future__ import annotations

import pytest

from tapgate.policy.dn import DNSyntaxError, dn_key, first_cn, looks_like_dn, parse_dn

TURKISH_DN = r"CN=Kaya\, İrem,OU=Kullanıcılar,DC=ornek,DC=com,DC=tr"

PARSED = [
    (
        TURKISH_DN,
        (
            (("cn", "Kaya, İrem"),),
            (("ou", "Kullanıcılar"),),
            (("dc", "ornek"),),
            (("dc", "com"),),
            (("dc", "tr"),),
        ),
    ),
    ("cn = IT , ou=Groups", ((("cn", "IT"),), (("ou", "Groups"),))),
    (r"CN=\C4\B0rem,DC=x", ((("cn", "İrem"),), (("dc", "x"),))),
    (r"cn=\ lead\ ,dc=x", ((("cn", " lead "),), (("dc", "x"),))),
    ("cn=a+sn=b,dc=x", ((("cn", "a"), ("sn", "b")), (("dc", "x"),))),
    ("2.5.4.3=x,0.9.2342.19200300.100.1.25=y", ((("cn", "x"),), (("dc", "y"),))),
    ("commonName=x", ((("cn", "x"),),)),
    ("cn=#04024869,dc=x", ((("cn", "#04024869"),), (("dc", "x"),))),
    ("cn=,dc=x", ((("cn", ""),), (("dc", "x"),))),
    ("cn=a=b", ((("cn", "a=b"),),)),
    (r"cn=a\2Cb", ((("cn", "a,b"),),)),
    ("cn=trailing   ,dc=x", ((("cn", "trailing"),), (("dc", "x"),))),
]

INVALID = [
    ("", 0),
    ("IT", 2),
    ("=x", 0),
    ("cn=a,", 5),
    ("cn=a\\", 4),
    ("cn=a\\q", 4),
    ('cn="quoted"', 3),
    ("cn=a;b", 4),
    (r"cn=\C4,dc=x", 3),
    ("cn=#0", 3),
    ("cn=#04 x", 7),
]


@pytest.mark.parametrize(("text", "expected"), PARSED)
def test_parse_dn(text: str, expected: tuple[tuple[tuple[str, str], ...], ...]) -> None:
    assert parse_dn(text) == expected


@pytest.mark.parametrize(("text", "position"), INVALID)
def test_parse_dn_invalid_position(text: str, position: int) -> None:
    with pytest.raises(DNSyntaxError) as caught:
        parse_dn(text)
    assert caught.value.position == position


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (TURKISH_DN, r"cn=KAYA\, İREM, ou=KULLANICILAR, dc=ORNEK, dc=COM, dc=TR"),
        (TURKISH_DN, r"CN=Kaya\2C İrem,OU=Kullanıcılar,DC=ornek,DC=com,DC=tr"),
        (TURKISH_DN, r"CN=Kaya\2C \C4\B0rem,OU=Kullan\C4\B1c\C4\B1lar,DC=ornek,DC=com,DC=tr"),
        ("CN=IT,OU=Groups", "2.5.4.3=it,ou=groups"),
        ("cn=a+sn=b", "sn=B + cn=A"),
        ("cn=Bilgi  İşlem", "cn=bilgi işlem"),
    ],
)
def test_dn_key_equal(left: str, right: str) -> None:
    assert dn_key(left) == dn_key(right)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("CN=IT,OU=Groups,DC=x", "CN=IT,OU=Istanbul,DC=x"),
        ("CN=IT,OU=Groups", "OU=Groups,CN=IT"),
        ("cn=a,b", r"cn=a\,b"),
    ],
)
def test_dn_key_different(left: str, right: str) -> None:
    assert dn_key(left) != dn_key(right)


def test_dn_key_invalid_is_none() -> None:
    assert dn_key("Bilgi İşlem") is None


def test_first_cn_folded() -> None:
    key = dn_key(TURKISH_DN)
    assert key is not None
    assert first_cn(key) == "kaya, irem"


def test_first_cn_absent() -> None:
    key = dn_key("OU=IT,DC=x")
    assert key is not None
    assert first_cn(key) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("CN=IT", True), (" cn =x", True), ("2.5.4.3=x", True), ("IT", False), ("a b=c", False)],
)
def test_looks_like_dn(text: str, expected: bool) -> None:
    assert looks_like_dn(text) is expected
