"""Request-body validation against the Graph contract extract, and what it declares.

The emulator ships its own copy of the contract (``contract/createOrGet.*.json``,
copied verbatim from ``shared/graph-contract``) so it runs without the shared
directory; the emulator tests check the copy still matches the original.
``GRAPH_CONTRACT_DIR`` points it at another copy.
"""

from __future__ import annotations

import json
import os
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker  # type: ignore[import-untyped]
from jsonschema.exceptions import best_match  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

VERSIONS = ("v1.0", "beta")
_URN = "urn:gc"


def contract_document(version: str) -> dict[str, Any]:
    name = f"createOrGet.{version}.json"
    override = os.environ.get("GRAPH_CONTRACT_DIR")
    if override:
        text = (Path(override) / name).read_text(encoding="utf-8")
    else:
        text = resources.files(__package__).joinpath("contract", name).read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


@cache
def validator(entrypoint: str, version: str) -> Any:
    """A Draft 2020-12 validator for one of the contract's ``x-validation-entrypoints``."""
    document = contract_document(version)
    registry: Registry[Any] = Registry().with_resource(
        _URN, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    pointer = document["x-validation-entrypoints"][entrypoint]
    return Draft202012Validator(
        {"$ref": _URN + pointer}, registry=registry, format_checker=FormatChecker()
    )


def request_problem(body: Any, version: str) -> str | None:
    """Describe what makes a createOrGet body invalid, or return None if it is valid."""
    return _problem("createOrGetRequestBody", body, version)


def meeting_problem(body: Any, version: str) -> str | None:
    """Describe what makes a PATCH body invalid, or return None if it is valid.

    The contract's PATCH request schema is the onlineMeeting schema itself. A stored
    meeting is read through both versions, so the body is checked against the
    requested version first (its message wins) and then against the others: a v1.0
    PATCH must not store a value the beta schema would refuse in a later beta GET.
    """
    for each in (version, *(v for v in VERSIONS if v != version)):
        problem = _problem("onlineMeeting", body, each)
        if problem:
            return problem if each == version else f"{problem} (in the {each} schema)"
    return None


@cache
def properties(schema_name: str, version: str) -> frozenset[str]:
    """The property names a contract schema declares, through its ``allOf`` bases."""
    schemas = contract_document(version)["components"]["schemas"]
    names: set[str] = set()
    pending = [schemas[schema_name]]
    while pending:
        schema = pending.pop()
        names.update(schema.get("properties", {}))
        for part in schema.get("allOf", []):
            ref = part.get("$ref", "")
            pending.append(schemas[ref.rsplit("/", 1)[-1]] if ref else part)
    return frozenset(names)


@cache
def updatable_properties(version: str) -> frozenset[str]:
    """The onlineMeeting properties the contract's PATCH operation lists as updatable."""
    path = contract_document(version)["paths"]["/users/{user-id}/onlineMeetings/{onlineMeeting-id}"]
    return frozenset(path["patch"]["x-ms-updatable-properties-v1.0-docs"])


UNKNOWN_FUTURE_VALUE = "unknownFutureValue"
PREFER_UNKNOWN_ENUM_MEMBERS = "include-unknown-enum-members"
MEETING_TYPE = "microsoft.graph.onlineMeeting"


@cache
def evolvable_members(version: str) -> dict[tuple[str, ...], tuple[str, ...]]:
    """The onlineMeeting members typed by an evolvable enum, one level deep, each with the
    values listed after ``unknownFutureValue``: Graph accepts and returns those only for a
    request with ``Prefer: include-unknown-enum-members`` (e.g. ``("lobbyBypassSettings",
    "scope") -> ("invited", "organizationExcludingGuests")``)."""
    schemas = contract_document(version)["components"]["schemas"]
    found: dict[tuple[str, ...], tuple[str, ...]] = {}

    def walk(type_name: str, path: tuple[str, ...]) -> None:
        for name, member in _property_schemas(schemas, type_name).items():
            target = _referenced(member)
            if target is None:
                continue
            enum = schemas[target].get("enum")
            if enum and UNKNOWN_FUTURE_VALUE in enum:
                found[(*path, name)] = tuple(enum[enum.index(UNKNOWN_FUTURE_VALUE) + 1 :])
            elif not path and schemas[target].get("type") == "object":
                walk(target, (name,))

    walk(MEETING_TYPE, ())
    return found


def _property_schemas(schemas: dict[str, Any], type_name: str) -> dict[str, Any]:
    members: dict[str, Any] = {}
    pending = [schemas[type_name]]
    while pending:
        schema = pending.pop()
        members.update(schema.get("properties", {}))
        for part in schema.get("allOf", []):
            ref = part.get("$ref", "")
            pending.append(schemas[ref.rsplit("/", 1)[-1]] if ref else part)
    return members


def _referenced(member: dict[str, Any]) -> str | None:
    for part in [member, *member.get("anyOf", [])]:
        ref = part.get("$ref")
        if isinstance(ref, str):
            return ref.rsplit("/", 1)[-1]
    return None


def _at(document: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        if not isinstance(document, dict):
            return None
        document = document.get(name)
    return document


def evolvable_problem(body: Any, version: str, prefer: bool) -> str | None:
    """Why a PATCH body's evolvable enum value cannot be set, or None: the sentinel
    ``unknownFutureValue`` never can, a value after it only with the Prefer header."""
    for path, later in evolvable_members(version).items():
        value = _at(body, path)
        where = "/".join(path)
        if value == UNKNOWN_FUTURE_VALUE:
            return f"Invalid value '{value}' at '{where}': it cannot be set."
        if value in later and not prefer:
            return (
                f"Invalid value '{value}' at '{where}': send the header 'Prefer: "
                f"{PREFER_UNKNOWN_ENUM_MEMBERS}' to use enum members after "
                f"'{UNKNOWN_FUTURE_VALUE}'."
            )
    return None


def masked(meeting: dict[str, Any], version: str) -> dict[str, Any]:
    """The meeting as a client without the Prefer header sees it: values listed after
    ``unknownFutureValue`` read as ``unknownFutureValue``."""
    result = meeting
    for path, later in evolvable_members(version).items():
        value = _at(meeting, path)
        if value in later:
            if result is meeting:
                result = dict(meeting)
            if len(path) == 1:
                result[path[0]] = UNKNOWN_FUTURE_VALUE
            else:
                result[path[0]] = {**result[path[0]], path[1]: UNKNOWN_FUTURE_VALUE}
    return result


def _problem(entrypoint: str, body: Any, version: str) -> str | None:
    # best_match looks inside anyOf branches, so the message names the actual field
    # (e.g. an attendee's role) rather than "participants is not valid under any ...".
    error = best_match(validator(entrypoint, version).iter_errors(body))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path)
    return f"Invalid request body at '{where or '/'}': {error.message}"
