"""The product in each Microsoft cloud: onboarding, rotation and offboarding end to end against a stand-in posing
as that cloud (its issuers, its audiences, the resource apps its tenants hold: emulator/clouds.py).

One stand-in per cloud for the module; each flow runs once per cloud. The public cloud is also what every other
function test runs against. The tokens the flows prove with are read back and must carry the cloud's audience
and issuer: a token for another cloud's audience is refused by that stand-in (tests/emulator/test_clouds.py).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientAssertionCredential, ClientSecretCredential, ManagedIdentityCredential

from emulator.launcher import StandIn, start_stand_in
from shared.domain.clouds import CLOUDS, Cloud
from tests.azurite import Azurite
from tests.functions.conftest import NORTHWIND, Api, app_environment, body_of, serving
from tests.functions.test_federated import GRAPH_APP_ID, M365_ROLES
from tests.functions.test_http_api import stored_secret
from tests.functions.test_sentinel_workspace import customer_admin_grants, new_workspace

# Issuers of the tokens each cloud's Entra signs (emulator/FIDELITY.md C1), read independently of the product.
V1_ISSUER = {
    "AzurePublicCloud": "https://sts.windows.net",
    "AzureUSGovernment": "https://sts.windows.net",
    "AzureUSGovernmentDoD": "https://sts.windows.net",
    "AzureChinaCloud": "https://sts.chinacloudapi.cn",
}
V2_ISSUER = {
    "AzurePublicCloud": "https://login.microsoftonline.com",
    "AzureUSGovernment": "https://login.microsoftonline.us",
    "AzureUSGovernmentDoD": "https://login.microsoftonline.us",
    "AzureChinaCloud": "https://login.partner.microsoftonline.cn",
}


@pytest.fixture(scope="module", params=sorted(CLOUDS))
def posing(request: pytest.FixtureRequest) -> Iterator[StandIn]:
    instance = start_stand_in("--cloud", request.param)
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
async def api(posing: StandIn, azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Api]:
    """The app set for the posed cloud (AZURE_CLOUD comes with the stand-in's settings), trusting its own identity
    as the vendor backend so the federated type is on."""
    app_environment(
        monkeypatch, posing, "c", azurite, CONNECTOR_TRUST_SUBJECT=str(posing.info["managed_identity_object_id"])
    )
    async with serving(posing) as served:
        yield served


def cloud_of(api: Api) -> Cloud:
    cloud = api.services.settings.cloud
    assert cloud.name == api.stand_in.info["cloud"]
    return cloud


def claims_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def secret_token(api: Api, tenant: str, client_id: str, secret: str, scope: str) -> dict[str, Any]:
    credential = ClientSecretCredential(
        tenant, client_id, secret, authority=api.stand_in.authority, disable_instance_discovery=True,
        connection_verify=api.stand_in.ca_bundle,
    )  # fmt: skip
    return claims_of(credential.get_token(scope).token)


async def route(api: Api, function: str, method: str, tenant: str, integration: str, tail: str = "") -> Any:
    response = await api.call(
        function, method, f"tenants/{tenant}/integrations/{integration}{tail}",
        {"tenantId": tenant, "integration": integration},
    )  # fmt: skip
    return response.status_code, body_of(response)


async def test_a_secret_registration_is_onboarded_rotated_and_offboarded(api: Api) -> None:
    cloud = cloud_of(api)
    tenant = api.stand_in.home_tenant_id
    created = await api.put(tenant, "m365-defender")
    assert created.status_code == 201, body_of(created)
    body = body_of(created)
    assert body["credential"]["verified"] and all(p["granted"] for p in body["permissions"])

    client_id = body["application"]["clientId"]
    claims = secret_token(api, tenant, client_id, stored_secret(api, tenant, "m365-defender"), cloud.graph_scope)
    assert claims["aud"] == cloud.graph and claims["iss"] == f"{V1_ISSUER[cloud.name]}/{tenant}/"
    assert set(M365_ROLES) <= set(claims["roles"])

    refused_elsewhere(api, tenant, client_id, stored_secret(api, tenant, "m365-defender"))

    status, rotated = await route(api, "rotate_now", "POST", tenant, "m365-defender", "/rotate")
    assert status == 200 and rotated["action"] == "rotated", rotated
    fresh = stored_secret(api, tenant, "m365-defender")
    assert set(M365_ROLES) <= set(secret_token(api, tenant, client_id, fresh, cloud.graph_scope)["roles"])

    status, offboarded = await route(api, "offboard_integration", "DELETE", tenant, "m365-defender")
    assert status == 200 and offboarded["application"] == "deleted", offboarded
    assert api.apps() == []


def refused_elsewhere(api: Api, tenant: str, client_id: str, secret: str) -> None:
    """Another cloud's Graph audience, asked of this cloud's Entra: refused at the token endpoint (its tenants hold
    no such resource: AADSTS500011), or, where the name resolves, the token is refused by this cloud's Graph (401
    InvalidAuthenticationToken): tokens are not interchangeable between Graph deployments."""
    own = cloud_of(api)
    for other in CLOUDS.values():
        if other.graph == own.graph:
            continue
        credential = ClientSecretCredential(
            tenant, client_id, secret, authority=api.stand_in.authority, disable_instance_discovery=True,
            connection_verify=api.stand_in.ca_bundle,
        )  # fmt: skip
        try:
            token = credential.get_token(other.graph_scope).token
        except ClientAuthenticationError as error:
            assert "AADSTS500011" in str(error), error
            continue
        answer = httpx.get(
            f"{api.stand_in.graph_url}/applications", headers={"Authorization": f"Bearer {token}"},
            verify=ssl.create_default_context(cafile=api.stand_in.ca_bundle),
        )  # fmt: skip
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "InvalidAuthenticationToken"


async def test_a_federated_registration_trusts_the_clouds_issuer_and_audience(api: Api) -> None:
    cloud = cloud_of(api)
    federated = json.dumps({"credentialType": "federated"}).encode()
    pending = body_of(await api.put(NORTHWIND, "m365-defender", federated))
    assert pending["outcome"] == "pending", pending
    assert pending["consentUrl"].startswith(f"{api.stand_in.authority}/{NORTHWIND}/adminconsent?client_id=")
    [connector] = api.apps()
    trusts = connector["federatedCredentials"]
    assert {t["issuer"] for t in trusts} == {f"{V2_ISSUER[cloud.name]}/{api.stand_in.home_tenant_id}/v2.0"}
    assert all(t["audiences"] == [cloud.federation_audience] for t in trusts)

    client_id = pending["application"]["clientId"]
    api.stand_in.admin(
        "POST", f"/tenants/{NORTHWIND}/consent", {"appId": client_id, "roles": {GRAPH_APP_ID: M365_ROLES}}
    )
    created = await api.put(NORTHWIND, "m365-defender", federated)
    assert created.status_code == 201 and body_of(created)["credential"]["verified"], body_of(created)

    # The vendor's backend, as README "Clouds" tells it to: its identity's token for this cloud's exchange audience.
    identity = ManagedIdentityCredential()
    backend = ClientAssertionCredential(
        NORTHWIND, client_id, lambda: identity.get_token(cloud.federation_scope).token,
        authority=api.stand_in.authority, disable_instance_discovery=True, connection_verify=api.stand_in.ca_bundle,
    )  # fmt: skip
    assert set(M365_ROLES) <= set(claims_of(backend.get_token(cloud.graph_scope).token)["roles"])
    for other in {c.federation_scope for c in CLOUDS.values()} - {cloud.federation_scope}:
        with pytest.raises(ClientAuthenticationError):  # the identity has no token for another cloud's exchange
            identity.get_token(other)

    status, offboarded = await route(api, "offboard_integration", "DELETE", NORTHWIND, "m365-defender")
    assert status == 200 and set(offboarded["secrets"].values()) == {"deleted"}, offboarded


# What each cloud offers, written out (not read from the catalog under test): README, "Clouds".
LACKS = {
    "AzurePublicCloud": ((), ()),
    "AzureUSGovernment": ((), ()),
    "AzureUSGovernmentDoD": ((), ()),
    "AzureChinaCloud": (("defender-endpoint", "sentinel"), ("defender-xdr", "cloud-apps", "live-response")),
}


async def test_what_a_cloud_lacks_is_a_400_that_names_the_cloud(api: Api) -> None:
    cloud = cloud_of(api)
    tenant = api.stand_in.home_tenant_id
    integrations, add_ons = LACKS[cloud.name]
    for integration in ("defender-endpoint", "sentinel"):
        response = await api.put(tenant, integration)
        body = body_of(response)
        if integration in integrations:
            assert response.status_code == 400 and body["type"].endswith("/not-in-this-cloud"), body
            assert cloud.name in body["detail"] and body["cloud"] == cloud.name
        else:
            assert response.status_code == 201 and body["credential"]["verified"], body
            await route(api, "offboard_integration", "DELETE", tenant, integration)
    for add_on in ("defender-xdr", "cloud-apps", "live-response", "revoke-sessions"):
        response = await api.put(tenant, "m365-defender", json.dumps({"addOns": [add_on]}).encode())
        body = body_of(response)
        if add_on in add_ons:
            assert response.status_code == 400 and body["type"].endswith("/not-in-this-cloud"), body
            assert body["field"] == "addOns"
        else:
            assert response.status_code in (200, 201) and body["credential"]["verified"], body
    await route(api, "offboard_integration", "DELETE", tenant, "m365-defender")
    listed = body_of(await api.call("list_integrations", "GET", "integrations"))["integrations"]
    assert not {i["id"] for i in listed} & set(integrations)
    assert not {a["id"] for i in listed for a in i["addOns"]} & set(add_ons)


async def test_a_sentinel_workspace_is_reached_through_the_clouds_resource_manager_and_log_analytics(
    api: Api,
) -> None:
    """The role assigned through Resource Manager and the proof by a query, each with the cloud's audience (a token
    for another cloud's is refused: FIDELITY.md C5)."""
    cloud = cloud_of(api)
    if "sentinel" in LACKS[cloud.name][0]:
        pytest.skip(f"Sentinel is not offered in {cloud.name} (the test above shows the 400)")
    tenant, workspace = api.stand_in.home_tenant_id, new_workspace(api)
    customer_admin_grants(api, workspace)
    response = await api.put(tenant, "sentinel", json.dumps({"workspace": {"resourceId": workspace["id"]}}).encode())
    state = body_of(response)
    assert response.status_code == 201 and state["workspace"]["assigned"] and state["workspace"]["proven"], state
    gone = await route(api, "offboard_integration", "DELETE", tenant, "sentinel")
    assert gone[0] == 200 and gone[1]["workspaceRole"] == "removed", gone
