"""Which `return_to` addresses the hosted login accepts, and which client address it records."""

from __future__ import annotations

import ipaddress

import pytest
from starlette.requests import Request

from tapgate.settings import load_settings
from tapgate.web.return_to import allowed_origins, local_path, origin_of, safe_return_to
from tapgate.web.security import client_ip

PUBLIC_URL = "https://mfa.example.com"
ORIGINS = allowed_origins(
    PUBLIC_URL, {"TAPGATE_RETURN_TO_ORIGINS": "https://intranet.example.com, http://127.0.0.1:8081"}
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/admin", "/admin"),
        ("/admin/policies?x=1#frag", "/admin/policies?x=1"),
        ("https://mfa.example.com/after", "https://mfa.example.com/after"),
        ("https://MFA.example.com:443/after", "https://MFA.example.com:443/after"),
        ("https://intranet.example.com/cb?state=1", "https://intranet.example.com/cb?state=1"),
        ("http://127.0.0.1:8081/cb", "http://127.0.0.1:8081/cb"),
        ("http://intranet.example.com/cb", None),
        ("https://intranet.example.com:8443/cb", None),
        ("https://evil.example/", None),
        ("https://mfa.example.com.evil.example/", None),
        ("https://user:pass@mfa.example.com/", None),
        ("//evil.example/", None),
        ("/\\evil.example", None),
        ("/\tevil", None),
        ("javascript:alert(1)", None),
        ("data:text/html,x", None),
        ("", None),
        ("/" + "a" * 3000, None),
    ],
)
def test_safe_return_to(value: str, expected: str | None) -> None:
    assert safe_return_to(value, ORIGINS) == expected


def test_origin_drops_default_port() -> None:
    assert origin_of("https://Example.com:443/x") == "https://example.com"


def test_configured_origins_are_added() -> None:
    assert {
        "https://mfa.example.com",
        "https://intranet.example.com",
        "http://127.0.0.1:8081",
    } == ORIGINS


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/admin", "/admin"),
        ("//evil.example", "/register"),
        ("https://x", "/register"),
        (None, "/register"),
    ],
)
def test_local_path(value: str | None, expected: str) -> None:
    assert local_path(value, "/register") == expected


def request_from(peer: str, forwarded: str | None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request(
        {"type": "http", "method": "GET", "path": "/", "headers": headers, "client": (peer, 1234)}
    )


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", None, "203.0.113.9"),
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),
        ("10.0.0.5", "198.51.100.1", "198.51.100.1"),
        ("10.0.0.5", "6.6.6.6, 198.51.100.1, 10.0.0.7", "198.51.100.1"),
        ("10.0.0.5", "not-an-address", "10.0.0.5"),
        ("10.0.0.5", None, "10.0.0.5"),
    ],
)
def test_client_ip_trusts_only_configured_proxies(
    peer: str, forwarded: str | None, expected: str
) -> None:
    settings = load_settings(None, env={})
    settings = type(settings)(
        **{**settings.__dict__, "trusted_proxies": (ipaddress.ip_network("10.0.0.0/8"),)}
    )

    assert client_ip(request_from(peer, forwarded), settings) == expected
