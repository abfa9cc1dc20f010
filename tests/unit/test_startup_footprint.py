"""What a worker loads at startup: no library for a feature that is off (PyJWT and
cryptography only when caller tokens are accepted), and the OpenAPI document rendered when
first asked for, once (docs/operations.md, Memory and startup)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask

from service.openapi import ServedDocument, generate
from service.web.routes import register_api

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
TOKEN_LIBRARIES = ("jwt", "cryptography.hazmat.primitives.asymmetric.rsa")

# Builds the app as gunicorn's worker does, then prints which token libraries it loaded.
# Redis on port 1 refuses at once: the app starts degraded, which is all this needs.
CREATE_APP = f"""
import json, sys
from service.app import create_app
create_app()
print(json.dumps([name for name in {TOKEN_LIBRARIES!r} if name in sys.modules]))
"""

# A CallerTokens, as the wiring builds one when CALLER_AUTH is entra or both.
CALLER_TOKENS = f"""
import json, sys
import requests
from service.identity.caller_tokens import CallerTokens, SigningKeys
CallerTokens(
    keys=SigningKeys("https://login.example", requests.Session(), 1.0),
    authority_host="https://login.example",
    audiences=("api://service",),
    tenants=("tenant",),
    role="Caller",
)
print(json.dumps([name for name in {TOKEN_LIBRARIES!r} if name in sys.modules]))
"""


def loaded_by(code: str, env: dict[str, str]) -> list[str]:
    finished = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 0, finished.stderr
    found: list[str] = json.loads(finished.stdout.splitlines()[-1])
    return found


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clients = tmp_path / "clients.json"
    key = hashlib.sha256(b"k").hexdigest()
    clients.write_text(
        json.dumps({"clients": [{"id": "a", "keySha256": key, "organizers": ["*"]}]})
    )
    return {
        "AZURE_TENANT_ID": "11111111-2222-3333-4444-555555555555",
        "AZURE_CLIENT_ID": "66666666-7777-8888-9999-000000000000",
        "AZURE_CLIENT_SECRET": "s3cret-value",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "CLIENTS_FILE": str(clients),
        "CALLER_AUTH": "keys",
        "LOG_LEVEL": "CRITICAL",
    }


def test_an_api_key_service_loads_no_token_library(env: dict[str, str]) -> None:
    assert loaded_by(CREATE_APP, env) == []


def test_accepting_caller_tokens_loads_the_token_libraries_at_startup(
    env: dict[str, str],
) -> None:
    assert loaded_by(CALLER_TOKENS, env) == list(TOKEN_LIBRARIES)


def test_the_served_document_is_the_generated_one_rendered_once() -> None:
    served = ServedDocument(register_api(Flask("service")))
    first = served()
    assert first == generate()
    assert served() is first
