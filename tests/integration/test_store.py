"""service.storage.store (and the booking lock's taking and letting go) against a real
redis-server."""

from __future__ import annotations

import base64
import json
import time
import uuid
import zlib
from dataclasses import replace
from typing import Any

import pytest
import redis
from graph_emulator import times
from graph_emulator.config import User
from graph_emulator.meeting_builder import new_meeting
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.domain import record_format
from service.domain.record import FORMAT_VERSION, BookingRecord, Status
from service.foundation.errors import StoreUnavailable
from service.storage import keys
from service.storage.booking_lock import BookingLocks
from service.storage.gateway import RedisGateway
from service.storage.store import BookingStore

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway(module_redis):
    client = redis.Redis.from_url(module_redis.url, decode_responses=True)
    client.flushdb()
    return RedisGateway(client)


@pytest.fixture
def store(gateway):
    return BookingStore(gateway, ttl_seconds=3600)


@pytest.fixture
def locks(gateway):
    return BookingLocks(gateway, ttl=0.3)


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


def stored_bytes(module_redis, name: str) -> bytes:
    """The value under `name` exactly as Redis holds it."""
    return redis.Redis.from_url(module_redis.url).get(name)


def stored_envelope(module_redis, name: str) -> dict[str, Any]:
    """The JSON envelope stored under `name` (format 3)."""
    envelope = json.loads(stored_bytes(module_redis, name))
    assert record_format.is_packed(envelope)
    return envelope


def stored_document(module_redis, name: str) -> dict[str, Any]:
    """The JSON document of the compressed record stored under `name`."""
    return json.loads(record_format.unpack(stored_envelope(module_redis, name)))


def test_records_round_trip_with_the_ttl(store, module_redis):
    stored = record()
    store.put("eu", "b:1", stored)
    assert store.get("eu", "b:1") == stored
    assert 3590 < module_redis.client().ttl(keys.booking("eu", "b:1")) <= 3600
    raw = stored_document(module_redis, keys.booking("eu", "b:1"))
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
        module_redis.client().set(keys.booking("eu", name), raw)
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
        rewritten = stored_document(module_redis, keys.booking("eu", name))
        assert rewritten.pop("formatVersion") == FORMAT_VERSION
        before = {"status": "active", "generation": 0, **json.loads(raw)}
        assert rewritten == before


def test_an_unreadable_record_is_absent_and_a_newer_one_is_unavailable(store, module_redis):
    module_redis.client().set(keys.booking("eu", "junk"), "[1, 2]")
    assert store.get("eu", "junk") is None
    newer = json.loads(record().to_json()) | {"formatVersion": FORMAT_VERSION + 1}
    module_redis.client().set(keys.booking("eu", "newer"), json.dumps(newer))
    with pytest.raises(StoreUnavailable):
        store.get("eu", "newer")


def test_bookings_are_kept_per_caller(store):
    store.put("eu", "b", record("b"))
    assert store.get("us", "b") is None
    assert store.get("eu", "b").booking_id == "b"


def test_only_one_request_holds_a_booking_lock(locks):
    assert locks.of("eu", "b", "first").acquire()
    assert not locks.of("eu", "b", "second").acquire()
    assert locks.of("eu", "other", "second").acquire()
    assert locks.of("eu", "b").locked()
    locks.of("eu", "b", "first").release_now()
    assert not locks.of("eu", "b").locked()


def test_a_resent_acquire_finds_its_own_lock(locks):
    """redis-py resends a SET whose answer timed out; when the first one landed, the lock
    is the sender's own and must count as taken, not as held by someone else."""
    mine = locks.of("eu", "b", "mine")
    assert mine.acquire()
    assert mine.acquire()
    assert not locks.of("eu", "b", "theirs").acquire()


def test_an_expired_lock_is_not_released_by_its_former_owner(locks):
    former, current = locks.of("eu", "b", "former"), locks.of("eu", "b", "current")
    assert former.acquire()
    time.sleep(0.4)  # past the 0.3 s lock TTL
    assert current.acquire()
    former.release_now()  # compare-and-delete: not the owner any more
    assert current.locked()
    current.release_now()
    assert not current.locked()


def test_an_unreachable_redis_is_store_unavailable(redis_server):
    client = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    gateway = RedisGateway(client)
    store = BookingStore(gateway, ttl_seconds=60)
    for operation in (
        lambda: store.get("eu", "b"),
        lambda: store.put("eu", "b", record()),
        BookingLocks(gateway, ttl=1).of("eu", "b", "token").acquire,
        gateway.ping,
    ):
        with pytest.raises(StoreUnavailable) as raised:
            operation()
        assert raised.value.retry_after >= 1


