"""The emulator's pure parts, in process: times, config, fault rules, tokens, contract copy."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from graph_emulator import times
from graph_emulator.config import ConfigError, parse_config
from graph_emulator.faults import FaultPlan, FaultSpecError
from graph_emulator.meeting_update import UpdateRejected, apply_update
from graph_emulator.meetings import MeetingKey, MeetingStore
from graph_emulator.tokens import TokenIssuer, TokenRejected

from tests.support.contract import CONTRACT_DIR

pytestmark = pytest.mark.emulator

EMULATOR_DIR = Path(__file__).resolve().parents[2] / "emulator" / "graph_emulator"


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2020-02-06T01:49:21.3524945+00:00", "2020-02-06T01:49:21.3524945Z"),
        ("2026-11-23T10:00:00+01:00", "2026-11-23T09:00:00.0000000Z"),
        ("2026-11-23T09:00:00.123456789012Z", "2026-11-23T09:00:00.1234567Z"),
        ("2026-03-29T01:30:00-05:30", "2026-03-29T07:00:00.0000000Z"),
    ],
)
def test_times_keep_tick_precision_and_come_back_in_utc(text: str, utc: str) -> None:
    assert times.format_utc(times.parse(text)) == utc


def test_one_hour_is_exact() -> None:
    start = times.parse("2026-12-31T23:30:00.9999999Z")
    assert times.format_utc(start + times.ONE_HOUR) == "2027-01-01T00:30:00.9999999Z"


def test_impossible_dates_are_rejected() -> None:
    with pytest.raises(ValueError):
        times.parse("2026-02-30T09:00:00Z")


@pytest.mark.parametrize(
    "text",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-01:00", "2026-11-23T09:00:00Z\n"],
)
def test_times_outside_years_1_to_9999_in_utc_or_with_a_newline_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        times.parse(text)


def test_years_before_1000_keep_four_digits() -> None:
    assert times.format_utc(times.parse("0999-05-01T09:00:00Z")) == "0999-05-01T09:00:00.0000000Z"
    assert times.format_utc(times.MIN_TICKS) == "0001-01-01T00:00:00.0000000Z"
    assert times.format_utc(times.MAX_TICKS) == "9999-12-31T23:59:59.9999999Z"


def test_config_reports_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as failure:
        parse_config(
            {
                "tenants": [
                    {"id": "t", "apps": [{"clientId": "a", "certificatePem": "nope"}]},
                    {"id": "T", "users": "everyone"},
                ],
                "tokenLifetimeSeconds": 0,
            }
        )

    message = str(failure.value)
    assert "certificatePem is not a PEM certificate" in message
    assert "tenants[1].users must be a list" in message
    assert "tenant t is listed more than once" in message
    assert "tokenLifetimeSeconds must be a positive integer" in message


@pytest.mark.parametrize("refresh_in", [0, -1, 3600, 7200, "60", True, 1.5])
def test_refresh_in_must_be_a_positive_integer_below_the_lifetime(refresh_in: object) -> None:
    with pytest.raises(ConfigError, match="refreshInSeconds"):
        parse_config(
            {"tenants": [{"id": "t"}], "tokenLifetimeSeconds": 3600, "refreshInSeconds": refresh_in}
        )


def test_refresh_in_is_optional_and_reaches_the_issued_token() -> None:
    assert parse_config({"tenants": [{"id": "t"}]}).refresh_in_seconds is None
    config = parse_config({"tenants": [{"id": "t"}], "refreshInSeconds": 1800})
    issuer = TokenIssuer("https://graph.microsoft.com", 3600, threading.RLock(), 1800)

    assert config.refresh_in_seconds == 1800
    assert issuer.issue("t", "app", "secret").refresh_in == 1800
    assert TokenIssuer("a", 60, threading.RLock()).issue("t", "app", "secret").refresh_in is None


def test_config_needs_a_tenant() -> None:
    with pytest.raises(ConfigError, match="at least one tenant"):
        parse_config({})


def plan_with_clock() -> tuple[FaultPlan, list[float]]:
    now = [100.0]
    return FaultPlan(threading.RLock(), clock=lambda: now[0]), now


def test_faults_apply_in_order_and_stop_when_used_up() -> None:
    plan, _ = plan_with_clock()
    plan.add({"target": "createOrGet", "status": 500, "count": 1})
    plan.add({"target": "any", "status": 503, "count": 2})

    decided = [plan.decide("createOrGet") for _ in range(4)]

    assert [d.status if d else None for d in decided] == [500, 503, 503, None]


def test_fault_targets_and_organizer_filter() -> None:
    plan, _ = plan_with_clock()
    plan.add({"target": "graph", "status": 503, "organizerId": "ABC"})

    assert plan.decide("token") is None
    assert plan.decide("createOrGet", "other") is None
    assert plan.decide("getMeeting", "abc") is not None


@pytest.mark.parametrize(
    ("target", "reached"),
    [
        ("patchMeeting", {"patchMeeting"}),
        ("deleteMeeting", {"deleteMeeting"}),
        ("getMeeting", {"getMeeting"}),
        ("createOrGet", {"createOrGet"}),
        ("graph", {"createOrGet", "getMeeting", "patchMeeting", "deleteMeeting"}),
        ("any", {"createOrGet", "getMeeting", "patchMeeting", "deleteMeeting", "token"}),
    ],
)
def test_each_target_reaches_exactly_its_operations(target: str, reached: set[str]) -> None:
    operations = ("createOrGet", "getMeeting", "patchMeeting", "deleteMeeting", "token")
    plan, _ = plan_with_clock()
    plan.add({"target": target, "status": 503})

    assert {op for op in operations if plan.decide(op) is not None} == reached


@pytest.mark.parametrize(
    "spec",
    [
        {"target": "createOrGet"},
        {"target": "createOrGet", "status": 200},
        {"target": "createOrGet", "status": 500, "count": 0},
        {"target": "createOrGet", "status": 500, "retryAfter": ["2"]},
        {"target": "createOrGet", "reset": "yes"},
    ],
)
def test_fault_specs_are_checked(spec: dict[str, object]) -> None:
    plan, _ = plan_with_clock()
    with pytest.raises(FaultSpecError):
        plan.add(spec)


def test_rate_limit_window_slides() -> None:
    plan, now = plan_with_clock()
    plan.set_rate_limit("createOrGet", 2)

    first = [plan.decide("createOrGet") for _ in range(3)]
    now[0] += 0.5
    still = plan.decide("createOrGet")
    now[0] += 0.6  # the first two are now more than a second old
    again = plan.decide("createOrGet")

    assert first[:2] == [None, None]
    assert first[2] is not None and first[2].status == 429 and first[2].retry_after == "1"
    assert still is not None and again is None
    assert plan.decide("token") is None  # other operations are not limited


def test_tokens_for_another_audience_are_rejected() -> None:
    issuer = TokenIssuer("https://graph.microsoft.com", 60, threading.RLock())
    token = issuer.issue("tenant", "app", "secret").access_token
    issuer.audience = "https://graph.microsoft.us"

    with pytest.raises(TokenRejected, match="Invalid audience"):
        issuer.check(token)


def test_expired_tokens_are_rejected() -> None:
    issuer = TokenIssuer("https://graph.microsoft.com", -5, threading.RLock())
    token = issuer.issue("tenant", "app", "secret").access_token

    with pytest.raises(TokenRejected, match="expired"):
        issuer.check(token)


@pytest.mark.parametrize("version", ["v1.0", "beta"])
def test_the_emulators_contract_copy_matches_the_shared_contract(version: str) -> None:
    name = f"createOrGet.{version}.json"
    shared = CONTRACT_DIR / name
    if not shared.exists():
        pytest.skip(f"shared contract not found at {CONTRACT_DIR}")
    assert (EMULATOR_DIR / "contract" / name).read_bytes() == shared.read_bytes()


def stored_meeting() -> dict[str, Any]:
    organizer = {
        "upn": "ada@contoso.example",
        "role": "presenter",
        "identity": {"user": {"id": "abc", "tenantId": "t"}},
    }
    return {
        "id": "m1",
        "subject": None,
        "startDateTime": "2027-01-01T09:00:00.0000000Z",
        "endDateTime": "2027-01-01T10:00:00.0000000Z",
        "participants": {"organizer": organizer, "attendees": [{"upn": "x@y.z"}]},
    }


def test_apply_update_returns_a_copy_and_never_changes_the_stored_meeting() -> None:
    meeting = stored_meeting()
    before = repr(meeting)

    updated = apply_update(
        meeting, {"subject": "s", "participants": {"attendees": []}, "@odata.type": "x"}, "v1.0"
    )

    assert repr(meeting) == before
    assert updated["subject"] == "s"
    assert updated["participants"] == {**meeting["participants"], "attendees": []}


@pytest.mark.parametrize(
    "body",
    [
        {"startDateTime": "2027-01-01T09:00:00Z"},
        {"participants": None},
        {"participants": {"organizer": {"upn": "bob@contoso.example"}}},
        {"participants": {"organizer": {"identity": {"user": {"id": "ABD"}}}}},
        {"creationDateTime": "2020-01-01T00:00:00Z"},
    ],
)
def test_apply_update_rejections(body: dict[str, object]) -> None:
    with pytest.raises(UpdateRejected):
        apply_update(stored_meeting(), body, "v1.0")


def test_the_store_frees_an_identity_on_delete_and_keeps_the_history() -> None:
    store = MeetingStore(threading.RLock())
    key = MeetingKey("t", "u", "booking-1")
    first, _ = store.create_or_get(key, lambda: {"id": "m1"})

    assert store.delete("t", "u", "m1") is True
    assert store.delete("t", "u", "m1") is False
    assert store.update("t", "u", "m1", lambda m: m) is None
    second, created = store.create_or_get(key, lambda: {"id": "m2"})

    assert created and second["id"] == "m2" and store.get("t", "u", "m1") is None
    assert [(r["meetingId"], r["deleted"]) for r in store.snapshot()] == [
        ("m1", True),
        ("m2", False),
    ]


def test_a_rejected_update_leaves_the_store_unchanged() -> None:
    store = MeetingStore(threading.RLock())
    store.create_or_get(MeetingKey("t", "u", "e"), lambda: {"id": "m1", "subject": "a"})

    def refuse(meeting: dict[str, object]) -> dict[str, object]:
        raise UpdateRejected("no")

    with pytest.raises(UpdateRejected):
        store.update("t", "u", "m1", refuse)

    assert store.get("t", "u", "m1") == {"id": "m1", "subject": "a"}
    assert store.snapshot()[0]["patched"] == 0
