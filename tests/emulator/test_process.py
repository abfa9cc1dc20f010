"""The emulator as a process: its ready file, TLS, start-up errors, stop, other clouds."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography import x509

from tests.support.contract import validator
from tests.support.emulator import (
    EmulatorHandle,
    EmulatorSetup,
    default_config,
    start_emulator,
)

pytestmark = pytest.mark.emulator


def test_ready_file_describes_the_listening_emulator(emulator: EmulatorHandle) -> None:
    ready = json.loads((emulator.state_dir / "emulator.json").read_text())

    assert ready["port"] == emulator.port > 0
    assert ready["baseUrl"] == ready["authorityHost"] == f"https://127.0.0.1:{emulator.port}"
    assert ready["caBundle"] == str(emulator.state_dir / "ca.pem")
    assert Path(ready["caBundle"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert ready["pid"] == emulator.process.pid


def test_the_server_certificate_names_every_loopback_address(emulator: EmulatorHandle) -> None:
    pem = ssl.get_server_certificate(("127.0.0.1", emulator.port))
    names = x509.load_pem_x509_certificate(pem.encode()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    listed = {str(v) for v in names.value.get_values_for_type(x509.IPAddress)}
    listed |= set(names.value.get_values_for_type(x509.DNSName))

    assert listed >= {"127.0.0.1", "::1", "localhost"}
    with emulator.session() as http:  # and it verifies by host name too
        assert http.get(f"https://localhost:{emulator.port}/_emulator/health", timeout=5).ok


def test_a_silent_tcp_client_does_not_block_others(emulator: EmulatorHandle) -> None:
    # A port probe that never starts TLS must not stall the accept loop.
    with socket.create_connection(("127.0.0.1", emulator.port)):
        with emulator.session() as http:
            assert http.get(f"{emulator.base_url}/_emulator/health", timeout=5).ok


def test_untrusted_clients_are_refused_by_tls(emulator: EmulatorHandle) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{emulator.base_url}/_emulator/health", verify=True, timeout=5)


def test_every_request_is_logged_without_secrets(
    emulator: EmulatorHandle, setup: EmulatorSetup
) -> None:
    token = emulator.get_token(setup.tenant_id, setup.client_id, setup.client_secret)

    log = emulator.log()
    assert f"POST /{setup.tenant_id}/oauth2/v2.0/token -> 200" in log
    assert setup.client_secret not in log and token not in log


def test_sigterm_stops_it_cleanly(tmp_path: Path) -> None:
    handle = start_emulator(tmp_path, default_config(tmp_path).config)
    ready = handle.state_dir / "emulator.json"
    assert ready.exists()

    handle.process.send_signal(signal.SIGTERM)

    assert handle.process.wait(10) == 0
    assert not ready.exists()
    assert "stopping" in handle.log()


def test_an_invalid_config_fails_start_up_with_every_problem(tmp_path: Path) -> None:
    config = {
        "tenants": [{"apps": [{"clientSecret": 5}], "users": [{"id": "u", "accesPolicy": 1}]}]
    }

    with pytest.raises(RuntimeError, match="exited with 2") as failure:
        start_emulator(tmp_path, config)

    message = str(failure.value)
    assert "tenants[0].id is required" in message
    assert "tenants[0].apps[0].clientId is required" in message
    assert "tenants[0].apps[0].clientSecret must be a string" in message
    assert "tenants[0].users[0] has an unknown key 'accesPolicy'" in message


@pytest.fixture(scope="module")
def gcc_high(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An emulator playing GCC High's Graph, where every GUID is a granted user."""
    directory = tmp_path_factory.mktemp("gcc-high")
    setup = default_config(directory, any_user=True, global_access_policy=True)
    with start_emulator(directory, setup.config, graph_audience="https://graph.microsoft.us") as e:
        yield e, setup


def test_a_national_cloud_uses_its_own_audience(gcc_high: Any) -> None:
    emulator, setup = gcc_high
    with pytest.raises(requests.HTTPError, match="400"):
        emulator.get_token(setup.tenant_id, setup.client_id, setup.client_secret,
                           scope="https://graph.microsoft.com/.default")  # fmt: skip
    token = emulator.get_token(setup.tenant_id, setup.client_id, setup.client_secret)
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == (
        "https://graph.microsoft.us"
    )

    with emulator.session() as http:
        meeting = http.post(
            f"{emulator.base_url}/v1.0/users/{uuid.uuid4()}/onlineMeetings/createOrGet",
            json={"externalId": "gcc"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        discovery = http.get(
            f"{emulator.authority_host}/{setup.tenant_id}/v2.0/.well-known/openid-configuration",
            timeout=10,
        ).json()

    assert meeting.status_code == 201  # anyUser + globalAccessPolicy
    validator("onlineMeeting").validate(meeting.json())
    assert meeting.json()["joinWebUrl"].startswith("https://gov.teams.microsoft.us/l/meetup-join/")
    assert meeting.json()["@odata.context"].startswith("https://graph.microsoft.us/v1.0/")
    assert discovery["msgraph_host"] == "graph.microsoft.us"
    assert discovery["cloud_instance_name"] == "microsoftonline.us"


def test_any_user_still_means_a_guid(gcc_high: Any) -> None:
    emulator, setup = gcc_high
    token = emulator.get_token(setup.tenant_id, setup.client_id, setup.client_secret)
    with emulator.session() as http:
        response = http.post(
            f"{emulator.base_url}/v1.0/users/someone@contoso.example/onlineMeetings/createOrGet",
            json={"externalId": "gcc"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )

    assert response.status_code == 404
    validator("errorBody").validate(response.json())


def test_a_token_from_another_cloud_is_401(gcc_high: Any, emulator: EmulatorHandle,
                                           setup: EmulatorSetup) -> None:  # fmt: skip
    us_emulator, us_setup = gcc_high
    global_token = emulator.get_token(setup.tenant_id, setup.client_id, setup.client_secret)
    with us_emulator.session() as http:
        response = http.post(
            f"{us_emulator.base_url}/v1.0/users/{uuid.uuid4()}/onlineMeetings/createOrGet",
            json={"externalId": "x"},
            headers={"Authorization": f"Bearer {global_token}"},
            timeout=10,
        )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
