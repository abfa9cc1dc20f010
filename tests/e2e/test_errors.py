"""Every error the API promises, provoked for real and checked as problem+json."""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from email.utils import formatdate

import pytest

from tests.support.factories import booking
from tests.support.problems import assert_problem
from tests.support.stack import Client, ServiceProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fast_service(tmp_path_factory, service_env):
    """A service with small Graph budgets, so exhausting them takes seconds."""
    process = ServiceProcess(
        tmp_path_factory.mktemp("fast-service"),
        service_env(GRAPH_BUDGET_SECONDS="2", GRAPH_READ_TIMEOUT="0.5"),
    ).start()
    yield process
    process.stop()


@pytest.fixture
def fast_client(fast_service, callers):
    return Client(fast_service.url, callers["eu"].key)


# 400 -----------------------------------------------------------------------------------


def test_malformed_json_is_400_and_names_the_body(client):
    response = client.post_raw(b'{"bookingId": "x",', "application/json")
    problem = assert_problem(response, 400, "invalid-request")
    assert problem["errors"] == {"body": "is not valid JSON"}


def test_invalid_fields_are_400_and_each_is_named(client, organizer):
    body = booking(
        organizer,
        bookingId="no spaces allowed",
        subject="s" * 256,
        startDateTime="2026-11-23T09:00:00",
        attendees=[{"role": "boss"}],
        organiserId=organizer,
    )
    problem = assert_problem(client.post(body), 400, "invalid-request")
    assert set(problem["errors"]) == {
        "bookingId",
        "subject",
        "startDateTime",
        "attendees.0.role",
        "organiserId",
    }
    assert "A-Z a-z 0-9" in problem["errors"]["bookingId"]
    assert "offset" in problem["errors"]["startDateTime"]


@pytest.mark.parametrize(
    "times",
    [
        {"endDateTime": "2026-11-23T10:00:00Z"},
        {"startDateTime": "2026-11-23T10:00:00Z", "endDateTime": "2026-11-23T09:59:59Z"},
    ],
    ids=["end-without-start", "end-before-start"],
)
def test_graph_time_rules_are_enforced_before_any_graph_call(client, emulator, organizer, times):
    body = booking(organizer, **times)
    problem = assert_problem(client.post(body), 400, "invalid-request")
    assert "endDateTime" in problem["errors"]
    assert not [r for r in emulator.stats()["requests"] if r["userId"] == organizer]


def test_a_rejected_request_loses_nothing(client, organizer):
    body = booking(organizer, subject="s" * 300)
    assert client.post(body).status_code == 400
    assert client.get(body["bookingId"]).status_code == 404
    body["subject"] = "fixed"
    assert client.post(body).status_code == 201


def test_chat_info_needs_graph_beta(client, organizer):
    body = booking(organizer, chatInfo={"threadId": "19:meeting_x@thread.v2"})
    problem = assert_problem(client.post(body), 400, "invalid-request")
    assert "GRAPH_API_VERSION=beta" in problem["errors"]["chatInfo"]


def test_a_malformed_booking_id_in_the_path_is_400(client):
    problem = assert_problem(client.get("not%20valid"), 400, "invalid-request")
    assert "bookingId" in problem["errors"]


# 401 / 403 -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic Zm9vOmJhcg==", "Bearer ", "Bearer not-a-key"],
    ids=["missing", "basic", "empty", "unknown-key"],
)
def test_without_a_valid_api_key_it_is_401(service, organizer, authorization):
    client = Client(service.url, None)
    headers = {"Authorization": authorization} if authorization else {}
    response = client.post(booking(organizer), headers=headers)
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_401_comes_before_anything_else_is_checked(service):
    response = Client(service.url, None).post_raw(b"not json", "text/plain")
    assert_problem(response, 401, "unauthenticated")


def test_a_caller_may_only_book_for_its_organizers(restricted_client, organizer, setup):
    problem = assert_problem(
        restricted_client.post(booking(organizer)), 403, "organizer-not-allowed"
    )
    assert organizer in problem["detail"]
    allowed = restricted_client.post(booking(setup.user_with_policy))
    assert allowed.status_code == 201


# 404 / 405 -----------------------------------------------------------------------------


def test_unknown_booking_is_404(client):
    assert_problem(client.get(f"never-{uuid.uuid4()}"), 404, "booking-not-found")


def test_unknown_route_and_method_are_problems(client):
    response = client.session.get(f"{client.base_url}/v2/nothing")
    assert_problem(response, 404, "not-found")
    response = client.session.delete(f"{client.base_url}/v1/meetings", headers=client.headers())
    assert_problem(response, 405, "method-not-allowed")
    assert "POST" in response.headers["Allow"]


# 409 -----------------------------------------------------------------------------------


