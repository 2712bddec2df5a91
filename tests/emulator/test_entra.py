"""Entra ID's token side in the stand-in, through the real azure-identity and MSAL clients."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import jwt
import msal
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientAssertionCredential, ManagedIdentityCredential
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential
from msgraph.generated.applications.item.remove_password.remove_password_post_request_body import (
    RemovePasswordPostRequestBody,
)
from msgraph.graph_service_client import GraphServiceClient

from emulator.launcher import StandIn
from tests.emulator.directory import (
    GRAPH_APP_ID,
    add_password,
    federated_app,
    grant,
    upsert_app,
    upsert_service_principal,
)
from tests.emulator.sdk import GRAPH_SCOPE, graph_client, secret_credential

FABRIKAM = "b7d9f1e3-2a4c-4d6e-8f10-1a2b3c4d5e6f"  # seeded without Defender for Endpoint
NORTHWIND = "a3c5e2d1-7b4f-4e8a-9c61-0f2e3d4b5a69"
TOKEN_EXCHANGE_SCOPE = "api://AzureADTokenExchange/.default"


def claims(token: str) -> dict[str, object]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def aadsts(error: BaseException) -> str:
    return str(error)


def test_managed_identity_token_carries_the_granted_graph_roles(stand_in: StandIn) -> None:
    token = ManagedIdentityCredential().get_token(GRAPH_SCOPE)
    body = claims(token.token)
    assert body["aud"] == "https://graph.microsoft.com"
    assert body["tid"] == stand_in.home_tenant_id
    assert body["oid"] == stand_in.info["managed_identity_object_id"]
    assert body["roles"] == [
        "AppRoleAssignment.ReadWrite.All",
        "Application.Read.All",
        "Application.ReadWrite.OwnedBy",
        "Policy.Read.All",
    ]
    assert token.expires_on > time.time() + 3000


async def test_async_managed_identity_credential_works(stand_in: StandIn) -> None:
    credential = AsyncManagedIdentityCredential()
    try:
        token = await credential.get_token("https://vault.azure.net/.default")
    finally:
        await credential.close()
    assert claims(token.token)["aud"] == "https://vault.azure.net"


@pytest.fixture
def wrong_identity_header(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("IDENTITY_HEADER", "not-the-header")
    yield


@pytest.mark.usefixtures("wrong_identity_header")
def test_managed_identity_refuses_a_wrong_identity_header() -> None:
    with pytest.raises(ClientAuthenticationError):
        ManagedIdentityCredential().get_token(GRAPH_SCOPE)


def test_managed_identity_refuses_an_unassigned_client_id() -> None:
    with pytest.raises(ClientAuthenticationError) as raised:
        ManagedIdentityCredential(client_id="00000000-0000-0000-0000-000000000001").get_token(GRAPH_SCOPE)
    assert "No MSI found" in str(raised.value)


async def test_secret_minted_through_graph_gets_a_token_with_granted_roles_until_removed(
    graph: GraphServiceClient, stand_in: StandIn, unique: str
) -> None:
    app = await upsert_app(graph, f"tok-{unique}")
    sp = await upsert_service_principal(graph, str(app.app_id))
    await grant(graph, str(sp.id), GRAPH_APP_ID, "SecurityAlert.Read.All")
    await grant(graph, str(sp.id), GRAPH_APP_ID, "User.Read.All")
    secret = await add_password(graph, str(app.id))

    credential = secret_credential(stand_in, stand_in.home_tenant_id, str(app.app_id), str(secret.secret_text))
    body = claims(credential.get_token(GRAPH_SCOPE).token)
    assert body["roles"] == ["SecurityAlert.Read.All", "User.Read.All"]
    assert body["appid"] == app.app_id and body["oid"] == sp.id and body["tid"] == stand_in.home_tenant_id

    await graph.applications.by_application_id(str(app.id)).remove_password.post(
        RemovePasswordPostRequestBody(key_id=secret.key_id)
    )
    fresh = secret_credential(stand_in, stand_in.home_tenant_id, str(app.app_id), str(secret.secret_text))
    with pytest.raises(ClientAuthenticationError) as raised:
        fresh.get_token(GRAPH_SCOPE)
    assert "AADSTS7000215" in aadsts(raised.value)


async def test_wrong_secret_is_invalid_client(graph: GraphServiceClient, stand_in: StandIn, unique: str) -> None:
    app = await upsert_app(graph, f"wrong-{unique}")
    await upsert_service_principal(graph, str(app.app_id))
    await add_password(graph, str(app.id))
    with pytest.raises(ClientAuthenticationError) as raised:
        secret_credential(stand_in, stand_in.home_tenant_id, str(app.app_id), "not-the-secret").get_token(GRAPH_SCOPE)
    assert "AADSTS7000215" in aadsts(raised.value)


async def test_expired_secret_is_refused_with_7000222(
    clock_stand_in: StandIn, monkeypatch: pytest.MonkeyPatch, unique: str
) -> None:
    stand_in = clock_stand_in  # its clock moves two years: not the shared stand-in's
    for name, value in stand_in.identity_env().items():
        monkeypatch.setenv(name, value)
    identity = AsyncManagedIdentityCredential()
    try:
        graph = graph_client(stand_in, identity)
        app = await upsert_app(graph, f"expired-{unique}")
        await upsert_service_principal(graph, str(app.app_id))
        secret = await add_password(graph, str(app.id))  # two years by default
    finally:
        await identity.close()
    stand_in.advance_clock(2 * 366 * 86400)
    with pytest.raises(ClientAuthenticationError) as raised:
        secret_credential(stand_in, stand_in.home_tenant_id, str(app.app_id), str(secret.secret_text)).get_token(
            GRAPH_SCOPE
        )
    assert "AADSTS7000222" in aadsts(raised.value)


def test_unknown_client_id_is_700016(stand_in: StandIn) -> None:
    credential = secret_credential(stand_in, stand_in.home_tenant_id, "00000000-0000-0000-0000-00000000abcd", "x")
    with pytest.raises(ClientAuthenticationError) as raised:
        credential.get_token(GRAPH_SCOPE)
    assert "AADSTS700016" in aadsts(raised.value)


async def test_single_tenant_app_is_unknown_in_another_tenant(
    graph: GraphServiceClient, stand_in: StandIn, unique: str
) -> None:
    app = await upsert_app(graph, f"single-{unique}")
    await upsert_service_principal(graph, str(app.app_id))
    secret = await add_password(graph, str(app.id))
    credential = secret_credential(stand_in, NORTHWIND, str(app.app_id), str(secret.secret_text))
    with pytest.raises(ClientAuthenticationError) as raised:
        credential.get_token(GRAPH_SCOPE)
    assert "AADSTS700016" in aadsts(raised.value)


async def test_multi_tenant_app_without_consent_is_7000229(
    graph: GraphServiceClient, stand_in: StandIn, unique: str
) -> None:
    app = await upsert_app(graph, f"multi-{unique}", sign_in_audience="AzureADMultipleOrgs")
    secret = await add_password(graph, str(app.id))
    credential = secret_credential(stand_in, NORTHWIND, str(app.app_id), str(secret.secret_text))
    with pytest.raises(ClientAuthenticationError) as raised:
        credential.get_token(GRAPH_SCOPE)
    assert "AADSTS7000229" in aadsts(raised.value)


async def test_resource_missing_in_tenant_is_500011(graph: GraphServiceClient, stand_in: StandIn, unique: str) -> None:
    app = await upsert_app(graph, f"nodefender-{unique}", sign_in_audience="AzureADMultipleOrgs")
    secret = await add_password(graph, str(app.app_id and app.id))
    stand_in.admin("POST", f"/tenants/{FABRIKAM}/consent", {"appId": app.app_id, "roles": {}})
    credential = secret_credential(stand_in, FABRIKAM, str(app.app_id), str(secret.secret_text))
    assert claims(credential.get_token(GRAPH_SCOPE).token)["tid"] == FABRIKAM
    with pytest.raises(ClientAuthenticationError) as raised:
        credential.get_token("https://api.securitycenter.microsoft.com/.default")
    assert "AADSTS500011" in aadsts(raised.value)


def msal_http(stand_in: StandIn) -> requests.Session:
    """A session that trusts the stand-in's CA. `verify=` alone loses to REQUESTS_CA_BUNDLE when
    that is set, because requests lets the environment override a session's verify."""
    session = requests.Session()
    session.trust_env = False
    session.verify = stand_in.ca_bundle
    return session


