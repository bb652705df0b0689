"""The cluster run: throughput and cross-node wake-ups with 1, 2, 3… nodes on one PostgreSQL.

For each node count the run provisions a fresh PostgreSQL database, starts that many
`tapgate serve` nodes on it and connects every simulated device to one node, round-robin by
user. Each login is started on the node after its device's node and long-polled on the node
after that, so with two nodes the application and the device never share a node, and with
three a login touches all three: started on A, answered on B, awaited on C. The answer reaches
the waiting request only through PostgreSQL NOTIFY.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from tapgate.bench.cluster_level import ClusterLevelRun, measure_level
from tapgate.bench.cluster_nodes import ClusterNodes, create_database, drop_database
from tapgate.bench.devices import Fleet, Rendezvous
from tapgate.bench.driver import AUTH_PATH, Application, LevelPlan, start_login
from tapgate.bench.httpclient import Connection
from tapgate.bench.provision import BenchDevice, BenchFiles, Provisioned, provision
from tapgate.bench.runner import BenchOptions, machine_info, raise_open_file_limit

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
_CONNECT_PARALLEL = 100
_PROBE_WAIT_SECONDS = 10


@dataclass(frozen=True)
class ClusterOptions:
    node_counts: tuple[int, ...]
    # A database on a PostgreSQL server where the benchmark may create and drop databases.
    admin_url: str


def device_node(user_index: int, nodes: int) -> int:
    """Return the node that the user's device keeps its event stream open on."""
    return user_index % nodes


def login_nodes(user_index: int, nodes: int) -> tuple[int, int]:
    """Return the node that starts the user's login and the node that long-polls it: never
    the device's node when there is another, and three distinct nodes when there are three."""
    device = device_node(user_index, nodes)
    start = (device + 1) % nodes
    poll = (device + 2) % nodes if nodes >= 3 else start
    return start, poll


