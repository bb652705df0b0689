"""Write privacyIDEA's pi.cfg for the benchmark.

Usage: python picfg.py WORKDIR fast|default

`fast` sets a cheap Argon2 PIN hash (1 round, 1 MiB, 1 lane), the counterpart of tapgate's
TAPGATE_PASSWORD_HASH=fast; `default` leaves privacyIDEA 3.14's own default (Argon2, 9 rounds).
Everything else is a production setup: SQLite file, encryption key file, signed audit log.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path


def write_settings(workdir: Path, cost: str) -> None:
    """Write WORKDIR/pi.cfg for the hash cost `fast` or `default`."""
    workdir = workdir.resolve()
    if cost not in ("fast", "default"):
        raise SystemExit(f"unknown hash cost {cost!r}; use fast or default")
    secret_file = workdir / "secret.txt"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_hex(32) + "\n" + secrets.token_hex(16) + "\n")
    secret_key, pepper = secret_file.read_text().split()
    lines = [
        f"SQLALCHEMY_DATABASE_URI = 'sqlite:///{workdir}/pi.sqlite'",
        f"SECRET_KEY = '{secret_key}'",
        f"PI_PEPPER = '{pepper}'",
        f"PI_ENCFILE = '{workdir}/enckey'",
        f"PI_AUDIT_KEY_PRIVATE = '{workdir}/private.pem'",
        f"PI_AUDIT_KEY_PUBLIC = '{workdir}/public.pem'",
        f"PI_LOGFILE = '{workdir}/privacyidea.log'",
        "PI_LOGLEVEL = 20",
    ]
    if cost == "fast":
        lines.append(
            "PI_HASH_ALGO_PARAMS = {'argon2__rounds': 1, 'argon2__memory_cost': 1024, "
            "'argon2__parallelism': 1}"
        )
    (workdir / "pi.cfg").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    write_settings(Path(sys.argv[1]), sys.argv[2])


if __name__ == "__main__":
    main()
