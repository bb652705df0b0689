"""Several `tapgate serve` nodes on one PostgreSQL database, behind the test balancer.

Every node gets its own settings file and log, the same database URL, the same key file and the
balancer's address as `public_url`, which is what a real deployment gives its nodes. The Auth API
talks to each node's own port, so a test chooses the node that starts a login or waits for it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tapgate.authenticator.device import enroll
from tapgate.authenticator.state import DeviceState
from tests.cluster.balancer import Balancer
from tests.support import PG_URL_ENV, Server

OBJECTS = """
auth_profiles:
  - {name: staff, type: local}
push_profiles:
  - {name: office, fallback_auth_profiles: [staff], verification: tap, timeout: 60, default: true,
     max_pending: 20, rate_limit: {count: 200, window: 600}}
  - {name: office-short, fallback_auth_profiles: [staff], verification: tap, timeout: 5}
applications:
  - {name: portal, type: api, methods: [office], require_password: false}
  - {name: portal-short, type: api, methods: [office-short], require_password: false}
"""
LISTENING = "listening for cluster events"


@dataclass
class Node(Server):
    """A server whose key file and public URL are the cluster's, not its own."""

    key_file: Path | None = None
    public_url: str | None = None

    def write_settings(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f"server:\n  listen: 127.0.0.1:{self.port}\n  public_url: {self.public_url}\n"
            f"database:\n  url: {self.database}\n"
            f"secrets:\n  key_file: {self.key_file}\n",
            encoding="utf-8",
        )

    def count(self, text: str) -> int:
        return self.log().count(text) if self.log_path.exists() else 0

    def logged(self, *parts: str) -> bool:
        """Return whether one line of the node's log contains every one of `parts`."""
        return any(all(part in line for part in parts) for line in self.log().splitlines())

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, timeout=5)


@dataclass
class Cluster:
    """Running nodes and the balancer in front of them."""

    nodes: list[Node]
    balancer: Balancer

    @property
    def first(self) -> Node:
        return self.nodes[0]

    def add_user(self, username: str) -> DeviceState:
        """Add a local user to `staff` and enroll a device for them through the balancer."""
        self.first.cli("user", "add", username, "--auth-profile", "staff")
        url = self.first.cli_json("enroll", username, "--json")["enrollment_url"]
        assert url.startswith(self.balancer.url)
        return enroll(url, f"{username} phone")

    def state_file(self, username: str, path: Path) -> Path:
        """Add a user and enroll the authenticator process with a state file."""
        self.first.cli("user", "add", username, "--auth-profile", "staff")
        url = self.first.cli_json("enroll", username, "--json")["enrollment_url"]
        self.first.cli("authenticator", "enroll", url, "--state", str(path))
        return path


def start_nodes(nodes: list[Node]) -> None:
    """Start every node at the same moment, and wait until each one's listener is up."""
    with ThreadPoolExecutor(len(nodes)) as pool:
        for future in [pool.submit(node.start) for node in nodes]:
            future.result()
    for node in nodes:
        # /readyz turns 200 a few milliseconds before the listener has run LISTEN, and this
        # node would miss a notification sent in between.
        wait_until(lambda node=node: node.count(LISTENING) >= 1, 10, f"{node.base} listening")


def stop_nodes(nodes: list[Node]) -> None:
    running = [n for n in nodes if n.process is not None and n.process.poll() is None]
    if running:
        with ThreadPoolExecutor(len(running)) as pool:
            list(pool.map(lambda node: node.stop(), running))


@contextmanager
def running_cluster(workdir: Path, database: str, size: int = 3) -> Iterator[Cluster]:
    """Yield `size` running nodes behind a balancer, with the test objects applied."""
    nodes = [
        Node(workdir / f"node-{'abcdefgh'[i]}", database, key_file=workdir / "secret.key")
        for i in range(size)
    ]
    balancer = Balancer(node.port for node in nodes)
    for node in nodes:
        node.public_url = balancer.url
        node.write_settings()
    balancer.start()
    try:
        start_nodes(nodes)
        nodes[0].apply(OBJECTS)
        yield Cluster(nodes, balancer)
    finally:
        balancer.stop()
        stop_nodes(nodes)
    for node in nodes:
        assert "Traceback" not in node.log(), f"traceback in {node.log_path}"


def wait_until(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Poll `condition` every `interval` s until it returns something true; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def audit_by_transaction(node: Server, *events: str) -> dict[str, list[tuple[str, str]]]:
    """Return (event, outcome) of the audit records of `events`, grouped by transaction id."""
    grouped: dict[str, list[tuple[str, str]]] = {}
    for record in node.cli_json("audit", "--json", "--limit", "100000"):
        if record["event"] in events and record["transaction_id"]:
            grouped.setdefault(record["transaction_id"], []).append(
                (record["event"], record["outcome"])
            )
    return grouped


requires_postgresql = pytest.mark.skipif(
    not os.environ.get(PG_URL_ENV),
    reason=f"cluster tests need PostgreSQL: set {PG_URL_ENV} to a database URL on a server "
    "where the tests may create databases",
)
