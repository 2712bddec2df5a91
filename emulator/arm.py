"""Azure Resource Manager, the subset the product touches: Log Analytics workspaces and role assignments on them.

Shapes follow the REST specs in Azure/azure-rest-api-specs; errors are ARM's `{"error": {"code", "message"}}`
with `x-ms-request-id` and `x-ms-correlation-request-id` (arm_rbac.arm_error). Authorization is Azure RBAC
(arm_rbac.py) with the delegation conditions of arm_conditions.py; role assignments are arm_assignments.py, the
permissions and role assignment lists arm_lists.py.
Each behaviour and its source is a row in emulator/FIDELITY.md ("Azure Resource Manager").
"""

from __future__ import annotations

import re
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import arm_lists
from .arm_assignments import RoleAssignmentCalls
from .arm_rbac import arm_error, authorize, with_ids
from .state import JsonObject, World
from .tokens import Caller, TokenError, TokenService

# The audiences ARM accepts, "including forward slash" (https://learn.microsoft.com/azure/azure-monitor/logs/api/errors,
# "Invalid token audience"), per cloud in emulator/clouds.py; the stand-in's tokens carry the resource without its
# trailing slash, so both forms.


def _listed(audiences: frozenset[str]) -> str:
    """The allowed audiences as ARM's answer lists them: quoted, the URIs with their slash."""
    return ",".join(sorted(f"'{a}'" for a in audiences if a.endswith("/")))


WORKSPACE_TYPE = "Microsoft.OperationalInsights/workspaces"
READ_WORKSPACE = "Microsoft.OperationalInsights/workspaces/read"

ASSIGNMENT_PATH = re.compile(
    r"^(?P<scope>/.+)/providers/Microsoft\.Authorization/roleAssignments/(?P<name>[^/]+)$", re.I
)
WORKSPACE_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.OperationalInsights/"
    r"workspaces/(?P<name>[^/]+)$",
    re.I,
)
SUBSCRIPTION = re.compile(r"^/subscriptions/(?P<sub>[^/]+)", re.I)


def add_workspace(world: World, spec: JsonObject) -> JsonObject:
    """A Log Analytics workspace in a subscription of a tenant, as the customer would have created it."""
    tenant_id, sub = str(uuid.UUID(spec["tenantId"])), str(uuid.UUID(spec["subscriptionId"]))
    if world.tenant(tenant_id) is None:
        raise ValueError(f"unknown tenant {tenant_id}")
    owner = world.arm.subscriptions.setdefault(sub, tenant_id)
    if owner != tenant_id:
        raise ValueError(f"subscription {sub} belongs to tenant {owner}")
    rg, name = str(spec["resourceGroup"]), str(spec["name"])
    resource_id = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{WORKSPACE_TYPE}/{name}"
    if resource_id.lower() in world.arm.workspaces:
        raise ValueError(f"workspace {resource_id} already exists")
    workspace = {
        "id": resource_id,
        "name": name,
        "subscriptionId": sub,
        "resourceGroup": rg,
        "tenantId": tenant_id,
        "location": spec.get("location", "westeurope"),
        "customerId": str(uuid.uuid4()),
    }
    world.arm.workspaces[resource_id.lower()] = workspace
    world.touch()
    return workspace


def workspace_json(workspace: JsonObject) -> JsonObject:
    """Workspaces_Get's shape (Microsoft.OperationalInsights stable/2022-10-01/Workspaces.json), trimmed."""
    return {
        "id": workspace["id"],
        "name": workspace["name"],
        "type": WORKSPACE_TYPE,
        "location": workspace["location"],
        "properties": {
            "customerId": workspace["customerId"],
            "provisioningState": "Succeeded",
            "sku": {"name": "PerGB2018"},
            "retentionInDays": 30,
        },
    }


class ArmService:
    def __init__(self, world: World, tokens: TokenService) -> None:
        self.world = world
        self.tokens = tokens

    def routes(self) -> list[Route]:
        return [Route("/subscriptions/{rest:path}", self.dispatch, methods=["GET", "PUT", "DELETE"])]

    async def dispatch(self, request: Request) -> Response:
        path = request.url.path.rstrip("/")
        if not request.query_params.get("api-version"):
            raise arm_error(
                request,
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        sub = SUBSCRIPTION.match(path)
        assert sub is not None  # the route's prefix
        caller = self._authenticate(request, sub["sub"])
        if request.method == "GET" and (match := arm_lists.PERMISSIONS_PATH.match(path)):
            return with_ids(request, arm_lists.permissions(self.world, request, caller, match["scope"]))
        if request.method == "GET" and (match := arm_lists.ASSIGNMENTS_PATH.match(path)):
            return with_ids(request, arm_lists.role_assignments(self.world, request, caller, match["scope"]))
        if match := ASSIGNMENT_PATH.match(path):
            calls = RoleAssignmentCalls(self.world, request, caller, match["scope"], match["name"])
            return with_ids(request, await calls.run())
        if (match := WORKSPACE_PATH.match(path)) and request.method == "GET":
            return with_ids(request, self._workspace(request, caller, path, match))
        raise arm_error(request, 404, "ResourceNotFound", f"The stand-in serves no ARM resource at '{path}'.")

    def _authenticate(self, request: Request, subscription: str) -> Caller:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            raise arm_error(
                request, 401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
            )
        try:
            caller = self.tokens.verify(header[7:].strip(), set(self.tokens.posture.resource_manager))
        except TokenError as exc:
            if exc.kind == "expired":
                raise arm_error(request, 401, "ExpiredAuthenticationToken", "The access token has expired.") from exc
            if exc.kind == "audience":
                raise arm_error(
                    request,
                    401,
                    "InvalidAuthenticationTokenAudience",
                    "The access token has been obtained for wrong audience or resource. It should exactly match with "
                    f"one of the allowed audiences {_listed(self.tokens.posture.resource_manager)}.",
                ) from exc
            raise arm_error(request, 401, "InvalidAuthenticationToken", "The access token is invalid.") from exc
        owner = self.world.arm.subscriptions.get(subscription.lower())
        if owner is None:
            raise arm_error(
                request, 404, "SubscriptionNotFound", f"The subscription '{subscription}' could not be found."
            )
        if owner != caller.tenant_id:
            raise arm_error(
                request,
                401,
                "InvalidAuthenticationTokenTenant",
                f"The access token is from the wrong issuer '{caller.issuer}'. It must match the tenant "
                f"'https://sts.windows.net/{owner}/' associated with this subscription. Please use the authority (URL) "
                f"'https://login.windows.net/{owner}' to get the token.",
            )
        return caller

    def _workspace(self, request: Request, caller: Caller, path: str, match: re.Match[str]) -> Response:
        # ARM authorizes before it looks: without read access a missing resource is a 403 too.
        authorize(self.world, request, caller, READ_WORKSPACE, path)
        workspace = self.world.arm.workspaces.get(path.lower())
        if workspace is None:
            group = (match["sub"].lower(), match["rg"].lower())
            groups = {(w["subscriptionId"], w["resourceGroup"].lower()) for w in self.world.arm.workspaces.values()}
            if group not in groups:  # the stand-in's resource groups are those its workspaces live in
                raise arm_error(
                    request, 404, "ResourceGroupNotFound", f"Resource group '{match['rg']}' could not be found."
                )
            raise arm_error(
                request,
                404,
                "ResourceNotFound",
                f"The Resource '{WORKSPACE_TYPE}/{match['name']}' under resource group '{match['rg']}' was not found. "
                "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            )
        return JSONResponse(workspace_json(workspace))
