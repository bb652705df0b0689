"""RADIUS client settings and lookup by source address."""

from __future__ import annotations

import pytest

from tapgate.radius.clients import find_client, parse_networks
from tapgate.secret import Secret
from tests.radius.fake_login import make_client


def test_exact_address_found():
    client = make_client(networks=parse_networks(["127.0.0.1"]))

    assert find_client([client], "127.0.0.1") is client


def test_unknown_address_not_found():
    client = make_client(networks=parse_networks(["127.0.0.1"]))

    assert find_client([client], "127.0.0.2") is None


def test_longest_prefix_wins():
    wide = make_client(name="office", networks=parse_networks(["10.0.0.0/8"]))
    narrow = make_client(name="fw1", networks=parse_networks(["10.1.2.0/24"]))

    assert find_client([wide, narrow], "10.1.2.3") is narrow
    assert find_client([wide, narrow], "10.9.9.9") is wide


def test_ipv6_network_found():
    client = make_client(networks=parse_networks(["2001:db8::/32"]))

    assert find_client([client], "2001:db8::5") is client


def test_ipv4_mapped_source_matches_ipv4_network():
    client = make_client(networks=parse_networks(["192.0.2.0/24"]))

    assert find_client([client], "::ffff:192.0.2.7") is client


def test_invalid_source_not_found():
    client = make_client()

    assert find_client([client], "not-an-address") is None


@pytest.mark.parametrize(
    "changes",
    [
        {"networks": ()},
        {"secret": Secret("")},
        {"language": "de"},
        {"client_ip_attribute": "NAS-IP-Address"},
        {"timeout": 0},
        {"timeout": -5},
    ],
    ids=["no-networks", "empty-secret", "language", "client-ip-attribute", "zero", "negative"],
)
def test_invalid_settings_rejected(changes):
    with pytest.raises(ValueError):
        make_client(**changes)


def test_secret_hidden_from_repr():
    client = make_client(secret=Secret("testing-secret-123"))

    assert "testing-secret-123" not in repr(client)
