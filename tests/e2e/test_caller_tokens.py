"""Callers' Entra ID access tokens (CALLER_AUTH=both), against the service under gunicorn and
the emulator's Entra ID, which mints the caller tokens and publishes (and rotates) the keys.

Each token case and its answer: valid v1 and v2 (200), expired, not yet valid, wrong aud,
wrong tenant, wrong signature, alg none, HMAC signed with the public key (401
invalid_token), missing role (403 insufficient-scope), unknown app (403
caller-not-registered), a rotated key (200 without a restart), the keys endpoint down with
cached keys (200) and without (503 signing-keys-unavailable, Retry-After).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from local_stack.api_server import service_environment
from local_stack.redis_server import RedisServer

from tests.support.emulator import EmulatorHandle, default_config, start_emulator
from tests.support.stack import Client, ServiceProcess

pytestmark = pytest.mark.e2e

API_URI = "api://meeting-provisioning"
ROLE = "Meetings.Provision"
PROBLEM = "urn:meeting-provisioning:problem:"


@dataclass
class EntraStack:
    root: Path
    emulator: EmulatorHandle
    service: ServiceProcess
    env: dict[str, str]
    tenant_id: str
    api_client_id: str
    app_id: str
    app_secret: str
    key: str
    organizer: str = str(uuid.uuid4())

    def token(self, version: int = 2, **body: Any) -> str:
        return self.emulator.caller_token(
            tenantId=body.pop("tenantId", self.tenant_id),
            appId=body.pop("appId", self.app_id),
            version=version,
            **body,
        )

    def call(self, credential: str, service: ServiceProcess | None = None) -> requests.Response:
        return Client((service or self.service).url, credential).usage(self.organizer)


@pytest.fixture(scope="module")
def entra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EntraStack]:
    root = tmp_path_factory.mktemp("entra")
    setup = default_config(root, any_user=True, global_access_policy=True)
    api_client_id, app_id, app_secret = str(uuid.uuid4()), str(uuid.uuid4()), secrets.token_hex(16)
    config = dict(setup.config)
    config["callerApi"] = {"appIdUri": API_URI, "clientId": api_client_id}
    config["tenants"][0]["apps"].append(
        {"clientId": app_id, "clientSecret": app_secret, "appRoles": [ROLE]}
    )
    key = secrets.token_urlsafe(32)
    clients = root / "clients.json"
    clients.write_text(
        json.dumps(
            {
                "clients": [
                    {"id": "booking-azure", "appId": app_id, "organizers": ["*"]},
                    {
                        "id": "booking-keyed",
                        "keySha256": hashlib.sha256(key.encode()).hexdigest(),
                        "organizers": ["*"],
                    },
                ]
            }
        )
    )
    redis_server = RedisServer(root / "redis").start()
    try:
        with start_emulator(root, config) as emulator:
            env = service_environment(
                emulator,
                setup.tenant_id,
                setup.client_id,
                redis_server.url,
                clients,
                AZURE_CLIENT_SECRET=setup.client_secret,
                CALLER_AUTH="both",
                CALLER_TOKEN_AUDIENCE=f"{API_URI},{api_client_id}",
                LOG_LEVEL="INFO",
            )
            service = ServiceProcess(root / "service", env).start()
            try:
                yield EntraStack(
                    root, emulator, service, env, setup.tenant_id, api_client_id, app_id,
                    app_secret, key,
                )  # fmt: skip
            finally:
                service.stop()
    finally:
        redis_server.stop()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_of(token: str) -> dict[str, Any]:
    found: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return found


def assert_invalid_token(response: requests.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["type"] == PROBLEM + "unauthenticated"
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge and 'error_description="' in challenge


def test_valid_v1_and_v2_tokens_and_an_api_key_are_accepted(entra: EntraStack) -> None:
    v1, v2 = entra.token(version=1), entra.token(version=2)
    assert claims_of(v1)["iss"] == f"https://sts.windows.net/{entra.tenant_id}/"
    assert claims_of(v1)["aud"] == API_URI and claims_of(v1)["appid"] == entra.app_id
    assert claims_of(v2)["iss"].endswith(f"/{entra.tenant_id}/v2.0")
    assert claims_of(v2)["aud"] == entra.api_client_id and claims_of(v2)["azp"] == entra.app_id
    for credential in (v1, v2, entra.key):
        response = entra.call(credential)
        assert response.status_code == 200, response.text


def test_a_token_from_the_token_endpoint_works_with_client_credentials(entra: EntraStack) -> None:
    answer = requests.post(
        f"{entra.emulator.authority_host}/{entra.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": entra.app_id,
            "client_secret": entra.app_secret,
            "scope": f"{API_URI}/.default",
        },
        verify=entra.emulator.ca_bundle,
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    assert claims_of(token)["roles"] == [ROLE]
    assert entra.call(token).status_code == 200


def test_a_rotated_signing_key_is_picked_up_without_a_restart(entra: EntraStack) -> None:
    assert entra.call(entra.token()).status_code == 200  # the old keys are cached
    new_kid = entra.emulator.rotate_keys()
    token = entra.token()
    assert jwt.get_unverified_header(token)["kid"] == new_kid
    response = entra.call(token)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "case, body",
    [
        ("expired", {"claims": {"exp": "$now-3600", "iat": "$now-7200", "nbf": "$now-7200"}}),
        ("not yet valid", {"claims": {"nbf": "$now+600", "iat": "$now"}}),
        ("wrong aud", {"audience": "api://some-other-service"}),
        ("wrong tenant", {"tenantId": str(uuid.uuid4())}),
        ("wrong issuer", {"claims": {"iss": "https://sts.windows.net/attacker/"}}),
        ("delegated", {"claims": {"idtyp": "user", "scp": "Meetings.Read"}}),
    ],
)
def test_bad_claims_are_401_invalid_token(entra: EntraStack, case: str, body: dict) -> None:
    now = int(time.time())
    claims = {
        name: now + int(value[4:] or 0)
        if isinstance(value, str) and value.startswith("$now")
        else value
        for name, value in body.pop("claims", {}).items()
    }
    token = entra.token(claims=claims, **body)
    assert_invalid_token(entra.call(token))


def relative(value: Any, now: int) -> Any:
    """ "$now-3600" as a time; any other value as it is."""
    if isinstance(value, str) and value.startswith("$now"):
        return now + int(value[4:] or 0)
    return value


def test_a_wrong_signature_is_401(entra: EntraStack) -> None:
    kid = entra.emulator.signing_key()["kid"]
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims_of(entra.token()), forger, algorithm="RS256", headers={"kid": kid})
    assert_invalid_token(entra.call(token))
    # A genuine token with one byte of its signature changed, too.
    genuine = entra.token()
    tampered = genuine[:-4] + ("AAAA" if genuine[-4:] != "AAAA" else "BBBB")
    assert_invalid_token(entra.call(tampered))


def test_alg_none_is_401(entra: EntraStack) -> None:
    kid = entra.emulator.signing_key()["kid"]
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    payload = b64(json.dumps(claims_of(entra.token())).encode())
    assert_invalid_token(entra.call(f"{header}.{payload}."))


def test_hmac_signed_with_the_public_key_is_401(entra: EntraStack) -> None:
    published = entra.emulator.signing_key()
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": published["kid"]}).encode())
    payload = b64(json.dumps(claims_of(entra.token())).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(published["publicKeyPem"].encode(), signing_input, "sha256").digest()
    assert_invalid_token(entra.call(f"{header}.{payload}.{b64(signature)}"))


def test_a_token_without_the_app_role_is_403_insufficient_scope(entra: EntraStack) -> None:
    response = entra.call(entra.token(roles=["Meetings.Read"]))
    assert response.status_code == 403, response.text
    assert response.json()["type"] == PROBLEM + "insufficient-scope"
    assert response.json()["requiredRole"] == ROLE
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


def test_an_app_not_in_the_clients_file_is_403(entra: EntraStack) -> None:
    response = entra.call(entra.token(appId=str(uuid.uuid4())))
    assert response.status_code == 403, response.text
    assert response.json()["type"] == PROBLEM + "caller-not-registered"


def test_keys_endpoint_down_cached_keys_serve_and_without_them_503(entra: EntraStack) -> None:
    token = entra.token()
    assert entra.call(token).status_code == 200  # keys cached by now
    entra.emulator.add_fault(target="keys", status=503)
    entra.emulator.add_fault(target="discovery", status=503)
    try:
        assert entra.call(token).status_code == 200
        fresh = ServiceProcess(entra.root / "fresh-service", entra.env).start()
        try:
            response = entra.call(token, fresh)
            assert response.status_code == 503, response.text
            assert response.json()["type"] == PROBLEM + "signing-keys-unavailable"
            assert int(response.headers["Retry-After"]) >= 1
            # API keys still work meanwhile.
            assert entra.call(entra.key, fresh).status_code == 200
        finally:
            fresh.stop()
    finally:
        entra.emulator.clear_faults()


def test_no_token_is_logged(entra: EntraStack) -> None:
    token = entra.token(roles=[])
    entra.call(token)
    signature = token.rsplit(".", 1)[1]
    assert signature not in entra.service.log()
