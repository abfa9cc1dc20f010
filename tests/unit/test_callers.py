import hashlib
import json

import pytest

from service.domain.callers import CallerRegistryError, authenticate, by_app_id, load_callers

pytestmark = pytest.mark.unit

ORGANIZER = "8b081ef6-4792-4def-b2c9-c363a1bf41d5"


def write(tmp_path, document):
    path = tmp_path / "clients.json"
    path.write_text(json.dumps(document))
    return path


def digest(key):
    return hashlib.sha256(key.encode()).hexdigest()


def test_loads_callers_and_authenticates_by_key(tmp_path):
    callers = load_callers(
        write(
            tmp_path,
            {
                "clients": [
                    {"id": "eu", "keySha256": digest("k-eu"), "organizers": ["*"]},
                    {"id": "us", "keySha256": digest("k-us"), "organizers": [ORGANIZER.upper()]},
                ]
            },
        )
    )
    assert authenticate(callers, "k-eu").id == "eu"
    assert authenticate(callers, "k-us").id == "us"
    assert authenticate(callers, "k-xx") is None
    assert callers["eu"].may_book_for(ORGANIZER)
    assert callers["us"].may_book_for(ORGANIZER)  # GUIDs compare case-insensitively
    assert not callers["us"].may_book_for("00000000-0000-0000-0000-000000000001")


def test_every_problem_is_reported_at_once(tmp_path):
    path = write(
        tmp_path,
        {
            "clients": [
                {"id": "bad id!", "keySha256": "nothex", "organizers": []},
                {"id": "ok", "keySha256": digest("a"), "organizers": ["not-a-guid"]},
            ]
        },
    )
    with pytest.raises(CallerRegistryError) as raised:
        load_callers(path)
    problems = " | ".join(raised.value.problems)
    assert "clients[0].id" in problems
    assert "clients[0].keySha256" in problems
    assert "clients[0].organizers" in problems
    assert "'not-a-guid' is not a GUID" in problems


def test_duplicate_ids_and_keys_are_refused(tmp_path):
    entry = {"id": "eu", "keySha256": digest("k"), "organizers": ["*"]}
    with pytest.raises(CallerRegistryError) as raised:
        load_callers(write(tmp_path, {"clients": [entry, entry]}))
    assert any("defined twice" in p for p in raised.value.problems)
    assert any("shared with another client" in p for p in raised.value.problems)


@pytest.mark.parametrize("content", ["", "{", "[]", '{"clients": []}'])
def test_unusable_files_are_refused(tmp_path, content):
    path = tmp_path / "clients.json"
    path.write_text(content)
    with pytest.raises(CallerRegistryError):
        load_callers(path)


def test_a_final_newline_does_not_pass_the_id_and_digest_rules(tmp_path):
    # Python's `$` matches before a final newline; the rules must not.
    path = write(
        tmp_path,
        {"clients": [{"id": "eu\n", "keySha256": digest("k") + "\n", "organizers": ["*"]}]},
    )
    with pytest.raises(CallerRegistryError) as raised:
        load_callers(path)
    problems = " | ".join(raised.value.problems)
    assert "clients[0].id" in problems
    assert "clients[0].keySha256" in problems


APP = "12345678-1234-1234-1234-123456789ABC"


def test_a_caller_may_have_an_app_id_instead_of_or_beside_a_key(tmp_path):
    callers = load_callers(
        write(
            tmp_path,
            {
                "clients": [
                    {"id": "azure", "appId": APP, "organizers": ["*"]},
                    {
                        "id": "both",
                        "keySha256": digest("k"),
                        "appId": "00000000-0000-0000-0000-0000000000aa",
                        "organizers": ["*"],
                        "rateLimit": "120/minute",
                    },
                ]
            },
        )
    )
    assert callers["azure"].app_id == APP.lower()  # GUIDs compare case-insensitively
    assert callers["azure"].key_sha256 is None
    assert authenticate(callers, "k").id == "both"
    assert by_app_id(callers, APP).id == "azure"
    assert by_app_id(callers, APP.lower()).id == "azure"
    assert by_app_id(callers, "00000000-0000-0000-0000-000000000000") is None
    assert callers["both"].rate_limit == "120/minute"
    assert callers["azure"].rate_limit is None


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"appId": "booking-app"}, "clients[0].appId must be an Entra app's client id (a GUID)"),
        ({"appId": 42}, "clients[0].appId must be an Entra app's client id (a GUID)"),
        ({}, "clients[0] needs a keySha256, an appId, or both"),
        ({"appId": APP, "rateLimit": "lots"}, "clients[0].rateLimit must be one limit"),
        ({"appId": APP, "rateLimit": 120}, "clients[0].rateLimit must be one limit"),
        ({"appId": APP, "rateLimit": "120/fortnight"}, "clients[0].rateLimit must be one limit"),
        (
            {"appId": APP, "rateLimit": "1/second;5/minute"},
            "clients[0].rateLimit must be one limit",
        ),
    ],
)
def test_app_id_and_rate_limit_are_validated(tmp_path, entry, problem):
    with pytest.raises(CallerRegistryError) as raised:
        load_callers(write(tmp_path, {"clients": [{"id": "x", "organizers": ["*"], **entry}]}))
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems


def test_an_app_id_shared_by_two_callers_is_refused(tmp_path):
    entries = [
        {"id": "one", "appId": APP, "organizers": ["*"]},
        {"id": "two", "appId": APP.lower(), "organizers": ["*"]},
    ]
    with pytest.raises(CallerRegistryError) as raised:
        load_callers(write(tmp_path, {"clients": entries}))
    assert raised.value.problems == ["clients[1].appId is shared with another client"]
