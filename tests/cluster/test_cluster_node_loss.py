"""A node killed with SIGKILL while logins are pending on it and a device is held by it."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.cluster.nodes import Cluster, audit_by_transaction, requires_postgresql, wait_until
from tests.support import TAPGATE, Api, cli_env

pytestmark = [requires_postgresql, pytest.mark.slow]

PENDING = 4
LONG_POLL_SECONDS = 30


def test_killed_node_loses_nothing(cluster: Cluster, tmp_path: Path) -> None:
    node_a, node_b, node_c = cluster.nodes
    phone = cluster.state_file("selin", tmp_path / "selin-phone.json")
    device_id = json.loads(phone.read_text())["device_id"]
    listener_log = tmp_path / "listener.log"

    cluster.balancer.pin(node_b.port)
    with open(listener_log, "wb") as output:
        listener = subprocess.Popen(
            [*TAPGATE, "authenticator", "listen", "--state", str(phone), "--approve"],
            stdout=output,
            stderr=output,
            env=cli_env(),
        )
    try:
        wait_until(
            lambda: node_b.logged("device connected", device_id),
            15,
            "the listener's stream on node B",
        )
        # The phone is in a pocket: challenges reach it, but nobody answers until node B died.
        listener.send_signal(signal.SIGSTOP)
        try:
            # Nobody answers or polls this one: a surviving node's sweeper must expire it.
            cluster.add_user("kaan")
            unanswered = Api(node_b, "portal-short").login("kaan").json()["transaction_id"]
            api_b = Api(node_b, "portal")
            started = [api_b.login("selin").json() for _ in range(PENDING)]
            transactions = [s["transaction_id"] for s in started]
            assert [s["status"] for s in started] == ["pending"] * PENDING
            assert [s["delivered"] for s in started] == [True] * PENDING

            with ThreadPoolExecutor(3 * PENDING) as pool:
                api_c = Api(node_c, "portal")
                on_b = [pool.submit(api_b.status, t, LONG_POLL_SECONDS) for t in transactions]
                on_c = [pool.submit(api_c.status, t, LONG_POLL_SECONDS) for t in transactions]
                time.sleep(0.5)

                assert node_b.process is not None
                node_b.process.kill()
                node_b.process.wait(timeout=10)
                cluster.balancer.pin(None)
                for waiter in on_b:
                    with pytest.raises(httpx.HTTPError):
                        waiter.result(timeout=10)

                # Logins started after the loss reach the device only once it has reconnected.
                api_a = Api(node_a, "portal")
                later = [api_a.login("selin").json() for _ in range(PENDING)]
                assert [s["delivered"] for s in later] == [False] * PENDING
                for login in later:
                    transactions.append(login["transaction_id"])
                    on_c.append(
                        pool.submit(api_c.status, login["transaction_id"], LONG_POLL_SECONDS)
                    )

                listener.send_signal(signal.SIGCONT)
                resumed = time.monotonic()
                statuses_c = [w.result(timeout=LONG_POLL_SECONDS + 5)["status"] for w in on_c]
                resolved = time.monotonic()
        finally:
            listener.send_signal(signal.SIGCONT)

        # An application whose long-poll died with node B reads the status from another node.
        statuses_a = [api_a.status(t, wait=5)["status"] for t in transactions]
    finally:
        listener.terminate()
        listener.wait(timeout=10)

    assert statuses_c == ["approved"] * 2 * PENDING
    assert statuses_a == ["approved"] * 2 * PENDING
    reconnected_to = [n for n in (node_a, node_c) if n.logged("device connected", device_id)]
    assert reconnected_to
    records = audit_by_transaction(node_a, "decision")
    for transaction_id in transactions:
        accepted = [outcome for _, outcome in records[transaction_id] if outcome != "ignored"]
        assert accepted == ["approved"], transaction_id
    wait_until(
        lambda: unanswered in audit_by_transaction(node_a, "expired"),
        15,
        "a surviving node to expire the unanswered login",
        interval=0.5,
    )
    assert audit_by_transaction(node_a, "expired")[unanswered] == [("expired", "expired")]
    answered = listener_log.read_text(encoding="utf-8")
    for transaction_id in transactions:
        assert answered.count(f"transaction {transaction_id} is approved") == 1
    print(
        f"\nnode B killed holding {PENDING} pending logins and the device's stream, {PENDING} more "
        f"started on A after: all {2 * PENDING} resolved {resolved - resumed:.2f} s after the "
        "device resumed (its reconnect delay is 1 s)"
    )
