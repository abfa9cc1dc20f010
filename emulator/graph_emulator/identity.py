"""The emulated Entra ID endpoints MSAL's ConfidentialClientApplication uses.

MSAL (with ``instance_discovery=False``) first GETs the tenant's OpenID
configuration, then POSTs a client_credentials grant to its ``token_endpoint``.
URLs in the discovery document are built from the host the client called, so the
assertion audience MSAL computes is the URL this endpoint checks.
"""

from __future__ import annotations

import json
import time
from typing import Any

from flask import Blueprint, jsonify, request

from . import client_auth
from .clouds import cloud_for, graph_host
from .config import Tenant
from .errors import EntraError
from .state import current_state

bp = Blueprint("identity", __name__)

# Azure Cache for Redis / Managed Redis: the resource its Entra ID tokens are issued for.
REDIS_AUDIENCE = "https://redis.azure.com"
REDIS_SCOPE = f"{REDIS_AUDIENCE}/.default"


@bp.get("/<tenant_id>/v2.0/.well-known/openid-configuration")
def discovery(tenant_id: str) -> Any:
    """OpenID configuration, shaped like login.microsoftonline.com's."""
    tenant = _tenant(tenant_id, error="invalid_tenant")
    state = current_state()
    base = f"{_host()}/{tenant.id}"
    return jsonify(
        {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{_host()}/{tenant.id}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{state.audience}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "cloud_instance_name",
                "cloud_instance_host_name",
                "cloud_graph_host_name",
                "msgraph_host",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "at_hash",
                "c_hash",
                "email",
            ],  # fmt: skip
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "NA",
            "cloud_instance_name": cloud_for(state.audience).instance_name,
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": graph_host(state.audience),
            "rbac_url": "https://pas.windows.net",
        }
    )


@bp.get("/<tenant_id>/discovery/v2.0/keys")
def keys(tenant_id: str) -> Any:
    """The key the emulator signs access tokens with."""
    _tenant(tenant_id, error="invalid_tenant")
    return jsonify(current_state().tokens.jwks())


@bp.post("/<tenant_id>/oauth2/v2.0/token")
def token(tenant_id: str) -> Any:
    """The client_credentials grant, with a secret, certificate or federated assertion."""
    state = current_state()
    form = request.form
    presented = client_auth.presented_credential(form, request.headers.get("Authorization"))
    scope = form.get("scope")
    tenant = _tenant(tenant_id, error="invalid_request")
    grant_type = form.get("grant_type")
    if not grant_type:
        raise _missing("grant_type")
    if grant_type != "client_credentials":
        raise EntraError(
            400, "unsupported_grant_type", 70003,
            f"The app requested an unsupported grant type '{grant_type}'.",
        )  # fmt: skip
    if not presented.client_id:
        raise _missing("client_id")
    app = state.directory.app(tenant, presented.client_id)
    if app is None:
        raise EntraError(
            400, "unauthorized_client", 700016,
            f"Application with identifier '{presented.client_id}' was not found in the"
            f" directory '{tenant.id}'. This can happen if the application has not been"
            " installed by the administrator of the tenant or consented to by any user in the"
            " tenant. You may have sent your authentication request to the wrong tenant.",
        )  # fmt: skip
    api = state.caller_api
    caller_scopes = (
        {f"{api.app_id_uri}/.default".lower(), f"{api.client_id}/.default"} if api else set()
    )
    if (scope or "").lower() in caller_scopes and api is not None:
        # A caller app asking for a token for the meeting-provisioning service.
        client_auth.authenticate(app, presented, _token_endpoint_audiences(tenant))
        issued = state.tokens.issue_caller(
            tenant_id=tenant.id,
            app_id=app.client_id,
            audience=api.app_id_uri if api.access_token_version == 1 else api.client_id,
            version=api.access_token_version,
            roles=list(app.app_roles),
            issuer_host=_host(),
        )
        return jsonify(
            {
                "token_type": "Bearer",
                "expires_in": issued.expires_in,
                "ext_expires_in": issued.expires_in,
                "access_token": issued.access_token,
            }
        )
    if (scope or "").lower() == REDIS_SCOPE:
        # A token for Azure Cache / Managed Redis, which the Redis front checks (its
        # lifetime is the config's redisTokenLifetimeSeconds, short in the tests).
        client_auth.authenticate(app, presented, _token_endpoint_audiences(tenant))
        lifetime = state.redis_token_lifetime
        issued = state.tokens.issue_caller(
            tenant_id=tenant.id,
            app_id=app.client_id,
            audience=REDIS_AUDIENCE,
            version=1,
            roles=[],
            issuer_host=_host(),
            overrides={"exp": int(time.time()) + lifetime, "roles": None},
        )
        return jsonify(
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": issued.access_token,
            }
        )
    _check_scope(scope, state.audience)
    client_auth.authenticate(app, presented, _token_endpoint_audiences(tenant))
    issued = state.tokens.issue(
        tenant.id, app.client_id, presented.kind or "secret", _cae_capable(form.get("claims"))
    )
    answer: dict[str, Any] = {
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "ext_expires_in": issued.expires_in,
    }
    if issued.refresh_in is not None:  # only when configured (refreshInSeconds)
        answer["refresh_in"] = issued.refresh_in
    answer["access_token"] = issued.access_token
    return jsonify(answer)


