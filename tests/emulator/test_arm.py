"""Azure Resource Manager in the stand-in: workspaces and delegated role assignments, through azure-core.

There is no azure-mgmt client in the venv on purpose: the product will call ARM with azure-core's
pipeline (bearer token policy, real ManagedIdentityCredential), and so do these tests. The caller is
the stand-in's managed identity; the customer's admin (the admin API) gives it Role Based Access
Control Administrator on a workspace, constrained by the documented delegation condition.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.core import AsyncPipelineClient
from azure.core.pipeline.policies import AsyncBearerTokenCredentialPolicy
from azure.core.pipeline.transport import AioHttpTransport
from azure.core.rest import AsyncHttpResponse, HttpRequest
from azure.identity.aio import ManagedIdentityCredential
from msgraph.graph_service_client import GraphServiceClient

from emulator.faults import service_of
from emulator.launcher import StandIn
from tests.emulator.directory import upsert_app, upsert_service_principal

ARM_SCOPE = "https://management.azure.com/.default"
API_VERSION = "2022-04-01"
# One subscription per tenant for the session's stand-in; each test makes its own workspace in it.
HOME_SUBSCRIPTION = str(uuid.uuid5(uuid.NAMESPACE_URL, "stand-in/home-subscription"))
CUSTOMER_SUBSCRIPTION = str(uuid.uuid5(uuid.NAMESPACE_URL, "stand-in/customer-subscription"))

OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
RBAC_ADMINISTRATOR = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"
SENTINEL_READER = "8d289c81-5878-46d4-8554-54e1e3d8b5cb"
SENTINEL_RESPONDER = "3e150937-b8fe-4cfb-8069-0eaf05ecd056"
LOG_ANALYTICS_READER = "73c42c96-874c-492b-b04d-ab87d138a893"
SENTINEL_ROLES = f"{{{SENTINEL_READER}, {SENTINEL_RESPONDER}}}"
# "Constrain roles and principal types", with the Sentinel roles and service principals
# (https://learn.microsoft.com/azure/role-based-access-control/delegate-role-assignments-examples).
DELEGATION = (
    "((!(ActionMatches{'Microsoft.Authorization/roleAssignments/write'})) OR "
    f"(@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {SENTINEL_ROLES} "
    "AND @Request[Microsoft.Authorization/roleAssignments:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase "
    "{'ServicePrincipal'})) AND ((!(ActionMatches{'Microsoft.Authorization/roleAssignments/delete'})) OR "
    f"(@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {SENTINEL_ROLES} "
    "AND @Resource[Microsoft.Authorization/roleAssignments:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase "
    "{'ServicePrincipal'}))"
)


def role_definition(guid: str, subscription: str = HOME_SUBSCRIPTION) -> str:
    return f"/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


def new_workspace(
    stand_in: StandIn, unique: str, tenant: str | None = None, subscription: str = HOME_SUBSCRIPTION
) -> Any:
    return stand_in.admin(
        "POST",
        "/workspaces",
        {
            "tenantId": tenant or stand_in.home_tenant_id,
            "subscriptionId": subscription,
            "resourceGroup": f"rg-{unique}",
            "name": f"law-{unique}",
        },
    )


def assign(stand_in: StandIn, scope: str, role: str, principal: str, condition: str | None = None) -> Any:
    """A role assignment made by the customer's admin, outside ARM."""
    body = {"scope": scope, "roleDefinitionId": role, "principalId": principal, "principalType": "ServicePrincipal"}
    if condition:
        body["condition"] = condition
    return stand_in.admin("POST", "/roleAssignments", body)


