import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from service.domain.booking import (
    Attendee,
    BookingRequest,
    external_id,
    graph_time,
)

pytestmark = pytest.mark.unit

NS = uuid.UUID("6f1c1d0e-3a51-4f0c-9d7e-4b1f6f0d2a11")
ORGANIZER = "8B081EF6-4792-4DEF-B2C9-C363A1BF41D5"


def test_external_id_is_uuid5_of_caller_and_booking():
    expected = str(uuid.uuid5(NS, "booking-eu:room-1"))
    assert external_id(NS, "booking-eu", "room-1") == expected
    assert external_id(NS, "booking-eu", "room-1") == expected  # deterministic


def test_external_id_differs_per_caller_booking_and_namespace():
    ids = {
        external_id(NS, "booking-eu", "room-1"),
        external_id(NS, "booking-us", "room-1"),
        external_id(NS, "booking-eu", "room-2"),
        external_id(uuid.uuid4(), "booking-eu", "room-1"),
    }
    assert len(ids) == 4


def test_external_id_cannot_collide_through_colons_in_booking_ids():
    # caller ids cannot contain ':', so "a" + "b:c" differs from any other split
    assert external_id(NS, "a", "b:c") != external_id(NS, "a.b", "c")


def test_graph_time_is_utc_with_seven_fraction_digits():
    moment = datetime(2026, 11, 23, 9, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert graph_time(moment) == "2026-11-23T08:00:00.1234560Z"


def test_graph_body_leaves_out_what_was_not_given_so_graph_defaults_apply():
    request = BookingRequest.create(booking_id="b", organizer_id=ORGANIZER)
    assert request.graph_body("ext") == {"externalId": "ext"}


def test_graph_body_carries_participants_in_graph_shape():
    request = BookingRequest.create(
        booking_id="b",
        organizer_id=ORGANIZER,
        subject="Review",
        attendees=[Attendee(upn="ada@contoso.com", user_id="ID-1", role="presenter")],
    )
    body = request.graph_body("ext")
    assert body["subject"] == "Review"
    assert body["participants"] == {
        "attendees": [
            {"role": "presenter", "upn": "ada@contoso.com", "identity": {"user": {"id": "id-1"}}}
        ]
    }


def test_graph_times_before_year_1000_have_four_digits():
    assert graph_time(datetime(999, 5, 1, 9, tzinfo=UTC)) == "0999-05-01T09:00:00.0000000Z"
    assert graph_time(datetime(2026, 11, 23, 9, 0, 0, 123456, tzinfo=UTC)) == (
        "2026-11-23T09:00:00.1234560Z"
    )