# --- format 3: compressed records ---------------------------------------------------------

TENANT = "6dd81c6a-52ea-4be3-94eb-7a74652f72d7"
ORGANIZER = "d14b9f15-d3ef-42f2-aad5-01b86bbbf497"
START, END = "2026-11-23T08:00:00.0000000Z", "2026-11-23T09:00:00.0000000Z"


def emulator_meeting(external_id: str, **body: Any) -> dict[str, Any]:
    """A new meeting exactly as the emulator's Graph returns it from createOrGet."""
    meeting = new_meeting(
        tenant_id=TENANT,
        organizer=User(ORGANIZER),
        body={"externalId": external_id, **body},
        start=times.now_ticks(),
        end=times.now_ticks() + 36_000_000_000,
        audience="https://graph.microsoft.com",
    )
    context = (
        f"https://graph.microsoft.com/v1.0/$metadata#users('{ORGANIZER}')/onlineMeetings/$entity"
    )
    return {"@odata.context": context, **meeting}


def realistic(booking_id: str = "room-42:2026-11-23T09:00", **request: Any) -> BookingRecord:
    """The record of a booking with a subject, times and one attendee, as the service stores
    it after an emulator createOrGet."""
    external_id = str(uuid.uuid4())
    attendee = {"role": "presenter", "upn": "ada.lovelace@contoso.com", "userId": None}
    fingerprint = {
        "organizerId": ORGANIZER,
        "organizerPool": None,
        "subject": "Design review – Käse & Crème",  # not ASCII: stored as UTF-8
        "startDateTime": START,
        "endDateTime": END,
        "attendees": [attendee],
        "chatInfo": None,
        **request,
    }
    meeting = emulator_meeting(
        external_id,
        subject=fingerprint["subject"],
        participants={"attendees": [{"upn": attendee["upn"], "role": "presenter"}]},
    )
    return BookingRecord.provisioned(
        booking_id=booking_id,
        generation=0,
        external_id=external_id,
        organizer_id=ORGANIZER,
        request=fingerprint,
        meeting=meeting | {"startDateTime": START, "endDateTime": END},
        graph_request_id=str(uuid.uuid4()),
    )


PENDING = {
    "options": {"allowedPresenters": "organizer", "lobbyBypassSettings": {"scope": "everyone"}}
}


def every_kind() -> dict[str, BookingRecord]:
    active = realistic()
    pending = realistic(**PENDING)
    applied = pending.options_applied(
        pending.meeting | {"allowedPresenters": "organizer", "lobbyBypassSettings": {
            "scope": "everyone", "isDialInBypassEnabled": False}}, "r-3")  # fmt: skip
    bare = BookingRecord.provisioned(
        booking_id="b",
        generation=0,
        external_id="e",
        organizer_id=ORGANIZER,
        request={},
        meeting={"id": "m"},
        graph_request_id=None,
    )
    return {
        "active": active,
        "options pending": pending,
        "options applied": applied,
        "rescheduled": active.rescheduled(
            active.meeting | {"subject": "moved"}, active.request | {"subject": "moved"}, "r-2"
        ),
        "cancelled": active.cancelled(),
        "re-booked": replace(realistic(), generation=3),
        "pool": realistic(organizerPool="support", organizerId=None),
        "no optional fields": replace(bare, provisioned_at=None),
    }


@pytest.mark.parametrize("kind", list(every_kind()))
def test_every_kind_of_record_round_trips_compressed(store, module_redis, kind):
    record_ = every_kind()[kind]
    store.put("eu", "b", record_)
    envelope = stored_envelope(module_redis, keys.booking("eu", "b"))
    assert envelope["formatVersion"] == FORMAT_VERSION
    assert envelope["d"] == record_format.CURRENT_DICTIONARY
    found = store.get("eu", "b")
    assert found == record_
    # What the API answers is built from the record: the same body, byte for byte.
    assert found.answer == record_.answer


