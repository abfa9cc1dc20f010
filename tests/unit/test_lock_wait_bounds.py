"""How long a request waiting for a booking's lock may block in Redis, and the key its
holder's release wakes it by: pure arithmetic and names, no Redis."""

from __future__ import annotations

import pytest
from redis.cluster import key_slot

from service.storage import keys
from service.storage.booking_lock import BLOCK_ANSWER_MARGIN, BLOCK_OVERSHOOT, BookingLocks
from service.storage.gateway import RedisGateway

pytestmark = pytest.mark.unit


def unbuilt_locks(redis_timeout: float | None) -> BookingLocks:
    def no_client():  # never called: these tests send nothing
        raise AssertionError("no Redis here")

    return BookingLocks(RedisGateway(no_client, timeout=redis_timeout), ttl=5)


def test_a_block_ends_within_the_wait_left_and_its_answer_within_the_socket_timeout():
    locks = unbuilt_locks(0.5)
    # Far from the end of the wait, the socket timeout bounds it, with Redis' late timer
    # tick and a margin for the answer.
    block = locks.longest_block(10)
    assert block + BLOCK_OVERSHOOT + BLOCK_ANSWER_MARGIN == pytest.approx(0.5)
    # Near the end, the wait left does: asked for `block`, Redis may answer a tick late.
    assert locks.longest_block(0.2) + BLOCK_OVERSHOOT == pytest.approx(0.2)
    assert locks.longest_block(0.05) <= 0


def test_a_socket_timeout_too_short_leaves_no_block():
    assert unbuilt_locks(0.1).longest_block(10) <= 0


def test_a_client_without_a_socket_timeout_is_bounded_by_the_wait_alone():
    assert unbuilt_locks(None).longest_block(3) == pytest.approx(3 - BLOCK_OVERSHOOT)


@pytest.mark.parametrize(
    ("caller", "booking_id"), [("booking-eu", "b-1"), ("a.b_c-d", "x~y.z_:-:")]
)
def test_the_wake_keys_are_per_token_and_in_the_bookings_slot(caller, booking_id):
    first, second = keys.wake(caller, booking_id, "t1"), keys.wake(caller, booking_id, "t2")
    assert first != second
    assert first.startswith(f"mps:v1:wake:{{{caller}:{booking_id}}}")
    lock, waiting = keys.lock(caller, booking_id), keys.waiting(caller, booking_id)
    slots = {key_slot(name.encode()) for name in (first, second, lock, waiting)}
    assert len(slots) == 1
