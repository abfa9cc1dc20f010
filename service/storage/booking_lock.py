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

from service.foundation.errors import BookingBusy, StoreUnavailable
from service.storage.store import BookingStore, new_lock_token

logger = logging.getLogger(__name__)

# A request waiting for a booking's lock blocks in Redis until the holder's release wakes
# it (BookingStore.wait_for_release), but at most this long at a time before it looks at
# the lock again: a holder that died wakes nobody, and its lock, once expired, should be
# taken within a fraction of a second.
LONGEST_BLOCK = 0.2
# A block shorter than this is not worth a round trip (the wait's last moments, or a
# REDIS_TIMEOUT_SECONDS too short to block within it): the waiter sleeps for up to POLL
# instead, then looks at the lock again.
SHORTEST_BLOCK = 0.01
POLL = 0.1
# A lock whose release failed (Redis unreachable: a failover, a restart) would hold up every
# later request for its booking until it expires (LOCK_TTL_SECONDS), though Redis is
# usually back within seconds. Releasing is a compare-and-delete on our token, so trying
# again later is always safe: after these delays, in seconds (16 s in all).
RELEASE_RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
MAX_PENDING_RELEASES = 10_000


def attempts(
    store: BookingStore,
    caller_id: str,
    booking_id: str,
    wait_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[int]:
    """Yield the attempt number; in between, wait for this request's turn at the booking's
    lock; BookingBusy once `wait_seconds` have passed."""
    deadline = time.monotonic() + wait_seconds
    attempt = 0
    while True:
        yield attempt
        attempt += 1
        if time.monotonic() >= deadline or not wait_for_turn(
            store, caller_id, booking_id, deadline, sleep
        ):
            raise BookingBusy(
                f"Another request for booking {booking_id!r} has held it for over "
                f"{wait_seconds:g} s (it may still be talking to Microsoft Graph). Retry the "
                "same request; it will return that meeting.",
                retry_after=1,
            )


def wait_for_turn(
    store: BookingStore,
    caller_id: str,
    booking_id: str,
    deadline: float,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Wait until the booking's lock is free, or its holder released or lost it (it expired
    and another may have taken it): True, worth another attempt. False once `deadline` (of
    time.monotonic()) has passed with the same holder."""
    holder = store.holder_to_wait_for(caller_id, booking_id)
    while holder is not None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        block = min(LONGEST_BLOCK, store.longest_block(remaining))
        if block < SHORTEST_BLOCK:
            sleep(min(POLL, remaining))
        elif store.wait_for_release(caller_id, booking_id, holder, block):
            return True
        # Not woken: the holder still works, or died and its lock expired.
        if store.holder_to_wait_for(caller_id, booking_id) != holder:
            return True
    return True


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
    for _ in attempts(store, caller_id, booking_id, wait_seconds, sleep):
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
