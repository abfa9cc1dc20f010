"""CallerRateLimits against a real redis-server of its own, which the test stops and starts
again: the limit counts while Redis answers; while Redis is unavailable it is not enforced
(requests pass, each counted in mps_caller_rate_limit_unenforced_total), as
service.core.rate_limits documents; once Redis is back it applies again."""

from __future__ import annotations

import pytest
import redis
from local_stack.redis_server import RedisServer
from prometheus_client import REGISTRY
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.core.rate_limits import CallerRateLimits
from service.domain.callers import Caller
from service.foundation.errors import RateLimited
from service.storage.gateway import RedisGateway

pytestmark = pytest.mark.integration

UNENFORCED = "mps_caller_rate_limit_unenforced_total"
LIMITED = Caller("limited", None, frozenset({"*"}), rate_limit="2/minute")
FREE = Caller("free", None, frozenset({"*"}))


def unenforced() -> float:
    return REGISTRY.get_sample_value(UNENFORCED) or 0.0


@pytest.fixture
def server(tmp_path):
    found = RedisServer(tmp_path / "redis").start()
    yield found
    found.stop()


@pytest.fixture
def gateway(server) -> RedisGateway:
    client = redis.Redis.from_url(
        server.url, decode_responses=True, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    return RedisGateway(client, timeout=0.5)


def test_the_limit_counts_and_answers_with_its_headers(gateway):
    checker = CallerRateLimits(gateway, None)
    checker.check(LIMITED)
    checker.check(LIMITED)
    with pytest.raises(RateLimited) as raised:
        checker.check(LIMITED)
    headers = raised.value.headers
    assert headers["RateLimit-Policy"] == '"caller";q=2;w=60'
    assert headers["RateLimit"].startswith('"caller";r=0;t=')
    assert 1 <= int(headers["Retry-After"]) <= 60


def test_while_redis_is_down_the_limit_is_not_enforced(server, gateway):
    checker = CallerRateLimits(gateway, None)
    checker.check(LIMITED)
    checker.check(LIMITED)  # the limit is used up
    server.stop()
    before = unenforced()
    for _ in range(5):
        checker.check(LIMITED)  # passes: no RateLimited
    assert unenforced() - before == 5
    # Redis is back (empty: nothing was persisted), so the limit counts from the start.
    server.start()
    checker.check(LIMITED)
    checker.check(LIMITED)
    with pytest.raises(RateLimited):
        checker.check(LIMITED)
    assert unenforced() - before == 5


def test_a_caller_without_a_limit_is_not_counted_and_the_default_applies(server, gateway):
    server.stop()
    before = unenforced()
    CallerRateLimits(gateway, None).check(FREE)
    assert unenforced() == before  # nothing to enforce, so nothing unenforced
    server.start()
    checker = CallerRateLimits(gateway, "1/minute")
    checker.check(FREE)
    with pytest.raises(RateLimited):
        checker.check(FREE)
