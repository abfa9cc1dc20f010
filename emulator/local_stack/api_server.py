"""The service's API under gunicorn, started as the image starts it, and its environment
against the local stack."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from local_stack.emulator import EmulatorProcess

# The image's entry point (see the Dockerfile), run by this interpreter.
GUNICORN_COMMAND = (
    sys.executable,
    "-m",
    "gunicorn",
    "-c",
    "python:service.gunicorn_conf",
    "service.wsgi:app",
)


def start_gunicorn(env: Mapping[str, str], **popen: Any) -> subprocess.Popen[bytes]:
    """gunicorn with the service, configured by `env` (GUNICORN_BIND and the rest)."""
    return subprocess.Popen(list(GUNICORN_COMMAND), env=env, **popen)


def service_environment(
    emulator: EmulatorProcess,
    tenant_id: str,
    client_id: str,
    redis_url: str,
    clients_file: Path,
    **settings: str,
) -> dict[str, str]:
    """The service's environment against a local emulator (tenant `tenant_id`, app
    `client_id`) and Redis at `redis_url`, with the callers of `clients_file`; `settings`
    add the credential (AZURE_CLIENT_SECRET, ...) and any other setting."""
    return {
        "AZURE_TENANT_ID": tenant_id,
        "AZURE_CLIENT_ID": client_id,
        "AZURE_AUTHORITY_HOST": emulator.authority_host,
        "GRAPH_BASE_URL": emulator.base_url,
        "GRAPH_CA_BUNDLE": emulator.ca_bundle,
        "REDIS_URL": redis_url,
        "CLIENTS_FILE": str(clients_file),
        **settings,
    }
