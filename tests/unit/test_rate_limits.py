"""CallerRateLimits against a stand-in for the booking store's Redis: the limit counts while
Redis answers, and while Redis is unavailable it is not enforced (requests pass, each one is
counted in mps_caller_rate_limit_unenforced_total), as service.rate_limits documents."""

from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from service.callers import Caller
from service.errors import RateLimited, StoreUnavailable
from service.rate_limits import CallerRateLimits

pytestmark = pytest.mark.unit

UNENFORCED = "mps_caller_rate_limit_unenforced_total"


class FakeStore:
    """BookingStore's `run` and `script` with the HIT script's effect in memory; `down`
    makes every call fail as an unavailable Redis does."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.down = False

    def run(self, operation: Callable[[], Any]) -> Any:
        if self.down:
            raise StoreUnavailable("Redis is unavailable", 1)
        return operation()

    def script(self, source: str) -> Callable[..., list[int]]:
        def hit(keys: list[str], args: list[int]) -> list[int]:
            self.counts[keys[0]] = self.counts.get(keys[0], 0) + 1
            return [self.counts[keys[0]], int(args[0])]

        return hit


def unenforced() -> float:
    return REGISTRY.get_sample_value(UNENFORCED) or 0.0


def limits(store: FakeStore, default: str | None = None) -> CallerRateLimits:
    return CallerRateLimits(store, default)  # type: ignore[arg-type]


CALLER = Caller("limited", None, frozenset({"*"}), rate_limit="2/minute")


def test_the_limit_counts_while_redis_answers() -> None:
    checker = limits(FakeStore())
    checker.check(CALLER)
    checker.check(CALLER)
    with pytest.raises(RateLimited) as raised:
        checker.check(CALLER)
    assert raised.value.headers["RateLimit-Policy"] == '"caller";q=2;w=60'
    assert raised.value.headers["RateLimit"] == '"caller";r=0;t=60'
    assert raised.value.headers["Retry-After"] == "60"


def test_while_redis_is_down_the_limit_is_not_enforced() -> None:
    store = FakeStore()
    checker = limits(store)
    checker.check(CALLER)
    checker.check(CALLER)  # the limit is used up
    store.down = True
    before = unenforced()
    for _ in range(5):
        checker.check(CALLER)  # passes: no RateLimited
    assert unenforced() - before == 5
    store.down = False
    with pytest.raises(RateLimited):  # enforced again once Redis answers
        checker.check(CALLER)
    assert unenforced() - before == 5


def test_a_caller_without_a_limit_is_not_counted() -> None:
    store = FakeStore()
    store.down = True
    before = unenforced()
    limits(store).check(Caller("free", None, frozenset({"*"})))
    assert unenforced() == before  # nothing to enforce, so nothing unenforced
    store.down = False
    checker = limits(store, default="1/minute")
    checker.check(Caller("free", None, frozenset({"*"})))
    with pytest.raises(RateLimited):
        checker.check(Caller("free", None, frozenset({"*"})))