class Arm:
    """ARM through azure-core's async pipeline, as the product will call it."""

    def __init__(self, stand_in: StandIn, credential: ManagedIdentityCredential) -> None:
        policies = [AsyncBearerTokenCredentialPolicy(credential, ARM_SCOPE)]
        self.base = stand_in.vault_url
        self.client: AsyncPipelineClient[HttpRequest, AsyncHttpResponse] = AsyncPipelineClient(
            # The stand-in serves every service from one HTTPS base (the vault URL is that base).
            stand_in.vault_url,
            policies=policies,
            transport=AioHttpTransport(connection_verify=stand_in.ca_bundle),
        )

    async def call(self, method: str, path: str, body: Any = None, api_version: str = API_VERSION) -> AsyncHttpResponse:
        request = HttpRequest(method, self.base + path, params={"api-version": api_version}, json=body)
        return await self.client.send_request(request)  # the body is read (stream=False)

    async def put_assignment(
        self,
        scope: str,
        role: str,
        principal: str,
        name: str | None = None,
        principal_type: str | None = "ServicePrincipal",
    ) -> AsyncHttpResponse:
        props = {"roleDefinitionId": role_definition(role), "principalId": principal}
        if principal_type:
            props["principalType"] = principal_type
        path = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name or uuid.uuid4()}"
        return await self.call("PUT", path, {"properties": props})


def error_code(response: AsyncHttpResponse) -> str:
    return str(response.json()["error"]["code"])


@pytest.fixture
async def arm(stand_in: StandIn) -> AsyncIterator[Arm]:
    credential = ManagedIdentityCredential()
    try:
        yield Arm(stand_in, credential)
    finally:
        await credential.close()


@pytest.fixture
def me(stand_in: StandIn) -> str:
    return str(stand_in.info["managed_identity_object_id"])


@pytest.fixture
async def connector(graph: GraphServiceClient, unique: str) -> str:
    """A connector app's service principal in the home tenant, the principal the product assigns roles to."""
    app = await upsert_app(graph, f"connector-{unique}")
    return str((await upsert_service_principal(graph, str(app.app_id))).id)


async def test_workspace_read_needs_a_role_at_or_above_the_workspace(
    arm: Arm, stand_in: StandIn, me: str, unique: str
) -> None:
    workspace = new_workspace(stand_in, unique)
    denied = await arm.call("GET", workspace["id"])
    assert denied.status_code == 403 and error_code(denied) == "AuthorizationFailed"
    assert "Microsoft.OperationalInsights/workspaces/read" in denied.json()["error"]["message"]
    assert denied.headers["x-ms-request-id"] and denied.headers["x-ms-correlation-request-id"]

    resource_group = workspace["id"].split("/providers/")[0]
    assign(stand_in, resource_group, LOG_ANALYTICS_READER, me)  # inherited by the workspace below it
    allowed = await arm.call("GET", workspace["id"])
    assert allowed.status_code == 200
    body = allowed.json()
    assert body["id"] == workspace["id"] and body["name"] == workspace["name"]
    assert body["type"] == "Microsoft.OperationalInsights/workspaces" and body["location"]
    assert body["properties"]["customerId"] == workspace["customerId"]


async def test_missing_workspace_and_resource_group_answer_arms_not_found(
    arm: Arm, stand_in: StandIn, me: str, unique: str
) -> None:
    subscription = str(uuid.uuid5(uuid.NAMESPACE_URL, f"stand-in/{unique}"))  # its own: a role on all of it
    workspace = new_workspace(stand_in, unique, subscription=subscription)
    assign(stand_in, f"/subscriptions/{subscription}", LOG_ANALYTICS_READER, me)
    missing = await arm.call("GET", workspace["id"] + "-gone")
    assert missing.status_code == 404 and error_code(missing) == "ResourceNotFound"
    no_group = await arm.call("GET", workspace["id"].replace(f"rg-{unique}", f"rg-none-{unique}"))
    assert no_group.status_code == 404 and error_code(no_group) == "ResourceGroupNotFound"
    elsewhere = new_workspace(stand_in, f"x{unique}")["id"].replace(f"law-x{unique}", "law-gone")
    assert (await arm.call("GET", elsewhere)).status_code == 403  # no role there: ARM authorizes before it looks


async def test_a_token_from_another_tenant_is_refused(arm: Arm, stand_in: StandIn, unique: str) -> None:
    customer = stand_in.customer_tenant_ids[0]
    workspace = new_workspace(stand_in, unique, tenant=customer, subscription=CUSTOMER_SUBSCRIPTION)
    response = await arm.call("GET", workspace["id"])
    assert response.status_code == 401 and error_code(response) == "InvalidAuthenticationTokenTenant"


