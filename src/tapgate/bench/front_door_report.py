"""Report sections for the RADIUS front door and the LDAP first factor.

The front door comparison pairs each RADIUS level with the Auth API level of the same run,
first factor, hash and concurrency, and prints the differences: what RADIUS costs or saves
against the Auth API under the same load.
"""

from __future__ import annotations

import math
from typing import Any

RADIUS_WORD = " radius"


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.1f}"


def _difference(radius: Any, api: Any) -> str:
    if not isinstance(radius, int | float) or not isinstance(api, int | float):
        return "–"
    if math.isnan(radius) or math.isnan(api):
        return "–"
    return f"{radius - api:+,.1f}"


def front_door_pairs(levels: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Return (Auth API level, RADIUS level) pairs of the same first factor, hash and K."""
    api_levels = {
        (level["system"], level["password_hash"], level["concurrency"]): level
        for level in levels
        if RADIUS_WORD not in level["system"]
    }
    pairs = []
    for level in levels:
        if RADIUS_WORD not in level["system"]:
            continue
        key = (
            level["system"].replace(RADIUS_WORD, "", 1),
            level["password_hash"],
            level["concurrency"],
        )
        if key in api_levels:
            pairs.append((api_levels[key], level))
    return pairs


def front_door_markdown(levels: list[dict[str, Any]]) -> str:
    """Return a table of RADIUS against Auth API figures, or "" when no level pairs up."""
    pairs = front_door_pairs(levels)
    if not pairs:
        return ""
    lines = [
        "| system | hash | K | logins/s API / RADIUS | p50 ms API / RADIUS (Δ) "
        "| p99 ms API / RADIUS (Δ) | answer→app p50 ms API / answer→Access-Accept p50 ms RADIUS "
        "| server CPU ms/login API / RADIUS (Δ) | other CPU % API / RADIUS |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for api, radius in pairs:
        cells = [
            api["system"],
            api["password_hash"],
            str(api["concurrency"]),
            f"{_number(api['logins_per_second'])} / {_number(radius['logins_per_second'])}",
        ]
        for name in ("p50", "p99"):
            api_ms, radius_ms = api["latency_ms"][name], radius["latency_ms"][name]
            cells.append(
                f"{_number(api_ms)} / {_number(radius_ms)} ({_difference(radius_ms, api_ms)})"
            )
        cells.append(
            f"{_number(api['answer_to_application_ms']['p50'])} / "
            f"{_number(radius['answer_to_application_ms']['p50'])}"
        )
        api_cpu, radius_cpu = api["server_cpu_ms_per_login"], radius["server_cpu_ms_per_login"]
        cells.append(
            f"{_number(api_cpu)} / {_number(radius_cpu)} ({_difference(radius_cpu, api_cpu)})"
        )
        cells.append(
            f"{_number(api['other_cpu_percent'])} / {_number(radius['other_cpu_percent'])}"
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def ldap_markdown(probes: list[dict[str, Any]]) -> str:
    """Return a table of the LDAP bind plus search measurements."""
    lines = [
        "| K | bind+search/s | bind+search p50 ms | p99 ms | search p50 / p99 ms "
        "| bind p50 / p99 ms | slapd CPU % | load gen CPU % | other CPU % | failed |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for probe in probes:
        total, search, bind = probe["bind_and_search_ms"], probe["search_ms"], probe["bind_ms"]
        cells = [
            str(probe["concurrency"]),
            _number(probe["per_second"]),
            _number(total["p50"]),
            _number(total["p99"]),
            f"{_number(search['p50'])} / {_number(search['p99'])}",
            f"{_number(bind['p50'])} / {_number(bind['p99'])}",
            _number(probe["slapd_cpu_percent"]),
            _number(probe["loadgen_cpu_percent"]),
            _number(probe["other_cpu_percent"]),
            str(probe["failed"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
