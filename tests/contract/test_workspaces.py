"""The Workspaces contract: reading a workspace, delegated Azure role assignments on it, and the query proof.

This service holds Role Based Access Control Administrator on the workspace under the documented delegation
condition (Sentinel roles, to service principals: tests/contract/conftest.py, delegation_condition), as the
customer's admin grants it; the fake and ArmWorkspaces on the stand-in must answer every case alike."""

from __future__ import annotations

import uuid

import pytest

from shared.domain.errors import WorkspaceAccessMissing, WorkspaceNotFound
from shared.domain.model import Secret
from shared.domain.ports import NotReplicatedYet
from tests.contract.conftest import Ports, in_days
from tests.fakes import LOG_ANALYTICS_APP_ID

OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
RBAC_ADMINISTRATOR = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"
SENTINEL_READER = "8d289c81-5878-46d4-8554-54e1e3d8b5cb"
SENTINEL_RESPONDER = "3e150937-b8fe-4cfb-8069-0eaf05ecd056"
LOG_ANALYTICS_READER = "73c42c96-874c-492b-b04d-ab87d138a893"
SENTINEL_ROLES = (SENTINEL_READER, SENTINEL_RESPONDER)


def delegated_workspace(ports: Ports) -> str:
    """A workspace on which this service holds the Sentinel delegation."""
    workspace = ports.new_workspace("law")
    ports.give(workspace, RBAC_ADMINISTRATOR, ports.service_object_id, delegates=SENTINEL_ROLES)
    return workspace


async def connector(ports: Ports) -> tuple[str, str, str]:
    """A new app with its service principal: (object id, appId, principal id)."""
    app, _ = await ports.directory.upsert_application(ports.tenant_id, ports.unique("app"), ports.spec("Connector"))
    principal, _ = await ports.directory.upsert_service_principal(ports.tenant_id, app.app_id, app_is_new=True)
    return app.object_id, app.app_id, principal


def assignment_id(scope: str, name: str) -> str:
    return f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"


async def test_a_workspace_is_read_once_this_service_may_read_it(ports: Ports) -> None:
    resource_id = ports.new_workspace("law")
    with pytest.raises(WorkspaceAccessMissing):
        await ports.workspaces.workspace(ports.tenant_id, resource_id)

    ports.give(resource_id.split("/providers/")[0], LOG_ANALYTICS_READER, ports.service_object_id)  # inherited
    workspace = await ports.workspaces.workspace(ports.tenant_id, resource_id)
    assert (workspace.resource_id, workspace.name) == (resource_id, resource_id.rsplit("/", 1)[-1])
    assert uuid.UUID(workspace.customer_id)


async def test_a_missing_workspace_is_not_found(ports: Ports) -> None:
    resource_id = ports.new_workspace("law")
    ports.give(resource_id.split("/providers/")[0], LOG_ANALYTICS_READER, ports.service_object_id)
    with pytest.raises(WorkspaceNotFound):
        await ports.workspaces.workspace(ports.tenant_id, resource_id + "-gone")


async def test_only_a_role_that_writes_role_assignments_may_assign_roles(ports: Ports) -> None:
    resource_id = ports.new_workspace("law")
    assert await ports.workspaces.may_assign_roles(ports.tenant_id, resource_id) is False
    ports.give(resource_id, LOG_ANALYTICS_READER, ports.service_object_id)
    assert await ports.workspaces.may_assign_roles(ports.tenant_id, resource_id) is False
    ports.give(resource_id, RBAC_ADMINISTRATOR, ports.service_object_id, delegates=SENTINEL_ROLES)
    assert await ports.workspaces.may_assign_roles(ports.tenant_id, resource_id) is True  # its condition aside


async def test_assigning_a_role_is_idempotent_under_its_name(ports: Ports) -> None:
    scope = delegated_workspace(ports)
    _, _, principal = await connector(ports)
    name = str(uuid.uuid4())

    created = await ports.workspaces.assign_role(ports.tenant_id, scope, name, SENTINEL_READER, principal)
    assert created == assignment_id(scope, name)
    assert await ports.workspaces.assign_role(ports.tenant_id, scope, name, SENTINEL_READER, principal) == created
    assert await ports.workspaces.role_assigned(ports.tenant_id, created) is True
    assert await ports.workspaces.role_assigned(ports.tenant_id, assignment_id(scope, str(uuid.uuid4()))) is False


