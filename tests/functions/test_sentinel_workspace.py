"""Sentinel workspace access through the real handlers: the role checked before anything is created, assigned to
the app, proven by a Log Analytics query as the app, stored beside the credentials, and removed on offboarding."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from emulator.launcher import StandIn
from shared.domain.catalog import load_catalog
from shared.usecases.workspace_access import CONDITION, RBAC_ADMINISTRATOR
from tests.azurite import Azurite
from tests.functions.conftest import Api, app_environment, body_of, serving

SUBSCRIPTION = str(uuid.uuid5(uuid.NAMESPACE_URL, "tests/sentinel-subscription"))
SENTINEL_ROLE_IDS = ", ".join(r.role_definition_id for r in load_catalog().require("sentinel").workspace_roles)
READER_ONLY = "8d289c81-5878-46d4-8554-54e1e3d8b5cb"


def new_workspace(api: Api) -> dict[str, Any]:
    unique = uuid.uuid4().hex[:8]
    workspace: dict[str, Any] = api.stand_in.admin(
        "POST", "/workspaces",
        {"tenantId": api.stand_in.home_tenant_id, "subscriptionId": SUBSCRIPTION, "resourceGroup": f"rg-{unique}",
         "name": f"law-{unique}"},
    )  # fmt: skip
    return workspace


def customer_admin_grants(api: Api, workspace: dict[str, Any], roles: str = SENTINEL_ROLE_IDS) -> None:
    """What docs/sentinel.md asks of the customer's admin: RBAC Administrator on the workspace, with the condition."""
    api.stand_in.admin("POST", "/roleAssignments", {
        "scope": workspace["id"], "roleDefinitionId": RBAC_ADMINISTRATOR,
        "principalId": str(api.stand_in.info["managed_identity_object_id"]), "principalType": "ServicePrincipal",
        "condition": CONDITION.format(roles=roles),
    })  # fmt: skip


def assignments_on(api: Api, workspace: dict[str, Any]) -> list[dict[str, Any]]:
    listed = api.stand_in.admin("GET", f"/roleAssignments?scope={workspace['id']}")["value"]
    return [a for a in listed if not a["properties"]["roleDefinitionId"].endswith(RBAC_ADMINISTRATOR)]


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


async def test_without_the_customers_grant_nothing_is_created_and_the_problem_says_what_to_grant(api: Api) -> None:
    workspace = new_workspace(api)
    response = await api.put(api.stand_in.home_tenant_id, "sentinel", body(workspace={"resourceId": workspace["id"]}))
    problem = body_of(response)
    assert response.status_code == 403 and problem["type"].endswith("workspace-access-missing"), problem
    command = problem["grantCommand"]
    assert workspace["id"] in command and RBAC_ADMINISTRATOR in command and "ServicePrincipal" in command
    assert str(api.stand_in.info["managed_identity_object_id"]) in command
    assert api.apps() == [] and assignments_on(api, workspace) == []
    # Reading the workspace is not enough: without the right to assign roles there, nothing is created either.
    reader = "73c42c96-874c-492b-b04d-ab87d138a893"  # Log Analytics Reader
    api.stand_in.admin("POST", "/roleAssignments", {
        "scope": workspace["id"], "roleDefinitionId": reader, "principalType": "ServicePrincipal",
        "principalId": str(api.stand_in.info["managed_identity_object_id"]),
    })  # fmt: skip
    response = await api.put(api.stand_in.home_tenant_id, "sentinel", body(workspace={"resourceId": workspace["id"]}))
    assert response.status_code == 403 and body_of(response)["type"].endswith("workspace-access-missing")
    assert api.apps() == []


async def test_a_condition_that_leaves_out_the_chosen_role_is_refused_before_anything_is_created(api: Api) -> None:
    """ARM checks a condition only when it assigns, after the app exists; read beforehand, the common misfit (a grant
    written for the reader role alone, the PUT asking for responder) creates nothing."""
    tenant, workspace = api.stand_in.home_tenant_id, new_workspace(api)
    customer_admin_grants(api, workspace, roles=READER_ONLY)
    response = await api.put(tenant, "sentinel", body(workspace={"resourceId": workspace["id"], "role": "responder"}))
    problem = body_of(response)
    assert response.status_code == 403 and problem["type"].endswith("workspace-access-missing"), problem
    assert problem["role"] == "responder" and SENTINEL_ROLE_IDS in problem["grantCommand"]
    assert api.apps() == [] and assignments_on(api, workspace) == []

    allowed = await api.put(tenant, "sentinel", body(workspace={"resourceId": workspace["id"]}))  # reader: allowed
    assert allowed.status_code == 201, body_of(allowed)


