"""The booking API end to end: gunicorn (2 workers) → Redis → MSAL → the Graph emulator."""

from __future__ import annotations

import concurrent.futures
import uuid

import pytest

from tests.support.contract import validator
from tests.support.factories import booking

pytestmark = pytest.mark.e2e


def test_create_then_replay_then_read(client, emulator, organizer):
    body = booking(organizer, subject="Design review")
    created = client.post(body)
    assert created.status_code == 201, created.text
    meeting = created.json()
    assert created.headers["Location"] == f"/v1/meetings/{body['bookingId']}"
    assert "Idempotent-Replayed" not in created.headers
    assert meeting["bookingId"] == body["bookingId"]
    assert meeting["organizerId"] == organizer
    assert meeting["subject"] == "Design review"
    assert meeting["joinWebUrl"].startswith("https://teams.microsoft.com/")
    assert meeting["meetingId"] == meeting["onlineMeeting"]["id"]
    assert meeting["onlineMeeting"]["externalId"] == meeting["externalId"]
    validator("onlineMeeting").validate(meeting["onlineMeeting"])

    replay = client.post(body)
    assert replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.headers["Location"] == created.headers["Location"]
    assert replay.json() == meeting

    read = client.get(body["bookingId"])
    assert read.status_code == 200
    assert read.json() == meeting

    assert emulator.meetings_for(meeting["externalId"]) == {"created": 1, "calls": 1}


def test_graph_200_when_the_store_lost_the_booking(client, emulator, organizer, redis_server):
    body = booking(organizer)
    first = client.post(body)
    assert first.status_code == 201
    redis_server.client().flushdb()

    again = client.post(body)
    assert again.status_code == 200
    assert "Idempotent-Replayed" not in again.headers  # Graph answered, not the store
    assert again.json()["meetingId"] == first.json()["meetingId"]
    assert emulator.meetings_for(first.json()["externalId"]) == {"created": 1, "calls": 2}


def test_graph_time_defaults_apply_when_no_times_are_given(client, organizer):
    meeting = client.post(booking(organizer)).json()
    start, end = meeting["startDateTime"], meeting["endDateTime"]
    assert start and end and start < end


def test_times_are_sent_to_graph_in_utc(client, emulator, organizer):
    body = booking(
        organizer,
        startDateTime="2026-11-23T10:00:00+01:00",
        endDateTime="2026-11-23T11:30:00+01:00",
    )
    meeting = client.post(body).json()
    assert meeting["startDateTime"].startswith("2026-11-23T09:00:00")
    assert meeting["endDateTime"].startswith("2026-11-23T10:30:00")
    sent = emulator.requests_for(meeting["externalId"])[0]["body"]
    assert sent["startDateTime"] == "2026-11-23T09:00:00.0000000Z"


def test_the_same_booking_id_of_two_callers_makes_two_meetings(client, other_client, organizer):
    body = booking(organizer)
    mine = client.post(body)
    theirs = other_client.post(body)
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["externalId"] != theirs.json()["externalId"]
    assert mine.json()["meetingId"] != theirs.json()["meetingId"]


def test_callers_never_see_each_others_bookings(client, other_client, organizer):
    body = booking(organizer)
    assert client.post(body).status_code == 201
    hidden = other_client.get(body["bookingId"])
    assert hidden.status_code == 404
    assert hidden.headers["Content-Type"] == "application/problem+json"


def test_fifty_simultaneous_identical_posts_make_one_meeting(client, emulator, organizer):
    body = booking(organizer, subject="Rush hour")
    # A slow Graph keeps the first request in flight while the others arrive.
    emulator.add_fault(target="createOrGet", latencyMs=500, organizerId=organizer, count=1)

    def post(_):
        return client_for_thread(client).post(body)

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(post, range(50)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 49 + [201], [a.text for a in answers if a.status_code >= 300]
    assert len({a.json()["meetingId"] for a in answers}) == 1
    external_id = answers[0].json()["externalId"]
    assert emulator.meetings_for(external_id) == {"created": 1, "calls": 1}


def client_for_thread(client):
    """requests.Session is not thread-safe: one per thread."""
    from tests.support.stack import Client

    return Client(client.base_url, client.key)


def test_every_request_body_sent_to_graph_validates_against_the_contract(
    client, emulator, organizer
):
    bodies = [
        booking(organizer),
        booking(organizer, subject="S", startDateTime="2026-11-23T09:00:00Z"),
        booking(
            organizer,
            startDateTime="2026-11-23T09:00:00Z",
            endDateTime="2026-11-23T10:00:00Z",
            attendees=[
                {"upn": "ada@contoso.com", "role": "presenter"},
                {"userId": str(uuid.uuid4())},
                {"upn": "bob@contoso.com", "userId": str(uuid.uuid4()), "role": "coorganizer"},
            ],
        ),
    ]
    external_ids = [client.post(b).json()["externalId"] for b in bodies]
    request_schema = validator("createOrGetRequestBody")
    sent = [r for e in external_ids for r in emulator.requests_for(e)]
    assert len(sent) == 3
    for record in sent:
        request_schema.validate(record["body"])


def test_request_id_is_echoed_or_generated(client, organizer):
    given = client.post(booking(organizer), headers={"X-Request-ID": "trace-123"})
    assert given.headers["X-Request-ID"] == "trace-123"
    generated = client.get("nothing-here")
    assert uuid.UUID(generated.headers["X-Request-ID"])
    assert generated.json()["requestId"] == generated.headers["X-Request-ID"]
