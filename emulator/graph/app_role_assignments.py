"""App role assignments (admin consent to application permissions): list, grant, read and revoke them."""

from __future__ import annotations

import base64
import secrets

from ..clock import iso
from ..state import JsonObject, World
from .authorization import GRANT_READS, GRANT_ROLES, READ_APPS, require
from .calls import GUID, GraphCall, GraphResult, method_not_allowed, not_found
from .odata import CONTEXT, collection

# What Graph answers while a just-created principal is not visible to the write path yet, besides 404:
# terraform-provider-azuread's app role assignment resource retries on this message, and
# microsoft-graph-docs-contrib issue 1407 reports it right after creating a service principal.
NOT_A_VALID_REFERENCE = "Not a valid reference update."


def assignments(world: World, call: GraphCall, sp: JsonObject, rest: list[str], by_resource: bool) -> GraphResult:
    tenant = call.tenant
    side = "resourceId" if by_resource else "principalId"
    nav = "appRoleAssignedTo" if by_resource else "appRoleAssignments"
    if not rest:
        if call.method == "GET":
            require(call, READ_APPS | GRANT_ROLES)
            candidates = tenant.assignments_of(sp["id"]) if side == "principalId" else tenant.assignments.values()
            rows = [a for a in candidates if a[side] == sp["id"] and world.replication.visible(a["id"])]
            return collection(call, f"servicePrincipals('{sp['id']}')/{nav}", rows, "microsoft.graph.appRoleAssignment")
        if call.method == "POST":
            assignment = _grant(world, call, sp, by_resource)
            body = dict(assignment, **{"@odata.context": f"{CONTEXT}#servicePrincipals('{sp['id']}')/{nav}/$entity"})
            return GraphResult(201, body)
        raise method_not_allowed(call)
    existing = tenant.assignments.get(rest[0])
    if existing is None or existing[side] != sp["id"] or not world.replication.visible(rest[0]):
        raise not_found(call, rest[0])
    if call.method == "GET":
        require(call, READ_APPS | GRANT_ROLES)
        return GraphResult(200, existing)
    if call.method == "DELETE":
        require(call, GRANT_ROLES)
        tenant.remove_assignment(rest[0])
        world.touch()
        return GraphResult(204)
    raise method_not_allowed(call)


def _grant(world: World, call: GraphCall, sp: JsonObject, by_resource: bool) -> JsonObject:
    require(call, GRANT_ROLES)
    require(call, GRANT_READS)
    body = {k: v for k, v in call.json().items() if not k.startswith("@odata.")}
    unknown = set(body) - {
        "principalId",
        "resourceId",
        "appRoleId",
        "principalType",
        "principalDisplayName",
        "resourceDisplayName",
    }
    if unknown:
        raise call.error(
            400,
            "Request_BadRequest",
            f"The property '{sorted(unknown)[0]}' does not exist on type 'microsoft.graph.appRoleAssignment'.",
        )
    for prop in ("principalId", "resourceId", "appRoleId"):
        if not isinstance(body.get(prop), str) or not GUID.match(body[prop]):
            raise call.error(
                400,
                "Request_BadRequest",
                f"Invalid value specified for property '{prop}' of resource 'AppRoleAssignment'.",
            )
    tenant = call.tenant
    path_side, path_prop = ("resourceId", "resource") if by_resource else ("principalId", "principal")
    if body[path_side].lower() != sp["id"]:
        raise call.error(
            400,
            "Request_BadRequest",
            f"The {path_prop} id in the body does not match the service principal addressed.",
        )
    principal = tenant.service_principals.get(body["principalId"].lower())
    if principal is not None and not world.replication.visible(principal["id"]):
        # Both of Graph's answers while a new principal replicates: 404 first, then (the write path
        # half-aware of it) 400 "Not a valid reference update.", so clients meet both in one lag.
        lag = world.replication.lag_ms["servicePrincipal"]
        if world.replication.remaining_ms(principal["id"]) <= lag / 2:
            raise call.error(400, "Request_BadRequest", NOT_A_VALID_REFERENCE)
        raise not_found(call, body["principalId"])
    if principal is None:
        raise not_found(call, body["principalId"])
    resource = tenant.service_principals.get(body["resourceId"].lower())
    if resource is None or not world.replication.visible(resource["id"]):
        raise not_found(call, body["resourceId"])
    role = next((r for r in resource.get("appRoles", []) if r["id"] == body["appRoleId"].lower()), None)
    if role is None or "Application" not in role.get("allowedMemberTypes", []) or not role.get("isEnabled", True):
        raise call.error(
            400,
            "Request_BadRequest",
            f"Permission being assigned was not found on application '{resource['appId']}'.",
        )
    duplicate = any(
        a["resourceId"] == resource["id"] and a["appRoleId"] == role["id"]
        for a in tenant.assignments_of(principal["id"])
    )
    if duplicate:
        raise call.error(400, "Request_BadRequest", "Permission being assigned already exists on the object.")
    assignment_id = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    assignment = {
        "id": assignment_id,
        "deletedDateTime": None,
        "appRoleId": role["id"],
        "createdDateTime": iso(world.clock.now()),
        "principalDisplayName": principal.get("displayName"),
        "principalId": principal["id"],
        "principalType": "ServicePrincipal",
        "resourceDisplayName": resource.get("displayName"),
        "resourceId": resource["id"],
    }
    tenant.add_assignment(assignment)
    world.replication.created("appRoleAssignment", assignment_id)
    world.touch()
    return assignment
