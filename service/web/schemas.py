"""Request and response schemas; the OpenAPI document is generated from these."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
    validates_schema,
)

from service.domain import options as meeting_options
from service.domain.booking import Attendee, BookingRequest, ChatInfo, MeetingChange

BOOKING_ID_CHARACTERS = r"[A-Za-z0-9._~:-]{1,128}"
# The document's pattern (ECMA-262, as JSON Schema reads it: there `$` ends the string).
BOOKING_ID_PATTERN = f"^{BOOKING_ID_CHARACTERS}$"
# Python's `$` also matches before a final newline, so "abc\n" would pass `^...$`: every
# pattern the service checks is anchored with \A and \Z instead (or used with fullmatch).
BOOKING_ID = re.compile(rf"\A{BOOKING_ID_CHARACTERS}\Z")
BOOKING_ID_RULE = "must be 1-128 characters of A-Z a-z 0-9 . _ ~ : -"
# RFC 3339 date-time: the offset (Z or +hh:mm) is mandatory, unlike in ISO 8601. ASCII
# digits only: Python's \d also matches other scripts' digits.
RFC3339 = re.compile(
    r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})\Z"
)
# RFC3339 for the document (ECMA-262, where `$` ends the string); test_openapi_document
# checks that the two agree.
RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
# Graph's DateTimeOffset runs from year 1 to 9999 in UTC; a time whose UTC form leaves that
# range (0001-01-01T00:00:00+01:00) can be neither compared nor sent.
RFC3339_RANGE_RULE = "is out of range: in UTC it must fall within the years 0001 to 9999"
ROLES = ("attendee", "presenter", "producer", "coorganizer")


# A GUID in its one documented form (format: uuid): 8-4-4-4-12 hex digits, either case.
# uuid.UUID alone also takes braces, "urn:uuid:" and hyphens anywhere ("----8b08...").
GUID = re.compile(r"\A[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}\Z")


def is_guid(value: str) -> bool:
    return GUID.match(value) is not None


class Guid(fields.String):
    """An Entra object ID."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["metadata"] = {"format": "uuid", **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not is_guid(text):
            raise ValidationError(
                "must be an Entra object ID, a GUID like '8b081ef6-4792-4def-b2c9-c363a1bf41d5'"
            )
        return str(uuid.UUID(text))


class Rfc3339(fields.Field[datetime]):
    """An RFC 3339 date-time with an explicit offset, e.g. 2026-11-23T09:00:00+01:00."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["metadata"] = {
            "type": "string",
            "format": "date-time",
            "pattern": RFC3339_PATTERN,
            "example": "2026-11-23T09:00:00+01:00",
            **kwargs.get("metadata", {}),
        }
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if not isinstance(value, str) or not RFC3339.match(value):
            raise ValidationError(
                "must be an RFC 3339 date-time with an offset, e.g. 2026-11-23T09:00:00+01:00"
            )
        # Python reads at most 6 fractional digits; Graph's own format has 7.
        text = re.sub(r"(\.[0-9]{6})[0-9]+", r"\1", value.upper())
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError("is not a real date and time") from None
        try:
            moment.astimezone(UTC)
        except OverflowError:
            raise ValidationError(RFC3339_RANGE_RULE) from None
        return moment


class BoundedList(fields.List[Any]):
    """A list whose length is checked before its items are.

    marshmallow validates every item first and the length last, so 10,000 empty attendees
    would produce 10,000 error messages (a 700 KB answer) before "too many" is said.
    """

    def __init__(self, inner: fields.Field[Any], *, max_items: int, **kwargs: Any) -> None:
        self.max_items = max_items
        super().__init__(inner, validate=validate.Length(max=max_items), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, list) and len(value) > self.max_items:
            raise ValidationError(f"must have at most {self.max_items} items (got {len(value)})")
        return super()._deserialize(value, attr, data, **kwargs)


MAX_ATTENDEES = 256


class MeetingOptions(fields.Field[dict[str, Any]]):
    """Meeting options with Graph's names and values (service.domain.options): each wrong member
    is reported as `options.<member>`."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["metadata"] = {
            **meeting_options.json_schema(),
            "description": "Meeting options Graph's createOrGet cannot set, applied by one "
            "PATCH right after it, with Graph's names and values: "
            + ", ".join(meeting_options.OPTION_MEMBERS)
            + ". Overlaid, member by member, on the caller's defaultOptions. "
            "joinMeetingIdSettings cannot be set (Graph takes it only at creation, and "
            "createOrGet does not).",
            "example": {
                "lobbyBypassSettings": {"scope": "everyone"},
                "allowedPresenters": "organizer",
            },
            **kwargs.get("metadata", {}),
        }
        super().__init__(**kwargs)

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> dict[str, Any]:
        try:
            return meeting_options.parse(value)
        except meeting_options.OptionsError as error:
            if set(error.errors) == {"_schema"}:
                raise ValidationError(error.errors["_schema"]) from None
            raise ValidationError(error.errors) from None


