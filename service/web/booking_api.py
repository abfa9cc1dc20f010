"""The booking systems' API: /v1/meetings. Views parse, call the provisioner, render."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Request, Response, g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import missing
from webargs.flaskparser import FlaskParser

from service.domain.booking import BookingRequest, MeetingChange
from service.domain.callers import Caller, authenticate
from service.domain.record import BookingRecord
from service.foundation.errors import (
    BodyTooLarge,
    BookingBusy,
    BookingCancelled,
    BookingConflict,
    BookingNotFound,
    CallerNotRegistered,
    GraphAccessDenied,
    GraphRejected,
    GraphTimeout,
    GraphUnavailable,
    GraphUnexpected,
    InsufficientScope,
    InvalidRequest,
    OrganizerNotAllowed,
    QuotaExhausted,
    RateLimited,
    ServiceError,
    SigningKeysUnavailable,
    StoreUnavailable,
    TokenRejected,
    TokenUnavailable,
    Unauthenticated,
    UnsupportedMediaType,
)
from service.identity.caller_tokens import looks_like_jwt
from service.web import json_body
from service.web.schemas import (
    BOOKING_ID,
    BOOKING_ID_PATTERN,
    BOOKING_ID_RULE,
    BookingSchema,
    MeetingChangeSchema,
    MeetingSchema,
    ProblemSchema,
    UsageSchema,
    is_guid,
)
from service.wiring import services


class BadRequestParser(FlaskParser):
    # webargs answers 422 for invalid fields; this API promises 400 (422 is reserved for
    # "Graph rejected the request").
    DEFAULT_VALIDATION_STATUS = 400

    def _raw_load_json(self, req: Request) -> Any:
        # Strict JSON: repeated members, NaN, runaway nesting and huge integers are 400s.
        if not req.is_json:
            return missing
        return json_body.parse(req.get_data(cache=True))


class ApiBlueprint(Blueprint):
    ARGUMENTS_PARSER = BadRequestParser()


blp = ApiBlueprint(
    "meetings", __name__, url_prefix="/v1", description="Teams meetings for bookings"
)

PROBLEM = "application/problem+json"

# Instances, built once: given a class, webargs builds (and deep-copies the fields of) a new
# schema on every request. Loading keeps no state in the schema, so one instance serves
# every thread.
BOOKING_SCHEMA = BookingSchema()
MEETING_CHANGE_SCHEMA = MeetingChangeSchema()

# What each operation may answer instead of its success, as error classes: the documented
# statuses, descriptions and headers all come from the classes (service.foundation.errors).
BODY_ERRORS = (InvalidRequest, BodyTooLarge, UnsupportedMediaType)
GRAPH_ERRORS = (
    GraphRejected,
    GraphAccessDenied,
    GraphUnexpected,
    TokenRejected,
    GraphUnavailable,
    TokenUnavailable,
    GraphTimeout,
)
# Every /v1 operation may answer these: authentication (a key or an Entra ID token) and the
# caller's rate limit come first.
AUTH_ERRORS = (
    Unauthenticated,
    InsufficientScope,
    CallerNotRegistered,
    RateLimited,
    SigningKeysUnavailable,
)
POST_ERRORS = (
    *AUTH_ERRORS,
    *BODY_ERRORS,
    OrganizerNotAllowed,
    BookingConflict,
    QuotaExhausted,
    BookingBusy,
    StoreUnavailable,
    *GRAPH_ERRORS,
)
GET_ERRORS = (*AUTH_ERRORS, InvalidRequest, BookingNotFound, BookingCancelled, StoreUnavailable)
PATCH_ERRORS = (
    *AUTH_ERRORS,
    *BODY_ERRORS,
    BookingNotFound,
    BookingCancelled,
    BookingBusy,
    StoreUnavailable,
    *GRAPH_ERRORS,
)
DELETE_ERRORS = (
    *AUTH_ERRORS,
    InvalidRequest,
    BookingNotFound,
    BookingCancelled,
    BookingBusy,
    StoreUnavailable,
    *GRAPH_ERRORS,
)
USAGE_ERRORS = (*AUTH_ERRORS, InvalidRequest, OrganizerNotAllowed, StoreUnavailable)


LOCATION = {
    "description": "The booking's URL: `/v1/meetings/{bookingId}`",
    "required": True,
    "schema": {"type": "string", "format": "uri-reference"},
}
REPLAYED = {
    "description": "`true` when the store answered without calling Graph (a replay); absent "
    "when Graph answered",
    "required": False,
    "schema": {"type": "string", "enum": ["true"]},
}
RETRY_AFTER = {
    "description": "Seconds to wait before retrying (RFC 9110 delay-seconds); retrying with the "
    "same bookingId is always safe",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}
WWW_AUTHENTICATE = {
    "description": "The scheme to authenticate with: `Bearer`; for a refused Entra ID token "
    'with its RFC 6750 error: `error="invalid_token"` (401) or `error="insufficient_scope"` '
    "(403), and `error_description`",
    "required": True,
    "schema": {"type": "string"},
}
RATE_LIMIT_POLICY = {
    "description": 'The caller\'s rate limit (IETF RateLimit header fields): `"caller";q=<requests>'
    ";w=<window seconds>`",
    "required": False,
    "schema": {"type": "string"},
}
RATE_LIMIT = {
    "description": 'What is left of the caller\'s rate limit: `"caller";r=<remaining>;'
    "t=<seconds until the window resets>`",
    "required": False,
    "schema": {"type": "string"},
}
# The headers error classes name in `answer_headers` (X-Request-ID is added to every
# answer in service.openapi).
HEADERS: dict[str, dict[str, Any]] = {
    "WWW-Authenticate": WWW_AUTHENTICATE,
    "Retry-After": RETRY_AFTER,
    "RateLimit-Policy": RATE_LIMIT_POLICY,
    "RateLimit": RATE_LIMIT,
}

BOOKING_ID_PARAMETER = {
    "in": "path",
    "name": "bookingId",
    "description": "The bookingId the meeting was provisioned for (" + BOOKING_ID_RULE + ")",
    "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": BOOKING_ID_PATTERN},
}
ORGANIZER_ID_PARAMETER = {
    "in": "path",
    "name": "organizerId",
    "description": "The organizer's Entra object ID (a GUID)",
    "schema": {"type": "string", "format": "uuid"},
}


# OpenAPI links: from an answer carrying a Meeting to the booking's own operations (client
# generators and schemathesis' stateful phase follow them).
MEETING_LINKS = {
    name: {
        "operationId": operation_id,
        "parameters": {"bookingId": "$response.body#/bookingId"},
        "description": description,
    }
    for name, operation_id, description in (
        ("GetMeeting", "getMeeting", "Read the booking's meeting back"),
        ("RescheduleMeeting", "rescheduleMeeting", "Change its subject, times or attendees"),
        ("CancelMeeting", "cancelMeeting", "Cancel it"),
    )
}


def document_errors(*kinds: type[ServiceError]) -> Any:
    """Document the problem answers of a view, one response per status, from the error
    classes it may raise (the API key is required by the document's root `security`; see
    service.app)."""
    by_status: dict[int, list[type[ServiceError]]] = {}
    for kind in kinds:
        by_status.setdefault(kind.status, []).append(kind)

    def decorate(view: Any) -> Any:
        documented = view
        for status, found in sorted(by_status.items()):
            # A header is required when every problem of this status carries it.
            headers = {
                name: {**HEADERS[name], "required": all(name in k.answer_headers for k in found)}
                for kind in found
                for name in kind.answer_headers
            }
            documented = blp.alt_response(
                status,
                schema=ProblemSchema,
                content_type=PROBLEM,
                description=" ".join(f"`{kind.slug}`: {meaning(kind)}" for kind in found),
                headers=headers or None,
            )(documented)
        # Keep the documentation, not the wrappers: each alt_response wrapper only calls the
        # next, a dozen calls per request for nothing.
        view._apidoc = documented._apidoc
        return view

    return decorate


def meaning(kind: type[ServiceError]) -> str:
    """What a problem class means for a caller: its own docstring, else its title."""
    own = kind.__dict__.get("__doc__")
    return " ".join(own.split()) if own else kind.title + "."


@blp.before_request
def authenticate_caller() -> None:
    """Authenticate first, so nothing about a request is revealed to an unknown caller."""
    found = services()
    settings = found.settings
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        what = {"keys": "API key", "entra": "Entra ID access token"}.get(
            settings.caller_auth, "API key or Entra ID access token"
        )
        raise Unauthenticated(f"Send the {what} as 'Authorization: Bearer <{what}>'.")
    if found.caller_tokens is not None and (
        not settings.accepts_keys or looks_like_jwt(credential)
    ):
        caller = found.caller_tokens.caller(settings.callers, credential)
    else:
        known = authenticate(settings.callers, credential)
        if known is None:
            raise Unauthenticated("The API key is not valid.")
        caller = known
    g.caller = caller
    found.rate_limits.check(caller)
    if request.method in ("POST", "PUT", "PATCH") and not request.is_json:
        raise UnsupportedMediaType(
            f"Send the body as JSON with 'Content-Type: application/json' "
            f"(got {request.mimetype or 'no Content-Type'!r})."
        )


def caller() -> Caller:
    found: Caller = g.caller
    return found


@blp.route("/meetings")
class Meetings(MethodView):
    @blp.arguments(BOOKING_SCHEMA, error_status_code=400)
    @blp.response(
        201, MeetingSchema, description="Graph created the meeting", headers={"Location": LOCATION}
    )
    @blp.alt_response(
        200,
        schema=MeetingSchema,
        description="The meeting already existed (Graph said so, or the store answered: "
        "then `Idempotent-Replayed: true`)",
        headers={"Location": LOCATION, "Idempotent-Replayed": REPLAYED},
        success=True,
    )
    @document_errors(*POST_ERRORS)
    @blp.doc(
        operationId="provisionMeeting",
        responses={201: {"links": MEETING_LINKS}, 200: {"links": MEETING_LINKS}},
    )
    def post(self, booking: BookingRequest) -> Any:
        """Provision the Teams meeting for a booking, or return the one it already has"""
        if booking.chat_info is not None and not services().settings.beta:
            raise InvalidRequest(
                "chatInfo needs Graph beta, and this service uses Graph v1.0.",
                {"chatInfo": "is only accepted when the service runs with GRAPH_API_VERSION=beta"},
            )
        g.booking_id = booking.booking_id
        outcome = services().provisioner.provision(caller(), booking)
        headers = {"Location": f"/v1/meetings/{booking.booking_id}"}
        if outcome.replayed:
            headers["Idempotent-Replayed"] = "true"
        return meeting_answer(outcome.record, 201 if outcome.created else 200, headers)


@blp.route("/meetings/<bookingId>", parameters=[BOOKING_ID_PARAMETER])
class Meeting(MethodView):
    @blp.response(200, MeetingSchema, description="The booking's meeting")
    @document_errors(*GET_ERRORS)
    @blp.doc(operationId="getMeeting")
    def get(self, bookingId: str) -> Any:  # noqa: N803 - the path parameter's public name
        """The meeting provisioned for a booking by this caller"""
        booking_id = checked_booking_id(bookingId)
        return meeting_answer(services().provisioner.lookup(caller(), booking_id))

    @blp.arguments(MEETING_CHANGE_SCHEMA, error_status_code=400)
    @blp.response(200, MeetingSchema, description="The meeting, as Graph has it after the change")
    @document_errors(*PATCH_ERRORS)
    @blp.doc(operationId="rescheduleMeeting")
    def patch(self, change: MeetingChange, bookingId: str) -> Any:  # noqa: N803
        """Reschedule: change the subject, both times, or the attendee list

        The meeting keeps its id and join link. A later POST with the new details replays;
        one with the old details is a 409. Concurrent changes of one booking are applied
        one after the other (the last one wins).
        """
        booking_id = checked_booking_id(bookingId)
        return meeting_answer(services().lifecycle.reschedule(caller(), booking_id, change))

    @blp.response(204, description="The meeting is deleted at Graph (or was already gone)")
    @document_errors(*DELETE_ERRORS)
    @blp.doc(operationId="cancelMeeting")
    def delete(self, bookingId: str) -> Any:  # noqa: N803
        """Cancel: delete the booking's meeting

        GET then answers 404. A later POST of the same bookingId books a new meeting (a new
        externalId generation), never the cancelled one.
        """
        booking_id = checked_booking_id(bookingId)
        services().lifecycle.cancel(caller(), booking_id)
        return "", 204


@blp.route("/organizers/<organizerId>/usage", parameters=[ORGANIZER_ID_PARAMETER])
class OrganizerUsage(MethodView):
    @blp.response(200, UsageSchema, description="The organizer's usage this month")
    @document_errors(*USAGE_ERRORS)
    @blp.doc(operationId="getOrganizerUsage")
    def get(self, organizerId: str) -> Any:  # noqa: N803 - the path parameter's public name
        """Meetings created for an organizer this month (UTC), and the limit"""
        if not is_guid(organizerId):
            raise InvalidRequest(
                "The organizerId in the path is invalid.",
                {"organizerId": "must be an Entra object ID (a GUID)"},
            )
        organizer_id = str(uuid.UUID(organizerId))
        if not caller().may_book_for(organizer_id):
            raise OrganizerNotAllowed(
                f"Caller {caller().id!r} may not book for organizer {organizer_id}, so it "
                "cannot see its usage either."
            )
        usage = services().quota.usage(organizer_id)
        return {
            "organizerId": usage.organizer_id,
            "month": usage.month,
            "created": usage.created,
            "limit": usage.limit,
        }


def meeting_answer(
    record: BookingRecord, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """The meeting of a booking as the answer: the record's own body bytes (MeetingSchema
    documents them; a test checks that dumping the view with it changes nothing), so
    flask-smorest passes the response through without serialising it again."""
    return Response(record.answer, status, headers, mimetype="application/json")


def checked_booking_id(booking_id: str) -> str:
    if not BOOKING_ID.match(booking_id):
        raise InvalidRequest(
            "The bookingId in the path is invalid.", {"bookingId": BOOKING_ID_RULE}
        )
    g.booking_id = booking_id
    return booking_id
