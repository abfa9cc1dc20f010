"""Client authentication at the token endpoint: secret, certificate or federated assertion.

Mirrors what Entra checks and the AADSTS codes it answers with. MSAL Python signs
certificate assertions with PS256 and an ``x5t#S256`` header when it is given the
public certificate, and with RS256 and an ``x5t`` (SHA-1) header when it is given
only a thumbprint; both are accepted. An assertion whose ``iss`` is the client id
is a certificate assertion; any other issuer means a federated credential.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from .config import App, FederatedCredential
from .encoding import b64url
from .errors import EntraError

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CERTIFICATE_ALGORITHMS = ["RS256", "PS256"]
FEDERATED_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"]


class ClientAuthError(EntraError):
    """Entra rejects the client's credential."""


@dataclass(frozen=True)
class PresentedCredential:
    """What the client sent, before anything is checked."""

    client_id: str | None
    kind: str | None  # "secret", "certificate", "federated" or None
    secret: str | None = field(default=None, repr=False)  # never in logs or reprs
    assertion: str | None = field(default=None, repr=False)
    assertion_type: str | None = None


def presented_credential(form: Mapping[str, str], authorization: str | None) -> PresentedCredential:
    """Read the client id and credential from the body or an HTTP Basic header."""
    client_id = form.get("client_id") or None
    secret = form.get("client_secret") or None
    if authorization and authorization[:6].lower() == "basic ":
        # client_secret_basic: both parts are form-urlencoded before base64 (RFC 6749).
        try:
            decoded = base64.b64decode(authorization[6:].strip()).decode()
            basic_id, _, basic_secret = decoded.partition(":")
        except ValueError:
            basic_id = basic_secret = ""
        client_id = client_id or unquote_plus(basic_id) or None
        secret = secret or unquote_plus(basic_secret) or None
    assertion = form.get("client_assertion") or None
    if assertion:
        issuer = _unverified_claims(assertion).get("iss")
        is_own = client_id is not None and str(issuer).lower() == client_id.lower()
        kind = "certificate" if is_own else "federated"
        return PresentedCredential(
            client_id, kind, assertion=assertion, assertion_type=form.get("client_assertion_type")
        )
    return PresentedCredential(client_id, "secret" if secret else None, secret=secret)


def authenticate(app: App, presented: PresentedCredential, audiences: list[str]) -> None:
    """Raise ClientAuthError unless the credential proves the app's identity.

    ``audiences`` are the token endpoint URLs a certificate assertion may be for.
    """
    if presented.kind == "secret":
        _check_secret(app, presented.secret or "")
    elif presented.kind in ("certificate", "federated"):
        if presented.assertion_type != JWT_BEARER:
            raise ClientAuthError(
                400, "invalid_request", 90014,
                "The required field 'client_assertion_type' is missing or invalid.",
            )  # fmt: skip
        if presented.kind == "certificate":
            _check_certificate_assertion(app, presented.assertion or "", audiences)
        else:
            _check_federated_assertion(app, presented.assertion or "")
    else:
        raise ClientAuthError(
            401, "invalid_client", 7000218,
            "The request body must contain the following parameter: 'client_assertion' or"
            " 'client_secret'.",
        )  # fmt: skip


def _check_secret(app: App, secret: str) -> None:
    if app.client_secret is None or not hmac.compare_digest(
        app.client_secret.encode(), secret.encode()
    ):
        raise ClientAuthError(
            401, "invalid_client", 7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the"
            " client secret value, not the client secret ID, for a secret added to app"
            f" '{app.client_id}'.",
        )  # fmt: skip


