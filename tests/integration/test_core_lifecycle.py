"""After provisioning, through the lifecycle's public methods: reschedule (`PATCH`) and
cancel (`DELETE`), and a booking provisioned again after its cancel (a new generation: a
new externalId, so a new meeting). Against the real Redis and Graph emulator; what is
checked is what a caller sees and what Graph saw."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from local_stack.processes import free_port

from service.domain.booking import BookingRequest, MeetingChange
from service.foundation.errors import (
    BookingCancelled,
    BookingConflict,
    BookingNotFound,
    StoreUnavailable,
)
from service.wiring import Services
from tests.integration.conftest import OPTIONS_TO_PATCH

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)


def test_a_cancelled_booking_booked_again_gets_a_new_generation_and_meeting(
    services, caller, organizer, new_request, emulator, external_id_of
):
    request = new_request(organizer_id=organizer, subject="Generations")
    first = services.provisioner.provision(caller, request).record
    assert first.external_id == external_id_of(request.booking_id, 0)

    services.lifecycle.cancel(caller, request.booking_id)
    assert emulator.meeting(first.meeting_id) is None  # deleted at Graph
    with pytest.raises(BookingCancelled) as gone:
        services.provisioner.lookup(caller, request.booking_id)
    assert gone.value.status == 404
    with pytest.raises(BookingCancelled):
        services.lifecycle.cancel(caller, request.booking_id)  # no second DELETE

    again = services.provisioner.provision(caller, request)
    assert (again.created, again.replayed) == (True, False)
    assert again.record.external_id == external_id_of(request.booking_id, 1)
    assert again.record.meeting_id != first.meeting_id
    replayed = services.provisioner.provision(caller, request)
    assert replayed.replayed
    assert replayed.record.view() == again.record.view()

    services.lifecycle.cancel(caller, request.booking_id)
    third = services.provisioner.provision(caller, request).record
    assert third.external_id == external_id_of(request.booking_id, 2)
    # One meeting per generation, each from one createOrGet; only the last one is live.
    generations = [external_id_of(request.booking_id, g) for g in range(3)]
    for ext_id in generations:
        assert emulator.meetings_for(ext_id) == {"created": 1, "calls": 1}
    assert [emulator.live_meetings_for(ext_id) for ext_id in generations] == [0, 0, 1]
    deletes = [
        op for op in emulator.operations_for(first.meeting_id) if op["operation"] == "deleteMeeting"
    ]
    assert len(deletes) == 1


def test_a_cancel_closes_the_lobby_before_it_deletes_the_meeting(
    services, caller, organizer, new_request, emulator
):
    record = services.provisioner.provision(caller, new_request(organizer_id=organizer)).record
    services.lifecycle.cancel(caller, record.booking_id)
    operations = emulator.operations_for(record.meeting_id)
    assert [op["operation"] for op in operations] == ["patchMeeting", "deleteMeeting"]
    assert operations[0]["body"]["lobbyBypassSettings"]["scope"] == "organizer"
    assert operations[0]["body"]["allowedPresenters"] == "organizer"


def test_a_reschedule_changes_the_meeting_and_what_a_repeat_must_match(
    services, caller, organizer, new_request, emulator
):
    before = {"organizer_id": organizer, "subject": "Before", "start": START}
    before["end"] = START + timedelta(hours=1)
    record = services.provisioner.provision(caller, new_request(**before)).record
    moved = {"subject": "After", "start": START + timedelta(days=1)}
    moved["end"] = moved["start"] + timedelta(hours=1)

    changed = services.lifecycle.reschedule(
        caller, record.booking_id, MeetingChange.create(**moved)
    )
    assert changed.meeting_id == record.meeting_id
    assert changed.view()["subject"] == "After"
    assert changed.view()["startDateTime"].startswith("2026-11-25T14:00:00")
    assert emulator.meeting(record.meeting_id)["subject"] == "After"
    assert services.provisioner.lookup(caller, record.booking_id).view() == changed.view()

    after = {**before, **moved}
    replayed = services.provisioner.provision(
        caller, new_request(booking_id=record.booking_id, **after)
    )
    assert replayed.replayed
    with pytest.raises(BookingConflict) as refused:
        services.provisioner.provision(caller, new_request(booking_id=record.booking_id, **before))
    assert refused.value.extensions["differingFields"] == [
        "subject",
        "startDateTime",
        "endDateTime",
    ]
    assert emulator.meetings_for(record.external_id) == {"created": 1, "calls": 1}


def test_a_reschedule_to_options_the_meeting_has_sends_nothing_to_graph(
    services, caller, organizer, new_request, emulator
):
    record = services.provisioner.provision(caller, new_request(organizer_id=organizer)).record
    unchanged = MeetingChange.create(options={"allowMeetingChat": "enabled"})  # Teams' default
    services.lifecycle.reschedule(caller, record.booking_id, unchanged)
    assert emulator.operations_for(record.meeting_id) == []
    # The booking now asks for that option: a repeat naming it replays.
    repeat = new_request(
        booking_id=record.booking_id,
        organizer_id=organizer,
        options={"allowMeetingChat": "enabled"},
    )
    assert services.provisioner.provision(caller, repeat).replayed


def test_an_unknown_booking_cannot_be_rescheduled_or_cancelled(services, caller):
    with pytest.raises(BookingNotFound) as unknown:
        services.lifecycle.reschedule(
            caller, "core-never-booked", MeetingChange.create(subject="x")
        )
    assert type(unknown.value) is BookingNotFound
    assert unknown.value.status == 404
    with pytest.raises(BookingNotFound) as unknown:
        services.lifecycle.cancel(caller, "core-never-booked")
    assert type(unknown.value) is BookingNotFound


def test_a_cancel_waits_for_the_provisioning_that_holds_the_booking(
    services,
    caller,
    organizer,
    new_request: Callable[..., BookingRequest],
    emulator,
    external_id_of,
    inside_options_patch,
):
    request = new_request(organizer_id=organizer, options=OPTIONS_TO_PATCH)
    emulator.add_fault(target="patchMeeting", latencyMs=800, count=1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        holding = pool.submit(services.provisioner.provision, caller, request)
        inside_options_patch(external_id_of(request.booking_id))
        services.lifecycle.cancel(caller, request.booking_id)
        provisioned = holding.result(timeout=10).record
    # The cancel saw the stored meeting (not a 404) and deleted it.
    assert emulator.meeting(provisioned.meeting_id) is None
    with pytest.raises(BookingCancelled):
        services.provisioner.lookup(caller, request.booking_id)


def test_without_redis_a_cancel_is_refused_and_the_meeting_kept(
    services, make_services: Callable[..., Services], caller, organizer, new_request, emulator
):
    record = services.provisioner.provision(caller, new_request(organizer_id=organizer)).record
    without_redis = make_services(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreUnavailable) as refused:
        without_redis.lifecycle.cancel(caller, record.booking_id)
    assert refused.value.status == 503
    assert emulator.operations_for(record.meeting_id) == []
    assert emulator.meeting(record.meeting_id) is not None
