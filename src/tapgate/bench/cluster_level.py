"""One fixed-duration level of the cluster run: K application workers spread over the nodes.

A worker starts each login on one node and long-polls its status on another (see
`tapgate.bench.cluster.login_nodes`). Besides the figures of a single-node level, a level
reports the wake-up latency from the device's answer being accepted to the waiting request
returning, the CPU of every node and the CPU of the PostgreSQL backends serving the database.
"""

from __future__ import annotations

import asyncio
import logging
import math
import resource
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tapgate.bench.cluster_nodes import PostgresBackends, cpu_between
from tapgate.bench.devices import Rendezvous, Slot
from tapgate.bench.driver import (
    AUTH_PATH,
    WAIT_SECONDS,
    Application,
    LevelPlan,
    drain_workers,
    start_login,
)
from tapgate.bench.httpclient import Connection, HttpError
from tapgate.bench.server import machine_busy_seconds, sample_server
from tapgate.bench.stats import LoginSample, level_from_samples, summarize

log = logging.getLogger(__name__)

_RSS_SAMPLE_SECONDS = 0.25


@dataclass
class ClusterLevelRun:
    """State shared by the workers of one level: the plan, one application per node, the route
    and the samples."""

    plan: LevelPlan
    applications: list[Application]
    rendezvous: Rendezvous
    # (user index, node count) -> (node that starts the login, node that long-polls it)
    route: Callable[[int, int], tuple[int, int]]
    measure_from: float = 0.0
    deadline: float = 0.0
    samples: list[tuple[LoginSample, Slot]] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)


async def _worker(index: int, run: ClusterLevelRun) -> None:
    plan = run.plan
    node_count = len(run.applications)
    connections = [Connection(app.host, app.port) for app in run.applications]
    position = index
    try:
        while time.monotonic() < run.deadline:
            user = plan.users[position % len(plan.users)]
            position += plan.concurrency
            start, poll = run.route(user.index, node_count)
            started = time.monotonic()
            try:
                status, body = await start_login(connections[start], run.applications[start], user)
                if status != 202:
                    run.failures[f"start {status} {body.get('reason', body.get('error'))}"] += 1
                    continue
                transaction_id = str(body["transaction_id"])
                slot = run.rendezvous.slot(transaction_id)
                number = body.get("number")
                slot.go.set_result(str(number) if number is not None else None)
                response = await connections[poll].request(
                    "GET",
                    f"{AUTH_PATH}/{transaction_id}?wait={WAIT_SECONDS}",
                    run.applications[poll].headers,
                )
                finished = time.monotonic()
                run.rendezvous.release(transaction_id)
            except (HttpError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                # ValueError: a response body that is not the JSON the Auth API promises.
                run.failures[f"http {type(exc).__name__}"] += 1
                connections[start].close()
                connections[poll].close()
                continue
            decision = response.json().get("status") if response.status == 200 else None
            if decision != "approved":
                run.failures[f"decision {response.status} {decision}"] += 1
                continue
            if run.measure_from <= finished <= run.deadline:
                sample = LoginSample(
                    started, finished, slot.challenge_at, slot.answer_sent_at, slot.think_seconds
                )
                # The device may read its answer's 200 after the waiting request returned, so
                # the slot is read only once the level has drained.
                run.samples.append((sample, slot))
    finally:
        for connection in connections:
            connection.close()


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure_level(
    run: ClusterLevelRun,
    node_pids: list[int],
    admin_url: str,
    database_url: str,
    *,
    password_hash: str,
) -> dict[str, Any]:
    """Run `run.plan.concurrency` workers for warm-up plus duration; return the level record."""
    plan = run.plan
    backends = PostgresBackends(admin_url, database_url)
    now = time.monotonic()
    run.measure_from = now + plan.warmup
    run.deadline = run.measure_from + plan.duration
    workers = [asyncio.create_task(_worker(i, run)) for i in range(plan.concurrency)]

    await asyncio.sleep(max(0.0, run.measure_from - time.monotonic()))
    postgres_before = await backends.cpu_seconds()
    nodes_before = [sample_server(pid) for pid in node_pids]
    own_before = _own_cpu_seconds()
    machine_before = machine_busy_seconds()
    peak_rss = sum(sample.rss_bytes for sample in nodes_before)
    while (remaining := run.deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(_RSS_SAMPLE_SECONDS, remaining))
        peak_rss = max(peak_rss, sum(sample_server(pid).rss_bytes for pid in node_pids))
    nodes_after = [sample_server(pid) for pid in node_pids]
    own_after = _own_cpu_seconds()
    machine_after = machine_busy_seconds()
    postgres_after = await backends.cpu_seconds()

    await drain_workers(workers, plan.concurrency)

    node_cpu = [
        a.cpu_seconds - b.cpu_seconds for a, b in zip(nodes_after, nodes_before, strict=True)
    ]
    postgres_cpu = cpu_between(postgres_before, postgres_after)
    node_count = len(node_pids)
    level = level_from_samples(
        system=f"tapgate, {node_count} node{'s' if node_count > 1 else ''}, PostgreSQL",
        password_hash=password_hash,
        concurrency=plan.concurrency,
        duration=plan.duration,
        samples=[sample for sample, _ in run.samples],
        failures=dict(run.failures),
        think_seconds=plan.think_seconds,
        server_cpu_seconds=sum(node_cpu),
        loadgen_cpu_seconds=own_after - own_before,
        # PostgreSQL's backends serve this benchmark, so they are not "other" load.
        machine_cpu_seconds=machine_after - machine_before - (postgres_cpu or 0.0),
        server_peak_rss=peak_rss,
    ).as_dict()

    accepted = [
        (sample.finished - slot.answer_accepted_at) * 1000
        for sample, slot in run.samples
        if slot.answer_accepted_at is not None
    ]
    completed = len(run.samples)
    level.update(
        nodes=node_count,
        database="postgresql",
        accepted_to_application_ms=summarize(accepted),
        node_cpu_percent=[round(100 * seconds / plan.duration, 1) for seconds in node_cpu],
        postgres_cpu_percent=round(100 * postgres_cpu / plan.duration, 1)
        if postgres_cpu is not None
        else math.nan,
        postgres_cpu_ms_per_login=round(postgres_cpu * 1000 / completed, 2)
        if postgres_cpu is not None and completed
        else math.nan,
    )
    return level
