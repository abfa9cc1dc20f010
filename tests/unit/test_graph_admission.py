"""service.graph.admission without the app's pace (no pacer, no Redis): a real circuit
breaker on a clock moved by hand decides whether a call's next attempt may go out, and a
call's failed attempts count once towards opening it."""

import pytest

from service.foundation.backoff import Budget
from service.foundation.errors import GraphUnavailable
from service.graph.admission import Admission
from service.graph.breaker import CircuitBreaker, State
from service.graph.retry_policy import Failure

pytestmark = pytest.mark.unit

GRAPH_FAILED = Failure("503", graph_failed=True)
GRAPH_UP = Failure("429", retry_after=2.0)  # throttled, but Graph answered


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def breaker(clock):
    return CircuitBreaker(threshold=2, cooldown=10, clock=clock)


def admission(breaker: CircuitBreaker, crid: str = "crid") -> Admission:
    return Admission(breaker, None, Budget(5), budget_seconds=5, client_request_id=crid)


def failed_call(breaker: CircuitBreaker, attempts: int = 1) -> None:
    call = admission(breaker)
    for _ in range(attempts):
        call.wait_for_turn()
        call.record(GRAPH_FAILED)


def open_circuit(breaker: CircuitBreaker) -> None:
    failed_call(breaker)
    failed_call(breaker)
    assert breaker.state is State.OPEN


def test_the_failed_attempts_of_one_call_count_once(breaker):
    failed_call(breaker, attempts=5)
    assert breaker.state is State.CLOSED
    failed_call(breaker)  # a second call in a row
    assert breaker.state is State.OPEN


def test_an_answer_below_500_shows_graph_is_up(breaker):
    failed_call(breaker)
    call = admission(breaker)
    call.wait_for_turn()
    call.record(GRAPH_UP)
    failed_call(breaker)
    assert breaker.state is State.CLOSED  # the 429 broke the run of failures


def test_an_open_circuit_refuses_the_next_attempt_with_its_cooldown(breaker, clock):
    open_circuit(breaker)
    clock.now += 6.5
    with pytest.raises(GraphUnavailable) as refused:
        admission(breaker, "crid-9").wait_for_turn()
    assert refused.value.extensions == {
        "reason": "circuit_open",
        "clientRequestId": "crid-9",
        "retryAfterSeconds": 4,
    }
    assert "failed 2 times in a row" in refused.value.detail


def test_after_the_cooldown_one_call_probes_and_its_success_closes_the_circuit(breaker, clock):
    open_circuit(breaker)
    clock.now += 10
    probe, other = admission(breaker), admission(breaker)
    probe.wait_for_turn()
    with pytest.raises(GraphUnavailable) as refused:
        other.wait_for_turn()  # one probe at a time
    assert refused.value.headers == {"Retry-After": "1"}
    probe.record(GRAPH_UP)
    assert breaker.state is State.CLOSED
    other.wait_for_turn()


def test_a_failed_probe_opens_the_circuit_again_even_as_a_retry(breaker, clock):
    call = admission(breaker)
    call.wait_for_turn()
    call.record(GRAPH_FAILED)  # this call's first failure
    failed_call(breaker)
    clock.now += 10
    call.wait_for_turn()  # the probe, of a call that failed before
    call.record(GRAPH_FAILED)
    assert breaker.state is State.OPEN
