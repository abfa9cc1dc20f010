"""Callers' Entra ID access tokens: checked with PyJWT against the tenant's published keys.

A booking system's app gets a token for this service with client credentials (scope
`<CALLER_TOKEN_AUDIENCE>/.default`) and sends it as `Authorization: Bearer <token>`. The
token must be signed by a key of its tenant's JWKS (found through the tenant's OpenID
metadata), with the algorithm of that key (never `none`, never HMAC), issued by the tenant
in the v1 or v2 form, for this service (`aud`), by a tenant in CALLER_TENANTS, current
(`exp`, `nbf`, 60 s leeway), app-only, and carry the app role CALLER_APP_ROLE.

Keys are cached per tenant; a token with an unknown `kid` makes the cache refresh, at most
once per KEY_REFRESH_INTERVAL per tenant, so garbage tokens cannot make us hammer Entra ID.
When the keys cannot be fetched and none are cached, the answer is 503, not 401: the token
may be fine.

A token is never logged, nor echoed in an answer.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import requests

from service.config import Settings
from service.domain.callers import Caller, by_app_id
from service.foundation import metrics
from service.foundation.errors import (
    CallerNotRegistered,
    InsufficientScope,
    SigningKeysUnavailable,
    Unauthenticated,
)

if TYPE_CHECKING:
    import jwt

logger = logging.getLogger(__name__)

KEY_REFRESH_INTERVAL = 30.0
LEEWAY_SECONDS = 60
RETRY_AFTER_KEYS = 10.0
# Asymmetric algorithms only: a key of the JWKS decides which one applies.
ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)


def looks_like_jwt(credential: str) -> bool:
    """A compact JWS has three dot-separated parts; an API key has none."""
    return credential.count(".") == 2


class KeysUnavailable(Exception):
    pass


@dataclass
class _TenantKeys:
    keys: dict[str, jwt.PyJWK]
    # time.monotonic() of the last fetch made for an unknown kid (None: none yet)
    refreshed_at: float | None = None


class SigningKeys:
    """The tenants' token signing keys, fetched from their OpenID metadata and cached."""

    def __init__(
        self,
        authority_host: str,
        session: requests.Session,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.authority_host = authority_host
        self.session = session
        self.timeout = timeout
        self.clock = clock
        self._cache: dict[str, _TenantKeys] = {}
        self._lock = threading.Lock()

    def key(self, tenant_id: str, kid: str) -> jwt.PyJWK | None:
        """The key `kid` of `tenant_id`; None if the tenant does not publish it.

        KeysUnavailable when nothing is cached and the keys cannot be fetched.
        """
        with self._lock:
            cached = self._cache.get(tenant_id)
            if cached is not None and kid in cached.keys:
                return cached.keys[kid]
            now = self.clock()
            if (
                cached is not None
                and cached.refreshed_at is not None
                and now - cached.refreshed_at < KEY_REFRESH_INTERVAL
            ):
                return None  # refreshed recently: an unknown kid stays unknown for now
            try:
                keys = self._fetch(tenant_id)
            except KeysUnavailable:
                if cached is None:
                    raise
                cached.refreshed_at = now  # keep the cached keys, retry later
                return None
            self._cache[tenant_id] = _TenantKeys(keys, now if cached is not None else None)
            return keys.get(kid)

    def _fetch(self, tenant_id: str) -> dict[str, jwt.PyJWK]:
        import jwt  # loaded by CallerTokens (see there)

        metadata_url = f"{self.authority_host}/{tenant_id}/v2.0/.well-known/openid-configuration"
        try:
            metadata = self._get(metadata_url)
            jwks_uri = metadata.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
                raise KeysUnavailable("the OpenID metadata has no https jwks_uri")
            jwks = jwt.PyJWKSet.from_dict(self._get(jwks_uri))
        except (requests.RequestException, ValueError, jwt.PyJWKSetError) as error:
            metrics.caller_key_fetches.labels(outcome="failed").inc()
            logger.warning(
                "cannot fetch the signing keys of tenant %s: %s", tenant_id, type(error).__name__
            )
            raise KeysUnavailable(str(error)) from None
        metrics.caller_key_fetches.labels(outcome="fetched").inc()
        keys = {key.key_id: key for key in jwks.keys if key.key_id}
        logger.info("fetched %d signing keys of tenant %s", len(keys), tenant_id)
        return keys

    def _get(self, url: str) -> dict[str, Any]:
        response = self.session.get(url, timeout=self.timeout)
        if response.status_code != 200:
            raise KeysUnavailable(f"{url} answered {response.status_code}")
        document = response.json()
        if not isinstance(document, dict):
            raise KeysUnavailable(f"{url} did not answer a JSON object")
        return document


class CallerTokens:
    """Checks a caller's token and names the caller it belongs to."""

    def __init__(
        self,
        *,
        keys: SigningKeys,
        authority_host: str,
        audiences: tuple[str, ...],
        tenants: tuple[str, ...],
        role: str,
        v1_issuer_host: str = "https://sts.windows.net",
    ) -> None:
        # PyJWT and cryptography (about 9 MiB per worker) only where caller tokens are
        # accepted: this module is imported everywhere (looks_like_jwt), PyJWT only here, at
        # startup rather than on the first caller's request.
        importlib.import_module("jwt")
        self.keys = keys
        self.authority_host = authority_host
        self.v1_issuer_host = v1_issuer_host
        self.audiences = list(audiences)
        self.tenants = frozenset(tenants)
        self.role = role

    @classmethod
    def from_settings(cls, settings: Settings, session: requests.Session) -> CallerTokens:
        return cls(
            keys=SigningKeys(settings.authority_host, session, settings.token_timeout),
            authority_host=settings.authority_host,
            audiences=settings.caller_token_audiences,
            tenants=settings.caller_tenants,
            role=settings.caller_app_role,
            v1_issuer_host=settings.cloud.v1_issuer_host,
        )

    def caller(self, callers: Mapping[str, Caller], token: str) -> Caller:
        claims = self.claims(token)
        roles = claims.get("roles")
        if not isinstance(roles, list) or self.role not in roles:
            self._reject("missing_role")
            raise InsufficientScope(
                f"The access token does not carry the app role {self.role!r}: assign it to "
                "the calling app (an application permission of this API) and grant admin "
                "consent.",
                self.role,
            )
        app_id = claims.get("azp") if claims.get("ver") == "2.0" else claims.get("appid")
        found = by_app_id(callers, str(app_id or ""))
        if found is None:
            self._reject("unknown_app")
            raise CallerNotRegistered(
                f"The app {str(app_id)[:64]!r} is not a caller of this service: an operator "
                "must add it to CLIENTS_FILE (appId)."
            )
        return found

    def claims(self, token: str) -> dict[str, Any]:
        """The token's verified claims, or Unauthenticated saying why not."""
        import jwt  # loaded by __init__

        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            self._invalid("malformed", "The access token is not a well-formed JWT.")
        tenant = str(unverified.get("tid", "")).lower()
        if tenant not in self.tenants:
            self._invalid("tenant", "The access token was not issued by an accepted tenant.")
        kid = header.get("kid")
        if not isinstance(kid, str) or header.get("alg") not in ASYMMETRIC:
            self._invalid("algorithm", "The access token is not signed with an accepted key.")
        try:
            key = self.keys.key(tenant, kid)
        except KeysUnavailable:
            raise SigningKeysUnavailable(
                "The identity provider's signing keys cannot be fetched, so the access token "
                "cannot be checked now. Retry after Retry-After.",
                RETRY_AFTER_KEYS,
            ) from None
        if key is None:
            self._invalid("unknown_key", "The access token is signed with an unknown key.")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                # The key's algorithm, never the one the token's header asks for.
                algorithms=[key.algorithm_name],
                audience=self.audiences,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "nbf", "iss", "aud", "tid"]},
            )
        except jwt.ExpiredSignatureError:
            self._invalid("expired", "The access token expired.")
        except jwt.ImmatureSignatureError:
            self._invalid("not_yet_valid", "The access token is not valid yet (nbf).")
        except jwt.InvalidAudienceError:
            self._invalid("audience", "The access token is not meant for this service (aud).")
        except jwt.InvalidTokenError:
            self._invalid("signature", "The access token's signature or claims are invalid.")
        issuers = {
            f"{self.v1_issuer_host}/{tenant}/",  # v1 (the cloud's, see service.foundation.clouds)
            f"{self.authority_host}/{tenant}/v2.0",  # v2
        }
        if claims.get("iss") not in issuers:
            self._invalid("issuer", "The access token's issuer is not its tenant.")
        if claims.get("idtyp") != "app" and "scp" in claims:
            self._invalid("delegated", "The access token is not an app-only token.")
        return claims

    def _invalid(self, reason: str, detail: str) -> NoReturn:
        self._reject(reason)
        raise Unauthenticated(detail, invalid_token=True)

    def _reject(self, reason: str) -> None:
        metrics.caller_tokens_rejected.labels(reason=reason).inc()
        logger.info("caller token rejected", extra={"reason": reason})
