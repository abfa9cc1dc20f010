import pytest
from marshmallow import ValidationError

from service.web.problems import flatten_messages
from service.web.schemas import BookingSchema

pytestmark = pytest.mark.unit

ORGANIZER = "8b081ef6-4792-4def-b2c9-c363a1bf41d5"
SCHEMA = BookingSchema()


def load(**fields):
    return SCHEMA.load({"bookingId": "b-1", "organizerId": ORGANIZER, **fields})


def errors_of(**fields):
    with pytest.raises(ValidationError) as raised:
        load(**fields)
    return flatten_messages(raised.value.messages)


def test_a_minimal_booking_loads():
    booking = load()
    assert booking.booking_id == "b-1"
    assert booking.organizer_id == ORGANIZER
    assert booking.start is None and booking.end is None


def test_times_keep_their_instant_and_graph_precision_is_accepted():
    booking = load(
        startDateTime="2026-11-23T10:00:00+01:00", endDateTime="2026-11-23T09:30:00.1234567Z"
    )
    assert booking.start.isoformat() == "2026-11-23T09:00:00+00:00"
    assert booking.end.isoformat() == "2026-11-23T09:30:00.123456+00:00"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"bookingId": "has space"}, "bookingId"),
        ({"bookingId": "x" * 129}, "bookingId"),
        ({"bookingId": ""}, "bookingId"),
        ({"organizerId": "bob@contoso.com"}, "organizerId"),
        ({"subject": "s" * 256}, "subject"),
        ({"subject": 42}, "subject"),
        ({"startDateTime": "2026-11-23T09:00:00"}, "startDateTime"),  # no offset
        ({"startDateTime": "2026-13-23T09:00:00Z"}, "startDateTime"),
        ({"endDateTime": "2026-11-23T09:00:00Z"}, "endDateTime"),  # end without start
        (
            {"startDateTime": "2026-11-23T10:00:00Z", "endDateTime": "2026-11-23T09:00:00Z"},
            "endDateTime",
        ),
        ({"attendees": [{"role": "attendee"}]}, "attendees.0.upn"),
        ({"attendees": [{"upn": "a@b.c", "role": "boss"}]}, "attendees.0.role"),
        ({"chatInfo": {"thread": "x"}}, "chatInfo.thread"),
        ({"organiserId": ORGANIZER}, "organiserId"),
    ],
)
def test_each_invalid_field_is_named(fields, field):
    assert field in errors_of(**fields)


def test_missing_required_fields_are_named():
    with pytest.raises(ValidationError) as raised:
        SCHEMA.load({})
    assert set(flatten_messages(raised.value.messages)) == {"bookingId", "organizerId"}


def test_end_equal_to_start_is_allowed():
    booking = load(startDateTime="2026-11-23T10:00:00Z", endDateTime="2026-11-23T10:00:00Z")
    assert booking.start == booking.end


@pytest.mark.parametrize(
    "spelling",
    [
        "----8b081ef647924defb2c9c363a1bf41d5",  # uuid.UUID drops hyphens anywhere
        "{8b081ef6-4792-4def-b2c9-c363a1bf41d5}",
        "8b081ef647924defb2c9c363a1bf41d5",
        "urn:uuid:8b081ef6-4792-4def-b2c9-c363a1bf41d5",
        ORGANIZER + "\n",
    ],
)
def test_guids_are_taken_only_in_their_documented_form(spelling):
    assert set(errors_of(organizerId=spelling)) == {"organizerId"}
    assert set(errors_of(attendees=[{"userId": spelling}])) == {"attendees.0.userId"}


def test_upper_case_guids_are_taken_and_lowered():
    assert load(organizerId=ORGANIZER.upper()).organizer_id == ORGANIZER
