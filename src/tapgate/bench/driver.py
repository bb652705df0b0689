"""The application side: K workers that each start a login, await its decision, and repeat.

Each worker uses the Auth API as an application would: `POST /api/v1/auth`, then
`GET /api/v1/auth/{id}?wait=30` until the decision is visible. A level counts the logins that
finish between the end of the warm-up and the deadline, wherever they started, so a level whose
logins take longer than its duration still measures its throughput. Logins still running at
the deadline are drained before the next level starts, so one level's backlog does not slow the
next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from tapgate.bench.devices import HOLD, Rendezvous
from tapgate.bench.httpclient import Connection, HttpError
from tapgate.bench.provision import PASSWORD, BenchDevice
from tapgate.bench.server import machine_busy_seconds, sample_process, sample_server
from tapgate.bench.stats import LevelResult, LoginSample, level_from_samples

log = logging.getLogger(__name__)

AUTH_PATH = "/api/v1/auth"
WAIT_SECONDS = 30
_DRAIN_SECONDS = 120.0
_RSS_SAMPLE_SECONDS = 0.25


@dataclass
class Application:
    """An API client of the benchmark application, with its bearer token."""

    host: str
    port: int
    token: str = ""

    @classmethod
    async def sign_in(cls, host: str, port: int, client_id: str, client_secret: str) -> Application:
        connection = Connection(host, port)
        body = f"grant_type=client_credentials&client_id={client_id}&client_secret={client_secret}"
        try:
            response = await connection.request(
                "POST",
                "/oauth/token",
                {"Content-Type": "application/x-www-form-urlencoded"},
                body.encode(),
            )
        finally:
            connection.close()
        if response.status != 200:
            raise RuntimeError(
                f"token request failed: HTTP {response.status} {response.body[:200]!r}"
            )
        return cls(host, port, str(response.json()["access_token"]))

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class LevelPlan:
    concurrency: int
    duration: float
    warmup: float
    think_seconds: float
    users: list[BenchDevice]


@dataclass
class _Run:
    measure_from: float
    deadline: float
    samples: list[LoginSample] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)


# The state that one level's workers share, under a public name for other front doors' workers.
LevelRun = _Run
# One worker of a level: called with its index, the plan and the shared state, it repeats
# logins until the deadline and records each one in the shared state.
LoginWorker = Callable[[int, LevelPlan, LevelRun], Coroutine[Any, Any, None]]


def client_ip_for(index: int) -> str:
    """Return the end user's address the application reports for a user: one per user, as
    logins from a company's staff come from many addresses. tapgate counts password attempts
    per reported address, so one shared address would hit its per-source limit at about 50
    concurrent logins. The addresses are only data in the request; nothing is sent to them."""
    return f"85.105.{index // 250 % 250}.{index % 250 + 1}"


async def start_login(
    connection: Connection, application: Application, user: BenchDevice
) -> tuple[int, dict[str, object]]:
    response = await connection.post_json(
        AUTH_PATH,
        {
            "username": user.username,
            "password": PASSWORD,
            "client_ip": client_ip_for(user.index),
            "user_agent": "tapgate-bench",
        },
        application.headers,
    )
    return response.status, response.json()


async def _worker(
    index: int, plan: LevelPlan, run: _Run, application: Application, rendezvous: Rendezvous
) -> None:
    connection = Connection(application.host, application.port)
    position = index
    try:
        while time.monotonic() < run.deadline:
            user = plan.users[position % len(plan.users)]
            position += plan.concurrency
            started = time.monotonic()
            try:
                status, body = await start_login(connection, application, user)
                if status != 202:
                    run.failures[f"start {status} {body.get('reason', body.get('error'))}"] += 1
                    continue
                transaction_id = str(body["transaction_id"])
                slot = rendezvous.slot(transaction_id)
                number = body.get("number")
                slot.go.set_result(str(number) if number is not None else None)
                response = await connection.request(
                    "GET", f"{AUTH_PATH}/{transaction_id}?wait={WAIT_SECONDS}", application.headers
                )
                finished = time.monotonic()
                rendezvous.release(transaction_id)
            except (HttpError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                # ValueError: a response body that is not the JSON the Auth API promises.
                run.failures[f"http {type(exc).__name__}"] += 1
                connection.close()
                continue
            decision = response.json().get("status") if response.status == 200 else None
            if decision != "approved":
                run.failures[f"decision {response.status} {decision}"] += 1
                continue
            if run.measure_from <= finished <= run.deadline:
                run.samples.append(
                    LoginSample(
                        started,
                        finished,
                        slot.challenge_at,
                        slot.answer_sent_at,
                        slot.think_seconds,
                    )
                )
    finally:
        connection.close()


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_level(
    plan: LevelPlan,
    application: Application,
    rendezvous: Rendezvous,
    server_pid: int,
    *,
    system: str = "tapgate",
    password_hash: str,
    login_worker: LoginWorker | None = None,
    directory_pid: int | None = None,
) -> LevelResult:
    """Run `plan.concurrency` workers for warm-up plus `plan.duration` seconds.

    The workers log in through the Auth API unless `login_worker` gives another front door.
    With `directory_pid` (the LDAP server's process), that process's CPU is reported on its own
    instead of in the other CPU.
    """
    now = time.monotonic()
    run = _Run(measure_from=now + plan.warmup, deadline=now + plan.warmup + plan.duration)
    # With a think time, workers started together would log in in waves of `concurrency`, all
    # thinking at once and all answering at once. Each starts a fraction of the think time
    # later, so logins arrive spread out, as a company's do.
    spread = plan.think_seconds / plan.concurrency

    async def staggered(index: int) -> None:
        if spread:
            await asyncio.sleep(index * spread)
        if login_worker is not None:
            await login_worker(index, plan, run)
        else:
            await _worker(index, plan, run, application, rendezvous)

    workers = [asyncio.create_task(staggered(i)) for i in range(plan.concurrency)]
    await asyncio.sleep(max(0.0, run.measure_from - time.monotonic()))
    server_before = sample_server(server_pid)
    directory_before = sample_process(directory_pid).cpu_seconds if directory_pid else 0.0
    own_before = _own_cpu_seconds()
    machine_before = machine_busy_seconds()
    peak_rss = server_before.rss_bytes
    while (remaining := run.deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(_RSS_SAMPLE_SECONDS, remaining))
        peak_rss = max(peak_rss, sample_server(server_pid).rss_bytes)
    server_after = sample_server(server_pid)
    directory_after = sample_process(directory_pid).cpu_seconds if directory_pid else 0.0
    own_after = _own_cpu_seconds()
    machine_after = machine_busy_seconds()

    await drain_workers(workers, plan.concurrency)

    return level_from_samples(
        system=system,
        password_hash=password_hash,
        concurrency=plan.concurrency,
        duration=plan.duration,
        samples=run.samples,
        failures=dict(run.failures),
        think_seconds=plan.think_seconds,
        server_cpu_seconds=server_after.cpu_seconds - server_before.cpu_seconds,
        loadgen_cpu_seconds=own_after - own_before,
        machine_cpu_seconds=machine_after - machine_before,
        server_peak_rss=peak_rss,
        directory_cpu_seconds=directory_after - directory_before if directory_pid else None,
    )


async def hold_logins(
    users: list[BenchDevice], application: Application, rendezvous: Rendezvous, parallel: int
) -> tuple[int, dict[str, int]]:
    """Start one login per user and leave it pending, because its device never sends an
    answer. Return how many were started and the failures by kind."""
    queue: asyncio.Queue[BenchDevice] = asyncio.Queue()
    for user in users:
        queue.put_nowait(user)
    failures: Counter[str] = Counter()
    started = 0

    async def starter() -> None:
        nonlocal started
        connection = Connection(application.host, application.port)
        try:
            while not queue.empty():
                user = queue.get_nowait()
                try:
                    status, body = await start_login(connection, application, user)
                except (HttpError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    failures[f"http {type(exc).__name__}"] += 1
                    connection.close()
                    continue
                if status != 202:
                    failures[f"start {status} {body.get('reason', body.get('error'))}"] += 1
                    continue
                rendezvous.slot(str(body["transaction_id"])).go.set_result(HOLD)
                started += 1
        finally:
            connection.close()

    await asyncio.gather(*(starter() for _ in range(parallel)))
    return started, dict(failures)


async def drain_workers(workers: list[asyncio.Task[None]], concurrency: int) -> None:
    """Wait for a level's workers to finish their last logins, cancelling those that take
    longer than the drain time, and raise the first error a worker ended with."""
    done, pending = await asyncio.wait(workers, timeout=_DRAIN_SECONDS)
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for task in done:
        error = task.exception()
        if error is not None:
            raise error
    if pending:
        log.warning("level concurrency=%d: %d logins did not drain", concurrency, len(pending))
