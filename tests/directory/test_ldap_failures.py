"""The `ldap` auth profile when servers die, hang, or present an untrusted certificate."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from ldap_server import (
    SERVICE_DN,
    Certificates,
    ProfileFactory,
    Slapd,
    free_port,
)

from tapgate.directory.base import DirectoryUser
from tapgate.errors import DirectoryUnavailable
from tapgate.secret import Secret


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> bool:
    return all(record.exc_info is None for record in caplog.records)


async def test_killed_server_fails_closed(
    make_profile: ProfileFactory, disposable_slapd: Slapd, caplog: pytest.LogCaptureFixture
) -> None:
    profile = make_profile([disposable_slapd.ldap_url])
    user = await profile.find_user("ikaya")
    assert user is not None

    disposable_slapd.stop()
    started = time.monotonic()
    with pytest.raises(DirectoryUnavailable, match="corp"):
        await profile.find_user("ikaya")
    with pytest.raises(DirectoryUnavailable):
        await profile.verify_password(user, Secret("İrem-Parola1"))
    assert time.monotonic() - started < 2 * profile.settings.time_budget
    assert disposable_slapd.ldap_url in caplog.text
    assert no_tracebacks(caplog)


async def test_dropped_service_connection_rebound(
    make_profile: ProfileFactory, disposable_slapd: Slapd
) -> None:
    profile = make_profile([disposable_slapd.ldap_url])
    # Concurrent lookups leave several idle connections in the pool, all broken by the restart.
    found = await asyncio.gather(*(profile.find_user("ikaya") for _ in range(8)))
    assert all(user is not None for user in found)

    disposable_slapd.stop()
    disposable_slapd.restart()
    user = await profile.find_user("ikaya")
    assert user is not None
    assert await profile.verify_password(user, Secret("İrem-Parola1")) is None


async def test_failover_from_dead_server(
    make_profile: ProfileFactory, slapd: Slapd, caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"ldap://127.0.0.1:{free_port()}"
    profile = make_profile([dead, slapd.ldap_url])
    with caplog.at_level(logging.INFO):
        user = await profile.find_user("ikaya")
        assert user is not None
        assert await profile.verify_password(user, Secret("İrem-Parola1")) is None
        assert await profile.verify_password(user, Secret("wrong")) == "invalid_credentials"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and dead in r.message]
    assert len(warnings) == 1
    assert "auth profile corp" in warnings[0].message
    assert no_tracebacks(caplog)


async def test_hanging_server_bounded(make_profile: ProfileFactory, blackhole_url: str) -> None:
    profile = make_profile([blackhole_url], connect_timeout=1, operation_timeout=1)
    started = time.monotonic()
    with pytest.raises(DirectoryUnavailable):
        await profile.find_user("ikaya")
    assert time.monotonic() - started < profile.settings.time_budget + 1.5


async def test_failover_from_hanging_server(
    make_profile: ProfileFactory, slapd: Slapd, blackhole_url: str
) -> None:
    profile = make_profile([blackhole_url, slapd.ldap_url], connect_timeout=2, operation_timeout=2)
    assert await profile.find_user("ikaya") is not None

    # The hanging server is now tried last, so the next call does not wait for it.
    started = time.monotonic()
    assert await profile.find_user("gmoser") is not None
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("transport", ["ldap_url", "ldaps_url"])
async def test_untrusted_certificate_rejected(
    make_profile: ProfileFactory,
    slapd: Slapd,
    certificates: Certificates,
    caplog: pytest.LogCaptureFixture,
    transport: str,
) -> None:
    url = getattr(slapd, transport)
    profile = make_profile([url], ca_file=str(certificates.other_ca_file))
    with caplog.at_level(logging.WARNING), pytest.raises(DirectoryUnavailable):
        await profile.find_user("ikaya")
    lines = [record.message for record in caplog.records if url in record.message]
    assert len(lines) == 1
    assert "auth profile corp" in lines[0]
    assert "certificate verify failed" in lines[0]
    assert "\n" not in lines[0]
    assert no_tracebacks(caplog)


async def test_untrusted_certificate_blocks_password(
    make_profile: ProfileFactory, certificates: Certificates
) -> None:
    profile = make_profile(ca_file=str(certificates.other_ca_file))
    user = DirectoryUser("corp", "id", "ikaya", attributes={"distinguishedname": ("cn=x",)})
    with pytest.raises(DirectoryUnavailable):
        await profile.verify_password(user, Secret("İrem-Parola1"))


async def test_empty_password_needs_no_server(make_profile: ProfileFactory) -> None:
    profile = make_profile([f"ldap://127.0.0.1:{free_port()}"])
    user = DirectoryUser("corp", "id", "ikaya", attributes={"distinguishedname": ("cn=x",)})
    assert await profile.verify_password(user, Secret("")) == "invalid_credentials"


async def test_wrong_service_password_fails_closed(
    make_profile: ProfileFactory, caplog: pytest.LogCaptureFixture
) -> None:
    profile = make_profile(bind_password="not-the-password")
    with pytest.raises(DirectoryUnavailable, match="service bind was rejected"):
        await profile.find_user("ikaya")
    assert f"rejected the service bind as {SERVICE_DN}" in caplog.text
    assert "not-the-password" not in caplog.text


async def test_plain_ldap_warns(
    make_profile: ProfileFactory, slapd: Slapd, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        profile = make_profile(start_tls=False)
    assert f"passwords reach {slapd.ldap_url} unencrypted" in caplog.text
    assert await profile.find_user("ikaya") is not None


async def test_passwords_never_logged(
    make_profile: ProfileFactory, caplog: pytest.LogCaptureFixture
) -> None:
    profile = make_profile()
    with caplog.at_level(logging.DEBUG):
        user = await profile.find_user("gmoser")
        assert user is not None
        await profile.verify_password(user, Secret("Yanlis-Parola9"))
        await profile.verify_password(user, Secret("Gokhan-Parola1"))
    assert "Yanlis-Parola9" not in caplog.text
    assert "Gokhan-Parola1" not in caplog.text
    assert "svc-secret" not in caplog.text


@pytest.fixture
def wrong_name_ldaps(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An ldaps:// URL whose TLS certificate names another host, with its CA file."""
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("ldap.example.org").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)

    def handshake_once() -> None:
        with contextlib.suppress(OSError):
            client, _ = listener.accept()
            with contextlib.suppress(OSError), context.wrap_socket(client, server_side=True):
                pass
            client.close()

    thread = threading.Thread(target=handshake_once, daemon=True)
    thread.start()
    yield f"ldaps://127.0.0.1:{listener.getsockname()[1]}", ca_file
    thread.join(timeout=10)
    listener.close()


