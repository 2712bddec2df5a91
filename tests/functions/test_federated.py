"""The secretless credential type end to end: a connector app in the vendor's tenant, consented in a customer's,
proven with a real token through the federated exchange; nothing stored but Client ID and Tenant ID."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.identity import ClientAssertionCredential, ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from emulator.launcher import StandIn
from shared.domain.model import FederatedTrust
from tests.azurite import Azurite
from tests.functions.conftest import NORTHWIND, Api, app_environment, body_of, provisioner_app, serving

FEDERATED = json.dumps({"credentialType": "federated"}).encode()
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
M365_ROLES = [
    "AuditLog.Read.All", "SecurityAlert.Read.All", "SecurityIncident.Read.All", "ThreatHunting.Read.All",
    "User.Read.All", "Device.Read.All", "Group.Read.All", "IdentityRiskyUser.Read.All", "IdentityRiskEvent.Read.All",
    "Policy.Read.All",
]  # fmt: skip
EXCHANGE = "api://AzureADTokenExchange/.default"


@pytest.fixture
async def connectors(
    stand_in: StandIn, clean_faults: StandIn, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Api]:
    """Services whose connectors trust the vendor backend's managed identity (here the same identity)."""
    app_environment(
        monkeypatch, stand_in, "f", azurite, CONNECTOR_TRUST_SUBJECT=str(stand_in.info["managed_identity_object_id"])
    )
    async with serving(stand_in) as served:
        yield served


def home_apps(api: Api) -> list[dict[str, Any]]:
    return api.apps()


async def put(api: Api, tenant: str, integration: str, body: bytes = FEDERATED) -> tuple[int, dict[str, Any]]:
    response = await api.put(tenant, integration, body)
    return response.status_code, body_of(response)


def consent(api: Api, tenant: str, client_id: str, roles: list[str]) -> None:
    """What the customer's admin does at the consent URL: the connector's principal and its roles in their tenant."""
    api.stand_in.admin("POST", f"/tenants/{tenant}/consent", {"appId": client_id, "roles": {GRAPH_APP_ID: roles}})


def backend_token_roles(api: Api, tenant: str, client_id: str) -> set[str]:
    """How the vendor's backend gets a token for a customer tenant: its managed identity's token as the assertion."""
    identity = ManagedIdentityCredential()
    credential = ClientAssertionCredential(
        tenant, client_id, lambda: identity.get_token(EXCHANGE).token, authority=api.stand_in.authority,
        disable_instance_discovery=True, connection_verify=api.stand_in.ca_bundle,
    )  # fmt: skip
    token = credential.get_token("https://graph.microsoft.com/.default").token
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["tid"] == tenant
    return set(claims.get("roles") or [])


async def test_a_tenant_onboards_with_nothing_stored_but_ids_once_its_admin_consents(connectors: Api) -> None:
    api = connectors
    status, pending = await put(api, NORTHWIND, "m365-defender")
    assert status == 202, pending
    assert pending["outcome"] == "pending" and pending["consentUrl"].endswith(
        f"/{NORTHWIND}/adminconsent?client_id={pending['application']['clientId']}"
    )
    assert pending["credential"]["type"] == "federated" and pending["keyVaultReferences"]["clientId"] is None
    [connector] = home_apps(api)
    assert connector["signInAudience"] == "AzureADMultipleOrgs" and connector["passwordKeyIds"] == []
    assert connector["uniqueName"].endswith("-connector-m365-defender")

    client_id = pending["application"]["clientId"]
    consent(api, NORTHWIND, client_id, M365_ROLES)
    status, created = await put(api, NORTHWIND, "m365-defender")
    assert status == 201, created
    assert created["credential"] == {**created["credential"], "type": "federated", "verified": True, "keyId": None}
    assert created["keyVaultReferences"]["clientId"] and created["keyVaultReferences"]["clientSecret"] is None
    assert created["drift"] == [] and all(p["granted"] for p in created["permissions"])
    assert set(M365_ROLES) <= backend_token_roles(api, NORTHWIND, client_id)

    again = await api.put(NORTHWIND, "m365-defender")  # no body: keeps the federated type
    assert again.status_code == 200 and body_of(again)["outcome"] == "complete", body_of(again)
    read = body_of(await api.get(NORTHWIND, "m365-defender"))
    assert read["credential"]["type"] == "federated" and read["drift"] == []
    rotated = await api.call(
        "rotate_now", "POST", f"tenants/{NORTHWIND}/integrations/m365-defender/rotate",
        {"tenantId": NORTHWIND, "integration": "m365-defender"},
    )  # fmt: skip
    assert rotated.status_code == 200 and body_of(rotated)["action"] == "nothing-due"


