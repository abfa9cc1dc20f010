"""mps_redis_up is written only when it changes (service.foundation.metrics.report_redis), and still
follows every change."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from service.foundation import metrics

pytestmark = pytest.mark.unit


def redis_up() -> float | None:
    return REGISTRY.get_sample_value("mps_redis_up")


def test_the_gauge_follows_each_change_and_skips_repeats(monkeypatch):
    metrics._forget_redis_up()  # whatever an earlier test left
    writes: list[float] = []
    original = metrics.redis_up.set
    monkeypatch.setattr(
        metrics.redis_up, "set", lambda value: (writes.append(value), original(value))
    )
    metrics.report_redis(up=False)
    assert redis_up() == 0
    for _ in range(3):
        metrics.report_redis(up=True)
    assert redis_up() == 1
    metrics.report_redis(up=False)
    metrics.report_redis(up=False)
    assert redis_up() == 0
    assert writes == [0, 1, 0]


def test_a_forked_process_writes_its_first_value_again():
    metrics.report_redis(up=True)
    metrics._forget_redis_up()  # what os.register_at_fork runs in the child
    metrics.redis_up.set(0)  # the child's own series starts empty (multiprocess mode)
    metrics.report_redis(up=True)
    assert redis_up() == 1
