"""A throwaway PostgreSQL server that a test may stop and start, never the machine's own one.

`initdb` and `postgres` refuse to run as root, so under root both run as the `postgres` system
user. `subprocess` switches the user in the child before exec, so the PID the test keeps is the
postmaster's own. The data directory lives in a fresh folder under the system temp directory,
because pytest's temp folders are private to root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.support import free_port

_STOP_SECONDS = 30
_START_SECONDS = 30


def find_binaries() -> Path | None:
    """Return the folder holding `initdb` and `postgres`, or None when PostgreSQL is missing."""
    configured = os.environ.get("TAPGATE_TEST_PG_BIN")
    candidates = [Path(configured)] if configured else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder
    return None


def run_as() -> str | None:
    """Return the account to run PostgreSQL as: `postgres` under root, None for the current user.

    Raises LookupError under root when there is no `postgres` account.
    """
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise LookupError(
            "initdb refuses to run as root and there is no postgres account"
        ) from None
    return "postgres"


class PrivatePostgres:
    """One PostgreSQL server on a free loopback port, with trust authentication."""

    def __init__(self, binaries: Path, user: str | None) -> None:
        self.binaries = binaries
        self.user = user
        self.root = Path(tempfile.mkdtemp(prefix="tapgate-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        if user is not None:
            account = pwd.getpwnam(user)
            os.chown(self.root, account.pw_uid, account.pw_gid)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        subprocess.run(
            [
                str(self.binaries / "initdb"),
                "--pgdata",
                str(self.data),
                "--username",
                "postgres",
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            user=self.user,
            timeout=60,
        )

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    str(self.binaries / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.root),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                ],
                stdout=log,
                stderr=log,
                user=self.user,
            )
        deadline = time.monotonic() + _START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(psycopg.OperationalError):
                psycopg.connect(self.url(), connect_timeout=1).close()
                return
            time.sleep(0.1)
        raise RuntimeError(f"postgres did not accept connections within {_START_SECONDS} s")

    def stop(self) -> None:
        """Stop with a fast shutdown (SIGINT): open sessions are ended, as in a failover."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
