import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from service.foundation.backoff import Budget, parse_retry_after

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 21, 9, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 0 ", 0.0),
        ("2.128", 2.128),
        ("nan", None),
        ("inf", None),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),  # already past
        ("Sat, 21 Nov 2026 09:00:12 GMT", 12.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-3", None),
    ],
)
def test_retry_after_in_both_forms(header, seconds):
    assert parse_retry_after(header, now=NOW) == seconds


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_budget_counts_down_and_never_goes_negative():
    clock = FakeClock()
    budget = Budget(10, clock=clock)
    assert budget.remaining() == 10
    clock.now += 4
    assert budget.remaining() == 6
    clock.now += 20
    assert budget.remaining() == 0


def test_retry_after_wins_over_backoff():
    budget = Budget(10, clock=FakeClock())
    assert budget.next_delay(3.5) == 3.5


def test_backoff_grows_exponentially_with_full_jitter_up_to_the_cap():
    budget = Budget(100, base=0.5, cap=2.0, clock=FakeClock(), rng=random.Random(7))
    ceilings = [0.5, 1.0, 2.0, 2.0, 2.0]
    delays = [budget.next_delay(None) for _ in ceilings]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert 0 <= delay <= ceiling
    assert len(set(delays)) == len(delays)  # jittered, not a fixed schedule