async def test_a_consent_missing_a_permission_is_pending_and_reported_as_drift(connectors: Api) -> None:
    api = connectors
    _, pending = await put(api, NORTHWIND, "m365-defender")
    consent(api, NORTHWIND, pending["application"]["clientId"], ["AuditLog.Read.All"])  # one role of ten
    status, partial = await put(api, NORTHWIND, "m365-defender")
    assert status == 202 and "SecurityAlert.Read.All" in partial["pendingReason"], partial
    assert partial["keyVaultReferences"]["clientId"] is None, "nothing stored before every permission is consented"
    assert any(d.startswith("permission not granted") for d in partial["drift"])


async def test_a_federated_credential_someone_else_adds_to_the_connector_is_removed(connectors: Api) -> None:
    """A trust anyone else adds would let its issuer act as the connector in every customer tenant."""
    api = connectors
    await put(api, NORTHWIND, "m365-defender")
    [connector] = home_apps(api)
    home = api.stand_in.home_tenant_id
    directory = api.services.directory
    assert directory is not None
    intruder = FederatedTrust("ci-pipeline", "https://token.actions.githubusercontent.com", "repo:x/y:ref:main",
                              ("api://AzureADTokenExchange",))  # fmt: skip
    await directory.add_federated_trust(home, connector["id"], intruder)
    await put(api, NORTHWIND, "m365-defender")
    trusts = await directory.federated_trusts(home, connector["id"])
    assert all(t.issuer != intruder.issuer for t in trusts), trusts
    assert {t.name for t in trusts} == {"vendor-backend"}, "the backend is this service's identity here: one trust"


async def test_offboarding_a_federated_registration_removes_the_ids_and_says_what_the_admin_removes(
    connectors: Api,
) -> None:
    api = connectors
    _, pending = await put(api, NORTHWIND, "m365-defender")
    consent(api, NORTHWIND, pending["application"]["clientId"], M365_ROLES)
    await put(api, NORTHWIND, "m365-defender")
    response = await api.call(
        "offboard_integration", "DELETE", f"tenants/{NORTHWIND}/integrations/m365-defender",
        {"tenantId": NORTHWIND, "integration": "m365-defender"},
    )  # fmt: skip
    assert response.status_code == 200, body_of(response)
    result = body_of(response)
    assert (
        set(result["secrets"].values()) == {"deleted"}
        and pending["application"]["clientId"] in result["customerAction"]
    )
    vault = SecretClient(
        api.stand_in.vault_url, ManagedIdentityCredential(), verify_challenge_resource=False,
        connection_verify=api.stand_in.ca_bundle,
    )  # fmt: skip
    with pytest.raises(ResourceNotFoundError):
        vault.get_secret(next(iter(result["secrets"])))
    assert len(home_apps(api)) == 1, "the connector serves every tenant: it stays"


