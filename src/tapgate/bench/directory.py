"""The benchmark's LDAP directory: a throwaway slapd with one entry per simulated user.

Each user gets an AD-style entry with a Turkish name, the benchmark password in `userPassword`
and the device owner's id as a binary `objectGUID`. The `ldap` auth profile identifies a user by
that GUID, so the devices that provisioning writes belong to the entries loaded here.

The auth profile talks plain ldap:// to slapd on 127.0.0.1 without StartTLS, so no certificate
is needed. Passwords then cross only the loopback interface, but each user bind costs one TCP
connection and no TLS handshake, which a production directory over StartTLS or ldaps:// adds.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tapgate.bench.provision import PASSWORD, BenchDevice
from tapgate.bench.slapd import (
    BASE_DN,
    SERVICE_DN,
    SERVICE_PASSWORD,
    Slapd,
    add_entries,
    ldif_entry,
    service_account_ldif,
    start_slapd,
)

PEOPLE_OU = f"ou=Personel,{BASE_DN}"
_FIRST_NAMES = ("Ayşe", "İrem", "Gökhan", "Şule", "Ömer", "Çağrı", "Ilgın", "Doğan", "Ümit", "Ebru")
_LAST_NAMES = ("Yılmaz", "Kaya", "Demir", "Şahin", "Çelik", "Öztürk", "Aydın", "Güneş", "Işık")
_DEPARTMENTS = ("Bilgi İşlem", "Finans", "İnsan Kaynakları", "Satış", "Güvenlik")


def profile_options(server: Slapd) -> dict[str, Any]:
    """Return the settings of the benchmark's `ldap` auth profile for `server`.

    The service bind password is written inline, and `apply` stores it encrypted.
    """
    return {
        "servers": [server.ldap_url],
        "bind_dn": SERVICE_DN,
        "bind_password": SERVICE_PASSWORD,
        "base_dn": BASE_DN,
        "user_filter": "(sAMAccountName={username})",
        "start_tls": False,
        "connect_timeout": 2,
        "operation_timeout": 5,
    }


def person_ldif(device: BenchDevice) -> str:
    """Return the entry of one simulated user, identified by the user id of its device."""
    first = _FIRST_NAMES[device.index % len(_FIRST_NAMES)]
    last = _LAST_NAMES[(device.index // len(_FIRST_NAMES)) % len(_LAST_NAMES)]
    cn = f"{first} {last} {device.index:06d}"
    return ldif_entry(
        f"cn={cn},{PEOPLE_OU}",
        [
            ("objectClass", "inetOrgPerson"),
            ("objectClass", "tapgateADUser"),
            ("cn", cn),
            ("sn", last),
            ("displayName", cn),
            ("sAMAccountName", device.username),
            ("userPrincipalName", f"{device.username}@ornek.com.tr"),
            ("department", _DEPARTMENTS[device.index % len(_DEPARTMENTS)]),
            ("mail", f"{device.username}@ornek.com.tr"),
            ("userAccountControl", "512"),
            ("userPassword", PASSWORD),
            ("objectGUID", uuid.UUID(device.user_id).bytes_le),
        ],
    )


def start_directory(folder: Path) -> Slapd:
    """Start an empty slapd in `folder` with the service account and the people OU."""
    people = ldif_entry(PEOPLE_OU, [("objectClass", "organizationalUnit"), ("ou", "Personel")])
    return start_slapd(folder, None, service_account_ldif() + people)


def load_people(server: Slapd, devices: list[BenchDevice]) -> None:
    """Add one entry per device's user to `server`."""
    add_entries(server, "".join(person_ldif(device) for device in devices), "people.ldif")
