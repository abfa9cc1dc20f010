"""The booking systems allowed to call us, and what each may do.

Callers are defined in the JSON file at CLIENTS_FILE. Only the SHA-256 of each API key is
stored, so the file itself is not a secret worth stealing. A caller that authenticates with
Entra ID access tokens names its app registration's client id (`appId`) instead of, or
beside, a key; `rateLimit` (the `limits` library's syntax, e.g. "120/minute") overrides
DEFAULT_CALLER_RATE_LIMIT for it.
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

from limits import RateLimitItem, parse_many

from service.domain import options as meeting_options

ANY_ORGANIZER = "*"
# Caller ids end up in Redis keys and the externalId formula: keep them plain.
# \A and \Z, not ^ and $: Python's `$` also matches before a final newline.
CALLER_ID = re.compile(r"\A[A-Za-z0-9._-]{1,64}\Z")
SHA256_HEX = re.compile(r"\A[0-9a-f]{64}\Z")


class CallerRegistryError(Exception):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def parse_rate_limit(text: str) -> RateLimitItem:
    """One rate limit in the `limits` library's syntax ("120/minute", "10 per second");
    ValueError otherwise."""
    found = parse_many(text)
    if len(found) != 1:
        raise ValueError(f"{text!r} must be exactly one limit, e.g. 120/minute")
    return found[0]


@dataclass(frozen=True)
class Caller:
    id: str
    key_sha256: bytes | None
    organizers: frozenset[str]
    # Meeting options for every booking of this caller, overlaid by a request's own
    # `options` member by member (service.domain.options); checked at start-up.
    default_options: dict[str, Any] = field(default_factory=dict, compare=False)
    # The client id of the caller's Entra app registration (tokens' azp / appid), lowercase.
    app_id: str | None = None
    # Its own rate limit ("120/minute"); None: DEFAULT_CALLER_RATE_LIMIT.
    rate_limit: str | None = None

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
        if caller.key_sha256 is not None and hmac.compare_digest(presented, caller.key_sha256):
            found = caller
    return found


def by_app_id(callers: Mapping[str, Caller], app_id: str) -> Caller | None:
    """The caller whose `appId` is `app_id` (a token's azp or appid), or None."""
    wanted = app_id.lower()
    for caller in callers.values():
        if caller.app_id is not None and caller.app_id == wanted:
            return caller
    return None


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
    app_ids: set[str] = set()
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
        app_id = entry.get("appId")
        if app_id is not None:
            if not isinstance(app_id, str) or not _is_guid(app_id):
                problems.append(f"{where}.appId must be an Entra app's client id (a GUID)")
                app_id = None
            elif app_id.lower() in app_ids:
                problems.append(f"{where}.appId is shared with another client")
        if digest is None and app_id is None and "appId" not in entry:
            problems.append(f"{where} needs a keySha256, an appId, or both")
        elif digest is not None and (
            not isinstance(digest, str) or not SHA256_HEX.match(digest.lower())
        ):
            problems.append(f"{where}.keySha256 must be the hex SHA-256 of the API key")
        elif isinstance(digest, str) and digest.lower() in digests:
            problems.append(f"{where}.keySha256 is shared with another client")
        rate_limit = entry.get("rateLimit")
        if rate_limit is not None:
            try:
                if not isinstance(rate_limit, str):
                    raise ValueError(rate_limit)
                parse_rate_limit(rate_limit)
            except ValueError:
                problems.append(
                    f'{where}.rateLimit must be one limit such as "120/minute" (the limits '
                    "library's syntax)"
                )
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
        assert isinstance(caller_id, str)
        if isinstance(digest, str):
            digests.add(digest.lower())
        if isinstance(app_id, str):
            app_ids.add(app_id.lower())
        callers[caller_id] = Caller(
            id=caller_id,
            key_sha256=bytes.fromhex(digest) if isinstance(digest, str) else None,
            organizers=frozenset(str(o).lower() for o in organizers),
            default_options=default_options,
            app_id=app_id.lower() if isinstance(app_id, str) else None,
            rate_limit=rate_limit if isinstance(rate_limit, str) else None,
        )
    if problems:
        raise CallerRegistryError(problems)
    return callers


def _is_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
