"""A lock whose release failed is released again once Redis answers (a failover takes
seconds; the lock's TTL is longer), and never past the last retry."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from service.foundation.errors import StoreUnavailable
from service.storage import keys
from service.storage.booking_lock import BookingLocks, LaterReleases

pytestmark = pytest.mark.unit


class FlakyRedis:
    """A gateway whose first `failures` commands find Redis unreachable; it records the
    keys and arguments of every script call."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[tuple[list[str], list[Any]]] = []
        self.released = threading.Event()
        self.timeout = None

    def script(self, source: str) -> Callable[..., int]:
        def call(keys: list[str], args: list[Any]) -> int:
            self.calls.append((keys, args))
            return 1

        return call

    def run(self, operation: Callable[[], Any]) -> Any:
        result = operation()
        if len(self.calls) <= self.failures:
            raise StoreUnavailable("down", 2.0)
        self.released.set()
        return result


def test_a_failed_release_is_tried_again_until_it_succeeds():
    later = LaterReleases(delays=(0.01, 0.02, 0.04))
    redis = FlakyRedis(failures=3)
    lock = BookingLocks(redis, ttl=5, later=later).of("eu", "b:1", "t")  # type: ignore[arg-type]
    lock.release()
    assert redis.released.wait(5)
    names = [keys.lock("eu", "b:1"), keys.waiting("eu", "b:1"), keys.wake("eu", "b:1", "t")]
    assert redis.calls == [(names, ["t", keys.WAKE_TTL_MS])] * 4
    assert later.pending() == 0


def test_retries_stop_after_the_last_delay():
    later = LaterReleases(delays=(0.01, 0.01))
    redis = FlakyRedis(failures=100)
    lock = BookingLocks(redis, ttl=5, later=later).of("eu", "b", "t")  # type: ignore[arg-type]
    later.add(lock.release_now)
    threading.Event().wait(0.3)
    assert len(redis.calls) == 2 and later.pending() == 0


def test_a_lock_never_tried_releases_nothing():
    redis = FlakyRedis(failures=0)
    BookingLocks(redis, ttl=5).of("eu", "b").release()  # type: ignore[arg-type]
    assert redis.calls == []
