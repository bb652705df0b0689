"""Access-Challenge State values: single use, bound, expiring."""

from __future__ import annotations

import pytest

from tapgate.radius.state import ChallengeStates, TooManyChallenges
from tests.radius.clock import ManualClock


def issue(states: ChallengeStates, **changes):
    fields = {
        "transaction_id": "tx-1",
        "client_name": "fw1",
        "username": "selin",
        "verification": "number",
    }
    fields.update(changes)
    return states.issue(**fields)


def test_state_redeemed_once():
    states = ChallengeStates(ManualClock())
    state, _ = issue(states)

    first = states.redeem(state, client_name="fw1", username="selin")
    second = states.redeem(state, client_name="fw1", username="selin")

    assert first is not None
    assert first.transaction_id == "tx-1"
    assert first.verification == "number"
    assert second is None


def test_state_is_random_16_octets():
    states = ChallengeStates(ManualClock())

    values = {issue(states)[0] for _ in range(100)}

    assert len(values) == 100
    assert all(len(value) == 16 for value in values)


def test_unknown_state_refused():
    states = ChallengeStates(ManualClock())
    issue(states)

    assert states.redeem(b"x" * 16, client_name="fw1", username="selin") is None


def test_other_user_refused_and_state_consumed():
    states = ChallengeStates(ManualClock())
    state, _ = issue(states, username="şükrü")

    assert states.redeem(state, client_name="fw1", username="selin") is None
    assert states.redeem(state, client_name="fw1", username="şükrü") is None


def test_other_client_refused():
    states = ChallengeStates(ManualClock())
    state, _ = issue(states)

    assert states.redeem(state, client_name="fw2", username="selin") is None


def test_state_expires_at_lifetime():
    clock = ManualClock(500.0)
    states = ChallengeStates(clock, lifetime=120)
    early, _ = issue(states)
    late, _ = issue(states)

    clock.now = 619.999
    assert states.redeem(early, client_name="fw1", username="selin") is not None

    clock.now = 620.0
    assert states.redeem(late, client_name="fw1", username="selin") is None


def test_lifetime_capped_by_transaction():
    clock = ManualClock(0.0)
    states = ChallengeStates(clock, lifetime=300)

    _, challenge = issue(states, lifetime=45)

    assert challenge.expires_at == 45.0


def test_lifetime_capped_by_store():
    states = ChallengeStates(ManualClock(0.0), lifetime=300)

    _, challenge = issue(states, lifetime=900)

    assert challenge.expires_at == 300.0


def test_full_store_refuses():
    states = ChallengeStates(ManualClock(), max_entries=2)
    issue(states)
    issue(states)

    with pytest.raises(TooManyChallenges):
        issue(states)


def test_full_store_frees_expired():
    clock = ManualClock()
    states = ChallengeStates(clock, lifetime=60, max_entries=1)
    issue(states)

    clock.advance(60)
    issue(states)

    assert len(states) == 1
