"""The service's one way into Redis: the client, its Lua scripts, and what a failure means.

Every Redis failure surfaces as `StoreUnavailable`, so callers decide on purpose what a
missing Redis means for them (see service.core.provisioning), and mps_redis_up follows
every command's outcome. The booking records, the booking locks, the quota, the rate
limits and the Graph pacer all go through it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

import redis
from redis.client import NEVER_DECODE
from redis.commands.core import Script
from redis.credentials import CredentialProvider
from redis.exceptions import RedisClusterException

from service.config import Settings
from service.foundation import metrics
from service.foundation.errors import StoreUnavailable
from service.storage import redis_client
from service.storage.redis_client import RedisClient

logger = logging.getLogger(__name__)
T = TypeVar("T")

STORE_RETRY_AFTER = 2.0
# What a Redis failure can raise: redis-py's errors, and its cluster client's own family
# (SlotNotCoveredError, "cannot be connected"), which is not a RedisError.
REDIS_FAILURES = (redis.RedisError, RedisClusterException)


class RedisGateway:
    def __init__(
        self,
        client: RedisClient | Callable[[], RedisClient],
        *,
        timeout: float | None = None,
    ) -> None:
        """`client`, or a function that builds it on first use (a RedisCluster connects when
        built; built here inside `run`, an unreachable cluster is a StoreUnavailable like
        any outage, not a service that cannot start). `timeout`: the client's socket
        timeout, which bounds how long a command may block (None: the client has none)."""
        self._client: RedisClient | None = None if callable(client) else client
        self._build = client if callable(client) else None
        self._building = threading.Lock()
        self._scripts: dict[str, Script] = {}
        self.timeout = timeout

    @classmethod
    def from_settings(
        cls, settings: Settings, credentials: CredentialProvider | None = None
    ) -> RedisGateway:
        """`credentials`: how connections log in when not with REDIS_URL's password
        (REDIS_AUTH=entra: service.identity.redis_credentials)."""
        return cls(
            lambda: redis_client.build(settings.redis, settings.redis_timeout, credentials),
            timeout=settings.redis_timeout,
        )

    @property
    def client(self) -> RedisClient:
        """The Redis client; use it inside `run`, where building it may fail."""
        if self._client is None:
            with self._building:
                if self._client is None:
                    assert self._build is not None
                    self._client = self._build()
        return self._client

    def script(self, source: str) -> Script:
        """A Lua script, registered with the client once (EVALSHA, loaded on NOSCRIPT)."""
        found = self._scripts.get(source)
        if found is None:
            found = self._scripts[source] = self.client.register_script(source)
        return found

    def run(self, operation: Callable[[], T]) -> T:
        """Run a Redis operation; any Redis failure becomes StoreUnavailable."""
        try:
            result = operation()
        except REDIS_FAILURES as error:
            metrics.report_redis(up=False)
            # The error's class only: its text can name hosts, never needed here, and
            # must never carry a credential into the log.
            logger.warning("redis unavailable: %s", type(error).__name__)
            raise StoreUnavailable(
                "The booking store (Redis) is unavailable.", STORE_RETRY_AFTER
            ) from error
        metrics.report_redis(up=True)
        return result

    def read_bytes(self, name: str) -> bytes | None:
        """GET `name` as the bytes Redis holds (call it inside `run`). The client decodes
        replies as UTF-8 text (decode_responses); a value that is not (junk, whoever wrote
        it) would fail there, outside redis-py's errors. NEVER_DECODE turns decoding off for
        this one command, on the same pooled connections, for every topology."""
        found: bytes | None = self.client.execute_command(  # type: ignore[no-untyped-call]
            "GET", name, **{NEVER_DECODE: True}
        )
        return found

    def ping(self) -> bool:
        return bool(self.run(lambda: self.client.ping()))
