"""Microsoft Graph onlineMeetings over one pooled `requests` session.

Each call is a short loop of attempts; its pieces each have a module: the token and its
renewal after a 401 (service.graph.call_token), the circuit and the app's pace
(service.graph.admission), when to retry (service.graph.retry_policy), the errors a call
ends in (service.graph.call_errors), and its metrics and logs (service.graph.telemetry).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from service.config import Settings
from service.foundation.backoff import Budget
from service.graph import attempt_spans, telemetry
from service.graph.admission import Admission
from service.graph.attempt_spans import Attempt
from service.graph.breaker import CircuitBreaker
from service.graph.call import Call, Sent, answer_document
from service.graph.call_errors import answer_error, budget_exhausted
from service.graph.call_token import CallToken
from service.graph.pacing import GraphPacer
from service.graph.retry_policy import Failure, GiveUp, Reject, decide
from service.identity.app_tokens import TokenProvider


@dataclass(frozen=True)
class GraphResult:
    created: bool  # Graph answered 201 (a new meeting) rather than 200 (it existed)
    meeting: dict[str, Any]
    request_id: str | None
    client_request_id: str


ORGANIZER_UNKNOWN = (
    "Microsoft Graph does not know this organizer: organizerId must be the Entra object ID "
    "of a user in the tenant (with a Teams license)."
)
MEETING_GONE = (
    "Microsoft Graph no longer has this booking's meeting (deleted outside this service?). "
    "Cancel the booking (DELETE) and book it again to get a new one."
)


class GraphClient:
    def __init__(
        self,
        *,
        base_url: str,
        api_version: str,
        session: requests.Session,
        tokens: TokenProvider,
        connect_timeout: float,
        read_timeout: float,
        budget_seconds: float,
        breaker: CircuitBreaker,
        pacer: GraphPacer | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`pacer`: the app's shared pace and throttle gate; None: neither (each call
        finds Graph's throttling by itself)."""
        self.root = f"{base_url}/{api_version}"
        self.session = session
        self.tokens = tokens
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.budget_seconds = budget_seconds
        self.breaker = breaker
        self.pacer = pacer
        self.sleep = sleep

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        session: requests.Session,
        tokens: TokenProvider,
        pacer: GraphPacer | None = None,
    ) -> GraphClient:
        return cls(
            base_url=settings.graph_base_url,
            api_version=settings.graph_api_version,
            session=session,
            tokens=tokens,
            connect_timeout=settings.graph_connect_timeout,
            read_timeout=settings.graph_read_timeout,
            budget_seconds=settings.graph_budget,
            breaker=CircuitBreaker(
                threshold=settings.graph_circuit_failures,
                cooldown=settings.graph_circuit_cooldown,
            ),
            pacer=pacer,
        )

    def budget(self) -> Budget:
        """A new budget of GRAPH_BUDGET_SECONDS, for calls that must share one (the
        createOrGet and the options PATCH of one booking)."""
        return Budget(self.budget_seconds)

    def create_or_get(
        self,
        organizer_id: str,
        body: dict[str, Any],
        *,
        prefer: str | None = None,
        budget: Budget | None = None,
    ) -> GraphResult:
        """POST /users/{organizer}/onlineMeetings/createOrGet, retried inside the budget.

        Retrying a POST is safe here only because createOrGet is idempotent on (tenant,
        organizer, externalId): a retry after a lost response returns the meeting the first
        attempt created instead of a second one. Do not reuse this for plain POSTs.
        """
        call = self._call(
            "createOrGet",
            "POST",
            organizer_id,
            "/createOrGet",
            "/createOrGet",
            body,
            accept=frozenset({200, 201}),
            not_found=ORGANIZER_UNKNOWN,
            prefer=prefer,
        )
        return self._meeting(self._send(call, budget))

    def update(
        self,
        organizer_id: str,
        meeting_id: str,
        body: dict[str, Any],
        *,
        prefer: str | None = None,
        budget: Budget | None = None,
    ) -> GraphResult:
        """PATCH /users/{organizer}/onlineMeetings/{id}. Retrying is safe: the same PATCH
        applied twice leaves the meeting as applying it once does."""
        call = self._call(
            "updateMeeting",
            "PATCH",
            organizer_id,
            f"/{quote(meeting_id, safe='')}",
            "/{meetingId}",
            body,
            accept=frozenset({200}),
            not_found=MEETING_GONE,
            prefer=prefer,
        )
        return self._meeting(self._send(call, budget))

    def delete(self, organizer_id: str, meeting_id: str) -> bool:
        """DELETE /users/{organizer}/onlineMeetings/{id}; False if Graph no longer had it.

        404 counts as done: the meeting is gone either way, for instance because an earlier
        attempt deleted it and only its answer was lost.
        """
        call = self._call(
            "deleteMeeting",
            "DELETE",
            organizer_id,
            f"/{quote(meeting_id, safe='')}",
            "/{meetingId}",
            None,
            accept=frozenset({204, 200, 404}),
            not_found=MEETING_GONE,
        )
        return self._send(call).response.status_code != 404

    def _call(
        self,
        operation: str,
        method: str,
        organizer_id: str,
        resource: str,
        template: str,
        body: dict[str, Any] | None,
        *,
        accept: frozenset[int],
        not_found: str,
        prefer: str | None = None,
    ) -> Call:
        """A call to /users/{organizer}/onlineMeetings{resource}; `template` is `resource`
        with its ids as {placeholders}."""
        url = f"{self.root}/users/{organizer_id}/onlineMeetings{resource}"
        route = f"/users/{{id}}/onlineMeetings{template}"
        return Call(operation, method, organizer_id, url, body, accept, not_found, prefer, route)

    def _meeting(self, sent: Sent) -> GraphResult:
        response = sent.response
        meeting = answer_document(response)
        if not isinstance(meeting.get("id"), str):
            raise answer_error(sent.call, response)
        return GraphResult(
            response.status_code == 201,
            meeting,
            response.headers.get("request-id"),
            sent.call.client_request_id,
        )

    def _send(self, call: Call, budget: Budget | None = None) -> Sent:
        """One logical Graph call: attempts until an accepted status, inside the budget (its
        own, or one shared with another call)."""
        budget = budget or self.budget()
        token = CallToken(self.tokens)
        admission = Admission(
            self.breaker,
            self.pacer,
            budget,
            budget_seconds=self.budget_seconds,
            client_request_id=call.client_request_id,
        )
        for retry in itertools.count():
            bearer = token.get()
            admission.wait_for_turn()
            outcome = self._attempt(call, bearer, budget, retry)
            admission.record(outcome)
            if isinstance(outcome, Sent):
                return outcome
            if outcome.reason == "401" and token.renew(outcome.response):
                continue
            self.sleep(self._retry_delay(call, outcome, budget))
        raise AssertionError("unreachable: itertools.count() never ends")

    def _retry_delay(self, call: Call, failure: Failure, budget: Budget) -> float:
        """The pause before the next attempt; raises the call's error when Graph's answer
        stands or the pause would end after the budget."""
        decision = decide(failure, budget)
        if isinstance(decision, Reject):
            raise answer_error(call, decision.response)
        if isinstance(decision, GiveUp):
            raise budget_exhausted(
                failure,
                decision.retry_after,
                budget_seconds=self.budget_seconds,
                client_request_id=call.client_request_id,
            )
        telemetry.retrying(call, failure.reason, failure.retry_after, decision.delay)
        return decision.delay

    def _attempt(self, call: Call, token: str, budget: Budget, retry: int = 0) -> Sent | Failure:
        """One HTTP request; `retry` counts the call's earlier attempts (its span shows it,
        service.graph.attempt_spans)."""
        # Never a zero timeout (requests would fail at once): the last attempt may overrun
        # the budget by this much at most.
        remaining = max(budget.remaining(), 0.1)
        timeout = (min(self.connect_timeout, remaining), min(self.read_timeout, remaining))
        headers = {
            "Authorization": f"Bearer {token}",
            "client-request-id": call.client_request_id,
            "return-client-request-id": "true",
            "Accept": "application/json",
        }
        if call.prefer is not None:
            headers["Prefer"] = call.prefer
        attempt = Attempt(call.operation, call.route, self.root, call.client_request_id, retry)
        started = time.perf_counter()
        try:
            with attempt_spans.sending(attempt):
                response = self.session.request(
                    call.method, call.url, json=call.body, headers=headers, timeout=timeout
                )
        except requests.RequestException as error:
            failure = Failure.of_error(error)
            telemetry.answered(call, started, failure.reason)
            return failure
        telemetry.answered(
            call, started, str(response.status_code), response.headers.get("request-id")
        )
        if response.status_code in call.accept:
            return Sent(call, response)
        return Failure.of_answer(response)
