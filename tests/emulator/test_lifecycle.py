"""GET, PATCH and DELETE of one meeting, as the contract and the update docs describe them.

Every request and response body here is validated against the contract by the
GraphClient fixture (PATCH bodies against the contract's PATCH schema, responses
against onlineMeeting or the error envelope, 204s for an empty body).
"""

from __future__ import annotations

import concurrent.futures
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.contract import validator
from tests.support.emulator import EmulatorHandle, EmulatorSetup, default_config
from tests.support.graph_client import GraphClient

pytestmark = pytest.mark.emulator

VERSIONS = ["v1.0", "beta"]
OPERATIONS = ["get", "patch", "delete"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> EmulatorSetup:
    """The default config plus a second tenant with an organizer of the same object id."""
    base = default_config(tmp_path_factory.mktemp("config"))
    base.config["tenants"].append(
        {
            "id": str(uuid.uuid4()),
            "apps": [{"clientId": str(uuid.uuid4()), "clientSecret": secrets.token_urlsafe(16)}],
            "users": [{"id": base.user_with_policy, "accessPolicy": True}],
        }
    )
    return base


@pytest.fixture
def other_tenant(emulator: EmulatorHandle, setup: EmulatorSetup) -> Iterator[GraphClient]:
    """Graph as the second tenant's app sees it."""
    tenant = setup.config["tenants"][1]
    app = tenant["apps"][0]
    token = emulator.get_token(tenant["id"], app["clientId"], app["clientSecret"])
    client = GraphClient(emulator, token)
    yield client
    client.http.close()


def body(**fields: Any) -> dict[str, Any]:
    return {"externalId": str(uuid.uuid4()), **fields}


def attendee(upn: str, role: str | None = None) -> dict[str, Any]:
    person: dict[str, Any] = {"upn": upn, "identity": {"user": {"id": str(uuid.uuid4())}}}
    if role:
        person["role"] = role
    return person


def without_context(meeting: dict[str, Any]) -> dict[str, Any]:
    """A meeting without its @odata.context (which names the version): as stored."""
    return {k: v for k, v in meeting.items() if k != "@odata.context"}


def stored(response: requests.Response) -> dict[str, Any]:
    return without_context(response.json())


def create(graph: GraphClient, setup: EmulatorSetup, version: str = "v1.0", **fields: Any) -> Any:
    response = graph.create_or_get(setup.user_with_policy, body(**fields), version)
    assert response.status_code == 201
    return response.json()


def call(
    graph: GraphClient, operation: str, user_id: str, meeting_id: str, version: str = "v1.0"
) -> requests.Response:
    if operation == "get":
        return graph.get_meeting(user_id, meeting_id, version)
    if operation == "patch":
        return graph.update_meeting(user_id, meeting_id, {"subject": "x"}, version)
    return graph.delete_meeting(user_id, meeting_id, version)


# --- PATCH -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_patch_subject_returns_the_whole_updated_meeting(
    graph: GraphClient, setup: EmulatorSetup, emulator: EmulatorHandle, version: str
) -> None:
    meeting = create(graph, setup, version, subject="Before")

    patched = graph.update_meeting(
        setup.user_with_policy, meeting["id"], {"subject": "After"}, version
    )

    assert patched.status_code == 200
    assert patched.headers["Content-Type"].startswith("application/json")
    assert patched.json()["@odata.context"].endswith(
        f"/{version}/$metadata#users('{setup.user_with_policy}')/onlineMeetings/$entity"
    )
    expected = without_context(meeting)
    assert stored(patched) == {**expected, "subject": "After"}
    assert stored(graph.get_meeting(setup.user_with_policy, meeting["id"], version)) == {
        **expected,
        "subject": "After",
    }
    assert emulator.meeting(meeting["id"]) == {**expected, "subject": "After"}


