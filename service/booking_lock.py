"""Waiting for, holding and letting go of a booking's lock in Redis: the one mechanism POST
(single flight) and PATCH/DELETE (serialised changes) share."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from service.errors import BookingBusy, StoreUnavailable
from service.store import BookingStore, new_lock_token

logger = logging.getLogger(__name__)

FIRST_POLL = 0.01
LAST_POLL = 0.2
# A lock whose release failed (Redis unreachable: a failover, a restart) would hold up every
# later request for its booking until it expires (LOCK_TTL_SECONDS), though Redis is
# usually back within seconds. Releasing is a compare-and-delete on our token, so trying
# again later is always safe: after these delays, in seconds (16 s in all).
RELEASE_RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
MAX_PENDING_RELEASES = 10_000


def attempts(
    booking_id: str, wait_seconds: float, sleep: Callable[[float], None] = time.sleep
) -> Iterator[int]:
    """Yield the attempt number, sleeping with a growing poll in between; BookingBusy once
    `wait_seconds` would pass."""
    deadline = time.monotonic() + wait_seconds
    poll = FIRST_POLL
    attempt = 0
    while True:
        yield attempt
        attempt += 1
        if time.monotonic() + poll > deadline:
            raise BookingBusy(
                f"Another request for booking {booking_id!r} has held it for over "
                f"{wait_seconds:g} s (it may still be talking to Microsoft Graph). Retry the "
                "same request; it will return that meeting.",
                retry_after=1,
            )
        sleep(poll)
        poll = min(LAST_POLL, poll * 2)


@contextmanager
def held(
    store: BookingStore,
    caller_id: str,
    booking_id: str,
    wait_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[None]:
    """Hold the booking's lock for the block, waiting up to `wait_seconds` for it."""
    token = new_lock_token()
    for _ in attempts(booking_id, wait_seconds, sleep):
        if store.acquire(caller_id, booking_id, token):
            break
    try:
        yield
    finally:
        release(store, caller_id, booking_id, token)


def release(store: BookingStore, caller_id: str, booking_id: str, token: str) -> None:
    try:
        store.release(caller_id, booking_id, token)
    except StoreUnavailable:
        LATER.add(store, caller_id, booking_id, token)


class LaterReleases:
    """Failed releases, tried again by one daemon thread per process (started on first
    use, so after gunicorn forks its workers) until they succeed or the delays run out;
    after that the lock expires by itself."""

    def __init__(self, delays: tuple[float, ...] = RELEASE_RETRY_DELAYS) -> None:
        self.delays = delays
        self._pending: list[tuple[float, int, int, BookingStore, str, str, str]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(
        self, store: BookingStore, caller_id: str, booking_id: str, token: str, attempt: int = 0
    ) -> None:
        if attempt >= len(self.delays):
            return
        with self._changed:
            if len(self._pending) >= MAX_PENDING_RELEASES:
                return  # a long outage: these locks expire by themselves
            due = time.monotonic() + self.delays[attempt]
            item = (due, next(self._order), attempt, store, caller_id, booking_id, token)
            heapq.heappush(self._pending, item)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="lock-releases", daemon=True)
                self._thread.start()
            self._changed.notify()

    def pending(self) -> int:
        with self._changed:
            return len(self._pending)

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._pending or self._pending[0][0] > time.monotonic():
                    timeout = self._pending[0][0] - time.monotonic() if self._pending else None
                    self._changed.wait(timeout)
                _, _, attempt, store, caller_id, booking_id, token = heapq.heappop(self._pending)
            try:
                store.release(caller_id, booking_id, token)
            except StoreUnavailable:
                self.add(store, caller_id, booking_id, token, attempt + 1)
            except Exception:  # never let one release end the thread for all others
                logger.exception("releasing a booking lock failed")
            else:
                logger.info("booking lock released after Redis came back")


LATER = LaterReleases()