def test_a_realistic_record_is_stored_in_under_a_kilobyte(store, module_redis):
    record_ = realistic()
    assert len(record_.to_json().encode()) > 2500  # Graph's whole onlineMeeting is in it
    store.put("eu", "room-42:2026-11-23T09:00", record_)
    name = keys.booking("eu", "room-42:2026-11-23T09:00")
    # MEMORY USAGE counts the key, the value and Redis's own bookkeeping for them.
    assert module_redis.client().memory_usage(name, samples=0) < 1024
    # Under 640 bytes: the value then fits jemalloc's 640-byte size class.
    assert len(stored_bytes(module_redis, name)) < 640


def test_format_2_text_records_are_still_read_under_either_name(store, module_redis):
    pending = realistic(**PENDING)
    document = json.loads(pending.to_json()) | {"formatVersion": 2}
    as_written = json.dumps(document, separators=(",", ":"), sort_keys=True)
    module_redis.client().set(keys.booking("eu", "new"), as_written)
    module_redis.client().set(keys.legacy_booking("eu", "old"), as_written)
    assert store.get("eu", "new") == pending
    assert store.get("eu", "old") == pending
    assert store.get("eu", "old").options_pending


def damaged(payload: bytes) -> bytes:
    middle = len(payload) // 2
    return payload[:middle] + bytes([payload[middle] ^ 0x55]) + payload[middle + 1 :]


def envelope_of(**changes: Any) -> bytes:
    """A stored envelope of the realistic record, with `changes` to its members."""
    envelope = json.loads(realistic().to_stored()) | changes
    return json.dumps(envelope).encode()


def packed(payload: bytes, **members: Any) -> str:
    return record_format.pack(payload, FORMAT_VERSION, **members)


def test_garbage_bytes_count_as_absent(store, module_redis):
    good = json.loads(realistic().to_stored())
    stream = good["z"]
    garbage = {
        "not utf-8": b"\xff\xfe\x80 not text",
        "empty": b"",
        "not json": b"{not json",
        "a list": b"[1, 2]",
        "truncated envelope": realistic().to_stored().encode()[:-20],
        "truncated payload": envelope_of(z=base64_cut(stream, 20)),
        "not base64": envelope_of(z="@@@" + stream),
        "payload not text": envelope_of(z=12),
        "damaged": envelope_of(z=damaged_base64(stream)),
        "padded": envelope_of(z=base64_padded(stream, b"more")),
        "dictionary not a number": envelope_of(d="1"),
        "not json inside": packed(b"{not json"),
        "no record inside": packed(b'{"formatVersion":3}'),
    }
    client = redis.Redis.from_url(module_redis.url)
    for name, value in garbage.items():
        client.set(keys.booking("eu", name), value)
    for name in garbage:
        assert store.get("eu", name) is None, name
    # The store repairs such a record by writing it again.
    store.put("eu", "truncated payload", realistic())
    assert store.get("eu", "truncated payload") is not None


def base64_cut(encoded: str, cut: int) -> str:
    return base64.b64encode(base64.b64decode(encoded)[:-cut]).decode()


def base64_padded(encoded: str, more: bytes) -> str:
    return base64.b64encode(base64.b64decode(encoded) + more).decode()


def damaged_base64(encoded: str) -> str:
    return base64.b64encode(damaged(base64.b64decode(encoded))).decode()


def test_compressed_records_of_a_newer_release_are_unavailable(store, module_redis):
    newer = {
        "newer format": envelope_of(formatVersion=FORMAT_VERSION + 1),
        "newer dictionary": envelope_of(d=99),
    }
    client = redis.Redis.from_url(module_redis.url)
    for name, value in newer.items():
        client.set(keys.booking("eu", name), value)
        with pytest.raises(StoreUnavailable):
            store.get("eu", name)
        assert client.get(keys.booking("eu", name)) == value  # left as it was


def test_a_release_before_format_3_reads_an_envelope_as_a_newer_record():
    """What such a release does with the text (its from_json: json.loads, then the
    formatVersion check): a 503 of a newer format, never a decoding error (a 500)."""
    envelope = json.loads(realistic().to_stored())
    assert envelope["formatVersion"] not in (1, 2)


def test_a_wrong_dictionary_is_damage_not_a_wrong_record(store, module_redis):
    """zlib's header names the dictionary's checksum: bytes compressed with another
    dictionary under our id cannot decompress into something else."""
    compressor = zlib.compressobj(9, zdict=b"another dictionary entirely")
    text = realistic().to_json().encode()
    stream = compressor.compress(text) + compressor.flush()
    value = envelope_of(z=base64.b64encode(stream).decode())
    redis.Redis.from_url(module_redis.url).set(keys.booking("eu", "b"), value)
    assert store.get("eu", "b") is None