def _check_certificate_assertion(app: App, assertion: str, audiences: list[str]) -> None:
    header = _unverified_header(assertion)
    if app.certificate is None or not _thumbprint_matches(header, app.certificate):
        raise ClientAuthError(
            401, "invalid_client", 700027,
            "The certificate with identifier used to sign the client assertion is not"
            f" registered on application. [Reason - The key was not found., Thumbprint of key"
            f" used by client: '{header.get('x5t#S256') or header.get('x5t')}', Please visit"
            f" the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys"
            f" for app Id '{app.client_id}'.]",
        )  # fmt: skip
    try:
        claims = jwt.decode(
            assertion,
            app.certificate.public_key(),  # type: ignore[arg-type]
            algorithms=CERTIFICATE_ALGORITHMS,
            audience=audiences,
            options={"require": ["exp", "aud", "iss", "sub"]},
        )
    except jwt.InvalidAudienceError as exc:
        raise ClientAuthError(
            401, "invalid_client", 700212,
            "The audience claim of the client assertion is not the token endpoint.",
        ) from exc  # fmt: skip
    except jwt.InvalidTokenError as exc:
        raise _assertion_error(exc) from exc
    # Client ids are GUIDs, compared case-insensitively like everywhere in Entra.
    if {str(claims["iss"]).lower(), str(claims["sub"]).lower()} != {app.client_id}:
        raise _wrong_client_id()


def _check_federated_assertion(app: App, assertion: str) -> None:
    claims = _unverified_claims(assertion)
    issuer, subject, audience = claims.get("iss"), claims.get("sub"), claims.get("aud")
    candidates = [f for f in app.federated if f.issuer == issuer and f.subject == subject]
    if not candidates:
        raise ClientAuthError(
            401, "invalid_client", 70021,
            "No matching federated identity record found for presented assertion. Assertion"
            f" Issuer: '{issuer}'. Assertion Subject: '{subject}'. Assertion Audience:"
            f" '{audience}'.",
        )  # fmt: skip
    if not any(_audience_matches(audience, f) for f in candidates):
        raise ClientAuthError(
            401, "invalid_client", 700212,
            "No matching federated identity record found for presented assertion audience"
            f" '{audience}'.",
        )  # fmt: skip
    credential = next(f for f in candidates if _audience_matches(audience, f))
    try:
        jwt.decode(
            assertion,
            credential.public_key,  # type: ignore[arg-type]
            algorithms=FEDERATED_ALGORITHMS,
            audience=credential.audience,
            issuer=credential.issuer,
            options={"require": ["exp", "aud", "iss", "sub"]},
        )
    except jwt.InvalidTokenError as exc:
        raise _assertion_error(exc) from exc


def _audience_matches(audience: Any, credential: FederatedCredential) -> bool:
    audiences = audience if isinstance(audience, list) else [audience]
    return credential.audience in audiences


def _thumbprint_matches(header: dict[str, Any], certificate: x509.Certificate) -> bool:
    # MSAL pads its base64url thumbprints; compare without padding.
    if "x5t#S256" in header:
        expected = b64url(certificate.fingerprint(hashes.SHA256()))
        return str(header["x5t#S256"]).rstrip("=") == expected
    if "x5t" in header:
        expected = b64url(certificate.fingerprint(hashes.SHA1()))
        return str(header["x5t"]).rstrip("=") == expected
    return False


def _assertion_error(exc: jwt.InvalidTokenError) -> ClientAuthError:
    if isinstance(exc, jwt.ExpiredSignatureError | jwt.ImmatureSignatureError):
        return ClientAuthError(
            401, "invalid_client", 700024, "Client assertion is not within its valid time range."
        )
    if isinstance(exc, jwt.InvalidSignatureError | jwt.InvalidAlgorithmError):
        return ClientAuthError(
            401, "invalid_client", 700027, "Client assertion failed signature validation."
        )
    return ClientAuthError(401, "invalid_client", 50027, "JWT token is invalid or malformed.")


def _wrong_client_id() -> ClientAuthError:
    return ClientAuthError(
        401, "invalid_client", 700021,
        "Client assertion application identifier doesn't match 'client_id' parameter.",
    )  # fmt: skip


def _unverified_header(assertion: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(assertion)
    except jwt.DecodeError as exc:
        raise ClientAuthError(
            401, "invalid_client", 50027, "JWT token is invalid or malformed."
        ) from exc


def _unverified_claims(assertion: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return {}
    return claims
