"""Results as JSON, as a Markdown table, and as a PNG plot against concurrency."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tapgate.bench.cluster_report import cluster_markdown
from tapgate.bench.front_door_report import front_door_markdown, ldap_markdown

_COLUMNS = (
    ("system", "system"),
    ("hash", "password_hash"),
    ("K", "concurrency"),
    ("logins/s", "logins_per_second"),
    ("p50 ms", ("latency_ms", "p50")),
    ("p95 ms", ("latency_ms", "p95")),
    ("p99 ms", ("latency_ms", "p99")),
    ("max ms", ("latency_ms", "max")),
    ("start→device p99 ms", ("start_to_device_ms", "p99")),
    ("answer→app p99 ms", ("answer_to_application_ms", "p99")),
    ("server CPU ms/login", "server_cpu_ms_per_login"),
    ("server CPU %", "server_cpu_percent"),
    ("load gen CPU %", "loadgen_cpu_percent"),
    ("other CPU %", "other_cpu_percent"),
    ("peak RSS MiB", "server_peak_rss_mib"),
    ("failed", "failed"),
)
# Shown only when some level's first factor ran against slapd.
_DIRECTORY_COLUMN = ("slapd CPU %", "directory_cpu_percent")


def _cell(level: dict[str, Any], key: str | tuple[str, str]) -> str:
    value: Any = level.get(key) if isinstance(key, str) else (level.get(key[0]) or {}).get(key[1])
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def markdown_table(levels: list[dict[str, Any]]) -> str:
    """Return one Markdown table row per level, in the order given."""
    columns: tuple[tuple[str, str | tuple[str, str]], ...] = _COLUMNS
    if any(level.get("directory_cpu_percent") is not None for level in levels):
        columns = (*_COLUMNS[:-1], _DIRECTORY_COLUMN, _COLUMNS[-1])
    lines = [
        "| " + " | ".join(title for title, _ in columns) + " |",
        "|" + "|".join(" --- " for _ in columns) + "|",
    ]
    for level in levels:
        lines.append("| " + " | ".join(_cell(level, key) for _, key in columns) + " |")
    return "\n".join(lines) + "\n"


def scale_markdown(scale: dict[str, Any]) -> str:
    rows = [
        (name.replace("_", " "), value)
        for name, value in scale.items()
        if not isinstance(value, dict)
    ]
    lines = ["| measure | value |", "| --- | --- |"]
    lines.extend(f"| {name} | {value} |" for name, value in rows)
    return "\n".join(lines) + "\n"


def write_reports(results: dict[str, Any], output: Path, plot: bool) -> list[Path]:
    """Write results.json, results.md and (with `plot`) results.png under `output`."""
    output.mkdir(parents=True, exist_ok=True)
    written = [output / "results.json", output / "results.md"]
    written[0].write_text(
        json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    text = "# tapgate bench results\n"
    if results["levels"]:
        text += "\n" + markdown_table(results["levels"])
    front_doors = front_door_markdown(results["levels"])
    if front_doors:
        text += "\n## RADIUS against the Auth API\n\n" + front_doors
    if results.get("ldap_bind_search"):
        text += "\n## LDAP bind and search\n\n" + ldap_markdown(results["ldap_bind_search"])
    cluster = cluster_markdown(results["levels"])
    if cluster:
        text += "\n## Cluster\n\n" + cluster
    if results.get("scale"):
        text += "\n## Scale\n\n" + scale_markdown(results["scale"])
        held = results["scale"].get("latency_while_held")
        if held:
            text += "\nLogins while the devices and transactions above are held:\n\n"
            text += markdown_table([held])
    written[1].write_text(text, encoding="utf-8")
    if plot and results["levels"]:
        written.append(plot_levels(results["levels"], output / "results.png"))
    return written


def plot_levels(levels: list[dict[str, Any]], path: Path) -> Path:
    """Plot throughput and latency percentiles against concurrency, one line per system and
    password hash. Needs matplotlib (the `bench` extra)."""
    # The `bench` extra installs matplotlib; it is absent where only the tests run.
    import matplotlib  # type: ignore[import-not-found,unused-ignore]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]

    series: dict[str, list[dict[str, Any]]] = {}
    for level in levels:
        series.setdefault(f"{level['system']} ({level['password_hash']} hash)", []).append(level)

    figure, (throughput, latency) = plt.subplots(1, 2, figsize=(12, 4.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for number, (label, points) in enumerate(series.items()):
        color = colors[number % len(colors)]
        # A level that completed no login has no latency, and log axes cannot show zero.
        measured = sorted(
            (p for p in points if p["completed"] > 0), key=lambda p: int(p["concurrency"])
        )
        x = [p["concurrency"] for p in measured]
        throughput.plot(
            x, [p["logins_per_second"] for p in measured], marker="o", color=color, label=label
        )
        latency.plot(
            x,
            [p["latency_ms"]["p50"] for p in measured],
            marker="o",
            color=color,
            label=f"{label} p50",
        )
        latency.plot(
            x,
            [p["latency_ms"]["p99"] for p in measured],
            marker="x",
            linestyle="--",
            color=color,
            label=f"{label} p99",
        )
    for axes in (throughput, latency):
        axes.set_xscale("log")
        axes.set_xlabel("concurrent logins")
        axes.grid(True, which="both", alpha=0.3)
    throughput.set_yscale("log")
    throughput.set_ylabel("completed push logins per second")
    throughput.set_title("Throughput")
    latency.set_yscale("log")
    latency.set_ylabel("login start → decision at the application (ms)")
    latency.set_title("Latency (think time excluded)")
    throughput.legend(fontsize=8)
    latency.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
