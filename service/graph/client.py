"""Microsoft Graph onlineMeetings over one pooled `requests` session."""

from __future__ import annotations

import base64
import binascii
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import quote

import requests

from service.config import Settings
from service.foundation import metrics
from service.foundation.backoff import Budget, parse_retry_after
from service.foundation.errors import (
    ACCESS_POLICY_HELP,
    GraphAccessDenied,
    GraphRejected,
    GraphTimeout,
    GraphUnavailable,
    GraphUnexpected,
)
from service.graph.breaker import CircuitBreaker, CircuitOpen, State
from service.graph.pacing import GraphPacer, Refused
from service.identity.app_tokens import TokenProvider

logger = logging.getLogger(__name__)

# A CAE claims challenge in a Graph 401's WWW-Authenticate (the claims are base64 JSON).
INSUFFICIENT_CLAIMS = re.compile(r'error\s*=\s*"insufficient_claims"', re.IGNORECASE)
CLAIMS = re.compile(r'claims\s*=\s*"([A-Za-z0-9+/=_-]+)"', re.IGNORECASE)


def claims_challenge(www_authenticate: str | None) -> str | None:
    """The decoded claims of a CAE challenge (`Bearer ..., error="insufficient_claims",
    claims="<base64>"`), or None when the header carries none."""
    if not www_authenticate or not INSUFFICIENT_CLAIMS.search(www_authenticate):
        return None
    found = CLAIMS.search(www_authenticate)
    if found is None:
        return None
    encoded = found.group(1)
    try:
        decoded = base64.urlsafe_b64decode(
            encoded.replace("+", "-").replace("/", "_") + "=" * (-len(encoded) % 4)
        ).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded


# Statuses Graph uses for "not now": throttling, overload and gateway trouble.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Whose Retry-After speaks for the whole app, so it closes the shared throttle gate
# (service.graph.pacing) for every worker and replica: 429, Graph throttling the app. Not
# 503: that is Graph's own trouble, which the circuit breaker handles per process, and
# its Retry-After (120 s has been seen) would pause every call of the app however briefly
# the trouble lasts.
APP_WIDE_RETRY_AFTER = frozenset({"429"})


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


@dataclass(frozen=True)
class _Call:
    """One logical Graph call, whatever number of attempts it takes."""

    operation: str  # the metrics and log name
    method: str
    organizer_id: str
    url: str
    body: dict[str, Any] | None
    accept: frozenset[int]
    not_found: str  # what a 404 means for this operation
    prefer: str | None = None  # the Prefer header, e.g. include-unknown-enum-members
    # One id for all attempts, so Microsoft support can follow the whole call.
    client_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True)
class Sent:
    """An accepted answer to a call."""

    call: _Call
    response: requests.Response
    graph_failed = False


