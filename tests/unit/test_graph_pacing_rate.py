"""The pacer's arithmetic and keys: GRAPH_RATE_LIMIT's interval between two calls (with a
spare part of each period), and Redis keys under the service's prefix with one Redis
Cluster hash tag per app, so the pace and the gate share a slot (one script uses both)."""

from __future__ import annotations

import pytest

from service.config import RATE_LIMIT_SPARE, send_interval
from service.storage import keys

pytestmark = pytest.mark.unit

APP = "66666666-7777-8888-9999-000000000000"


def hash_tag(key: str) -> str:
    return key[key.index("{") + 1 : key.index("}")]


def test_pace_and_gate_share_the_apps_hash_tag():
    assert keys.graph_pace(APP) == f"mps:v1:graph-pace:{{{APP}}}"
    assert keys.graph_gate(APP) == f"mps:v1:graph-gate:{{{APP}}}"
    assert hash_tag(keys.graph_pace(APP)) == hash_tag(keys.graph_gate(APP)) == APP
    assert hash_tag(keys.graph_pace("other")) != hash_tag(keys.graph_pace(APP))


@pytest.mark.parametrize(
    ("limit", "seconds"),
    [("100/second", 0.0105), ("1/second", 1.05), ("5000/minute", 0.01201), ("36000/hour", 0.1)],
)
def test_the_interval_is_the_period_and_its_spare_over_the_amount(limit, seconds):
    assert send_interval(limit) == pytest.approx(seconds, rel=1e-3)


def test_a_period_keeps_its_spare_free_whatever_the_rate():
    # `amount` calls span the period plus the spare, so a send that leaves up to the spare
    # late cannot meet a window still holding `amount` calls.
    for limit, amount, period in (("100/second", 100, 1), ("20/second", 20, 1)):
        assert amount * send_interval(limit) == pytest.approx(period + RATE_LIMIT_SPARE)
