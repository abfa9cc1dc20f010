"""RedisEntraCredentials with a token source of the test's own (tokens signed with a test
key; Redis never checks them here): the user name, a failure's reason and its pause, the
renewal handed to redis-py's callback."""

from __future__ import annotations

import threading
import time

import jwt
import pytest
from redis.exceptions import AuthenticationError

from service.identity.redis_credentials import RedisEntraCredentials, RedisTokenUnavailable

pytestmark = pytest.mark.unit

OID = "0b7a8f8e-2e8d-4c1e-9a51-1f3c4a2b9d10"


def token(lifetime: float, oid: str = OID) -> str:
    now = time.time()
    return jwt.encode({"oid": oid, "exp": now + lifetime, "iat": now}, "k" * 32, "HS256")


def test_the_user_is_the_tokens_oid_or_the_configured_object_id():
    value = token(60)
    assert RedisEntraCredentials(lambda: value).get_credentials() == (OID, value)
    other = "11111111-2222-3333-4444-555555555555"
    assert RedisEntraCredentials(lambda: value, other).get_credentials() == (other, value)


def test_a_held_token_is_reused_until_renewed():
    issued: list[str] = []

    def acquire() -> str:
        issued.append(token(60))
        return issued[-1]

    credentials = RedisEntraCredentials(acquire)
    first = credentials.get_credentials()
    assert credentials.get_credentials() == first
    assert len(issued) == 1


def test_a_token_that_cannot_be_had_is_an_authentication_error_with_a_reason():
    calls = []

    def refuse() -> str:
        calls.append(1)
        raise OSError("no route")

    credentials = RedisEntraCredentials(refuse)
    with pytest.raises(RedisTokenUnavailable) as error:
        credentials.get_credentials()
    assert isinstance(error.value, AuthenticationError)  # redis-py: Redis unavailable
    assert credentials.problem == "the Redis token could not be renewed: OSError"
    # Entra ID just failed: the next connections do not wait for it again at once.
    with pytest.raises(RedisTokenUnavailable):
        credentials.get_credentials()
    assert len(calls) == 1


def test_renewals_reach_redis_py_with_the_user_name():
    other = "11111111-2222-3333-4444-555555555555"
    credentials = RedisEntraCredentials(lambda: token(1.5), other)
    handed = []
    renewed = threading.Event()

    def on_next(new_token) -> None:
        handed.append((new_token.try_get("oid"), new_token.get_value()))
        renewed.set()

    credentials.on_next(on_next)
    user, value = credentials.get_credentials()
    assert credentials.is_streaming()
    try:
        assert renewed.wait(10), "no renewal within 10 s of a 1.5 s token"
    finally:
        credentials.close()
    assert handed[0][0] == other and handed[0][1] != value
