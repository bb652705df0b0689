"""A real OpenLDAP slapd on loopback ports, with test data, for the `ldap` auth profile tests.

Each server gets its own temporary folder, a `slapd.conf` with an AD-like schema, the memberof
and ppolicy overlays, and a certificate from a `trustme` CA for StartTLS and ldaps://. slapd runs
in the foreground (`-d 0`), so the caller owns its PID and kills it. Entries are loaded with
`ldapadd` while the server runs, because the memberof overlay maintains `memberOf` only for
entries added that way.
"""

from __future__ import annotations

import base64
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tapgate.directory.ldap import LdapAuthProfile

BASE_DN = "dc=ornek,dc=com,dc=tr"
ADMIN_DN = f"cn=admin,{BASE_DN}"
ADMIN_PASSWORD = "admin-secret"
SERVICE_DN = f"cn=svc-mfa,{BASE_DN}"
SERVICE_PASSWORD = "svc-secret"
USERS_OU = f"ou=Kullanıcılar,{BASE_DN}"
GROUPS_OU = f"ou=Gruplar,{BASE_DN}"

# Gökhan Moser has an AD-style binary objectGUID. The other users are identified by entryUUID.
GMOSER_GUID = uuid.UUID("6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f")

AD_SCHEMA = """\
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName' EQUALITY caseIgnoreMatch
  SUBSTR caseIgnoreSubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName' EQUALITY caseIgnoreMatch
  SUBSTR caseIgnoreSubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.2.141 NAME 'department' EQUALITY caseIgnoreMatch
  SUBSTR caseIgnoreSubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.8 NAME 'userAccountControl' EQUALITY integerMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.159 NAME 'accountExpires' EQUALITY integerMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.2 NAME 'objectGUID' EQUALITY octetStringMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.99999.7.1 NAME 'tapgateADUser' SUP top AUXILIARY
  MAY ( sAMAccountName $ userPrincipalName $ department $ userAccountControl $ accountExpires $
  objectGUID ) )
"""


@dataclass(frozen=True)
class Certificates:
    """PEM files for one test CA and a server certificate for 127.0.0.1 and localhost."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    other_ca_file: Path


@dataclass
class Slapd:
    """One running slapd: its URLs, folder and process."""

    ldap_url: str
    ldaps_url: str
    folder: Path
    command: list[str]
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        """Kill this slapd (by its own PID) and wait for it to exit."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self) -> None:
        """Start slapd again on the same ports and data after `stop`."""
        self.process = _launch(self.command, self.folder / "slapd.log")
        for url in (self.ldap_url, self.ldaps_url):
            _wait_until_listening(
                int(url.rsplit(":", 1)[1]), self.process, self.folder / "slapd.log"
            )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ldif_value(name: str, value: str | bytes) -> str:
    """Render one LDIF line, base64-encoding binary and non-ASCII values as RFC 2849 requires."""
    if isinstance(value, bytes):
        return f"{name}:: {base64.b64encode(value).decode()}"
    if value.isascii() and not value.startswith((" ", ":", "<")):
        return f"{name}: {value}"
    return f"{name}:: {base64.b64encode(value.encode()).decode()}"


def _entry(dn: str, attributes: list[tuple[str, str | bytes]]) -> str:
    lines = [_ldif_value("dn", dn)] + [_ldif_value(name, value) for name, value in attributes]
    return "\n".join(lines) + "\n\n"


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


def _slapd_conf(folder: Path, certificates: Certificates) -> str:
    return f"""\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include {folder}/ad.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload ppolicy
pidfile {folder}/slapd.pid
TLSCACertificateFile {certificates.ca_file}
TLSCertificateFile {certificates.cert_file}
TLSCertificateKeyFile {certificates.key_file}
database mdb
maxsize 10485760
suffix "{BASE_DN}"
rootdn "{ADMIN_DN}"
rootpw {ADMIN_PASSWORD}
directory {folder}/db
overlay memberof
overlay ppolicy
ppolicy_default "cn=varsayilan,ou=Politikalar,{BASE_DN}"
ppolicy_use_lockout
"""


def _wait_until_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"slapd exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    process.kill()
    process.wait(timeout=10)
    raise RuntimeError(
        f"slapd did not listen on port {port} within 10 s: {log.read_text()[-2000:]}"
    )


def _launch(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as log_file:
        return subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)


def start_slapd(folder: Path, certificates: Certificates, ldif: str) -> Slapd:
    """Start slapd in `folder` on two free loopback ports and load `ldif` with ldapadd."""
    (folder / "db").mkdir(parents=True)
    (folder / "ad.schema").write_text(AD_SCHEMA)
    conf = folder / "slapd.conf"
    conf.write_text(_slapd_conf(folder, certificates))
    base = _entry(
        BASE_DN,
        [
            ("objectClass", "dcObject"),
            ("objectClass", "organization"),
            ("o", "Ornek"),
            ("dc", "ornek"),
        ],
    )
    (folder / "base.ldif").write_text(base)
    subprocess.run(
        ["slapadd", "-f", str(conf), "-l", str(folder / "base.ldif")],
        check=True,
        capture_output=True,
        timeout=30,
    )

    ldap_port, ldaps_port = free_port(), free_port()
    ldap_url = f"ldap://127.0.0.1:{ldap_port}"
    ldaps_url = f"ldaps://127.0.0.1:{ldaps_port}"
    command = ["slapd", "-f", str(conf), "-h", f"{ldap_url}/ {ldaps_url}/", "-d", "0"]
    log = folder / "slapd.log"
    server = Slapd(ldap_url, ldaps_url, folder, command, _launch(command, log))
    try:
        _wait_until_listening(ldap_port, server.process, log)
        _wait_until_listening(ldaps_port, server.process, log)
        (folder / "data.ldif").write_text(ldif, encoding="utf-8")
        added = subprocess.run(
            [
                "ldapadd",
                "-x",
                "-H",
                ldap_url,
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PASSWORD,
                "-e",
                "relax",
                "-f",
                str(folder / "data.ldif"),
            ],
            capture_output=True,
            timeout=30,
            text=True,
        )
        if added.returncode != 0:
            raise RuntimeError(f"ldapadd failed: {added.stdout[-1000:]} {added.stderr[-1000:]}")
    except BaseException:
        server.stop()
        raise
    return server


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
