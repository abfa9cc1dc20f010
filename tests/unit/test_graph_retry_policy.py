"""service.graph.retry_policy: what an attempt's outcome is (Graph's answer, or the
transport failure) and what follows it inside the call's budget, on a clock moved by hand."""

import random

import pytest
import requests

from service.foundation.backoff import Budget
from service.graph.retry_policy import (
    Failure,
    GiveUp,
    Reject,
    Retry,
    app_wide_retry_after,
    decide,
)

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def answer(status: int, retry_after: str | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return response


def budget(seconds: float = 10, clock: Clock | None = None) -> Budget:
    return Budget(seconds, base=0.2, cap=5.0, clock=clock or Clock(), rng=random.Random(1))


@pytest.mark.parametrize(
    ("status", "graph_failed"),
    [(429, False), (400, False), (404, False), (500, True), (503, True), (504, True)],
)
def test_only_a_5xx_answer_counts_towards_the_circuit(status, graph_failed):
    failure = Failure.of_answer(answer(status))
    assert failure.reason == str(status)
    assert failure.graph_failed is graph_failed


def test_an_answer_keeps_its_retry_after_in_seconds():
    assert Failure.of_answer(answer(429, "2.5")).retry_after == 2.5
    assert Failure.of_answer(answer(503, "Sat, 01 Jan 2000 00:00:00 GMT")).retry_after == 0.0
    assert Failure.of_answer(answer(429)).retry_after is None
    assert Failure.of_answer(answer(429, "soon")).retry_after is None


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        # A ConnectTimeout is also a ConnectionError: it must still be named for itself.
        (requests.ConnectTimeout(), "connect_timeout"),
        (requests.ReadTimeout(), "timeout"),
        (requests.ConnectionError(), "connection_error"),
        (requests.exceptions.ChunkedEncodingError(), "connection_error"),
    ],
)
def test_a_failure_without_an_answer_is_named_and_counts_towards_the_circuit(error, reason):
    failure = Failure.of_error(error)
    assert failure.reason == reason
    assert failure.graph_failed
    assert failure.response is None and failure.retry_after is None


def test_a_429s_retry_after_is_waited_exactly():
    assert decide(Failure.of_answer(answer(429, "2")), budget()) == Retry(2.0)


def test_a_503s_retry_after_is_waited_exactly():
    assert decide(Failure.of_answer(answer(503, "1.5")), budget()) == Retry(1.5)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_without_retry_after_the_backoff_of_the_budget_decides(status):
    first, second = budget(), budget()
    decision = decide(Failure.of_answer(answer(status)), first)
    assert decision == Retry(second.next_delay(None))  # the same jitter, drawn the same way
    assert isinstance(decision, Retry) and 0 <= decision.delay <= 0.2


@pytest.mark.parametrize("reason", ["timeout", "connect_timeout", "connection_error"])
def test_a_failure_without_an_answer_is_retried(reason):
    decision = decide(Failure(reason, graph_failed=True), budget())
    assert isinstance(decision, Retry)


def test_retries_back_off_further_each_time():
    shared = budget(100)
    delays = []
    for _ in range(6):
        decision = decide(Failure("timeout", graph_failed=True), shared)
        assert isinstance(decision, Retry)
        delays.append(decision.delay)
    assert shared.attempt == 6
    assert max(delays[3:]) > 0.2  # beyond the first ceiling: the ceiling grew


def test_a_retry_after_beyond_the_budget_gives_up_at_once_and_is_passed_on_whole():
    assert decide(Failure.of_answer(answer(503, "120")), budget(10)) == GiveUp(120.0)


def test_a_retry_after_that_just_fits_is_waited():
    assert decide(Failure.of_answer(answer(429, "10")), budget(10)) == Retry(10.0)


def test_an_exhausted_budget_gives_up_with_the_delay_it_would_have_needed():
    clock = Clock()
    spent = budget(1, clock)
    clock.now += 1
    decision = decide(Failure("timeout", graph_failed=True), spent)
    assert isinstance(decision, GiveUp) and decision.retry_after > 0
    assert decide(Failure.of_answer(answer(429, "3")), spent) == GiveUp(3.0)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 501])
def test_any_other_answer_stands_and_takes_nothing_from_the_budget(status):
    response = answer(status, "1")
    shared = budget()
    assert decide(Failure.of_answer(response), shared) == Reject(response)
    assert shared.attempt == 0


def test_only_a_429s_retry_after_speaks_for_the_whole_app():
    assert app_wide_retry_after(Failure.of_answer(answer(429, "4"))) == 4.0
    assert app_wide_retry_after(Failure.of_answer(answer(429))) is None
    # 503 is Graph's own trouble: its Retry-After is this call's, not the app's.
    assert app_wide_retry_after(Failure.of_answer(answer(503, "120"))) is None
    assert app_wide_retry_after(Failure("timeout", graph_failed=True)) is None
