"""The emulator's configuration file: tenants, their apps and users.

The file is JSON::

    {"tenants": [{"id": "<tenant guid>",
                  "apps": [{"clientId": "<guid>",
                            "clientSecret": "...",               # optional
                            "certificatePem": "-----BEGIN ...",  # optional, public cert only
                            "federated": [{"issuer": "https://...",
                                           "subject": "system:serviceaccount:ns:sa",
                                           "audience": "api://AzureADTokenExchange",
                                           "publicKeyPem": "..."}]}],
                  "users": [{"id": "<guid>", "displayName": "...", "upn": "...",
                             "accessPolicy": true}],
                  "anyUser": false,
                  "globalAccessPolicy": false}],
     "tokenLifetimeSeconds": 3600,
     "refreshInSeconds": 1800,                          # optional
     "callerApi": {"appIdUri": "api://meeting-provisioning",   # optional
                   "clientId": "<guid>", "accessTokenVersion": 2}}

``callerApi`` is the meeting-provisioning service's own app registration: a configured app
that asks for ``<appIdUri>/.default`` (or ``<clientId>/.default``) gets a caller token for
it, v1 or v2 as ``accessTokenVersion`` says (Entra's requestedAccessTokenVersion), with
the app's ``appRoles`` (e.g. ``["Meetings.Provision"]``) in ``roles``.

``refreshInSeconds``, when set, adds ``refresh_in`` to token responses (as Entra does
for long-lived tokens): MSAL then refreshes a cached token proactively after that many
seconds. It must be shorter than the token lifetime.

Everything is checked once at start-up and every problem is reported in one
ConfigError, so a developer fixes the file in one go.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import load_pem_public_key

DEFAULT_FEDERATED_AUDIENCE = "api://AzureADTokenExchange"
DEFAULT_TOKEN_LIFETIME = 3600
# Tokens for Azure Redis (scope https://redis.azure.com/.default): an hour, as Entra's.
DEFAULT_REDIS_TOKEN_LIFETIME = 3600


class ConfigError(ValueError):
    """The configuration file is unreadable or invalid; the message lists every problem."""


@dataclass(frozen=True)
class FederatedCredential:
    issuer: str
    subject: str
    audience: str
    public_key: PublicKeyTypes


@dataclass(frozen=True)
class App:
    client_id: str
    client_secret: str | None = None
    certificate: x509.Certificate | None = None
    federated: tuple[FederatedCredential, ...] = ()
    # App roles of the caller API granted to this app (roles of its caller tokens).
    app_roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class CallerApi:
    app_id_uri: str
    client_id: str
    access_token_version: int = 2


@dataclass(frozen=True)
class User:
    id: str
    display_name: str | None = None
    upn: str | None = None
    access_policy: bool = False


@dataclass(frozen=True)
class Tenant:
    id: str
    apps: tuple[App, ...] = ()
    users: tuple[User, ...] = ()
    any_user: bool = False
    global_access_policy: bool = False


@dataclass(frozen=True)
class EmulatorConfig:
    tenants: tuple[Tenant, ...] = ()
    token_lifetime_seconds: int = DEFAULT_TOKEN_LIFETIME
    refresh_in_seconds: int | None = None
    caller_api: CallerApi | None = None
    redis_token_lifetime_seconds: int = DEFAULT_REDIS_TOKEN_LIFETIME


def load_config(path: Path) -> EmulatorConfig:
    """Read and check a configuration file."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read emulator config {path}: {exc}") from exc
    return parse_config(raw)


def parse_config(raw: Any) -> EmulatorConfig:
    """Turn the parsed JSON into an EmulatorConfig, or raise ConfigError."""
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise ConfigError("emulator config: the top level must be a JSON object")
    _known_keys(
        raw,
        {
            "tenants",
            "tokenLifetimeSeconds",
            "refreshInSeconds",
            "callerApi",
            "redisTokenLifetimeSeconds",
        },
        "config",
        problems,
    )
    caller_api = _caller_api(raw.get("callerApi"), problems)
    tenants = tuple(
        _tenant(item, f"tenants[{i}]", problems)
        for i, item in enumerate(_list(raw, "tenants", "config", problems))
    )
    if not tenants:
        problems.append("tenants must list at least one tenant")
    ids = [t.id for t in tenants]
    for tenant_id in {i for i in ids if ids.count(i) > 1}:
        problems.append(f"tenant {tenant_id} is listed more than once")
    lifetime = raw.get("tokenLifetimeSeconds", DEFAULT_TOKEN_LIFETIME)
    if not isinstance(lifetime, int) or isinstance(lifetime, bool) or lifetime <= 0:
        problems.append("tokenLifetimeSeconds must be a positive integer")
        lifetime = DEFAULT_TOKEN_LIFETIME
    redis_lifetime = raw.get("redisTokenLifetimeSeconds", DEFAULT_REDIS_TOKEN_LIFETIME)
    if (
        not isinstance(redis_lifetime, int)
        or isinstance(redis_lifetime, bool)
        or redis_lifetime <= 0
    ):
        problems.append("redisTokenLifetimeSeconds must be a positive integer")
        redis_lifetime = DEFAULT_REDIS_TOKEN_LIFETIME
    refresh_in = raw.get("refreshInSeconds")
    if refresh_in is not None and (
        not isinstance(refresh_in, int)
        or isinstance(refresh_in, bool)
        or not 0 < refresh_in < lifetime
    ):
        problems.append("refreshInSeconds must be a positive integer below tokenLifetimeSeconds")
    if problems:
        raise ConfigError("invalid emulator config:\n  " + "\n  ".join(problems))
    return EmulatorConfig(
        tenants=tenants,
        token_lifetime_seconds=lifetime,
        refresh_in_seconds=refresh_in,
        caller_api=caller_api,
        redis_token_lifetime_seconds=redis_lifetime,
    )