def test_client_credentials_need_a_default_scope(stand_in: StandIn) -> None:
    app = msal.ConfidentialClientApplication(
        "00000000-0000-0000-0000-00000000abcd",
        client_credential="x",
        authority=f"{stand_in.authority}/{stand_in.home_tenant_id}",
        instance_discovery=False,
        http_client=msal_http(stand_in),
    )
    result = app.acquire_token_for_client(scopes=["https://graph.microsoft.com/User.Read.All"])
    assert result["error"] == "invalid_scope"
    assert result["error_codes"] == [1002012]


def test_unknown_tenant_fails_discovery(stand_in: StandIn) -> None:
    with pytest.raises(ValueError, match="Unable to get authority configuration") as raised:
        msal.ConfidentialClientApplication(
            "00000000-0000-0000-0000-00000000abcd",
            client_credential="x",
            authority=f"{stand_in.authority}/00000000-0000-0000-0000-0000000000ff",
            instance_discovery=False,
            http_client=msal_http(stand_in),
        )
    # MSAL chains the discovery failure, which carries Entra's body.
    assert "AADSTS90002" in str(raised.value.__context__)


async def test_new_secret_is_refused_until_it_replicates(
    graph: GraphServiceClient, clean_faults: StandIn, unique: str
) -> None:
    stand_in = clean_faults
    app = await upsert_app(graph, f"lag-{unique}")
    await upsert_service_principal(graph, str(app.app_id))
    stand_in.set_faults(password=400)
    secret = await add_password(graph, str(app.id))
    started = time.monotonic()
    with pytest.raises(ClientAuthenticationError) as raised:
        secret_credential(stand_in, stand_in.home_tenant_id, str(app.app_id), str(secret.secret_text)).get_token(
            GRAPH_SCOPE
        )
    assert "AADSTS7000215" in aadsts(raised.value)
    # Ride out the lag the way a client must: retry until the token service has the secret.
    while True:
        try:
            secret_credential(stand_in, stand_in.home_tenant_id, str(app.app_id), str(secret.secret_text)).get_token(
                GRAPH_SCOPE
            )
            break
        except ClientAuthenticationError:
            assert time.monotonic() - started < 10, "the secret never replicated"
            await asyncio.sleep(0.05)
    assert time.monotonic() - started >= 0.4


