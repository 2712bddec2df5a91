"""ARM's two read-only lists the product uses: the caller's permissions at a scope, and a principal's role assignments.

Specs (Azure/azure-rest-api-specs, specification/authorization/resource-manager/Microsoft.Authorization/
stable/2022-04-01/): Permissions_ListForResource and Permissions_ListForResourceGroup in
authorization-RoleDefinitionsCalls.json (`{"value": [Permission], "nextLink"}`, a Permission being
`actions`, `notActions`, `dataActions`, `notDataActions`); RoleAssignments_ListForScope in
authorization-RoleAssignmentsCalls.json. Ledger rows A22-A25 in emulator/FIDELITY.md.
"""

from __future__ import annotations

import re
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import arm_rbac
from .arm_assignments import READ
from .arm_rbac import arm_error, authorize
from .state import JsonObject, World
from .tokens import Caller

PERMISSIONS_PATH = re.compile(r"^(?P<scope>/.+)/providers/Microsoft\.Authorization/permissions$", re.I)
ASSIGNMENTS_PATH = re.compile(r"^(?P<scope>/.+)/providers/Microsoft\.Authorization/roleAssignments$", re.I)
# The two filters the list documents ("Use $filter=atScope() ... Use $filter=principalId eq {id} ...",
# https://learn.microsoft.com/rest/api/authorization/role-assignments/list-for-scope); the id quoted or not.
PRINCIPAL_FILTER = re.compile(r"^\s*principalId\s+eq\s+'?(?P<id>[0-9A-Fa-f-]{36})'?\s*$", re.I)
AT_SCOPE_FILTER = re.compile(r"^\s*atScope\(\)\s*$", re.I)


def permissions(world: World, request: Request, caller: Caller, scope: str) -> Response:
    """One Permission per role the caller holds at or above `scope`, once the assignment has propagated (A20).

    No action is needed to list one's own permissions (the operation's page names none). A role whose
    assignment carries an ABAC condition is listed like any other, its condition nowhere: the 2022-04-01
    Permission has no field for it (A23, unknown what ARM does)."""
    listed: list[JsonObject] = []
    for key, assignment in world.arm.role_assignments.items():
        props = assignment["properties"]
        if props["principalId"].lower() != caller.object_id.lower() or not arm_rbac.covers(props["scope"], scope):
            continue
        role = arm_rbac.BUILT_IN_ROLES.get(arm_rbac.role_guid(props["roleDefinitionId"]))
        if role is None or not world.replication.visible(key):
            continue
        listed.append(
            {
                "actions": list(role.actions),
                "notActions": list(role.not_actions),
                "dataActions": [],
                "notDataActions": [],
            }
        )
    return JSONResponse({"value": listed})


def role_assignments(world: World, request: Request, caller: Caller, scope: str) -> Response:
    """RoleAssignments_ListForScope: needs `roleAssignments/read` at the scope (the operation's Permissions
    section). `principalId eq {id}`: that principal's assignments at, above or below the scope; `atScope()`:
    every assignment at or above it; no filter: at, above or below (the list "that apply to a scope",
    read as the principalId case without the principal: **unknown**, A25)."""
    authorize(world, request, caller, READ, scope)
    raw = request.query_params.get("$filter")
    principal: str | None = None
    above_only = False
    if raw:
        if match := PRINCIPAL_FILTER.match(raw):
            principal = str(uuid.UUID(match["id"]))
        elif AT_SCOPE_FILTER.match(raw):
            above_only = True
        else:
            raise arm_error(
                request, 400, "InvalidFilterInQueryString", f"The filter '{raw}' is not supported by the stand-in."
            )
    listed = []
    for assignment in world.arm.role_assignments.values():
        props = assignment["properties"]
        if principal is not None and props["principalId"].lower() != principal:
            continue
        at_or_above = arm_rbac.covers(props["scope"], scope)
        below = arm_rbac.covers(scope, props["scope"])
        if at_or_above or (below and not above_only):
            listed.append(assignment)
    return JSONResponse({"value": listed})
