"""PostgreSQL restarted in the middle of a login, on a private server the test owns."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.cluster.devices import StreamingDevice, approve
from tests.cluster.nodes import requires_postgresql, running_cluster, wait_until
from tests.cluster.private_postgres import PrivatePostgres, find_binaries, run_as
from tests.support import Api

pytestmark = [requires_postgresql, pytest.mark.slow, pytest.mark.database]

OUTAGE_SECONDS = 3.0
SHORT_WAIT_SECONDS = 2.5
LONG_POLL_SECONDS = 60


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    binaries = find_binaries()
    if binaries is None:
        pytest.skip("no initdb and postgres binaries; set TAPGATE_TEST_PG_BIN to their folder")
    try:
        account = run_as()
    except LookupError as exc:
        pytest.skip(str(exc))
    server = PrivatePostgres(binaries, account)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.remove()


def test_database_restart_during_login(postgres: PrivatePostgres, tmp_path: Path) -> None:
    database = postgres.create_database("tapgate")
    with running_cluster(tmp_path, database) as cluster:
        node_a, node_b, node_c = cluster.nodes
        device = StreamingDevice(cluster.add_user("arda"))
        cluster.balancer.pin(node_b.port)
        device.start()
        wait_until(lambda: node_b.count("device connected") >= 1, 10, "device stream on node B")
        api_a = Api(node_a, "portal")
        api_c = Api(node_c, "portal")

        before = api_a.login("arda").json()["transaction_id"]
        _, challenge = device.challenge_for(before, timeout=5)

        with ThreadPoolExecutor(2) as pool:
            spanning = pool.submit(api_c.status, before, LONG_POLL_SECONDS)
            # This long-poll's wait ends while the database is still down.
            ending = pool.submit(
                httpx.get,
                f"{node_c.base}/api/v1/auth/{before}",
                params={"wait": SHORT_WAIT_SECONDS},
                headers=api_c.headers,
                timeout=SHORT_WAIT_SECONDS + 10,
            )
            time.sleep(0.3)
            postgres.stop()
            stopped = time.monotonic()

            wait_until(
                lambda: all(n.get("/readyz").status_code == 503 for n in cluster.nodes),
                10,
                "every node to report not ready",
            )
            assert [n.get("/healthz").status_code for n in cluster.nodes] == [200] * 3
            during = httpx.post(
                node_a.base + "/api/v1/auth", json={"username": "arda"}, headers=api_a.headers
            )
            assert during.status_code == 503
            assert during.json()["error"] == "database_unavailable"
            ended = ending.result(timeout=SHORT_WAIT_SECONDS + 10)
            assert ended.status_code == 503
            assert ended.json()["error"] == "database_unavailable"
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))

            postgres.start()
            restarted = time.monotonic()
            wait_until(
                lambda: all(n.get("/readyz").status_code == 200 for n in cluster.nodes),
                15,
                "every node to report ready again",
            )
            ready = time.monotonic()
            wait_until(
                lambda: all(
                    n.count("listener rescanned pending transactions") for n in cluster.nodes
                ),
                15,
                "every node's listener to reconnect and rescan",
            )
            relistened = time.monotonic()

            first_answered = time.monotonic()
            assert approve(device.state, challenge)
            assert spanning.result(timeout=LONG_POLL_SECONDS)["status"] == "approved"
            first_woken = time.monotonic()

        after = api_a.login("arda").json()["transaction_id"]
        _, challenge = device.challenge_for(after, timeout=5)
        with ThreadPoolExecutor(1) as pool:
            waiter = pool.submit(api_c.status, after, LONG_POLL_SECONDS)
            time.sleep(0.5)
            answered = time.monotonic()
            assert approve(device.state, challenge)
            assert waiter.result(timeout=LONG_POLL_SECONDS)["status"] == "approved"
            woken = time.monotonic()
        assert device.drops == 0
        device.stop()

    print(
        f"\nPostgreSQL down {restarted - stopped:.1f} s: nodes ready {ready - restarted:.2f} s and "
        f"listeners rescanned {relistened - restarted:.2f} s after it accepted connections again; "
        f"the long-poll held through the outage returned {(first_woken - first_answered) * 1000:.0f} ms "
        f"after the answer; a later cross-node wake-up took {(woken - answered) * 1000:.0f} ms"
    )
