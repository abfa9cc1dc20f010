"""Provisioned bookings and single-flight locks in Redis.

Every Redis failure surfaces as `StoreUnavailable`, so callers decide on purpose what a
missing store means for them (see service.provisioning).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from service import metrics
from service.config import Settings
from service.errors import StoreUnavailable

logger = logging.getLogger(__name__)
T = TypeVar("T")

KEY_PREFIX = "mps:v1"
STORE_RETRY_AFTER = 2.0

# Delete the lock only if it still holds our token: a lock that expired and was taken by
# another request must not be released by us.
RELEASE_IF_OWNER = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


# Count one more meeting for an organizer this month unless that would pass the limit:
# check and increment in one step, so concurrent requests cannot both take the last one.
RESERVE_UNDER_LIMIT = """
local created = redis.call('incr', KEYS[1])
if created == 1 then
    redis.call('expire', KEYS[1], ARGV[2])
end
if created > tonumber(ARGV[1]) then
    redis.call('decr', KEYS[1])
    return -1
end
return created
"""
# A month's counter outlives the month by a few days, for the usage endpoint's last look.
QUOTA_TTL_SECONDS = 40 * 24 * 3600


def quota_key(organizer_id: str, month: str) -> str:
    return f"{KEY_PREFIX}:quota:{organizer_id}:{month}"


def new_lock_token() -> str:
    return secrets.token_hex(16)


def key(kind: str, caller_id: str, booking_id: str) -> str:
    """The one place Redis keys are spelled. Caller ids cannot contain ':', so the key is
    unambiguous even though booking ids can."""
    return f"{KEY_PREFIX}:{kind}:{caller_id}:{booking_id}"


class BookingStore:
    def __init__(self, client: redis.Redis, *, ttl_seconds: int, lock_ttl: float) -> None:
        self.client = client
        self.ttl_seconds = ttl_seconds
        self.lock_ttl_ms = int(lock_ttl * 1000)
        self._release = client.register_script(RELEASE_IF_OWNER)
        self._reserve = client.register_script(RESERVE_UNDER_LIMIT)

    @classmethod
    def from_settings(cls, settings: Settings) -> BookingStore:
        client = redis.Redis.from_url(
            settings.redis_url,
            # Short timeouts: a Redis outage must cost a request milliseconds, not the
            # caller's whole timeout (the service degrades without Redis, see provisioning).
            socket_timeout=settings.redis_timeout,
            socket_connect_timeout=settings.redis_timeout,
            # Check idle pooled connections before use, so a Redis restart is noticed on
            # the next command rather than by a failed one.
            health_check_interval=10,
            retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
            decode_responses=True,
        )
        return cls(client, ttl_seconds=settings.booking_ttl_seconds, lock_ttl=settings.lock_ttl)

    def _call(self, operation: Callable[[], T]) -> T:
        try:
            result = operation()
        except redis.RedisError as error:
            metrics.redis_up.set(0)
            logger.warning("redis unavailable: %s", type(error).__name__)
            raise StoreUnavailable(
                "The booking store (Redis) is unavailable.", STORE_RETRY_AFTER
            ) from error
        metrics.redis_up.set(1)
        return result

    def get(self, caller_id: str, booking_id: str) -> dict[str, Any] | None:
        raw = self._call(lambda: self.client.get(key("booking", caller_id, booking_id)))
        if raw is None:
            return None
        record = json.loads(str(raw))
        return record if isinstance(record, dict) else None

    def put(self, caller_id: str, booking_id: str, record: dict[str, Any]) -> None:
        payload = json.dumps(record, separators=(",", ":"), sort_keys=True)
        self._call(
            lambda: self.client.set(
                key("booking", caller_id, booking_id), payload, ex=self.ttl_seconds
            )
        )

    def acquire(self, caller_id: str, booking_id: str, token: str) -> bool:
        """Take the booking's single-flight lock with `token`; False if another holds it."""
        lock = key("lock", caller_id, booking_id)
        if self._call(lambda: self.client.set(lock, token, nx=True, px=self.lock_ttl_ms)):
            return True
        # redis-py sends a command again when its answer timed out (a stalled Redis). If
        # the first SET did land, the resent one was refused by our own lock: it is ours.
        return bool(self._call(lambda: self.client.get(lock)) == token)

    def release(self, caller_id: str, booking_id: str, token: str) -> None:
        self._call(lambda: self._release(keys=[key("lock", caller_id, booking_id)], args=[token]))

    def locked(self, caller_id: str, booking_id: str) -> bool:
        return bool(self._call(lambda: self.client.exists(key("lock", caller_id, booking_id))))

    def reserve_meeting(self, organizer_id: str, month: str, limit: int) -> int | None:
        """Count a meeting for the organizer's month; the new count, or None at the limit."""
        created = self._call(
            lambda: self._reserve(
                keys=[quota_key(organizer_id, month)], args=[limit, QUOTA_TTL_SECONDS]
            )
        )
        return None if int(created) < 0 else int(created)

    def unreserve_meeting(self, organizer_id: str, month: str) -> None:
        self._call(lambda: self.client.decr(quota_key(organizer_id, month)))

    def meetings_created(self, organizer_ids: list[str], month: str) -> list[int]:
        keys = [quota_key(organizer_id, month) for organizer_id in organizer_ids]
        found = self._call(lambda: self.client.mget(keys))
        return [int(value or 0) for value in found]

    def meetings_created_in(self, month: str, most: int = 10_000) -> dict[str, int]:
        """Every organizer's count for a month (for /metrics); at most `most` organizers."""

        def scan() -> dict[str, int]:
            keys = []
            for found in self.client.scan_iter(match=quota_key("*", month), count=500):
                keys.append(str(found))
                if len(keys) >= most:
                    break
            values = self.client.mget(keys) if keys else []
            prefix, suffix = len(f"{KEY_PREFIX}:quota:"), len(f":{month}")
            return {k[prefix:-suffix]: int(v or 0) for k, v in zip(keys, values, strict=True)}

        return self._call(scan)

    def ping(self) -> bool:
        return bool(self._call(self.client.ping))