async def test_delegate_assigns_a_sentinel_role_and_the_repeat_is_idempotent(
    arm: Arm, stand_in: StandIn, me: str, connector: str, unique: str
) -> None:
    workspace = new_workspace(stand_in, unique)
    scope = workspace["id"]
    assign(stand_in, scope, RBAC_ADMINISTRATOR, me, condition=DELEGATION)
    name = str(uuid.uuid4())

    created = await arm.put_assignment(scope, SENTINEL_READER, connector, name=name)
    assert created.status_code == 201, created.text()
    body = created.json()
    assert body["id"] == f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"
    assert body["name"] == name and body["type"] == "Microsoft.Authorization/roleAssignments"
    props = body["properties"]
    assert props["roleDefinitionId"] == role_definition(SENTINEL_READER)
    assert (props["principalId"], props["principalType"], props["scope"]) == (connector, "ServicePrincipal", scope)
    assert created.headers["x-ms-correlation-request-id"]

    again = await arm.put_assignment(scope, SENTINEL_READER, connector, name=name)
    assert again.status_code in (200, 201) and again.json()["id"] == body["id"]
    fetched = await arm.call("GET", body["id"])
    assert fetched.status_code == 200 and fetched.json() == body
    listed = stand_in.admin("GET", f"/roleAssignments?scope={scope}")["value"]
    assert len(listed) == 2 and name in {a["name"] for a in listed}  # the delegation and the new one


async def test_the_same_role_under_another_name_is_a_conflict_naming_the_existing_one(
    arm: Arm, stand_in: StandIn, me: str, connector: str, unique: str
) -> None:
    scope = new_workspace(stand_in, unique)["id"]
    assign(stand_in, scope, RBAC_ADMINISTRATOR, me, condition=DELEGATION)
    first = await arm.put_assignment(scope, SENTINEL_RESPONDER, connector)
    assert first.status_code == 201
    second = await arm.put_assignment(scope, SENTINEL_RESPONDER, connector)
    assert second.status_code == 409 and error_code(second) == "RoleAssignmentExists"
    assert first.json()["name"].replace("-", "") in second.json()["error"]["message"]
    changed = await arm.put_assignment(scope, SENTINEL_READER, connector, name=first.json()["name"])
    assert changed.status_code == 400 and error_code(changed) == "RoleAssignmentUpdateNotPermitted"


@pytest.mark.parametrize(
    ("role", "principal_type"),
    [(OWNER, "ServicePrincipal"), (LOG_ANALYTICS_READER, "ServicePrincipal"), (SENTINEL_READER, "User")],
    ids=["owner", "role-not-in-the-condition", "user-principal-type"],
)
async def test_the_condition_refuses_what_it_does_not_allow(
    arm: Arm, stand_in: StandIn, me: str, connector: str, unique: str, role: str, principal_type: str
) -> None:
    scope = new_workspace(stand_in, unique)["id"]
    assign(stand_in, scope, RBAC_ADMINISTRATOR, me, condition=DELEGATION)
    refused = await arm.put_assignment(scope, role, connector, principal_type=principal_type)
    assert refused.status_code == 403 and error_code(refused) == "AuthorizationFailed"
    assert "ABAC condition not fulfilled" in refused.json()["error"]["message"]


async def test_without_any_delegation_a_write_is_plainly_unauthorized(
    arm: Arm, stand_in: StandIn, connector: str, unique: str
) -> None:
    scope = new_workspace(stand_in, unique)["id"]
    refused = await arm.put_assignment(scope, SENTINEL_READER, connector)
    assert refused.status_code == 403 and error_code(refused) == "AuthorizationFailed"
    assert "ABAC" not in refused.json()["error"]["message"]
    assert "Microsoft.Authorization/roleAssignments/write" in refused.json()["error"]["message"]


