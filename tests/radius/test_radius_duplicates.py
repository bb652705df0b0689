"""RFC 5080 duplicate detection, at exact instants."""

from __future__ import annotations

from tapgate.radius.duplicates import DuplicateCache, Verdict
from tests.radius.clock import ManualClock

KEY = ("127.0.0.1", 40000, 7, b"A" * 16)


def test_first_copy_new():
    cache = DuplicateCache(ManualClock())

    assert cache.begin(KEY).verdict is Verdict.NEW


def test_copy_in_flight_dropped():
    cache = DuplicateCache(ManualClock())
    cache.begin(KEY)

    lookup = cache.begin(KEY)

    assert lookup.verdict is Verdict.IN_FLIGHT
    assert lookup.reply is None


def test_copy_after_answer_gets_same_bytes():
    cache = DuplicateCache(ManualClock())
    cache.begin(KEY)
    cache.finish(KEY, b"reply-bytes")

    lookup = cache.begin(KEY)

    assert lookup.verdict is Verdict.ANSWERED
    assert lookup.reply == b"reply-bytes"


def test_in_flight_never_expires_by_time():
    clock = ManualClock()
    cache = DuplicateCache(clock, reply_lifetime=30)
    cache.begin(KEY)

    clock.advance(3600)

    assert cache.begin(KEY).verdict is Verdict.IN_FLIGHT


def test_reply_expires_at_lifetime():
    clock = ManualClock(100.0)
    cache = DuplicateCache(clock, reply_lifetime=30)
    cache.begin(KEY)
    clock.advance(5)
    cache.finish(KEY, b"reply")

    clock.now = 134.999
    assert cache.begin(KEY).verdict is Verdict.ANSWERED

    clock.now = 135.0
    assert cache.begin(KEY).verdict is Verdict.NEW


def test_expired_entries_purged():
    clock = ManualClock()
    cache = DuplicateCache(clock, reply_lifetime=30)
    for identifier in range(5):
        key = ("127.0.0.1", 40000, identifier, b"A" * 16)
        cache.begin(key)
        cache.finish(key, b"reply")

    clock.advance(30)
    cache.purge()

    assert len(cache) == 0


def test_new_authenticator_is_new_request():
    cache = DuplicateCache(ManualClock())
    cache.begin(KEY)
    cache.finish(KEY, b"reply")

    other = (KEY[0], KEY[1], KEY[2], b"B" * 16)

    assert cache.begin(other).verdict is Verdict.NEW


def test_other_source_port_is_new_request():
    cache = DuplicateCache(ManualClock())
    cache.begin(KEY)

    other = (KEY[0], 40001, KEY[2], KEY[3])

    assert cache.begin(other).verdict is Verdict.NEW


def test_other_source_address_is_new_request():
    cache = DuplicateCache(ManualClock())
    cache.begin(KEY)

    other = ("127.0.0.2", KEY[1], KEY[2], KEY[3])

    assert cache.begin(other).verdict is Verdict.NEW


def test_forgotten_request_processed_again():
    cache = DuplicateCache(ManualClock())
    cache.begin(KEY)

    cache.forget(KEY)

    assert cache.begin(KEY).verdict is Verdict.NEW


def test_forget_keeps_answered_reply():
    cache = DuplicateCache(ManualClock())
    cache.begin(KEY)
    cache.finish(KEY, b"reply")

    cache.forget(KEY)

    assert cache.begin(KEY).reply == b"reply"


def test_second_finish_ignored():
    cache = DuplicateCache(ManualClock())
    cache.begin(KEY)
    cache.finish(KEY, b"first")

    cache.finish(KEY, b"second")

    assert cache.begin(KEY).reply == b"first"


def test_finish_without_begin_ignored():
    cache = DuplicateCache(ManualClock())

    cache.finish(KEY, b"reply")

    assert cache.begin(KEY).verdict is Verdict.NEW


def test_full_cache_drops_new_requests():
    clock = ManualClock()
    cache = DuplicateCache(clock, reply_lifetime=30, max_entries=2)
    first = ("127.0.0.1", 1, 1, b"A" * 16)
    second = ("127.0.0.1", 1, 2, b"A" * 16)
    cache.begin(first)
    cache.begin(second)

    assert cache.begin(KEY).verdict is Verdict.FULL
    assert cache.begin(first).verdict is Verdict.IN_FLIGHT


def test_full_cache_frees_space_on_expiry():
    clock = ManualClock()
    cache = DuplicateCache(clock, reply_lifetime=30, max_entries=1)
    first = ("127.0.0.1", 1, 1, b"A" * 16)
    cache.begin(first)
    cache.finish(first, b"reply")

    clock.advance(30)

    assert cache.begin(KEY).verdict is Verdict.NEW


def test_reply_cached_again_after_expiry():
    clock = ManualClock(0.0)
    cache = DuplicateCache(clock, reply_lifetime=30)
    cache.begin(KEY)
    cache.finish(KEY, b"old")
    clock.now = 30.0
    cache.begin(KEY)
    cache.finish(KEY, b"new")

    clock.now = 59.0

    assert cache.begin(KEY).reply == b"new"
