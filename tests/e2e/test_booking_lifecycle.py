"""A booking's whole life against the real stack: reschedule (PATCH), cancel (DELETE),
re-book, and what Graph is asked each time."""

from __future__ import annotations

import concurrent.futures
import uuid

import pytest

from service.storage import keys
from tests.support.contract import validator
from tests.support.factories import booking
from tests.support.problems import assert_problem
from tests.support.stack import Client

pytestmark = pytest.mark.e2e

MONDAY = {"startDateTime": "2026-11-23T09:00:00Z", "endDateTime": "2026-11-23T10:00:00Z"}
TUESDAY = {"startDateTime": "2026-11-24T14:00:00+01:00", "endDateTime": "2026-11-24T15:30:00+01:00"}


def graph_operations(emulator, meeting_id: str, operation: str) -> list[dict]:
    return [r for r in emulator.operations_for(meeting_id) if r["operation"] == operation]


def test_the_lifecycle_walk(client, emulator, organizer):
    """create, replay, reschedule, replay new, conflicting old, cancel, 404, re-book, replay"""
    original = booking(organizer, subject="Consultation", **MONDAY)
    booking_id = original["bookingId"]

    created = client.post(original)
    assert created.status_code == 201, created.text
    first = created.json()

    replay = client.post(original)
    assert (replay.status_code, replay.headers.get("Idempotent-Replayed")) == (200, "true")

    moved = client.patch(booking_id, TUESDAY)
    assert moved.status_code == 200, moved.text
    after_move = moved.json()
    assert after_move["meetingId"] == first["meetingId"]  # same meeting, same join link
    assert after_move["joinWebUrl"] == first["joinWebUrl"]
    assert after_move["startDateTime"].startswith("2026-11-24T13:00:00")
    assert after_move["endDateTime"].startswith("2026-11-24T14:30:00")
    assert emulator.meeting(first["meetingId"])["startDateTime"].startswith("2026-11-24T13:00")

    rescheduled = {**original, **TUESDAY}
    replay_new = client.post(rescheduled)
    assert (replay_new.status_code, replay_new.headers.get("Idempotent-Replayed")) == (200, "true")
    assert replay_new.json()["startDateTime"] == after_move["startDateTime"]

    old = client.post(original)
    problem = assert_problem(old, 409, "booking-conflict")
    assert problem["differingFields"] == ["startDateTime", "endDateTime"]

    cancelled = client.delete(booking_id)
    assert cancelled.status_code == 204, cancelled.text
    assert cancelled.content == b""
    assert emulator.meeting(first["meetingId"]) is None  # gone at Graph

    assert_problem(client.get(booking_id), 404, "booking-cancelled")
    assert_problem(client.delete(booking_id), 404, "booking-cancelled")
    assert len(graph_operations(emulator, first["meetingId"], "deleteMeeting")) == 1

    rebooked = client.post(rescheduled)
    assert rebooked.status_code == 201, rebooked.text
    second = rebooked.json()
    assert second["meetingId"] != first["meetingId"]
    assert second["externalId"] != first["externalId"]  # a new generation

    replay_rebooked = client.post(rescheduled)
    assert replay_rebooked.headers.get("Idempotent-Replayed") == "true"
    assert replay_rebooked.json()["meetingId"] == second["meetingId"]
    assert client.get(booking_id).json()["meetingId"] == second["meetingId"]

    # One meeting per generation was ever created, and only the new one is alive.
    assert emulator.meetings_for(first["externalId"]) == {"created": 1, "calls": 1}
    assert emulator.meetings_for(second["externalId"]) == {"created": 1, "calls": 1}
    assert emulator.live_meetings_for(first["externalId"]) == 0
    assert emulator.live_meetings_for(second["externalId"]) == 1


def test_patch_changes_subject_and_replaces_the_attendee_list(client, emulator, organizer):
    body = booking(organizer, attendees=[{"upn": "ada@contoso.com"}, {"upn": "bob@contoso.com"}])
    meeting_id = client.post(body).json()["meetingId"]

    changed = client.patch(
        body["bookingId"],
        {"subject": "Moved online", "attendees": [{"upn": "Cy@Contoso.com", "role": "presenter"}]},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["subject"] == "Moved online"
    stored = emulator.meeting(meeting_id)
    assert [a["upn"] for a in stored["participants"]["attendees"]] == ["cy@contoso.com"]
    [patch] = graph_operations(emulator, meeting_id, "patchMeeting")
    assert patch["body"]["participants"]["attendees"] == [
        {"role": "presenter", "upn": "cy@contoso.com"}
    ]
    assert "startDateTime" not in patch["body"]  # untouched fields are not sent
    # The new attendee list is what a POST must now match.
    replay = client.post(
        {
            **body,
            "subject": "Moved online",
            "attendees": [{"upn": "cy@contoso.com", "role": "presenter"}],
        }
    )
    assert replay.headers.get("Idempotent-Replayed") == "true", replay.text


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"startDateTime": "2026-11-24T09:00:00Z"}, "endDateTime"),
        ({"endDateTime": "2026-11-24T09:00:00Z"}, "startDateTime"),
        (
            {"startDateTime": "2026-11-24T10:00:00Z", "endDateTime": "2026-11-24T10:00:00Z"},
            "endDateTime",
        ),
        ({}, "body"),
        ({"organizerId": "8b081ef6-4792-4def-b2c9-c363a1bf41d5"}, "organizerId"),
        ({"subject": "x", "colour": "red"}, "colour"),
    ],
    ids=["start-only", "end-only", "end-not-after-start", "nothing", "organizer", "unknown"],
)
def test_an_invalid_patch_is_400_and_graph_is_not_called(
    client, emulator, organizer, change, field
):
    body = booking(organizer)
    meeting_id = client.post(body).json()["meetingId"]
    problem = assert_problem(client.patch(body["bookingId"], change), 400, "invalid-request")
    assert field in problem["errors"], problem
    assert graph_operations(emulator, meeting_id, "patchMeeting") == []


