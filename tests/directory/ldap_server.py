"""Test data for the `ldap` auth profile tests, served by a real OpenLDAP slapd.

`tapgate.bench.slapd` starts the server (on loopback ports, with a certificate from a `trustme`
CA for StartTLS and ldaps://); this module contains the people and groups the tests rely on.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from tapgate.bench.slapd import (
    BASE_DN,
    SERVICE_DN,
    SERVICE_PASSWORD,
    Certificates,
    Slapd,
    free_port,
    start_slapd,
)
from tapgate.bench.slapd import ldif_entry as _entry
from tapgate.directory.ldap import LdapAuthProfile

__all__ = [
    "BASE_DN",
    "GMOSER_GUID",
    "GROUPS_OU",
    "SERVICE_DN",
    "SERVICE_PASSWORD",
    "Certificates",
    "ProfileFactory",
    "Slapd",
    "directory_ldif",
    "free_port",
    "generated_ldif",
    "minimal_ldif",
    "profile_mapping",
    "start_slapd",
]

USERS_OU = f"ou=Kullanıcılar,{BASE_DN}"
GROUPS_OU = f"ou=Gruplar,{BASE_DN}"

# Gökhan Moser has an AD-style binary objectGUID. The other users are identified by entryUUID.
GMOSER_GUID = uuid.UUID("6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f")


def _person(
    rdn: str,
    cn: str,
    sam: str,
    password: str,
    *,
    department: str = "Finans",
    uac: int = 512,
    ou: str = USERS_OU,
    extra: list[tuple[str, str | bytes]] | None = None,
) -> str:
    attributes: list[tuple[str, str | bytes]] = [
        ("objectClass", "inetOrgPerson"),
        ("objectClass", "tapgateADUser"),
        ("cn", cn),
        ("sn", cn.split()[-1]),
        ("displayName", cn),
        ("sAMAccountName", sam),
        ("userPrincipalName", f"{sam}@ornek.com.tr"),
        ("department", department),
        ("title", "Uzman"),
        ("mail", f"{sam}@ornek.com.tr"),
        ("mobile", "+90 555 000 0000"),
        ("userAccountControl", str(uac)),
        ("userPassword", password),
    ]
    return _entry(f"{rdn},{ou}", attributes + (extra or []))


def _group(cn: str, members: list[str]) -> str:
    attributes: list[tuple[str, str | bytes]] = [("objectClass", "groupOfNames"), ("cn", cn)]
    attributes += [("member", member) for member in members]
    return _entry(f"cn={cn},{GROUPS_OU}", attributes)


def directory_ldif() -> str:
    """Return the test people and groups, with the hard cases the tests rely on."""
    irem = f"cn=Kaya\\, İrem,{USERS_OU}"
    gokhan = f"cn=Gökhan Moser,{USERS_OU}"
    team = f"cn=Bilgi İşlem Ekibi,{GROUPS_OU}"
    staff = f"cn=Tüm Personel,{GROUPS_OU}"
    loop = f"cn=Döngü Grubu,{GROUPS_OU}"
    parts = [
        _entry(USERS_OU, [("objectClass", "organizationalUnit"), ("ou", "Kullanıcılar")]),
        _entry(GROUPS_OU, [("objectClass", "organizationalUnit"), ("ou", "Gruplar")]),
        _entry(f"ou=Diğer,{BASE_DN}", [("objectClass", "organizationalUnit"), ("ou", "Diğer")]),
        _entry(f"ou=Politikalar,{BASE_DN}", [("objectClass", "organizationalUnit")]),
        _entry(
            f"cn=varsayilan,ou=Politikalar,{BASE_DN}",
            [
                ("objectClass", "organizationalRole"),
                ("objectClass", "pwdPolicy"),
                ("cn", "varsayilan"),
                ("pwdAttribute", "userPassword"),
                ("pwdMustChange", "TRUE"),
                ("pwdLockout", "TRUE"),
                ("pwdMaxFailure", "1000"),
            ],
        ),
        _entry(
            SERVICE_DN,
            [
                ("objectClass", "inetOrgPerson"),
                ("cn", "svc-mfa"),
                ("sn", "svc"),
                ("userPassword", SERVICE_PASSWORD),
            ],
        ),
        _person("cn=Kaya\\, İrem", "Kaya, İrem", "ikaya", "İrem-Parola1", department="Bilgi İşlem"),
        _person(
            "cn=Gökhan Moser",
            "Gökhan Moser",
            "gmoser",
            "Gokhan-Parola1",
            extra=[("objectGUID", GMOSER_GUID.bytes_le)],
        ),
        _person("cn=Deniz Vogt", "Deniz Vogt", "dvogt", "Deniz-Parola1", uac=514),
        _person("cn=\\#Ekip Ali\\+Veli", "#Ekip Ali+Veli", "aliveli", "Ali+Veli#1"),
        _person("cn=Ayşe Demir", "Ayşe Demir", "ademir", "Ayse-Parola1"),
        _person("cn=Ayşe Demir", "Ayşe Demir", "ademir", "Ayse-Parola2", ou=f"ou=Diğer,{BASE_DN}"),
        _person(
            "cn=Kilitli Kullanıcı",
            "Kilitli Kullanıcı",
            "kilitli",
            "Kilit-Parola1",
            extra=[("pwdAccountLockedTime", "000001010000Z")],
        ),
        _person(
            "cn=Sıfırlanan Kullanıcı",
            "Sıfırlanan Kullanıcı",
            "sifirla",
            "Sifir-Parola1",
            extra=[("pwdReset", "TRUE")],
        ),
        _person(
            "cn=Süresi Dolan",
            "Süresi Dolan",
            "suresi",
            "Sure-Parola1",
            # 2020-01-01 as an AD FILETIME (100 ns ticks since 1601-01-01 UTC).
            extra=[("accountExpires", "132223104000000000")],
        ),
        _group("VPN Kullanicilari", [gokhan, irem]),
        # A cycle: the team is in staff, staff is in the loop group, the loop group is in the team.
        _group("Bilgi İşlem Ekibi", [irem, loop]),
        _group("Tüm Personel", [team]),
        _group("Döngü Grubu", [staff]),
    ]
    return "".join(parts)


_FIRST_NAMES = ("Ayşe", "İrem", "Gökhan", "Şule", "Ömer", "Çağrı", "Ilgın", "Doğan", "Ümit", "Ebru")
_LAST_NAMES = (
    "Yılmaz",
    "Kaya",
    "Demir",
    "Şahin",
    "Çelik",
    "Öztürk",
    "Aydın",
    "Güneş",
    "Işık",
    "Erdoğan",
)
_DEPARTMENTS = ("Bilgi İşlem", "Finans", "İnsan Kaynakları", "Satış", "Güvenlik")
GENERATED_USERS = 1000


def generated_ldif(count: int = GENERATED_USERS) -> str:
    """Return `count` generated people with Turkish names in `ou=Toplu`, spread over departments."""
    ou = f"ou=Toplu,{BASE_DN}"
    parts = [_entry(ou, [("objectClass", "organizationalUnit"), ("ou", "Toplu")])]
    for index in range(count):
        first = _FIRST_NAMES[index % len(_FIRST_NAMES)]
        last = _LAST_NAMES[(index // len(_FIRST_NAMES)) % len(_LAST_NAMES)]
        cn = f"{first} {last} {index:04d}"
        parts.append(
            _person(
                f"cn={cn}",
                cn,
                f"toplu{index:04d}",
                f"Toplu-Parola-{index}",
                department=_DEPARTMENTS[index % len(_DEPARTMENTS)],
                ou=ou,
            )
        )
    return "".join(parts)


def minimal_ldif() -> str:
    """Return just the service account and İrem, for servers a test kills."""
    return "".join(
        [
            _entry(USERS_OU, [("objectClass", "organizationalUnit"), ("ou", "Kullanıcılar")]),
            _entry(
                SERVICE_DN,
                [
                    ("objectClass", "inetOrgPerson"),
                    ("cn", "svc-mfa"),
                    ("sn", "svc"),
                    ("userPassword", SERVICE_PASSWORD),
                ],
            ),
            _person("cn=Kaya\\, İrem", "Kaya, İrem", "ikaya", "İrem-Parola1"),
        ]
    )


def profile_mapping(
    urls: list[str], certificates: Certificates, **overrides: object
) -> dict[str, object]:
    """Return an auth profile mapping for the test directory, with `overrides` applied."""
    mapping: dict[str, object] = {
        "servers": urls,
        "bind_dn": SERVICE_DN,
        "bind_password": SERVICE_PASSWORD,
        "base_dn": BASE_DN,
        "ca_file": str(certificates.ca_file),
        "connect_timeout": 2,
        "operation_timeout": 3,
    }
    mapping.update(overrides)
    return mapping


ProfileFactory = Callable[..., LdapAuthProfile]
