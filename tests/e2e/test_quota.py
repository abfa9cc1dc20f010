"""Organizer monthly quota (Graph allows 2,000 meetings per organizer per month) and
organizer pools, against the real stack."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from tests.support.factories import booking
from tests.support.metrics import scrape, value
from tests.support.problems import assert_problem
from tests.support.stack import Client

pytestmark = pytest.mark.e2e

LIMIT = 2


def pool_booking(pool: str) -> dict:
    return {"bookingId": f"b-{uuid.uuid4()}", "organizerPool": pool}


def new_organizer(emulator, setup) -> str:
    user_id = str(uuid.uuid4())
    emulator.set_user(setup.tenant_id, user_id, access_policy=True)
    return user_id


@pytest.fixture
def pools(emulator, setup, tmp_path):
    members = {"rooms": [new_organizer(emulator, setup) for _ in range(2)]}
    path = tmp_path / "pools.json"
    path.write_text(json.dumps({"pools": members}))
    return path, members


@pytest.fixture
def quota_service(start_service, pools):
    path, _ = pools
    return start_service(ORGANIZER_MONTHLY_LIMIT=str(LIMIT), ORGANIZER_POOLS_FILE=str(path))


def test_the_limit_is_refused_with_429_before_graph(quota_service, callers, emulator, organizer):
    client = Client(quota_service.url, callers["eu"].key)
    first, second, third = (booking(organizer) for _ in range(3))
    assert client.post(first).status_code == 201
    assert client.post(second).status_code == 201
    assert client.post(first).headers.get("Idempotent-Replayed") == "true"  # not counted

    refused = client.post(third)
    problem = assert_problem(refused, 429, "organizer-quota-exhausted")
    month = dt.datetime.now(dt.UTC).strftime("%Y-%m")
    assert (problem["organizerId"], problem["month"]) == (organizer, month)
    assert (problem["created"], problem["limit"]) == (LIMIT, LIMIT)
    assert int(refused.headers["Retry-After"]) >= 1  # until the next month starts
    calls = [r for r in emulator.stats()["requests"] if r.get("userId") == organizer]
    assert len(calls) == 2  # Graph was never asked for the third

    usage = client.usage(organizer)
    assert usage.status_code == 200, usage.text
    assert usage.json() == {"organizerId": organizer, "month": month, "created": 2, "limit": 2}

    samples = scrape(quota_service.url)
    assert value(samples, "mps_organizer_meetings_month", organizer=organizer) == 2
    assert value(samples, "mps_organizer_quota_rejections_total") == 1
    assert value(samples, "mps_organizer_monthly_limit") == LIMIT


def test_an_existing_meeting_is_not_counted(quota_service, callers, emulator, organizer):
    """Graph 200 (the meeting existed, e.g. the store lost the booking) hands the reserved
    count back: only meetings Graph created count."""
    client = Client(quota_service.url, callers["eu"].key)
    body = booking(organizer)
    assert client.post(body).status_code == 201
    emulator.add_fault(target="createOrGet", status=503, organizerId=organizer, count=1)
    assert client.post(booking(organizer)).status_code == 201  # retried, counted once
    assert client.usage(organizer).json()["created"] == 2


def test_the_usage_metric_is_read_from_redis_for_the_current_month(
    quota_service, callers, organizer, redis_server
):
    """Any replica reports every organizer's count, and only this month's."""
    this_month = dt.datetime.now(dt.UTC).strftime("%Y-%m")
    redis_server.client().set(f"mps:v1:quota:{organizer}:{this_month}", 7)
    redis_server.client().set(f"mps:v1:quota:{organizer}:1999-12", 1999)
    samples = scrape(quota_service.url)
    assert value(samples, "mps_organizer_meetings_month", organizer=organizer) == 7


def test_usage_needs_an_allowed_guid(quota_service, callers, organizer):
    restricted = Client(quota_service.url, callers["restricted"].key)
    assert_problem(restricted.usage(organizer), 403, "organizer-not-allowed")
    eu = Client(quota_service.url, callers["eu"].key)
    problem = assert_problem(eu.usage("not-a-guid"), 400, "invalid-request")
    assert "organizerId" in problem["errors"]
    assert_problem(Client(quota_service.url, "wrong").usage(organizer), 401, "unauthenticated")


def test_a_pool_booking_goes_to_the_member_with_most_room_and_sticks(
    quota_service, callers, emulator, pools
):
    _, members = pools
    busy, free = members["rooms"]
    client = Client(quota_service.url, callers["eu"].key)
    assert client.post(booking(busy)).status_code == 201  # busy has 1, free has 0

    body = pool_booking("rooms")
    created = client.post(body)
    assert created.status_code == 201, created.text
    assert created.json()["organizerId"] == free

    # Now both have 1; the choice for this booking does not move.
    replay = client.post(body)
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json()["organizerId"] == free
    assert emulator.meetings_for(created.json()["externalId"]) == {"created": 1, "calls": 1}

    # Both at the limit of 2 after one more each; then the pool is full.
    for expected in (busy, free):
        answer = client.post(pool_booking("rooms"))
        assert answer.json()["organizerId"] == expected, answer.text
    assert_problem(client.post(pool_booking("rooms")), 429, "organizer-quota-exhausted")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"organizerPool": "no-such-pool"}, "organizerPool"),
        (
            {"organizerPool": "rooms", "organizerId": "8b081ef6-4792-4def-b2c9-c363a1bf41d5"},
            "organizerId",
        ),
    ],
    ids=["unknown-pool", "pool-and-organizer"],
)
def test_bad_pool_requests_are_400(quota_service, callers, fields, field):
    client = Client(quota_service.url, callers["eu"].key)
    body = {"bookingId": f"b-{uuid.uuid4()}", **fields}
    problem = assert_problem(client.post(body), 400, "invalid-request")
    assert field in problem["errors"], problem


def test_a_pool_of_organizers_the_caller_may_not_use_is_403(quota_service, callers):
    restricted = Client(quota_service.url, callers["restricted"].key)
    assert_problem(restricted.post(pool_booking("rooms")), 403, "organizer-not-allowed")


def test_pool_bookings_refuse_to_guess_without_redis(start_service, pools, callers):
    """Without the store the earlier choice for a booking is unknown, and picking again
    could create a second meeting under another organizer: 503, not a guess."""
    path, _ = pools
    service = start_service(REDIS_URL="redis://127.0.0.1:1/0", ORGANIZER_POOLS_FILE=str(path))
    answer = Client(service.url, callers["eu"].key).post(pool_booking("rooms"))
    assert_problem(answer, 503, "store-unavailable")