def _cae_capable(claims: str | None) -> bool:
    """Whether the `claims` parameter declares the client capability cp1 (as MSAL sends it
    for client_capabilities=["cp1"]: {"access_token": {"xms_cc": {"values": ["cp1"]}}}).
    Entra compares it without case: azure-identity sends "CP1"."""
    try:
        document = json.loads(claims or "{}")
        values = document["access_token"]["xms_cc"]["values"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(values, list) and "cp1" in {str(value).lower() for value in values}


def describe_token_request() -> dict[str, Any]:
    """What stats record about a token request: never the secret or the assertion."""
    presented = client_auth.presented_credential(request.form, request.headers.get("Authorization"))
    described: dict[str, Any] = {
        "tenantId": (request.view_args or {}).get("tenant_id"),
        "clientId": presented.client_id,
        "credentialKind": presented.kind,
        "scope": request.form.get("scope"),
    }
    if request.form.get("claims") is not None:  # CAE: the capability and challenge claims
        described["claims"] = request.form["claims"]
    return described


def _check_scope(scope: str | None, audience: str) -> None:
    if not scope:
        raise _missing("scope")
    scopes = scope.split()
    if not all(s.endswith("/.default") for s in scopes):
        raise EntraError(
            400, "invalid_scope", 1002012,
            f"The provided value for scope {scope} is not valid. Client credential flows must"
            " have a scope value with /.default suffixed to the resource identifier"
            " (application ID URI).",
        )  # fmt: skip
    if [s.lower() for s in scopes] != [f"{audience}/.default".lower()]:
        raise EntraError(
            400, "invalid_scope", 70011,
            "The provided value for the input parameter 'scope' is not valid. The scope"
            f" {scope} is not valid.",
        )  # fmt: skip


def _token_endpoint_audiences(tenant: Tenant) -> list[str]:
    # Entra accepts the v2 and v1 token endpoints and the issuer as assertion audience.
    base = f"{_host()}/{tenant.id}"
    return [f"{base}/oauth2/v2.0/token", f"{base}/oauth2/token", f"{base}/v2.0"]


def _tenant(tenant_id: str, *, error: str) -> Tenant:
    tenant = current_state().directory.tenant(tenant_id)
    if tenant is None:
        raise EntraError(
            400, error, 90002,
            f"Tenant '{tenant_id}' not found. Check to make sure you have the correct tenant ID"
            " and are signing into the correct cloud. Check with your subscription"
            " administrator, this may happen if there are no active subscriptions for the"
            " tenant.",
        )  # fmt: skip
    return tenant


def _missing(parameter: str) -> EntraError:
    return EntraError(
        400, "invalid_request", 900144,
        f"The request body must contain the following parameter: '{parameter}'.",
    )  # fmt: skip


def _host() -> str:
    return request.host_url.rstrip("/")
