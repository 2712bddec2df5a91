"""`FakeWorkspaces`: Log Analytics workspaces, Azure role assignments and the query API in memory, implementing `shared.domain.ports.Workspaces`.

Owns the fake's model of Azure RBAC: a few built-in roles (their actions and notActions as Microsoft Learn
publishes them), assignments inherited by child scopes, and the delegation condition reduced to what it
says (the roles it lets a delegate assign and delete, to service principals). It authorizes as ARM does,
before it looks (a workspace this service may not read is refused, whether it exists or not).

tests/contract/test_workspaces.py checks it against `shared.adapters.workspaces.ArmWorkspaces` on the stand-in.
"""

from __future__ import annotations

import fnmatch
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shared.domain.errors import UpstreamError, WorkspaceAccessMissing, WorkspaceNotFound
from shared.domain.model import ClientCredential, HeldAssignment, Workspace
from shared.domain.ports import NotReplicatedYet
from shared.usecases.workspace_access import CONDITION
from tests.fakes.directory import SERVICE_OBJECT_ID
from tests.fakes.switches import FaultSwitches

OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
RBAC_ADMINISTRATOR = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"
SENTINEL_READER = "8d289c81-5878-46d4-8554-54e1e3d8b5cb"
SENTINEL_RESPONDER = "3e150937-b8fe-4cfb-8069-0eaf05ecd056"
LOG_ANALYTICS_READER = "73c42c96-874c-492b-b04d-ab87d138a893"
# (actions, notActions) of the built-in roles the product's flows touch, trimmed to what decides them
# (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
ROLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    OWNER: (("*",), ()),
    RBAC_ADMINISTRATOR: (
        ("Microsoft.Authorization/roleAssignments/write", "Microsoft.Authorization/roleAssignments/delete", "*/read"),
        (),
    ),
    SENTINEL_READER: (("Microsoft.OperationalInsights/workspaces/query/read", "Microsoft.Authorization/*/read"), ()),
    SENTINEL_RESPONDER: (("Microsoft.OperationalInsights/workspaces/query/read", "Microsoft.Authorization/*/read"), ()),
    LOG_ANALYTICS_READER: (("*/read",), ("Microsoft.OperationalInsights/workspaces/sharedKeys/read",)),
}
READ_WORKSPACE = "Microsoft.OperationalInsights/workspaces/read"
WRITE = "Microsoft.Authorization/roleAssignments/write"
DELETE = "Microsoft.Authorization/roleAssignments/delete"
QUERY = "Microsoft.OperationalInsights/workspaces/query/read"

# (tenant, client id, credential) -> the app's service principal object id when the credential signs it in
# with the Log Analytics API's Data.Read, else None (Entra refuses it, or the token lacks the role).
SignIn = Callable[[str, str, ClientCredential], Awaitable[str | None]]


@dataclass
class FakeAssignment:
    id: str
    scope: str
    role: str
    principal_id: str
    # The roles a conditioned delegation lets its holder assign and delete (to service principals); None: no condition.
    delegates: frozenset[str] | None = None


def _covers(scope: str, target: str) -> bool:
    scope, target = scope.rstrip("/").lower(), target.rstrip("/").lower()
    return target == scope or target.startswith(scope + "/")


def _allows(role: str, action: str) -> bool:
    actions, not_actions = ROLES.get(role, ((), ()))
    lowered = action.lower()
    return any(fnmatch.fnmatchcase(lowered, a.lower()) for a in actions) and not any(
        fnmatch.fnmatchcase(lowered, n.lower()) for n in not_actions
    )


async def _nobody(tenant_id: str, client_id: str, credential: ClientCredential) -> str | None:
    return None


