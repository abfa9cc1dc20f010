"""Hostile and odd inputs (issue 9's table): each is a clear 400 problem, reaches neither
Graph nor the store, and leaves the service answering everyone as before."""

from __future__ import annotations

import json

import pytest
import requests

from tests.support.factories import booking
from tests.support.problems import assert_problem

pytestmark = pytest.mark.e2e

MAX_ERROR_BODY = 4096


def graph_calls_for(emulator, organizer: str) -> int:
    return len([r for r in emulator.stats()["requests"] if r.get("userId") == organizer])


@pytest.fixture
def untouched(service, client, emulator, organizer):
    """After the test: Graph never heard of this organizer and the service still works."""
    yield
    assert graph_calls_for(emulator, organizer) == 0
    assert requests.get(f"{service.url}/healthz", timeout=5).status_code == 200
    answer = client.post(booking(organizer))
    assert answer.status_code == 201, answer.text


@pytest.mark.parametrize(
    "field, value",
    [
        ("startDateTime", "0001-01-01T00:00:00+01:00"),  # before year 1 in UTC
        ("startDateTime", "9999-12-31T23:00:00-01:00"),  # after year 9999 in UTC
        ("endDateTime", "9999-12-31T23:00:00-01:00"),
        ("startDateTime", "2026-11-23T09:00:00Z\n"),  # `$` matches before a final newline
        ("startDateTime", "２０２６-11-23T09:00:00Z"),  # fullwidth digits match Python's \d
    ],
)
def test_a_time_outside_graphs_range_or_form_is_400_naming_it(
    client, organizer, untouched, field, value
):
    body = booking(organizer, **{"startDateTime": "2026-11-23T09:00:00Z", field: value})
    problem = assert_problem(client.post(body), 400, "invalid-request")
    assert set(problem["errors"]) == {field}
    assert client.get(body["bookingId"]).status_code == 404  # nothing stored


def test_an_out_of_range_patch_is_400_and_changes_nothing(client, emulator, organizer):
    body = booking(organizer, startDateTime="2026-11-23T09:00:00Z")
    created = client.post(body)
    assert created.status_code == 201, created.text
    calls = graph_calls_for(emulator, organizer)
    change = {"startDateTime": "0001-01-01T00:00:00+01:00", "endDateTime": "2026-11-23T10:00Z"}
    problem = assert_problem(client.patch(body["bookingId"], change), 400, "invalid-request")
    assert "startDateTime" in problem["errors"]
    change = {"startDateTime": "9999-12-31T22:00:00Z", "endDateTime": "9999-12-31T23:00:00-01:00"}
    problem = assert_problem(client.patch(body["bookingId"], change), 400, "invalid-request")
    assert set(problem["errors"]) == {"endDateTime"}
    assert graph_calls_for(emulator, organizer) == calls
    assert client.get(body["bookingId"]).json() == created.json()


def test_a_year_before_1000_reaches_graph_with_four_digits(client, emulator, organizer):
    body = booking(
        organizer, startDateTime="0999-05-01T09:00:00Z", endDateTime="0999-05-01T10:00:00Z"
    )
    answer = client.post(body)
    assert answer.status_code == 201, answer.text
    assert answer.json()["startDateTime"].startswith("0999-05-01T09:00:00")
    sent = emulator.requests_for(answer.json()["externalId"])
    assert sent[0]["body"]["startDateTime"] == "0999-05-01T09:00:00.0000000Z"
    assert sent[0]["body"]["endDateTime"] == "0999-05-01T10:00:00.0000000Z"
    assert client.post(body).status_code == 200  # and it replays


def test_a_booking_id_with_a_final_newline_is_refused_before_anything_happens(
    client, organizer, untouched
):
    problem = assert_problem(
        client.post(booking(organizer, bookingId="abc\n")), 400, "invalid-request"
    )
    assert set(problem["errors"]) == {"bookingId"}
    for answer in (
        client.get("abc%0A"),
        client.delete("abc%0A"),
        client.patch("abc%0A", {"subject": "x"}),
    ):
        assert_problem(answer, 400, "invalid-request")


@pytest.mark.parametrize(
    "raw, what",
    [
        (b"[" * 10_000 + b"]" * 10_000, "nested too deeply"),
        (b'{"bookingId": ' + b"7" * 20_000 + b"}", "more than 20 digits"),
        (b'{"bookingId": "x", "bookingId": "y"}', "'bookingId' more than once"),
        (
            b'{"bookingId": "x", "attendees": [{"upn": "a@b.c", "upn": "d@e.f"}]}',
            "'upn' more than once",
        ),
        (b'{"bookingId": NaN}', "NaN"),
        (b'{"bookingId": "\xff"}', "not UTF-8"),
    ],
    ids=["deep", "long-integer", "duplicate-member", "nested-duplicate", "nan", "not-utf8"],
)
def test_a_body_json_cannot_represent_safely_is_400(client, untouched, raw, what):
    problem = assert_problem(client.post_raw(raw, "application/json"), 400, "invalid-request")
    assert list(problem["errors"]) == ["body"]
    assert what in problem["errors"]["body"]


def test_patch_bodies_are_read_as_strictly(client, organizer):
    body = booking(organizer)
    assert client.post(body).status_code == 201
    response = client.session.patch(
        f"{client.base_url}/v1/meetings/{body['bookingId']}",
        data=b'{"subject": "a", "subject": "b"}',
        headers=client.headers({"Content-Type": "application/json"}),
        timeout=30,
    )
    problem = assert_problem(response, 400, "invalid-request")
    assert "'subject' more than once" in problem["errors"]["body"]
    assert client.get(body["bookingId"]).json()["subject"] is None


def test_ten_thousand_attendees_get_a_short_answer(client, organizer, untouched):
    body = booking(organizer, attendees=[{}] * 10_000)
    response = client.post(body)
    problem = assert_problem(response, 400, "invalid-request")
    assert len(response.content) < MAX_ERROR_BODY
    assert problem["errors"] == {"attendees": "must have at most 256 items (got 10000)"}


def test_many_invalid_fields_are_reported_boundedly(client, organizer, untouched):
    body = booking(organizer, attendees=[{"role": "boss"}] * 200)
    body.update({f"unknown{'x' * 120}{n}": n for n in range(300)})
    response = client.post_raw(json.dumps(body).encode(), "application/json")
    problem = assert_problem(response, 400, "invalid-request")
    assert len(response.content) < MAX_ERROR_BODY
    assert len(problem["errors"]) == 20
    assert all(len(name) <= 101 for name in problem["errors"])
    assert "more (fix these first)" in problem["detail"]
