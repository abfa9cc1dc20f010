"""service.store against a real redis-server."""

from __future__ import annotations

import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.errors import StoreUnavailable
from service.store import BookingStore, key
from tests.support.stack import RedisServer


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def store(redis_server):
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushdb()
    return BookingStore(client, ttl_seconds=3600, lock_ttl=0.3)


def test_records_round_trip_with_the_ttl(store, redis_server):
    store.put("eu", "b:1", {"bookingId": "b:1", "meeting": {"id": "m"}})
    assert store.get("eu", "b:1") == {"bookingId": "b:1", "meeting": {"id": "m"}}
    assert 3590 < redis_server.client().ttl(key("booking", "eu", "b:1")) <= 3600


def test_bookings_are_kept_per_caller(store):
    store.put("eu", "b", {"caller": "eu"})
    assert store.get("us", "b") is None
    assert store.get("eu", "b") == {"caller": "eu"}


def test_only_one_request_holds_a_booking_lock(store):
    assert store.acquire("eu", "b", "first")
    assert not store.acquire("eu", "b", "second")
    assert store.acquire("eu", "other", "second")
    assert store.locked("eu", "b")
    store.release("eu", "b", "first")
    assert not store.locked("eu", "b")


def test_a_resent_acquire_finds_its_own_lock(store):
    """redis-py resends a SET whose answer timed out; when the first one landed, the lock
    is the sender's own and must count as taken, not as held by someone else."""
    assert store.acquire("eu", "b", "mine")
    assert store.acquire("eu", "b", "mine")
    assert not store.acquire("eu", "b", "theirs")


def test_an_expired_lock_is_not_released_by_its_former_owner(store):
    former, current = "former", "current"
    assert store.acquire("eu", "b", former)
    time.sleep(0.4)  # past the 0.3 s lock TTL
    assert store.acquire("eu", "b", current)
    store.release("eu", "b", former)  # compare-and-delete: not the owner any more
    assert store.locked("eu", "b")
    store.release("eu", "b", current)
    assert not store.locked("eu", "b")


def test_an_unreachable_redis_is_store_unavailable(redis_server):
    client = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    store = BookingStore(client, ttl_seconds=60, lock_ttl=1)
    for operation in (
        lambda: store.get("eu", "b"),
        lambda: store.put("eu", "b", {}),
        lambda: store.acquire("eu", "b", "token"),
        store.ping,
    ):
        with pytest.raises(StoreUnavailable) as raised:
            operation()
        assert raised.value.retry_after >= 1
