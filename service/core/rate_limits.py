"""Per-caller rate limits, counted in Redis so that every replica counts together.

A caller's limit is its CLIENTS_FILE `rateLimit`, else DEFAULT_CALLER_RATE_LIMIT, in the
`limits` library's syntax ("120/minute"); the `limits` library parses it. The counting is
one Lua script on the service's own Redis client (service.storage.gateway), not
Flask-Limiter's storage: that client already speaks every REDIS_URL form (one node, a
cluster, Sentinel) with the TLS files and REDIS_TIMEOUT_SECONDS, where Flask-Limiter would
open a second set of connections configured from a URI alone, without the CA bundle or
client certificate. The counter's key is service.storage.keys.rate_limit.

The window is a fixed window that starts with a caller's first request and lives in Redis
(its TTL), so replicas need no agreement on the time.

While Redis is unavailable the limit is not enforced: Redis down already stops bookings
(503 store-unavailable) but not replays of what the answers need no Redis for, and refusing
every request because the counter is away would turn a Redis blip into a full outage for
callers that behave. Each such request is counted in mps_caller_rate_limit_unenforced_total.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from limits import RateLimitItem

from service.domain.callers import Caller, parse_rate_limit
from service.foundation import metrics
from service.foundation.errors import RateLimited, StoreUnavailable
from service.storage import keys
from service.storage.gateway import RedisGateway

logger = logging.getLogger(__name__)

# KEYS[1] the caller's counter; ARGV[1] the window in ms. Returns {count, ms left}.
HIT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: RateLimitItem
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        """The IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers)."""
        window = self.limit.get_expiry()
        return {
            "RateLimit-Policy": f'"caller";q={self.limit.amount};w={window}',
            "RateLimit": f'"caller";r={self.remaining};t={self.reset_seconds}',
        }


class CallerRateLimits:
    def __init__(self, redis: RedisGateway, default: str | None) -> None:
        self.redis = redis
        self.default = default

    def limit_for(self, caller: Caller) -> RateLimitItem | None:
        text = caller.rate_limit or self.default
        return parse_rate_limit(text) if text else None

    def hit(self, caller: Caller) -> Decision | None:
        """Count one request of `caller`; None when it has no limit or Redis cannot count."""
        limit = self.limit_for(caller)
        if limit is None:
            return None
        window = limit.get_expiry()
        counter = keys.rate_limit(caller.id, limit.amount, window)

        def count() -> tuple[int, int]:
            found = self.redis.script(HIT)(keys=[counter], args=[window * 1000])
            assert isinstance(found, list)
            return int(found[0]), int(found[1])

        try:
            used, left_ms = self.redis.run(count)
        except StoreUnavailable:
            metrics.rate_limit_unenforced.inc()
            logger.warning("rate limit not enforced: Redis is unavailable")
            return None
        reset = max(1, -(-left_ms // 1000))
        return Decision(used <= limit.amount, limit, max(0, limit.amount - used), reset)

    def check(self, caller: Caller) -> None:
        """RateLimited when `caller` is over its limit."""
        decision = self.hit(caller)
        if decision is None or decision.allowed:
            return
        metrics.rate_limited.labels(caller=caller.id).inc()
        raise RateLimited(
            f"Caller {caller.id!r} is over its rate limit of {decision.limit.amount} requests "
            f"per {decision.limit.get_expiry()} s. Retry after Retry-After seconds.",
            limit=str(decision.limit),
            retry_after=decision.reset_seconds,
            headers=decision.headers(),
        )