async def test_without_a_trusted_backend_identity_the_federated_type_is_a_400(
    stand_in: StandIn, clean_faults: StandIn, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_environment(monkeypatch, stand_in, "g", azurite)
    async with serving(stand_in) as api:
        status, problem = await put(api, NORTHWIND, "m365-defender")
    assert status == 400 and problem["field"] == "credentialType", problem


async def test_two_tenants_onboarding_at_once_share_one_connector_with_one_set_of_trusts(connectors: Api) -> None:
    """Every tenant's onboarding converges the same connector: one writer at a time, or both would add its
    federated credentials and one would fail on the name Graph keeps unique."""
    api = connectors
    second = api.stand_in.admin("POST", "/tenants", {"displayName": "Contoso Retail", "resourceApps": ["graph"]})["id"]
    # Reading the connector's federated credentials takes a while: without the lock both onboardings would
    # read none, then both add them.
    slow_read = {"kind": "latency", "service": "graph", "method": "GET", "path": "federatedIdentityCredentials$",
                 "latency_ms": 300}  # fmt: skip
    api.stand_in.set_faults([slow_read])
    try:
        answers = await asyncio.gather(put(api, NORTHWIND, "m365-defender"), put(api, second, "m365-defender"))
    finally:
        api.stand_in.clear_faults()
    assert [status for status, _ in answers] == [202, 202], answers
    [connector] = home_apps(api)
    assert {body["application"]["clientId"] for _, body in answers} == {connector["appId"]}
    directory = api.services.directory
    assert directory is not None
    trusts = await directory.federated_trusts(api.stand_in.home_tenant_id, connector["id"])
    assert [t.name for t in trusts] == ["vendor-backend"], trusts


async def test_an_onboarding_that_died_while_trusting_the_backend_is_finished_by_the_next_put(connectors: Api) -> None:
    """The connector was created but Graph failed adding its federated credential (a 500 after the SDK's retries):
    the PUT fails, and the next one finds the connector, adds the credential once, and goes on."""
    api = connectors
    failing_add = {"kind": "status", "service": "graph", "method": "POST", "path": "federatedIdentityCredentials$",
                   "status": 500, "count": 4}  # fmt: skip
    api.stand_in.set_faults([failing_add])
    try:
        failed = await api.put(NORTHWIND, "m365-defender", FEDERATED)
    finally:
        api.stand_in.clear_faults()
    assert failed.status_code >= 500, body_of(failed)
    [connector] = home_apps(api)
    status, pending = await put(api, NORTHWIND, "m365-defender")
    assert status == 202 and pending["application"]["clientId"] == connector["appId"], pending
    assert len(home_apps(api)) == 1
    directory = api.services.directory
    assert directory is not None
    trusts = await directory.federated_trusts(api.stand_in.home_tenant_id, connector["id"])
    assert [t.name for t in trusts] == ["vendor-backend"], trusts


async def test_a_deployment_that_onboards_customers_keeps_its_connectors_at_home_and_refuses_callers_there(
    stand_in: StandIn, clean_faults: StandIn, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Vendor-hosted mode (a provisioner app configured, ALLOW_HOME_TENANT unset): the home tenant is refused to
    callers, yet the connectors, this service's own apps there, are managed; and the customer's admin consents
    to the connector only (the provisioner app is never consented in this tenant: the type needs nothing of it)."""
    identity = str(stand_in.info["managed_identity_object_id"])
    app_environment(monkeypatch, stand_in, "h", azurite, CONNECTOR_TRUST_SUBJECT=identity)
    monkeypatch.setenv("PROVISIONER_CLIENT_ID", await provisioner_app(stand_in, identity))
    tenant = stand_in.admin("POST", "/tenants", {"displayName": "Fabrikam", "resourceApps": ["graph"]})["id"]
    async with serving(stand_in) as api:
        assert not api.services.settings.allow_home_tenant
        status, pending = await put(api, tenant, "m365-defender")
        assert status == 202, pending
        [connector] = home_apps(api)
        consent(api, tenant, connector["appId"], M365_ROLES)
        status, created = await put(api, tenant, "m365-defender")
        assert status == 201 and created["drift"] == [], created
        assert set(M365_ROLES) <= backend_token_roles(api, tenant, connector["appId"])
        read = await api.get(tenant, "m365-defender")
        assert read.status_code == 200 and body_of(read)["drift"] == [], body_of(read)

        home = stand_in.home_tenant_id
        for body in (FEDERATED, b""):  # the home tenant stays opt-in, whatever the type
            status, refused = await put(api, home, "m365-defender", body)
            assert status == 403 and refused["type"].endswith("tenant-not-allowed"), refused
        assert [a["id"] for a in home_apps(api)] == [connector["id"]]
