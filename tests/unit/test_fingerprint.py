"""service.domain.fingerprint: what two requests for one booking must agree on, and the
fingerprint every record of every format stores.

The STORED records and what is expected of them (REWRITTEN, DIFFERING, CHANGED, all in
stored_fingerprints.json) were captured from the code before the fingerprint was a type
(a dict from `BookingRequest.fingerprint()`, `differing_fields`,
`MeetingChange.applied_to`): records written before it must read back, compare and change
exactly as they did, and be written back byte for byte.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from service.domain.booking import Attendee, BookingRequest, ChatInfo, MeetingChange
from service.domain.fingerprint import Fingerprint
from service.domain.record import BookingRecord, UnreadableRecord

pytestmark = pytest.mark.unit

ORGANIZER = "8B081EF6-4792-4DEF-B2C9-C363A1BF41D5"


def test_requests_that_mean_the_same_meeting_have_the_same_fingerprint():
    paris = timezone(timedelta(hours=1))
    one = BookingRequest.create(
        booking_id="b",
        organizer_id=ORGANIZER,
        start=datetime(2026, 11, 23, 10, tzinfo=paris),
        attendees=[
            Attendee(upn="Bob@Contoso.com", user_id=None, role="attendee"),
            Attendee(upn=None, user_id="AAAAAAAA-0000-0000-0000-000000000001", role="presenter"),
        ],
    )
    two = BookingRequest.create(
        booking_id="b",
        organizer_id=ORGANIZER.lower(),
        start=datetime(2026, 11, 23, 9, tzinfo=UTC),
        attendees=[
            Attendee(upn=None, user_id="aaaaaaaa-0000-0000-0000-000000000001", role="presenter"),
            Attendee(upn="bob@contoso.com", user_id=None, role="attendee"),
        ],
    )
    assert Fingerprint.of(one) == Fingerprint.of(two)
    assert Fingerprint.of(one).differing_fields(Fingerprint.of(two)) == []


def test_differing_fields_names_each_difference_in_a_stable_order():
    base = BookingRequest.create(booking_id="b", organizer_id=ORGANIZER, subject="Standup")
    other = BookingRequest.create(
        booking_id="b",
        organizer_id=str(uuid.uuid4()),
        subject="Retro",
        start=datetime(2026, 11, 23, 9, tzinfo=UTC),
    )
    assert Fingerprint.of(base).differing_fields(Fingerprint.of(other)) == [
        "organizerId",
        "subject",
        "startDateTime",
    ]


# --- records stored before the fingerprint was a type -----------------------------------

STORED_ORGANIZER = "d14b9f15-d3ef-42f2-aad5-01b86bbbf497"
FULL = BookingRequest.create(
    booking_id="room-42:2026-11-23T09:00",
    organizer_id=STORED_ORGANIZER.upper(),
    subject="Design review – Käse",
    start=datetime(2026, 11, 23, 8, tzinfo=UTC),
    end=datetime(2026, 11, 23, 9, tzinfo=UTC),
    attendees=[
        Attendee(upn="Ada@Contoso.com", user_id=None, role="presenter"),
        Attendee(upn=None, user_id="AAAAAAAA-0000-0000-0000-000000000001", role="attendee"),
    ],
    chat_info=ChatInfo(thread_id="19:abc@thread.v2", message_id="0", reply_chain_message_id=None),
    options={"lobbyBypassSettings": {"scope": "invited"}, "allowedPresenters": "organizer"},
)
PLAIN = BookingRequest.create(booking_id="b-plain", organizer_id=STORED_ORGANIZER)
REQUESTS = {
    "same": FULL,
    "moved": BookingRequest.create(
        booking_id=FULL.booking_id,
        organizer_id=STORED_ORGANIZER,
        subject="Design review – Käse",
        start=datetime(2026, 11, 23, 9, tzinfo=UTC),
        end=datetime(2026, 11, 23, 10, tzinfo=UTC),
    ),
    "pool": BookingRequest.create(booking_id="b-pool", organizer_pool="support", subject="Help"),
    "plain": PLAIN,
    "other options": PLAIN.with_default_options(
        {"allowMeetingChat": "disabled", "allowedPresenters": "organizer"}
    ),
}
CHANGES = {
    "subject": MeetingChange.create(subject="New"),
    "times+attendees": MeetingChange.create(
        start=datetime(2026, 11, 24, 8, tzinfo=UTC),
        end=datetime(2026, 11, 24, 9, tzinfo=UTC),
        attendees=[Attendee(upn="Zed@x.com", user_id=None, role="attendee")],
    ),
    "options": MeetingChange.create(options={"allowRecording": False}),
    "none": MeetingChange.create(),
}

# Captured from the code before (`json.dumps(..., indent=1)`): each record as the store
# held it, its JSON document as that code wrote it back, the 409's fields for each of
# REQUESTS, and the stored fingerprint after each of CHANGES.
CAPTURED = json.loads((Path(__file__).parent / "stored_fingerprints.json").read_text())
STORED: dict[str, str] = CAPTURED["stored"]
REWRITTEN: dict[str, str] = CAPTURED["rewritten"]
DIFFERING = {(name, request): fields for name, request, fields in CAPTURED["differing"]}
CHANGED = {(name, change): text for name, change, text in CAPTURED["changed"]}


@pytest.mark.parametrize("name", list(STORED))
def test_a_stored_record_is_written_back_as_it_was(name):
    record = BookingRecord.from_stored(STORED[name])
    assert record.to_json() == REWRITTEN[name]
    assert BookingRecord.from_json(record.to_json()) == record


@pytest.mark.parametrize(("name", "request_name"), list(DIFFERING))
def test_a_stored_fingerprint_compares_as_it_did(name, request_name):
    stored = BookingRecord.from_stored(STORED[name]).fingerprint
    requested = Fingerprint.of(REQUESTS[request_name])
    assert stored.differing_fields(requested) == DIFFERING[name, request_name]


@pytest.mark.parametrize(("name", "change_name"), list(CHANGED))
def test_a_stored_fingerprint_changes_as_it_did(name, change_name):
    changed = BookingRecord.from_stored(STORED[name]).fingerprint.changed_by(CHANGES[change_name])
    text = json.dumps(changed.to_stored(), sort_keys=True, separators=(",", ":"))
    assert text == CHANGED[name, change_name]


def test_new_fingerprints_are_stored_as_before():
    """What the code before stored for a new booking (`BookingRequest.fingerprint()`)."""
    assert json.loads(REWRITTEN["full, options pending"])["request"] == (
        Fingerprint.of(FULL).to_stored()
    )
    assert json.loads(REWRITTEN["plain, cancelled"])["request"] == (
        Fingerprint.of(PLAIN).to_stored()
    )
    assert json.loads(REWRITTEN["pool"])["request"] == (
        Fingerprint.of(REQUESTS["pool"]).to_stored()
    )


@pytest.mark.parametrize(
    "request_",
    [[1], {"subject": 5}, {"attendees": {}}, {"attendees": [{"upn": "a"}]}, {"chatInfo": "x"}],
)
def test_a_stored_fingerprint_of_the_wrong_shape_is_an_unreadable_record(request_):
    document = json.loads(REWRITTEN["format 1, before pools"]) | {"request": request_}
    with pytest.raises(UnreadableRecord):
        BookingRecord.from_json(json.dumps(document))