def assertion_credential(stand_in: StandIn, tenant_id: str, client_id: str) -> ClientAssertionCredential:
    identity = ManagedIdentityCredential()
    return ClientAssertionCredential(
        tenant_id=tenant_id,
        client_id=client_id,
        func=lambda: identity.get_token(TOKEN_EXCHANGE_SCOPE).token,
        authority=stand_in.authority,
        disable_instance_discovery=True,
        connection_verify=stand_in.ca_bundle,
    )


async def test_federated_credential_reaches_a_consented_customer_tenant(
    graph: GraphServiceClient, stand_in: StandIn, unique: str
) -> None:
    app_id = await federated_app(graph, stand_in, unique, stand_in.info["managed_identity_object_id"])
    stand_in.admin(
        "POST",
        f"/tenants/{NORTHWIND}/consent",
        {
            "appId": app_id,
            "roles": {GRAPH_APP_ID: ["Application.ReadWrite.OwnedBy", "AppRoleAssignment.ReadWrite.All"]},
        },
    )
    body = claims(assertion_credential(stand_in, NORTHWIND, app_id).get_token(GRAPH_SCOPE).token)
    assert body["tid"] == NORTHWIND
    assert body["roles"] == ["AppRoleAssignment.ReadWrite.All", "Application.ReadWrite.OwnedBy"]

    # The same provisioner, not consented in Fabrikam, gets Entra's "missing service principal".
    with pytest.raises(ClientAuthenticationError) as raised:
        assertion_credential(stand_in, FABRIKAM, app_id).get_token(GRAPH_SCOPE)
    assert "AADSTS7000229" in aadsts(raised.value)


async def test_federated_credential_with_a_wrong_subject_is_70021(
    graph: GraphServiceClient, stand_in: StandIn, unique: str
) -> None:
    app_id = await federated_app(graph, stand_in, unique, "00000000-0000-0000-0000-000000000bad")
    stand_in.admin("POST", f"/tenants/{NORTHWIND}/consent", {"appId": app_id, "roles": {}})
    with pytest.raises(ClientAuthenticationError) as raised:
        assertion_credential(stand_in, NORTHWIND, app_id).get_token(GRAPH_SCOPE)
    assert "AADSTS70021" in aadsts(raised.value)
