"""Builds the stand-in's world from a seed file: tenants, first-party resource APIs, the managed identity.

Resource service principals get deterministic object ids (derived from tenant and appId), so
two runs from the same seed agree on every id a test might print.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from .clock import iso
from .state import JsonObject, Tenant, Vault, World

DEFAULT_SEED = Path(__file__).with_name("seed.json")
GRAPH_RESOURCE_KEY = "graph"


def load_seed(path: Path | None) -> JsonObject:
    data: JsonObject = json.loads((path or DEFAULT_SEED).read_text())
    return data


def _stable_id(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)))


def resource_service_principal(tenant: Tenant, resource: JsonObject, created: str) -> JsonObject:
    app_roles = [
        {
            "allowedMemberTypes": ["Application"],
            "description": f"Allows the app to {value} without a signed-in user.",
            "displayName": value,
            "id": role_id,
            "isEnabled": True,
            "origin": "Application",
            "value": value,
        }
        for value, role_id in resource["appRoles"].items()
    ]
    return {
        "id": _stable_id(tenant.id, resource["appId"]),
        "deletedDateTime": None,
        "accountEnabled": True,
        "appDisplayName": resource["displayName"],
        "appId": resource["appId"],
        # Microsoft's first-party apps are owned by Microsoft's own tenant, f8cdef31-a31e-4b4a-93e4-5f571e91255a
        # (https://learn.microsoft.com/troubleshoot/entra/entra-id/governance/verify-first-party-apps-sign-in).
        "appOwnerOrganizationId": "f8cdef31-a31e-4b4a-93e4-5f571e91255a",
        "appRoleAssignmentRequired": False,
        "createdDateTime": created,
        "displayName": resource["displayName"],
        "servicePrincipalNames": list(resource["servicePrincipalNames"]),
        "servicePrincipalType": "Application",
        "signInAudience": "AzureADMultipleOrgs",
        "tags": [],
        "appRoles": app_roles,
        "oauth2PermissionScopes": [],
        "keyCredentials": [],
        "passwordCredentials": [],
    }


def add_tenant(world: World, seed: JsonObject, spec: JsonObject) -> Tenant:
    """Create a tenant with the first-party resource service principals the spec lists."""
    tenant_id = str(uuid.UUID(spec.get("id") or str(uuid.uuid4())))
    if tenant_id in world.tenants:
        raise ValueError(f"tenant {tenant_id} already exists")
    tenant = Tenant(
        id=tenant_id,
        display_name=spec.get("displayName") or f"Tenant {tenant_id[:8]}",
        default_domain=spec.get("defaultDomain") or f"tenant{tenant_id[:8]}.onmicrosoft.com",
    )
    tenant.app_management_policy = {
        "id": "00000000-0000-0000-0000-000000000000",
        "description": "Default app management tenant policy",
        "displayName": "Default app management tenant policy",
        "isEnabled": False,
        "applicationRestrictions": {"passwordCredentials": [], "keyCredentials": []},
        "servicePrincipalRestrictions": {"passwordCredentials": [], "keyCredentials": []},
    }
    created = iso(world.clock.now())
    for key in spec.get("resourceApps", []):
        resource = seed["resourceApps"].get(key)
        if resource is None:
            raise ValueError(f"unknown resource app {key!r}; known: {sorted(seed['resourceApps'])}")
        sp = resource_service_principal(tenant, resource, created)
        tenant.add_service_principal(sp)
    world.tenants[tenant.id] = tenant
    world.touch()
    return tenant


def grant_app_roles(world: World, tenant: Tenant, principal_id: str, resource_app_id: str, values: list[str]) -> None:
    """Admin consent outside Graph (as a portal admin would), for seeding and the admin API."""
    resource = tenant.service_principal_by_app_id(resource_app_id)
    if resource is None:
        raise ValueError(f"tenant {tenant.id} has no service principal for {resource_app_id}")
    principal = tenant.service_principals[principal_id]
    by_value = {r["value"]: r for r in resource["appRoles"]}
    for value in values:
        role = by_value.get(value)
        if role is None:
            raise ValueError(f"{resource['displayName']} has no app role {value!r}")
        exists = any(
            a["resourceId"] == resource["id"] and a["appRoleId"] == role["id"]
            for a in tenant.assignments_of(principal_id)
        )
        if exists:
            continue
        assignment_id = _stable_id(tenant.id, principal_id, resource["id"], role["id"])
        tenant.add_assignment(
            {
                "id": assignment_id,
                "deletedDateTime": None,
                "appRoleId": role["id"],
                "createdDateTime": iso(world.clock.now()),
                "principalDisplayName": principal.get("displayName"),
                "principalId": principal_id,
                "principalType": "ServicePrincipal",
                "resourceDisplayName": resource["displayName"],
                "resourceId": resource["id"],
            }
        )
    world.touch()


def build_world(seed: JsonObject) -> World:
    home_spec = seed["home_tenant"]
    vault_spec = seed.get("vault", {})
    vault = Vault(
        tenant_id=home_spec["id"],
        soft_delete_retention_days=int(vault_spec.get("softDeleteRetentionDays", 90)),
        purge_protection=bool(vault_spec.get("purgeProtection", True)),
    )
    world = World(home_spec["id"], vault)
    home = add_tenant(world, seed, home_spec)
    for spec in seed.get("customer_tenants", []):
        add_tenant(world, seed, spec)

    identity = seed["managed_identity"]
    add_managed_identity(world, seed, home, identity)
    world.default_managed_identity = identity["clientId"]
    return world


def add_managed_identity(world: World, seed: JsonObject, home: Tenant, identity: JsonObject) -> None:
    object_id, client_id = identity["objectId"], identity["clientId"]
    home.add_service_principal(
        {
            "id": object_id,
            "deletedDateTime": None,
            "accountEnabled": True,
            "appId": client_id,
            "appOwnerOrganizationId": None,
            "createdDateTime": iso(world.clock.now()),
            "displayName": identity["displayName"],
            "servicePrincipalNames": [client_id],
            "servicePrincipalType": "ManagedIdentity",
            "signInAudience": "AzureADMyOrg",
            "tags": [],
            "appRoles": [],
            "oauth2PermissionScopes": [],
            "keyCredentials": [],
            "passwordCredentials": [],
        }
    )
    graph_app_id = seed["resourceApps"][GRAPH_RESOURCE_KEY]["appId"]
    grant_app_roles(world, home, object_id, graph_app_id, list(identity.get("graphRoles", [])))
    if identity.get("vaultRole"):
        world.vault.role_assignments[object_id] = identity["vaultRole"]
    world.managed_identities[client_id] = (home.id, object_id)


def describe(world: World) -> dict[str, Any]:
    """A secret-free summary of the world, for the admin API and for debugging tests."""
    tenants = {}
    for tenant in world.tenants.values():
        tenants[tenant.id] = {
            "displayName": tenant.display_name,
            "applications": [
                {k: a.get(k) for k in ("id", "appId", "displayName", "uniqueName", "tags", "signInAudience")}
                | {
                    "passwordKeyIds": [c["keyId"] for c in a.get("passwordCredentials", [])],
                    "keyCredentialIds": [c["keyId"] for c in a.get("keyCredentials", [])],
                    "owners": tenant.owners.get(a["id"], []),
                    "federatedCredentials": [
                        {k: c.get(k) for k in ("name", "issuer", "subject", "audiences")}
                        for c in tenant.federated_credentials.get(a["id"], {}).values()
                    ],
                }
                for a in tenant.applications.values()
            ],
            "deletedApplications": [a["id"] for a in tenant.deleted_applications.values()],
            "servicePrincipals": [
                {k: s.get(k) for k in ("id", "appId", "displayName", "servicePrincipalType")}
                for s in tenant.service_principals.values()
            ],
            "appRoleAssignments": list(tenant.assignments.values()),
            "appManagementPolicy": tenant.app_management_policy,
        }
    secrets = {
        record.name: {
            "versions": [
                {
                    "version": v.version,
                    "enabled": v.enabled,
                    "exp": v.expires,
                    "tags": v.tags,
                    "contentType": v.content_type,
                }
                for v in record.versions
            ]
        }
        for record in world.vault.secrets.values()
    }
    return {
        "homeTenantId": world.home_tenant_id,
        "now": iso(world.clock.now()),
        "tenants": tenants,
        "vault": {
            "secrets": secrets,
            "deletedSecrets": sorted(r.name for r in world.vault.deleted_secrets.values()),
            "roleAssignments": world.vault.role_assignments,
        },
        "arm": {
            "subscriptions": world.arm.subscriptions,
            "workspaces": list(world.arm.workspaces.values()),
            "roleAssignments": list(world.arm.role_assignments.values()),
        },
    }