async def test_the_same_role_under_another_name_counts_as_done(ports: Ports) -> None:
    scope = delegated_workspace(ports)
    _, _, principal = await connector(ports)
    existing = ports.give(scope, SENTINEL_RESPONDER, principal)

    found = await ports.workspaces.assign_role(ports.tenant_id, scope, str(uuid.uuid4()), SENTINEL_RESPONDER, principal)
    assert found == existing


async def test_a_principal_arm_does_not_know_yet_is_not_replicated(ports: Ports) -> None:
    scope = delegated_workspace(ports)
    with pytest.raises(NotReplicatedYet) as pending:
        await ports.workspaces.assign_role(
            ports.tenant_id, scope, str(uuid.uuid4()), SENTINEL_READER, str(uuid.uuid4())
        )
    assert pending.value.code == "PrincipalNotFound"


async def test_a_role_the_condition_does_not_allow_is_refused(ports: Ports) -> None:
    scope = delegated_workspace(ports)
    _, _, principal = await connector(ports)
    with pytest.raises(WorkspaceAccessMissing):
        await ports.workspaces.assign_role(ports.tenant_id, scope, str(uuid.uuid4()), OWNER, principal)
    bare = ports.new_workspace("bare")  # no delegation at all
    with pytest.raises(WorkspaceAccessMissing):
        await ports.workspaces.assign_role(ports.tenant_id, bare, str(uuid.uuid4()), SENTINEL_READER, principal)


async def test_held_assignments_are_those_at_or_above_the_scope_with_their_conditions(ports: Ports) -> None:
    scope = delegated_workspace(ports)
    _, _, principal = await connector(ports)
    await ports.workspaces.assign_role(ports.tenant_id, scope, str(uuid.uuid4()), SENTINEL_READER, principal)

    [held] = await ports.workspaces.held_assignments(ports.tenant_id, scope, ports.service_object_id)
    assert held.role_definition_id == RBAC_ADMINISTRATOR and held.scope.lower() == scope.lower()
    assert held.condition is not None and all(role in held.condition for role in SENTINEL_ROLES)
    [app_role] = await ports.workspaces.held_assignments(ports.tenant_id, scope, principal)
    assert (app_role.role_definition_id, app_role.condition) == (SENTINEL_READER, None)


async def test_removing_an_assignment_reports_whether_it_was_there(ports: Ports) -> None:
    scope = delegated_workspace(ports)
    _, _, principal = await connector(ports)
    created = await ports.workspaces.assign_role(ports.tenant_id, scope, str(uuid.uuid4()), SENTINEL_READER, principal)

    assert await ports.workspaces.remove_role_assignment(ports.tenant_id, created) is True
    assert await ports.workspaces.role_assigned(ports.tenant_id, created) is False
    assert await ports.workspaces.remove_role_assignment(ports.tenant_id, created) is False


async def test_a_query_is_allowed_once_the_app_holds_a_sentinel_role(ports: Ports) -> None:
    scope = delegated_workspace(ports)
    workspace = await ports.workspaces.workspace(ports.tenant_id, scope)
    object_id, app_id, principal = await connector(ports)
    log_analytics = await ports.directory.resource_api(ports.tenant_id, LOG_ANALYTICS_APP_ID)
    assert log_analytics is not None
    data_read = [(log_analytics.object_id, log_analytics.roles_by_value["Data.Read"])]
    assert (await ports.directory.grant(ports.tenant_id, principal, data_read)).pending == ()
    secret = (await ports.directory.add_password(ports.tenant_id, object_id, "query", in_days(1))).secret

    allowed = ports.workspaces.query_allowed
    assert await allowed(ports.tenant_id, workspace.customer_id, app_id, secret) is False  # no role yet
    await ports.workspaces.assign_role(ports.tenant_id, scope, str(uuid.uuid4()), SENTINEL_READER, principal)
    assert await allowed(ports.tenant_id, workspace.customer_id, app_id, secret) is True
    # A secret Entra does not know (or not yet): not allowed, as for a new one still replicating.
    assert await allowed(ports.tenant_id, workspace.customer_id, app_id, Secret("not-this-apps-secret")) is False
