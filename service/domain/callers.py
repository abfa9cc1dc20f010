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
    """CLIENTS_FILE's callers; every problem of every entry in one CallerRegistryError."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CallerRegistryError([f"cannot read {path}: {error}"]) from None
    entries = document.get("clients") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise CallerRegistryError(['expected {"clients": [...]} with at least one client'])
    registry = _Registry()
    for index, entry in enumerate(entries):
        registry.add(f"clients[{index}]", entry)
    if registry.problems:
        raise CallerRegistryError(registry.problems)
    return registry.callers


class _Registry:
    """The callers read so far, and the problems found in any entry. Each member of an
    entry has its own check, which records its problems and returns the member's value
    (None when it is missing or wrong). Ids, keys and apps must be unique across entries."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.callers: dict[str, Caller] = {}
        self.digests: set[str] = set()
        self.app_ids: set[str] = set()

    def add(self, where: str, entry: Any) -> None:
        if not isinstance(entry, dict):
            self.problems.append(f"{where} is not an object")
            return
        caller_id = self._caller_id(where, entry.get("id"))
        app_id = self._app_id(where, entry)
        digest = self._key_digest(where, entry, app_id)
        rate_limit = self._rate_limit(where, entry.get("rateLimit"))
        organizers = self._organizers(where, entry.get("organizers"))
        default_options = self._default_options(where, entry)
        if self.problems or caller_id is None:
            return  # the file is refused as a whole: no need to build more callers
        if digest is not None:
            self.digests.add(digest)
        if app_id is not None:
            self.app_ids.add(app_id)
        self.callers[caller_id] = Caller(
            id=caller_id,
            key_sha256=bytes.fromhex(digest) if digest is not None else None,
            organizers=frozenset(organizers),
            default_options=default_options,
            app_id=app_id,
            rate_limit=rate_limit,
        )

    def _caller_id(self, where: str, caller_id: Any) -> str | None:
        if not isinstance(caller_id, str) or not CALLER_ID.match(caller_id):
            self.problems.append(f"{where}.id must be 1-64 characters of A-Z a-z 0-9 . _ -")
            return None
        if caller_id in self.callers:
            self.problems.append(f"{where}.id {caller_id!r} is defined twice")
        return caller_id

    def _app_id(self, where: str, entry: dict[str, Any]) -> str | None:
        """The app registration's client id, lower-case."""
        app_id = entry.get("appId")
        if app_id is None:
            return None
        if not isinstance(app_id, str) or not _is_guid(app_id):
            self.problems.append(f"{where}.appId must be an Entra app's client id (a GUID)")
            return None
        if app_id.lower() in self.app_ids:
            self.problems.append(f"{where}.appId is shared with another client")
        return app_id.lower()

    def _key_digest(self, where: str, entry: dict[str, Any], app_id: str | None) -> str | None:
        """The API key's SHA-256, lower-case hex. An entry with neither a key nor an appId
        could never authenticate (a wrong appId is reported on its own)."""
        digest = entry.get("keySha256")
        if digest is None:
            if app_id is None and "appId" not in entry:
                self.problems.append(f"{where} needs a keySha256, an appId, or both")
            return None
        if not isinstance(digest, str) or not SHA256_HEX.match(digest.lower()):
            self.problems.append(f"{where}.keySha256 must be the hex SHA-256 of the API key")
            return None
        if digest.lower() in self.digests:
            self.problems.append(f"{where}.keySha256 is shared with another client")
        return digest.lower()

    def _rate_limit(self, where: str, rate_limit: Any) -> str | None:
        if rate_limit is None:
            return None
        try:
            if not isinstance(rate_limit, str):
                raise ValueError(rate_limit)
            parse_rate_limit(rate_limit)
        except ValueError:
            self.problems.append(
                f'{where}.rateLimit must be one limit such as "120/minute" (the limits '
                "library's syntax)"
            )
            return None
        return rate_limit

    def _organizers(self, where: str, organizers: Any) -> list[str]:
        """The organizers' GUIDs, lower-case, or "*" for any."""
        if not isinstance(organizers, list) or not organizers:
            self.problems.append(f'{where}.organizers must be a non-empty list ("*" for any)')
            return []
        for organizer in organizers:
            if organizer == ANY_ORGANIZER:
                continue
            try:
                uuid.UUID(str(organizer))
            except ValueError:
                self.problems.append(f'{where}.organizers: {organizer!r} is not a GUID or "*"')
        return [str(organizer).lower() for organizer in organizers]

    def _default_options(self, where: str, entry: dict[str, Any]) -> dict[str, Any]:
        if "defaultOptions" not in entry:
            return {}
        try:
            return meeting_options.parse(entry["defaultOptions"])
        except meeting_options.OptionsError as error:
            self.problems.extend(
                f"{where}.defaultOptions{'' if name == '_schema' else '.' + name} {rule}"
                for name, rule in error.errors.items()
            )
            return {}


def _is_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