def test_createorget_returns_the_patched_meeting(graph: GraphClient, setup: EmulatorSetup) -> None:
    request = body(subject="Booked")
    meeting = graph.create_or_get(setup.user_with_policy, request).json()
    graph.update_meeting(setup.user_with_policy, meeting["id"], {"subject": "Rebooked"})

    again = graph.create_or_get(setup.user_with_policy, request)

    assert again.status_code == 200
    assert again.json()["id"] == meeting["id"]
    assert again.json()["subject"] == "Rebooked"


@pytest.mark.parametrize("version", VERSIONS)
def test_patch_both_times_moves_the_meeting_and_answers_in_utc(
    graph: GraphClient, setup: EmulatorSetup, version: str
) -> None:
    meeting = create(graph, setup, version)

    moved = graph.update_meeting(
        setup.user_with_policy,
        meeting["id"],
        {
            "startDateTime": "2027-03-01T10:00:00.1234567+01:00",
            "endDateTime": "2027-03-01T11:30:00+01:00",
        },
        version,
    )

    assert moved.status_code == 200
    assert moved.json()["startDateTime"] == "2027-03-01T09:00:00.1234567Z"
    assert moved.json()["endDateTime"] == "2027-03-01T10:30:00.0000000Z"
    assert moved.json()["creationDateTime"] == meeting["creationDateTime"]


@pytest.mark.parametrize(
    ("times", "words"),
    [
        ({"startDateTime": "2027-03-01T10:00:00Z"}, "requires both"),
        ({"endDateTime": "2027-03-01T11:00:00Z"}, "requires both"),
        (
            {"startDateTime": "2027-03-01T10:00:00Z", "endDateTime": "2027-03-01T09:00:00Z"},
            "later than startDateTime",
        ),
        (
            {"startDateTime": "2027-03-01T10:00:00Z", "endDateTime": "2027-03-01T11:00:00+01:00"},
            "later than startDateTime",  # the same instant: a meeting of no length
        ),
        ({"startDateTime": None, "endDateTime": "2027-03-01T11:00:00Z"}, "cannot be null"),
        (
            {"startDateTime": "2027-02-30T10:00:00Z", "endDateTime": "2027-03-01T11:00:00Z"},
            "not a valid DateTimeOffset",  # matches the contract's pattern, but no such day
        ),
    ],
    ids=["start-only", "end-only", "end-before-start", "end-equals-start", "null", "no-such-day"],
)
def test_patch_times_need_both_and_end_after_start(
    graph: GraphClient, setup: EmulatorSetup, times: dict[str, Any], words: str
) -> None:
    meeting = create(graph, setup, startDateTime="2027-01-01T09:00:00Z")

    refused = graph.update_meeting(setup.user_with_policy, meeting["id"], times)

    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "BadRequest"
    assert words in refused.json()["error"]["message"]
    unchanged = graph.get_meeting(setup.user_with_policy, meeting["id"]).json()
    assert unchanged["startDateTime"] == "2027-01-01T09:00:00.0000000Z"


@pytest.mark.parametrize("version", VERSIONS)
def test_patch_attendees_replaces_the_whole_list(
    graph: GraphClient, setup: EmulatorSetup, version: str
) -> None:
    first, second, third = (attendee(f"{n}@contoso.example") for n in ("ann", "ben", "cy"))
    meeting = create(graph, setup, version, participants={"attendees": [first, second]})
    organizer = meeting["participants"]["organizer"]

    replaced = graph.update_meeting(
        setup.user_with_policy,
        meeting["id"],
        {"participants": {"attendees": [{**third, "role": "presenter"}, second]}},
        version,
    ).json()
    emptied = graph.update_meeting(
        setup.user_with_policy, meeting["id"], {"participants": {"attendees": []}}, version
    ).json()

    assert replaced["participants"]["attendees"] == [
        {**third, "role": "presenter"},
        {**second, "role": "attendee"},
    ]
    assert replaced["participants"]["organizer"] == organizer
    assert emptied["participants"] == {**meeting["participants"], "attendees": []}


