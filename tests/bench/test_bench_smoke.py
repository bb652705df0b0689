"""A short run of `tapgate bench`, so the benchmark cannot break unnoticed.

It starts a real `tapgate serve` process and real device streams. It measures nothing useful:
it checks only that logins complete and that the JSON report is well formed.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path


def test_bench_completes_logins(tmp_path: Path) -> None:
    output = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPGATE_")}
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tapgate.cli",
            "bench",
            "--users",
            "20",
            "--concurrency",
            "2",
            "--duration",
            "3",
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
        timeout=60,
    )
    elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stderr[-3000:]
    assert elapsed < 20
    report = json.loads((output / "results.json").read_text(encoding="utf-8"))
    assert report["machine"]["cpus"] >= 1
    assert len(report["levels"]) == 1
    level = report["levels"][0]
    assert level["system"] == "tapgate"
    assert level["concurrency"] == 2
    assert level["completed"] > 0
    assert level["failed"] == 0
    assert level["logins_per_second"] > 0
    assert level["latency_ms"]["p50"] <= level["latency_ms"]["p99"] <= level["latency_ms"]["max"]
    assert level["start_to_device_ms"]["count"] == level["completed"]
    assert not math.isnan(level["server_cpu_ms_per_login"])
    assert level["server_peak_rss_mib"] > 0
    assert "| tapgate | fast | 2 |" in (output / "results.md").read_text(encoding="utf-8")
    assert list((tmp_path / "work").iterdir()) == []
