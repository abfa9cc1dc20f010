"""Whether and when a Graph call tries again after an attempt that Graph did not accept.

Pure decisions on the attempt's outcome (the status and headers of Graph's answer, or the
transport failure) and the call's budget; the client's attempt loop acts on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests

from service.foundation.backoff import Budget, parse_retry_after

# Statuses Graph uses for "not now": throttling, overload and gateway trouble.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Failures without an answer (named by `transport_failure`): all worth another attempt.
TRANSPORT_FAILURES = frozenset({"timeout", "connect_timeout", "connection_error"})
RETRY_REASONS = frozenset({str(status) for status in RETRYABLE_STATUSES} | TRANSPORT_FAILURES)
# Whose Retry-After speaks for the whole app, so it closes the shared throttle gate
# (service.graph.pacing) for every worker and replica: 429, Graph throttling the app. Not
# 503: that is Graph's own trouble, which the circuit breaker handles per process, and
# its Retry-After (120 s has been seen) would pause every call of the app however briefly
# the trouble lasts.
APP_WIDE_RETRY_AFTER = frozenset({"429"})


def transport_failure(error: requests.RequestException) -> str:
    """Name a failure that produced no HTTP answer. Only a read timeout means "Graph got the
    request but was slow" (504 when the budget runs out)."""
    if isinstance(error, requests.ConnectTimeout):  # also a ConnectionError: test it first
        return "connect_timeout"
    if isinstance(error, requests.ReadTimeout):
        return "timeout"
    # Refused, reset, or an answer cut off mid-body (ChunkedEncodingError): all "unreachable".
    return "connection_error"


@dataclass(frozen=True)
class Failure:
    """Why an attempt did not succeed, kept to explain an exhausted budget."""

    reason: str  # the HTTP status, or the transport failure's name
    retry_after: float | None = None
    response: requests.Response | None = None
    graph_failed: bool = False  # 5xx or no answer: counts towards the circuit

    @classmethod
    def of_answer(cls, response: requests.Response) -> Failure:
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        # Any answer below 500 (a 429 too) shows Graph is up; 5xx and silence count
        # towards opening the circuit.
        return cls(str(status), retry_after, response, graph_failed=status >= 500)

    @classmethod
    def of_error(cls, error: requests.RequestException) -> Failure:
        return cls(transport_failure(error), graph_failed=True)


def app_wide_retry_after(failure: Failure) -> float | None:
    """The seconds every call of the app should wait (the throttle gate), or None."""
    return failure.retry_after if failure.reason in APP_WIDE_RETRY_AFTER else None


@dataclass(frozen=True)
class Retry:
    delay: float  # seconds to wait before the next attempt


@dataclass(frozen=True)
class GiveUp:
    """The next attempt would start after the budget ends."""

    retry_after: float  # the delay it would have needed, passed on to the caller


@dataclass(frozen=True)
class Reject:
    """Graph's answer stands: another attempt would get the same."""

    response: requests.Response


def decide(failure: Failure, budget: Budget) -> Retry | GiveUp | Reject:
    """What follows a failed attempt. A Retry-After always wins over the budget's backoff,
    and is never shortened to fit the budget: then the call gives up at once."""
    if failure.response is not None and failure.reason not in RETRY_REASONS:
        return Reject(failure.response)
    delay = budget.next_delay(failure.retry_after)
    if delay > budget.remaining():
        return GiveUp(delay)
    return Retry(delay)
