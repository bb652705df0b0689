"""Short runs of `tapgate bench` through RADIUS and with an LDAP first factor.

Each starts a real `tapgate serve` process (and for LDAP a real slapd) and real device streams.
They measure nothing useful: they check only that logins complete on each path and that the
reports carry that path's figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tapgate.bench.front_door_report import front_door_markdown, front_door_pairs
from tapgate.bench.slapd import missing_programs


def run_bench(tmp_path: Path, *options: str) -> tuple[dict[str, Any], str]:
    output = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPGATE_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tapgate.cli",
            "bench",
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
            *options,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert list((tmp_path / "work").iterdir()) == []
    report = json.loads((output / "results.json").read_text(encoding="utf-8"))
    return report, (output / "results.md").read_text(encoding="utf-8")


def check_level(level: dict[str, Any], system: str, password_hash: str) -> None:
    assert level["system"] == system
    assert level["password_hash"] == password_hash
    assert level["completed"] > 0
    assert level["failed"] == 0, level["failures"]
    assert level["start_to_device_ms"]["count"] == level["completed"]
    assert level["answer_to_application_ms"]["count"] == level["completed"]


def test_bench_radius_front_door(tmp_path: Path) -> None:
    report, markdown = run_bench(tmp_path, "--users", "20", "--front-door", "radius")

    (level,) = report["levels"]
    check_level(level, "tapgate radius", "fast")
    assert level["concurrency"] == 2
    assert "| tapgate radius | fast | 2 |" in markdown


def test_front_door_table_pairs_levels() -> None:
    def level(system: str, concurrency: int, p50: float, cpu: float) -> dict[str, Any]:
        return {
            "system": system,
            "password_hash": "fast",
            "concurrency": concurrency,
            "logins_per_second": 40.0,
            "latency_ms": {"p50": p50, "p99": p50 * 2},
            "answer_to_application_ms": {"p50": 5.0},
            "server_cpu_ms_per_login": cpu,
            "other_cpu_percent": 10.0,
        }

    levels = [
        level("tapgate", 50, 1000.0, 20.0),
        level("tapgate radius", 50, 900.0, 17.5),
        level("tapgate radius", 200, 4000.0, 18.0),
    ]

    assert front_door_pairs(levels) == [(levels[0], levels[1])]
    rows = front_door_markdown(levels).splitlines()
    assert len(rows) == 3
    assert "1,000.0 / 900.0 (-100.0)" in rows[2]
    assert "20.0 / 17.5 (-2.5)" in rows[2]
    assert front_door_markdown(levels[1:]) == ""


def test_bench_ldap_first_factor(tmp_path: Path) -> None:
    if missing_programs():
        pytest.fail(
            "slapd or ldap-utils not found; install the Debian packages slapd and ldap-utils"
        )

    report, markdown = run_bench(
        tmp_path, "--users", "8", "--first-factor", "ldap", "--ldap-concurrency", "4"
    )

    (level,) = report["levels"]
    check_level(level, "tapgate ldap", "ldap")
    assert level["directory_cpu_percent"] is not None
    (probe,) = report["ldap_bind_search"]
    assert probe["concurrency"] == 4
    assert probe["failed"] == 0, probe["failures"]
    assert probe["bind_and_search_ms"]["count"] > 0
    assert probe["bind_and_search_ms"]["p50"] <= probe["bind_and_search_ms"]["p99"]
    assert "## LDAP bind and search" in markdown
