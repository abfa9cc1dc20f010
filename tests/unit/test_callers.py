import hashlib
import json

import pytest

from service.callers import CallerRegistryError, authenticate, load_callers

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