async def test_the_delegate_deletes_its_sentinel_role_but_not_another(
    arm: Arm, stand_in: StandIn, me: str, connector: str, unique: str
) -> None:
    scope = new_workspace(stand_in, unique)["id"]
    delegation = assign(stand_in, scope, RBAC_ADMINISTRATOR, me, condition=DELEGATION)
    owner = assign(stand_in, scope, OWNER, connector)
    refused = await arm.call("DELETE", owner["id"])
    assert refused.status_code == 403 and "ABAC condition not fulfilled" in refused.json()["error"]["message"]
    assert (await arm.call("DELETE", delegation["id"])).status_code == 403  # its own delegation is not a Sentinel role

    created = (await arm.put_assignment(scope, SENTINEL_READER, connector)).json()
    deleted = await arm.call("DELETE", created["id"])
    assert deleted.status_code == 200 and deleted.json()["id"] == created["id"]
    gone = await arm.call("GET", created["id"])
    assert gone.status_code == 404 and error_code(gone) == "RoleAssignmentNotFound"


async def test_deleting_an_absent_assignment_is_204(arm: Arm, stand_in: StandIn, me: str, unique: str) -> None:
    scope = new_workspace(stand_in, unique)["id"]
    assign(stand_in, scope, RBAC_ADMINISTRATOR, me)  # unconditioned
    response = await arm.call("DELETE", f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}")
    assert response.status_code == 204


async def test_an_unknown_principal_is_principal_not_found(arm: Arm, stand_in: StandIn, me: str, unique: str) -> None:
    scope = new_workspace(stand_in, unique)["id"]
    assign(stand_in, scope, RBAC_ADMINISTRATOR, me, condition=DELEGATION)
    stranger = str(uuid.uuid4())
    response = await arm.put_assignment(scope, SENTINEL_READER, stranger)
    assert response.status_code == 400 and error_code(response) == "PrincipalNotFound"
    assert stranger in response.json()["error"]["message"] and "principalType" in response.json()["error"]["message"]


async def test_a_principal_still_replicating_is_found_only_with_principal_type(
    arm: Arm, clean_faults: StandIn, graph: GraphServiceClient, me: str, unique: str
) -> None:
    stand_in = clean_faults
    scope = new_workspace(stand_in, unique)["id"]
    assign(stand_in, scope, RBAC_ADMINISTRATOR, me, condition=DELEGATION)
    stand_in.set_faults(servicePrincipal=60_000)
    app = await upsert_app(graph, f"fresh-{unique}")
    fresh = str((await upsert_service_principal(graph, str(app.app_id))).id)

    untyped = await arm.put_assignment(scope, SENTINEL_READER, fresh, principal_type=None)
    assert untyped.status_code == 403  # the condition needs PrincipalType ServicePrincipal
    assign(stand_in, scope, RBAC_ADMINISTRATOR, me)  # an unconditioned delegation, to reach the lookup
    untyped = await arm.put_assignment(scope, SENTINEL_READER, fresh, principal_type=None)
    assert untyped.status_code == 400 and error_code(untyped) == "PrincipalNotFound"
    typed = await arm.put_assignment(scope, SENTINEL_READER, fresh)
    assert typed.status_code == 201


async def test_arm_wants_an_api_version_and_a_token(arm: Arm, stand_in: StandIn, unique: str) -> None:
    workspace = new_workspace(stand_in, unique)
    request = HttpRequest("GET", arm.base + workspace["id"])
    response = await arm.client.send_request(request)
    assert response.status_code == 400 and error_code(response) == "MissingApiVersionParameter"

    anonymous: AsyncPipelineClient[HttpRequest, AsyncHttpResponse] = AsyncPipelineClient(
        stand_in.vault_url, transport=AioHttpTransport(connection_verify=stand_in.ca_bundle)
    )
    url = arm.base + workspace["id"]
    response = await anonymous.send_request(HttpRequest("GET", url, params={"api-version": API_VERSION}))
    assert response.status_code == 401 and error_code(response) == "AuthenticationFailed"


def test_the_admin_api_refuses_a_condition_outside_the_documented_subset(
    stand_in: StandIn, me: str, unique: str
) -> None:
    scope = new_workspace(stand_in, unique)["id"]
    unsupported = "@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:ContainerName] StringEquals 'x'"
    with pytest.raises(Exception, match="400"):
        assign(stand_in, scope, RBAC_ADMINISTRATOR, me, condition=unsupported)
    state = stand_in.state()["arm"]
    assert scope in {w["id"] for w in state["workspaces"]}