def test_same_booking_with_other_details_is_409_naming_the_fields(client, emulator, organizer):
    body = booking(organizer, subject="Planning", startDateTime="2026-11-23T09:00:00Z")
    original = client.post(body).json()

    changed = {**body, "subject": "Retro", "startDateTime": "2026-11-23T10:00:00Z"}
    problem = assert_problem(client.post(changed), 409, "booking-conflict")
    assert problem["differingFields"] == ["subject", "startDateTime"]

    other_organizer = str(uuid.uuid4())
    problem = assert_problem(
        client.post({**body, "organizerId": other_organizer}), 409, "booking-conflict"
    )
    assert problem["differingFields"] == ["organizerId"]

    # Nothing changed: the meeting is the original one, and Graph was called once.
    assert client.get(body["bookingId"]).json() == original
    assert emulator.meetings_for(original["externalId"]) == {"created": 1, "calls": 1}


def test_the_same_details_spelled_differently_are_not_a_conflict(client, organizer):
    body = booking(
        organizer,
        startDateTime="2026-11-23T10:00:00+01:00",
        attendees=[{"upn": "Ada@Contoso.com"}, {"upn": "bob@contoso.com", "role": "presenter"}],
    )
    assert client.post(body).status_code == 201
    respelled = {
        **body,
        "organizerId": organizer.upper(),
        "startDateTime": "2026-11-23T09:00:00Z",
        "attendees": [
            {"upn": "bob@contoso.com", "role": "presenter"},
            {"upn": "ada@contoso.com", "role": "attendee"},
        ],
    }
    replay = client.post(respelled)
    assert replay.status_code == 200, replay.text
    assert replay.headers["Idempotent-Replayed"] == "true"


# 413 / 415 -----------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413(client, organizer):
    body = booking(organizer, subject="x" * (70 * 1024))
    problem = assert_problem(client.post(body), 413, "body-too-large")
    assert "65536 bytes" in problem["detail"]
    assert client.get(body["bookingId"]).status_code == 404


def test_a_body_that_is_not_json_is_415(client):
    response = client.post_raw(b"bookingId=x", "application/x-www-form-urlencoded")
    problem = assert_problem(response, 415, "unsupported-media-type")
    assert "application/json" in problem["detail"]


# 422 -----------------------------------------------------------------------------------


def test_unknown_organizer_is_422_with_graphs_error(client, emulator):
    unknown = str(uuid.uuid4())
    problem = assert_problem(client.post(booking(unknown)), 422, "graph-rejected")
    graph = problem["graphError"]
    assert graph["status"] == 404
    assert graph["code"] and graph["message"]
    assert graph["requestId"]
    recorded = [r for r in emulator.stats()["requests"] if r["userId"] == unknown]
    assert graph["requestId"] == recorded[-1]["requestId"]
    assert graph["clientRequestId"] == recorded[-1]["clientRequestId"]


def test_graph_400_is_422_with_graphs_code_and_message(client, emulator, organizer):
    emulator.add_fault(
        target="createOrGet",
        status=400,
        errorCode="BadRequest",
        message="Invalid meeting subject.",
        organizerId=organizer,
    )
    problem = assert_problem(client.post(booking(organizer)), 422, "graph-rejected")
    assert problem["graphError"]["code"] == "BadRequest"
    assert problem["graphError"]["message"] == "Invalid meeting subject."
    assert "Invalid meeting subject." in problem["detail"]


# 502 -----------------------------------------------------------------------------------


def test_missing_application_access_policy_is_502_with_the_fix(client, setup):
    response = client.post(booking(setup.user_without_policy))
    problem = assert_problem(response, 502, "graph-access-denied")
    assert "New-CsApplicationAccessPolicy" in problem["detail"]
    assert "Grant-CsApplicationAccessPolicy" in problem["detail"]
    assert "30 minutes" in problem["detail"]
    assert problem["graphError"]["status"] == 403


def test_rejected_credentials_are_502_and_never_echo_the_secret(start_service, callers, organizer):
    wrong_secret = f"wrong-{uuid.uuid4()}"
    service = start_service(AZURE_CLIENT_SECRET=wrong_secret)
    response = Client(service.url, callers["eu"].key).post(booking(organizer))
    problem = assert_problem(response, 502, "token-rejected")
    assert problem["tokenError"]["error"] == "invalid_client"
    assert wrong_secret not in response.text
    assert wrong_secret not in service.log()


