"""Azure RBAC for ARM and Log Analytics: built-in role definitions, who may do what at a scope, ARM's errors.

Role ids and actions are the built-in role definitions as Microsoft Learn publishes them ("Azure built-in
roles": https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/privileged,
.../built-in-roles/security, .../built-in-roles/monitor). Only the roles the product's flows touch are
here; a role assignment naming another role id is refused when it is created (arm.py).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from functools import lru_cache

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import arm_conditions
from .arm_conditions import Attributes
from .errors import ServiceError
from .state import JsonObject, World
from .tokens import Caller


@dataclass(frozen=True)
class RoleDefinition:
    name: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()


OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
USER_ACCESS_ADMINISTRATOR = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
RBAC_ADMINISTRATOR = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"
SENTINEL_READER = "8d289c81-5878-46d4-8554-54e1e3d8b5cb"
SENTINEL_RESPONDER = "3e150937-b8fe-4cfb-8069-0eaf05ecd056"
LOG_ANALYTICS_READER = "73c42c96-874c-492b-b04d-ab87d138a893"

# The Sentinel roles list many Microsoft.SecurityInsights actions; kept here are those that decide what the
# stand-in serves (workspace read, query, role assignment read) plus their notActions, verbatim.
_SENTINEL_COMMON = (
    "Microsoft.OperationalInsights/workspaces/analytics/query/action",
    "Microsoft.OperationalInsights/workspaces/*/read",
    "Microsoft.OperationalInsights/workspaces/query/read",
    "Microsoft.OperationalInsights/workspaces/query/*/read",
    "Microsoft.Authorization/*/read",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
)
_SENTINEL_NOT = (
    "Microsoft.SecurityInsights/ConfidentialWatchlists/*",
    "Microsoft.OperationalInsights/workspaces/query/ConfidentialWatchlist/*",
)

BUILT_IN_ROLES: dict[str, RoleDefinition] = {
    OWNER: RoleDefinition("Owner", ("*",)),
    CONTRIBUTOR: RoleDefinition(
        "Contributor",
        ("*",),
        (
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
        ),
    ),
    USER_ACCESS_ADMINISTRATOR: RoleDefinition(
        "User Access Administrator", ("*/read", "Microsoft.Authorization/*", "Microsoft.Support/*")
    ),
    RBAC_ADMINISTRATOR: RoleDefinition(
        "Role Based Access Control Administrator",
        (
            "Microsoft.Authorization/roleAssignments/write",
            "Microsoft.Authorization/roleAssignments/delete",
            "*/read",
            "Microsoft.Support/*",
        ),
    ),
    SENTINEL_READER: RoleDefinition(
        "Microsoft Sentinel Reader", ("Microsoft.SecurityInsights/*/read", *_SENTINEL_COMMON), _SENTINEL_NOT
    ),
    SENTINEL_RESPONDER: RoleDefinition(
        "Microsoft Sentinel Responder",
        ("Microsoft.SecurityInsights/*/read", "Microsoft.SecurityInsights/incidents/*", *_SENTINEL_COMMON),
        ("Microsoft.SecurityInsights/incidents/*/Delete", *_SENTINEL_NOT),
    ),
    LOG_ANALYTICS_READER: RoleDefinition(
        "Log Analytics Reader",
        (
            "*/read",
            "Microsoft.OperationalInsights/workspaces/analytics/query/action",
            "Microsoft.OperationalInsights/workspaces/search/action",
            "Microsoft.Support/*",
        ),
        ("Microsoft.OperationalInsights/workspaces/sharedKeys/read",),
    ),
}

ROLE_DEFINITION_ID = re.compile(
    r"^(?:/subscriptions/[^/]+)?/providers/Microsoft\.Authorization/roleDefinitions/(?P<guid>[0-9a-fA-F-]{36})$",
    re.IGNORECASE,
)


def role_guid(role_definition_id: str) -> str:
    """The GUID a roleDefinitionId names, whether given bare or as a (subscription-scoped) resource id."""
    match = ROLE_DEFINITION_ID.match(role_definition_id.strip())
    return (match["guid"] if match else role_definition_id.strip()).lower()


@lru_cache(maxsize=256)
def _pattern(action: str) -> re.Pattern[str]:
    # Actions are case-insensitive and `*` matches any run of characters, `/` included ("*/read" covers
    # every read): https://learn.microsoft.com/azure/role-based-access-control/role-definitions#actions-format
    return re.compile("^" + re.escape(action).replace(r"\*", ".*") + "$", re.IGNORECASE)


def permits(role: RoleDefinition, action: str) -> bool:
    # Effective permissions are Actions minus NotActions:
    # https://learn.microsoft.com/azure/role-based-access-control/role-definitions#notactions
    return any(_pattern(a).match(action) for a in role.actions) and not any(
        _pattern(n).match(action) for n in role.not_actions
    )


def covers(scope: str, target: str) -> bool:
    """Role assignments are inherited by child scopes (resource groups and resources below a subscription)."""
    scope, target = scope.rstrip("/").lower(), target.rstrip("/").lower()
    return scope == "" or target == scope or target.startswith(scope + "/")


def attributes_of(assignment: JsonObject) -> dict[str, str]:
    """A role assignment's condition attributes (conditions-authorization-actions-attributes)."""
    props = assignment["properties"]
    return {
        "RoleDefinitionId": role_guid(props["roleDefinitionId"]),
        "PrincipalId": props["principalId"],
        "PrincipalType": props.get("principalType") or "",
    }


