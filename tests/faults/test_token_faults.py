"""Entra ID slow, failing, unreachable, refusing the app, or revoking its token: the caller
is told what happened, Graph is not called without a token, and once the identity
provider is back the booking gets exactly one meeting. A fresh service per test, so no
token is cached unless the test caches one; one worker, so the test knows whose cache.
"""

from __future__ import annotations

import time
import uuid

import pytest
from local_stack.processes import free_port

from tests.support.emulator import default_config, start_emulator
from tests.support.factories import booking
from tests.support.fault_table import booking_external_id, meeting_counts
from tests.support.metrics import timed
from tests.support.problems import assert_problem

pytestmark = pytest.mark.faults

TOKEN_TIMEOUT = 1.0


def token_requests(emulator) -> list[dict]:
    return emulator.stats()["tokenRequests"]


def graph_calls(emulator, external_id: str) -> int:
    return meeting_counts(emulator, [external_id])[external_id]["calls"]


def test_a_slow_token_endpoint_is_503_and_the_retry_creates_one_meeting(
    start_service, emulator, callers, organizer, tally
):
    service = start_service(workers=1, TOKEN_TIMEOUT_SECONDS=str(TOKEN_TIMEOUT))
    client = tally.client(service.url, callers["eu"].key)
    emulator.add_fault(target="token", latencyMs=int(TOKEN_TIMEOUT * 1000) + 1500, count=1)
    body = booking(organizer)
    external_id = booking_external_id(callers["eu"].id, body["bookingId"])

    answer, elapsed = timed(client.post, body)
    assert_problem(answer, 503, "token-unavailable")
    assert int(answer.headers["Retry-After"]) >= 1
    assert elapsed < TOKEN_TIMEOUT + 3  # the token timeout, not the emulator's 2.5 s
    assert graph_calls(emulator, external_id) == 0  # no token, no Graph call

    again = client.post(body)
    assert again.status_code == 201, again.text
    tally.settle(emulator, [external_id], organizer=organizer)


def test_a_failing_token_endpoint_is_503_and_retry_after_is_honest(
    start_service, emulator, callers, organizer, tally
):
    service = start_service(workers=1)
    client = tally.client(service.url, callers["eu"].key)
    emulator.add_fault(target="token", status=500)
    body = booking(organizer)
    external_id = booking_external_id(callers["eu"].id, body["bookingId"])

    answer = client.post(body)
    problem = assert_problem(answer, 503, "token-unavailable")
    retry_after = int(answer.headers["Retry-After"])
    assert problem["retryAfterSeconds"] == retry_after
    assert [t["status"] for t in token_requests(emulator)][-1] == 500
    assert graph_calls(emulator, external_id) == 0

    emulator.clear_faults()
    # MSAL holds on to a 5xx from the token endpoint for a few seconds (its throttling);
    # a caller that waits as told gets through.
    time.sleep(retry_after)
    again = client.post(body)
    assert again.status_code == 201, again.text
    tally.settle(emulator, [external_id], organizer=organizer)


def test_an_unreachable_identity_provider_is_503_at_once(
    start_service, emulator, callers, organizer, tally
):
    nothing_listens = f"https://127.0.0.1:{free_port()}"
    service = start_service(workers=1, AZURE_AUTHORITY_HOST=nothing_listens)
    client = tally.client(service.url, callers["eu"].key)
    body = booking(organizer)
    external_id = booking_external_id(callers["eu"].id, body["bookingId"])

    for _ in range(2):  # the second time too: a failed start of MSAL is not cached
        answer, elapsed = timed(client.post, body)
        problem = assert_problem(answer, 503, "token-unavailable")
        assert "unreachable" in problem["detail"]
        assert int(answer.headers["Retry-After"]) >= 1
        assert elapsed < 5
    tally.settle(emulator, [external_id], created=0, organizer=organizer)
    assert graph_calls(emulator, external_id) == 0


def test_rejected_credentials_are_502_and_the_fixed_service_creates_one_meeting(
    start_service, emulator, callers, organizer, tally
):
    wrong = start_service(workers=1, AZURE_CLIENT_SECRET=f"wrong-{uuid.uuid4()}")
    body = booking(organizer)
    external_id = booking_external_id(callers["eu"].id, body["bookingId"])

    answer = tally.client(wrong.url, callers["eu"].key).post(body)
    problem = assert_problem(answer, 502, "token-rejected")
    assert problem["tokenError"]["error"] == "invalid_client"
    assert graph_calls(emulator, external_id) == 0

    # The operator fixes the secret and restarts; the booking system retries.
    fixed = start_service(workers=1)
    again = tally.client(fixed.url, callers["eu"].key).post(body)
    assert again.status_code == 201, again.text
    tally.settle(emulator, [external_id], organizer=organizer)