class AttendeeSchema(Schema):
    class Meta:
        unknown = RAISE

    upn = fields.String(
        validate=validate.Length(min=3, max=256),
        metadata={"description": "User principal name, e.g. ada@contoso.com"},
    )
    userId = Guid(metadata={"description": "Entra object ID"})
    role = fields.String(load_default="attendee", validate=validate.OneOf(ROLES))

    @validates_schema
    def needs_identity(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "upn" not in data and "userId" not in data:
            raise ValidationError("give upn, userId or both", field_name="upn")

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> Attendee:
        return Attendee(upn=data.get("upn"), user_id=data.get("userId"), role=data["role"])


class ChatInfoSchema(Schema):
    class Meta:
        unknown = RAISE

    threadId = fields.String(validate=validate.Length(min=1, max=512))
    messageId = fields.String(validate=validate.Length(min=1, max=128))
    replyChainMessageId = fields.String(validate=validate.Length(min=1, max=128))

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> ChatInfo:
        return ChatInfo(
            thread_id=data.get("threadId"),
            message_id=data.get("messageId"),
            reply_chain_message_id=data.get("replyChainMessageId"),
        )


class BookingSchema(Schema):
    """A booking that needs a Teams meeting."""

    class Meta:
        unknown = RAISE  # a misspelt field must not be silently dropped

    bookingId = fields.String(
        required=True,
        validate=validate.Regexp(BOOKING_ID, error=BOOKING_ID_RULE),
        metadata={
            "pattern": BOOKING_ID_PATTERN,
            "minLength": 1,
            "maxLength": 128,
            "description": "The booking system's own id; the idempotency key",
            "example": "room-42:2026-11-23T09:00",
        },
    )
    organizerId = Guid(
        metadata={"description": "The organizer's Entra object ID (or give organizerPool)"}
    )
    organizerPool = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={
            "description": "Instead of organizerId: a pool from ORGANIZER_POOLS_FILE; the "
            "member with the most monthly quota left organizes the meeting, for good"
        },
    )
    subject = fields.String(validate=validate.Length(max=255))
    startDateTime = Rfc3339(metadata={"description": "Default: now (Graph's default)"})
    endDateTime = Rfc3339(metadata={"description": "Default: start + 1 hour (Graph's default)"})
    attendees = BoundedList(fields.Nested(AttendeeSchema), max_items=MAX_ATTENDEES)
    chatInfo = fields.Nested(
        ChatInfoSchema, metadata={"description": "Only when the service uses Graph beta"}
    )
    options = MeetingOptions()

    @validates_schema(skip_on_field_errors=False)
    def one_organizer(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("organizerId" in data) == ("organizerPool" in data):
            raise ValidationError(
                "give exactly one of organizerId and organizerPool", field_name="organizerId"
            )

    @validates_schema
    def times_in_order(self, data: dict[str, Any], **kwargs: Any) -> None:
        start, end = data.get("startDateTime"), data.get("endDateTime")
        if end is not None and start is None:
            raise ValidationError(
                "endDateTime needs a startDateTime (Graph rejects an end without a start)",
                field_name="endDateTime",
            )
        if start is not None and end is not None and end < start:
            raise ValidationError(
                "endDateTime must not be earlier than startDateTime", field_name="endDateTime"
            )

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> BookingRequest:
        return BookingRequest.create(
            booking_id=data["bookingId"],
            organizer_id=data.get("organizerId"),
            organizer_pool=data.get("organizerPool"),
            subject=data.get("subject"),
            start=data.get("startDateTime"),
            end=data.get("endDateTime"),
            attendees=data.get("attendees"),
            chat_info=data.get("chatInfo"),
            options=data.get("options"),
        )


class MeetingChangeSchema(Schema):
    """What to change about a booking's meeting; absent fields stay as they are."""

    class Meta:
        unknown = RAISE

    subject = fields.String(validate=validate.Length(max=255))
    startDateTime = Rfc3339(metadata={"description": "Together with endDateTime"})
    endDateTime = Rfc3339(metadata={"description": "Together with startDateTime"})
    attendees = BoundedList(
        fields.Nested(AttendeeSchema),
        max_items=MAX_ATTENDEES,
        metadata={"description": "The full new list (replaces the old one)"},
    )
    options = MeetingOptions(
        metadata={
            "description": "Option members to change (Graph's names and values), overlaid "
            "member by member on the booking's options; a later POST must then carry the "
            "new effective options"
        }
    )

    @pre_load
    def refuse_identity_changes(self, data: Any, **kwargs: Any) -> Any:
        if isinstance(data, dict):
            fixed = [name for name in ("bookingId", "organizerId", "organizerPool") if name in data]
            if fixed:
                raise ValidationError(
                    {
                        name: "cannot be changed: a meeting keeps its booking and organizer; "
                        "DELETE the booking and POST it again instead"
                        for name in fixed
                    }
                )
        return data

    @validates_schema
    def something_and_both_times(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ValidationError(
                "give at least one of subject, startDateTime + endDateTime, attendees, options",
                field_name="_schema",
            )
        start, end = data.get("startDateTime"), data.get("endDateTime")
        if (start is None) != (end is None):
            missing = "endDateTime" if end is None else "startDateTime"
            raise ValidationError(
                "startDateTime and endDateTime must be changed together (Graph requires both)",
                field_name=missing,
            )
        if start is not None and end is not None and end <= start:
            raise ValidationError(
                "endDateTime must be after startDateTime", field_name="endDateTime"
            )

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> MeetingChange:
        return MeetingChange.create(
            subject=data.get("subject"),
            start=data.get("startDateTime"),
            end=data.get("endDateTime"),
            attendees=data.get("attendees"),
            options=data.get("options"),
        )


# How Graph writes the times of a meeting, and so how answers carry them: UTC, `Z`, up to
# seven fractional digits (.NET ticks), e.g. 2026-11-23T08:00:00.0000000Z.
GRAPH_DATE_TIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,7})?Z$"
GRAPH_DATE_TIME = {
    "format": "date-time",
    "pattern": GRAPH_DATE_TIME_PATTERN,
    "example": "2026-11-23T08:00:00.0000000Z",
}
GUID_FORMAT = {"format": "uuid"}
MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"


