"""Entra ID tokens as Redis credentials (REDIS_AUTH=entra): Azure Managed Redis with access
keys disabled.

redis-py asks a `CredentialProvider` for (user, password) whenever it opens a connection;
a `StreamingCredentialProvider` may also hand it a new token at any time, and redis-py then
sends `AUTH` on every idle pooled connection at once and on every busy one (a lock wait's
BRPOPLPUSH included) as soon as its command returns. Azure closes a connection whose token
has expired without a new `AUTH`, so a token is renewed here in the background, well before
it expires, and handed to redis-py each time.

Why not `redis-entraid` (redis-py's companion package): its service-principal factory
hard-codes the authority (`https://login.microsoftonline.com/{tenant}`; an `authority` in its
`app_kwargs` collides with it), so it cannot reach a national cloud's or the emulator's
Entra ID, nor use our pinned CA bundle (`GRAPH_CA_BUNDLE`) without replacing its MSAL app
altogether; it always uses the token's `oid` as the user name (no REDIS_ENTRA_OBJECT_ID);
and its renewal (redis-py's `TokenManager`) stops for good after a renewal fails, where the
service must keep trying and recover by itself. What it would add over this module is the
renewal timer, a few lines here, and it would bring azure-identity into the image.

A token that cannot be obtained makes new connections fail with redis-py's
AuthenticationError, which the gateway turns into StoreUnavailable (degraded mode);
`problem` says why, for /readyz.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msal
import requests
from redis.auth.token import SimpleToken
from redis.credentials import StreamingCredentialProvider
from redis.exceptions import AuthenticationError

from service.config import REDIS_ENTRA_SCOPE, Settings
from service.foundation import metrics
from service.identity.app_tokens import msal_credential

logger = logging.getLogger(__name__)

# Renew once this share of a token's life has passed (70%, as redis-entraid does): an hour's
# token is renewed with 18 minutes to spare, a test's 15 s token with 4.5 s.
RENEW_AT = 0.7
# After a failed renewal, try again this often (never later than the held token's expiry).
RETRY_SECONDS = 2.0
# A held token with less life than this is not handed to a new connection: it would be
# closed by Redis before the next renewal reached it.
MIN_LIFE_SECONDS = 1.0


class RedisTokenUnavailable(AuthenticationError):
    """No valid Entra ID token for Redis could be obtained (the reason never holds a token).

    An AuthenticationError, so redis-py and the gateway treat it as Redis being unavailable.
    """


@dataclass(frozen=True)
class HeldToken:
    value: str = ""
    user: str = ""
    expires_at: float = 0.0  # time.time()
    received_at: float = 0.0

    def life(self) -> float:
        return self.expires_at - time.time()

    def for_redis_py(self) -> SimpleToken:
        # redis-py re-authenticates with AUTH token.try_get("oid") token.get_value(): the
        # claims hold the user name we chose, which may be REDIS_ENTRA_OBJECT_ID.
        return SimpleToken(
            self.value, self.expires_at * 1000, self.received_at * 1000, {"oid": self.user}
        )


class RedisEntraCredentials(StreamingCredentialProvider):
    def __init__(
        self,
        acquire: Callable[[], str],
        object_id: str | None = None,
    ) -> None:
        """`acquire` asks Entra ID for a new token (never a cached one) or raises with a
        reason; `object_id` is the Redis user name, else the token's `oid` claim."""
        self._acquire = acquire
        self._object_id = object_id
        self._held = HeldToken()
        self._lock = threading.Lock()
        self._on_next: Callable[[Any], None] | None = None
        self._on_error: Callable[[Exception], None] | None = None
        self._renewing: threading.Thread | None = None
        self._wake = threading.Event()
        self._problem: str | None = None
        self._failed_at = 0.0  # time.monotonic() of the last failed attempt
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings, session: requests.Session) -> RedisEntraCredentials:
        """Tokens for Redis with the app's own credential (the AZURE_* variables), from the
        same authority and over the same pinned session as the Graph tokens."""
        # Read now, so an unreadable certificate stops the start (as for Graph's tokens).
        credential = msal_credential(settings.credential)
        apps: list[msal.ConfidentialClientApplication] = []

        def acquire() -> str:
            # Built on first use: MSAL reads the tenant's OpenID configuration when built,
            # and a worker must start while Entra ID is away (service.identity.app_tokens).
            if not apps:
                apps.append(
                    msal.ConfidentialClientApplication(
                        settings.client_id,
                        authority=settings.authority,
                        client_credential=credential,
                        http_client=session,
                        instance_discovery=False,
                    )
                )
            return _acquire_from(apps[0])

        return cls(acquire, settings.redis.entra_object_id)

    @property
    def problem(self) -> str | None:
        """Why the last attempt to get a token failed; None once one succeeds again."""
        return self._problem

    # --- redis-py's side ---------------------------------------------------------------

    def get_credentials(self) -> tuple[str, str]:
        held = self._held
        if held.life() < MIN_LIFE_SECONDS:
            held = self._renew(reason="connect")
        self._start_renewing()
        return held.user, held.value

    def on_next(self, callback: Callable[[Any], None]) -> None:
        self._on_next = callback

    def on_error(self, callback: Callable[[Exception], None]) -> None:
        self._on_error = callback

    def is_streaming(self) -> bool:
        return self._renewing is not None

    # --- renewal -----------------------------------------------------------------------

    def _renew(self, *, reason: str) -> HeldToken:
        """A new token, held from now on; RedisTokenUnavailable when Entra ID gives none."""
        with self._lock:
            held = self._held
            if reason == "connect":
                if held.life() >= MIN_LIFE_SECONDS:
                    return held  # another thread renewed it meanwhile
                if self._problem and time.monotonic() - self._failed_at < RETRY_SECONDS:
                    # Entra ID just failed: every request would otherwise wait for it again.
                    raise RedisTokenUnavailable(self._problem)
            try:
                value = self._acquire()
                claims = _claims(value)
                user = self._object_id or str(claims["oid"])
                expires_at = float(claims["exp"])
            except Exception as error:  # noqa: BLE001 - every failure is "no token"; reported
                detail = _describe(error)
                self._problem = f"the Redis token could not be renewed: {detail}"
                self._failed_at = time.monotonic()
                metrics.redis_token_renewals.labels(outcome="failed").inc()
                logger.warning(
                    "redis token renewal failed (%s, %.0f s left on the held token): %s",
                    reason,
                    max(held.life(), 0.0),
                    detail,
                )
                raise RedisTokenUnavailable(self._problem) from None
            self._held = held = HeldToken(value, user, expires_at, time.time())
            self._problem = None
        metrics.redis_token_renewals.labels(outcome="renewed").inc()
        logger.info("redis token renewed (%s), valid %.0f s", reason, held.life())
        return held

    def _start_renewing(self) -> None:
        if self._renewing is not None:
            return
        with self._lock:
            if self._renewing is None:
                # Started by the first connection, so in the worker that uses it (gunicorn
                # forks workers; a thread would not survive the fork).
                self._renewing = threading.Thread(
                    target=self._renew_forever, name="redis-token-renewal", daemon=True
                )
                self._renewing.start()

    def _next_renewal(self) -> float:
        held = self._held
        if self._problem is not None:
            # Again soon, and before a still valid token runs out if that comes first.
            left = held.life() - MIN_LIFE_SECONDS
            return max(min(RETRY_SECONDS, left) if left > 0 else RETRY_SECONDS, 0.2)
        lifetime = held.expires_at - held.received_at
        return max(held.received_at + RENEW_AT * lifetime - time.time(), 0.0)

    def close(self) -> None:
        """Stop renewing (the process ends it otherwise: the thread is a daemon)."""
        self._closed = True
        self._wake.set()

    def _renew_forever(self) -> None:
        while True:
            self._wake.wait(self._next_renewal())
            self._wake.clear()
            if self._closed:
                return
            try:
                held = self._renew(reason="background")
            except RedisTokenUnavailable:
                continue
            callback = self._on_next
            if callback is None:
                continue
            try:
                # AUTH on every idle pooled connection now, on busy ones when they return.
                callback(held.for_redis_py())
                metrics.redis_reauthentications.inc()
            except Exception as error:  # noqa: BLE001 - a dead connection is redis-py's to drop
                logger.warning("redis re-authentication failed: %s", type(error).__name__)


