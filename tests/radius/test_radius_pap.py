"""PAP hiding (RFC 2865 section 5.2): the RFC's own example and round trips."""

from __future__ import annotations

import hashlib

import pytest

from tapgate.radius.pap import InvalidPassword, hide_password, reveal_password

# RFC 2865 section 7.1: user "nemo", password "arctangent", shared secret "xyzzy5461".
RFC_SECRET = b"xyzzy5461"
RFC_AUTHENTICATOR = bytes.fromhex("0f403f9473978057bd83d5cb98f4227a")
RFC_HIDDEN = bytes.fromhex("0dbe708d93d413ce3196e43f782a0aee")

AUTHENTICATOR = bytes(range(16))
SECRET = b"testing-secret-123"


def test_rfc_example_revealed():
    assert reveal_password(RFC_HIDDEN, RFC_SECRET, RFC_AUTHENTICATOR) == "arctangent"


def test_rfc_example_hidden():
    assert hide_password("arctangent", RFC_SECRET, RFC_AUTHENTICATOR) == RFC_HIDDEN


@pytest.mark.parametrize(
    "password",
    [
        "Vpn,Parola-1",
        "a,b,,c,",
        "şükrü,ğüzel",
        "Iğdır İstanbul ıı",
        "exactly-16-octet",
        "seventeen-octets!",
        "   spaces kept   ",
        "ğ" * 64,
        "x" * 128,
        "",
    ],
)
def test_round_trip(password):
    hidden = hide_password(password, SECRET, AUTHENTICATOR)

    assert len(hidden) % 16 == 0
    assert reveal_password(hidden, SECRET, AUTHENTICATOR) == password


def test_too_long_password_not_hidden():
    with pytest.raises(InvalidPassword):
        hide_password("x" * 129, SECRET, AUTHENTICATOR)


@pytest.mark.parametrize("length", [0, 15, 17, 144])
def test_bad_length_rejected(length):
    with pytest.raises(InvalidPassword):
        reveal_password(bytes(length), SECRET, AUTHENTICATOR)


def test_non_utf8_rejected():
    # Hide the octets 0xff 0xfe by hand: they are not UTF-8, as garbage from a wrong secret
    # usually is not.
    plain = b"\xff\xfe" + bytes(14)
    pad = hashlib.md5(SECRET + AUTHENTICATOR).digest()
    hidden = bytes(a ^ b for a, b in zip(plain, pad, strict=True))

    with pytest.raises(InvalidPassword):
        reveal_password(hidden, SECRET, AUTHENTICATOR)


def test_wrong_secret_never_reveals_password():
    hidden = hide_password("Vpn,Parola-1", SECRET, AUTHENTICATOR)

    try:
        revealed = reveal_password(hidden, b"wrong-secret", AUTHENTICATOR)
    except InvalidPassword:
        return
    assert revealed != "Vpn,Parola-1"
