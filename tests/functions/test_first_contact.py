"""Onboarding through the registered functions against what real Entra does on first contact.

Each test pins a behaviour of Entra the stand-in once hid (issue: first contact with a real tenant);
emulator/FIDELITY.md names the source of each.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta

import pytest

from emulator.launcher import StandIn
from shared.domain.errors import UpstreamError
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


# --- the fields of an app management policy that narrow or switch off a restriction ---


@contextlib.contextmanager
def password_restrictions(stand_in: StandIn, *restrictions: Mapping[str, object]) -> Iterator[None]:
    """The home tenant's default app management policy with these password restrictions, for one test."""
    tenant = stand_in.home_tenant_id
    stand_in.admin(
        "PUT", f"/tenants/{tenant}/app-management-policy",
        {"isEnabled": True, "applicationRestrictions": {"passwordCredentials": list(restrictions)}},
    )  # fmt: skip
    try:
        yield
    finally:
        stand_in.admin("PUT", f"/tenants/{tenant}/app-management-policy", {"isEnabled": False})


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_a_disabled_password_addition_restriction_does_not_refuse_onboarding(api: Api) -> None:
    with password_restrictions(api.stand_in, {"restrictionType": "passwordAddition", "state": "disabled"}):
        response = await api.put(api.stand_in.home_tenant_id, INTEGRATION)
    assert response.status_code == 201, body_of(response)


async def test_a_restriction_enforced_from_a_later_date_does_not_refuse_onboarding_today(api: Api) -> None:
    later = _iso(datetime.now(UTC) + timedelta(days=30))
    restriction = {"restrictionType": "passwordAddition", "restrictForAppsCreatedAfterDateTime": later}
    with password_restrictions(api.stand_in, restriction):
        response = await api.put(api.stand_in.home_tenant_id, INTEGRATION)
    assert response.status_code == 201, body_of(response)


async def test_an_app_created_before_a_password_addition_restriction_still_rotates(api: Api) -> None:
    tenant = api.stand_in.home_tenant_id
    created = body_of(await api.put(tenant, INTEGRATION))
    # From now on new apps may not get secrets; Entra exempts the apps created before.
    since = _iso(datetime.now(UTC) + timedelta(seconds=1))
    await asyncio.sleep(1.1)
    with password_restrictions(
        api.stand_in, {"restrictionType": "passwordAddition", "restrictForAppsCreatedAfterDateTime": since}
    ):
        refused_for_new = await api.put(tenant, "sentinel")
        rotated = await api.call(
            "rotate_now", "POST", f"tenants/{tenant}/integrations/{INTEGRATION}/rotate",
            {"tenantId": tenant, "integration": INTEGRATION},
        )  # fmt: skip
    assert refused_for_new.status_code == 409
    assert body_of(refused_for_new)["type"].endswith("/secrets-forbidden-by-policy")
    assert rotated.status_code == 200, body_of(rotated)
    assert body_of(rotated)["action"] == "rotated"
    assert created["credential"]["keyId"] != body_of(await api.get(tenant, INTEGRATION))["credential"]["keyId"]


async def test_offboarding_and_onboarding_again_wait_out_key_vaults_background_delete_and_recover(
    api: Api, stand_in: StandIn
) -> None:
    tenant = stand_in.home_tenant_id
    assert (await api.put(tenant, INTEGRATION)).status_code == 201
    stand_in.set_faults(secretDeletion=600, secretRecovery=600)
    offboarded = await api.call(
        "offboard_integration", "DELETE", f"tenants/{tenant}/integrations/{INTEGRATION}",
        {"tenantId": tenant, "integration": INTEGRATION},
    )  # fmt: skip
    assert offboarded.status_code == 200 and set(body_of(offboarded)["secrets"].values()) == {"deleted"}

    # The three names are soft-deleted: writing them again means recovering each first.
    statuses = await put_until_settled(api, tenant, INTEGRATION)
    assert statuses[-1] in (200, 201), statuses
    state = body_of(await api.get(tenant, INTEGRATION))
    assert all(state["keyVaultReferences"].values()) and state["drift"] == []


async def test_a_deleted_app_is_found_by_reading_deleted_items_when_graph_refuses_the_filter(
    api: Api, stand_in: StandIn
) -> None:
    # Graph does not document $filter on uniqueName: if it answers 400, the deleted apps are read instead.
    tenant = stand_in.home_tenant_id
    first = body_of(await api.put(tenant, INTEGRATION))
    await api.call(
        "offboard_integration", "DELETE", f"tenants/{tenant}/integrations/{INTEGRATION}",
        {"tenantId": tenant, "integration": INTEGRATION},
    )  # fmt: skip
    refuse_filter = {
        "kind": "status", "service": "graph", "method": "GET", "path": "deletedItems", "status": 400, "count": 1,
    }  # fmt: skip
    stand_in.set_faults([refuse_filter])
    statuses = await put_until_settled(api, tenant, INTEGRATION)
    assert statuses[-1] in (200, 201), statuses
    assert stand_in.admin("GET", "/faults")["rules"][0]["fired"] == 1
    again = body_of(await api.get(tenant, INTEGRATION))
    assert again["application"]["objectId"] != first["application"]["objectId"]


async def test_a_grant_answered_with_an_unknown_400_is_settled_by_reading_the_grants_back(
    api: Api, stand_in: StandIn
) -> None:
    """No Microsoft page shows the 'already exists' text: a 400 whatever its message is checked, not trusted."""
    tenant = stand_in.home_tenant_id
    state = body_of(await api.put(tenant, INTEGRATION))
    directory = api.services.directory
    assert directory is not None
    graph_sp = await directory.resource_api(tenant, GRAPH_APP_ID)
    assert graph_sp is not None
    held = (graph_sp.object_id, graph_sp.roles_by_value["AuditLog.Read.All"])
    not_held = (graph_sp.object_id, graph_sp.roles_by_value["Mail.Read"])
    refuse_grants = {
        "kind": "status", "service": "graph", "method": "POST", "path": "appRoleAssignedTo", "status": 400,
    }  # fmt: skip

    stand_in.set_faults([refuse_grants])
    result = await directory.grant(tenant, state["servicePrincipalId"], [held])
    assert result.granted == (held[1],) and result.pending == ()

    with pytest.raises(UpstreamError) as refused:
        await directory.grant(tenant, state["servicePrincipalId"], [not_held])
    assert refused.value.upstream_status == 400
