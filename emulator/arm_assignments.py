"""ARM role assignments: create, read and delete `{scope}/providers/Microsoft.Authorization/roleAssignments/{name}`.

Spec: Azure/azure-rest-api-specs, specification/authorization/resource-manager/Microsoft.Authorization/
stable/2022-04-01/authorization-RoleAssignmentsCalls.json (RoleAssignments_Create: 201 or 200;
RoleAssignments_Delete: 200 with the deleted assignment, 204 "already deleted or does not exist").
Errors and their order are cited where they are made; the ledger is emulator/FIDELITY.md.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import arm_conditions, arm_rbac
from .arm_rbac import arm_error, authorize
from .clock import iso
from .state import JsonObject, World
from .tokens import Caller

ROLE_ASSIGNMENT_TYPE = "Microsoft.Authorization/roleAssignments"
WRITE = "Microsoft.Authorization/roleAssignments/write"
DELETE = "Microsoft.Authorization/roleAssignments/delete"
READ = "Microsoft.Authorization/roleAssignments/read"
SUBSCRIPTION = re.compile(r"^/subscriptions/(?P<sub>[^/]+)", re.I)


def add_role_assignment(
    world: World, scope: str, role_definition_id: str, principal_id: str, principal_type: str | None, **extra: Any
) -> JsonObject:
    """Store a role assignment in ARM's shape; it takes effect after the "roleAssignment" replication lag."""
    scope = scope.rstrip("/")
    sub = SUBSCRIPTION.match(scope)
    if sub is None or sub["sub"].lower() not in world.arm.subscriptions:
        raise ValueError(f"scope {scope} is not under a known subscription")
    guid = arm_rbac.role_guid(role_definition_id)
    if guid not in arm_rbac.BUILT_IN_ROLES:
        raise ValueError(f"role definition {guid} is not one the stand-in knows: {sorted(arm_rbac.BUILT_IN_ROLES)}")
    condition = extra.get("condition")
    arm_conditions.check(condition, extra.get("conditionVersion"))
    name = str(uuid.UUID(extra.get("name") or str(uuid.uuid4())))
    now = iso(world.clock.now())
    assignment_id = f"{scope}/providers/{ROLE_ASSIGNMENT_TYPE}/{name}"
    assignment: JsonObject = {
        "id": assignment_id,
        "name": name,
        "type": ROLE_ASSIGNMENT_TYPE,
        "properties": {
            # Subscription-scoped, as `az role assignment list` shows it (Azure RBAC troubleshooting page).
            "roleDefinitionId": f"/subscriptions/{sub['sub']}/providers/Microsoft.Authorization/roleDefinitions/{guid}",
            "principalId": principal_id,
            "principalType": principal_type,
            "scope": scope,
            "condition": condition,
            "conditionVersion": "2.0" if condition else None,
            "description": extra.get("description"),
            "createdOn": now,
            "updatedOn": now,
            "createdBy": extra.get("createdBy"),
            "updatedBy": extra.get("createdBy"),
            "delegatedManagedIdentityResourceId": None,
        },
    }
    key = assignment_id.lower()
    world.arm.role_assignments[key] = assignment
    world.replication.created("roleAssignment", key)
    world.touch()
    return assignment


