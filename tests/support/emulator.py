"""Start the Graph emulator as a real process and drive its admin API from tests.

Typical use::

    setup = default_config(tmp_path)
    with start_emulator(tmp_path, setup.config) as emulator:
        ...  # point MSAL at emulator.authority_host, Graph at emulator.base_url,
        ...  # trust emulator.ca_bundle
        emulator.add_fault(target="createOrGet", status=429, retryAfter="2", count=1)
        assert emulator.meetings_for(external_id) == {"created": 1, "calls": 2}

API (kept small and stable):

- ``start_emulator(tmp_path, config, graph_audience=..., *, timeout=15.0) -> EmulatorHandle``
  (the process is local_stack's: ``local_stack.emulator.EmulatorProcess.start``)
- ``EmulatorHandle``: ``base_url``, ``authority_host``, ``ca_bundle``, ``port``, ``pid``,
  ``graph_audience``, ``state_dir``, ``log()``, ``stop()`` (local_stack's
  ``EmulatorProcess``); ``stats()``, ``add_fault(**fault) -> int``,
  ``clear_faults()``, ``rate_limit(target, per_second)``, ``revoke_tokens()``, ``reset()``,
  ``set_user(tenant_id, user_id, *, access_policy=None, display_name=None, upn=None)``,
  ``meetings_for(external_id)``, ``requests_for(external_id)``,
  ``meeting(meeting_id) -> dict | None``, ``meeting_info(meeting_id) -> dict | None``,
  ``live_meetings_for(external_id) -> int``, ``operations_for(meeting_id) -> list[dict]``,
  ``get_token(tenant_id, client_id, client_secret)``, ``session()`` (the service's
  ``PinnedSession``, trusting the emulator's CA: also MSAL's ``http_client``); a context
  manager that stops the process on exit.
- ``make_certificate_credential(tmp_path) -> (pem_path, cert_pem)``
- ``make_federated_issuer(tmp_path) -> FederatedIssuer``
- ``default_config(tmp_path, ..., refresh_in_seconds=None) -> EmulatorSetup`` (``.config``
  is the dict to start with; ``refresh_in_seconds`` makes token responses carry
  ``refresh_in``)

Meetings can be patched and deleted through Graph. A deleted meeting is gone (Graph
answers 404 for its id) and its identity is freed: createOrGet with the same externalId
creates a new meeting. ``meetings_for`` still counts every meeting ever created for an
externalId; ``live_meetings_for`` counts those not deleted.

Certificate-verification note: this machine sets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE, and
requests lets those override a Session's ``verify`` attribute. So every call here passes
``verify=`` itself (a per-request argument wins), and ``session()`` is the service's own
``PinnedSession``, which forces it.
"""

from __future__ import annotations

import datetime as dt
import secrets
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from graph_emulator.clouds import DEFAULT_AUDIENCE
from local_stack.emulator import EmulatorProcess

from service.foundation.pinned_session import PinnedSession

FEDERATED_AUDIENCE = "api://AzureADTokenExchange"
ADMIN_TIMEOUT = 10.0
# What a session() call without a timeout of its own may wait (MSAL passes none).
SESSION_TIMEOUT = 60.0


