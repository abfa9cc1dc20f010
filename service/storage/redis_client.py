"""The redis-py client for REDIS_URL's topology: one node, a Redis Cluster or a Sentinel group.

All three get the same timeouts, retry and health checks, so a failing Redis costs a request
the same milliseconds whatever the topology; following a failover (a new primary, slots that
moved) is left to redis-py's own cluster and Sentinel support.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import ConnectionPool
from redis.credentials import CredentialProvider
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from service.config import RedisTarget

RedisClient = redis.Redis | RedisCluster

# How often an idle pooled connection is checked before use, so a Redis restart is noticed
# on the next command rather than by a failed one.
HEALTH_CHECK_SECONDS = 10


def retry() -> Retry:
    """One quick retry: enough to ride over a dropped connection, short enough that a Redis
    outage costs a request milliseconds (the service degrades without Redis)."""
    return Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1)


def tls_options(target: RedisTarget) -> dict[str, Any]:
    """Our REDIS_CA_BUNDLE, passed explicitly, so no machine-wide default decides whom we
    trust (the same rule as GRAPH_CA_BUNDLE); the client certificate for mutual TLS."""
    if not target.tls:
        return {}
    options: dict[str, Any] = {"ssl_cert_reqs": "required", "ssl_check_hostname": True}
    if target.ca_bundle is not None:
        options["ssl_ca_certs"] = str(target.ca_bundle)
    if target.client_cert is not None and target.client_key is not None:
        options["ssl_certfile"] = str(target.client_cert)
        options["ssl_keyfile"] = str(target.client_key)
    return options


def build(
    target: RedisTarget, timeout: float, credentials: CredentialProvider | None = None
) -> RedisClient:
    """A client for the target. Nothing is connected yet for one node and Sentinel; a
    RedisCluster connects to learn the slots, so call this where a Redis error is handled
    (service.storage.store builds it on first use).

    `credentials` (REDIS_AUTH=entra) log every connection in instead of the URL's user and
    password. redis-py registers a streaming provider's renewals with the connection pools
    only when the client itself is given the provider, which `from_url` and Sentinel's
    `master_for` do not do: the pools are built here and handed to the client with it."""
    common: dict[str, Any] = {
        # Short timeouts: a Redis outage must cost a request milliseconds, not the caller's
        # whole timeout.
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": HEALTH_CHECK_SECONDS,
        "decode_responses": True,
        **tls_options(target),
    }
    if target.tls and target.topology != "single":
        common["ssl"] = True  # from_url reads it from rediss:// itself
    if target.topology == "cluster":
        # The cluster client retries (and relearns the slots after a MOVED or a failed node)
        # itself; per-connection retries are not allowed there.
        return RedisCluster(
            startup_nodes=[
                ClusterNode(host, port)  # type: ignore[no-untyped-call]
                for host, port in target.nodes
            ],
            retry=retry(),
            **_login(target, credentials),
            **common,
        )
    on_error = {"retry": retry(), "retry_on_error": [redis.ConnectionError, redis.TimeoutError]}
    if target.topology == "sentinel":
        # The URL's credentials and TLS apply to the sentinels too (as in the `limits`
        # library); the primary is asked of them again after every connection failure.
        auth = {"username": target.username, "password": target.password}
        login = _login(target, credentials)
        # Typed as the **connection_kwargs they are: redis-py 8.2 types Sentinel's own
        # parameters, which a narrower dict unpacked here would be checked against.
        connection: dict[str, Any] = {**login, **common, **on_error}
        sentinel = Sentinel(
            target.nodes,
            sentinel_kwargs={
                **{name: value for name, value in auth.items() if value is not None},
                "socket_timeout": timeout,
                "socket_connect_timeout": timeout,
                **({"ssl": True} if target.tls else {}),
                **tls_options(target),
            },
            **connection,
        )
        assert target.service_name is not None  # parse_redis_url requires it
        if credentials is None:
            client: redis.Redis = sentinel.master_for(target.service_name, db=target.db)
            return client
        primary = SentinelConnectionPool(  # type: ignore[no-untyped-call]
            target.service_name, sentinel, db=target.db, **connection
        )
        return redis.Redis(connection_pool=primary, credential_provider=credentials)
    if credentials is None:
        return redis.Redis.from_url(target.url, **common, **on_error)
    pool = ConnectionPool.from_url(
        target.url, credential_provider=credentials, **common, **on_error
    )
    return redis.Redis(connection_pool=pool, credential_provider=credentials)


def _login(target: RedisTarget, credentials: CredentialProvider | None) -> dict[str, Any]:
    """How connections log in: the provider's token, or the URL's user and password."""
    if credentials is not None:
        return {"credential_provider": credentials}
    return {"username": target.username, "password": target.password}
