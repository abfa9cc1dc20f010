"""Waiting for a booking's lock against a real redis-server: waiters block until the
holder's release wakes them, and still end on time (BookingBusy) or take over a lock whose
holder died, within the socket timeout of a client that resends nothing."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.foundation.errors import BookingBusy, StoreUnavailable
from service.storage import booking_lock, keys
from service.storage.booking_lock import BLOCK_OVERSHOOT, BookingLocks
from service.storage.gateway import RedisGateway

pytestmark = pytest.mark.integration

SOCKET_TIMEOUT = 0.3
# A waiter is answered this soon after the release: far below a block (0.2 s) or Redis's
# timer tick (0.1 s), which is when it would notice without being woken.
WOKEN_WITHIN = 0.05


def locks_with_timeout(url: str, socket_timeout: float, lock_ttl: float = 5) -> BookingLocks:
    """Locks like the service's: a socket timeout, and no resend, so a command that blocks
    past it is a StoreUnavailable here rather than a slow retry."""
    client = redis.Redis.from_url(
        url, decode_responses=True, socket_timeout=socket_timeout, retry=Retry(NoBackoff(), 0)
    )
    return BookingLocks(RedisGateway(client, timeout=socket_timeout), ttl=lock_ttl)


@pytest.fixture
def locks(module_redis):
    module_redis.client().flushdb()
    return locks_with_timeout(module_redis.url, SOCKET_TIMEOUT)


def test_every_blocked_waiter_is_woken_at_once_by_the_release(module_redis):
    module_redis.client().flushdb()
    locks = locks_with_timeout(module_redis.url, 3)  # blocks of 2 s are allowed
    assert locks.of("eu", "b", "owner").acquire()
    holder = locks.of("eu", "b").holder_to_wait_for()
    blocked = threading.Barrier(6)

    def wait() -> tuple[bool, float]:
        blocked.wait()
        woken = locks.of("eu", "b").wait_for_release(holder, 2)
        return woken, time.monotonic()

    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
        futures = [pool.submit(wait) for _ in range(5)]
        blocked.wait()
        time.sleep(0.3)
        released = time.monotonic()
        locks.of("eu", "b", "owner").release_now()
        answers = [future.result(timeout=5) for future in futures]
    assert all(woken for woken, _ in answers)
    late = max(at for _, at in answers) - released
    assert late < WOKEN_WITHIN, f"the last waiter woke {late * 1000:.0f} ms after release"


def test_waiting_for_a_turn_ends_as_the_holder_releases(locks):
    assert locks.of("eu", "b", "owner").acquire()
    waiting = threading.Barrier(6)

    def wait() -> tuple[bool, float]:
        waiting.wait()
        turn = locks.of("eu", "b").wait_for_turn(time.monotonic() + 5)
        return turn, time.monotonic()

    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
        futures = [pool.submit(wait) for _ in range(5)]
        waiting.wait()
        time.sleep(0.7)  # several blocks, each ended by its timeout and started again
        released = time.monotonic()
        locks.of("eu", "b", "owner").release_now()
        answers = [future.result(timeout=5) for future in futures]
    assert all(turn for turn, _ in answers)
    late = max(at for _, at in answers) - released
    assert late < WOKEN_WITHIN, f"the last waiter noticed {late * 1000:.0f} ms after release"


def test_a_release_just_before_the_wait_still_wakes_it(locks, module_redis):
    assert locks.of("eu", "b", "owner").acquire()
    holder = locks.of("eu", "b").holder_to_wait_for()
    locks.of("eu", "b", "owner").release_now()
    started = time.monotonic()
    assert locks.of("eu", "b").wait_for_release(holder, 0.2)
    assert time.monotonic() - started < WOKEN_WITHIN
    # The wake is kept a few seconds, for every waiter that read the same holder.
    assert 0 < module_redis.client().pttl(keys.wake("eu", "b", "owner")) <= keys.WAKE_TTL_MS
    assert locks.of("eu", "b").wait_for_release(holder, 0.2)


def test_a_release_nobody_waits_for_writes_no_wake(locks, module_redis):
    assert locks.of("eu", "b", "alone").acquire()
    locks.of("eu", "b", "alone").release_now()
    assert not locks.of("eu", "b").locked()
    assert module_redis.client().keys("*") == []


def test_a_release_wakes_only_the_waiters_of_its_own_token(locks, module_redis):
    assert locks.of("eu", "b", "first").acquire()
    assert locks.of("eu", "b").holder_to_wait_for() == "first"
    locks.of("eu", "b", "second").release_now()  # not the holder: nothing released, nobody woken
    assert locks.of("eu", "b").locked()
    assert not module_redis.client().exists(keys.wake("eu", "b", "second"))
    locks.of("eu", "b", "first").release_now()
    assert locks.of("eu", "b", "later").acquire()
    assert locks.of("eu", "b").holder_to_wait_for() == "later"
    # The earlier release does not wake those waiting for the later holder: they block.
    started = time.monotonic()
    assert not locks.of("eu", "b").wait_for_release("later", 0.1)
    assert time.monotonic() - started >= 0.1
    locks.of("eu", "b", "later").release_now()
    assert locks.of("eu", "b").wait_for_release("later", 0.1)
    assert locks.of("eu", "b").holder_to_wait_for() is None


def test_a_lock_never_released_ends_in_booking_busy_on_time(locks):
    assert locks.of("eu", "b", "stuck").acquire()
    started = time.monotonic()
    with pytest.raises(BookingBusy), locks.of("eu", "b").held(1.0):
        pytest.fail("the lock was taken while another held it")
    waited = time.monotonic() - started
    # Blocks end within the wait (and within the socket timeout, or this would have been
    # a StoreUnavailable): the whole wait, and not a poll more.
    assert 1.0 <= waited < 1.0 + WOKEN_WITHIN, waited


def test_the_lock_of_a_holder_that_died_is_taken_once_it_expires(module_redis):
    module_redis.client().flushdb()
    locks = locks_with_timeout(module_redis.url, SOCKET_TIMEOUT, lock_ttl=0.3)
    assert locks.of("eu", "b", "died").acquire()  # and never released
    started = time.monotonic()
    with locks.of("eu", "b").held(5):
        taken = time.monotonic() - started
    # Noticed when the block under way times out, Redis's timer tick late at worst.
    assert 0.3 <= taken < 0.3 + booking_lock.LONGEST_BLOCK + BLOCK_OVERSHOOT + WOKEN_WITHIN


def test_a_socket_timeout_too_short_to_block_within_falls_back_to_polling(module_redis):
    module_redis.client().flushdb()
    locks = locks_with_timeout(module_redis.url, 0.12)
    assert locks.longest_block(10) < booking_lock.SHORTEST_BLOCK
    assert locks.of("eu", "b", "owner").acquire()
    releaser = threading.Timer(0.3, locks.of("eu", "b", "owner").release_now)
    releaser.start()
    started = time.monotonic()
    try:
        with locks.of("eu", "b").held(3):
            taken = time.monotonic() - started
    finally:
        releaser.join()
    assert 0.3 <= taken < 0.3 + booking_lock.POLL + WOKEN_WITHIN, taken


def test_waiting_on_an_unreachable_redis_is_store_unavailable():
    client = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    lock = BookingLocks(RedisGateway(client, timeout=0.5), ttl=1).of("eu", "b")
    for operation in (
        lock.holder_to_wait_for,
        lambda: lock.wait_for_release("t", 0.1),
        lambda: lock.wait_for_turn(time.monotonic() + 1),
    ):
        with pytest.raises(StoreUnavailable):
            operation()
