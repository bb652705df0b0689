"""Bind plus search latency of the `ldap` auth profile, measured in the load generator's process.

K tasks each repeat the first factor the server runs for an LDAP user: `find_user` (a search on
a pooled connection bound as the service account) and then `verify_password` (a bind as the user
on a new connection). They call tapgate's own `LdapAuthProfile`, so the figures include its
worker threads and its connection pool, but none of the login service or HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tapgate.bench.provision import PASSWORD, BenchDevice
from tapgate.bench.server import machine_busy_seconds, sample_process
from tapgate.bench.stats import summarize
from tapgate.directory.ldap import LdapAuthProfile, LdapSettings
from tapgate.errors import DirectoryUnavailable
from tapgate.secret import Secret

log = logging.getLogger(__name__)


@dataclass
class _Probe:
    measure_from: float
    deadline: float
    search_ms: list[float] = field(default_factory=list)
    bind_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)


async def _authenticate(profile: LdapAuthProfile, device: BenchDevice, probe: _Probe) -> None:
    started = time.monotonic()
    user = await profile.find_user(device.username)
    searched = time.monotonic()
    if user is None:
        probe.failures["user not found"] += 1
        return
    reason = await profile.verify_password(user, Secret(PASSWORD))
    finished = time.monotonic()
    if reason is not None:
        probe.failures[f"bind {reason}"] += 1
        return
    if probe.measure_from <= finished <= probe.deadline:
        probe.search_ms.append((searched - started) * 1000)
        probe.bind_ms.append((finished - searched) * 1000)
        probe.total_ms.append((finished - started) * 1000)


async def _worker(
    index: int,
    concurrency: int,
    profile: LdapAuthProfile,
    devices: list[BenchDevice],
    probe: _Probe,
) -> None:
    position = index
    while time.monotonic() < probe.deadline:
        device = devices[position % len(devices)]
        position += concurrency
        try:
            await _authenticate(profile, device, probe)
        except DirectoryUnavailable as error:
            probe.failures["directory unavailable"] += 1
            log.warning("ldap probe failed user=%s error=%s", device.username, error)


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure_bind_search(
    options: dict[str, Any],
    devices: list[BenchDevice],
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    slapd_pid: int,
) -> dict[str, Any]:
    """Run `concurrency` tasks of search plus bind for warm-up plus `duration` seconds.

    `options` are the settings of an `ldap` auth profile for the directory under test. Returns
    the latency summaries, the rate, and the CPU of slapd, of this process and of the rest.
    """
    profile = LdapAuthProfile(LdapSettings.from_mapping("bench-ldap-probe", options, None))
    now = time.monotonic()
    probe = _Probe(measure_from=now + warmup, deadline=now + warmup + duration)
    try:
        workers = [
            asyncio.create_task(_worker(i, concurrency, profile, devices, probe))
            for i in range(concurrency)
        ]
        await asyncio.sleep(max(0.0, probe.measure_from - time.monotonic()))
        own_before = _own_cpu_seconds()
        slapd_before = sample_process(slapd_pid).cpu_seconds
        machine_before = machine_busy_seconds()
        await asyncio.sleep(max(0.0, probe.deadline - time.monotonic()))
        own_cpu = _own_cpu_seconds() - own_before
        slapd_cpu = sample_process(slapd_pid).cpu_seconds - slapd_before
        machine_cpu = machine_busy_seconds() - machine_before
        await asyncio.gather(*workers)
    finally:
        await profile.close()

    completed = len(probe.total_ms)
    return {
        "concurrency": concurrency,
        "duration_seconds": round(duration, 2),
        "completed": completed,
        "failed": sum(probe.failures.values()),
        "per_second": round(completed / duration, 1) if duration > 0 else 0.0,
        "bind_and_search_ms": summarize(probe.total_ms),
        "search_ms": summarize(probe.search_ms),
        "bind_ms": summarize(probe.bind_ms),
        "slapd_cpu_percent": round(100 * slapd_cpu / duration, 1),
        "loadgen_cpu_percent": round(100 * own_cpu / duration, 1),
        "other_cpu_percent": round(100 * max(0.0, machine_cpu - own_cpu - slapd_cpu) / duration, 1),
        "failures": dict(probe.failures),
    }
