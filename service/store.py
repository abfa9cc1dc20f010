"""Provisioned bookings and single-flight locks in Redis.

Every Redis failure surfaces as `StoreUnavailable`, so callers decide on purpose what a
missing store means for them (see service.provisioning).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from service import metrics
from service.config import Settings
from service.errors import StoreUnavailable
from service.record import BookingRecord, NewerRecord, UnreadableRecord

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

    def run(self, operation: Callable[[], T]) -> T:
        """Run a Redis operation; any Redis failure becomes StoreUnavailable."""
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

    def get(self, caller_id: str, booking_id: str) -> BookingRecord | None:
        raw = self.run(lambda: self.client.get(key("booking", caller_id, booking_id)))
        if raw is None:
            return None
        try:
            return BookingRecord.from_json(str(raw))
        except NewerRecord as error:
            # Written by a newer release during a rolling update: do not overwrite what
            # this code cannot read; the caller retries, most likely on a newer replica.
            logger.warning("booking record of a newer format: %s", error)
            raise StoreUnavailable(
                "This booking was stored by a newer version of the service.", STORE_RETRY_AFTER
            ) from None
        except UnreadableRecord as error:
            # Treated as lost: the next createOrGet on the derived externalId returns the
            # same meeting, and storing it again repairs the record.
            logger.warning("unreadable booking record treated as absent: %s", error)
            return None

    def put(self, caller_id: str, booking_id: str, record: BookingRecord) -> None:
        payload = record.to_json()
        self.run(
            lambda: self.client.set(
                key("booking", caller_id, booking_id), payload, ex=self.ttl_seconds
            )
        )

    def acquire(self, caller_id: str, booking_id: str, token: str) -> bool:
        """Take the booking's single-flight lock with `token`; False if another holds it."""
        lock = key("lock", caller_id, booking_id)
        if self.run(lambda: self.client.set(lock, token, nx=True, px=self.lock_ttl_ms)):
            return True
        # redis-py sends a command again when its answer timed out (a stalled Redis). If
        # the first SET did land, the resent one was refused by our own lock: it is ours.
        return bool(self.run(lambda: self.client.get(lock)) == token)

    def release(self, caller_id: str, booking_id: str, token: str) -> None:
        self.run(lambda: self._release(keys=[key("lock", caller_id, booking_id)], args=[token]))

    def locked(self, caller_id: str, booking_id: str) -> bool:
        return bool(self.run(lambda: self.client.exists(key("lock", caller_id, booking_id))))

    def ping(self) -> bool:
        return bool(self.run(self.client.ping))