class RoleAssignmentCalls:
    """One request on one role assignment id."""

    def __init__(self, world: World, request: Request, caller: Caller, scope: str, name: str) -> None:
        self.world = world
        self.request = request
        self.caller = caller
        self.scope = scope
        self.name = name
        self.id = f"{scope}/providers/{ROLE_ASSIGNMENT_TYPE}/{name}"
        self.existing = world.arm.role_assignments.get(self.id.lower())

    async def run(self) -> Response:
        if self.request.method == "GET":
            authorize(self.world, self.request, self.caller, READ, self.id)
            if self.existing is None:
                raise arm_error(
                    self.request, 404, "RoleAssignmentNotFound", f"The role assignment '{self.name}' is not found."
                )
            return JSONResponse(self.existing)
        if self.request.method == "DELETE":
            return self.delete()
        return await self.put()

    def delete(self) -> Response:
        # A delete is authorized against the assignment it would remove: its attributes are @Resource ones
        # (conditions-authorization-actions-attributes, "Delete a role assignment").
        attributes = {"Resource": arm_rbac.attributes_of(self.existing)} if self.existing else {}
        authorize(self.world, self.request, self.caller, DELETE, self.id, attributes)
        if self.existing is None:
            return Response(status_code=204)
        self.world.arm.role_assignments.pop(self.id.lower())
        self.world.touch()
        return JSONResponse(self.existing)

    async def put(self) -> Response:
        props = await self._properties()
        role = arm_rbac.role_guid(str(props["roleDefinitionId"]))
        principal_id = str(props["principalId"]).lower()
        principal_type = props.get("principalType")
        request_attributes = {
            "RoleDefinitionId": role,
            "PrincipalId": principal_id,
            "PrincipalType": principal_type or "",
        }
        # Authorization comes first: ARM's front door decides before the provider sees the body.
        authorize(self.world, self.request, self.caller, WRITE, self.id, {"Request": request_attributes})
        if role not in arm_rbac.BUILT_IN_ROLES:
            raise arm_error(
                self.request,
                400,
                "RoleDefinitionDoesNotExist",
                f"The specified role definition with ID '{role}' does not exist.",
            )
        self._principal_must_exist(principal_id, principal_type)
        condition, version = props.get("condition"), props.get("conditionVersion")
        try:
            arm_conditions.check(condition, version)
        except arm_conditions.ConditionError as exc:
            # The stand-in's own refusal, not ARM's: it stores no condition it could not evaluate.
            raise arm_error(
                self.request, 400, "InvalidCondition", f"The stand-in cannot evaluate this condition: {exc}"
            ) from exc
        if self.existing is not None:
            return self._repeat(role, principal_id)
        self._unique(role, principal_id)
        assignment = add_role_assignment(
            self.world,
            self.scope,
            role,
            principal_id,
            principal_type or "ServicePrincipal",
            name=self.name,
            condition=condition,
            conditionVersion=version,
            description=props.get("description"),
            createdBy=self.caller.object_id,
        )
        return JSONResponse(assignment, status_code=201)

    async def _properties(self) -> dict[str, Any]:
        try:
            uuid.UUID(self.name)
        except ValueError:
            raise arm_error(
                self.request, 400, "InvalidRoleAssignmentId", f"The role assignment ID '{self.name}' is not valid. "
                "The role assignment ID must be a GUID.",
            ) from None  # fmt: skip
        try:
            body = json.loads(await self.request.body() or b"null")
        except ValueError:
            body = None
        props = body.get("properties") if isinstance(body, dict) else None
        if not isinstance(props, dict) or not props.get("roleDefinitionId") or not props.get("principalId"):
            raise arm_error(
                self.request, 400, "InvalidRequestContent",
                "The request content was invalid: properties.roleDefinitionId and properties.principalId are required.",
            )  # fmt: skip
        return props

    def _principal_must_exist(self, principal_id: str, principal_type: str | None) -> None:
        """PrincipalNotFound for an id the directory does not know; a principal not yet replicated is only
        found when principalType is given (Azure RBAC troubleshooting, "Assigning a role to a new principal
        sometimes fails": set principalType to get around the replication delay)."""
        sub = SUBSCRIPTION.match(self.scope)
        assert sub is not None
        tenant_id = self.world.arm.subscriptions[sub["sub"].lower()]
        tenant = self.world.tenants[tenant_id]
        principal = tenant.service_principals.get(principal_id)
        if principal is not None and (principal_type or self.world.replication.visible(principal_id)):
            return
        raise arm_error(
            self.request,
            400,
            "PrincipalNotFound",
            f"Principal {principal_id} does not exist in the directory {tenant_id}. Check that you have "
            "the correct principal ID. If you are creating this principal and then immediately assigning a role, this "
            "error might be related to a replication delay. In this case, set the role assignment principalType "
            "property to a value, such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype",
        )

    def _repeat(self, role: str, principal_id: str) -> Response:
        """The same name again: its properties cannot change (RoleAssignmentUpdateNotPermitted, troubleshooting page)."""
        assert self.existing is not None
        props = self.existing["properties"]
        if arm_rbac.role_guid(props["roleDefinitionId"]) != role or props["principalId"].lower() != principal_id:
            raise arm_error(
                self.request,
                400,
                "RoleAssignmentUpdateNotPermitted",
                "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
            )
        # The spec allows 200 or 201; which one ARM sends for an identical repeat is unknown (FIDELITY.md).
        return JSONResponse(self.existing, status_code=201)

    def _unique(self, role: str, principal_id: str) -> None:
        """One assignment per (scope, principal, role): another name for the same triple is a 409 naming the
        existing one, its GUID written without hyphens (third-party recordings, FIDELITY.md)."""
        scope = self.scope.rstrip("/").lower()
        for assignment in self.world.arm.role_assignments.values():
            props = assignment["properties"]
            if (
                props["scope"].lower() == scope
                and props["principalId"].lower() == principal_id
                and arm_rbac.role_guid(props["roleDefinitionId"]) == role
            ):
                raise arm_error(
                    self.request,
                    409,
                    "RoleAssignmentExists",
                    "The role assignment already exists. The ID of the existing role assignment is "
                    f"{assignment['name'].replace('-', '')}.",
                )
