"""Access tokens: issued by the emulated Entra, checked by the emulated Graph.

Tokens look like Entra v1 app-only tokens for Graph (RS256, ``iss``
``https://sts.windows.net/{tid}/``, ``appid``, ``roles``). The signing key is made
fresh for each emulator process, so a token never outlives the process that issued it.
"""

from __future__ import annotations

import hashlib
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


class TokenRejected(Exception):
    """Graph would answer 401 InvalidAuthenticationToken; the message says why."""


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
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.key_id = b64url(hashlib.sha1(der).digest())
        # Token ids (Entra's "uti" claim) issued since the last revoke-tokens call.
        # A set rather than a timestamp, because iat has one-second resolution and a
        # token issued just after a revoke in the same second must stay valid.
        self._live: set[str] = set()

    def issue(self, tenant_id: str, app_id: str, credential_kind: str) -> IssuedToken:
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
        token = jwt.encode(
            claims, self._key, algorithm="RS256", headers={"kid": self.key_id, "x5t": self.key_id}
        )
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
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key.public_key(),
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
            raise TokenRejected("Access token has been revoked.")
        return AccessClaims(
            tenant_id=str(claims["tid"]),
            app_id=str(claims.get("appid", "")),
            roles=tuple(claims.get("roles", ())),
        )

    def revoke_all(self) -> None:
        """Every token issued so far stops working (like a CAE revocation)."""
        with self._lock:
            self._live.clear()

    def jwks(self) -> dict[str, Any]:
        numbers = self._key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": self.key_id,
                    "x5t": self.key_id,
                    "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
                    "e": b64url(numbers.e.to_bytes(3, "big")),
                }
            ]
        }