def test_patch_without_participants_keeps_the_attendees(
    graph: GraphClient, setup: EmulatorSetup
) -> None:
    meeting = create(graph, setup, participants={"attendees": [attendee("ann@contoso.example")]})

    patched = graph.update_meeting(setup.user_with_policy, meeting["id"], {"subject": "s"}).json()

    assert patched["participants"] == meeting["participants"]


@pytest.mark.parametrize(
    "organizer",
    [
        {"identity": {"user": {"id": "00000000-0000-4000-8000-000000000001"}}},
        {"upn": "someone.else@contoso.example"},
        {"role": "presenter"},
        None,
    ],
    ids=["another-id", "another-upn", "nobody-named", "null"],
)
def test_the_organizer_cannot_be_changed(
    graph: GraphClient, setup: EmulatorSetup, emulator: EmulatorHandle, organizer: Any
) -> None:
    meeting = create(graph, setup)

    refused = graph.update_meeting(
        setup.user_with_policy,
        meeting["id"],
        {"subject": "not applied", "participants": {"organizer": organizer, "attendees": []}},
    )

    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == (
        "The organizer of an online meeting cannot be changed."
    )
    assert emulator.meeting(meeting["id"]) == without_context(meeting)
    assert emulator.meeting_info(meeting["id"])["patched"] == 0  # type: ignore[index]


@pytest.mark.parametrize("by", ["user-id", "upn", "as-read"])
def test_naming_the_same_organizer_is_accepted(
    graph: GraphClient, setup: EmulatorSetup, by: str
) -> None:
    meeting = create(graph, setup)
    stored_organizer = meeting["participants"]["organizer"]
    organizer = {
        "user-id": {"identity": {"user": {"id": setup.user_with_policy.upper()}}},
        "upn": {"upn": "ADA@contoso.example"},  # the config's UPN, in other case
        "as-read": stored_organizer,
    }[by]

    patched = graph.update_meeting(
        setup.user_with_policy,
        meeting["id"],
        {"subject": "same organizer", "participants": {"organizer": organizer}},
    )

    assert patched.status_code == 200
    assert patched.json()["participants"]["organizer"] == stored_organizer
    assert patched.json()["subject"] == "same organizer"


@pytest.mark.parametrize("version", VERSIONS)
def test_other_updatable_properties_are_applied(
    graph: GraphClient, setup: EmulatorSetup, version: str
) -> None:
    meeting = create(graph, setup, version)
    change = {
        "allowedPresenters": "organizer",
        "isEntryExitAnnounced": False,
        "allowMeetingChat": "limited",
        "recordAutomatically": True,
        "lobbyBypassSettings": {"scope": "everyone"},
    }

    patched = graph.update_meeting(setup.user_with_policy, meeting["id"], change, version)

    assert patched.status_code == 200
    assert {k: patched.json()[k] for k in change} == change  # complex values replaced whole
    assert patched.json()["joinWebUrl"] == meeting["joinWebUrl"]


def test_beta_contributors_are_replaced(graph: GraphClient, setup: EmulatorSetup) -> None:
    meeting = create(graph, setup, "beta")
    contributor = attendee("cy@contoso.example", "coorganizer")

    patched = graph.update_meeting(
        setup.user_with_policy,
        meeting["id"],
        {"participants": {"contributors": [contributor]}},
        "beta",
    )

    assert patched.status_code == 200
    assert patched.json()["participants"]["contributors"] == [contributor]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"joinWebUrl": "https://teams.microsoft.com/l/meetup-join/other"},
            "The property 'joinWebUrl' cannot be updated.",
        ),
        ({"externalId": "another-booking"}, "The property 'externalId' cannot be updated."),
        ({"id": "MSpub3RoZXJl"}, "The property 'id' cannot be updated."),
        (
            {"startDatetime": "2027-03-01T10:00:00Z"},
            "The property 'startDatetime' does not exist on type 'microsoft.graph.onlineMeeting'.",
        ),
        (
            {"participants": {"guests": []}},
            "The property 'guests' does not exist on type 'microsoft.graph.meetingParticipants'.",
        ),
        (
            {"participants": {"contributors": []}},  # a beta-only member, sent to v1.0
            "The property 'contributors' does not exist on type"
            " 'microsoft.graph.meetingParticipants'.",
        ),
    ],
    ids=["joinWebUrl", "externalId", "id", "misspelt-start", "unknown-member", "beta-member"],
)
def test_properties_that_cannot_be_updated_are_400(
    graph: GraphClient, setup: EmulatorSetup, emulator: EmulatorHandle, change: Any, message: str
) -> None:
    meeting = create(graph, setup)

    refused = graph.update_meeting(setup.user_with_policy, meeting["id"], change)

    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == message
    assert emulator.meeting(meeting["id"]) == without_context(meeting)


