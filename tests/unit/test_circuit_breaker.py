"""The circuit breaker's state machine, on a clock the test moves by hand."""

import threading

import pytest

from service.graph.breaker import CircuitBreaker, CircuitOpen, State

pytestmark = pytest.mark.unit


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
    return CircuitBreaker(threshold=3, cooldown=10, clock=clock)


def fail(breaker, times):
    for _ in range(times):
        breaker.before_call()
        breaker.record_failure()


def test_opens_after_threshold_consecutive_failures(breaker, clock):
    fail(breaker, 2)
    assert breaker.state is State.CLOSED
    fail(breaker, 1)
    assert breaker.state is State.OPEN
    clock.now += 4
    with pytest.raises(CircuitOpen) as refused:
        breaker.before_call()
    assert refused.value.retry_after == pytest.approx(6)


def test_a_success_resets_the_count(breaker):
    fail(breaker, 2)
    breaker.before_call()
    breaker.record_success()
    fail(breaker, 2)
    assert breaker.state is State.CLOSED


def test_half_open_lets_one_probe_through_and_closes_on_success(breaker, clock):
    fail(breaker, 3)
    clock.now += 10
    assert breaker.state is State.HALF_OPEN
    breaker.before_call()  # the probe
    with pytest.raises(CircuitOpen):
        breaker.before_call()  # a second caller while the probe is out
    breaker.record_success()
    assert breaker.state is State.CLOSED
    breaker.before_call()


def test_a_failed_probe_opens_again_for_a_full_cooldown(breaker, clock):
    fail(breaker, 3)
    clock.now += 10
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state is State.OPEN
    clock.now += 9.5
    with pytest.raises(CircuitOpen):
        breaker.before_call()


def test_threshold_zero_disables_it(clock):
    breaker = CircuitBreaker(threshold=0, cooldown=10, clock=clock)
    fail(breaker, 100)
    breaker.before_call()
    assert breaker.state is State.CLOSED


def test_only_one_thread_probes(breaker, clock):
    fail(breaker, 3)
    clock.now += 10
    admitted = []
    barrier = threading.Barrier(8)

    def try_call():
        barrier.wait()
        try:
            breaker.before_call()
            admitted.append(1)
        except CircuitOpen:
            pass

    threads = [threading.Thread(target=try_call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 1


def test_the_retries_of_one_call_count_once(breaker):
    breaker.before_call()
    breaker.record_failure()
    for _ in range(10):
        breaker.before_call()
        breaker.record_failure(retry=True)
    assert breaker.state is State.CLOSED
    fail(breaker, 2)  # two other calls fail: three calls in a row
    assert breaker.state is State.OPEN


def test_a_failed_retry_still_ends_a_half_open_probe(breaker, clock):
    fail(breaker, 3)
    clock.now += 10
    breaker.before_call()  # the probe
    breaker.record_failure(retry=True)
    assert breaker.state is State.OPEN
