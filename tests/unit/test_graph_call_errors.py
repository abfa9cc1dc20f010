"""service.graph.call_errors: the problem (class, status, detail, extensions, Retry-After)
each way a Graph call can end without an accepted answer."""

import json

import pytest
import requests

from service.foundation.errors import (
    GraphAccessDenied,
    GraphRejected,
    GraphTimeout,
    GraphUnavailable,
    GraphUnexpected,
)
from service.graph.breaker import CircuitOpen
from service.graph.call import Call
from service.graph.call_errors import answer_error, budget_exhausted, circuit_open
from service.graph.retry_policy import Failure

pytestmark = pytest.mark.unit

CALL = Call(
    "createOrGet",
    "POST",
    "organizer-1",
    "https://graph.example/v1.0/users/organizer-1/onlineMeetings/createOrGet",
    {},
    frozenset({200, 201}),
    "no such organizer",
    client_request_id="crid-1",
)
GRAPH_ERROR = {
    "error": {
        "code": "BadRequest",
        "message": "startDateTime is invalid",
        "innerError": {"request-id": "inner-id"},
    }
}


def answer(status: int, body: object = GRAPH_ERROR, **headers: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode() if body is not None else b"<html>"
    response.headers.update(headers)
    return response


@pytest.mark.parametrize(
    ("status", "kind", "answer_status", "detail"),
    [
        (400, GraphRejected, 422, "rejected the meeting request: startDateTime is invalid"),
        (404, GraphRejected, 422, "no such organizer"),  # the operation's own words
        (403, GraphAccessDenied, 502, "application access policy is not granted"),
        (401, GraphUnexpected, 502, "rejected a freshly acquired token"),
        (409, GraphUnexpected, 502, "answered 409 (BadRequest), which this service does not"),
    ],
)
def test_graphs_answer_becomes_its_problem(status, kind, answer_status, detail):
    error = answer_error(CALL, answer(status))
    assert type(error) is kind
    assert error.status == answer_status
    assert detail in error.detail
    assert error.extensions["graphError"] == {
        "status": status,
        "code": "BadRequest",
        "message": "startDateTime is invalid",
        "requestId": "inner-id",
        "clientRequestId": "crid-1",
    }


def test_the_answers_request_id_header_wins_and_a_body_without_error_is_none():
    error = answer_error(CALL, answer(500, body=None, **{"request-id": "header-id"}))
    assert type(error) is GraphUnexpected
    assert "answered 500 (None)" in error.detail
    assert error.extensions["graphError"] == {
        "status": 500,
        "code": None,
        "message": None,
        "requestId": "header-id",
        "clientRequestId": "crid-1",
    }


def test_a_read_timeout_past_the_budget_is_a_504():
    error = budget_exhausted(
        Failure("timeout", graph_failed=True), 0.4, budget_seconds=8, client_request_id="c"
    )
    assert type(error) is GraphTimeout and error.status == 504
    assert "within the 8 s budget" in error.detail and "safe" in error.detail
    assert error.extensions == {"clientRequestId": "c"}
    assert "Retry-After" not in error.headers


@pytest.mark.parametrize("reason", ["503", "429", "connect_timeout", "throttled", "paced"])
def test_anything_else_past_the_budget_is_a_503_with_the_delay_it_needed(reason):
    error = budget_exhausted(Failure(reason), 119.2, budget_seconds=7.5, client_request_id="c")
    assert type(error) is GraphUnavailable and error.status == 503
    assert f"({reason}) and the 7.5 s retry budget ran out" in error.detail
    assert error.headers == {"Retry-After": "120"}
    assert error.extensions == {"reason": reason, "clientRequestId": "c", "retryAfterSeconds": 120}


def test_an_exhausted_budget_names_graphs_request_id_when_graph_answered():
    failure = Failure.of_answer(answer(503, **{"request-id": "rid"}))
    error = budget_exhausted(failure, 1, budget_seconds=5, client_request_id="c")
    assert error.extensions["graphRequestId"] == "rid"


def test_an_open_circuit_is_a_503_until_it_may_probe():
    error = circuit_open(CircuitOpen(4.2, failures=5), 5, "c")
    assert type(error) is GraphUnavailable
    assert "failed 5 times in a row" in error.detail
    assert error.headers == {"Retry-After": "5"}
    assert error.extensions == {
        "reason": "circuit_open",
        "clientRequestId": "c",
        "retryAfterSeconds": 5,
    }