async def test_a_sentinel_onboarding_ends_with_a_proven_query_and_offboarding_removes_the_role(api: Api) -> None:
    tenant, workspace = api.stand_in.home_tenant_id, new_workspace(api)
    customer_admin_grants(api, workspace)
    response = await api.put(tenant, "sentinel", body(workspace={"resourceId": workspace["id"]}))
    assert response.status_code == 201, body_of(response)
    state = body_of(response)
    assert state["workspace"] == {
        **state["workspace"], "resourceId": workspace["id"], "name": workspace["name"],
        "workspaceId": workspace["customerId"], "role": "reader", "assigned": True, "proven": True,
    }  # fmt: skip
    [assignment] = assignments_on(api, workspace)
    assert assignment["properties"]["principalId"] == state["servicePrincipalId"]
    assert assignment["properties"]["roleDefinitionId"].endswith(READER_ONLY)
    assert assignment["id"] == state["workspace"]["roleAssignmentId"]
    vault = SecretClient(api.stand_in.vault_url, ManagedIdentityCredential(), verify_challenge_resource=False,
                         connection_verify=api.stand_in.ca_bundle)  # fmt: skip
    reference = state["keyVaultReferences"]["workspaceId"]
    name = reference.split("/secrets/")[1].rstrip(")/")
    assert vault.get_secret(name).value == workspace["customerId"]

    again = await api.put(tenant, "sentinel")  # the registration's own workspace, converged, nothing new
    assert again.status_code == 200 and body_of(again)["outcome"] == "complete", body_of(again)
    assert len(assignments_on(api, workspace)) == 1
    read = body_of(await api.get(tenant, "sentinel"))
    assert read["workspace"]["assigned"] is True and read["drift"] == [], read

    params = {"tenantId": tenant, "integration": "sentinel"}
    gone = await api.call("offboard_integration", "DELETE", f"tenants/{tenant}/integrations/sentinel", params)
    assert gone.status_code == 200 and body_of(gone)["workspaceRole"] == "removed", body_of(gone)
    assert assignments_on(api, workspace) == [] and api.apps() == []


async def test_the_responder_role_is_given_only_when_named(api: Api) -> None:
    tenant, workspace = api.stand_in.home_tenant_id, new_workspace(api)
    customer_admin_grants(api, workspace)
    named = await api.put(tenant, "sentinel", body(workspace={"resourceId": workspace["id"], "role": "responder"}))
    assert named.status_code == 201, body_of(named)
    [assignment] = assignments_on(api, workspace)
    assert assignment["properties"]["roleDefinitionId"].endswith("3e150937-b8fe-4cfb-8069-0eaf05ecd056")
    listed = body_of(await api.call("list_integrations", "GET", "integrations"))["integrations"]
    roles = {r["id"]: r for r in {i["id"]: i for i in listed}["sentinel"]["workspaceRoles"]}
    assert roles["reader"]["highImpact"] is None and roles["responder"]["highImpact"]["reason"]


async def test_a_workspace_is_validated_and_only_the_sentinel_connection_takes_one(api: Api) -> None:
    tenant = api.stand_in.home_tenant_id
    for integration, request in (
        ("sentinel", body(workspace={"resourceId": "/subscriptions/x/resourceGroups/y"})),
        ("sentinel", body(workspace={"resourceId": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/"
                                                   "Microsoft.KeyVault/vaults/kv1"})),
        ("sentinel", body(workspace={"resourceId": new_workspace(api)["id"], "role": "owner"})),
        ("sentinel", body(workspace="law-1")),
        ("m365-defender", body(workspace={"resourceId": new_workspace(api)["id"]})),
    ):  # fmt: skip
        response = await api.put(tenant, integration, request)
        assert response.status_code == 400 and body_of(response)["field"] == "workspace", body_of(response)
    assert api.apps() == []