@dataclass
class EmulatorHandle(EmulatorProcess):
    """A running emulator process and helpers for its admin API."""

    # --- admin API -----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """GET /_emulator/stats: {"calls", "tokenRequests", "meetings", "requests"}."""
        result: dict[str, Any] = self._admin("GET", "stats").json()
        return result

    def add_fault(self, **fault: Any) -> int:
        """POST /_emulator/faults, e.g. ``add_fault(target="createOrGet", status=503)``.

        Keys: target, status, retryAfter, latencyMs, count, errorCode, message, reset,
        afterProcessing, organizerId. Returns the fault id.
        """
        return int(self._admin("POST", "faults", fault).json()["id"])

    def clear_faults(self) -> None:
        """DELETE /_emulator/faults: removes faults and rate limits."""
        self._admin("DELETE", "faults")

    def rate_limit(self, target: str, per_second: int | None) -> None:
        """POST /_emulator/rate-limit; ``per_second=None`` removes the limit."""
        self._admin("POST", "rate-limit", {"target": target, "perSecond": per_second})

    def revoke_tokens(self) -> None:
        """Every access token issued so far gets 401 from Graph."""
        self._admin("POST", "revoke-tokens")

    def reset(self) -> None:
        """Forget meetings, stats, faults and rate limits."""
        self._admin("POST", "reset")

    def caller_token(self, **body: Any) -> str:
        """POST /_emulator/caller-token: a caller token for the service (tenantId, appId,
        version, audience, roles, claims overrides)."""
        return str(self._admin("POST", "caller-token", body).json()["access_token"])

    def rotate_keys(self, keep_previous: bool = True) -> str:
        """POST /_emulator/rotate-keys: sign with a new key from now on; its kid."""
        return str(
            self._admin("POST", "rotate-keys", {"keepPrevious": keep_previous}).json()["kid"]
        )

    def signing_key(self) -> dict[str, str]:
        """GET /_emulator/signing-key: {"kid", "publicKeyPem"}."""
        found: dict[str, str] = self._admin("GET", "signing-key").json()
        return found

    def set_user(
        self,
        tenant_id: str,
        user_id: str,
        *,
        access_policy: bool | None = None,
        display_name: str | None = None,
        upn: str | None = None,
    ) -> dict[str, Any]:
        """Add a user or change it (e.g. grant or revoke its application access policy)."""
        body: dict[str, Any] = {"tenantId": tenant_id, "id": user_id}
        for key, value in (
            ("accessPolicy", access_policy),
            ("displayName", display_name),
            ("upn", upn),
        ):
            if value is not None:
                body[key] = value
        result: dict[str, Any] = self._admin("POST", "users", body).json()
        return result

    def meetings_for(self, external_id: str) -> dict[str, int]:
        """``{"created": n, "calls": n}`` for an externalId, over all users.

        ``created`` counts meetings created (201s); ``calls`` counts every createOrGet
        request the emulator received with that externalId, whatever its outcome.
        """
        stats = self.stats()
        created = sum(m["created"] for m in stats["meetings"] if m["externalId"] == external_id)
        return {"created": created, "calls": len(self._requests_for(stats, external_id))}

    def requests_for(self, external_id: str) -> list[dict[str, Any]]:
        """The recorded createOrGet requests (oldest first) whose body had this externalId."""
        return self._requests_for(self.stats(), external_id)

    def meeting(self, meeting_id: str) -> dict[str, Any] | None:
        """The live meeting as the emulator stores it; None if unknown or deleted."""
        response = self._admin("GET", f"meetings/{meeting_id}", allowed=(404,))
        if response.status_code == 404:
            return None
        result: dict[str, Any] = response.json()
        return result

    def meeting_info(self, meeting_id: str) -> dict[str, Any] | None:
        """The stats row of a meeting, deleted or not; None if it was never created.

        ``{"tenantId", "userId", "externalId", "meetingId", "created", "returned",
        "patched", "deleted"}``: ``returned`` counts createOrGet 200s, ``patched``
        successful PATCHes.
        """
        rows = [m for m in self.stats()["meetings"] if m["meetingId"] == meeting_id]
        return rows[-1] if rows else None

    def live_meetings_for(self, external_id: str) -> int:
        """How many meetings with this externalId exist now (created, not deleted)."""
        return sum(
            1
            for m in self.stats()["meetings"]
            if m["externalId"] == external_id and not m["deleted"]
        )

    def operations_for(self, meeting_id: str) -> list[dict[str, Any]]:
        """The recorded GET, PATCH and DELETE requests for one meeting id, oldest first.

        Each is ``{"operation": "getMeeting" | "patchMeeting" | "deleteMeeting",
        "meetingId", "userId", "version", "status" (int, or "reset"), "body" (PATCH),
        "clientRequestId", "requestId"}``; failed requests (404, faults) are included.
        """
        return [r for r in self.stats()["requests"] if r.get("meetingId") == meeting_id]

    @staticmethod
    def _requests_for(stats: dict[str, Any], external_id: str) -> list[dict[str, Any]]:
        return [
            r
            for r in stats["requests"]
            if r["operation"] == "createOrGet"
            and isinstance(r.get("body"), dict)
            and r["body"].get("externalId") == external_id
        ]

    # --- convenience ---------------------------------------------------------------

    def session(self) -> PinnedSession:
        """A new Session that trusts this emulator's CA whatever the environment says (one
        per thread)."""
        return PinnedSession(Path(self.ca_bundle), SESSION_TIMEOUT)

    def get_token(
        self, tenant_id: str, client_id: str, client_secret: str, scope: str | None = None
    ) -> str:
        """An access token by client secret, without MSAL (for tests of Graph itself)."""
        with self.session() as http:
            response = http.post(
                f"{self.authority_host}/{tenant_id}/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": client_id,
                    "client_secret": client_secret,
                    "scope": scope or f"{self.graph_audience}/.default",
                },
                timeout=ADMIN_TIMEOUT,
            )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def _admin(
        self, method: str, path: str, body: Any = None, *, allowed: tuple[int, ...] = ()
    ) -> requests.Response:
        with requests.Session() as http:
            # No proxies or CA bundles from the environment: this is a loopback call.
            http.trust_env = False
            response = http.request(
                method,
                f"{self.base_url}/_emulator/{path}",
                json=body,
                verify=self.ca_bundle,
                timeout=ADMIN_TIMEOUT,
            )
        if response.status_code >= 400 and response.status_code not in allowed:
            raise AssertionError(
                f"emulator admin {method} {path} -> {response.status_code}: {response.text}"
            )
        return response


