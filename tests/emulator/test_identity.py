"""The emulated Entra ID, driven by real MSAL (as the service uses it) and by raw HTTP."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
import msal
import pytest

from service.foundation.pinned_session import PinnedSession
from tests.support.emulator import (
    SESSION_TIMEOUT,
    EmulatorHandle,
    EmulatorSetup,
    default_config,
    make_certificate_credential,
    make_federated_issuer,
    start_emulator,
)
from tests.support.graph_client import msal_app

pytestmark = pytest.mark.emulator

GRAPH_SCOPE = ["https://graph.microsoft.com/.default"]


class RecordingSession(PinnedSession):
    """Remembers the form bodies MSAL posts, to see which assertion it built."""

    def __init__(self, ca_bundle: str) -> None:
        super().__init__(Path(ca_bundle), SESSION_TIMEOUT)
        self.posted: list[dict[str, Any]] = []

    def post(self, url: Any, data: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        self.posted.append(dict(data or {}))
        return super().post(url, data=data, **kwargs)


@pytest.mark.parametrize("kind", ["secret", "certificate", "federated"])
def test_msal_gets_a_graph_token_with_each_credential_kind(
    emulator: EmulatorHandle, setup: EmulatorSetup, make_msal: Any, kind: str
) -> None:
    result = make_msal(setup.msal_credential(kind)).acquire_token_for_client(GRAPH_SCOPE)

    assert result.get("token_type") == "Bearer", result
    assert result["expires_in"] == 3600
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://graph.microsoft.com"
    assert claims["iss"] == f"https://sts.windows.net/{setup.tenant_id}/"
    assert claims["tid"] == setup.tenant_id
    assert claims["appid"] == setup.client_id
    assert claims["roles"] == ["OnlineMeetings.ReadWrite.All"]
    assert claims["exp"] - claims["iat"] == 3600 and claims["nbf"] <= time.time()
    assert jwt.get_unverified_header(result["access_token"])["alg"] == "RS256"
    [recorded] = emulator.stats()["tokenRequests"]
    assert recorded == {
        "tenantId": setup.tenant_id,
        "clientId": setup.client_id,
        "credentialKind": kind,
        "scope": "https://graph.microsoft.com/.default",
        "status": 200,
    }


@pytest.mark.parametrize(
    ("credential_keys", "alg", "thumbprint_header"),
    [
        (("private_key", "public_certificate"), "PS256", "x5t#S256"),
        (("private_key", "thumbprint"), "RS256", "x5t"),
    ],
)
def test_certificate_assertions_msal_builds_are_accepted(
    emulator: EmulatorHandle,
    setup: EmulatorSetup,
    credential_keys: tuple[str, str],
    alg: str,
    thumbprint_header: str,
) -> None:
    import msal
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_pem_x509_certificate(setup.certificate_pem.encode())
    available = {
        "private_key": setup.private_key_pem,
        "public_certificate": setup.certificate_pem,
        "thumbprint": cert.fingerprint(hashes.SHA1()).hex(),
    }
    http = RecordingSession(emulator.ca_bundle)
    app = msal.ConfidentialClientApplication(
        setup.client_id,
        authority=f"{emulator.authority_host}/{setup.tenant_id}",
        client_credential={key: available[key] for key in credential_keys},
        instance_discovery=False,
        http_client=http,
    )

    result = app.acquire_token_for_client(GRAPH_SCOPE)

    assert "access_token" in result, result
    [form] = http.posted
    header = jwt.get_unverified_header(form["client_assertion"])
    assert header["alg"] == alg and thumbprint_header in header
    claims = jwt.decode(form["client_assertion"], options={"verify_signature": False})
    assert claims["aud"] == f"{emulator.authority_host}/{setup.tenant_id}/oauth2/v2.0/token"
    assert claims["iss"] == claims["sub"] == setup.client_id


def test_wrong_secret_is_invalid_client(
    emulator: EmulatorHandle, make_msal: Any, setup: EmulatorSetup
) -> None:
    result = make_msal("not-the-secret").acquire_token_for_client(GRAPH_SCOPE)

    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]
    assert result["error_description"].startswith("AADSTS7000215: Invalid client secret")
    assert emulator.stats()["tokenRequests"][0]["status"] == 401


def test_unknown_app_is_unauthorized_client(make_msal: Any, setup: EmulatorSetup) -> None:
    result = make_msal(setup.client_secret, client_id=setup.unknown_user).acquire_token_for_client(
        GRAPH_SCOPE
    )

    assert result["error"] == "unauthorized_client"
    assert result["error_codes"] == [700016]


@pytest.mark.parametrize(
    ("scope", "code"),
    [("https://graph.microsoft.us/.default", 70011), ("User.Read", 1002012)],
)
def test_a_scope_other_than_graph_default_is_invalid_scope(
    make_msal: Any, setup: EmulatorSetup, scope: str, code: int
) -> None:
    result = make_msal(setup.client_secret).acquire_token_for_client([scope])

    assert result["error"] == "invalid_scope"
    assert result["error_codes"] == [code]


def test_unknown_tenant_fails_discovery_like_entra(
    emulator: EmulatorHandle, setup: EmulatorSetup
) -> None:
    import msal

    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        msal.ConfidentialClientApplication(
            setup.client_id,
            authority=f"{emulator.authority_host}/{setup.unknown_user}",
            client_credential=setup.client_secret,
            instance_discovery=False,
            http_client=emulator.session(),
        )
    with emulator.session() as http:
        token = http.post(
            f"{emulator.authority_host}/{setup.unknown_user}/oauth2/v2.0/token",
            data={"grant_type": "client_credentials", "client_id": setup.client_id},
            timeout=10,
        )
    assert token.status_code == 400
    assert token.json()["error_codes"] == [90002]
    assert emulator.stats()["calls"]["discovery"] == {"400": 1}


def test_an_unregistered_certificate_is_rejected(
    tmp_path: Any, make_msal: Any, setup: EmulatorSetup
) -> None:
    other_path, other_cert = make_certificate_credential(tmp_path)
    key = other_path.read_text().split("-----BEGIN CERTIFICATE-----")[0]

    result = make_msal(
        {"private_key": key, "public_certificate": other_cert}
    ).acquire_token_for_client(GRAPH_SCOPE)

    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [700027]


@pytest.mark.parametrize(
    ("make_assertion", "code"),
    [
        (lambda s: s.federated_issuer.token("system:serviceaccount:other:sa"), 70021),
        (lambda s: s.federated_issuer.token(s.federated_subject, audience="api://else"), 700212),
        (lambda s: s.federated_issuer.token(s.federated_subject, lifetime=-60), 700024),
    ],
    ids=["wrong-subject", "wrong-audience", "expired"],
)
def test_bad_federated_assertions_are_rejected(
    make_msal: Any, setup: EmulatorSetup, make_assertion: Any, code: int
) -> None:
    result = make_msal(
        {"client_assertion": lambda: make_assertion(setup)}
    ).acquire_token_for_client(GRAPH_SCOPE)

    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [code]


def test_a_federated_assertion_signed_by_another_key_is_rejected(
    tmp_path: Any, make_msal: Any, setup: EmulatorSetup
) -> None:
    impostor = make_federated_issuer(tmp_path)
    impostor.issuer = setup.federated_issuer.issuer  # same issuer name, different key
    credential = {"client_assertion": lambda: impostor.token(setup.federated_subject)}

    result = make_msal(credential).acquire_token_for_client(GRAPH_SCOPE)

    assert result["error_codes"] == [700027]


def test_federated_token_file_helper_writes_a_usable_assertion(
    tmp_path: Any, make_msal: Any, setup: EmulatorSetup
) -> None:
    token_file = tmp_path / "token"
    setup.federated_issuer.write_token(token_file, setup.federated_subject)

    result = make_msal(
        {"client_assertion": lambda: token_file.read_text()}
    ).acquire_token_for_client(GRAPH_SCOPE)

    assert "access_token" in result, result


def test_client_secret_basic_is_accepted(emulator: EmulatorHandle, setup: EmulatorSetup) -> None:
    basic = base64.b64encode(f"{setup.client_id}:{setup.client_secret}".encode()).decode()
    with emulator.session() as http:
        response = http.post(
            f"{emulator.authority_host}/{setup.tenant_id}/oauth2/v2.0/token",
            data={"grant_type": "client_credentials", "scope": GRAPH_SCOPE[0]},
            headers={"Authorization": f"Basic {basic}"},
            timeout=10,
        )

    assert response.status_code == 200, response.text
    assert emulator.stats()["tokenRequests"][0]["credentialKind"] == "secret"


def test_entra_errors_have_entra_shape_and_echo_the_correlation_id(
    emulator: EmulatorHandle, setup: EmulatorSetup
) -> None:
    with emulator.session() as http:
        response = http.post(
            f"{emulator.authority_host}/{setup.tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": setup.client_id,
                "client_secret": "wrong",
                "scope": GRAPH_SCOPE[0],
            },
            headers={"client-request-id": "c0ffee00-0000-4000-8000-000000000001"},
            timeout=10,
        )

    body = response.json()
    assert response.status_code == 401
    assert set(body) >= {
        "error", "error_description", "error_codes", "timestamp", "trace_id", "correlation_id",
    }  # fmt: skip
    assert body["correlation_id"] == "c0ffee00-0000-4000-8000-000000000001"
    assert body["trace_id"] == response.headers["request-id"]
    assert "Trace ID:" in body["error_description"]


def test_discovery_document_points_at_the_emulator(
    emulator: EmulatorHandle, setup: EmulatorSetup
) -> None:
    with emulator.session() as http:
        doc = http.get(
            f"{emulator.authority_host}/{setup.tenant_id}/v2.0/.well-known/openid-configuration",
            timeout=10,
        ).json()
        keys = http.get(doc["jwks_uri"], timeout=10).json()

    base = f"{emulator.authority_host}/{setup.tenant_id}"
    assert doc["token_endpoint"] == f"{base}/oauth2/v2.0/token"
    assert doc["authorization_endpoint"] == f"{base}/oauth2/v2.0/authorize"
    assert doc["issuer"] == f"{base}/v2.0"
    assert doc["msgraph_host"] == "graph.microsoft.com"
    assert keys["keys"][0]["kty"] == "RSA"


def test_stats_never_hold_secrets_assertions_or_tokens(
    emulator: EmulatorHandle, setup: EmulatorSetup, make_msal: Any
) -> None:
    issued = [
        make_msal(setup.msal_credential(kind)).acquire_token_for_client(GRAPH_SCOPE)
        for kind in ("secret", "certificate", "federated")
    ]

    dumped = json.dumps(emulator.stats()) + emulator.log()
    assert setup.client_secret not in dumped
    assert "eyJ" not in dumped  # no JWT of any kind: assertion or access token
    assert all(r["access_token"][:40] not in dumped for r in issued)


# --- refresh_in (proactive refresh) ---------------------------------------------------------


def token_response(emulator: EmulatorHandle, setup: EmulatorSetup) -> dict[str, Any]:
    with emulator.session() as http:
        response = http.post(
            f"{emulator.authority_host}/{setup.tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": setup.client_id,
                "client_secret": setup.client_secret,
                "scope": GRAPH_SCOPE[0],
            },
            timeout=10,
        )
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def test_no_refresh_in_unless_configured(emulator: EmulatorHandle, setup: EmulatorSetup) -> None:
    answer = token_response(emulator, setup)

    assert "refresh_in" not in answer
    assert answer["expires_in"] == answer["ext_expires_in"] == 3600


def test_msal_refreshes_after_refresh_in_and_keeps_the_cached_token_on_most_failures(
    tmp_path: Any,
) -> None:
    """MSAL 1.x: after ``refresh_in`` a cached token is "aging"; MSAL then asks Entra.

    An error answer (4xx, e.g. 429) or a transport error (reset) gives back the cached,
    still valid token. A 5xx does not: MSAL raises MsalServiceError although it holds a
    valid token (msal/application.py only falls back for RequestException and error
    dicts; oauth2cli raises for status >= 500).
    """
    setup = default_config(tmp_path, refresh_in_seconds=1, token_lifetime_seconds=3600)
    with start_emulator(tmp_path, setup.config) as emulator:
        assert token_response(emulator, setup)["refresh_in"] == 1
        app = msal_app(emulator, setup.tenant_id, setup.client_id, setup.client_secret)
        first = app.acquire_token_for_client(GRAPH_SCOPE)
        cached = app.acquire_token_for_client(GRAPH_SCOPE)
        time.sleep(2.1)  # MSAL stores refresh_on in whole seconds and compares strictly
        # retryAfter "0": otherwise MSAL replays the error for 5 s without asking again.
        emulator.add_fault(target="token", status=429, retryAfter="0", count=1)
        after_429 = app.acquire_token_for_client(GRAPH_SCOPE)
        emulator.add_fault(target="token", reset=True, count=1)
        after_reset = app.acquire_token_for_client(GRAPH_SCOPE)
        emulator.add_fault(target="token", status=503, retryAfter="0", count=1)
        with pytest.raises(msal.exceptions.MsalServiceError, match="HTTP Error: 503"):
            app.acquire_token_for_client(GRAPH_SCOPE)
        refreshed = app.acquire_token_for_client(GRAPH_SCOPE)
        statuses = [r["status"] for r in emulator.stats()["tokenRequests"]]

    assert first["token_source"] == "identity_provider" and "refresh_on" in first
    assert (cached["token_source"], cached["access_token"]) == ("cache", first["access_token"])
    assert (after_429["token_source"], after_429["access_token"]) == (
        "cache",
        first["access_token"],
    )
    assert after_reset["access_token"] == first["access_token"]
    assert refreshed["token_source"] == "identity_provider"
    assert refreshed["access_token"] != first["access_token"]
    assert statuses == [200, 200, 429, "reset", 503, 200]


def test_refresh_in_must_be_below_the_lifetime(tmp_path: Any) -> None:
    setup = default_config(tmp_path, refresh_in_seconds=3600, token_lifetime_seconds=3600)

    with pytest.raises(RuntimeError, match="refreshInSeconds must be a positive integer below"):
        start_emulator(tmp_path, setup.config)
