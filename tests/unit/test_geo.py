"""Placing a client IP for the login context: special ranges by name, else a country code."""

from __future__ import annotations

import pytest

from tapgate.geo import Locator

# In the iptocc 3.3 data, 85.105.1.1 and 2a02:ff0::1 are Turkish and 8.8.8.8 is in the US.
PLACES = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private network"),
    ("172.16.5.4", "private network"),
    ("172.31.255.254", "private network"),
    ("192.168.1.10", "private network"),
    ("100.64.0.1", "private network"),
    ("100.127.255.254", "private network"),
    ("169.254.10.20", "private network"),
    ("fd12:3456::1", "private network"),
    ("fe80::1", "private network"),
    ("192.0.2.1", "reserved range"),
    ("198.51.100.7", "reserved range"),
    ("203.0.113.9", "reserved range"),
    ("2001:db8::1", "reserved range"),
    ("0.0.0.0", "reserved range"),
    ("255.255.255.255", "reserved range"),
    ("85.105.1.1", "TR"),
    ("2a02:ff0::1", "TR"),
    ("8.8.8.8", "US"),
    ("not-an-ip", "unknown"),
    ("999.1.1.1", "unknown"),
    ("85.105.1", "unknown"),
    ("85.105.1.1 ", "unknown"),
    ("", "unknown"),
    (None, "unknown"),
]


@pytest.mark.parametrize(("address", "expected"), PLACES)
def test_locate(address: str | None, expected: str) -> None:
    assert Locator().locate(address) == expected


def test_outside_private_ranges() -> None:
    assert Locator().locate("100.128.0.1") != "private network"


def test_ipv4_mapped_address_located() -> None:
    assert Locator().locate("::ffff:85.105.1.1") == "TR"