def start_emulator(
    tmp_path: Path,
    config: Mapping[str, Any],
    graph_audience: str = DEFAULT_AUDIENCE,
    *,
    timeout: float = 15.0,
    redis_backend_port: int | list[int] | None = None,
) -> EmulatorHandle:
    """Start ``python -m graph_emulator`` with ``config``; return once it listens.

    Files go to a new directory under ``tmp_path`` (config, state dir with ca.pem and
    emulator.json, emulator.log). Raises RuntimeError (local_stack's StackError) with the
    emulator's output if it exits or does not announce itself within ``timeout`` seconds.
    """
    directory = Path(tempfile.mkdtemp(prefix="graph-emulator-", dir=tmp_path))
    return EmulatorHandle.start(
        config,
        directory / "config.json",
        directory / "state",
        graph_audience=graph_audience,
        log_path=directory / "emulator.log",
        timeout=timeout,
        redis_backend_port=redis_backend_port,
    )


# --- credentials ---------------------------------------------------------------------


def _new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_certificate_credential(tmp_path: Path) -> tuple[Path, str]:
    """A self-signed RSA certificate for an app's certificate credential.

    Returns (path of a PEM file holding the private key and the certificate, the
    certificate PEM alone, which goes into the emulator config as ``certificatePem``).
    """
    key = _new_rsa_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "graph-emulator-test-app")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    path = Path(tempfile.mkdtemp(prefix="app-cert-", dir=tmp_path)) / "app-credential.pem"
    path.write_text(key_pem + cert_pem, encoding="utf-8")
    path.chmod(0o600)
    return path, cert_pem


