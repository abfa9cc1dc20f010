"""The API in process: `create_app(settings)` and Flask's test client, with the real Redis
and Graph emulator behind it. Request validation, problem rendering and authentication
answer here in milliseconds; gunicorn, the subject of tests/e2e, is not involved."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from service.app import create_app
from service.config import Settings
from service.domain.booking import external_id
from service.domain.record import BookingRecord
from service.foundation.errors import TYPE_PREFIX
from service.storage import keys

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def app_client(service_env) -> Iterator[FlaskClient]:
    app = create_app(Settings.from_env(service_env()))
    with app.test_client() as client:
        yield client


@pytest.fixture
def headers(callers) -> dict[str, str]:
    return {"Authorization": f"Bearer {callers['eu'].key}"}


def problem(response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["type"] == TYPE_PREFIX + slug
    assert body["status"] == status and body["title"] and body["detail"]
    assert body["requestId"] == response.headers["X-Request-ID"]
    return body


def booking(organizer: str, **fields: Any) -> dict[str, Any]:
    return {"bookingId": f"in-process-{uuid.uuid4()}", "organizerId": organizer, **fields}


def test_no_key_and_a_wrong_key_are_401_with_a_challenge(app_client):
    for sent in ({}, {"Authorization": "Bearer not-a-key"}, {"Authorization": "Basic eA=="}):
        answer = app_client.post("/v1/meetings", json={}, headers=sent)
        problem(answer, 401, "unauthenticated")
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_body_that_is_not_json_is_415(app_client, headers):
    answer = app_client.post("/v1/meetings", data="x", headers=headers, content_type="text/plain")
    assert "application/json" in problem(answer, 415, "unsupported-media-type")["detail"]


@pytest.mark.parametrize(
    "raw, member",
    [
        (b'{"bookingId": "a", "bookingId": "b"}', "'bookingId' more than once"),
        (b'{"bookingId": ' + b"1" * 5000 + b"}", "more than 20 digits"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b'{"bookingId": ', "is not valid JSON"),
    ],
)
def test_bodies_json_cannot_carry_safely_are_400(app_client, headers, raw, member):
    answer = app_client.post(
        "/v1/meetings", data=raw, headers=headers, content_type="application/json"
    )
    assert member in problem(answer, 400, "invalid-request")["errors"]["body"]


def test_each_invalid_field_is_named(app_client, headers, organizer):
    body = booking(
        organizer,
        bookingId="abc\n",
        startDateTime="0001-01-01T00:00:00+01:00",
        attendees=[{"role": "boss"}],
        organiserId=organizer,
    )
    errors = problem(
        app_client.post("/v1/meetings", json=body, headers=headers), 400, "invalid-request"
    )["errors"]
    assert set(errors) == {
        "bookingId",
        "startDateTime",
        "attendees.0.role",
        "organiserId",
    }


def test_the_error_list_is_bounded(app_client, headers, organizer):
    body = booking(organizer, **{f"unknown{n}": n for n in range(100)})
    answer = app_client.post("/v1/meetings", json=body, headers=headers)
    found = problem(answer, 400, "invalid-request")
    assert len(found["errors"]) == 20
    assert "80 more" in found["detail"]


def test_a_body_over_the_limit_is_413(app_client, headers, organizer):
    body = booking(organizer, subject="s" * 70_000)
    problem(app_client.post("/v1/meetings", json=body, headers=headers), 413, "body-too-large")


def test_unknown_routes_and_methods_are_problems(app_client, headers):
    problem(app_client.get("/v2/meetings", headers=headers), 404, "not-found")
    answer = app_client.put("/v1/meetings", json={}, headers=headers)
    problem(answer, 405, "method-not-allowed")
    assert "POST" in answer.headers["Allow"]


def test_path_parameters_are_checked_and_instance_is_a_uri_reference(app_client, headers):
    found = problem(
        app_client.get("/v1/meetings/bad%20id", headers=headers), 400, "invalid-request"
    )
    assert found["instance"] == "/v1/meetings/bad%20id"
    answer = app_client.get(
        "/v1/organizers/{8b081ef6-4792-4def-b2c9-c363a1bf41d5}/usage", headers=headers
    )
    assert set(problem(answer, 400, "invalid-request")["errors"]) == {"organizerId"}


def test_create_replay_and_conflict_through_redis_and_the_emulator(
    app_client, headers, organizer, emulator
):
    body = booking(organizer, subject="In process")
    created = app_client.post("/v1/meetings", json=body, headers=headers)
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.headers["Location"] == f"/v1/meetings/{body['bookingId']}"
    assert "Idempotent-Replayed" not in created.headers
    replayed = app_client.post("/v1/meetings", json=body, headers=headers)
    assert replayed.status_code == 200
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.get_json() == created.get_json()
    assert emulator.meetings_for(created.get_json()["externalId"]) == {"created": 1, "calls": 1}
    changed = app_client.post("/v1/meetings", json={**body, "subject": "Other"}, headers=headers)
    assert problem(changed, 409, "booking-conflict")["differingFields"] == ["subject"]
    read = app_client.get(f"/v1/meetings/{body['bookingId']}", headers=headers)
    assert json.loads(read.get_data()) == created.get_json()


def test_a_booking_cancelled_under_the_old_key_name_is_booked_again_with_a_new_generation(
    app_client, headers, callers, organizer, redis_server, service_env
):
    """The owner's second read looks only at the current name (nothing writes the old one);
    the tombstone its first read found there must still raise the generation, or Graph
    would hand back the cancelled meeting's externalId."""
    namespace = Settings.from_env(service_env()).external_id_namespace
    body = booking(organizer)
    caller_id = callers["eu"].id
    tombstone = BookingRecord.provisioned(
        booking_id=body["bookingId"],
        generation=2,
        external_id=external_id(namespace, caller_id, body["bookingId"], 2),
        organizer_id=organizer,
        request={"organizerId": organizer},
        meeting={"id": "cancelled-meeting"},
        graph_request_id=None,
    ).cancelled()
    old_name = keys.legacy_booking(caller_id, body["bookingId"])
    redis.Redis.from_url(redis_server.url).set(old_name, tombstone.to_json(), ex=3600)
    created = app_client.post("/v1/meetings", json=body, headers=headers)
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.get_json()["externalId"] == external_id(
        namespace, caller_id, body["bookingId"], 3
    )
