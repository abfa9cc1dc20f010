"""Request-body validation against the Graph contract extract.

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
    # best_match looks inside anyOf branches, so the message names the actual field
    # (e.g. an attendee's role) rather than "participants is not valid under any ...".
    error = best_match(validator("createOrGetRequestBody", version).iter_errors(body))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path)
    return f"Invalid request body at '{where or '/'}': {error.message}"
