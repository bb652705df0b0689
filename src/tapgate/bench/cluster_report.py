"""The Markdown table of a cluster run: throughput, wake-ups and CPU per node count."""

from __future__ import annotations

import math
from typing import Any

_HEADER = (
    "| nodes | hash | K | logins/s | p50 ms | p99 ms | start→device p99 ms "
    "| wake-up p50 ms | wake-up p99 ms | answer→app p99 ms | server CPU ms/login "
    "| CPU % per node | PostgreSQL CPU ms/login | PostgreSQL CPU % | load gen CPU % "
    "| other CPU % | failed |"
)


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def _row(level: dict[str, Any]) -> str:
    cells = [
        level["nodes"],
        level["password_hash"],
        level["concurrency"],
        level["logins_per_second"],
        level["latency_ms"]["p50"],
        level["latency_ms"]["p99"],
        level["start_to_device_ms"]["p99"],
        level["accepted_to_application_ms"]["p50"],
        level["accepted_to_application_ms"]["p99"],
        level["answer_to_application_ms"]["p99"],
        level["server_cpu_ms_per_login"],
        " / ".join(_number(percent) for percent in level["node_cpu_percent"]),
        level["postgres_cpu_ms_per_login"],
        level["postgres_cpu_percent"],
        level["loadgen_cpu_percent"],
        level["other_cpu_percent"],
        level["failed"],
    ]
    return "| " + " | ".join(c if isinstance(c, str) else _number(c) for c in cells) + " |"


def cluster_markdown(levels: list[dict[str, Any]]) -> str:
    """Return one table row per cluster level (levels that carry a node count), or ""."""
    rows = [_row(level) for level in levels if "nodes" in level]
    if not rows:
        return ""
    separator = "|" + "|".join(" --- " for _ in range(_HEADER.count("|") - 1)) + "|"
    return "\n".join([_HEADER, separator, *rows]) + "\n"
