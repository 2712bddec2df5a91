"""The Sentinel connection's workspace: its Sentinel role given to the registration's app, proven by a real query,
and its workspace id and name stored beside the credentials.

Without a role on the workspace the app's token check passes and every query fails, which is the failure an
automated onboarding must not hide. So, for a PUT that names a workspace:

- before anything is created, this service reads the workspace and checks it holds
  `Microsoft.Authorization/roleAssignments/write` there (the customer's admin grants Role Based Access Control
  Administrator on the workspace only, with a condition allowing exactly the catalog's Sentinel roles to service
  principals: docs/sentinel.md); missing, the PUT answers `workspace-access-missing` with what to grant;
- once the app's credential is proven, it assigns the role to the app's service principal under a name derived
  from what it assigns (a retry or a rerun after a crash puts the same assignment), proves it with a Log Analytics
  query signed in as the app (Azure RBAC takes minutes to propagate: 202 until it answers), then stores the
  workspace id and name, the workspace id's tags recording the resource id, role and assignment;
- status reports the assignment missing as drift; offboarding removes it before the app.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from shared.domain.audit import audit
from shared.domain.errors import InvalidRequest, OnboardingError, WorkspaceAccessMissing
from shared.domain.model import (
    WORKSPACE_KINDS,
    AppRegistration,
    ClientCredential,
    IntegrationProfile,
    SecretKind,
    StoredSecret,
    Workspace,
    WorkspaceRole,
)
from shared.domain.ports import NotReplicatedYet, Vault, Workspaces
from shared.domain.registry import Registry, Tag, iso
from shared.domain.retry import Clock
from shared.settings import Settings
from shared.usecases.credentials import CONTENT_TYPES
from shared.usecases.replication import within_replication

# The condition the customer's admin puts on this service's Role Based Access Control Administrator assignment:
# it may write and delete role assignments only of the named roles, and write them only for service principals
# (https://learn.microsoft.com/azure/role-based-access-control/delegate-role-assignments-examples, "Constrain
# roles and principal types").
CONDITION = (
    "((!(ActionMatches{{'Microsoft.Authorization/roleAssignments/write'}})) OR "
    "(@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {{{roles}}} "
    "AND @Request[Microsoft.Authorization/roleAssignments:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase "
    "{{'ServicePrincipal'}})) AND ((!(ActionMatches{{'Microsoft.Authorization/roleAssignments/delete'}})) OR "
    "(@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {{{roles}}} "
    "AND @Resource[Microsoft.Authorization/roleAssignments:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase "
    "{{'ServicePrincipal'}}))"
)
RBAC_ADMINISTRATOR = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"  # Role Based Access Control Administrator (built-in)
# The clause of such a condition naming the roles its holder may assign, in the documented shape (the examples page
# above; the attribute: https://learn.microsoft.com/azure/role-based-access-control/conditions-authorization-actions-attributes).
ASSIGNABLE_ROLES = re.compile(
    r"@Request\[Microsoft\.Authorization/roleAssignments:RoleDefinitionId\]\s+ForAnyOfAnyValues:GuidEquals\s*\{([^}]*)\}",
    re.IGNORECASE,
)
NEGATED_ROLES = re.compile(
    r"(?:!|\bNOT)\s*\(?\s*@Request\[Microsoft\.Authorization/roleAssignments:RoleDefinitionId\]", re.I
)
logger = logging.getLogger(__name__)


def condition_allows(condition: str | None, role_definition_id: str) -> bool | None:
    """Whether a role assignment's condition lets its holder assign the role (a GUID): True without a condition;
    False when it names the roles it allows and not this one; None when it is in another shape (ARM decides)."""
    if not condition:
        return True
    clauses = ASSIGNABLE_ROLES.findall(condition)
    if not clauses or NEGATED_ROLES.search(condition):
        return None  # another shape, or roles it forbids rather than allows: ARM's to judge
    allowed = {guid.strip().lower() for clause in clauses for guid in clause.split(",")}
    return role_definition_id.lower() in allowed


@dataclass(frozen=True)
class WorkspaceRequest:
    """What a PUT names: the workspace's resource id, and the catalog's role id (None: the registration's own,
    else the connection's default)."""

    resource_id: str
    role: str | None = None


@dataclass(frozen=True)
class WorkspaceState:
    """The workspace side of a registration, as onboarding left it or status read it."""

    resource_id: str
    name: str | None
    customer_id: str | None
    role: str
    assignment_id: str | None
    assigned: bool
    proven: bool
    changed: bool = False  # this call assigned the role or wrote the records


class WorkspaceAccess:
    def __init__(
        self,
        settings: Settings,
        vault: Vault,
        workspaces: Workspaces,
        clock: Clock,
        now: Callable[[], datetime],
        service_object_id: Callable[[str], Awaitable[str]],
    ) -> None:
        self.settings = settings
        self.registry: Registry = settings.registry
        self.vault = vault
        self.workspaces = workspaces
        self.clock = clock
        self.now = now
        self.service_object_id = service_object_id

    async def stored(self, tenant: str, profile: IntegrationProfile) -> dict[SecretKind, StoredSecret | None]:
        names = self.registry.secret_names(tenant, profile.id, WORKSPACE_KINDS)
        # With their values: a workspace id and name are not secret, and the convergence compares them.
        found = await asyncio.gather(*(self.vault.read(name, with_value=True) for name in names.values()))
        return dict(zip(names, found, strict=True))

    def role(
        self, profile: IntegrationProfile, requested: WorkspaceRequest | None, stored: StoredSecret | None
    ) -> WorkspaceRole:
        """The role a PUT names, else the one the registration has, else the connection's default."""
        role_id = (requested.role if requested else None) or (stored.tags.get(Tag.WORKSPACE_ROLE) if stored else None)
        role = profile.workspace_role(role_id) if role_id else profile.workspace_roles[0]
        if role is None:
            offered = ", ".join(r.id for r in profile.workspace_roles)
            raise InvalidRequest(f"workspace.role {role_id!r} is not offered (offered: {offered}).", field="workspace")
        return role

    async def check(self, tenant: str, profile: IntegrationProfile, resource_id: str, role: WorkspaceRole) -> Workspace:
        """Before anything is created: the workspace exists, this service may assign roles there, and the condition
        on that right, when it names the roles it allows, names this one."""
        excluded = False
        try:
            workspace = await self.workspaces.workspace(tenant, resource_id)
            if await self.workspaces.may_assign_roles(tenant, resource_id):
                excluded = await self._condition_excludes(tenant, resource_id, role)
                if not excluded:
                    return workspace
        except WorkspaceAccessMissing:
            pass
        principal = await self._service_principal(tenant)
        if excluded:
            raise WorkspaceAccessMissing(
                f"This service may assign roles on the workspace, but the condition on that right does not allow "
                f"{role.display_name}. The customer's admin replaces the condition with one that allows exactly the "
                "Sentinel roles to service principals: run grantCommand (docs/sentinel.md).",
                tenantId=tenant,
                workspaceResourceId=resource_id,
                role=role.id,
                grantCommand=self.grant_command(profile, resource_id, principal),
            )
        raise WorkspaceAccessMissing(
            "This service may not assign Sentinel roles on the workspace. The customer's admin grants it Role Based "
            "Access Control Administrator on the workspace only, with a condition that allows exactly the Sentinel "
            "roles to service principals: run grantCommand (docs/sentinel.md).",
            tenantId=tenant,
            workspaceResourceId=resource_id,
            grantCommand=self.grant_command(profile, resource_id, principal),
        )

    async def _condition_excludes(self, tenant: str, resource_id: str, role: WorkspaceRole) -> bool:
        """Whether every assignment this service holds at or above the workspace carries a condition that names the
        roles it lets its holder assign, without this one. ARM checks a condition only when it assigns, after the
        app exists; read here, the usual misfit (a condition written before the catalog offered the role) is
        refused before anything is created. Anything else (no condition, another shape, the list unreadable) is
        left to ARM."""
        try:
            principal = await self.service_object_id(tenant)
            held = await self.workspaces.held_assignments(tenant, resource_id, principal)
        except (OnboardingError, NotReplicatedYet) as error:
            logger.info("Could not read this service's role assignments on %s: %s", resource_id, type(error).__name__)
            return False
        return bool(held) and all(condition_allows(a.condition, role.role_definition_id) is False for a in held)

    def grant_command(self, profile: IntegrationProfile, resource_id: str, principal: str) -> str:
        """The Azure CLI command that grants this service what it needs on the workspace, and nothing more."""
        roles = ", ".join(r.role_definition_id for r in profile.workspace_roles)
        return (
            f'az role assignment create --assignee-object-id "{principal}" --assignee-principal-type ServicePrincipal '
            f'--role "{RBAC_ADMINISTRATOR}" --scope "{resource_id}" --condition-version "2.0" '
            f'--condition "{CONDITION.format(roles=roles)}"'
        )

    async def _service_principal(self, tenant: str) -> str:
        try:
            return await self.service_object_id(tenant)
        except Exception:  # noqa: BLE001 - the command is help; without the id it names what to put there
            return "<this service's service principal in your tenant>"

    async def converge(
        self,
        tenant: str,
        profile: IntegrationProfile,
        workspace: Workspace,
        role: WorkspaceRole,
        app: AppRegistration,
        principal_id: str,
        credential: ClientCredential | None,
        stored: dict[SecretKind, StoredSecret | None],
        context: dict[str, str],
    ) -> WorkspaceState:
        """The role assigned (idempotent), proven by a query as the app when its credential is at hand, and the
        workspace id and name stored. StillReplicating while ARM does not know the principal yet or the role is
        not effective yet: the caller answers 202 and the same PUT continues."""
        name = self.registry.role_assignment_name(workspace.resource_id, principal_id, role.role_definition_id)
        assignment = await within_replication(
            "the Sentinel role on the workspace",
            lambda: self.workspaces.assign_role(
                tenant, workspace.resource_id, name, role.role_definition_id, principal_id
            ),
            deadline_seconds=self.settings.replication_timeout_seconds,
            clock=self.clock,
        )
        recorded = stored[SecretKind.WORKSPACE_ID]
        changed = recorded is None or recorded.tags.get(Tag.ROLE_ASSIGNMENT_ID) != assignment
        if changed:
            audit("workspace.role.assigned", context, workspace=workspace.resource_id, role=role.display_name,
                  roleAssignmentId=assignment, servicePrincipalId=principal_id)  # fmt: skip
        proven = False
        if credential is not None:
            await self._prove(tenant, workspace, app.app_id, credential)
            proven = True
        previous = recorded.tags.get(Tag.ROLE_ASSIGNMENT_ID) if recorded is not None else None
        # Moved to another workspace or role: the previous assignment goes once the new one works, and before the
        # record moves on, so a crash in between leaves it recorded (and removed by the rerun), never lost.
        if previous and previous != assignment and await self.workspaces.remove_role_assignment(tenant, previous):
            audit("workspace.role.removed", context, roleAssignmentId=previous, reason="replaced")
        written = await self._store(tenant, profile, workspace, role, assignment, stored, context)
        return WorkspaceState(
            workspace.resource_id,
            workspace.name,
            workspace.customer_id,
            role.id,
            assignment,
            True,
            proven,
            changed=changed or written,
        )

    async def _prove(self, tenant: str, workspace: Workspace, client_id: str, credential: ClientCredential) -> None:
        """A query as the app, retried while the workspace refuses it (the new role propagating); StillReplicating
        after the verify timeout."""

        async def once() -> None:
            if not await self.workspaces.query_allowed(tenant, workspace.customer_id, client_id, credential):
                raise NotReplicatedYet("the Sentinel role (a query as the app)", "InsufficientAccessError")

        await within_replication(
            "the Sentinel role taking effect", once,
            deadline_seconds=self.settings.verify_timeout_seconds, clock=self.clock,
        )  # fmt: skip

    async def _store(
        self,
        tenant: str,
        profile: IntegrationProfile,
        workspace: Workspace,
        role: WorkspaceRole,
        assignment: str,
        stored: dict[SecretKind, StoredSecret | None],
        context: dict[str, str],
    ) -> bool:
        """The workspace id and name, each written unless Key Vault holds it so already; whether any was written."""
        written_any = False
        base = {
            Tag.MANAGED_BY: self.registry.prefix, Tag.TENANT_ID: tenant, Tag.INTEGRATION: profile.id,
            Tag.WORKSPACE_RESOURCE_ID: workspace.resource_id,
        }  # fmt: skip
        records = {
            SecretKind.WORKSPACE_ID: (
                workspace.customer_id,
                base
                | {Tag.WORKSPACE_ROLE: role.id, Tag.ROLE_ASSIGNMENT_ID: assignment, Tag.ISSUED_AT: iso(self.now())},
            ),
            SecretKind.WORKSPACE_NAME: (workspace.name, dict(base)),
        }
        for kind, (value, tags) in records.items():
            tags[Tag.KIND] = kind.value
            current = stored[kind]
            if current is not None and _same(current, value, tags):
                continue
            name = self.registry.secret_name(tenant, profile.id, kind)
            written = await self.vault.write(name, value, CONTENT_TYPES[kind], tags, None)
            audit("secret.stored", context, secretName=name, version=written.version)
            written_any = True
        return written_any

    async def state(self, tenant: str, stored: dict[SecretKind, StoredSecret | None]) -> WorkspaceState | None:
        """What status reports: the recorded workspace and whether its role assignment is still there."""
        record = stored[SecretKind.WORKSPACE_ID]
        if record is None:
            return None
        assignment = record.tags.get(Tag.ROLE_ASSIGNMENT_ID)
        assigned = bool(assignment) and await self.workspaces.role_assigned(tenant, str(assignment))
        name = stored[SecretKind.WORKSPACE_NAME]
        return WorkspaceState(
            record.tags.get(Tag.WORKSPACE_RESOURCE_ID, ""),
            name.value.reveal() if name is not None and name.value is not None else None,
            record.value.reveal() if record.value is not None else None,
            record.tags.get(Tag.WORKSPACE_ROLE, ""),
            assignment,
            assigned,
            True,
        )

    async def remove(self, tenant: str, stored: dict[SecretKind, StoredSecret | None], context: dict[str, str]) -> bool:
        """Offboarding: the role assignment this service made, before the app goes (its principal with it)."""
        record = stored[SecretKind.WORKSPACE_ID]
        assignment = record.tags.get(Tag.ROLE_ASSIGNMENT_ID) if record is not None else None
        if not assignment:
            return False
        removed = await self.workspaces.remove_role_assignment(tenant, assignment)
        if removed:
            audit("workspace.role.removed", context, roleAssignmentId=assignment)
        return removed


def _same(current: StoredSecret, value: str, tags: dict[str, str]) -> bool:
    """Whether Key Vault already holds this value with these tags (when it was issued aside)."""
    unchanged = {k: v for k, v in current.tags.items() if k != Tag.ISSUED_AT}
    wanted = {k: v for k, v in tags.items() if k != Tag.ISSUED_AT}
    return current.value is not None and current.value.reveal() == value and unchanged == wanted