class FakeWorkspaces(FaultSwitches):
    """Workspaces and role assignments in memory; `service_object_id` is this service's principal. `sign_in`
    says which app a credential signs in (wired to the fake directory and checker by tests/contract);
    `principal_known` whether ARM's directory replica knows a principal yet."""

    def __init__(
        self,
        service_object_id: str = SERVICE_OBJECT_ID,
        sign_in: SignIn = _nobody,
        principal_known: Callable[[str, str], bool] = lambda tenant_id, principal_id: True,
    ) -> None:
        super().__init__()
        self.service_object_id = service_object_id
        self.sign_in = sign_in
        self.principal_known = principal_known
        self.workspaces: dict[str, tuple[str, Workspace]] = {}  # lower-case resource id -> (tenant, workspace)
        self.assignments: dict[str, FakeAssignment] = {}  # by lower-case id

    # --- seeding: what the customer's admin does outside ARM ---

    def add_workspace(self, tenant_id: str, subscription_id: str, resource_group: str, name: str) -> Workspace:
        resource_id = (
            f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
            f"/providers/Microsoft.OperationalInsights/workspaces/{name}"
        )
        workspace = Workspace(resource_id, name, str(uuid.uuid4()))
        self.workspaces[resource_id.lower()] = (tenant_id, workspace)
        return workspace

    def add_assignment(
        self, scope: str, role: str, principal_id: str, delegates: frozenset[str] | None = None, name: str | None = None
    ) -> str:
        assignment_id = f"{scope.rstrip('/')}/providers/Microsoft.Authorization/roleAssignments/{name or uuid.uuid4()}"
        self.assignments[assignment_id.lower()] = FakeAssignment(
            assignment_id, scope.rstrip("/"), role, principal_id, delegates
        )
        return assignment_id

    # --- the port ---

    async def workspace(self, tenant_id: str, resource_id: str) -> Workspace:
        self._enter("workspace", tenant_id=tenant_id, resource_id=resource_id)
        if not self._granted(READ_WORKSPACE, resource_id):
            raise WorkspaceAccessMissing("This service may not read the workspace", resourceId=resource_id)
        found = self.workspaces.get(resource_id.rstrip("/").lower())
        if found is None or found[0] != tenant_id:
            raise WorkspaceNotFound("No such workspace", resourceId=resource_id)
        return found[1]

    async def may_assign_roles(self, tenant_id: str, resource_id: str) -> bool:
        self._enter("may_assign_roles", tenant_id=tenant_id, resource_id=resource_id)
        return any(_allows(a.role, WRITE) for a in self._held(resource_id))  # conditions are not consulted

    async def held_assignments(self, tenant_id: str, scope: str, principal_id: str) -> list[HeldAssignment]:
        self._enter("held_assignments", tenant_id=tenant_id, scope=scope)
        return [
            HeldAssignment(
                a.scope,
                a.role,
                CONDITION.format(roles=", ".join(sorted(a.delegates))) if a.delegates is not None else None,
            )
            for a in self.assignments.values()
            if a.principal_id.lower() == principal_id.lower() and _covers(a.scope, scope)
        ]

    async def assign_role(
        self, tenant_id: str, scope: str, name: str, role_definition_id: str, principal_id: str
    ) -> str:
        self._enter("assign_role", tenant_id=tenant_id, scope=scope, name=name, role=role_definition_id)
        scope, role = scope.rstrip("/"), role_definition_id.lower()
        assignment_id = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"
        if not self._granted(WRITE, assignment_id, role):
            raise WorkspaceAccessMissing("This service may not assign this role here", resourceId=scope)
        if not self.principal_known(tenant_id, principal_id):
            raise NotReplicatedYet("the service principal (Azure RBAC)", "PrincipalNotFound")
        existing = self.assignments.get(assignment_id.lower())
        if existing is not None:
            if (existing.role, existing.principal_id.lower()) != (role, principal_id.lower()):
                raise UpstreamError("ARM refused the role assignment", "arm", 400, "RoleAssignmentUpdateNotPermitted")
            return existing.id
        for other in self.assignments.values():
            same = (other.scope.lower(), other.role, other.principal_id.lower())
            if same == (scope.lower(), role, principal_id.lower()):
                return other.id
        return self.add_assignment(scope, role, principal_id, name=name)

    async def role_assigned(self, tenant_id: str, assignment_id: str) -> bool:
        self._enter("role_assigned", tenant_id=tenant_id, assignment_id=assignment_id)
        return assignment_id.rstrip("/").lower() in self.assignments

    async def remove_role_assignment(self, tenant_id: str, assignment_id: str) -> bool:
        self._enter("remove_role_assignment", tenant_id=tenant_id, assignment_id=assignment_id)
        existing = self.assignments.get(assignment_id.rstrip("/").lower())
        if existing is None:
            return False
        if not self._granted(DELETE, assignment_id, existing.role):
            raise WorkspaceAccessMissing("This service may not delete this role assignment", resourceId=assignment_id)
        del self.assignments[existing.id.lower()]
        return True

    async def query_allowed(
        self, tenant_id: str, customer_id: str, client_id: str, credential: ClientCredential
    ) -> bool:
        self._enter("query_allowed", tenant_id=tenant_id, customer_id=customer_id, client_id=client_id)
        found = next((w for t, w in self.workspaces.values() if w.customer_id == customer_id), None)
        if found is None:
            raise WorkspaceNotFound("No workspace with this customer id", resourceId=customer_id)
        principal = await self.sign_in(tenant_id, client_id, credential)
        if principal is None:
            return False
        return any(
            _allows(a.role, QUERY) for a in self.assignments.values()
            if a.principal_id.lower() == principal.lower() and _covers(a.scope, found.resource_id)
        )  # fmt: skip

    async def close(self) -> None:
        return None

    # --- Azure RBAC ---

    def _held(self, target: str) -> list[FakeAssignment]:
        """This service's assignments at or above `target`."""
        me = self.service_object_id.lower()
        return [a for a in self.assignments.values() if a.principal_id.lower() == me and _covers(a.scope, target)]

    def _granted(self, action: str, target: str, role: str | None = None) -> bool:
        """Whether an assignment of this service allows `action` at `target`. A delegation's condition constrains
        only role assignment writes and deletes: met by one of its roles, to a service principal (the only
        principal type this port assigns to)."""
        conditioned = action in (WRITE, DELETE)
        return any(
            _allows(a.role, action) and (a.delegates is None or not conditioned or role in a.delegates)
            for a in self._held(target)
        )