def test_sending_back_read_only_values_unchanged_is_accepted(
    graph: GraphClient, setup: EmulatorSetup
) -> None:
    meeting = create(graph, setup, subject="Echo")
    echoed = {k: v for k, v in meeting.items() if k not in ("startDateTime", "endDateTime")}
    echoed["subject"] = "Echoed back"

    patched = graph.update_meeting(setup.user_with_policy, meeting["id"], echoed)

    assert patched.status_code == 200
    assert stored(patched) == {**without_context(meeting), "subject": "Echoed back"}


@pytest.mark.parametrize(
    ("bad_body", "words"),
    [
        ({"allowedPresenters": "nobody"}, "allowedPresenters"),
        ({"participants": {"attendees": [{"upn": "a@b.c", "role": "boss"}]}}, "'boss'"),
        ({"startDateTime": "1/3/2027 10:00", "endDateTime": "1/3/2027 11:00"}, "DateTime"),
        ([{"subject": "x"}], "is not of type 'object'"),
        ({"participants": {"attendees": None}}, "attendees"),
    ],
    ids=["bad-enum", "bad-role", "bad-date", "not-an-object", "null-attendees"],
)
def test_a_patch_body_outside_the_contract_is_400_naming_the_problem(
    graph: GraphClient, setup: EmulatorSetup, bad_body: Any, words: str
) -> None:
    meeting = create(graph, setup)
    assert not validator("onlineMeeting").is_valid(bad_body)  # the contract refuses it too

    refused = graph.update_meeting(
        setup.user_with_policy, meeting["id"], bad_body, valid_request=False
    )

    assert refused.status_code == 400
    assert words in refused.json()["error"]["message"]


def test_a_patch_body_that_is_not_json_is_400(
    graph: GraphClient, setup: EmulatorSetup, emulator: EmulatorHandle
) -> None:
    meeting = create(graph, setup)

    response = graph.http.patch(
        f"{emulator.base_url}/v1.0/users/{setup.user_with_policy}/onlineMeetings/{meeting['id']}",
        data=b"subject=x",
        headers={"Authorization": f"Bearer {graph.token}", "Content-Type": "text/plain"},
        timeout=10,
    )

    graph.checked(response)
    assert response.status_code == 400


def test_a_v1_patch_may_not_store_what_beta_would_refuse(
    graph: GraphClient, setup: EmulatorSetup
) -> None:
    # anonymizeIdentityForRoles is updatable by the v1.0 docs, but only the beta schema
    # declares it; meetings are shared between versions, so beta's rules apply too.
    meeting = create(graph, setup)

    refused = graph.update_meeting(
        setup.user_with_policy, meeting["id"], {"anonymizeIdentityForRoles": ["boss"]}
    )
    accepted = graph.update_meeting(
        setup.user_with_policy, meeting["id"], {"anonymizeIdentityForRoles": ["attendee"]}
    )
    as_beta = graph.get_meeting(setup.user_with_policy, meeting["id"], "beta")

    assert refused.status_code == 400
    assert "in the beta schema" in refused.json()["error"]["message"]
    assert accepted.status_code == 200
    assert as_beta.json()["anonymizeIdentityForRoles"] == ["attendee"]