async def test_certificate_for_other_host_rejected(
    make_profile: ProfileFactory,
    wrong_name_ldaps: tuple[str, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, ca_file = wrong_name_ldaps
    profile = make_profile([url], ca_file=str(ca_file))
    with caplog.at_level(logging.WARNING), pytest.raises(DirectoryUnavailable):
        await profile.find_user("ikaya")
    assert "IP address mismatch" in caplog.text


async def test_unknown_user_check_binds(
    make_profile: ProfileFactory, caplog: pytest.LogCaptureFixture
) -> None:
    profile = make_profile()
    caplog.set_level(logging.INFO)

    await profile.check_unknown_user(Secret("İrem-Parola1"))
    await profile.check_unknown_user(Secret(""))

    assert "rejected the bind" not in caplog.text
    assert "should not exist" not in caplog.text
    assert "İrem-Parola1" not in caplog.text
    assert no_tracebacks(caplog)


async def test_unknown_user_check_fails_closed(make_profile: ProfileFactory) -> None:
    profile = make_profile([f"ldap://127.0.0.1:{free_port()}"])

    with pytest.raises(DirectoryUnavailable, match="corp"):
        await profile.check_unknown_user(Secret("İrem-Parola1"))
    # An empty password binds nowhere, as for a known user.
    await profile.check_unknown_user(Secret(""))
