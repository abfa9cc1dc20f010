"""service.store against a real redis-server."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.errors import StoreUnavailable
from service.record import FORMAT_VERSION, BookingRecord, Status
from service.store import BookingStore, key

pytestmark = pytest.mark.integration


@pytest.fixture
def store(module_redis):
    client = redis.Redis.from_url(module_redis.url, decode_responses=True)
    client.flushdb()
    return BookingStore(client, ttl_seconds=3600, lock_ttl=0.3)


def record(booking_id: str = "b:1", **changes) -> BookingRecord:
    return replace(
        BookingRecord.provisioned(
            booking_id=booking_id,
            generation=0,
            external_id="0b5c6e0e-36a4-5b5f-9a55-5a3b1d7c2e10",
            organizer_id="8b081ef6-4792-4def-b2c9-c363a1bf41d5",
            request={"subject": "s", "organizerPool": None},
            meeting={"id": "m", "joinWebUrl": "https://teams.example/j", "subject": "s"},
            graph_request_id="r-1",
        ),
        **changes,
    )


def test_records_round_trip_with_the_ttl(store, module_redis):
    stored = record()
    store.put("eu", "b:1", stored)
    assert store.get("eu", "b:1") == stored
    assert 3590 < module_redis.client().ttl(key("booking", "eu", "b:1")) <= 3600
    raw = json.loads(module_redis.client().get(key("booking", "eu", "b:1")))
    assert raw["formatVersion"] == FORMAT_VERSION


def test_changed_records_round_trip(store):
    cancelled = record().rescheduled({"id": "m", "subject": "t"}, {"subject": "t"}, "r-2")
    cancelled = cancelled.cancelled()
    store.put("eu", "b:1", cancelled)
    found = store.get("eu", "b:1")
    assert found == cancelled
    assert found.status is Status.CANCELLED and found.updated_at and found.cancelled_at


# Exactly as the code before BookingRecord wrote them (json.dumps of a dict, sorted keys):
# records in a running deployment's Redis must keep loading after an upgrade.
WRITTEN_BEFORE_RECORD_TYPE = {
    "active": (
        '{"bookingId":"room-42:2026-11-23T09:00","externalId":"0b5c6e0e-36a4-5b5f-9a55-'
        '5a3b1d7c2e10","generation":0,"graphRequestId":"c1c1d0e0-0000-4000-8000-000000000001",'
        '"meeting":{"id":"MSo4YjA4","joinWebUrl":"https://teams.microsoft.com/l/meetup-join/x",'
        '"subject":"Design review","startDateTime":"2026-11-23T08:00:00.0000000Z",'
        '"endDateTime":"2026-11-23T09:00:00.0000000Z"},"organizerId":"8b081ef6-4792-4def-b2c9-'
        'c363a1bf41d5","provisionedAt":"2026-11-20T10:00:00+00:00","request":{"attendees":[],'
        '"chatInfo":null,"endDateTime":"2026-11-23T09:00:00.0000000Z","organizerId":"8b081ef6-'
        '4792-4def-b2c9-c363a1bf41d5","organizerPool":null,"startDateTime":"2026-11-23T08:00:00.'
        '0000000Z","subject":"Design review"},"status":"active"}'
    ),
    "cancelled": (
        '{"bookingId":"b","cancelledAt":"2026-11-21T10:00:00+00:00","externalId":"e","generation"'
        ':2,"graphRequestId":null,"meeting":{"id":"m"},"organizerId":"o","provisionedAt":"2026-11-'
        '20T10:00:00+00:00","request":{"subject":null},"status":"cancelled","updatedAt":"2026-11-'
        '20T11:00:00+00:00"}'
    ),
    # The oldest records, from before cancellation: no status, no generation.
    "no-status": '{"bookingId":"b","externalId":"e","meeting":{"id":"m"},"organizerId":"o",'
    '"provisionedAt":"2026-11-20T10:00:00+00:00","request":{},"graphRequestId":"r"}',
}


def test_records_written_before_the_record_type_keep_loading(store, module_redis):
    for name, raw in WRITTEN_BEFORE_RECORD_TYPE.items():
        module_redis.client().set(key("booking", "eu", name), raw)
    active = store.get("eu", "active")
    assert active.is_active and active.generation == 0
    assert active.booking_id == "room-42:2026-11-23T09:00"
    assert active.meeting_id == "MSo4YjA4"
    assert active.request["subject"] == "Design review"
    assert active.view()["joinWebUrl"] == "https://teams.microsoft.com/l/meetup-join/x"
    cancelled = store.get("eu", "cancelled")
    assert cancelled.status is Status.CANCELLED and cancelled.generation == 2
    assert cancelled.cancelled_at == "2026-11-21T10:00:00+00:00"
    oldest = store.get("eu", "no-status")
    assert oldest.is_active and oldest.generation == 0
    # Written back, each keeps every field it had, now with a format version.
    for name, raw in WRITTEN_BEFORE_RECORD_TYPE.items():
        store.put("eu", name, store.get("eu", name))
        rewritten = json.loads(module_redis.client().get(key("booking", "eu", name)))
        assert rewritten.pop("formatVersion") == FORMAT_VERSION
        before = {"status": "active", "generation": 0, **json.loads(raw)}
        assert rewritten == before


def test_an_unreadable_record_is_absent_and_a_newer_one_is_unavailable(store, module_redis):
    module_redis.client().set(key("booking", "eu", "junk"), "[1, 2]")
    assert store.get("eu", "junk") is None
    newer = json.loads(record().to_json()) | {"formatVersion": FORMAT_VERSION + 1}
    module_redis.client().set(key("booking", "eu", "newer"), json.dumps(newer))
    with pytest.raises(StoreUnavailable):
        store.get("eu", "newer")


def test_bookings_are_kept_per_caller(store):
    store.put("eu", "b", record("b"))
    assert store.get("us", "b") is None
    assert store.get("eu", "b").booking_id == "b"


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
        lambda: store.put("eu", "b", record()),
        lambda: store.acquire("eu", "b", "token"),
        store.ping,
    ):
        with pytest.raises(StoreUnavailable) as raised:
            operation()
        assert raised.value.retry_after >= 1
