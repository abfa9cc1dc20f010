"""The OpenAPI document says what the service does: every operation named and guarded, the
headers it sends, the rules it enforces, and every member its problems carry."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import yaml
from flask import Flask
from marshmallow import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from service.foundation import errors
from service.openapi import REQUEST_ID_PATTERN, generate
from service.web import observability, problems
from service.web.schemas import (
    BOOKING_ID,
    RFC3339,
    RFC3339_PATTERN,
    BookingSchema,
    MeetingChangeSchema,
)
from tests.support import openapi_check
from tests.support.openapi_check import EcmaValidator

pytestmark = pytest.mark.unit

DOCUMENT: dict[str, Any] = yaml.safe_load(generate())
URI = "urn:test:openapi"
REGISTRY: Registry[Any] = Registry().with_resource(
    URI, Resource.from_contents(DOCUMENT, default_specification=DRAFT202012)
)
METHODS = ("get", "put", "post", "delete", "patch")
ORGANIZER = "8b081ef6-4792-4def-b2c9-c363a1bf41d5"
OPS_PATHS = {"/healthz", "/readyz", "/metrics", "/openapi.yaml"}


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, item[method])
        for path, item in DOCUMENT["paths"].items()
        for method in METHODS
        if method in item
    ]


def validator(ref: str) -> Any:
    # JSON Schema's `pattern` is ECMA-262: `$` ends the string (not so in Python's re).
    return EcmaValidator({"$ref": URI + ref}, registry=REGISTRY)


def test_every_operation_has_the_id_a_developer_would_call() -> None:
    assert {(path, method): op["operationId"] for path, method, op in operations()} == {
        ("/v1/meetings", "post"): "provisionMeeting",
        ("/v1/meetings/{bookingId}", "get"): "getMeeting",
        ("/v1/meetings/{bookingId}", "patch"): "rescheduleMeeting",
        ("/v1/meetings/{bookingId}", "delete"): "cancelMeeting",
        ("/v1/organizers/{organizerId}/usage", "get"): "getOrganizerUsage",
        ("/healthz", "get"): "getLiveness",
        ("/readyz", "get"): "getReadiness",
        ("/metrics", "get"): "getMetrics",
        ("/openapi.yaml", "get"): "getOpenApiDocument",
    }


def test_the_api_key_is_required_at_the_root_and_waived_for_the_platform_endpoints() -> None:
    scheme = DOCUMENT["components"]["securitySchemes"]["apiKeyBearer"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer" and scheme["description"]
    token = DOCUMENT["components"]["securitySchemes"]["entraToken"]
    assert token["type"] == "http" and token["scheme"] == "bearer"
    assert token["bearerFormat"] == "JWT" and token["description"]
    # Either scheme: an API key or an Entra ID access token.
    assert DOCUMENT["security"] == [{"apiKeyBearer": []}, {"entraToken": []}]
    for path, _, op in operations():
        if path in OPS_PATHS:
            assert op["security"] == [], path
        else:
            assert "security" not in op, path  # the root's applies
            assert "WWW-Authenticate" in op["responses"]["401"]["headers"]
            assert {"Retry-After", "RateLimit-Policy", "RateLimit"} <= set(
                op["responses"]["429"]["headers"]
            ), path


def test_every_operation_takes_and_every_answer_carries_x_request_id() -> None:
    for path, method, op in operations():
        assert [p for p in op["parameters"] if p["name"] == "X-Request-ID"] == [
            {**op["parameters"][-1], "in": "header", "required": False}
        ], (path, method)
        assert "default" in op["responses"], (path, method)
        default = op["responses"]["default"]["content"]["application/problem+json"]
        assert default["schema"] == {"$ref": "#/components/schemas/Problem"}
        for status, response in op["responses"].items():
            header = response["headers"]["X-Request-ID"]
            assert header["required"] is True, (path, method, status)


def test_retry_after_is_declared_on_every_429_and_503_problem() -> None:
    for path, method, op in operations():
        for status in ("429", "503"):
            response = op["responses"].get(status)
            if response is None or "application/problem+json" not in response["content"]:
                continue  # /readyz's 503 is a Readiness body while draining, no Retry-After
            assert response["headers"]["Retry-After"]["required"] is True, (path, method)


def test_location_and_replay_headers_only_where_they_are_sent() -> None:
    post = DOCUMENT["paths"]["/v1/meetings"]["post"]["responses"]
    assert set(post["201"]["headers"]) == {"Location", "X-Request-ID"}
    assert set(post["200"]["headers"]) == {"Location", "Idempotent-Replayed", "X-Request-ID"}
    assert post["200"]["headers"]["Idempotent-Replayed"]["required"] is False
    for path, method, op in operations():
        for status, response in op["responses"].items():
            if (path, method) != ("/v1/meetings", "post") or status not in ("200", "201"):
                assert "Location" not in response["headers"], (path, method, status)
                assert "Idempotent-Replayed" not in response["headers"], (path, method, status)


def test_links_lead_from_a_provisioned_meeting_to_its_operations() -> None:
    ids = {op["operationId"] for _, _, op in operations()}
    for status in ("200", "201"):
        links = DOCUMENT["paths"]["/v1/meetings"]["post"]["responses"][status]["links"]
        assert (
            {link["operationId"] for link in links.values()}
            == {
                "getMeeting",
                "rescheduleMeeting",
                "cancelMeeting",
            }
            <= ids
        )
        for link in links.values():
            assert link["parameters"] == {"bookingId": "$response.body#/bookingId"}


def test_no_schema_is_unused() -> None:
    text = json.dumps(DOCUMENT["paths"]) + json.dumps(DOCUMENT["components"]["schemas"])
    for name in DOCUMENT["components"]["schemas"]:
        assert f'"#/components/schemas/{name}"' in text, name
    assert "PaginationMetadata" not in DOCUMENT["components"]["schemas"]


@pytest.mark.parametrize(
    "value",
    ["a", "room-42:2026-11-23T09:00", "x" * 128, "x" * 129, "", "abc\n", "a b", "ä", "a/b"],
)
def test_the_booking_id_rule_is_the_services(value: str) -> None:
    parameter = DOCUMENT["paths"]["/v1/meetings/{bookingId}"]["parameters"][0]
    documented = EcmaValidator(parameter["schema"]).is_valid(value)
    assert documented == (BOOKING_ID.fullmatch(value) is not None)
    body = {"bookingId": value, "organizerId": ORGANIZER}
    assert validator("#/components/schemas/Booking").is_valid(body) == documented


@pytest.mark.parametrize("value", ["req-1", "a" * 128, "a" * 129, "", "x\n", "a b", "ü"])
def test_the_request_id_pattern_is_the_services(value: str) -> None:
    documented = EcmaValidator({"pattern": REQUEST_ID_PATTERN}).is_valid(value)
    assert documented == (observability.REQUEST_ID.fullmatch(value) is not None)


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-23T09:00:00Z",
        "2026-11-23t09:00:00.123456789+01:00",
        "2026-11-23T09:00:00.1234567890Z",
        "2026-11-23T09:00:00",
        "2026-11-23T09:00:00Z\n",
        "2026-11-23 09:00:00Z",
        "26-11-23T09:00:00Z",
    ],
)
def test_the_date_time_pattern_is_the_services(value: str) -> None:
    documented = EcmaValidator({"pattern": RFC3339_PATTERN}).is_valid(value)
    assert documented == (RFC3339.fullmatch(value) is not None)
    booking = validator("#/components/schemas/Booking").is_valid(
        {"bookingId": "b", "organizerId": ORGANIZER, "startDateTime": value}
    )
    assert booking == documented


BOOKINGS = [
    {"bookingId": "b", "organizerId": ORGANIZER},
    {"bookingId": "b", "organizerPool": "rooms"},
    {"bookingId": "b", "organizerId": ORGANIZER, "organizerPool": "rooms"},
    {"bookingId": "b"},
    {"bookingId": "b", "organizerId": ORGANIZER, "endDateTime": "2026-11-23T10:00:00Z"},
    {"bookingId": "b", "organizerId": ORGANIZER, "startDateTime": "2026-11-23T10:00:00Z"},
    {"bookingId": "b", "organizerId": ORGANIZER, "attendees": [{"role": "presenter"}]},
    {"bookingId": "b", "organizerId": ORGANIZER, "attendees": [{"upn": "ada@contoso.com"}]},
    {"bookingId": "b", "organizerId": ORGANIZER, "attendees": [{"userId": ORGANIZER}]},
    {"bookingId": "b", "organizerId": ORGANIZER, "bookingID": "typo"},
]
CHANGES = [
    {},
    {"subject": "x"},
    {"startDateTime": "2026-11-23T10:00:00Z"},
    {"endDateTime": "2026-11-23T10:00:00Z"},
    {"startDateTime": "2026-11-23T10:00:00Z", "endDateTime": "2026-11-23T11:00:00Z"},
    {"attendees": [{}]},
    {"organizerId": ORGANIZER},
]


def loads(schema: Any, body: dict[str, Any]) -> bool:
    try:
        schema.load(body)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("body", BOOKINGS, ids=lambda b: json.dumps(b)[:60])
def test_the_booking_rules_are_written_in_the_document(body: dict[str, Any]) -> None:
    documented = validator("#/components/schemas/Booking").is_valid(body)
    assert documented == loads(BookingSchema(), body)


@pytest.mark.parametrize("body", CHANGES, ids=lambda b: json.dumps(b)[:60])
def test_the_change_rules_are_written_in_the_document(body: dict[str, Any]) -> None:
    documented = validator("#/components/schemas/MeetingChange").is_valid(body)
    assert documented == loads(MeetingChangeSchema(), body)


GRAPH = {
    "graph_status": 404,
    "code": None,
    "message": None,
    "request_id": None,
    "client_request_id": "c",
}
PROBLEMS = [
    errors.InvalidRequest("d", {"bookingId": "bad"}),
    errors.Unauthenticated("d"),
    errors.OrganizerNotAllowed("d"),
    errors.BookingNotFound("d"),
    errors.BookingCancelled("d"),
    errors.QuotaExhausted(
        "d", organizer_id=ORGANIZER, month="2026-11", created=3, limit=3, retry_after=60
    ),
    errors.BookingConflict("b", ["subject"]),
    errors.GraphRejected("d", **GRAPH),
    errors.GraphAccessDenied("d", **{**GRAPH, "graph_status": 403, "code": "Forbidden"}),
    errors.GraphUnexpected("d", **{**GRAPH, "graph_status": 401}),
    # As service/graph/client.py raises them: circuit open, budget spent, no answer in time.
    errors.GraphUnavailable(
        "d", retry_after=1.5, extensions={"reason": "circuit_open", "clientRequestId": "c"}
    ),
    errors.GraphUnavailable(
        "d",
        retry_after=3,
        extensions={"reason": "503", "clientRequestId": "c", "graphRequestId": None},
    ),
    errors.GraphTimeout("d", extensions={"clientRequestId": "c"}),
    errors.TokenUnavailable("d", 5),
    errors.TokenRejected("d", "invalid_client", [7000215]),
    errors.BookingBusy("d", 1),
    errors.StoreUnavailable("d", 1),
]


@pytest.mark.parametrize("error", PROBLEMS, ids=lambda e: type(e).__name__)
def test_every_problem_the_service_sends_is_a_documented_problem(
    error: errors.ServiceError,
) -> None:
    with Flask(__name__).test_request_context("/v1/meetings/b%20c"):
        answer = problems.from_service_error(error)
    body = json.loads(answer.get_data())
    found = list(validator("#/components/schemas/Problem").iter_errors(body))
    assert not found, [e.message for e in found]
    if answer.status_code in (429, 503):
        assert answer.headers["Retry-After"] == str(body["retryAfterSeconds"])


# --- the e2e suite's answer check (tests/support/openapi_check.py) is not vacuous ----------


def answer(
    method: str, path: str, status: int, body: Any, headers: dict[str, str] | None = None
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers.update({"X-Request-ID": "r-1", **(headers or {})})
    response.request = requests.Request(method, "http://127.0.0.1" + path).prepare()
    return response


PROBLEM_BODY = {
    "type": "urn:meeting-provisioning:problem:booking-not-found",
    "title": "No meeting for this booking",
    "status": 404,
    "detail": "d",
    "instance": "/v1/meetings/b",
    "requestId": "r-1",
}
PROBLEM_HEADERS = {"Content-Type": "application/problem+json"}
MEETING_BODY = {
    "bookingId": "b",
    "externalId": "0b5c6e0e-5c8a-5e0e-9c1a-1b2c3d4e5f60",
    "organizerId": ORGANIZER,
    "meetingId": "m",
    "joinWebUrl": "https://teams.microsoft.com/l/meetup-join/x",
    "subject": None,
    "startDateTime": "2026-11-23T08:00:00.0000000Z",
    "endDateTime": "2026-11-23T09:00:00.0000000Z",
    "onlineMeeting": {"id": "m"},
    "options": {},
    "optionsPending": False,
}


def test_the_answer_check_passes_what_the_document_declares() -> None:
    openapi_check.check(answer("GET", "/v1/meetings/b", 404, PROBLEM_BODY, PROBLEM_HEADERS))
    created = {"Content-Type": "application/json", "Location": "/v1/meetings/b"}
    openapi_check.check(answer("POST", "/v1/meetings", 201, MEETING_BODY, created))


@pytest.mark.parametrize(
    ("method", "path", "status", "body", "headers", "complaint"),
    [
        ("GET", "/v1/meetings/b", 500, PROBLEM_BODY, PROBLEM_HEADERS, "status not declared"),
        ("GET", "/v1/meetings/b", 404, {**PROBLEM_BODY, "x": 1}, PROBLEM_HEADERS, "x"),
        ("GET", "/v1/meetings/b", 404, PROBLEM_BODY, {}, "Content-Type"),
        ("POST", "/v1/meetings", 201, MEETING_BODY, {"Content-Type": "application/json"},
         "Location"),
        ("GET", "/v1/meetings/b", 200, {**MEETING_BODY, "startDateTime": "2026-11-23T09:00:00"},
         {"Content-Type": "application/json"}, "startDateTime"),
        ("DELETE", "/v1/meetings/b", 204, "x", {}, "no body declared"),
        ("GET", "/v2/nothing", 200, {}, {"Content-Type": "application/json"}, "expected 404"),
    ],
)  # fmt: skip
def test_the_answer_check_fails_what_the_document_does_not_declare(
    method: str, path: str, status: int, body: Any, headers: dict[str, str], complaint: str
) -> None:
    with pytest.raises(AssertionError, match=complaint):
        openapi_check.check(answer(method, path, status, body, headers))


def test_the_answer_check_requires_x_request_id() -> None:
    response = answer(
        "GET", "/healthz", 200, {"status": "ok"}, {"Content-Type": "application/json"}
    )
    del response.headers["X-Request-ID"]
    with pytest.raises(AssertionError, match="X-Request-ID"):
        openapi_check.check(response)