def test_patch_and_delete_of_an_unknown_booking_are_404(client):
    assert_problem(client.patch("never-booked", {"subject": "x"}), 404, "booking-not-found")
    assert_problem(client.delete("never-booked"), 404, "booking-not-found")
    assert_problem(client.patch("bad id!", {"subject": "x"}), 400, "invalid-request")


def test_concurrent_patches_are_serialised(client, emulator, organizer):
    """Two changes of different fields at once: both end up in the meeting and in what a
    POST must match. Without the booking lock, each would store its own copy of the old
    record and one change would be lost from it."""
    body = booking(organizer, subject="Before", **MONDAY)
    booking_id = body["bookingId"]
    meeting_id = client.post(body).json()["meetingId"]
    emulator.add_fault(target="patchMeeting", latencyMs=400, organizerId=organizer, count=2)

    changes = [{"subject": "After"}, TUESDAY]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(
            pool.map(lambda c: Client(client.base_url, client.key).patch(booking_id, c), changes)
        )
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]

    final = client.get(booking_id).json()
    assert final["subject"] == "After"
    assert final["startDateTime"].startswith("2026-11-24T13:00:00")
    both = client.post({**body, "subject": "After", **TUESDAY})
    assert both.headers.get("Idempotent-Replayed") == "true", both.text
    assert len(graph_operations(emulator, meeting_id, "patchMeeting")) == 2


def test_patch_is_retried_through_throttling(client, emulator, organizer):
    body = booking(organizer)
    meeting_id = client.post(body).json()["meetingId"]
    emulator.add_fault(
        target="patchMeeting", status=429, retryAfter="1", organizerId=organizer, count=1
    )
    answer = client.patch(body["bookingId"], {"subject": "Retried"})
    assert answer.status_code == 200, answer.text
    statuses = [r["status"] for r in graph_operations(emulator, meeting_id, "patchMeeting")]
    assert statuses == [429, 200]


def test_a_graph_error_on_patch_is_mapped_and_changes_nothing(client, emulator, organizer):
    body = booking(organizer, subject="Kept")
    client.post(body)
    emulator.add_fault(target="patchMeeting", status=403, organizerId=organizer, count=1)
    assert_problem(client.patch(body["bookingId"], {"subject": "Lost"}), 502, "graph-access-denied")
    assert client.get(body["bookingId"]).json()["subject"] == "Kept"
    assert client.post(body).headers.get("Idempotent-Replayed") == "true"


@pytest.mark.parametrize(
    "fault",
    [{"status": 404}, {"status": 504, "afterProcessing": True}],
    ids=["already-gone", "answer-lost-then-404"],
)
def test_delete_counts_graph_404_as_done(client, emulator, organizer, fault):
    body = booking(organizer)
    meeting_id = client.post(body).json()["meetingId"]
    emulator.add_fault(target="deleteMeeting", organizerId=organizer, count=1, **fault)
    answer = client.delete(body["bookingId"])
    assert answer.status_code == 204, answer.text
    assert_problem(client.get(body["bookingId"]), 404, "booking-cancelled")
    if fault.get("afterProcessing"):
        assert emulator.meeting(meeting_id) is None
        statuses = [r["status"] for r in graph_operations(emulator, meeting_id, "deleteMeeting")]
        assert statuses == [504, 404]


def test_rebooking_after_the_store_lost_the_cancellation(client, emulator, organizer, redis_server):
    """Documented limit: the generation lives in the store. If the tombstone is lost, a new
    POST uses generation 0 again, the cancelled meeting's externalId. The emulator frees
    a deleted meeting's externalId (real Graph does not document what it does), so a new
    meeting is created; the cancelled one does not come back."""
    body = booking(organizer)
    first = client.post(body).json()
    assert client.delete(body["bookingId"]).status_code == 204
    redis_server.client().delete(keys.booking("booking-eu", body["bookingId"]))

    again = client.post(body)
    assert again.status_code == 201, again.text
    assert again.json()["externalId"] == first["externalId"]
    assert again.json()["meetingId"] != first["meetingId"]
    assert emulator.meeting(first["meetingId"]) is None


def test_other_callers_cannot_touch_a_booking(client, other_client, organizer):
    body = booking(organizer)
    client.post(body)
    assert_problem(
        other_client.patch(body["bookingId"], {"subject": "x"}), 404, "booking-not-found"
    )
    assert_problem(other_client.delete(body["bookingId"]), 404, "booking-not-found")
    assert client.get(body["bookingId"]).status_code == 200


def test_patch_bodies_and_answers_validate_against_the_contract(client, emulator, organizer):
    """The contract's PATCH request body is the onlineMeeting schema itself."""
    body = booking(organizer, subject="Contract")
    meeting_id = client.post(body).json()["meetingId"]
    answer = client.patch(
        body["bookingId"],
        {"subject": "Checked", **TUESDAY, "attendees": [{"userId": str(uuid.uuid4())}]},
    )
    assert answer.status_code == 200, answer.text
    meeting = validator("onlineMeeting")
    [patch] = graph_operations(emulator, meeting_id, "patchMeeting")
    meeting.validate(patch["body"])
    meeting.validate(answer.json()["onlineMeeting"])
    assert set(patch["body"]) == {"subject", "startDateTime", "endDateTime", "participants"}