@dataclass
class _Cluster:
    """The nodes of one node count, with the applications and fleets that talk to them."""

    nodes: ClusterNodes
    provisioned: Provisioned
    rendezvous: Rendezvous = field(default_factory=Rendezvous)
    applications: list[Application] = field(default_factory=list)
    fleets: list[Fleet] = field(default_factory=list)

    async def connect(self, options: BenchOptions, devices: list[BenchDevice]) -> None:
        """Sign the application in on every node and open each device's stream on its node."""
        count = len(self.nodes.ports)
        first = await Application.sign_in(
            HOST, self.nodes.ports[0], self.provisioned.client_id, self.provisioned.client_secret
        )
        # A bearer token is a database row, so every node accepts the one the first node issued.
        self.applications = [Application(HOST, port, first.token) for port in self.nodes.ports]
        self.fleets = [
            Fleet(
                HOST,
                port,
                self.nodes.public_url,
                self.provisioned.server_key,
                self.rendezvous,
                think_seconds=options.think_seconds,
                think_jitter=options.think_jitter,
                verify_challenges=options.verify_challenges,
            )
            for port in self.nodes.ports
        ]
        parallel = max(1, _CONNECT_PARALLEL // count)
        seconds = await asyncio.gather(
            *(
                fleet.connect([d for d in devices if device_node(d.index, count) == node], parallel)
                for node, fleet in enumerate(self.fleets)
            )
        )
        log.info("devices connected count=%d seconds=%.1f", len(devices), max(seconds))

    async def probe(self, devices: list[BenchDevice]) -> None:
        """Complete one login per device node along the measured route before measuring, so a
        node whose wake-ups do not work fails the run instead of slowing a level."""
        count = len(self.nodes.ports)
        for node in range(count):
            user = next((d for d in devices if device_node(d.index, count) == node), None)
            if user is None:
                # Fewer devices than nodes: no device streams through this node.
                continue
            start, poll = login_nodes(user.index, count)
            status = await self._login_once(user, start, poll)
            if status != "approved":
                raise RuntimeError(
                    f"probe login with the device on node {node + 1} ended {status!r}; "
                    f"see the logs under {self.nodes.files[0].workdir.parent}"
                )

    async def _login_once(self, user: BenchDevice, start: int, poll: int) -> str | None:
        starter = Connection(HOST, self.nodes.ports[start])
        poller = Connection(HOST, self.nodes.ports[poll])
        try:
            status, body = await start_login(starter, self.applications[start], user)
            if status != 202:
                return f"HTTP {status} {body}"
            transaction_id = str(body["transaction_id"])
            number = body.get("number")
            self.rendezvous.slot(transaction_id).go.set_result(
                str(number) if number is not None else None
            )
            response = await poller.request(
                "GET",
                f"{AUTH_PATH}/{transaction_id}?wait={_PROBE_WAIT_SECONDS}",
                self.applications[poll].headers,
            )
            self.rendezvous.release(transaction_id)
            decision = response.json().get("status")
            return str(decision) if decision is not None else None
        finally:
            starter.close()
            poller.close()

    async def close(self) -> None:
        for fleet in self.fleets:
            await fleet.stop()
        # Let the event loop close the device sockets before the nodes shut down, so they do
        # not wait out their graceful-shutdown timeout on open streams.
        await asyncio.sleep(0.2)
        await asyncio.to_thread(self.nodes.stop)


async def run_node_count(
    options: BenchOptions, cluster: ClusterOptions, count: int, password_hash: str
) -> list[dict[str, Any]]:
    """Provision a fresh database, start `count` nodes and run every concurrency level."""
    base = options.workdir or Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    database_url = await create_database(cluster.admin_url)
    workdir = Path(tempfile.mkdtemp(prefix="tapgate-bench-cluster-", dir=base))
    session: _Cluster | None = None
    levels: list[dict[str, Any]] = []
    failed = False
    try:
        files = BenchFiles(workdir, 0)
        log.info("provisioning users=%d nodes=%d hash=%s", options.users, count, password_hash)
        provisioned = await provision(
            files, options.users, password_hash, options.verification, 60, database_url
        )
        nodes = ClusterNodes(
            workdir, count, database_url, files.key_file, password_hash, options.log_level
        )
        session = _Cluster(nodes, provisioned)
        await nodes.start()
        devices = provisioned.devices[: options.connected or options.users]
        await session.connect(options, devices)
        await session.probe(devices)

        for concurrency in options.concurrency:
            plan = LevelPlan(
                concurrency, options.duration, options.warmup, options.think_seconds, devices
            )
            run = ClusterLevelRun(plan, session.applications, session.rendezvous, login_nodes)
            level = await measure_level(
                run, nodes.pids, cluster.admin_url, database_url, password_hash=password_hash
            )
            log.info(
                "level done nodes=%d concurrency=%d logins_per_second=%.1f p99_ms=%s "
                "wakeup_p99_ms=%s failed=%d",
                count,
                concurrency,
                level["logins_per_second"],
                level["latency_ms"]["p99"],
                level["accepted_to_application_ms"]["p99"],
                level["failed"],
            )
            levels.append(level)
    except Exception:
        # Keep the work directory, because its node logs explain the failure.
        failed = True
        raise
    finally:
        tracebacks: list[Path] = []
        if session is not None:
            await session.close()
            tracebacks = session.nodes.tracebacks()
        for path in tracebacks:
            log.warning("traceback in node log %s; keeping the work directory", path)
        try:
            await drop_database(cluster.admin_url, database_url)
        except psycopg.Error as exc:
            # The URL may carry a password, so only the database name is logged.
            name = make_url(database_url).database
            log.warning("could not drop database name=%s error=%s", name, exc)
        if options.keep_workdir or tracebacks or failed:
            log.info("kept work directory %s", workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return levels


async def run_cluster_bench(options: BenchOptions, cluster: ClusterOptions) -> dict[str, Any]:
    """Run every node count of `cluster` with every password hash of `options`; return the
    results document that `write_reports` prints."""
    task = asyncio.current_task()
    assert task is not None
    # SIGTERM cancels the run like Ctrl-C does, so the nodes stop and the database is dropped.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    raise_open_file_limit()
    started = time.monotonic()

    results: dict[str, Any] = {
        "machine": machine_info(),
        "options": {
            "users": options.users,
            "connected": options.connected,
            "concurrency": list(options.concurrency),
            "duration": options.duration,
            "warmup": options.warmup,
            "think_seconds": options.think_seconds,
            "think_jitter": options.think_jitter,
            "hashes": list(options.hashes),
            "verification": options.verification,
            "verify_challenges": options.verify_challenges,
            "cluster": list(cluster.node_counts),
        },
        "levels": [],
        "scale": None,
    }

    for password_hash in options.hashes:
        for count in cluster.node_counts:
            results["levels"].extend(await run_node_count(options, cluster, count, password_hash))
    log.info("cluster run done seconds=%.0f", time.monotonic() - started)
    return results