async def test_a_role_still_propagating_answers_202_and_the_same_put_finishes_once_a_query_is_answered(
    stand_in: StandIn, clean_faults: StandIn, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Azure RBAC takes minutes to apply a new assignment: until a query as the app is answered, the PUT answers 202
    with Retry-After (nothing is stored for the workspace yet); the same PUT then proves it and stores it."""
    app_environment(monkeypatch, stand_in, "w", azurite, VERIFY_TIMEOUT_SECONDS="1")
    async with serving(stand_in) as api:
        tenant, workspace = stand_in.home_tenant_id, new_workspace(api)
        customer_admin_grants(api, workspace)
        stand_in.set_faults(roleAssignment=2500)  # longer than VERIFY_TIMEOUT_SECONDS
        try:
            pending = await api.put(tenant, "sentinel", body(workspace={"resourceId": workspace["id"]}))
            assert pending.status_code == 202 and pending.headers.get("Retry-After"), body_of(pending)
            assert "Sentinel role" in body_of(pending)["pendingReason"]
            assert len(assignments_on(api, workspace)) == 1, "assigned once; only its effect is awaited"
            await asyncio.sleep(2.6)  # the stand-in's lag runs on its own monotonic clock
            done = await api.put(tenant, "sentinel", body(workspace={"resourceId": workspace["id"]}))
        finally:
            stand_in.clear_faults()
        assert done.status_code == 200 and body_of(done)["workspace"]["proven"] is True, body_of(done)
        assert len(assignments_on(api, workspace)) == 1


def test_a_workspace_through_the_cli(
    clean_faults: StandIn, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from shared.entrypoints.cli import main

    for name, value in clean_faults.app_settings().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NAME_PREFIX", f"cli{uuid.uuid4().hex[:10]}")
    workspace: dict[str, Any] = clean_faults.admin(
        "POST", "/workspaces",
        {"tenantId": clean_faults.home_tenant_id, "subscriptionId": SUBSCRIPTION, "resourceGroup": "rg-cli",
         "name": f"law-{uuid.uuid4().hex[:8]}"},
    )  # fmt: skip
    clean_faults.admin("POST", "/roleAssignments", {
        "scope": workspace["id"], "roleDefinitionId": RBAC_ADMINISTRATOR,
        "principalId": str(clean_faults.info["managed_identity_object_id"]), "principalType": "ServicePrincipal",
        "condition": CONDITION.format(roles=SENTINEL_ROLE_IDS),
    })  # fmt: skip
    target = ["--tenant", clean_faults.home_tenant_id, "--integration", "sentinel"]
    assert main(["onboard", *target, "--workspace-role", "reader"]) == 2  # without --workspace: usage
    capsys.readouterr()
    assert main(["onboard", *target, "--workspace", workspace["id"]]) == 0
    out = capsys.readouterr().out
    assert f"{workspace['name']} ({workspace['customerId']}): reader, assigned, proven by a query as the app" in out


async def test_moving_to_another_workspace_or_role_removes_the_previous_assignment(api: Api) -> None:
    tenant, first, second = api.stand_in.home_tenant_id, new_workspace(api), new_workspace(api)
    for workspace in (first, second):
        customer_admin_grants(api, workspace)
    assert (await api.put(tenant, "sentinel", body(workspace={"resourceId": first["id"]}))).status_code == 201
    responder = await api.put(tenant, "sentinel", body(workspace={"resourceId": first["id"], "role": "responder"}))
    assert responder.status_code == 200 and body_of(responder)["workspace"]["role"] == "responder"
    [role] = assignments_on(api, first)
    assert role["properties"]["roleDefinitionId"].endswith("3e150937-b8fe-4cfb-8069-0eaf05ecd056")
    moved = await api.put(tenant, "sentinel", body(workspace={"resourceId": second["id"]}))
    assert moved.status_code == 200 and body_of(moved)["workspace"]["resourceId"] == second["id"], body_of(moved)
    assert assignments_on(api, first) == [] and len(assignments_on(api, second)) == 1
