"""Microsoft's own Graph SDK (msgraph-sdk with azure-identity) as a client of the emulator:
a CAE-capable client recovers from a revoked token through the claims challenge, as with
real Graph; a client without the capability gets Graph's plain 401, as before."""

from __future__ import annotations

import asyncio
import ssl
import uuid
from typing import Any

import httpx
import pytest
from azure.identity.aio import ClientSecretCredential
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.item.online_meetings.create_or_get.create_or_get_post_request_body import (  # noqa: E501
    CreateOrGetPostRequestBody,
)
from msgraph_core import GraphClientFactory

pytestmark = [
    pytest.mark.emulator,
    # The SDK's generated code uses its own and kiota's deprecated names; not ours to fix.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:kiota_abstractions"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:msgraph"),
]

SCOPES = ["https://graph.microsoft.com/.default"]


async def create_twice_around_a_revocation(emulator, setup, *, cae: bool) -> list[Any]:
    """createOrGet, revoke every token at the emulator, createOrGet again; the outcomes."""
    ca_bundle = str(emulator.ca_bundle)
    credential = ClientSecretCredential(
        setup.tenant_id,
        setup.client_id,
        setup.client_secret,
        authority=emulator.authority_host,
        disable_instance_discovery=True,  # the emulator is not a known Entra host
        connection_verify=ca_bundle,
    )
    outcomes: list[Any] = []
    trusting = ssl.create_default_context(cafile=ca_bundle)  # the emulator's CA, only
    # The SDK wraps the client's transport in its middleware, and closing the client does
    # not close the wrapped one; the emulator keeps connections alive, as Graph does, so
    # the transport is closed here, or its connection outlives the event loop.
    transport = httpx.AsyncHTTPTransport(verify=trusting)
    async with credential, transport, httpx.AsyncClient(transport=transport) as http:
        provider = AzureIdentityAuthenticationProvider(
            credential, scopes=SCOPES, allowed_hosts=["127.0.0.1"], is_cae_enabled=cae
        )
        adapter = GraphRequestAdapter(
            provider, GraphClientFactory.create_with_default_middleware(client=http)
        )
        adapter.base_url = f"{emulator.base_url}/v1.0"
        meetings = GraphServiceClient(request_adapter=adapter).users.by_user_id(
            setup.user_with_policy
        )
        for revoke_first in (False, True):
            if revoke_first:
                emulator.revoke_tokens()
            body = CreateOrGetPostRequestBody(external_id=str(uuid.uuid4()), subject="sdk")
            try:
                meeting = await meetings.online_meetings.create_or_get.post(body)
                outcomes.append(meeting.id if meeting else None)
            except ODataError as error:
                outcomes.append(error.response_status_code)
    return outcomes


def graph_statuses(emulator) -> list[int]:
    return [r["status"] for r in emulator.stats()["requests"] if r["operation"] == "createOrGet"]


def test_a_cae_capable_sdk_client_recovers_from_a_revoked_token(emulator, setup):
    first, second = asyncio.run(create_twice_around_a_revocation(emulator, setup, cae=True))
    assert isinstance(first, str) and isinstance(second, str)
    # Graph refused the revoked token once, with a claims challenge the SDK answered.
    assert graph_statuses(emulator) == [201, 401, 201]
    token_requests = emulator.stats()["tokenRequests"]
    assert len(token_requests) == 2
    assert all(request.get("claims") for request in token_requests)


def test_an_sdk_client_without_the_capability_gets_the_plain_401(emulator, setup):
    first, second = asyncio.run(create_twice_around_a_revocation(emulator, setup, cae=False))
    assert isinstance(first, str)
    assert second == 401
    assert graph_statuses(emulator) == [201, 401]
