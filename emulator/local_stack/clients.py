"""The callers' file the service reads (CLIENTS_FILE): who may call, with which key or
Entra app; and the emulator's side of callers' Entra ID tokens (the service's app ID URI,
the callers' apps with the app role)."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service import config

# The service's own app registration as the emulator's `callerApi` knows it, and the app
# role a caller's app needs (the service's default CALLER_APP_ROLE).
CALLER_API_URI = "api://meeting-provisioning"
CALLER_APP_ROLE = config.CALLER_APP_ROLE.default


@dataclass
class Caller:
    id: str
    key: str
    organizers: list[str]
    # Meeting options for every booking of this caller (the service's `defaultOptions`).
    default_options: dict[str, Any] = field(default_factory=dict)
    # The caller's Entra app (client id and secret), for caller tokens; the secret is the
    # emulator's to know, never written to CLIENTS_FILE.
    app_id: str | None = None
    app_secret: str | None = None


def write_clients_file(path: Path, callers: list[Caller]) -> Path:
    """The file, with each key stored as its SHA-256 only."""
    path.write_text(
        json.dumps(
            {
                "clients": [
                    {
                        "id": c.id,
                        "keySha256": hashlib.sha256(c.key.encode()).hexdigest(),
                        "organizers": c.organizers,
                        **({"appId": c.app_id} if c.app_id else {}),
                        **({"defaultOptions": c.default_options} if c.default_options else {}),
                    }
                    for c in callers
                ]
            }
        )
    )
    return path


def with_caller_apps(
    config: Mapping[str, Any], api_client_id: str, callers: list[Caller]
) -> dict[str, Any]:
    """`config` (an emulator configuration) with the service's app as `callerApi` and every
    caller's app (those with `app_id` and `app_secret`) in the first tenant, holding the
    app role CALLER_APP_ROLE: such an app gets a caller token for `<CALLER_API_URI>/.default`
    by client credentials at the emulator's token endpoint."""
    result = copy.deepcopy(dict(config))
    result["callerApi"] = {"appIdUri": CALLER_API_URI, "clientId": api_client_id}
    apps = result["tenants"][0]["apps"]
    for caller in callers:
        if caller.app_id and caller.app_secret:
            apps.append(
                {
                    "clientId": caller.app_id,
                    "clientSecret": caller.app_secret,
                    "appRoles": [CALLER_APP_ROLE],
                }
            )
    return result


def caller_token_settings(api_client_id: str) -> dict[str, str]:
    """The service's settings for API keys and Entra caller tokens minted by the emulator's
    `callerApi` (either audience: its app ID URI for v1 tokens, its client id for v2)."""
    return {
        "CALLER_AUTH": "both",
        "CALLER_TOKEN_AUDIENCE": f"{CALLER_API_URI},{api_client_id}",
    }
