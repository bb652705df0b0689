"""The server under test: a separate `tapgate serve` process, and its CPU time and memory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tapgate.bench.httpclient import Connection, HttpError
from tapgate.bench.provision import BenchFiles

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_READY_SECONDS = 60.0
# Variables that would point the server somewhere other than its benchmark settings file.
_OVERRIDES = (
    "TAPGATE_CONFIG",
    "TAPGATE_LISTEN",
    "TAPGATE_PUBLIC_URL",
    "TAPGATE_DATABASE_URL",
    "TAPGATE_RADIUS_LISTEN",
    "TAPGATE_KEY_FILE",
    "TAPGATE_PASSWORD_HASH",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ProcessSample:
    """CPU seconds (user + system) and resident memory of one process at one instant."""

    cpu_seconds: float
    rss_bytes: int
    peak_rss_bytes: int


def sample_process(pid: int) -> ProcessSample:
    """Read /proc/PID/stat (utime and stime, fields 14 and 15) and /proc/PID/status."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name in field 2 may contain spaces; the fields after its ')' are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    rss = peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    return ProcessSample(cpu, rss, peak)


def child_pids(pid: int) -> list[int]:
    """Return the pids of `pid`'s children (/proc/PID/task/TID/children, Linux 3.5 and later)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        # A thread that ended after the listing has no file any more.
        with contextlib.suppress(OSError):
            children += [int(child) for child in (task / "children").read_text().split()]
    return children


def sample_server(pid: int) -> ProcessSample:
    """Sample `tapgate serve` with its children, the password hashing workers, as one.

    Their CPU is the server's work, and their memory the server's footprint. The peak is the
    sum of each process's own peak, so it may exceed what they held at any one instant.
    """
    total = sample_process(pid)
    for child in child_pids(pid):
        try:
            sample = sample_process(child)
        except FileNotFoundError:
            continue  # a worker that was replaced in between
        total = ProcessSample(
            total.cpu_seconds + sample.cpu_seconds,
            total.rss_bytes + sample.rss_bytes,
            total.peak_rss_bytes + sample.peak_rss_bytes,
        )
    return total


def machine_busy_seconds() -> float:
    """Return the CPU seconds all cores spent outside idle and I/O wait since boot
    (/proc/stat), so a level can tell how much CPU other processes took."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    # Fields 9 and 10 (guest time) are already counted in user and nice.
    return (sum(fields[:8]) - idle) / _CLOCK_TICKS


class ServerProcess:
    """`tapgate serve --config FILE` with the chosen password hash cost; logs go to a file."""

    def __init__(self, files: BenchFiles, password_hash: str, log_level: str) -> None:
        self.files = files
        self.password_hash = password_hash
        self.log_level = log_level
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.files.workdir / "server.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _OVERRIDES}
        if self.password_hash in ("fast", "none"):
            env["TAPGATE_PASSWORD_HASH"] = "fast"
        env["TAPGATE_LOG_LEVEL"] = self.log_level
        return env

    def _spawn(self) -> subprocess.Popen[bytes]:
        with open(self.log_path, "ab") as log:
            # S603: the command is this interpreter and a settings file the benchmark wrote.
            return subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "tapgate.cli", "serve", "--config", str(self.files.config)],
                stdout=log,
                stderr=log,
                env=self._environment(),
            )

    async def start(self) -> None:
        """Start the server and wait until /readyz returns 200."""
        self.process = self._spawn()
        deadline = time.monotonic() + _READY_SECONDS
        probe = Connection("127.0.0.1", self.files.port)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"tapgate serve exited with status {self.process.returncode}; see {self.log_path}"
                )
            with contextlib.suppress(HttpError, OSError, asyncio.IncompleteReadError):
                if (await probe.request("GET", "/readyz")).status == 200:
                    probe.close()
                    return
            probe.close()
            await asyncio.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"tapgate serve was not ready after {_READY_SECONDS:.0f} s; see {self.log_path}"
        )

    def stop(self) -> int:
        """Send SIGTERM, wait up to 15 s, then SIGKILL; return the exit status."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