def decide(world: World, principal_id: str, action: str, target: str, attributes: Attributes | None = None) -> str:
    """ "granted", "condition" (only conditioned assignments would grant it, and none is fulfilled) or "denied".

    Assignments still propagating (Replication kind "roleAssignment") do not count yet: Azure RBAC
    changes take a while to be enforced (https://learn.microsoft.com/azure/role-based-access-control/troubleshooting,
    "Symptom - Role assignment changes are not being detected")."""
    unmet_condition = False
    for key, assignment in world.arm.role_assignments.items():
        props = assignment["properties"]
        if props["principalId"].lower() != principal_id.lower() or not covers(props["scope"], target):
            continue
        role = BUILT_IN_ROLES.get(role_guid(props["roleDefinitionId"]))
        if role is None or not permits(role, action) or not world.replication.visible(key):
            continue
        condition = props.get("condition")
        if condition is None or arm_conditions.satisfied(condition, action, attributes or {}):
            return "granted"
        unmet_condition = True
    return "condition" if unmet_condition else "denied"


def arm_error(request: Request | None, status: int, code: str, message: str) -> ServiceError:
    """ARM's error body, `{"error": {"code", "message"}}` (common-types/resource-management ErrorResponse)."""
    response = JSONResponse({"error": {"code": code, "message": message}}, status)
    with_ids(request, response)
    return ServiceError(response)


def with_ids(request: Request | None, response: Response) -> Response:
    # ARM's proxy adds x-ms-correlation-request-id to every request (the caller's, if it sent one) and
    # providers answer with x-ms-request-id (Azure/azure-resource-manager-rpc, v1.0/common-api-details.md).
    request_id = str(uuid.uuid4())
    correlation = (request.headers.get("x-ms-correlation-request-id") if request else None) or request_id
    response.headers["x-ms-request-id"] = request_id
    response.headers["x-ms-correlation-request-id"] = correlation
    return response


def authorize(
    world: World, request: Request, caller: Caller, action: str, scope: str, attributes: Attributes | None = None
) -> None:
    """Raise ARM's 403 unless the caller's effective, propagated role assignments allow `action` at `scope`."""
    decision = decide(world, caller.object_id, action, scope, attributes)
    if decision == "granted":
        return
    # Wording of both denials: https://learn.microsoft.com/azure/role-based-access-control/troubleshooting
    # ("Symptom - Unable to assign a role"); that page shows the message only, the code is ARM's AuthorizationFailed.
    reason = "authorization or an ABAC condition not fulfilled" if decision == "condition" else "authorization"
    raise arm_error(
        request,
        403,
        "AuthorizationFailed",
        f"The client '{caller.app_id or caller.object_id}' with object id '{caller.object_id}' does not have "
        f"{reason} to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was "
        "recently granted, please refresh your credentials.",
    )
