"""The booking systems allowed to call us, and what each may do.

Callers are defined in the JSON file at CLIENTS_FILE. Only the SHA-256 of each API key is
stored, so the file itself is not a secret worth stealing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service import options as meeting_options

ANY_ORGANIZER = "*"
# Caller ids end up in Redis keys and the externalId formula: keep them plain.
# \A and \Z, not ^ and $: Python's `$` also matches before a final newline.
CALLER_ID = re.compile(r"\A[A-Za-z0-9._-]{1,64}\Z")
SHA256_HEX = re.compile(r"\A[0-9a-f]{64}\Z")


class CallerRegistryError(Exception):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Caller:
    id: str
    key_sha256: bytes
    organizers: frozenset[str]
    # Meeting options for every booking of this caller, overlaid by a request's own
    # `options` member by member (service.options); checked at start-up.
    default_options: dict[str, Any] = field(default_factory=dict, compare=False)

    def may_book_for(self, organizer_id: str) -> bool:
        return ANY_ORGANIZER in self.organizers or organizer_id.lower() in self.organizers


def key_digest(api_key: str) -> bytes:
    return hashlib.sha256(api_key.encode("utf-8")).digest()


def authenticate(callers: Mapping[str, Caller], api_key: str) -> Caller | None:
    """The caller owning `api_key`, or None.

    Every caller's digest is compared, in constant time, so neither the position of the
    matching caller nor a partial match shows in the response time.
    """
    presented = key_digest(api_key)
    found = None
    for caller in callers.values():
        if hmac.compare_digest(presented, caller.key_sha256):
            found = caller
    return found


def load_callers(path: Path) -> dict[str, Caller]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CallerRegistryError([f"cannot read {path}: {error}"]) from None
    entries = document.get("clients") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise CallerRegistryError(['expected {"clients": [...]} with at least one client'])

    problems: list[str] = []
    callers: dict[str, Caller] = {}
    digests: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"clients[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} is not an object")
            continue
        caller_id = entry.get("id")
        digest = entry.get("keySha256")
        organizers = entry.get("organizers")
        if not isinstance(caller_id, str) or not CALLER_ID.match(caller_id):
            problems.append(f"{where}.id must be 1-64 characters of A-Z a-z 0-9 . _ -")
        elif caller_id in callers:
            problems.append(f"{where}.id {caller_id!r} is defined twice")
        if not isinstance(digest, str) or not SHA256_HEX.match(digest.lower()):
            problems.append(f"{where}.keySha256 must be the hex SHA-256 of the API key")
        elif digest.lower() in digests:
            problems.append(f"{where}.keySha256 is shared with another client")
        if not isinstance(organizers, list) or not organizers:
            problems.append(f'{where}.organizers must be a non-empty list ("*" for any)')
            organizers = []
        for organizer in organizers:
            if organizer == ANY_ORGANIZER:
                continue
            try:
                uuid.UUID(str(organizer))
            except ValueError:
                problems.append(f'{where}.organizers: {organizer!r} is not a GUID or "*"')
        default_options: dict[str, Any] = {}
        if "defaultOptions" in entry:
            try:
                default_options = meeting_options.parse(entry["defaultOptions"])
            except meeting_options.OptionsError as error:
                problems.extend(
                    f"{where}.defaultOptions{'' if name == '_schema' else '.' + name} {rule}"
                    for name, rule in error.errors.items()
                )
        if problems:
            continue
        assert isinstance(caller_id, str) and isinstance(digest, str)
        digests.add(digest.lower())
        callers[caller_id] = Caller(
            id=caller_id,
            key_sha256=bytes.fromhex(digest),
            organizers=frozenset(str(o).lower() for o in organizers),
            default_options=default_options,
        )
    if problems:
        raise CallerRegistryError(problems)
    return callers
