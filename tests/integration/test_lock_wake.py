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
from service.storage import booking_lock
from service.storage.store import BLOCK_OVERSHOOT, WAKE_TTL_MS, BookingStore, wake_key

pytestmark = pytest.mark.integration

SOCKET_TIMEOUT = 0.3
# A waiter is answered this soon after the release: far below a block (0.2 s) or Redis's
# timer tick (0.1 s), which is when it would notice without being woken.
WOKEN_WITHIN = 0.05


def store_with_timeout(url: str, socket_timeout: float, lock_ttl: float = 5) -> BookingStore:
    """A store like the service's: a socket timeout, and no resend, so a command that blocks
    past it is a StoreUnavailable here rather than a slow retry."""
    client = redis.Redis.from_url(
        url, decode_responses=True, socket_timeout=socket_timeout, retry=Retry(NoBackoff(), 0)
    )
    return BookingStore(client, ttl_seconds=60, lock_ttl=lock_ttl, redis_timeout=socket_timeout)


@pytest.fixture
def store(module_redis):
    module_redis.client().flushdb()
    return store_with_timeout(module_redis.url, SOCKET_TIMEOUT)


def test_every_blocked_waiter_is_woken_at_once_by_the_release(module_redis):
    module_redis.client().flushdb()
    store = store_with_timeout(module_redis.url, 3)  # blocks of 2 s are allowed
    assert store.acquire("eu", "b", "owner")
    holder = store.holder_to_wait_for("eu", "b")
    blocked = threading.Barrier(6)

    def wait() -> tuple[bool, float]:
        blocked.wait()
        woken = store.wait_for_release("eu", "b", holder, 2)
        return woken, time.monotonic()

    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
        futures = [pool.submit(wait) for _ in range(5)]
        blocked.wait()
        time.sleep(0.3)
        released = time.monotonic()
        store.release("eu", "b", "owner")
        answers = [future.result(timeout=5) for future in futures]
    assert all(woken for woken, _ in answers)
    late = max(at for _, at in answers) - released
    assert late < WOKEN_WITHIN, f"the last waiter woke {late * 1000:.0f} ms after release"


def test_waiting_for_a_turn_ends_as_the_holder_releases(store):
    assert store.acquire("eu", "b", "owner")
    waiting = threading.Barrier(6)

    def wait() -> tuple[bool, float]:
        waiting.wait()
        turn = booking_lock.wait_for_turn(store, "eu", "b", time.monotonic() + 5)
        return turn, time.monotonic()

    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
        futures = [pool.submit(wait) for _ in range(5)]
        waiting.wait()
        time.sleep(0.7)  # several blocks, each ended by its timeout and started again
        released = time.monotonic()
        store.release("eu", "b", "owner")
        answers = [future.result(timeout=5) for future in futures]
    assert all(turn for turn, _ in answers)
    late = max(at for _, at in answers) - released
    assert late < WOKEN_WITHIN, f"the last waiter noticed {late * 1000:.0f} ms after release"


def test_a_release_just_before_the_wait_still_wakes_it(store, module_redis):
    assert store.acquire("eu", "b", "owner")
    holder = store.holder_to_wait_for("eu", "b")
    store.release("eu", "b", "owner")
    started = time.monotonic()
    assert store.wait_for_release("eu", "b", holder, 0.2)
    assert time.monotonic() - started < WOKEN_WITHIN
    # The wake is kept a few seconds, for every waiter that read the same holder.
    assert 0 < module_redis.client().pttl(wake_key("eu", "b", "owner")) <= WAKE_TTL_MS
    assert store.wait_for_release("eu", "b", holder, 0.2)


def test_a_release_nobody_waits_for_writes_no_wake(store, module_redis):
    assert store.acquire("eu", "b", "alone")
    store.release("eu", "b", "alone")
    assert not store.locked("eu", "b")
    assert module_redis.client().keys("*") == []


def test_a_release_wakes_only_the_waiters_of_its_own_token(store, module_redis):
    assert store.acquire("eu", "b", "first")
    assert store.holder_to_wait_for("eu", "b") == "first"
    store.release("eu", "b", "second")  # not the holder: nothing released, nobody woken
    assert store.locked("eu", "b")
    assert not module_redis.client().exists(wake_key("eu", "b", "second"))
    store.release("eu", "b", "first")
    assert store.acquire("eu", "b", "later")
    assert store.holder_to_wait_for("eu", "b") == "later"
    # The earlier release does not wake those waiting for the later holder: they block.
    started = time.monotonic()
    assert not store.wait_for_release("eu", "b", "later", 0.1)
    assert time.monotonic() - started >= 0.1
    store.release("eu", "b", "later")
    assert store.wait_for_release("eu", "b", "later", 0.1)
    assert store.holder_to_wait_for("eu", "b") is None


def test_a_lock_never_released_ends_in_booking_busy_on_time(store):
    assert store.acquire("eu", "b", "stuck")
    started = time.monotonic()
    with pytest.raises(BookingBusy), booking_lock.held(store, "eu", "b", 1.0):
        pytest.fail("the lock was taken while another held it")
    waited = time.monotonic() - started
    # Blocks end within the wait (and within the socket timeout, or this would have been
    # a StoreUnavailable): the whole wait, and not a poll more.
    assert 1.0 <= waited < 1.0 + WOKEN_WITHIN, waited


def test_the_lock_of_a_holder_that_died_is_taken_once_it_expires(module_redis):
    module_redis.client().flushdb()
    store = store_with_timeout(module_redis.url, SOCKET_TIMEOUT, lock_ttl=0.3)
    assert store.acquire("eu", "b", "died")  # and never released
    started = time.monotonic()
    with booking_lock.held(store, "eu", "b", 5):
        taken = time.monotonic() - started
    # Noticed when the block under way times out, Redis's timer tick late at worst.
    assert 0.3 <= taken < 0.3 + booking_lock.LONGEST_BLOCK + BLOCK_OVERSHOOT + WOKEN_WITHIN


def test_a_socket_timeout_too_short_to_block_within_falls_back_to_polling(module_redis):
    module_redis.client().flushdb()
    store = store_with_timeout(module_redis.url, 0.12)
    assert store.longest_block(10) < booking_lock.SHORTEST_BLOCK
    assert store.acquire("eu", "b", "owner")
    releaser = threading.Timer(0.3, store.release, ("eu", "b", "owner"))
    releaser.start()
    started = time.monotonic()
    try:
        with booking_lock.held(store, "eu", "b", 3):
            taken = time.monotonic() - started
    finally:
        releaser.join()
    assert 0.3 <= taken < 0.3 + booking_lock.POLL + WOKEN_WITHIN, taken


def test_waiting_on_an_unreachable_redis_is_store_unavailable():
    client = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    store = BookingStore(client, ttl_seconds=60, lock_ttl=1, redis_timeout=0.5)
    for operation in (
        lambda: store.holder_to_wait_for("eu", "b"),
        lambda: store.wait_for_release("eu", "b", "t", 0.1),
        lambda: booking_lock.wait_for_turn(store, "eu", "b", time.monotonic() + 1),
    ):
        with pytest.raises(StoreUnavailable):
            operation()
