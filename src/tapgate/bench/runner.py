"""One benchmark run: per password hash cost a fresh server and a concurrency sweep, then the
optional scale run."""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import resource
import secrets
import shutil
import signal
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tapgate.bench.devices import Fleet, Rendezvous
from tapgate.bench.directory import load_people, profile_options, start_directory
from tapgate.bench.driver import Application, LevelPlan, hold_logins, run_level
from tapgate.bench.ldap_probe import measure_bind_search
from tapgate.bench.provision import BenchDevice, BenchFiles, Provisioned, provision
from tapgate.bench.radius_client import free_udp_port
from tapgate.bench.radius_driver import radius_worker
from tapgate.bench.server import ServerProcess, free_port, sample_server
from tapgate.bench.slapd import Slapd
from tapgate.bench.stats import LevelResult

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
_CONNECT_PARALLEL = 100


@dataclass(frozen=True)
class ScaleOptions:
    users: int = 100_000
    connected: int = 10_000
    pending: int = 10_000
    concurrency: int = 50


@dataclass(frozen=True)
class BenchOptions:
    users: int = 1000
    connected: int | None = None
    concurrency: tuple[int, ...] = (1, 10, 50, 200)
    duration: float = 10.0
    warmup: float = 2.0
    think_seconds: float = 0.0
    # Fraction by which each think time may differ from think_seconds, either way.
    think_jitter: float = 0.0
    hashes: tuple[str, ...] = ("fast",)
    verification: str = "number"
    verify_challenges: bool = True
    log_level: str = "INFO"
    workdir: Path | None = None
    keep_workdir: bool = False
    scale: ScaleOptions | None = None
    # Front doors that each level runs through, one after the other: "api", "radius".
    front_doors: tuple[str, ...] = ("api",)
    # "local" (users in tapgate's database) or "ldap" (users in a throwaway slapd).
    first_factor: str = "local"
    # Concurrent bind plus search calls of each LDAP measurement that precedes the levels.
    ldap_probe_concurrency: tuple[int, ...] = (50,)


def system_label(front_door: str, first_factor: str) -> str:
    """Return a level's system name: "tapgate", plus "radius" and "ldap" when they are used."""
    parts = ["tapgate"]
    if front_door == "radius":
        parts.append("radius")
    if first_factor == "ldap":
        parts.append("ldap")
    return " ".join(parts)


