"""Who may call Graph and what: the access token, the caller's app roles, and ownership of what it changes.

Authorization follows the caller's app roles the way Graph does: `Application.ReadWrite.OwnedBy` may
create applications (and becomes their owner) but may change only what it owns; granting app roles
needs `AppRoleAssignment.ReadWrite.All` together with a permission that reads applications.
emulator/FIDELITY.md gives the source of each rule.
"""

from __future__ import annotations

from starlette.requests import Request

from ..errors import ServiceError, graph_error
from ..state import Tenant, World
from ..tokens import Caller, TokenError, TokenService
from .calls import GraphCall

READ_APPS = {
    "Application.Read.All",
    "Application.ReadWrite.All",
    "Application.ReadWrite.OwnedBy",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
}
WRITE_ALL_APPS = {"Application.ReadWrite.All", "Directory.ReadWrite.All"}
OWNED_APPS = "Application.ReadWrite.OwnedBy"
GRANT_ROLES = {"AppRoleAssignment.ReadWrite.All"}
# Granting also needs to read the principal and the resource: Graph's permission table for
# POST /servicePrincipals/{id}/appRoleAssignedTo lists "AppRoleAssignment.ReadWrite.All and
# Application.Read.All" (higher: "... and Directory.Read.All"); Application.ReadWrite.OwnedBy is not
# listed, and microsoft-graph-docs-contrib issue 3476 reports a 403 without the read permission.
# https://learn.microsoft.com/graph/api/serviceprincipal-post-approleassignedto
GRANT_READS = {"Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
READ_POLICY = {"Policy.Read.All", "Policy.ReadWrite.ApplicationConfiguration"}
WRITE_POLICY = {"Policy.ReadWrite.ApplicationConfiguration"}
READ_ORG = {"Organization.Read.All", "Organization.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}


def authenticate(request: Request, tokens: TokenService, world: World) -> tuple[Caller, Tenant]:
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not token:
        raise graph_error(request, 401, "InvalidAuthenticationToken", "Access token is empty.")
    try:
        # Only this cloud's Graph: "access tokens acquired for a national cloud deployment are not interchangeable
        # with those acquired for the global service or any other national cloud" (FIDELITY.md C3).
        caller = tokens.verify(token, set(tokens.posture.graph))
    except TokenError as exc:
        message = {
            "expired": "Access token has expired or is not yet valid.",
            "audience": "Access token validation failure. Invalid audience.",
        }.get(exc.kind, "Access token validation failure.")
        raise graph_error(request, 401, "InvalidAuthenticationToken", message) from exc
    tenant = world.tenants.get(caller.tenant_id)
    if tenant is None:
        raise graph_error(
            request, 401, "InvalidAuthenticationToken", "Access token validation failure. Invalid issuer."
        )
    return caller, tenant


def require(call: GraphCall, roles: set[str]) -> None:
    if not call.caller.roles & roles:
        raise denied(call)


def require_manage(call: GraphCall, owned_object_id: str) -> None:
    roles = call.caller.roles
    if roles & WRITE_ALL_APPS:
        return
    if OWNED_APPS in roles and call.caller.object_id in call.tenant.owners.get(owned_object_id, []):
        return
    raise denied(call)


def denied(call: GraphCall) -> ServiceError:
    return call.error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
