"""The tenant's default app management policy (policies/defaultAppManagementPolicy): read and update it."""

from __future__ import annotations

from ..state import World
from .authorization import READ_POLICY, WRITE_POLICY, require
from .calls import GraphCall, GraphResult, method_not_allowed
from .odata import CONTEXT


def app_policy(world: World, call: GraphCall) -> GraphResult:
    policy = call.tenant.app_management_policy
    if call.method == "GET":
        require(call, READ_POLICY)
        return GraphResult(
            200, dict(policy, **{"@odata.context": f"{CONTEXT}#policies/defaultAppManagementPolicy/$entity"})
        )
    if call.method == "PATCH":
        require(call, WRITE_POLICY)
        body = {k: v for k, v in call.json().items() if not k.startswith("@odata.")}
        unknown = set(body) - {
            "isEnabled",
            "applicationRestrictions",
            "servicePrincipalRestrictions",
            "displayName",
            "description",
        }
        if unknown:
            raise call.error(
                400,
                "Request_BadRequest",
                f"The property '{sorted(unknown)[0]}' does not exist on type 'microsoft.graph.tenantAppManagementPolicy'.",
            )
        policy.update(body)
        world.touch()
        return GraphResult(204)
    raise method_not_allowed(call)
