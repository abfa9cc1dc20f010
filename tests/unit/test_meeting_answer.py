"""A meeting answer is the record's own bytes (service.domain.record `answer`), not Flask's
serialisation of MeetingSchema's dump: the two must be byte for byte the same."""

from __future__ import annotations

import pytest
from flask import Flask, jsonify

from service.domain.record import BookingRecord
from service.web.schemas import MeetingSchema

pytestmark = pytest.mark.unit

ORGANIZER = "5b2a7c3e-1f4d-4e8a-9c6b-0d1e2f3a4b5c"
MEETING = {
    "id": "MSo1N2Y5ZGFjYy03MWJmLTQ3NDMtYjQxMy01M2EdFGkdRWHJlQ",
    "externalId": "6a9d2c1e-7b3f-5e8a-9c6b-0d1e2f3a4b5c",
    "joinWebUrl": "https://teams.microsoft.com/l/meetup-join/19%3ameeting_x%40thread.v2/0",
    "subject": 'Réunion \u2013 Q4 planning 会议 \U0001f4c5 "quoted" \\ back',
    "startDateTime": "2026-12-01T09:00:00.0000000Z",
    "endDateTime": "2026-12-01T10:00:00.0000000Z",
    "creationDateTime": "2026-11-30T18:00:00.1234567Z",
    "isEntryExitAnnounced": True,
    "allowedPresenters": "organizer",
    "lobbyBypassSettings": {"scope": "organization", "isDialInBypassEnabled": False},
    "joinMeetingIdSettings": {
        "joinMeetingId": "1234567890",
        "passcode": "aB3dE5",
        "isPasscodeRequired": True,
    },
    "audioConferencing": None,
    "participants": {
        "organizer": {
            "upn": "o@contoso.example",
            "role": "presenter",
            "identity": {"user": {"id": ORGANIZER}},
        },
        "attendees": [{"upn": "ä@contoso.example", "role": "attendee"}],
    },
    "chatInfo": {
        "threadId": "19:meeting_x@thread.v2",
        "messageId": "0",
        "replyChainMessageId": None,
    },
    "recordAutomatically": False,
    "watermarkProtection": {"isEnabledForContentSharing": False, "isEnabledForVideo": False},
    "broadcastSettings": {
        "allowedAudience": "everyone",
        "isRecordingEnabled": False,
        "count": 12.5,
    },
}


def records() -> list[BookingRecord]:
    active = BookingRecord.provisioned(
        booking_id="booking/with:odd chars",
        generation=2,
        external_id="6a9d2c1e-7b3f-5e8a-9c6b-0d1e2f3a4b5c",
        organizer_id=ORGANIZER,
        request={"organizerId": ORGANIZER, "options": {"allowedPresenters": "everyone"}},
        meeting=MEETING,
        graph_request_id="r-1",
    )
    sparse = BookingRecord.provisioned(
        booking_id="b",
        generation=0,
        external_id="e",
        organizer_id=ORGANIZER,
        request={"organizerId": ORGANIZER},
        meeting={"id": "m", "joinWebUrl": None},
        graph_request_id=None,
    )
    return [active, sparse, active.options_applied(None, None), active.cancelled()]


@pytest.mark.parametrize("record", records(), ids=["pending", "sparse", "applied", "cancelled"])
def test_the_answer_bytes_are_what_flask_would_write_for_the_documented_schema(record):
    app = Flask(__name__)
    with app.app_context():
        expected = jsonify(MeetingSchema().dump(record.view())).get_data()
    assert record.answer == expected
    # The schema's dump changes nothing, so the bytes are what the document describes.
    assert MeetingSchema().dump(record.view()) == record.view()
