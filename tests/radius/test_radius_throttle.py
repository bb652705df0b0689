"""The log rate limit for packets from outsiders."""

from __future__ import annotations

from tapgate.radius.throttle import LogThrottle
from tests.radius.clock import ManualClock


def test_first_line_written():
    throttle = LogThrottle(ManualClock())

    assert throttle.allow("203.0.113.9") == 0


def test_repeat_within_interval_suppressed():
    clock = ManualClock()
    throttle = LogThrottle(clock, interval=60)
    throttle.allow("203.0.113.9")

    clock.advance(59.999)

    assert throttle.allow("203.0.113.9") is None


def test_line_after_interval_counts_suppressed():
    clock = ManualClock()
    throttle = LogThrottle(clock, interval=60)
    throttle.allow("203.0.113.9")
    throttle.allow("203.0.113.9")
    throttle.allow("203.0.113.9")

    clock.advance(60)

    assert throttle.allow("203.0.113.9") == 2


def test_keys_limited_separately():
    throttle = LogThrottle(ManualClock())
    throttle.allow("203.0.113.9")

    assert throttle.allow("203.0.113.10") == 0


def test_too_many_keys_start_over():
    throttle = LogThrottle(ManualClock(), max_keys=3)
    for address in ("a", "b", "c"):
        throttle.allow(address)

    assert throttle.allow("d") == 0
    assert throttle.allow("a") == 0