def test_a_revoked_token_is_replaced_once_and_the_meeting_created_once(
    start_service, own_emulator, callers, organizer, tally
):
    emulator = own_emulator  # revoking tokens cannot be undone on the shared emulator
    service = start_service(workers=1, emulator=emulator)
    client = tally.client(service.url, callers["eu"].key)
    warm = client.post(booking(organizer))
    assert warm.status_code == 201, warm.text
    granted_before = len([t for t in token_requests(emulator) if t["status"] == 200])

    emulator.revoke_tokens()  # Graph now refuses the token the worker has cached
    answer = client.post(booking(organizer))
    assert answer.status_code == 201, answer.text
    external_id = answer.json()["externalId"]
    assert [r["status"] for r in emulator.requests_for(external_id)] == [401, 201]
    granted = len([t for t in token_requests(emulator) if t["status"] == 200])
    assert granted - granted_before == 1
    tally.settle(emulator, [warm.json()["externalId"], external_id], organizer=organizer)


def test_a_cached_token_keeps_working_while_the_token_endpoint_fails(
    start_service, emulator, callers, organizer, tally
):
    service = start_service(workers=1)
    client = tally.client(service.url, callers["eu"].key)
    warm = client.post(booking(organizer))
    assert warm.status_code == 201, warm.text

    emulator.add_fault(target="token", status=503)
    answers = [client.post(booking(organizer)) for _ in range(3)]
    assert [a.status_code for a in answers] == [201] * 3, [a.text for a in answers]
    tally.settle(
        emulator,
        [warm.json()["externalId"]] + [a.json()["externalId"] for a in answers],
        organizer=organizer,
    )


# --- proactive refresh (refresh_in) while the token endpoint fails ------------------------

REFRESH_IN = 1


@pytest.fixture(scope="module")
def refreshing(tmp_path_factory):
    """An emulator of its own whose tokens carry refresh_in: MSAL refreshes them proactively
    REFRESH_IN seconds after issue, while they stay valid for an hour."""
    directory = tmp_path_factory.mktemp("refreshing-emulator")
    setup = default_config(directory, refresh_in_seconds=REFRESH_IN)
    with start_emulator(directory, setup.config) as handle:
        yield setup, handle


@pytest.fixture
def refreshing_emulator(refreshing):
    setup, handle = refreshing
    yield setup, handle
    handle.clear_faults()


@pytest.mark.parametrize(
    "fault",
    [{"status": 503}, {"status": 429, "retryAfter": "5"}, {"reset": True}],
    ids=["5xx", "429", "connection-reset"],
)
def test_a_due_refresh_that_fails_keeps_using_the_still_valid_token(
    start_service, refreshing_emulator, callers, tally, fault
):
    setup, emulator = refreshing_emulator
    service = start_service(
        workers=1,
        AZURE_TENANT_ID=setup.tenant_id,
        AZURE_CLIENT_ID=setup.client_id,
        AZURE_CLIENT_SECRET=setup.client_secret,
        AZURE_AUTHORITY_HOST=emulator.authority_host,
        GRAPH_BASE_URL=emulator.base_url,
        GRAPH_CA_BUNDLE=emulator.ca_bundle,
    )
    client = tally.client(service.url, callers["eu"].key)
    organizer = setup.user_with_policy
    warm = client.post(booking(organizer))
    assert warm.status_code == 201, warm.text
    issued = len(token_requests(emulator))

    time.sleep(REFRESH_IN + 1.1)  # refresh_on (whole seconds) has passed: the token is aging
    emulator.add_fault(target="token", **fault)
    answers = [client.post(booking(organizer)) for _ in range(3)]

    refreshes = token_requests(emulator)[issued:]
    assert refreshes, "MSAL did not try to refresh the aging token"
    assert [a.status_code for a in answers] == [201] * 3, [a.text for a in answers]
    tally.settle(emulator, [warm.json()["externalId"]] + [a.json()["externalId"] for a in answers])
