"""The OpenAPI document: generated from the code by flask-smorest, finished here.

Views document what is theirs (operationId, responses, headers, links). What holds for every
operation, and what JSON Schema can say but marshmallow cannot (rules across fields), is
added by `finish`, in this one place. `python -m service.openapi` prints the document.
"""

from __future__ import annotations

import copy
import sys
import threading
from collections.abc import Iterator
from typing import Any

from apispec.yaml_utils import dict_to_yaml
from flask import Flask

from service.web.routes import register_api

Document = dict[str, Any]

PROBLEM = "application/problem+json"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# service.web.observability.REQUEST_ID, written for ECMA-262 as JSON Schema reads it (the
# document's test checks that the two agree).
REQUEST_ID_PATTERN = "^[A-Za-z0-9._:@/+=-]{1,128}$"

REQUEST_ID_PARAMETER: dict[str, Any] = {
    "in": "header",
    "name": "X-Request-ID",
    "required": False,
    "description": "Your id for this request, echoed in the answer's X-Request-ID, its "
    "problem's `requestId` and the service's logs. A value that is not 1-128 characters of "
    "`A-Z a-z 0-9 . _ : @ / + = -` is replaced by a new id (not refused).",
    "schema": {"type": "string"},
}
REQUEST_ID_HEADER: dict[str, Any] = {
    "description": "The request's id: the X-Request-ID you sent if it was valid, else a new one",
    "required": True,
    "schema": {"type": "string", "pattern": REQUEST_ID_PATTERN},
}
DEFAULT_RESPONSE: dict[str, Any] = {
    "description": "Any other error (404 unknown route, 405 method not allowed, 500 internal "
    "error, ...), always application/problem+json",
    "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
}

# The rules the service enforces across fields, as JSON Schema keywords, by schema name.
# `oneOf` and `anyOf` sit inside `allOf` (the same constraint): client generators read a
# top-level oneOf/anyOf as "one of several types" and lose the model.
SCHEMA_RULES: dict[str, dict[str, Any]] = {
    "Booking": {
        # Exactly one organizer: oneOf fails when both or neither are given.
        "allOf": [{"oneOf": [{"required": ["organizerId"]}, {"required": ["organizerPool"]}]}],
        # An end without a start is refused (Graph rejects it).
        "dependentRequired": {"endDateTime": ["startDateTime"]},
    },
    "Attendee": {"allOf": [{"anyOf": [{"required": ["upn"]}, {"required": ["userId"]}]}]},
    "MeetingChange": {
        "minProperties": 1,
        "dependentRequired": {
            "startDateTime": ["endDateTime"],
            "endDateTime": ["startDateTime"],
        },
    },
}


def finish(generated: Document) -> Document:
    """The document as served: `generated` (flask-smorest's) completed and pruned."""
    document = copy.deepcopy(generated)
    for operation in operations(document):
        operation.setdefault("parameters", []).append(copy.deepcopy(REQUEST_ID_PARAMETER))
        responses: dict[str, Any] = operation["responses"]
        responses.setdefault("default", copy.deepcopy(DEFAULT_RESPONSE))
        for response in responses.values():
            headers = response.setdefault("headers", {})
            headers["X-Request-ID"] = copy.deepcopy(REQUEST_ID_HEADER)
        # By status, `default` last (the decorators' order is no reader's order).
        operation["responses"] = dict(sorted(responses.items(), key=status_order))
    schemas: dict[str, Any] = document["components"]["schemas"]
    for name, rules in SCHEMA_RULES.items():
        schemas[name].update(copy.deepcopy(rules))
    for name in sorted(set(schemas) - used_schemas(document)):
        # flask-smorest registers PaginationMetadata for paginated views; this API has none.
        del schemas[name]
    return document


def status_order(item: tuple[str, Any]) -> int:
    return int(item[0]) if item[0].isdigit() else 1000


def operations(document: Document) -> Iterator[dict[str, Any]]:
    for path_item in document["paths"].values():
        for method in METHODS:
            if method in path_item:
                yield path_item[method]


def used_schemas(document: Document) -> set[str]:
    """Names of the component schemas that the paths refer to, directly or through others."""
    prefix = "#/components/schemas/"
    schemas: dict[str, Any] = document["components"]["schemas"]
    found: set[str] = set()
    pending = [ref[len(prefix) :] for ref in refs(document["paths"]) if ref.startswith(prefix)]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        found.add(name)
        pending.extend(ref[len(prefix) :] for ref in refs(schemas[name]) if ref.startswith(prefix))
    return found


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def render(smorest: Any) -> str:
    """The finished document of a registered flask-smorest Api, as YAML."""
    return dict_to_yaml(finish(smorest.spec.to_dict()))


class ServedDocument:
    """The document that /openapi.yaml serves: rendered when first asked for, then kept.

    Rendering takes 50-130 ms and leaves garbage behind; at startup every worker would pay
    it before it is ready, for a document few callers ever fetch (docs/operations.md,
    Memory and startup).
    """

    def __init__(self, smorest: Any) -> None:
        self._smorest = smorest
        self._yaml: str | None = None
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:  # one render per worker, even when the first askers come together
            if self._yaml is None:
                self._yaml = render(self._smorest)
            return self._yaml


def generate() -> str:
    """The document, built without settings or services (no environment needed)."""
    return render(register_api(Flask("service")))


if __name__ == "__main__":
    sys.stdout.write(generate())