def _caller_api(raw: Any, problems: list[str]) -> CallerApi | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append("callerApi must be an object")
        return None
    where = "callerApi"
    _known_keys(raw, {"appIdUri", "clientId", "accessTokenVersion"}, where, problems)
    version = raw.get("accessTokenVersion", 2)
    if version not in (1, 2):
        problems.append("callerApi.accessTokenVersion must be 1 or 2")
        version = 2
    return CallerApi(
        app_id_uri=_required_str(raw, "appIdUri", where, problems),
        client_id=_required_str(raw, "clientId", where, problems).lower(),
        access_token_version=int(version),
    )


def _tenant(raw: Any, where: str, problems: list[str]) -> Tenant:
    if not isinstance(raw, dict):
        problems.append(f"{where} must be an object")
        return Tenant(id="")
    _known_keys(raw, {"id", "apps", "users", "anyUser", "globalAccessPolicy"}, where, problems)
    return Tenant(
        id=_required_str(raw, "id", where, problems).lower(),
        apps=tuple(
            _app(item, f"{where}.apps[{i}]", problems)
            for i, item in enumerate(_list(raw, "apps", where, problems))
        ),
        users=tuple(
            _user(item, f"{where}.users[{i}]", problems)
            for i, item in enumerate(_list(raw, "users", where, problems))
        ),
        any_user=_bool(raw, "anyUser", where, problems),
        global_access_policy=_bool(raw, "globalAccessPolicy", where, problems),
    )


def _app(raw: Any, where: str, problems: list[str]) -> App:
    if not isinstance(raw, dict):
        problems.append(f"{where} must be an object")
        return App(client_id="")
    _known_keys(
        raw,
        {"clientId", "clientSecret", "certificatePem", "federated", "appRoles"},
        where,
        problems,
    )
    roles = _list(raw, "appRoles", where, problems)
    if not all(isinstance(role, str) for role in roles):
        problems.append(f"{where}.appRoles must be a list of strings")
        roles = []
    certificate = None
    pem = _optional_str(raw, "certificatePem", where, problems)
    if pem is not None:
        try:
            certificate = x509.load_pem_x509_certificate(pem.encode())
        except ValueError as exc:
            problems.append(f"{where}.certificatePem is not a PEM certificate: {exc}")
    return App(
        client_id=_required_str(raw, "clientId", where, problems).lower(),
        client_secret=_optional_str(raw, "clientSecret", where, problems),
        certificate=certificate,
        federated=tuple(
            credential
            for i, item in enumerate(_list(raw, "federated", where, problems))
            if (credential := _federated(item, f"{where}.federated[{i}]", problems))
        ),
        app_roles=tuple(roles),
    )


def _federated(raw: Any, where: str, problems: list[str]) -> FederatedCredential | None:
    if not isinstance(raw, dict):
        problems.append(f"{where} must be an object")
        return None
    _known_keys(raw, {"issuer", "subject", "audience", "publicKeyPem"}, where, problems)
    issuer = _required_str(raw, "issuer", where, problems)
    subject = _required_str(raw, "subject", where, problems)
    audience = _optional_str(raw, "audience", where, problems) or DEFAULT_FEDERATED_AUDIENCE
    pem = _required_str(raw, "publicKeyPem", where, problems)
    try:
        public_key = load_pem_public_key(pem.encode())
    except ValueError as exc:
        problems.append(f"{where}.publicKeyPem is not a PEM public key: {exc}")
        return None
    return FederatedCredential(issuer, subject, audience, public_key)


def _user(raw: Any, where: str, problems: list[str]) -> User:
    if not isinstance(raw, dict):
        problems.append(f"{where} must be an object")
        return User(id="")
    _known_keys(raw, {"id", "displayName", "upn", "accessPolicy"}, where, problems)
    return User(
        id=_required_str(raw, "id", where, problems).lower(),
        display_name=_optional_str(raw, "displayName", where, problems),
        upn=_optional_str(raw, "upn", where, problems),
        access_policy=_bool(raw, "accessPolicy", where, problems),
    )


def _known_keys(raw: dict[str, Any], allowed: set[str], where: str, problems: list[str]) -> None:
    # A misspelt key (say "accesPolicy") would otherwise silently mean "false".
    for key in sorted(set(raw) - allowed):
        problems.append(f"{where} has an unknown key '{key}' (known: {', '.join(sorted(allowed))})")


def _list(raw: dict[str, Any], key: str, where: str, problems: list[str]) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        problems.append(f"{where}.{key} must be a list")
        return []
    return value


def _required_str(raw: dict[str, Any], key: str, where: str, problems: list[str]) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        problems.append(f"{where}.{key} is required and must be a non-empty string")
        return ""
    return value


def _optional_str(raw: dict[str, Any], key: str, where: str, problems: list[str]) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        problems.append(f"{where}.{key} must be a string")
        return None
    return value


def _bool(raw: dict[str, Any], key: str, where: str, problems: list[str]) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        problems.append(f"{where}.{key} must be true or false")
        return False
    return value
