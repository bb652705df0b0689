"""Any node serves any step: a login started on one node, answered through a second and awaited
on a third, with the wake-up travelling through PostgreSQL LISTEN/NOTIFY."""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tapgate.authenticator.device import fetch_challenges
from tests.cluster.devices import StreamingDevice, approve, post_answer, signed_answer
from tests.cluster.nodes import (
    Cluster,
    Node,
    audit_by_transaction,
    requires_postgresql,
    wait_until,
)
from tests.support import Api

pytestmark = [requires_postgresql, pytest.mark.slow, pytest.mark.database]

ROUNDS = 3
WAITERS = 5
LONG_POLL_SECONDS = 20
# Waiters re-read their transaction every second even without a wake-up. Long-polls started
# 0.2 s apart have re-check timers 0.2 s apart, so without the notification they would return
# spread over about 0.8 s after the answer. A notification wakes them all at once.
STAGGER_SECONDS = 0.2
MAX_SPREAD_SECONDS = 0.3
MAX_DELIVERY_SECONDS = 1.0


def test_login_spans_three_nodes(shared_cluster: Cluster) -> None:
    cluster = shared_cluster
    node_a, node_b, node_c = cluster.nodes
    device = StreamingDevice(cluster.add_user("emre"))
    cluster.balancer.pin(node_b.port)
    device.start()
    wait_until(lambda: node_b.count("device connected") >= 1, 10, "device stream on node B")
    api_a = Api(node_a, "portal")
    api_c = Api(node_c, "portal")

    deliveries: list[float] = []
    answer_requests: list[float] = []
    wakes: list[float] = []
    spreads: list[float] = []
    with ThreadPoolExecutor(WAITERS) as pool:
        for _ in range(ROUNDS):
            started = api_a.login("emre")
            assert started.status_code == 202
            created = time.monotonic()
            transaction_id = started.json()["transaction_id"]
            arrived, challenge = device.challenge_for(transaction_id, timeout=5)
            deliveries.append(arrived - created)

            waiters = []
            for _ in range(WAITERS):
                waiters.append(pool.submit(timed_status, api_c, transaction_id))
                time.sleep(STAGGER_SECONDS)
            answered = time.monotonic()
            assert approve(device.state, challenge)
            answer_requests.append(time.monotonic() - answered)
            results = [waiter.result(timeout=LONG_POLL_SECONDS + 5) for waiter in waiters]

            assert [status["status"] for status, _ in results] == ["approved"] * WAITERS
            returned = [at for _, at in results]
            wakes.extend(at - answered for at in returned)
            spreads.append(max(returned) - min(returned))
            assert node_b.logged("audit event=decision ", f"transaction={transaction_id} ")

    device.stop()
    cluster.balancer.pin(None)
    print(
        f"\ncross-node challenge delivery A->B: median {statistics.median(deliveries) * 1000:.0f} ms, "
        f"max {max(deliveries) * 1000:.0f} ms; answer sent to B -> long-polls on C return: "
        f"median {statistics.median(wakes) * 1000:.0f} ms, max {max(wakes) * 1000:.0f} ms "
        f"(the answer request itself: median {statistics.median(answer_requests) * 1000:.0f} ms), "
        f"spread of {WAITERS} staggered waiters max {max(spreads) * 1000:.0f} ms "
        f"({ROUNDS} rounds, long-poll timeout {LONG_POLL_SECONDS} s)"
    )
    assert max(deliveries) < MAX_DELIVERY_SECONDS
    assert max(spreads) < MAX_SPREAD_SECONDS
    assert max(wakes) < LONG_POLL_SECONDS / 10


def timed_status(api: Api, transaction_id: str) -> tuple[dict[str, Any], float]:
    """Long-poll one transaction; return its status and the monotonic time the poll returned."""
    status = api.status(transaction_id, LONG_POLL_SECONDS)
    return status, time.monotonic()


def test_simultaneous_answers_resolve_once(shared_cluster: Cluster) -> None:
    """An approval sent to node A and a denial sent to node C at the same instant: one wins."""
    cluster = shared_cluster
    node_a, node_b, node_c = cluster.nodes
    state = cluster.add_user("deniz")
    api = Api(node_b, "portal")
    transactions = [api.login("deniz").json()["transaction_id"] for _ in range(10)]
    challenges = {c["transaction_id"]: c for c in fetch_challenges(state)}
    assert set(challenges) == set(transactions)

    expected = {"approve": "approved", "deny": "denied"}
    winners: dict[str, str] = {}
    for transaction_id in transactions:
        replies = answer_at_once(
            [
                (node_a, signed_answer(state, challenges[transaction_id], "approve")),
                (node_c, signed_answer(state, challenges[transaction_id], "deny")),
            ]
        )
        codes = [reply.status_code for reply in replies]
        assert sorted(codes) == [200, 409]
        winner = ("approve", "deny")[codes.index(200)]
        loser = replies[codes.index(409)].json()
        assert loser == {"accepted": False, "status": expected[winner]}
        winners[transaction_id] = winner

    for transaction_id, decision in winners.items():
        assert api.status(transaction_id)["status"] == expected[decision]
    # The losing answer is audited too: as an ignored `decision` when it lost the conditional
    # update, or as `answer_rejected` when it read the row after the winner had resolved it.
    records = audit_by_transaction(node_a, "decision", "answer_rejected")
    for transaction_id, decision in winners.items():
        accepted = [o for e, o in records[transaction_id] if e == "decision" and o != "ignored"]
        assert accepted == [expected[decision]]
        assert len(records[transaction_id]) == 2
    lost_race = sum(("decision", "ignored") in records[t] for t in transactions)
    print(
        f"\nsimultaneous answers: approve won {list(winners.values()).count('approve')} of 10; "
        f"{lost_race} losers reached the conditional update"
    )


def answer_at_once(answers: list[tuple[Node, dict[str, Any]]]) -> list[httpx.Response]:
    """Post each (node, signed answer) from its own thread, released together by a barrier."""
    barrier = threading.Barrier(len(answers))

    def send(node: Node, body: dict[str, Any]) -> httpx.Response:
        barrier.wait()
        return post_answer(node, body)

    with ThreadPoolExecutor(len(answers)) as pool:
        futures = [pool.submit(send, node, body) for node, body in answers]
        return [future.result() for future in futures]
