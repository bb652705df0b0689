"""The servers of a cluster run: a throwaway PostgreSQL database and N `tapgate serve` nodes on it.

Every node gets its own loopback port, settings file and log, and shares the database URL, the
key file and `public_url` with the others, as the nodes of a real deployment do. The PostgreSQL
backends serving the database are found through `pg_stat_activity`, so a level can report the
CPU that PostgreSQL spent on the benchmark's database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from tapgate.bench.provision import BenchFiles
from tapgate.bench.server import ServerProcess, free_port, sample_process

log = logging.getLogger(__name__)

# The line `tapgate serve` logs at INFO once its LISTEN connection is open.
LISTENING = "listening for cluster events"
_LISTEN_SECONDS = 15.0
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _render(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def _libpq_url(url: str) -> str:
    """Return `url` without a SQLAlchemy driver suffix, in the form psycopg accepts."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_database(admin_url: str) -> str:
    """Create a database with a unique name on the server of `admin_url`; return its URL."""
    name = f"tapgate_bench_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(
        _libpq_url(admin_url), autocommit=True
    ) as admin:
        await admin.execute(f'CREATE DATABASE "{name}"')
    log.info("created database name=%s", name)
    return _render(admin_url, name)


async def drop_database(admin_url: str, database_url: str) -> None:
    """Drop the database of `database_url`, ending any connection still open to it."""
    name = make_url(database_url).database
    async with await psycopg.AsyncConnection.connect(
        _libpq_url(admin_url), autocommit=True
    ) as admin:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    log.info("dropped database name=%s", name)


class PostgresBackends:
    """CPU seconds of the PostgreSQL backend processes connected to one database.

    Works only when PostgreSQL runs on this machine in the same process namespace; otherwise
    `cpu_seconds` returns None. Background processes shared by every database (WAL writer,
    checkpointer) are not counted.
    """

    def __init__(self, admin_url: str, database_url: str) -> None:
        self.admin_url = _libpq_url(admin_url)
        self.database = make_url(database_url).database
        self.local = make_url(database_url).host in (*_LOOPBACK_HOSTS, None)

    async def _pids(self) -> list[int]:
        async with await psycopg.AsyncConnection.connect(self.admin_url, autocommit=True) as admin:
            cursor = await admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.database,)
            )
            return [int(row[0]) for row in await cursor.fetchall()]

    async def cpu_seconds(self) -> dict[int, float] | None:
        """Return CPU seconds by backend pid, or None when the backends cannot be read here."""
        if not self.local:
            return None
        return _backend_cpu(await self._pids())


def _backend_cpu(pids: list[int]) -> dict[int, float] | None:
    found: dict[int, float] = {}
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != "postgres":
                # PostgreSQL runs in another process namespace, so these pids are not its own.
                return None
            found[pid] = sample_process(pid).cpu_seconds
        except (FileNotFoundError, ProcessLookupError):
            # The backend ended between the query and the read.
            continue
    return found


def cpu_between(before: dict[int, float] | None, after: dict[int, float] | None) -> float | None:
    """Return the CPU seconds the backends used between two samples. A backend that started
    in between counts whole; one that ended in between is lost."""
    if before is None or after is None:
        return None
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


class ClusterNodes:
    """N `tapgate serve` processes on one database, each on its own loopback port."""

    def __init__(
        self,
        workdir: Path,
        count: int,
        database_url: str,
        key_file: Path,
        password_hash: str,
        log_level: str,
    ) -> None:
        self.database_url = database_url
        self.key_file = key_file
        self.log_level = log_level
        self.files = [BenchFiles(workdir / f"node-{i + 1}", free_port()) for i in range(count)]
        # Devices put `public_url` in the audience of every signed request, and each node accepts
        # only its own, so all nodes share one, as behind a load balancer.
        self.public_url = self.files[0].public_url
        self.servers = [ServerProcess(files, password_hash, log_level) for files in self.files]

    @property
    def ports(self) -> list[int]:
        return [files.port for files in self.files]

    @property
    def pids(self) -> list[int]:
        return [server.pid for server in self.servers]

    def _write_settings(self, files: BenchFiles) -> None:
        files.workdir.mkdir(parents=True, exist_ok=True)
        files.config.write_text(
            f"server:\n  listen: 127.0.0.1:{files.port}\n  public_url: {self.public_url}\n"
            f"database:\n  url: {self.database_url}\n"
            f"secrets:\n  key_file: {self.key_file}\n",
            encoding="utf-8",
        )

    async def start(self) -> None:
        """Start every node at once, wait for each /readyz, then for each LISTEN connection."""
        for files in self.files:
            self._write_settings(files)
        await asyncio.gather(*(server.start() for server in self.servers))
        # /readyz returns 200 a few milliseconds before the node's LISTEN connection is open,
        # and a node misses every notification sent in between.
        if self.log_level.upper() in ("DEBUG", "INFO"):
            await asyncio.gather(*(self._wait_listening(server) for server in self.servers))
        else:
            log.warning(
                "server log level %s hides the LISTEN line; the probe logins are the only check",
                self.log_level,
            )

    async def _wait_listening(self, server: ServerProcess) -> None:
        deadline = time.monotonic() + _LISTEN_SECONDS
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError):
                if LISTENING in server.log_path.read_text(encoding="utf-8", errors="replace"):
                    return
            await asyncio.sleep(0.05)
        raise RuntimeError(
            f"node on port {server.files.port} did not open its LISTEN connection within "
            f"{_LISTEN_SECONDS:.0f} s; see {server.log_path}"
        )

    def stop(self) -> None:
        for server in self.servers:
            status = server.stop()
            if status != 0:
                log.warning("tapgate serve exited with status %d; see %s", status, server.log_path)

    def tracebacks(self) -> list[Path]:
        """Return the logs that contain a traceback, which in tapgate means a bug."""
        return [
            server.log_path
            for server in self.servers
            if server.log_path.exists()
            and "Traceback" in server.log_path.read_text(encoding="utf-8", errors="replace")
        ]