class UsageSchema(Schema):
    """An organizer's meetings created through this service in the current UTC month."""

    organizerId = fields.String(required=True, metadata=GUID_FORMAT)
    month = fields.String(
        required=True,
        metadata={"pattern": MONTH_PATTERN, "example": "2026-11", "description": "UTC month"},
    )
    created = fields.Integer(
        required=True,
        metadata={"minimum": 0, "description": "Meetings created (Graph 201) this month"},
    )
    limit = fields.Integer(
        required=True,
        metadata={"minimum": 0, "description": "The service refuses (429) at this count"},
    )


GRAPH_TIME_AS_RETURNED = {
    **GRAPH_DATE_TIME,
    "description": "As Graph returns it: UTC with `Z` and up to 7 fractional digits",
}


class MeetingSchema(Schema):
    """The Teams meeting provisioned for a booking."""

    class Meta:
        # Only dumped, never loaded: RAISE documents that an answer has no other members.
        unknown = RAISE

    bookingId = fields.String(
        required=True,
        metadata={"pattern": BOOKING_ID_PATTERN, "minLength": 1, "maxLength": 128},
    )
    externalId = fields.String(
        required=True,
        metadata={
            **GUID_FORMAT,
            "description": "Graph externalId: UUIDv5 of caller, booking and generation",
        },
    )
    organizerId = fields.String(
        required=True,
        metadata={
            **GUID_FORMAT,
            "description": "The organizer's Entra object ID (for a pool booking: the member "
            "chosen)",
        },
    )
    meetingId = fields.String(required=True, metadata={"description": "Graph onlineMeeting id"})
    joinWebUrl = fields.String(
        required=True, allow_none=True, metadata={"description": "The Teams join link"}
    )
    subject = fields.String(allow_none=True)
    startDateTime = fields.String(allow_none=True, metadata=GRAPH_TIME_AS_RETURNED)
    endDateTime = fields.String(allow_none=True, metadata=GRAPH_TIME_AS_RETURNED)
    onlineMeeting = fields.Dict(
        required=True, metadata={"description": "The onlineMeeting object as Graph returned it"}
    )
    options = fields.Dict(
        required=True,
        metadata={
            **meeting_options.json_schema(for_answers=True),
            "description": "The meeting options in effect, as Graph returned the meeting "
            "(before `optionsPending` clears, Teams' defaults)",
        },
    )
    optionsPending = fields.Boolean(
        required=True,
        metadata={
            "description": "`true` while the booking's options are not yet applied to the "
            "meeting (the PATCH after createOrGet failed); the next POST of the booking "
            "applies them"
        },
    )


