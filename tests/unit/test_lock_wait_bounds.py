"""How long a request waiting for a booking's lock may block in Redis, and the key its
holder's release wakes it by: pure arithmetic and names, no Redis."""

from __future__ import annotations

import pytest
from redis.cluster import key_slot

from service.storage.store import (
    BLOCK_ANSWER_MARGIN,
    BLOCK_OVERSHOOT,
    BookingStore,
    key,
    waiting_key,
    wake_key,
)

pytestmark = pytest.mark.unit


def unbuilt_store(redis_timeout: float | None) -> BookingStore:
    def no_client():  # never called: these tests send nothing
        raise AssertionError("no Redis here")

    return BookingStore(no_client, ttl_seconds=60, lock_ttl=5, redis_timeout=redis_timeout)


def test_a_block_ends_within_the_wait_left_and_its_answer_within_the_socket_timeout():
    store = unbuilt_store(0.5)
    # Far from the end of the wait, the socket timeout bounds it, with Redis' late timer
    # tick and a margin for the answer.
    block = store.longest_block(10)
    assert block + BLOCK_OVERSHOOT + BLOCK_ANSWER_MARGIN == pytest.approx(0.5)
    # Near the end, the wait left does: asked for `block`, Redis may answer a tick late.
    assert store.longest_block(0.2) + BLOCK_OVERSHOOT == pytest.approx(0.2)
    assert store.longest_block(0.05) <= 0


def test_a_socket_timeout_too_short_leaves_no_block():
    assert unbuilt_store(0.1).longest_block(10) <= 0


def test_a_client_without_a_socket_timeout_is_bounded_by_the_wait_alone():
    assert unbuilt_store(None).longest_block(3) == pytest.approx(3 - BLOCK_OVERSHOOT)


@pytest.mark.parametrize(
    ("caller", "booking_id"), [("booking-eu", "b-1"), ("a.b_c-d", "x~y.z_:-:")]
)
def test_the_wake_keys_are_per_token_and_in_the_bookings_slot(caller, booking_id):
    first, second = wake_key(caller, booking_id, "t1"), wake_key(caller, booking_id, "t2")
    assert first != second
    assert first.startswith(key("wake", caller, booking_id))
    lock, waiting = key("lock", caller, booking_id), waiting_key(caller, booking_id)
    slots = {key_slot(name.encode()) for name in (first, second, lock, waiting)}
    assert len(slots) == 1
