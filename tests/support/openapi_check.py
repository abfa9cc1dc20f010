"""Strict checks of the API's answers against the committed openapi.yaml.

`check(response)` fails (AssertionError) unless a `requests.Response` is what the document
promises for its request: the status is declared for the operation (or falls to `default`
only where the document sends routing errors: 404 and 405), the Content-Type is one the
response declares, the body validates against its schema (JSON Schema 2020-12, formats
checked), and every required header is present and valid. An answer for a path or method the
document does not have must be a problem+json 404 or 405.

The e2e suite runs it on every answer its `Client` receives (tests/e2e/conftest.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from functools import cache
from typing import Any

import requests
import yaml
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.support.stack import REPO

DOCUMENT_URI = "urn:meeting-provisioning:openapi"
ROUTING_STATUSES = {404, 405}

# Formats jsonschema leaves unchecked without optional packages, checked here as the
# document means them.
FORMATS = FormatChecker()
for name, checker in Draft202012Validator.FORMAT_CHECKER.checkers.items():
    FORMATS.checkers[name] = checker
RFC3339 = re.compile(
    r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})\Z"
)


@FORMATS.checks("date-time", raises=ValueError)
def is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not RFC3339.match(value):
        return False
    text = re.sub(r"(\.[0-9]{6})[0-9]+", r"\1", value.upper()).replace("Z", "+00:00")
    datetime.fromisoformat(text)
    return True


@FORMATS.checks("uri")
def is_uri(value: object) -> bool:
    return (
        not isinstance(value, str)
        or re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s]+", value) is not None
    )


@FORMATS.checks("uri-reference")
def is_uri_reference(value: object) -> bool:
    return not isinstance(value, str) or re.fullmatch(r"[^\s]*", value) is not None


def _ecma_pattern(
    validator: Any, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    """`pattern` as JSON Schema means it (ECMA-262): `$` ends the string. Python's `$` also
    matches before a final newline, so "abc\n" would pass `^[a-z]+$` in plain jsonschema."""
    if isinstance(instance, str) and not re.search(
        re.sub(r"(?<!\\)\$$", r"\\Z", pattern), instance
    ):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


# Draft 2020-12 with ECMA-262 `pattern` semantics.
EcmaValidator = validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})


class OpenApiDocument:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, resource)
        self.routes = [
            (re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"[^/]+", re.escape(path)) + "$"), item)
            for path, item in document["paths"].items()
        ]

    def validator(self, schema: dict[str, Any]) -> Any:
        """A validator of a schema taken from the document ("#/components/..." refs in it
        resolve in the document)."""
        return EcmaValidator(_absolute(schema), registry=self.registry, format_checker=FORMATS)

    def operations(self) -> Iterator[dict[str, Any]]:
        for item in self.document["paths"].values():
            yield from (item[m] for m in ("get", "post", "put", "patch", "delete") if m in item)

    def operation(self, method: str, path: str) -> tuple[dict[str, Any] | None, bool]:
        """(the operation, whether the path exists at all)."""
        for pattern, item in self.routes:
            if pattern.match(path):
                return item.get(method.lower()), True
        return None, False


def _absolute(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: DOCUMENT_URI + value
            if key == "$ref" and isinstance(value, str) and value.startswith("#")
            else _absolute(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_absolute(item) for item in node]
    return node


@cache
def document() -> OpenApiDocument:
    return OpenApiDocument(yaml.safe_load((REPO / "openapi.yaml").read_text(encoding="utf-8")))


def check(response: requests.Response) -> None:
    """Fail unless `response` is what openapi.yaml declares for its request."""
    request = response.request
    method = str(request.method)
    path = requests.utils.urlparse(str(request.url)).path
    where = f"{method} {path} -> {response.status_code}"
    spec = document()
    operation, path_known = spec.operation(method, path)
    if operation is None:
        expected = 405 if path_known else 404
        if method in ("HEAD", "OPTIONS") and path_known:
            return  # Flask answers these for every route; the document lists neither
        _fail(
            response.status_code == expected,
            where,
            f"{'method' if path_known else 'path'} not in the document: expected {expected}",
        )
        # What every operation's `default` (problem+json) answer declares.
        default = next(op for op in spec.operations())["responses"]["default"]
        _check_body(spec, where, response, default["content"])
        _check_headers(spec, where, response, default["headers"])
        return
    responses: dict[str, Any] = operation["responses"]
    declared = responses.get(str(response.status_code))
    if declared is None:
        _fail(
            response.status_code in ROUTING_STATUSES and "default" in responses,
            where,
            f"status not declared for {operation.get('operationId')} "
            f"(declared: {', '.join(responses)})",
        )
        declared = responses["default"]
    _check_body(spec, where, response, declared.get("content"))
    _check_headers(spec, where, response, declared.get("headers", {}))


def _check_body(
    spec: OpenApiDocument,
    where: str,
    response: requests.Response,
    content: dict[str, Any] | None,
) -> None:
    if not content:
        _fail(not response.content, where, f"no body declared, got {response.content[:200]!r}")
        return
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    _fail(
        media_type in content,
        where,
        f"Content-Type {media_type!r} not declared (declared: {', '.join(content)})",
    )
    if not (media_type == "application/json" or media_type.endswith("+json")):
        return
    try:
        body = json.loads(response.content)
    except ValueError as error:
        raise AssertionError(
            f"{where}: body is not JSON ({error}): {response.text[:300]}"
        ) from None
    schema = content[media_type].get("schema")
    if schema is None:
        return
    error = best_match(spec.validator(schema).iter_errors(body))
    if error is not None:
        location = "/".join(str(part) for part in error.absolute_path) or "(body)"
        raise AssertionError(
            f"{where}: the body does not match the document at {location}: {error.message}\n"
            f"body: {response.text[:1000]}"
        )


def _check_headers(
    spec: OpenApiDocument,
    where: str,
    response: requests.Response,
    headers: dict[str, Any],
) -> None:
    for name, header in headers.items():
        value = response.headers.get(name)
        if value is None:
            _fail(not header.get("required", False), where, f"required header {name} is missing")
            continue
        schema = header.get("schema")
        if schema is not None:
            error = best_match(spec.validator(schema).iter_errors(value))
            if error is not None:
                raise AssertionError(f"{where}: header {name}: {value!r}: {error.message}")


def _fail(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise AssertionError(f"{where}: {message} (openapi.yaml)")