def _acquire_from(app: msal.ConfidentialClientApplication) -> str:
    # A new token every time: MSAL would hand out its cached one until 5 minutes before it
    # expires, and a renewal that returns the same token renews nothing.
    app.remove_tokens_for_client()
    result = app.acquire_token_for_client(scopes=[REDIS_ENTRA_SCOPE])
    if "access_token" not in result:
        description = str(result.get("error_description", "")).split("\r\n")[0]
        raise TokenRefused(f"Entra ID answered {result.get('error')}: {description}")
    return str(result["access_token"])


class UnreadableToken(Exception):
    """Entra ID's answer held no JWT we could read."""


def _claims(token: str) -> dict[str, Any]:
    """The token's claims, unverified: Redis verifies it; we need its expiry and oid."""
    # Imported here: a worker that does not log in to Redis with tokens (and takes no
    # caller tokens) loads no token library (tests/unit/test_startup_footprint.py).
    import jwt

    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError as error:
        raise UnreadableToken(type(error).__name__) from None
    return claims


class TokenRefused(Exception):
    """Entra ID answered a token request with an error (its code and first line)."""


def _describe(error: Exception) -> str:
    """A reason an operator can act on, never the token or the credential."""
    if isinstance(error, TokenRefused):
        return str(error)
    if isinstance(error, requests.RequestException):
        return f"the identity provider is unreachable ({type(error).__name__})"
    if isinstance(error, msal.exceptions.MsalServiceError):
        return "the identity provider failed"
    if isinstance(error, UnreadableToken | KeyError):
        return f"the token could not be read ({type(error).__name__})"
    if isinstance(error, ValueError):  # MSAL: the tenant's OpenID configuration
        return "the identity provider's configuration could not be read"
    return type(error).__name__
