"""Percentiles and the result records that the reports print."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of already sorted values (NaN when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(milliseconds: list[float]) -> dict[str, float]:
    """Return p50, p95, p99 and max of a list of durations in milliseconds."""
    values = sorted(milliseconds)
    return {
        "p50": round(percentile(values, 0.50), 2),
        "p95": round(percentile(values, 0.95), 2),
        "p99": round(percentile(values, 0.99), 2),
        "max": round(values[-1], 2) if values else math.nan,
        "count": len(values),
    }


@dataclass
class LoginSample:
    """The instants (time.monotonic, seconds) of one completed login."""

    started: float
    finished: float
    challenge_at: float | None
    answer_sent_at: float | None
    # The device's think time for this login, when it drew one of its own (--think-jitter).
    think_seconds: float | None = None


@dataclass
class LevelResult:
    """One fixed-duration run at one concurrency."""

    system: str
    password_hash: str
    concurrency: int
    duration_seconds: float
    completed: int
    failed: int
    logins_per_second: float
    latency_ms: dict[str, float]
    start_to_device_ms: dict[str, float]
    answer_to_application_ms: dict[str, float]
    server_cpu_ms_per_login: float
    server_cpu_percent: float
    loadgen_cpu_percent: float
    # CPU that all other processes on the machine used during the level, in percent of one
    # core. The benchmark shares the machine, and this records how much it had to share.
    other_cpu_percent: float
    server_peak_rss_mib: float
    failures: dict[str, int] = field(default_factory=dict)
    notes: str = ""
    # CPU of the LDAP server (slapd) in percent of one core, when the first factor uses one;
    # it is then left out of other_cpu_percent.
    directory_cpu_percent: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def level_from_samples(
    *,
    system: str,
    password_hash: str,
    concurrency: int,
    duration: float,
    samples: list[LoginSample],
    failures: dict[str, int],
    think_seconds: float,
    server_cpu_seconds: float,
    loadgen_cpu_seconds: float,
    machine_cpu_seconds: float,
    server_peak_rss: int,
    directory_cpu_seconds: float | None = None,
) -> LevelResult:
    directory_cpu = directory_cpu_seconds or 0.0
    latency = [
        (s.finished - s.started - (think_seconds if s.think_seconds is None else s.think_seconds))
        * 1000
        for s in samples
    ]
    to_device = [(s.challenge_at - s.started) * 1000 for s in samples if s.challenge_at is not None]
    to_application = [
        (s.finished - s.answer_sent_at) * 1000 for s in samples if s.answer_sent_at is not None
    ]
    completed = len(samples)
    return LevelResult(
        system=system,
        password_hash=password_hash,
        concurrency=concurrency,
        duration_seconds=round(duration, 2),
        completed=completed,
        failed=sum(failures.values()),
        logins_per_second=round(completed / duration, 1) if duration > 0 else 0.0,
        latency_ms=summarize(latency),
        start_to_device_ms=summarize(to_device),
        answer_to_application_ms=summarize(to_application),
        server_cpu_ms_per_login=round(server_cpu_seconds * 1000 / completed, 2)
        if completed
        else math.nan,
        server_cpu_percent=round(100 * server_cpu_seconds / duration, 1),
        loadgen_cpu_percent=round(100 * loadgen_cpu_seconds / duration, 1),
        other_cpu_percent=round(
            100
            * max(
                0.0,
                machine_cpu_seconds - server_cpu_seconds - loadgen_cpu_seconds - directory_cpu,
            )
            / duration,
            1,
        ),
        server_peak_rss_mib=round(server_peak_rss / 2**20, 1),
        failures=dict(failures),
        directory_cpu_percent=round(100 * directory_cpu_seconds / duration, 1)
        if directory_cpu_seconds is not None
        else None,
    )
