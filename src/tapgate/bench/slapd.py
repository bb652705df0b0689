"""A throwaway OpenLDAP slapd on loopback ports, for the benchmark and the `ldap` auth profile tests.

Each server gets its own folder and a `slapd.conf` with an AD-like schema and the memberof and
ppolicy overlays. With certificates it also offers StartTLS and an ldaps:// port. slapd runs in
the foreground (`-d 0`), so the caller owns its PID and kills it. Entries are loaded with
`ldapadd` while the server runs, because the memberof overlay maintains `memberOf` only for
entries added that way. Needs Debian's `slapd` and `ldap-utils` packages.
"""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

BASE_DN = "dc=ornek,dc=com,dc=tr"
ADMIN_DN = f"cn=admin,{BASE_DN}"
ADMIN_PASSWORD = "admin-secret"
SERVICE_DN = f"cn=svc-mfa,{BASE_DN}"
SERVICE_PASSWORD = "svc-secret"
PROGRAMS = ("slapd", "slapadd", "ldapadd")

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
    """One running slapd: its URLs, folder and process. `ldaps_url` is None without TLS."""

    ldap_url: str
    ldaps_url: str | None
    folder: Path
    command: list[str]
    process: subprocess.Popen[bytes]

    @property
    def urls(self) -> list[str]:
        return [url for url in (self.ldap_url, self.ldaps_url) if url is not None]

    def stop(self) -> None:
        """Kill this slapd (by its own PID) and wait for it to exit."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self) -> None:
        """Start slapd again on the same ports and data after `stop`."""
        self.process = _launch(self.command, self.folder / "slapd.log")
        for url in self.urls:
            _wait_until_listening(
                int(url.rsplit(":", 1)[1]), self.process, self.folder / "slapd.log"
            )


def missing_programs() -> list[str]:
    """Return the OpenLDAP programs this module runs that are not on PATH."""
    return [program for program in PROGRAMS if shutil.which(program) is None]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ldif_value(name: str, value: str | bytes) -> str:
    """Render one LDIF line, base64-encoding binary and non-ASCII values as RFC 2849 requires."""
    if isinstance(value, bytes):
        return f"{name}:: {base64.b64encode(value).decode()}"
    if value.isascii() and not value.startswith((" ", ":", "<")):
        return f"{name}: {value}"
    return f"{name}:: {base64.b64encode(value.encode()).decode()}"


def ldif_entry(dn: str, attributes: list[tuple[str, str | bytes]]) -> str:
    """Render one LDIF entry, ending with the blank line that separates entries."""
    lines = [ldif_value("dn", dn)] + [ldif_value(name, value) for name, value in attributes]
    return "\n".join(lines) + "\n\n"


def service_account_ldif() -> str:
    """Return the entry of the service account that `ldap` auth profiles bind as."""
    return ldif_entry(
        SERVICE_DN,
        [
            ("objectClass", "inetOrgPerson"),
            ("cn", "svc-mfa"),
            ("sn", "svc"),
            ("userPassword", SERVICE_PASSWORD),
        ],
    )


def _slapd_conf(folder: Path, certificates: Certificates | None) -> str:
    tls = ""
    if certificates is not None:
        tls = (
            f"TLSCACertificateFile {certificates.ca_file}\n"
            f"TLSCertificateFile {certificates.cert_file}\n"
            f"TLSCertificateKeyFile {certificates.key_file}\n"
        )
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
{tls}database mdb
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
        # S603: the command is slapd with a configuration file this module wrote.
        return subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)  # noqa: S603


def add_entries(server: Slapd, ldif: str, name: str = "data.ldif") -> None:
    """Add the entries of `ldif` as the directory's administrator with ldapadd.

    Raises RuntimeError with ldapadd's output when it fails.
    """
    path = server.folder / name
    path.write_text(ldif, encoding="utf-8")
    # S603, S607: ldapadd from PATH, with arguments this module builds.
    added = subprocess.run(  # noqa: S603
        [  # noqa: S607
            "ldapadd",
            "-x",
            "-H",
            server.ldap_url,
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PASSWORD,
            "-e",
            "relax",
            "-f",
            str(path),
        ],
        capture_output=True,
        timeout=300,
        text=True,
    )
    if added.returncode != 0:
        raise RuntimeError(f"ldapadd failed: {added.stdout[-1000:]} {added.stderr[-1000:]}")


def start_slapd(folder: Path, certificates: Certificates | None, ldif: str) -> Slapd:
    """Start slapd in `folder` on free loopback ports and load `ldif` with ldapadd.

    With `certificates`, slapd also listens for ldaps:// and offers StartTLS on ldap://.
    """
    (folder / "db").mkdir(parents=True)
    (folder / "ad.schema").write_text(AD_SCHEMA)
    conf = folder / "slapd.conf"
    conf.write_text(_slapd_conf(folder, certificates))
    base = ldif_entry(
        BASE_DN,
        [
            ("objectClass", "dcObject"),
            ("objectClass", "organization"),
            ("o", "Ornek"),
            ("dc", "ornek"),
        ],
    )
    (folder / "base.ldif").write_text(base)
    # S603, S607: slapadd from PATH, with arguments this module builds.
    subprocess.run(  # noqa: S603
        ["slapadd", "-f", str(conf), "-l", str(folder / "base.ldif")],  # noqa: S607
        check=True,
        capture_output=True,
        timeout=30,
    )

    ldap_url = f"ldap://127.0.0.1:{free_port()}"
    ldaps_url = f"ldaps://127.0.0.1:{free_port()}" if certificates is not None else None
    listen = " ".join(f"{url}/" for url in (ldap_url, ldaps_url) if url is not None)
    command = ["slapd", "-f", str(conf), "-h", listen, "-d", "0"]
    log = folder / "slapd.log"
    server = Slapd(ldap_url, ldaps_url, folder, command, _launch(command, log))
    try:
        for url in server.urls:
            _wait_until_listening(int(url.rsplit(":", 1)[1]), server.process, log)
        add_entries(server, ldif)
    except BaseException:
        server.stop()
        raise
    return server
