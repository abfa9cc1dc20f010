"""The admin API under /_emulator/: fault injection, rate limits, users, stats, meetings,
reset.

No authentication; it answers loopback clients only, so an emulator bound to a wider
address still cannot be reconfigured from elsewhere.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, request

from .directory import UnknownTenant
from .faults import FaultSpecError
from .state import REDIS_FRONT_KEY, current_state

bp = Blueprint("admin", __name__, url_prefix="/_emulator")


@bp.before_request
def _loopback_only() -> None:
    try:
        loopback = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        abort(403)


@bp.get("/health")
def health() -> Response:
    return jsonify({"status": "ok"})


@bp.post("/faults")
def add_fault() -> tuple[Response, int]:
    """Body: {"target", "status", "retryAfter", "latencyMs", "count", "errorCode",
    "message", "reset", "afterProcessing", "organizerId"} -> 201 {"id": n}."""
    try:
        fault_id = current_state().faults.add(_json_object())
    except FaultSpecError as exc:
        return _bad_request(str(exc))
    return jsonify({"id": fault_id}), 201


@bp.delete("/faults")
def clear_faults() -> tuple[str, int]:
    """Remove every fault and rate limit."""
    current_state().faults.clear()
    return "", 204


@bp.post("/rate-limit")
def rate_limit() -> tuple[Response, int]:
    """Body: {"target": "createOrGet", "perSecond": 10}; perSecond null removes it."""
    body = _json_object()
    target, per_second = body.get("target", "createOrGet"), body.get("perSecond")
    try:
        current_state().faults.set_rate_limit(target, per_second)
    except FaultSpecError as exc:
        return _bad_request(str(exc))
    return jsonify({"target": target, "perSecond": per_second}), 200


@bp.post("/revoke-tokens")
def revoke_tokens() -> tuple[str, int]:
    """Every access token issued so far gets 401 from Graph."""
    current_state().tokens.revoke_all()
    return "", 204


@bp.post("/rotate-keys")
def rotate_keys() -> tuple[Response, int]:
    """Sign tokens with a new key from now on; body {"keepPrevious": true} (the default)
    keeps publishing the old key. -> {"kid": "<new kid>"}."""
    keep = _json_object().get("keepPrevious", True) is not False
    return jsonify({"kid": current_state().tokens.rotate(keep_previous=keep)}), 200


@bp.get("/signing-key")
def signing_key() -> Response:
    """The current signing key's kid and public PEM (to forge tokens in tests)."""
    tokens = current_state().tokens
    return jsonify({"kid": tokens.key_id, "publicKeyPem": tokens.public_pem().decode()})


@bp.get("/redis-front")
def redis_front() -> tuple[Response, int]:
    """The Redis fronts' counters, summed: connections, logins, refused logins by reason,
    and connections closed because their token expired."""
    fronts = current_app.extensions.get(REDIS_FRONT_KEY)
    if not fronts:
        return _bad_request("this emulator serves no Redis front (--redis-backend-port)")
    total: dict[str, Any] = {"connections": 0, "logins": 0, "refused": {}, "expiredCloses": 0}
    for front in fronts:
        counts = front.snapshot()
        for name in ("connections", "logins", "expiredCloses"):
            total[name] += counts[name]
        for reason, count in counts["refused"].items():
            total["refused"][reason] = total["refused"].get(reason, 0) + count
    return jsonify(total), 200


@bp.post("/caller-token")
def caller_token() -> tuple[Response, int]:
    """Mint a caller token for the meeting-provisioning service without a client credential.

    Body: {"tenantId", "appId", "version": 1|2, "audience"?, "roles"?, "claims"?}; audience
    defaults to callerApi's (appIdUri for v1, clientId for v2), roles to
    ["Meetings.Provision"]; "claims" overrides claims (null removes one). -> {"access_token"}.
    """
    state = current_state()
    body = _json_object()
    api = state.caller_api
    version = body.get("version", api.access_token_version if api else 2)
    tenant_id, app_id = body.get("tenantId"), body.get("appId")
    if not isinstance(tenant_id, str) or not isinstance(app_id, str) or version not in (1, 2):
        return _bad_request("tenantId and appId are required strings; version is 1 or 2")
    audience = body.get("audience") or (
        (api.app_id_uri if version == 1 else api.client_id) if api else None
    )
    if not isinstance(audience, str):
        return _bad_request("audience is required when no callerApi is configured")
    roles = body.get("roles", ["Meetings.Provision"])
    claims = body.get("claims") or {}
    if not isinstance(roles, list) or not isinstance(claims, dict):
        return _bad_request("roles must be a list and claims an object")
    issued = state.tokens.issue_caller(
        tenant_id=tenant_id.lower(),
        app_id=app_id.lower(),
        audience=audience,
        version=int(version),
        roles=roles,
        issuer_host=request.host_url.rstrip("/"),
        overrides=claims,
    )
    return jsonify({"access_token": issued.access_token, "expires_in": issued.expires_in}), 200


@bp.post("/reset")
def reset() -> tuple[str, int]:
    """Forget meetings, stats, faults and rate limits."""
    current_state().reset()
    return "", 204


@bp.post("/users")
def set_user() -> tuple[Response, int]:
    """Body: {"tenantId", "id", "accessPolicy"?, "displayName"?, "upn"?}: add or update."""
    body = _json_object()
    tenant_id, user_id = body.get("tenantId"), body.get("id")
    if not isinstance(tenant_id, str) or not isinstance(user_id, str) or not user_id:
        return _bad_request("tenantId and id are required strings")
    policy = body.get("accessPolicy")
    if policy is not None and not isinstance(policy, bool):
        return _bad_request("accessPolicy must be true or false")
    try:
        user = current_state().directory.set_user(
            tenant_id,
            user_id,
            access_policy=policy,
            display_name=_optional_str(body, "displayName"),
            upn=_optional_str(body, "upn"),
        )
    except UnknownTenant:
        return _bad_request(f"unknown tenant {tenant_id}")
    return jsonify(
        {
            "tenantId": tenant_id.lower(),
            "id": user.id,
            "displayName": user.display_name,
            "upn": user.upn,
            "accessPolicy": user.access_policy,
        }
    ), 200


@bp.get("/stats")
def stats() -> Response:
    """Calls per operation and status, token requests, meetings and recent requests.

    ``meetings`` has one row per meeting ever created, oldest first: tenantId, userId,
    externalId, meetingId, created (201s), returned (createOrGet 200s), patched
    (successful PATCHes) and deleted. ``requests`` records every Graph request:
    operation (createOrGet, getMeeting, patchMeeting, deleteMeeting), version, userId,
    status (or "reset"), clientRequestId, requestId, body (createOrGet and PATCH), prefer
    (the Prefer header, or null) and, for the operations on one meeting, meetingId.
    """
    state = current_state()
    snapshot = state.stats.snapshot()
    return jsonify(
        {
            "calls": snapshot["calls"],
            "tokenRequests": snapshot["tokenRequests"],
            "meetings": state.meetings.snapshot(),
            "requests": snapshot["requests"],
        }
    )


@bp.get("/meetings/<meeting_id>")
def meeting(meeting_id: str) -> Response | tuple[Response, int]:
    """The live meeting as stored (no @odata.context); 404 if unknown or deleted."""
    found = current_state().meetings.find(meeting_id)
    if found is None:
        return jsonify({"error": f"no live meeting {meeting_id}"}), 404
    return jsonify(found)


def _json_object() -> dict[str, Any]:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) else None


def _bad_request(message: str) -> tuple[Response, int]:
    return jsonify({"error": message}), 400
