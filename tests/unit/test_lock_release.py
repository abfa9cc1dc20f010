"""A lock whose release failed is released again once Redis answers (a failover takes
seconds; the lock's TTL is longer), and never past the last retry."""

from __future__ import annotations

import threading

import pytest

from service.foundation.errors import StoreUnavailable
from service.storage import booking_lock
from service.storage.booking_lock import LaterReleases

pytestmark = pytest.mark.unit


class FlakyStore:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[tuple[str, str, str]] = []
        self.released = threading.Event()

    def release(self, caller_id: str, booking_id: str, token: str) -> None:
        self.calls.append((caller_id, booking_id, token))
        if len(self.calls) <= self.failures:
            raise StoreUnavailable("down", 2.0)
        self.released.set()


def test_a_failed_release_is_tried_again_until_it_succeeds(monkeypatch):
    later = LaterReleases(delays=(0.01, 0.02, 0.04))
    monkeypatch.setattr(booking_lock, "LATER", later)
    store = FlakyStore(failures=3)
    booking_lock.release(store, "eu", "b:1", "t")  # type: ignore[arg-type]
    assert store.released.wait(5)
    assert store.calls == [("eu", "b:1", "t")] * 4
    assert later.pending() == 0


def test_retries_stop_after_the_last_delay():
    later = LaterReleases(delays=(0.01, 0.01))
    store = FlakyStore(failures=100)
    later.add(store, "eu", "b", "t")  # type: ignore[arg-type]
    threading.Event().wait(0.3)
    assert len(store.calls) == 2 and later.pending() == 0
