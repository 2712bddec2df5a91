"""App management policies: the tenant default (policies/defaultAppManagementPolicy, read and update) and which
restrictions apply to an application's credentials (the tenant default, or the policy assigned to the app)."""

from __future__ import annotations

import re
from datetime import timedelta

from ..clock import parse_iso
from ..errors import ServiceError
from ..state import JsonObject, Tenant, World
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


def restrictions_for(tenant: Tenant, app: JsonObject, credential_kind: str) -> tuple[str, list[JsonObject]]:
    """The policy id and the restrictions of one credential kind that apply to an application now.

    An appManagementPolicy assigned to the application overrides the tenant default: "If this resource
    is not configured for an application or service principal, the restrictions default to the settings
    in the tenantAppManagementPolicy object" (https://learn.microsoft.com/graph/api/resources/appmanagementpolicy).
    The tenant default keeps them under `applicationRestrictions`, an assigned policy under `restrictions`.
    A restriction whose `state` is disabled is not evaluated, and one with restrictForAppsCreatedAfterDateTime
    applies to apps created on or after that date (passwordCredentialConfiguration, keyCredentialConfiguration).
    `excludeActors` is not modelled: the stand-in enforces the restriction anyway.
    """
    assigned = tenant.app_policies.get(app["id"])
    if assigned is not None and assigned.get("isEnabled", True):
        policy, restrictions = assigned, assigned.get("restrictions") or {}
    else:
        policy = tenant.app_management_policy
        if not policy.get("isEnabled"):
            return "", []
        restrictions = policy.get("applicationRestrictions") or {}
    created = parse_iso(app["createdDateTime"])
    applying = []
    for restriction in restrictions.get(credential_kind) or []:
        if str(restriction.get("state") or "enabled").lower() == "disabled":
            continue
        applies_after = restriction.get("restrictForAppsCreatedAfterDateTime")
        if applies_after and created < parse_iso(applies_after):
            continue
        applying.append(restriction)
    return str(policy.get("id") or ""), applying


def lifetime_exceeded(call: GraphCall, policy_id: str) -> ServiceError:
    """Graph's answer to a credential longer than the policy allows (recorded for addPassword:
    OfficeDev/microsoft-365-agents-toolkit issue 10998; the stand-in gives certificates the same answer)."""
    message = f"Credential lifetime exceeds the max value allowed as per assigned policy '{policy_id}'."
    details = [{"code": "InvalidKeyEndDate", "message": message, "target": "EndDate"}]
    return call.error(400, "CredentialInvalidLifetimeAsPerAppPolicy", message, details)


def parse_duration(text: str) -> timedelta:
    """ISO 8601 durations as app management policies write them (P90D, P1Y, PT12H...)."""
    m = re.fullmatch(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?", text)
    if not m:
        raise ValueError(f"not an ISO 8601 duration: {text}")
    years, months, days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return timedelta(days=years * 365 + months * 30 + days, hours=hours, minutes=minutes, seconds=seconds)
