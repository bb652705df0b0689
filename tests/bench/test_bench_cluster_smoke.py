"""A short cluster run of `tapgate bench`, so the cluster benchmark cannot break unnoticed.

It starts two real `tapgate serve` nodes on a fresh PostgreSQL database and real device
streams. Like the single-node smoke test it measures nothing useful: it checks that logins cross
nodes and complete, that the report is well formed and that the database is dropped.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tapgate.bench.cluster import device_node, login_nodes
from tests.support import PG_URL_ENV


@pytest.mark.parametrize(
    ("user_index", "nodes", "expected"),
    [
        (0, 1, (0, 0)),
        (5, 1, (0, 0)),
        (0, 2, (1, 1)),
        (1, 2, (0, 0)),
        (0, 3, (1, 2)),
        (1, 3, (2, 0)),
        (2, 3, (0, 1)),
        (7, 4, (0, 1)),
    ],
)
def test_login_nodes_route(user_index: int, nodes: int, expected: tuple[int, int]) -> None:
    assert login_nodes(user_index, nodes) == expected


@pytest.mark.parametrize("nodes", [2, 3, 4])
def test_login_nodes_avoid_device(nodes: int) -> None:
    for user_index in range(3 * nodes):
        start, poll = login_nodes(user_index, nodes)
        device = device_node(user_index, nodes)
        assert start != device
        assert poll != device
        if nodes >= 3:
            assert start != poll


@pytest.mark.database
@pytest.mark.skipif(
    not os.environ.get(PG_URL_ENV),
    reason=f"the cluster run needs PostgreSQL: set {PG_URL_ENV} to a database URL on a server "
    "where the tests may create databases",
)
def test_bench_cluster_completes_logins(tmp_path: Path) -> None:
    admin_url = os.environ[PG_URL_ENV]
    output = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPGATE_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tapgate.cli",
            "bench",
            "--cluster",
            "2",
            "--database-url",
            admin_url,
            "--users",
            "20",
            "--concurrency",
            "2",
            "--duration",
            "2",
            "--warmup",
            "0.5",
            "--workdir",
            str(tmp_path / "work"),
            "--output",
            str(output),
            "--no-plot",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((output / "results.json").read_text(encoding="utf-8"))
    assert len(report["levels"]) == 1
    level = report["levels"][0]
    assert level["nodes"] == 2
    assert level["system"] == "tapgate, 2 nodes, PostgreSQL"
    assert level["completed"] > 0
    assert level["failed"] == 0
    assert level["accepted_to_application_ms"]["count"] == level["completed"]
    assert level["start_to_device_ms"]["count"] == level["completed"]
    assert len(level["node_cpu_percent"]) == 2
    assert not math.isnan(level["server_cpu_ms_per_login"])
    assert "## Cluster" in (output / "results.md").read_text(encoding="utf-8")
    assert list((tmp_path / "work").iterdir()) == []

    created = re.findall(r"created database name=(\w+)", result.stderr)
    assert len(created) == 1
    with psycopg.connect(admin_url) as admin:
        left = admin.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (created[0],)
        ).fetchone()
    assert left == (0,)
