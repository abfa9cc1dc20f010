"""Access tokens: issued by the emulated Entra, checked by the emulated Graph.

Tokens look like Entra v1 app-only tokens for Graph (RS256, ``iss``
``https://sts.windows.net/{tid}/``, ``appid``, ``roles``). The signing key is made
fresh for each emulator process, so a token never outlives the process that issued it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .encoding import b64url

ROLES = ["OnlineMeetings.ReadWrite.All"]


# The claims Graph asks for after revoking a CAE-capable token: a token issued after then.
def claims_challenge(revoked_at: int) -> str:
    document = {"access_token": {"nbf": {"essential": True, "value": str(revoked_at)}}}
    return base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()


class TokenRejected(Exception):
    """Graph would answer 401 InvalidAuthenticationToken; the message says why.

    `claims` is set for a revoked token of a CAE-capable client (`xms_cc` has cp1): Graph
    then answers with a claims challenge (error="insufficient_claims") instead of a plain
    401."""

    def __init__(self, message: str, claims: str | None = None) -> None:
        super().__init__(message)
        self.claims = claims


@dataclass(frozen=True)
class AccessClaims:
    tenant_id: str
    app_id: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    refresh_in: int | None = None  # seconds after which a client should refresh early


class TokenIssuer:
    """Signs access tokens for one audience and checks them on the way back in."""

    def __init__(
        self,
        audience: str,
        lifetime_seconds: int,
        lock: threading.RLock,
        refresh_in_seconds: int | None = None,
    ) -> None:
        self.audience = audience
        self._lifetime = lifetime_seconds
        self._refresh_in = refresh_in_seconds
        self._lock = lock
        # Signing keys by kid; the newest signs, every one listed is published (as Entra
        # keeps publishing a key for a while after it stopped signing with it).
        self._keys: dict[str, rsa.RSAPrivateKey] = {}
        self.key_id = ""
        self.rotate()
        self._revoked_at = 0
        # Token ids (Entra's "uti" claim) issued since the last revoke-tokens call.
        # A set rather than a timestamp, because iat has one-second resolution and a
        # token issued just after a revoke in the same second must stay valid.
        self._live: set[str] = set()

    @property
    def _key(self) -> rsa.RSAPrivateKey:
        return self._keys[self.key_id]

    def rotate(self, keep_previous: bool = True) -> str:
        """Sign with a new key from now on; the new kid."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        kid = b64url(hashlib.sha1(der).digest())
        with self._lock:
            if not keep_previous:
                self._keys.clear()
            self._keys[kid] = key
            self.key_id = kid
        return kid

    def sign(self, claims: dict[str, Any], algorithm: str = "RS256") -> str:
        return jwt.encode(
            claims, self._key, algorithm=algorithm, headers={"kid": self.key_id, "x5t": self.key_id}
        )

    def issue_caller(
        self,
        *,
        tenant_id: str,
        app_id: str,
        audience: str,
        version: int,
        roles: list[str],
        issuer_host: str,
        overrides: dict[str, Any] | None = None,
    ) -> IssuedToken:
        """An app-only access token for a caller app, for another API than Graph (the
        meeting-provisioning service): v1 (`appid`, sts.windows.net issuer) or v2 (`azp`,
        `{authority}/{tid}/v2.0`). `overrides` replaces claims (null removes one)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": (
                f"https://sts.windows.net/{tenant_id}/"
                if version == 1
                else f"{issuer_host}/{tenant_id}/v2.0"
            ),
            "iat": now,
            "nbf": now,
            "exp": now + self._lifetime,
            "tid": tenant_id,
            "idtyp": "app",
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{tenant_id}:{app_id}")),
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{tenant_id}:{app_id}")),
            "roles": roles,
            "uti": b64url(uuid.uuid4().bytes),
            "ver": "1.0" if version == 1 else "2.0",
        }
        if version == 1:
            claims["appid"], claims["appidacr"] = app_id, "1"
        else:
            claims["azp"], claims["azpacr"] = app_id, "1"
        for name, value in (overrides or {}).items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return IssuedToken(access_token=self.sign(claims), expires_in=self._lifetime)

    def issue(
        self, tenant_id: str, app_id: str, credential_kind: str, cae_capable: bool = False
    ) -> IssuedToken:
        now = int(time.time())
        token_id = b64url(uuid.uuid4().bytes)
        claims = {
            "aud": self.audience,
            "iss": f"https://sts.windows.net/{tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + self._lifetime,
            "tid": tenant_id,
            "appid": app_id,
            # 1 = client secret, 2 = certificate or federated assertion (Entra's meaning).
            "appidacr": "1" if credential_kind == "secret" else "2",
            "idtyp": "app",
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{tenant_id}:{app_id}")),
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{tenant_id}:{app_id}")),
            "roles": ROLES,
            "uti": token_id,
            "ver": "1.0",
        }
        if cae_capable:  # the client declared cp1: revocations come as claims challenges
            claims["xms_cc"] = ["cp1"]
        token = self.sign(claims)
        with self._lock:
            self._live.add(token_id)
        return IssuedToken(
            access_token=token, expires_in=self._lifetime, refresh_in=self._refresh_in
        )

    def check(self, token: str) -> AccessClaims:
        """Return the claims of a valid token or raise TokenRejected.

        The messages are the ones Graph uses for the same failures.
        """
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            with self._lock:
                key = self._keys.get(kid if isinstance(kid, str) else "", self._key)
            claims: dict[str, Any] = jwt.decode(
                token,
                key.public_key(),
                algorithms=["RS256"],
                audience=self.audience,
                options={"require": ["exp", "iat", "tid", "uti"]},
                leeway=0,
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenRejected("Lifetime validation failed, the token is expired.") from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenRejected("Access token validation failure. Invalid audience.") from exc
        except jwt.DecodeError as exc:
            raise TokenRejected("CompactToken parsing failed with error code: 80049217") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenRejected("Access token validation failure.") from exc
        if claims.get("iss") != f"https://sts.windows.net/{claims['tid']}/":
            raise TokenRejected("Access token validation failure. Invalid issuer.")
        with self._lock:
            live = claims["uti"] in self._live
        if not live:
            capable = "cp1" in (claims.get("xms_cc") or [])
            raise TokenRejected(
                "Access token has been revoked.",
                claims_challenge(self._revoked_at) if capable else None,
            )
        return AccessClaims(
            tenant_id=str(claims["tid"]),
            app_id=str(claims.get("appid", "")),
            roles=tuple(claims.get("roles", ())),
        )

    def revoke_all(self) -> None:
        """Every token issued so far stops working (like a CAE revocation)."""
        with self._lock:
            self._live.clear()
            self._revoked_at = int(time.time())

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            keys = dict(self._keys)
        published = []
        for kid, key in keys.items():
            numbers = key.public_key().public_numbers()
            published.append(
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": kid,
                    "x5t": kid,
                    "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
                    "e": b64url(numbers.e.to_bytes(3, "big")),
                }
            )
        return {"keys": published}

    def public_pem(self) -> bytes:
        """The signing key's public half as PEM (tests forge HMAC tokens with it)."""
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