@dataclass(frozen=True)
class _Failure:
    """Why the last attempt did not succeed, kept to explain an exhausted budget."""

    reason: str
    retry_after: float | None = None
    response: requests.Response | None = None
    graph_failed: bool = False  # 5xx or no answer: counts towards the circuit


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
        return self._meeting(
            self._send(
                "createOrGet",
                "POST",
                organizer_id,
                "/createOrGet",
                body,
                accept=frozenset({200, 201}),
                not_found=ORGANIZER_UNKNOWN,
                prefer=prefer,
                budget=budget,
            )
        )

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
        return self._meeting(
            self._send(
                "updateMeeting",
                "PATCH",
                organizer_id,
                f"/{quote(meeting_id, safe='')}",
                body,
                accept=frozenset({200}),
                not_found=MEETING_GONE,
                prefer=prefer,
                budget=budget,
            )
        )

    def delete(self, organizer_id: str, meeting_id: str) -> bool:
        """DELETE /users/{organizer}/onlineMeetings/{id}; False if Graph no longer had it.

        404 counts as done: the meeting is gone either way, for instance because an earlier
        attempt deleted it and only its answer was lost.
        """
        sent = self._send(
            "deleteMeeting",
            "DELETE",
            organizer_id,
            f"/{quote(meeting_id, safe='')}",
            None,
            accept=frozenset({204, 200, 404}),
            not_found=MEETING_GONE,
        )
        return sent.response.status_code != 404

    def _meeting(self, sent: Sent) -> GraphResult:
        response = sent.response
        meeting = _json(response)
        if not isinstance(meeting.get("id"), str):
            self._raise_for(sent.call, response)
        return GraphResult(
            response.status_code == 201,
            meeting,
            response.headers.get("request-id"),
            sent.call.client_request_id,
        )

    def _send(
        self,
        operation: str,
        method: str,
        organizer_id: str,
        resource: str,
        body: dict[str, Any] | None,
        *,
        accept: frozenset[int],
        not_found: str,
        prefer: str | None = None,
        budget: Budget | None = None,
    ) -> Sent:
        """One logical Graph call to /users/{organizer}/onlineMeetings{resource}: attempts
        until an accepted status, inside the budget (its own, or one shared with another
        call)."""
        call = _Call(
            operation,
            method,
            organizer_id,
            f"{self.root}/users/{organizer_id}/onlineMeetings{resource}",
            body,
            accept,
            not_found,
            prefer,
        )
        client_request_id = call.client_request_id
        budget = budget or Budget(self.budget_seconds)
        token_refreshed = False
        challenge: str | None = None  # a CAE claims challenge to answer with the next token
        graph_failed = False  # counted towards the circuit once per call (service.graph.breaker)
        while True:
            token = self.tokens.token(challenge) if challenge else self.tokens.token()
            challenge = None
            if self.breaker.state is State.OPEN:
                self._admit(client_request_id)  # refused at once, without waiting a turn
            # The turn before the circuit: a half-open circuit admits one probe, which must
            # then be sent, not refused by the pacer.
            self._take_turn(budget, client_request_id)
            self._admit(client_request_id)
            outcome = self._attempt(call, token, budget)
            if outcome.graph_failed:
                self.breaker.record_failure(retry=graph_failed)
                graph_failed = True
            else:
                self.breaker.record_success()
            if isinstance(outcome, Sent):
                return outcome
            if outcome.reason == "401" and not token_refreshed:
                # The token expired or was revoked before MSAL's cache knew: get a new one,
                # once. A second 401 means something else is wrong. With a CAE claims
                # challenge, the new token is asked for with those claims.
                token_refreshed = True
                response = outcome.response
                challenge = claims_challenge(
                    response.headers.get("WWW-Authenticate") if response is not None else None
                )
                if challenge is not None:
                    metrics.cae_challenges.inc()
                    logger.info("graph sent a claims challenge (CAE), answering it once")
                else:
                    self.tokens.invalidate()
                continue
            if outcome.response is not None and outcome.reason not in RETRY_REASONS:
                self._raise_for(call, outcome.response)
            if (
                self.pacer is not None
                and outcome.retry_after is not None
                and outcome.reason in APP_WIDE_RETRY_AFTER
            ):
                self.pacer.close_gate(outcome.retry_after)
            delay = budget.next_delay(outcome.retry_after)
            if delay > budget.remaining():
                self._exhausted(outcome, delay, client_request_id)
            metrics.graph_retries.labels(reason=outcome.reason).inc()
            if outcome.retry_after is not None:
                metrics.graph_retry_after.inc(outcome.retry_after)
            logger.info(
                "retrying %s",
                operation,
                extra={
                    "reason": outcome.reason,
                    "delay": round(delay, 3),
                    "clientRequestId": client_request_id,
                },
            )
            self.sleep(delay)

    def _take_turn(self, budget: Budget, client_request_id: str) -> None:
        """Wait for the app's next turn to call Graph (GRAPH_RATE_LIMIT, Graph's last
        Retry-After); when it comes after the budget ends, answer as an exhausted budget."""
        if self.pacer is None:
            return
        try:
            self.pacer.take_turn(budget)
        except Refused as refused:
            reason = "throttled" if refused.gated else "paced"
            self._exhausted(_Failure(reason), refused.wait, client_request_id)

    def _admit(self, client_request_id: str) -> None:
        try:
            self.breaker.before_call()
        except CircuitOpen as refused:
            logger.warning(
                "graph circuit open, call refused",
                extra={"clientRequestId": client_request_id, "failures": refused.failures},
            )
            raise GraphUnavailable(
                f"Microsoft Graph failed {self.breaker.threshold} times in a row, so this "
                "instance pauses its calls to let it recover. Retrying with the same bookingId "
                "after Retry-After is safe.",
                retry_after=refused.retry_after,
                extensions={"reason": "circuit_open", "clientRequestId": client_request_id},
            ) from None

    def _attempt(self, call: _Call, token: str, budget: Budget) -> Sent | _Failure:
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
        started = time.perf_counter()
        try:
            response = self.session.request(
                call.method, call.url, json=call.body, headers=headers, timeout=timeout
            )
        except requests.RequestException as error:
            reason = _transport_failure(error)
            self._record(call, started, reason)
            return _Failure(reason, graph_failed=True)
        status = response.status_code
        self._record(call, started, str(status), response.headers.get("request-id"))
        if status in call.accept:
            return Sent(call, response)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        # Any answer below 500 (a 429 too) shows Graph is up; 5xx and silence count
        # towards opening the circuit.
        return _Failure(str(status), retry_after, response, graph_failed=status >= 500)

    def _record(
        self, call: _Call, started: float, outcome: str, request_id: str | None = None
    ) -> None:
        elapsed = time.perf_counter() - started
        metrics.graph_calls.labels(operation=call.operation, status=outcome).inc()
        metrics.graph_latency.labels(operation=call.operation).observe(elapsed)
        logger.info(
            "graph %s answered",
            call.operation,
            extra={
                "graphStatus": outcome,
                "clientRequestId": call.client_request_id,
                "graphRequestId": request_id,
                "latencyMs": round(elapsed * 1000, 1),
            },
        )

    def _raise_for(self, call: _Call, response: requests.Response) -> NoReturn:
        status = response.status_code
        found = _json(response).get("error")
        error: dict[str, Any] = found if isinstance(found, dict) else {}
        found = error.get("innerError")
        inner: dict[str, Any] = found if isinstance(found, dict) else {}
        details: dict[str, Any] = {
            "graph_status": status,
            "code": error.get("code"),
            "message": error.get("message"),
            "request_id": response.headers.get("request-id") or inner.get("request-id"),
            "client_request_id": call.client_request_id,
        }
        logger.warning(
            "graph %s failed",
            call.operation,
            extra={
                "graphStatus": status,
                "graphCode": details["code"],
                # An administrator needs it to grant the access policy (403).
                "organizerId": call.organizer_id,
            },
        )
        if status == 403:
            raise GraphAccessDenied(
                "Microsoft Graph refused to create meetings for this organizer on behalf of "
                "this app: the Teams application access policy is not granted. "
                + ACCESS_POLICY_HELP,
                **details,
            )
        if status == 404:
            raise GraphRejected(call.not_found, **details)
        if status == 400:
            raise GraphRejected(
                f"Microsoft Graph rejected the meeting request: {details['message']}",
                **details,
            )
        if status == 401:
            raise GraphUnexpected(
                "Microsoft Graph rejected a freshly acquired token: check that the app has "
                "the OnlineMeetings.ReadWrite.All application permission with admin consent "
                "and that GRAPH_CLOUD matches the tenant's cloud.",
                **details,
            )
        raise GraphUnexpected(
            f"Microsoft Graph answered {status} ({details['code']}), which this service does "
            f"not expect from {call.operation}.",
            **details,
        )

    def _exhausted(self, failure: _Failure, delay: float, client_request_id: str) -> NoReturn:
        if failure.reason == "timeout":
            raise GraphTimeout(
                f"Microsoft Graph did not answer within the {self.budget_seconds:g} s budget. "
                "The meeting may or may not exist yet; retrying with the same bookingId is "
                "safe and returns the same meeting.",
                extensions={"clientRequestId": client_request_id},
            )
        details: dict[str, Any] = {"reason": failure.reason, "clientRequestId": client_request_id}
        if failure.response is not None:
            details["graphRequestId"] = failure.response.headers.get("request-id")
        raise GraphUnavailable(
            f"Microsoft Graph is unavailable or throttling ({failure.reason}) and the "
            f"{self.budget_seconds:g} s retry budget ran out. Retrying with the same bookingId "
            "is safe.",
            retry_after=delay,
            extensions=details,
        )


RETRY_REASONS = frozenset(
    {str(status) for status in RETRYABLE_STATUSES}
    | {"timeout", "connect_timeout", "connection_error"}
)


def _transport_failure(error: requests.RequestException) -> str:
    """Name a failure that produced no HTTP answer. Only a read timeout means "Graph got the
    request but was slow" (504 when the budget runs out)."""
    if isinstance(error, requests.ConnectTimeout):  # also a ConnectionError: test it first
        return "connect_timeout"
    if isinstance(error, requests.ReadTimeout):
        return "timeout"
    # Refused, reset, or an answer cut off mid-body (ChunkedEncodingError): all "unreachable".
    return "connection_error"


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        document = response.json()
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}