class GraphErrorSchema(Schema):
    """What Graph answered when it refused or failed a call."""

    status = fields.Integer(required=True, metadata={"description": "Graph's HTTP status"})
    code = fields.String(
        required=True, allow_none=True, metadata={"description": "Graph's error code"}
    )
    message = fields.String(
        required=True, allow_none=True, metadata={"description": "Graph's error message"}
    )
    requestId = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "Graph's request-id (for Microsoft support)"},
    )
    clientRequestId = fields.String(
        required=True, metadata={"description": "The client-request-id this service sent"}
    )


class TokenErrorSchema(Schema):
    """What Entra ID answered when it refused this app a token."""

    error = fields.String(
        required=True, allow_none=True, metadata={"description": "OAuth error, e.g. invalid_client"}
    )
    codes = fields.List(
        fields.Integer(), required=True, metadata={"description": "Entra ID's AADSTS error codes"}
    )


class ProblemSchema(Schema):
    """An RFC 9457 problem detail (application/problem+json).

    Besides the standard members, each problem type carries the extension members named in
    their descriptions; no answer carries any other member.
    """

    type = fields.String(
        required=True,
        metadata={
            "format": "uri",
            "pattern": "^urn:meeting-provisioning:problem:[a-z-]+$",
            "example": "urn:meeting-provisioning:problem:booking-conflict",
        },
    )
    title = fields.String(required=True)
    status = fields.Integer(required=True, metadata={"minimum": 400, "maximum": 599})
    detail = fields.String(required=True, metadata={"description": "What happened, what to do"})
    instance = fields.String(
        metadata={
            "format": "uri-reference",
            "description": "The request's path, percent-encoded where RFC 3986 requires it; "
            "`urn:meeting-provisioning:request:<requestId>` when the proxy or gunicorn refused "
            "a request before its path was read",
        }
    )
    requestId = fields.String(metadata={"description": "The answer's X-Request-ID"})
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        metadata={
            "description": "invalid-request: field name (dotted path, or `body`) to what is "
            "wrong with it"
        },
    )
    differingFields = fields.List(
        fields.String(),
        metadata={"description": "booking-conflict: the fields that differ from the booking's"},
    )
    organizerId = fields.String(
        metadata={**GUID_FORMAT, "description": "organizer-quota-exhausted: the organizer"}
    )
    month = fields.String(
        metadata={
            "pattern": MONTH_PATTERN,
            "description": "organizer-quota-exhausted: the UTC month counted",
        }
    )
    created = fields.Integer(
        metadata={"description": "organizer-quota-exhausted: meetings created this month"}
    )
    limit = fields.Integer(metadata={"description": "organizer-quota-exhausted: the monthly limit"})
    rateLimit = fields.String(
        metadata={"description": "rate-limited: the caller's rate limit, e.g. 120 per 1 minute"}
    )
    requiredRole = fields.String(
        metadata={"description": "insufficient-scope: the app role the token must carry"}
    )
    retryAfterSeconds = fields.Integer(
        metadata={"minimum": 1, "description": "429 and 503: the Retry-After header's value"}
    )
    graphError = fields.Nested(
        GraphErrorSchema,
        metadata={
            "description": "graph-rejected, graph-access-denied, graph-unexpected-response: "
            "what Graph answered"
        },
    )
    tokenError = fields.Nested(
        TokenErrorSchema, metadata={"description": "token-rejected: what Entra ID answered"}
    )
    reason = fields.String(
        metadata={
            "description": "graph-unavailable: why, e.g. `circuit_open`, `429`, `503`, "
            "`timeout`, `connect_timeout`, `connection_error`, `paced` (the app's next "
            "turn under GRAPH_RATE_LIMIT comes after the budget), `throttled` (Graph's "
            "last Retry-After ends after it)"
        }
    )
    clientRequestId = fields.String(
        metadata={
            "description": "graph-unavailable, graph-timeout: the client-request-id of the "
            "Graph call"
        }
    )
    graphRequestId = fields.String(
        allow_none=True,
        metadata={
            "description": "graph-unavailable: Graph's request-id of its last answer (null if "
            "it sent none)"
        },
    )


class CheckSchema(Schema):
    """One dependency's state."""

    status = fields.String(required=True, metadata={"enum": ["ok", "failing"]})
    detail = fields.String(metadata={"description": "When failing: what it means for callers"})


class ReadinessSchema(Schema):
    """Whether this instance serves: `checks` names config, redis and graph (empty while
    draining)."""

    status = fields.String(required=True, metadata={"enum": ["ready", "degraded", "draining"]})
    checks = fields.Dict(keys=fields.String(), values=fields.Nested(CheckSchema), required=True)


class LivenessSchema(Schema):
    """The process answers."""

    status = fields.String(required=True, metadata={"enum": ["ok"]})
