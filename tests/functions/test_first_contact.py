"""Onboarding through the registered functions against what real Entra does on first contact.

Each test pins a behaviour of Entra the stand-in once hid (issue: first contact with a real tenant);
emulator/FIDELITY.md names the source of each.
"""

from __future__ import annotations

import asyncio

import pytest

from emulator.launcher import StandIn
from tests.emulator.directory import GRAPH_APP_ID
from tests.functions.conftest import NORTHWIND, Api, body_of

INTEGRATION = "m365-defender"


async def put_until_settled(api: Api, tenant: str, integration: str, attempts: int = 40) -> list[int]:
    """PUT as the vendor's backend does: again after each 202's Retry-After (capped for the test)."""
    statuses = []
    for _ in range(attempts):
        response = await api.put(tenant, integration)
        statuses.append(response.status_code)
        if response.status_code != 202:
            return statuses
        await asyncio.sleep(min(float(response.headers.get("Retry-After", "1")), 0.2))
    return statuses


async def test_a_second_put_succeeds_though_the_service_does_not_own_the_service_principal(api: Api) -> None:
    tenant = api.stand_in.home_tenant_id
    assert (await api.put(tenant, INTEGRATION)).status_code == 201
    app = api.apps()[0]
    sp = next(s for s in api.stand_in.state()["tenants"][tenant]["servicePrincipals"] if s["appId"] == app["appId"])
    assert sp.get("owners", []) == []  # Entra gives a new service principal no owners

    again = await api.put(tenant, INTEGRATION)
    assert again.status_code == 200, body_of(again)
    assert body_of(again)["servicePrincipalId"] == sp["id"]


async def test_first_onboarding_rides_out_not_a_valid_reference_update(api: Api, stand_in: StandIn) -> None:
    # Long enough that the grants meet both of Graph's answers for a principal still replicating.
    stand_in.set_faults(servicePrincipal=1500)
    statuses = await put_until_settled(api, stand_in.home_tenant_id, INTEGRATION)
    assert statuses[-1] in (200, 201), statuses
    state = body_of(await api.get(stand_in.home_tenant_id, INTEGRATION))
    assert all(p["granted"] for p in state["permissions"]) and state["drift"] == []


async def test_onboarding_again_after_an_offboarding_without_purge_makes_a_new_app(api: Api) -> None:
    tenant = api.stand_in.home_tenant_id
    first = body_of(await api.put(tenant, INTEGRATION))
    offboarded = await api.call(
        "offboard_integration",
        "DELETE",
        f"tenants/{tenant}/integrations/{INTEGRATION}",
        {"tenantId": tenant, "integration": INTEGRATION},
    )
    assert body_of(offboarded)["application"] == "deleted"
    deleted = api.stand_in.state()["tenants"][tenant]["deletedApplications"]
    assert first["application"]["objectId"] in deleted

    # Entra keeps the deleted app's uniqueName for 30 days: the PUT purges it, then creates anew.
    statuses = await put_until_settled(api, tenant, INTEGRATION)
    assert statuses[-1] == 201 or statuses[-1] == 200, statuses
    again = body_of(await api.get(tenant, INTEGRATION))
    assert again["application"]["objectId"] != first["application"]["objectId"]
    assert again["drift"] == [] and again["credential"]["verified"]
    deleted = api.stand_in.state()["tenants"][tenant]["deletedApplications"]
    assert first["application"]["objectId"] not in deleted


async def test_a_customer_tenant_that_consented_without_application_read_all_is_asked_again(
    vendor: tuple[Api, str, str], stand_in: StandIn
) -> None:
    api, provisioner, _ = vendor
    # The consent an earlier version asked for: granting would answer 403 in every such tenant.
    tenant = stand_in.admin("POST", "/tenants", {"displayName": "Old consent", "resourceApps": ["graph"]})["id"]
    stand_in.admin(
        "POST",
        f"/tenants/{tenant}/consent",
        {
            "appId": provisioner,
            "roles": {GRAPH_APP_ID: ["Application.ReadWrite.OwnedBy", "AppRoleAssignment.ReadWrite.All"]},
        },
    )
    refused = await api.put(tenant, INTEGRATION)
    assert refused.status_code == 403
    problem = body_of(refused)
    assert problem["type"].endswith("/consent-required")
    assert problem["missingRoles"] == ["Application.Read.All"]
    assert f"client_id={provisioner}" in problem["consentUrl"]


@pytest.mark.parametrize("tenant", [NORTHWIND])
async def test_a_customer_tenant_onboards_with_the_documented_least_privilege(
    vendor: tuple[Api, str, str], tenant: str
) -> None:
    api, _, _ = vendor
    statuses = await put_until_settled(api, tenant, INTEGRATION)
    assert statuses[-1] in (200, 201), statuses
