"""One logical Graph call, whatever number of attempts it takes, and its accepted answer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import requests


@dataclass(frozen=True)
class Call:
    operation: str  # the metrics and log name
    method: str
    organizer_id: str
    url: str
    body: dict[str, Any] | None
    accept: frozenset[int]
    not_found: str  # what a 404 means for this operation
    prefer: str | None = None  # the Prefer header, e.g. include-unknown-enum-members
    # The path under the Graph root with {placeholders} for the ids: what traces show.
    route: str = ""
    # One id for all attempts, so Microsoft support can follow the whole call.
    client_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True)
class Sent:
    """An accepted answer to a call."""

    call: Call
    response: requests.Response
    graph_failed = False


def answer_document(response: requests.Response) -> dict[str, Any]:
    """The JSON object Graph answered, or {} for anything else (no JSON, not an object)."""
    try:
        document = response.json()
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}
