"""The Graph contract extract, for validating bodies in tests.

``CONTRACT_DIR`` is ``shared/graph-contract`` beside the repository (override with
the ``GRAPH_CONTRACT_DIR`` environment variable). ``validator(entrypoint, version)``
returns a cached Draft 2020-12 validator for one of the contract's
``x-validation-entrypoints``: ``createOrGetRequestBody``, ``onlineMeeting``,
``onlineMeetingCollection`` or ``errorBody``; version ``"v1.0"`` or ``"beta"``::

    validator("onlineMeeting").validate(response.json())
    validator("createOrGetRequestBody", "beta").validate(body)
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTRACT_DIR = Path(
    os.environ.get("GRAPH_CONTRACT_DIR") or REPO_ROOT.parent / "shared" / "graph-contract"
)
VERSIONS = ("v1.0", "beta")
ENTRYPOINTS = ("createOrGetRequestBody", "onlineMeeting", "onlineMeetingCollection", "errorBody")


@cache
def document(version: str = "v1.0") -> dict[str, Any]:
    """The whole OpenAPI document for a version."""
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}, not {version!r}")
    path = CONTRACT_DIR / f"createOrGet.{version}.json"
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


@cache
def validator(entrypoint: str, version: str = "v1.0") -> Draft202012Validator:
    """A validator for an ``x-validation-entrypoints`` name, exactly as the README builds it."""
    doc = document(version)
    registry = Registry().with_resource(
        "urn:gc", Resource.from_contents(doc, default_specification=DRAFT202012)
    )
    pointer = doc["x-validation-entrypoints"][entrypoint]
    return Draft202012Validator(
        {"$ref": "urn:gc" + pointer}, registry=registry, format_checker=FormatChecker()
    )