@dataclass
class FederatedIssuer:
    """An OIDC issuer (like a Kubernetes cluster) whose tokens an app trusts."""

    issuer: str
    public_key_pem: str
    _key: rsa.RSAPrivateKey = field(repr=False)
    key_id: str = field(default_factory=lambda: secrets.token_hex(8))

    def token(self, subject: str, audience: str = FEDERATED_AUDIENCE, lifetime: int = 3600) -> str:
        """A signed RS256 JWT like a projected service-account token."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": [audience],
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.key_id})

    def write_token(
        self, path: Path, subject: str, audience: str = FEDERATED_AUDIENCE, lifetime: int = 3600
    ) -> str:
        """Write a token to ``path`` (like AZURE_FEDERATED_TOKEN_FILE) and return it."""
        token = self.token(subject, audience, lifetime)
        path.write_text(token, encoding="utf-8")
        return token


def make_federated_issuer(tmp_path: Path) -> FederatedIssuer:
    """A new issuer with its own RSA key; put ``issuer``/``public_key_pem`` in the config."""
    del tmp_path  # the key lives in memory; the parameter keeps the call uniform
    key = _new_rsa_key()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    issuer = f"https://oidc.emulator.test/{uuid.uuid4()}/"
    return FederatedIssuer(issuer=issuer, public_key_pem=public_pem, _key=key)


@dataclass
class EmulatorSetup:
    """A config with one tenant and one app holding all three credential kinds."""

    config: dict[str, Any]
    tenant_id: str
    client_id: str
    client_secret: str
    certificate_path: Path  # private key + certificate, PEM
    certificate_pem: str
    federated_issuer: FederatedIssuer
    federated_subject: str
    user_with_policy: str
    user_without_policy: str
    unknown_user: str  # a GUID that is not a user (unless any_user=True)

    @property
    def private_key_pem(self) -> str:
        text = self.certificate_path.read_text(encoding="utf-8")
        return text[: text.index("-----BEGIN CERTIFICATE-----")]

    def msal_credential(self, kind: str) -> Any:
        """The ``client_credential`` MSAL needs for "secret", "certificate" or "federated"."""
        if kind == "secret":
            return self.client_secret
        if kind == "certificate":
            return {"private_key": self.private_key_pem, "public_certificate": self.certificate_pem}
        if kind == "federated":
            return {"client_assertion": lambda: self.federated_issuer.token(self.federated_subject)}
        raise ValueError(f"unknown credential kind {kind!r}")


def default_config(
    tmp_path: Path,
    *,
    any_user: bool = False,
    global_access_policy: bool = False,
    token_lifetime_seconds: int = 3600,
    refresh_in_seconds: int | None = None,
) -> EmulatorSetup:
    """A fresh tenant, app (secret + certificate + federated) and users, with new secrets.

    ``refresh_in_seconds`` sets the config's ``refreshInSeconds`` (token responses then
    carry ``refresh_in``, and MSAL refreshes cached tokens that much after issue).
    """
    tenant_id, client_id = str(uuid.uuid4()), str(uuid.uuid4())
    client_secret = secrets.token_urlsafe(32)
    certificate_path, certificate_pem = make_certificate_credential(tmp_path)
    issuer = make_federated_issuer(tmp_path)
    subject = "system:serviceaccount:meetings:provisioning"
    with_policy, without_policy = str(uuid.uuid4()), str(uuid.uuid4())
    config: dict[str, Any] = {
        "tenants": [
            {
                "id": tenant_id,
                "apps": [
                    {
                        "clientId": client_id,
                        "clientSecret": client_secret,
                        "certificatePem": certificate_pem,
                        "federated": [
                            {
                                "issuer": issuer.issuer,
                                "subject": subject,
                                "audience": FEDERATED_AUDIENCE,
                                "publicKeyPem": issuer.public_key_pem,
                            }
                        ],
                    }
                ],
                "users": [
                    {
                        "id": with_policy,
                        "displayName": "Ada Organizer",
                        "upn": "ada@contoso.example",
                        "accessPolicy": True,
                    },
                    {
                        "id": without_policy,
                        "displayName": "Bob NoPolicy",
                        "upn": "bob@contoso.example",
                        "accessPolicy": False,
                    },
                ],
                "anyUser": any_user,
                "globalAccessPolicy": global_access_policy,
            }
        ],
        "tokenLifetimeSeconds": token_lifetime_seconds,
    }
    if refresh_in_seconds is not None:
        config["refreshInSeconds"] = refresh_in_seconds
    return EmulatorSetup(
        config=config,
        tenant_id=tenant_id,
        client_id=client_id,
        client_secret=client_secret,
        certificate_path=certificate_path,
        certificate_pem=certificate_pem,
        federated_issuer=issuer,
        federated_subject=subject,
        user_with_policy=with_policy,
        user_without_policy=without_policy,
        unknown_user=str(uuid.uuid4()),
    )