# 503 / 504 and retries -----------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 429, "retryAfter": "1"},
        {"status": 429, "retryAfter": "http-date"},
        {"status": 503, "retryAfter": "1"},
        {"status": 500},
        {"status": 502},
        {"status": 504},
        {"reset": True},
    ],
    ids=["429-seconds", "429-http-date", "503", "500", "502", "504", "connection-reset"],
)
def test_transient_graph_failures_are_retried_within_the_budget(client, emulator, organizer, fault):
    if fault.get("retryAfter") == "http-date":
        fault = {**fault, "retryAfter": formatdate(time.time() + 1, usegmt=True)}
    emulator.add_fault(target="createOrGet", count=1, organizerId=organizer, **fault)
    response = client.post(booking(organizer))
    assert response.status_code == 201, response.text
    calls = emulator.meetings_for(response.json()["externalId"])
    assert calls == {"created": 1, "calls": 2}


def test_a_lost_answer_is_retried_and_returns_the_same_meeting(client, emulator, organizer):
    # Graph creates the meeting but the answer never arrives; the retry gets it with 200.
    emulator.add_fault(
        target="createOrGet", status=503, afterProcessing=True, count=1, organizerId=organizer
    )
    response = client.post(booking(organizer))
    assert response.status_code == 200, response.text
    assert emulator.meetings_for(response.json()["externalId"]) == {"created": 1, "calls": 2}


def test_throttling_beyond_the_budget_is_503_with_retry_after(fast_client, emulator, organizer):
    emulator.add_fault(target="createOrGet", status=429, retryAfter="1", organizerId=organizer)
    body = booking(organizer)
    response = fast_client.post(body)
    problem = assert_problem(response, 503, "graph-unavailable")
    assert int(response.headers["Retry-After"]) >= 1
    assert problem["retryAfterSeconds"] == int(response.headers["Retry-After"])
    attempts = [r for r in emulator.stats()["requests"] if r["userId"] == organizer]
    assert len(attempts) >= 2  # it did retry before giving up
    # Nothing is stored for a failure: the next try, once Graph is back, creates the meeting.
    emulator.clear_faults()
    assert fast_client.post(body).status_code == 201


def test_a_retry_after_longer_than_the_budget_is_passed_on(fast_client, emulator, organizer):
    emulator.add_fault(target="createOrGet", status=503, retryAfter="120", organizerId=organizer)
    response = fast_client.post(booking(organizer))
    assert_problem(response, 503, "graph-unavailable")
    assert response.headers["Retry-After"] == "120"
    assert len([r for r in emulator.stats()["requests"] if r["userId"] == organizer]) == 1


def test_graph_too_slow_is_504(fast_client, emulator, organizer):
    emulator.add_fault(target="createOrGet", latencyMs=3000, organizerId=organizer)
    problem = assert_problem(fast_client.post(booking(organizer)), 504, "graph-timeout")
    assert "safe" in problem["detail"]


@pytest.mark.parametrize(
    "fault",
    [{"status": 503, "retryAfter": "7"}, {"status": 429, "retryAfter": "3"}, {"reset": True}],
    ids=["5xx-raises-MsalServiceError", "429-returns-an-error-dict", "connection-reset"],
)
def test_token_endpoint_unavailable_is_503(start_service, emulator, callers, organizer, fault):
    service = start_service()  # a fresh process: no token cached yet
    emulator.add_fault(target="token", **fault)
    response = Client(service.url, callers["eu"].key).post(booking(organizer))
    assert_problem(response, 503, "token-unavailable")
    assert int(response.headers["Retry-After"]) >= 1
    assert not [r for r in emulator.stats()["requests"] if r["userId"] == organizer]


def test_a_booking_in_flight_too_long_is_503_for_the_waiters(
    start_service, emulator, callers, organizer
):
    service = start_service(SINGLE_FLIGHT_WAIT_SECONDS="0.5")
    emulator.add_fault(target="createOrGet", latencyMs=2500, organizerId=organizer, count=1)
    body = booking(organizer)

    def post(_):
        return Client(service.url, callers["eu"].key).post(body)

    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        answers = list(pool.map(post, range(3)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201, 503, 503], [a.text for a in answers]
    for answer in answers:
        if answer.status_code == 503:
            assert_problem(answer, 503, "booking-in-progress")
            assert answer.headers["Retry-After"] == "1"
    # The waiters gave up without calling Graph; retrying them now replays the meeting.
    external_id = next(a for a in answers if a.status_code == 201).json()["externalId"]
    assert emulator.meetings_for(external_id) == {"created": 1, "calls": 1}
    assert post(0).headers["Idempotent-Replayed"] == "true"


def test_when_the_first_request_fails_the_waiters_try_themselves(client, emulator):
    unknown = str(uuid.uuid4())
    emulator.add_fault(target="createOrGet", latencyMs=300, organizerId=unknown, count=1)
    body = booking(unknown)

    def post(_):
        return Client(client.base_url, client.key).post(body)

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(post, range(4)))
    assert [a.status_code for a in answers] == [422] * 4