# --- GET and DELETE ----------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_delete_is_204_and_the_meeting_is_gone(
    graph: GraphClient, setup: EmulatorSetup, emulator: EmulatorHandle, version: str
) -> None:
    meeting = create(graph, setup, version)

    deleted = graph.delete_meeting(setup.user_with_policy, meeting["id"], version)
    after = [call(graph, op, setup.user_with_policy, meeting["id"], version) for op in OPERATIONS]

    assert deleted.status_code == 204
    assert [r.status_code for r in after] == [404, 404, 404]
    assert {r.json()["error"]["code"] for r in after} == {"ErrorItemNotFound"}
    assert emulator.meeting(meeting["id"]) is None
    assert emulator.meeting_info(meeting["id"])["deleted"] is True  # type: ignore[index]


def test_createorget_after_delete_creates_a_new_meeting(
    graph: GraphClient, setup: EmulatorSetup, emulator: EmulatorHandle
) -> None:
    request = body(subject="Booking 1")
    old = graph.create_or_get(setup.user_with_policy, request).json()
    graph.delete_meeting(setup.user_with_policy, old["id"])

    renewed = graph.create_or_get(setup.user_with_policy, request)
    again = graph.create_or_get(setup.user_with_policy, request)

    assert renewed.status_code == 201  # the identity was freed by the delete
    assert renewed.json()["id"] != old["id"]
    assert renewed.json()["joinWebUrl"] != old["joinWebUrl"]
    assert renewed.json()["externalId"] == request["externalId"]
    assert (again.status_code, again.json()["id"]) == (200, renewed.json()["id"])
    assert graph.get_meeting(setup.user_with_policy, old["id"]).status_code == 404
    assert emulator.meetings_for(request["externalId"]) == {"created": 2, "calls": 3}
    assert emulator.live_meetings_for(request["externalId"]) == 1
    rows = [m for m in emulator.stats()["meetings"] if m["externalId"] == request["externalId"]]
    assert [(m["meetingId"], m["deleted"]) for m in rows] == [
        (old["id"], True),
        (renewed.json()["id"], False),
    ]


def test_unknown_meeting_ids_are_404(graph: GraphClient, setup: EmulatorSetup) -> None:
    for operation in OPERATIONS:
        response = call(graph, operation, setup.user_with_policy, "MSpub3RoZXJl")
        assert response.status_code == 404, operation
        assert response.json()["error"]["code"] == "ErrorItemNotFound"


@pytest.mark.parametrize("operation", OPERATIONS)
def test_another_organizers_meeting_is_404_and_left_alone(
    graph: GraphClient, setup: EmulatorSetup, emulator: EmulatorHandle, operation: str
) -> None:
    colleague = str(uuid.uuid4())
    emulator.set_user(setup.tenant_id, colleague, access_policy=True)
    meeting = create(graph, setup)

    response = call(graph, operation, colleague, meeting["id"])

    assert response.status_code == 404
    assert emulator.meeting(meeting["id"]) == without_context(meeting)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_another_tenants_meeting_is_404_even_for_the_same_organizer_id(
    graph: GraphClient,
    other_tenant: GraphClient,
    setup: EmulatorSetup,
    emulator: EmulatorHandle,
    operation: str,
) -> None:
    meeting = create(graph, setup)

    response = call(other_tenant, operation, setup.user_with_policy, meeting["id"])

    assert response.status_code == 404
    assert emulator.meeting(meeting["id"]) == without_context(meeting)


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize(
    ("who", "status", "code"),
    [
        ("no-token", 401, "InvalidAuthenticationToken"),
        ("revoked-token", 401, "InvalidAuthenticationToken"),
        ("no-policy", 403, "General"),
        ("unknown-user", 404, "ErrorItemNotFound"),
    ],
)
def test_the_same_auth_rules_as_createorget(
    graph: GraphClient,
    setup: EmulatorSetup,
    emulator: EmulatorHandle,
    operation: str,
    who: str,
    status: int,
    code: str,
) -> None:
    meeting = create(graph, setup)
    user = {"no-policy": setup.user_without_policy, "unknown-user": setup.unknown_user}.get(
        who, setup.user_with_policy
    )
    if who == "no-token":
        graph.token = ""
    if who == "revoked-token":
        emulator.revoke_tokens()

    response = call(graph, operation, user, meeting["id"])

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert emulator.meeting(meeting["id"]) == without_context(meeting)