def raise_open_file_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to the hard limit; return the new soft limit.
    Every held device stream is one open socket in the load generator."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    with open("/proc/meminfo") as meminfo:
        total_kib = int(meminfo.readline().split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(total_kib / 2**20, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


class _Session:
    """A provisioned database, its running server, the application and the device fleet,
    and the LDAP directory when the first factor uses one."""

    def __init__(
        self,
        options: BenchOptions,
        password_hash: str,
        *,
        front_doors: tuple[str, ...] = ("api",),
        first_factor: str = "local",
    ) -> None:
        self.options = options
        self.password_hash = password_hash
        self.first_factor = first_factor
        self.radius_port = free_udp_port() if "radius" in front_doors else None
        # A fresh shared secret per run; it is written only to the work directory's database.
        self.radius_secret = secrets.token_urlsafe(24) if self.radius_port else None
        self.directory: Slapd | None = None
        base = options.workdir or Path(tempfile.gettempdir())
        base.mkdir(parents=True, exist_ok=True)
        self.files = BenchFiles(
            Path(tempfile.mkdtemp(prefix="tapgate-bench-", dir=base)), free_port()
        )
        self.server = ServerProcess(self.files, password_hash, options.log_level)
        self.rendezvous = Rendezvous()
        self.provisioned: Provisioned | None = None
        self.fleet: Fleet | None = None
        self.application: Application | None = None

    async def start(self, users: int, timeout: int) -> None:
        self.files.write_settings(self.radius_port)
        ldap_options = None
        if self.first_factor == "ldap":
            self.directory = start_directory(self.files.workdir / "slapd")
            ldap_options = profile_options(self.directory)
            log.info("slapd started url=%s pid=%d", self.directory.ldap_url, self.directory_pid)
        log.info(
            "provisioning users=%d hash=%s first_factor=%s workdir=%s",
            users,
            self.password_hash,
            self.first_factor,
            self.files.workdir,
        )
        self.provisioned = await provision(
            self.files,
            users,
            self.password_hash,
            self.options.verification,
            timeout,
            ldap_options=ldap_options,
            radius_secret=self.radius_secret,
        )
        if self.directory is not None:
            await asyncio.to_thread(load_people, self.directory, self.provisioned.devices)
        await self.server.start()
        self.application = await Application.sign_in(
            HOST, self.files.port, self.provisioned.client_id, self.provisioned.client_secret
        )
        self.fleet = Fleet(
            HOST,
            self.files.port,
            self.files.public_url,
            self.provisioned.server_key,
            self.rendezvous,
            think_seconds=self.options.think_seconds,
            think_jitter=self.options.think_jitter,
            verify_challenges=self.options.verify_challenges,
        )

    @property
    def directory_pid(self) -> int | None:
        return self.directory.process.pid if self.directory is not None else None

    async def close(self) -> None:
        if self.fleet is not None:
            await self.fleet.stop()
        # Let the event loop close the device sockets, so the server notices its streams end
        # instead of waiting out its graceful-shutdown timeout on them.
        await asyncio.sleep(0.2)
        status = self.server.stop()
        if status != 0:
            log.warning("tapgate serve exited with status %d; see %s", status, self.server.log_path)
        if self.directory is not None:
            self.directory.stop()
        if not self.options.keep_workdir:
            shutil.rmtree(self.files.workdir, ignore_errors=True)


async def run_sweep(
    options: BenchOptions, password_hash: str, probes: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Provision, start a server, connect the devices and run every concurrency level, once
    per front door in `options.front_doors`.

    With the LDAP first factor, the bind plus search measurement runs first and is appended
    to `probes` when that list is given.
    """
    session = _Session(
        options,
        password_hash,
        front_doors=options.front_doors,
        first_factor=options.first_factor,
    )
    # With LDAP, slapd checks the password, so the row's hash column names LDAP instead.
    hash_label = "ldap" if options.first_factor == "ldap" else password_hash
    levels: list[dict[str, Any]] = []
    try:
        await session.start(options.users, timeout=60)
        assert session.provisioned is not None
        assert session.fleet is not None
        assert session.application is not None
        devices = session.provisioned.devices[: options.connected or options.users]
        if session.directory is not None and probes is not None:
            for probe_concurrency in options.ldap_probe_concurrency:
                probe = await measure_bind_search(
                    profile_options(session.directory),
                    devices,
                    concurrency=probe_concurrency,
                    duration=options.duration,
                    warmup=options.warmup,
                    slapd_pid=session.directory.process.pid,
                )
                log.info(
                    "ldap bind and search concurrency=%d per_second=%.1f p50_ms=%s p99_ms=%s",
                    probe["concurrency"],
                    probe["per_second"],
                    probe["bind_and_search_ms"]["p50"],
                    probe["bind_and_search_ms"]["p99"],
                )
                probes.append(probe)
        seconds = await session.fleet.connect(devices, _CONNECT_PARALLEL)
        log.info("devices connected count=%d seconds=%.1f", len(devices), seconds)
        for concurrency in options.concurrency:
            for front_door in options.front_doors:
                result = await _run_front_door_level(
                    session, front_door, concurrency, devices, hash_label
                )
                levels.append(result.as_dict())
    finally:
        await session.close()
    return levels


async def _run_front_door_level(
    session: _Session,
    front_door: str,
    concurrency: int,
    devices: list[BenchDevice],
    hash_label: str,
) -> LevelResult:
    options = session.options
    assert session.application is not None
    plan = LevelPlan(concurrency, options.duration, options.warmup, options.think_seconds, devices)
    worker = None
    if front_door == "radius":
        assert session.radius_port is not None and session.radius_secret is not None
        worker = radius_worker(HOST, session.radius_port, session.radius_secret, session.rendezvous)
    result = await run_level(
        plan,
        session.application,
        session.rendezvous,
        session.server.pid,
        system=system_label(front_door, session.first_factor),
        password_hash=hash_label,
        login_worker=worker,
        directory_pid=session.directory_pid,
    )
    log.info(
        "level done front_door=%s hash=%s concurrency=%d logins_per_second=%.1f p99_ms=%s "
        "failed=%d",
        front_door,
        hash_label,
        concurrency,
        result.logins_per_second,
        result.latency_ms["p99"],
        result.failed,
    )
    return result


async def run_scale(options: BenchOptions, scale: ScaleOptions) -> dict[str, Any]:
    """Hold `scale.connected` device streams and `scale.pending` pending transactions on one
    node whose database has `scale.users` users, and measure memory and login latency."""
    # The scale run measures memory and latency under held load, not the first factor.
    hash_cost = "fast"
    session = _Session(options, hash_cost)
    result: dict[str, Any] = {"users_in_database": scale.users}
    try:
        await session.start(scale.users, timeout=600)
        assert session.provisioned is not None
        assert session.fleet is not None
        assert session.application is not None
        pid = session.server.pid
        devices = session.provisioned.devices[: scale.connected]

        before = sample_server(pid)
        seconds = await session.fleet.connect(devices, _CONNECT_PARALLEL)
        connected = sample_server(pid)
        result.update(
            devices_connected=session.fleet.counters.connected,
            connect_seconds=round(seconds, 1),
            rss_before_connect_mib=round(before.rss_bytes / 2**20, 1),
            rss_connected_mib=round(connected.rss_bytes / 2**20, 1),
            rss_per_connected_device_kib=round(
                (connected.rss_bytes - before.rss_bytes) / 1024 / max(1, len(devices)), 1
            ),
        )

        held, failures = await hold_logins(
            devices[: scale.pending], session.application, session.rendezvous, parallel=50
        )
        pending = sample_server(pid)
        result.update(
            pending_transactions=held,
            pending_failures=failures,
            rss_with_pending_mib=round(pending.rss_bytes / 2**20, 1),
            rss_per_pending_transaction_kib=round(
                (pending.rss_bytes - connected.rss_bytes) / 1024 / max(1, held), 1
            ),
        )

        plan = LevelPlan(
            scale.concurrency, options.duration, options.warmup, options.think_seconds, devices
        )
        level = await run_level(
            plan, session.application, session.rendezvous, pid, password_hash=hash_cost
        )
        level.notes = f"{len(devices)} devices connected, {held} transactions pending"
        result["latency_while_held"] = level.as_dict()
        result["server_peak_rss_mib"] = round(sample_server(pid).peak_rss_bytes / 2**20, 1)
    finally:
        await session.close()
    return result


async def run_bench(options: BenchOptions) -> dict[str, Any]:
    """Run the sweeps and the scale run that `options` ask for; return the results document.

    SIGTERM cancels the run like Ctrl-C does, so the server under test is stopped and its
    work directory removed either way.
    """
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    raise_open_file_limit()
    results: dict[str, Any] = {
        "machine": machine_info(),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
        "levels": [],
        "scale": None,
    }
    probes: list[dict[str, Any]] = []
    for password_hash in options.hashes:
        results["levels"].extend(await run_sweep(options, password_hash, probes))
    if probes:
        results["ldap_bind_search"] = probes
    if options.scale is not None:
        results["scale"] = await run_scale(options, options.scale)
    return results
