"""Nodes and `tapgate db upgrade` migrating one fresh database at the same moment.

To make the race certain rather than likely, the test holds the migration advisory lock itself,
waits until both contenders are blocked on it, and then releases it, so both go at once.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tapgate.store.migrate import _ADVISORY_LOCK_ID, head_revision
from tests.cluster.nodes import Node, requires_postgresql, stop_nodes, wait_until
from tests.support import TAPGATE, cli_env

pytestmark = [requires_postgresql, pytest.mark.slow]

WAITING_FOR_LOCK = """
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND NOT granted
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


@contextmanager
def migration_lock_held(database: str) -> Iterator[psycopg.Connection]:
    """Hold the migration lock until the block ends; yield a connection for queries."""
    with psycopg.connect(database, autocommit=True) as connection:
        connection.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK_ID,))
        try:
            yield connection
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK_ID,))


def blocked_on_lock(connection: psycopg.Connection) -> int:
    row = connection.execute(WAITING_FOR_LOCK).fetchone()
    assert row is not None
    return int(row[0])


def schema_versions(database: str) -> list[str]:
    with psycopg.connect(database) as connection:
        return [row[0] for row in connection.execute("SELECT version_num FROM alembic_version")]


def test_two_nodes_migrate_at_once(tmp_path: Path, db_url: str) -> None:
    nodes = [Node(tmp_path / name, db_url, key_file=tmp_path / "secret.key") for name in ("a", "b")]
    for node in nodes:
        node.public_url = node.base
        node.write_settings()

    try:
        with ThreadPoolExecutor(2) as pool:
            with migration_lock_held(db_url) as connection:
                starts = [pool.submit(node.start) for node in nodes]
                wait_until(lambda: blocked_on_lock(connection) == 2, 30, "both nodes at the lock")
            for start in starts:
                start.result()
        assert [node.get("/readyz").status_code for node in nodes] == [200, 200]
    finally:
        stop_nodes(nodes)

    assert schema_versions(db_url) == [head_revision()]
    logs = [node.log() for node in nodes]
    assert sum(log.count("migrating schema from=None") for log in logs) == 1
    assert sum(log.count("key file created") for log in logs) == 1
    for log in logs:
        assert " ERROR " not in log
        assert "Traceback" not in log


def test_db_upgrade_twice_at_once(tmp_path: Path, db_url: str) -> None:
    node = Node(tmp_path, db_url, key_file=tmp_path / "secret.key", public_url="http://127.0.0.1")
    node.write_settings()
    command = [*TAPGATE, "db", "upgrade", "--config", str(node.config)]

    with migration_lock_held(db_url) as connection:
        upgrades = [
            subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env()
            )
            for _ in range(2)
        ]
        wait_until(lambda: blocked_on_lock(connection) == 2, 30, "both upgrades at the lock")
    outputs = [upgrade.communicate(timeout=60) for upgrade in upgrades]

    assert [upgrade.returncode for upgrade in upgrades] == [0, 0], outputs
    printed = sorted(stdout.strip() for stdout, _ in outputs)
    head = head_revision()
    assert printed == [f"schema at {head} (already current)", f"schema at {head} (was None)"]
    assert schema_versions(db_url) == [head]
    for _, stderr in outputs:
        assert "Traceback" not in stderr
