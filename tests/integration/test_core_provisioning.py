"""Provisioning's branches driven through `Provisioner.provision`, against the real Redis
and Graph emulator: replay, each field of a 409, options left pending and applied once,
Redis down before or after Graph, organizer pools and the monthly quota. What is checked
is what a caller sees (the outcome, the record's view, the error) and what Graph saw (the
emulator's counts)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from local_stack.processes import free_port
from local_stack.redis_server import RedisServer

from service.domain.booking import Attendee, ChatInfo
from service.domain.callers import Caller
from service.foundation.errors import (
    BookingConflict,
    GraphUnavailable,
    QuotaExhausted,
    StoreUnavailable,
)
from service.wiring import Services
from tests.integration.conftest import OPTIONS_TO_PATCH
from tests.support.emulator import EmulatorHandle, EmulatorSetup

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ADA = Attendee(upn="ada@contoso.example", user_id=None, role="attendee")


def test_a_repeat_is_answered_from_the_store_with_one_graph_call(
    services, caller, organizer, new_request, emulator, external_id_of
):
    request = new_request(
        organizer_id=organizer,
        subject="Replay",
        start=START,
        end=START + timedelta(hours=1),
        attendees=[ADA],
    )
    first = services.provisioner.provision(caller, request)
    assert (first.created, first.replayed) == (True, False)
    assert first.record.external_id == external_id_of(request.booking_id)

    again = services.provisioner.provision(caller, request)
    assert (again.created, again.replayed) == (False, True)
    assert again.record.view() == first.record.view()
    # The same booking spelled otherwise (another offset, case) means the same meeting.
    paris = timezone(timedelta(hours=1))
    respelled = new_request(
        booking_id=request.booking_id,
        organizer_id=organizer.upper(),
        subject="Replay",
        start=START.astimezone(paris),
        end=(START + timedelta(hours=1)).astimezone(paris),
        attendees=[Attendee(upn="ADA@contoso.example", user_id=None, role="attendee")],
    )
    assert services.provisioner.provision(caller, respelled).replayed
    assert emulator.meetings_for(first.record.external_id) == {"created": 1, "calls": 1}


# Each field of the fingerprint: the first request's fields, and what the repeat changes.
CONFLICTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "organizerId": ({}, {"organizer_id": "other"}),
    "organizerPool": ({"organizer_id": None, "organizer_pool": "east"}, {"organizer_pool": "west"}),
    "subject": ({"subject": "Design review"}, {"subject": "Code review"}),
    "startDateTime": (
        {"start": START, "end": START + timedelta(hours=1)},
        {"start": START + timedelta(minutes=30)},
    ),
    "endDateTime": (
        {"start": START, "end": START + timedelta(hours=1)},
        {"end": START + timedelta(hours=2)},
    ),
    "attendees": ({"attendees": [ADA]}, {"attendees": [Attendee(ADA.upn, None, "presenter")]}),
    "chatInfo": ({}, {"chat_info": ChatInfo("19:meeting@thread.v2", "0", None)}),
    "options.allowMeetingChat": (
        {"options": OPTIONS_TO_PATCH},
        {"options": {"allowMeetingChat": "limited"}},
    ),
}


@pytest.mark.parametrize("field", list(CONFLICTS))
def test_a_repeat_with_other_details_is_a_conflict_naming_the_field(
    field, services, caller, organizer, new_request, emulator, setup: EmulatorSetup
):
    first_fields, changed = CONFLICTS[field]
    first_fields = {"organizer_id": organizer, **first_fields}
    if changed.get("organizer_id") == "other":
        changed = {"organizer_id": setup.user_with_policy}
    first = services.provisioner.provision(caller, new_request(**first_fields))
    booking_id = first.record.booking_id

    with pytest.raises(BookingConflict) as refused:
        services.provisioner.provision(
            caller, new_request(booking_id=booking_id, **{**first_fields, **changed})
        )
    assert refused.value.status == 409
    assert refused.value.extensions["differingFields"] == [field]
    # Refused without calling Graph; the booking keeps its meeting.
    assert emulator.meetings_for(first.record.external_id) == {"created": 1, "calls": 1}
    assert services.provisioner.lookup(caller, booking_id).view() == first.record.view()


def test_options_graph_did_not_take_are_pending_and_the_next_request_applies_them_once(
    services, caller, organizer, new_request, emulator
):
    # A Retry-After past the budget: the PATCH fails at once.
    emulator.add_fault(target="patchMeeting", status=503, retryAfter="30", count=1)
    request = new_request(organizer_id=organizer, options=OPTIONS_TO_PATCH)
    with pytest.raises(GraphUnavailable) as failed:
        services.provisioner.provision(caller, request)
    assert failed.value.status == 503

    pending = services.provisioner.lookup(caller, request.booking_id)
    assert pending.view()["optionsPending"] is True
    assert pending.view()["options"]["allowMeetingChat"] == "enabled"
    meeting_id = pending.meeting_id

    applied = services.provisioner.provision(caller, request)
    assert (applied.created, applied.replayed) == (False, False)
    assert applied.record.meeting_id == meeting_id
    assert applied.record.view()["optionsPending"] is False
    assert applied.record.view()["options"]["allowMeetingChat"] == "disabled"

    replayed = services.provisioner.provision(caller, request)
    assert replayed.replayed
    assert replayed.record.view() == applied.record.view()
    # One createOrGet in all; of the two PATCHes, the failed one and the one that applied.
    assert emulator.meetings_for(pending.external_id) == {"created": 1, "calls": 1}
    patches = [op["status"] for op in emulator.operations_for(meeting_id)]
    assert patches == [503, 200]
    assert emulator.meeting(meeting_id)["allowMeetingChat"] == "disabled"


@pytest.fixture(scope="module")
def without_redis(make_services: Callable[..., Services]) -> Services:
    """A worker whose Redis is down from the start (nothing listens at its address)."""
    return make_services(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")


def test_with_redis_down_before_graph_the_meeting_comes_from_graph_directly(
    without_redis, caller, organizer, new_request, emulator, external_id_of
):
    request = new_request(organizer_id=organizer, subject="Degraded")
    first = without_redis.provisioner.provision(caller, request)
    assert (first.created, first.replayed) == (True, False)
    assert first.record.external_id == external_id_of(request.booking_id)
    assert first.record.view()["subject"] == "Degraded"

    # Nothing to replay from: Graph again, on the same externalId, the same meeting.
    again = without_redis.provisioner.provision(caller, request)
    assert (again.created, again.replayed) == (False, False)
    assert again.record.meeting_id == first.record.meeting_id
    assert emulator.meetings_for(first.record.external_id) == {"created": 1, "calls": 2}


def test_with_redis_down_a_pool_booking_is_refused_without_calling_graph(
    without_redis, caller, new_request, emulator, external_id_of
):
    request = new_request(organizer_pool="rooms")
    with pytest.raises(StoreUnavailable):
        without_redis.provisioner.provision(caller, request)
    assert emulator.meetings_for(external_id_of(request.booking_id))["calls"] == 0


def test_with_redis_stopping_after_graph_the_caller_still_gets_the_meeting(
    make_services,
    caller,
    organizer,
    new_request,
    emulator: EmulatorHandle,
    external_id_of,
    inside_options_patch,
    tmp_path: Path,
):
    redis_server = RedisServer(tmp_path / "redis").start()
    try:
        services = make_services(REDIS_URL=redis_server.url)
        request = new_request(organizer_id=organizer, options=OPTIONS_TO_PATCH)
        ext_id = external_id_of(request.booking_id)
        emulator.add_fault(target="patchMeeting", latencyMs=500, count=1)
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            provisioning = pool.submit(services.provisioner.provision, caller, request)
            inside_options_patch(ext_id)
            redis_server.stop()  # before the record can be stored
            first = provisioning.result(timeout=10)
        assert (first.created, first.replayed) == (True, False)
        assert first.record.view()["options"]["allowMeetingChat"] == "disabled"

        # Redis is back, empty: the next request asks Graph again and gets the same meeting,
        # whose options are in effect (no PATCH), and stores it; the one after replays.
        redis_server = RedisServer(redis_server.directory, port=redis_server.port).start()
        again = services.provisioner.provision(caller, request)
        assert (again.created, again.replayed) == (False, False)
        assert again.record.meeting_id == first.record.meeting_id
        assert services.provisioner.provision(caller, request).replayed
        assert emulator.meetings_for(ext_id) == {"created": 1, "calls": 2}
        assert len(emulator.operations_for(first.record.meeting_id)) == 1
    finally:
        redis_server.stop()


def test_a_pool_booking_gets_the_least_used_member_and_keeps_it(
    services, caller: Caller, pools, new_request
):
    first_member, second_member = pools["rooms"]
    services.provisioner.provision(caller, new_request(organizer_id=first_member))

    pooled = new_request(organizer_pool="rooms")
    chosen = services.provisioner.provision(caller, pooled)
    assert chosen.created
    assert chosen.record.organizer_id == second_member

    # The second member is now the busier one; the booking stays with it all the same.
    for _ in range(2):
        services.provisioner.provision(caller, new_request(organizer_id=second_member))
    replayed = services.provisioner.provision(caller, pooled)
    assert replayed.replayed
    assert replayed.record.organizer_id == second_member
    assert services.quota.usage(second_member).created == 3
    assert (
        services.provisioner.provision(caller, new_request(organizer_pool="rooms"))
    ).record.organizer_id == first_member


def test_an_organizer_at_its_monthly_limit_is_refused_before_graph(
    make_services, caller, organizer, new_request, emulator, external_id_of
):
    services = make_services(ORGANIZER_MONTHLY_LIMIT="1")
    first = new_request(organizer_id=organizer)
    assert services.provisioner.provision(caller, first).created

    second = new_request(organizer_id=organizer)
    with pytest.raises(QuotaExhausted) as refused:
        services.provisioner.provision(caller, second)
    assert refused.value.status == 429
    assert refused.value.extensions["organizerId"] == organizer
    assert refused.value.extensions["limit"] == refused.value.extensions["created"] == 1
    assert refused.value.headers["Retry-After"] == str(
        refused.value.extensions["retryAfterSeconds"]
    )
    assert emulator.meetings_for(external_id_of(second.booking_id))["calls"] == 0
    # The booking that has its meeting still replays.
    assert services.provisioner.provision(caller, first).replayed