def test_faults_classify_arm_and_log_analytics_paths() -> None:
    assert service_of(f"/subscriptions/{HOME_SUBSCRIPTION}/resourceGroups/rg/providers/x") == "arm"
    assert service_of("/v1/workspaces/00000000-0000-0000-0000-000000000000/query") == "loganalytics"
    assert service_of("/v1.0/applications") == "graph"


async def test_injected_arm_faults_reach_the_caller(arm: Arm, clean_faults: StandIn, unique: str) -> None:
    workspace = new_workspace(clean_faults, unique)
    clean_faults.set_faults([{"kind": "status", "service": "arm", "status": 503, "count": 1}])
    response = await arm.call("GET", workspace["id"])
    assert response.status_code == 503


def permissions_path(scope: str) -> str:
    return f"{scope}/providers/Microsoft.Authorization/permissions"


async def test_permissions_list_one_entry_per_propagated_role_at_or_above_the_scope(
    arm: Arm, clean_faults: StandIn, me: str, connector: str, unique: str
) -> None:
    stand_in = clean_faults
    workspace = new_workspace(stand_in, unique)
    resource_group = workspace["id"].split("/providers/")[0]
    none = await arm.call("GET", permissions_path(workspace["id"]))
    assert none.status_code == 200 and none.json() == {"value": []}  # listing one's own needs no role
    assert none.headers["x-ms-request-id"]

    assign(stand_in, workspace["id"], RBAC_ADMINISTRATOR, me, condition=DELEGATION)
    assign(stand_in, resource_group, LOG_ANALYTICS_READER, me)
    assign(stand_in, workspace["id"], OWNER, connector)  # someone else's role is not listed
    listed = (await arm.call("GET", permissions_path(workspace["id"]))).json()["value"]
    assert len(listed) == 2
    for entry in listed:
        assert set(entry) == {"actions", "notActions", "dataActions", "notDataActions"}  # no condition field
    delegation = next(e for e in listed if "Microsoft.Authorization/roleAssignments/write" in e["actions"])
    assert delegation["notActions"] == []
    at_group = (await arm.call("GET", permissions_path(resource_group))).json()["value"]
    assert len(at_group) == 1  # the workspace's role does not reach up

    stand_in.set_faults(roleAssignment=60_000)
    assign(stand_in, workspace["id"], SENTINEL_READER, me)  # still propagating: not listed yet
    assert len((await arm.call("GET", permissions_path(workspace["id"]))).json()["value"]) == 2


async def test_role_assignments_list_for_a_principal_reaches_above_and_below_the_scope(
    arm: Arm, stand_in: StandIn, me: str, connector: str, unique: str
) -> None:
    workspace = new_workspace(stand_in, unique)
    resource_group = workspace["id"].split("/providers/")[0]
    base = f"{resource_group}/providers/Microsoft.Authorization/roleAssignments"
    refused = await arm.call("GET", base)
    assert refused.status_code == 403 and error_code(refused) == "AuthorizationFailed"  # needs roleAssignments/read

    assign(stand_in, resource_group, RBAC_ADMINISTRATOR, me)
    below = assign(stand_in, workspace["id"], SENTINEL_READER, connector)
    above = assign(stand_in, resource_group, LOG_ANALYTICS_READER, connector)
    mine = f"principalId eq '{connector}'"
    listed = await arm.client.send_request(
        HttpRequest("GET", arm.base + base, params={"api-version": API_VERSION, "$filter": mine})
    )
    assert listed.status_code == 200
    assert {a["id"] for a in listed.json()["value"]} == {below["id"], above["id"]}
    at_workspace = f"{workspace['id']}/providers/Microsoft.Authorization/roleAssignments"
    scoped = await arm.client.send_request(
        HttpRequest("GET", arm.base + at_workspace, params={"api-version": API_VERSION, "$filter": "atScope()"})
    )
    ids = {a["id"] for a in scoped.json()["value"]}
    assert {below["id"], above["id"]} <= ids and all(
        a["properties"]["scope"] in (workspace["id"], resource_group) for a in scoped.json()["value"]
    )
