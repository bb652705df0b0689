"""Fixtures for the `ldap` auth profile tests: certificates, slapd servers and profiles.

The slapd servers are real processes started by `ldap_server.start_slapd`, and each fixture kills
its server by PID at teardown.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme
from ldap_server import (
    Certificates,
    ProfileFactory,
    Slapd,
    directory_ldif,
    generated_ldif,
    minimal_ldif,
    profile_mapping,
    start_slapd,
)

from tapgate.directory.ldap import LdapAuthProfile, LdapSettings


def _require_slapd() -> None:
    # A missing slapd fails the tests instead of skipping them, so CI cannot pass without them.
    for program in ("slapd", "slapadd", "ldapadd"):
        if shutil.which(program) is None:
            pytest.fail(f"{program} not found; install the Debian packages slapd and ldap-utils")


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    folder = tmp_path_factory.mktemp("ldap-tls")
    authority = trustme.CA(organization_name="tapgate test CA")
    server_cert = authority.issue_cert("127.0.0.1", "localhost")
    certificates = Certificates(
        ca_file=folder / "ca.pem",
        cert_file=folder / "server.pem",
        key_file=folder / "server.key",
        other_ca_file=folder / "other-ca.pem",
    )
    authority.cert_pem.write_to_path(str(certificates.ca_file))
    server_cert.cert_chain_pems[0].write_to_path(str(certificates.cert_file))
    server_cert.private_key_pem.write_to_path(str(certificates.key_file))
    trustme.CA(organization_name="unrelated CA").cert_pem.write_to_path(
        str(certificates.other_ca_file)
    )
    return certificates


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory, certificates: Certificates) -> Iterator[Slapd]:
    """A slapd with the full test directory, shared by the whole session."""
    _require_slapd()
    server = start_slapd(
        tmp_path_factory.mktemp("slapd"), certificates, directory_ldif() + generated_ldif()
    )
    yield server
    server.stop()


@pytest.fixture
def disposable_slapd(tmp_path: Path, certificates: Certificates) -> Iterator[Slapd]:
    """A small slapd of the test's own, which the test may kill."""
    _require_slapd()
    server = start_slapd(tmp_path / "slapd", certificates, minimal_ldif())
    yield server
    server.stop()


@pytest.fixture
def blackhole_url() -> Iterator[str]:
    """An ldap:// URL whose port accepts TCP connections but never responds."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"ldap://127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
async def make_profile(slapd: Slapd, certificates: Certificates) -> AsyncIterator[ProfileFactory]:
    """Build `ldap` auth profiles for the session slapd, over StartTLS unless `urls` is given."""
    created: list[LdapAuthProfile] = []

    def make(urls: list[str] | None = None, **overrides: object) -> LdapAuthProfile:
        mapping = profile_mapping(urls or [slapd.ldap_url], certificates, **overrides)
        profile = LdapAuthProfile(LdapSettings.from_mapping("corp", mapping, None))
        created.append(profile)
        return profile

    yield make
    for profile in created:
        await profile.close()
