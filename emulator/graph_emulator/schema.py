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


def _problem(entrypoint: str, body: Any, version: str) -> str | None:
    # best_match looks inside anyOf branches, so the message names the actual field
    # (e.g. an attendee's role) rather than "participants is not valid under any ...".
    error = best_match(validator(entrypoint, version).iter_errors(body))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path)
    return f"Invalid request body at '{where or '/'}': {error.message}"
