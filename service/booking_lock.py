"""Waiting for, holding and letting go of a booking's lock in Redis: the one mechanism POST
(single flight) and PATCH/DELETE (serialised changes) share."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from service.errors import BookingBusy, StoreUnavailable
from service.store import BookingStore, new_lock_token

FIRST_POLL = 0.01
LAST_POLL = 0.2


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
        pass  # the lock expires by itself