def test_simultaneous_deletes_delete_once(
    emulator: EmulatorHandle, setup: EmulatorSetup, graph: GraphClient, token: str
) -> None:
    meeting = create(graph, setup)
    url = f"{emulator.base_url}/v1.0/users/{setup.user_with_policy}/onlineMeetings/{meeting['id']}"

    def delete(_: int) -> int:
        with emulator.session() as http:  # a Session per thread
            answer = http.delete(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        return answer.status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        statuses = sorted(pool.map(delete, range(10)))

    assert statuses == [204] + [404] * 9


# --- what the emulator records ----------------------------------------------------------------


def test_operations_on_a_meeting_are_recorded_per_meeting(
    graph: GraphClient, setup: EmulatorSetup, emulator: EmulatorHandle
) -> None:
    meeting = create(graph, setup)
    other = create(graph, setup)
    graph.get_meeting(setup.user_with_policy, meeting["id"])
    graph.update_meeting(setup.user_with_policy, meeting["id"], {"subject": "one"}, "beta")
    graph.update_meeting(setup.user_with_policy, meeting["id"], {"startDateTime": None})
    graph.update_meeting(setup.user_with_policy, meeting["id"], {"subject": "two"})
    graph.get_meeting(setup.user_with_policy, other["id"])
    graph.delete_meeting(setup.user_with_policy, meeting["id"])
    graph.delete_meeting(setup.user_with_policy, meeting["id"])

    operations = emulator.operations_for(meeting["id"])

    assert [(o["operation"], o["status"]) for o in operations] == [
        ("getMeeting", 200),
        ("patchMeeting", 200),
        ("patchMeeting", 400),
        ("patchMeeting", 200),
        ("deleteMeeting", 204),
        ("deleteMeeting", 404),
    ]
    assert {o["userId"] for o in operations} == {setup.user_with_policy}
    assert [o["version"] for o in operations][1] == "beta"
    assert [o["body"] for o in operations if o["operation"] == "patchMeeting"] == [
        {"subject": "one"},
        {"startDateTime": None},
        {"subject": "two"},
    ]
    assert all(o["body"] is None for o in operations if o["operation"] != "patchMeeting")
    assert [(o["operation"], o["status"]) for o in emulator.operations_for(other["id"])] == [
        ("getMeeting", 200)
    ]
    assert emulator.meeting_info(meeting["id"]) == {
        "tenantId": setup.tenant_id,
        "userId": setup.user_with_policy,
        "externalId": meeting["externalId"],
        "meetingId": meeting["id"],
        "created": 1,
        "returned": 0,
        "patched": 2,
        "deleted": True,
    }
    calls = emulator.stats()["calls"]
    assert calls["getMeeting"] == {"200": 2}
    assert calls["patchMeeting"] == {"200": 2, "400": 1}
    assert calls["deleteMeeting"] == {"204": 1, "404": 1}
    # meetings_for keeps its meaning: createOrGet requests and meetings created.
    assert emulator.meetings_for(meeting["externalId"]) == {"created": 1, "calls": 1}


def test_handle_helpers_for_unknown_meetings(emulator: EmulatorHandle) -> None:
    assert emulator.meeting("MSpub3RoZXJl") is None
    assert emulator.meeting_info("MSpub3RoZXJl") is None
    assert emulator.operations_for("MSpub3RoZXJl") == []
    assert emulator.live_meetings_for("never-used") == 0
    assert emulator.stats()["calls"]["patchMeeting"] == {}
    assert emulator.stats()["calls"]["deleteMeeting"] == {}
