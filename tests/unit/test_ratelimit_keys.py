"""Counter keys that fit the column whatever the name's length once case-folded."""

from __future__ import annotations

from tapgate.directory.base import normalize_username
from tapgate.push import ratelimit


def test_short_keys_kept_as_written() -> None:
    assert ratelimit.user_key("personel", "ayşe-1") == "personel:ayşe-1"
    assert ratelimit.unknown_user_key("şükrü") == "unknown:şükrü"


def test_long_folded_name_hashed_to_fit() -> None:
    folded = normalize_username("ß" * 256)
    assert len(folded) == 512
    key = ratelimit.unknown_user_key(folded)
    assert len(key) <= ratelimit.KEY_CHARACTERS
    assert key.startswith("sha256:")
    assert key == ratelimit.unknown_user_key(folded)
    assert key != ratelimit.unknown_user_key(normalize_username("ß" * 255))


def test_long_directory_id_hashed_to_fit() -> None:
    dn = "cn=" + "İrem Kaya," * 30 + "dc=örnek,dc=com,dc=tr"
    key = ratelimit.user_key("kurumsal-ldap", dn)
    assert len(key) <= ratelimit.KEY_CHARACTERS
