"""The emulated Graph endpoints under /v1.0 and /beta: createOrGet, and GET, PATCH and
DELETE of one meeting (/users/{userId}/onlineMeetings/{meetingId}).

Every endpoint first checks the bearer token (401), that the user exists (404) and the
application access policy (403). Then:

- createOrGet: body against the contract (400), times (400); the meeting is created
  (201) or the existing one returned unchanged (200).
- GET: the meeting (200), or 404 if this user has no such live meeting (unknown id,
  another organizer's or tenant's meeting, or deleted).
- PATCH: body against the contract's PATCH schema (400), an evolvable enum's value
  after ``unknownFutureValue`` (lobby scope ``invited``) without ``Prefer:
  include-unknown-enum-members``, or ``unknownFutureValue`` itself (400), then 404 as for
  GET, then Graph's update rules (400, see meeting_update); 200 with the whole updated
  meeting.

Every meeting in an answer to a request without that Prefer header shows such values as
``unknownFutureValue``, as Graph does (the stored meeting keeps the real value).
- DELETE: 404 as for GET, else 204 without a body. The identity is freed: createOrGet
  with the same externalId then creates a new meeting (see meetings).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from . import schema, times
from .config import Tenant, User
from .errors import GraphError
from .meeting_builder import new_meeting
from .meeting_update import UpdateRejected, apply_update
from .meetings import Meeting, MeetingKey
from .state import current_state
from .tokens import TokenRejected

bp = Blueprint("graph", __name__)

_VERSION = "/<any('v1.0', beta):version>"
_MEETINGS = _VERSION + "/users/<user_id>/onlineMeetings"
_MEETING = _MEETINGS + "/<meeting_id>"
ODATA_JSON = "application/json;odata.metadata=minimal;odata.streaming=true;charset=utf-8"
NO_POLICY = "No application access policy found for this app."


@bp.post(_MEETINGS + "/createOrGet")
@bp.post(_MEETINGS + "/microsoft.graph.createOrGet")
def create_or_get(version: str, user_id: str) -> Response:
    """POST /{version}/users/{userId}/onlineMeetings/createOrGet."""
    state = current_state()
    tenant, user = _authorized_organizer(user_id)
    body = _json_body()
    problem = schema.request_problem(body, version)
    if problem:
        raise GraphError(400, "BadRequest", problem)
    start, end = _meeting_times(body)
    meeting, created = state.meetings.create_or_get(
        MeetingKey(tenant.id, user.id, body["externalId"]),
        lambda: new_meeting(
            tenant_id=tenant.id,
            organizer=user,
            body=body,
            start=start,
            end=end,
            audience=state.audience,
        ),
    )
    return _meeting_response(meeting, version, user_id, 201 if created else 200)


@bp.get(_MEETING)
def get_meeting(version: str, user_id: str, meeting_id: str) -> Response:
    """GET /{version}/users/{userId}/onlineMeetings/{meetingId}."""
    tenant, user = _authorized_organizer(user_id)
    meeting = current_state().meetings.get(tenant.id, user.id, meeting_id)
    if meeting is None:
        raise _meeting_not_found()
    return _meeting_response(meeting, version, user_id, 200)


@bp.patch(_MEETING)
def update_meeting(version: str, user_id: str, meeting_id: str) -> Response:
    """PATCH /{version}/users/{userId}/onlineMeetings/{meetingId}."""
    tenant, user = _authorized_organizer(user_id)
    body = _json_body()
    problem = schema.meeting_problem(body, version) or schema.evolvable_problem(
        body, version, prefers_unknown_enum_members()
    )
    if problem:
        raise GraphError(400, "BadRequest", problem)
    try:
        meeting = current_state().meetings.update(
            tenant.id, user.id, meeting_id, lambda current: apply_update(current, body, version)
        )
    except UpdateRejected as exc:
        raise GraphError(400, "BadRequest", str(exc)) from exc
    if meeting is None:
        raise _meeting_not_found()
    return _meeting_response(meeting, version, user_id, 200)


@bp.delete(_MEETING)
def delete_meeting(version: str, user_id: str, meeting_id: str) -> Response:
    """DELETE /{version}/users/{userId}/onlineMeetings/{meetingId}."""
    tenant, user = _authorized_organizer(user_id)
    if not current_state().meetings.delete(tenant.id, user.id, meeting_id):
        raise _meeting_not_found()
    response = Response(status=204)
    del response.headers["Content-Type"]  # no body, so no type (as Graph answers)
    return response


def _meeting_not_found() -> GraphError:
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def _authorized_organizer(user_id: str) -> tuple[Tenant, User]:
    state = current_state()
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
    try:
        claims = state.tokens.check(token.strip())
    except TokenRejected as exc:
        if exc.claims is not None:
            g.claims_challenge = exc.claims  # app._finish puts it in WWW-Authenticate
        raise GraphError(401, "InvalidAuthenticationToken", str(exc)) from exc
    tenant = state.directory.tenant(claims.tenant_id)
    if tenant is None:
        raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.")
    user = state.directory.user(tenant, user_id)
    if user is None:
        raise GraphError(
            404, "ErrorItemNotFound", f"The user '{user_id}' could not be found in the tenant."
        )
    if not state.directory.has_access_policy(tenant, user):
        raise GraphError(403, "General", NO_POLICY)
    return tenant, user


def _json_body() -> Any:
    body = request.get_json(silent=True) if request.is_json else None
    if body is None:
        raise GraphError(
            400, "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and"
            " payload is of valid JSON format.",
        )  # fmt: skip
    return body


def _meeting_times(body: dict[str, Any]) -> tuple[int, int]:
    """Graph's defaults: no times = now for 1 h; start only = 1 h; end needs a start."""
    start_text, end_text = body.get("startDateTime"), body.get("endDateTime")
    if end_text and not start_text:
        raise GraphError(
            400, "BadRequest", "startDateTime is required when endDateTime is specified."
        )
    try:
        start = times.parse(start_text) if start_text else times.now_ticks()
        end = times.parse(end_text) if end_text else start + times.ONE_HOUR
        times.in_range(end, "startDateTime + 1 hour (the default endDateTime)")
    except ValueError as exc:  # matches the contract's pattern but is no real date
        raise GraphError(400, "BadRequest", str(exc)) from exc
    if end < start:
        raise GraphError(400, "BadRequest", "endDateTime must not be earlier than startDateTime.")
    return start, end


def prefers_unknown_enum_members() -> bool:
    """Whether the request carries ``Prefer: include-unknown-enum-members`` (among other
    preferences, comma-separated, in any case; several Prefer headers count too)."""
    preferences = ",".join(request.headers.getlist("Prefer"))
    return any(
        part.strip().lower() == schema.PREFER_UNKNOWN_ENUM_MEMBERS
        for part in preferences.split(",")
    )


def _meeting_response(meeting: Meeting, version: str, user_id: str, status: int) -> Response:
    if not prefers_unknown_enum_members():
        meeting = schema.masked(meeting, version)
    context = (
        f"{current_state().audience}/{version}/$metadata#users('{user_id}')/onlineMeetings/$entity"
    )
    response = jsonify({"@odata.context": context, **meeting})
    response.status_code = status
    response.content_type = ODATA_JSON
    return response
