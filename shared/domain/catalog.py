"""The integration catalog: profiles callers pick by id, each granted only roles a reviewed allow-list names.

The managed identity can grant any app role (AppRoleAssignment.ReadWrite.All), so this file is a
security boundary, and it is default deny. `allowedPermissions` lists every (resource app id, role
value, role id) a profile may ask for; a profile asking for anything else is refused. A role that
can write, act on devices or mail, or change identity or policy is marked `high` with a reason, and
only a profile that declares `highImpact` may ask for it: such a profile is one a caller names on
purpose, never a default. Roles that would hand an integration's credential the tenant itself are
refused even if someone allow-lists them.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from shared.domain.clouds import CLOUDS, PUBLIC
from shared.domain.errors import NotInThisCloud, UnknownIntegration
from shared.domain.model import (
    AddOn,
    CredentialType,
    DirectoryRole,
    IntegrationProfile,
    ResourcePermissions,
    WorkspaceRole,
)
from shared.domain.registry import INTEGRATION_ID

CATALOG_FILE = Path(__file__).with_name("catalog.json")
# Wide enough for every published shape (Graph's `AuditLogsQuery-Entra.Read.All`, Exchange's
# `full_access_as_app`): what a role may be is the allow-list's decision, not the pattern's.
ROLE_VALUE = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{1,119}$")
MAX_REASON = 500
# The add-ons a registration has are recorded as one Key Vault tag (their ids, comma-separated), and a tag's
# value holds at most 256 characters (https://learn.microsoft.com/azure/key-vault/general/about-keys-secrets-certificates).
MAX_ADD_ON_TAG = 256
PLACEHOLDERS = re.compile(r"\{(\w+)\}")
STEP_FIELDS = {"appId", "servicePrincipalId", "tenantId"}
MAX_DIRECTORY_ROLES = 20
MAX_ROLE_NAME = 120

# A role may be reviewed as "read" only if its value says it reads: `<Resource>.Read[.<Scope>]` or
# `.ReadBasic` (Graph's resource.operation.constraint naming,
# https://learn.microsoft.com/security/zero-trust/develop/protected-api-example), and it does not read
# credentials that let the holder act as someone else.
# Defender for Cloud Apps publishes its one read role in lower case (`investigation.read`, as its service principal's
# appRoles and so the token's `roles` carry it; https://learn.microsoft.com/defender-cloud-apps/api-authentication-application
# writes it Investigation.read): that exact operation is read too.
READ_ONLY_VALUE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*\.(Read|ReadBasic|read)(\.[A-Za-z0-9-]+)?$")
CREDENTIAL_READS = (
    "DeviceLocalCredential.Read*",  # local administrator passwords of every device (Windows LAPS)
    "BitlockerKey.Read*",  # BitLocker recovery keys
)

# Never granted, whatever the allow-list says: each lets the credential take over the tenant (or every
# mailbox in it). Graph's descriptions: https://learn.microsoft.com/graph/permissions-reference.
TENANT_TAKEOVER = (
    "Application.ReadWrite.*",  # add a secret to any app (OwnedBy: to apps it creates) and act as it
    "AppRoleAssignment.ReadWrite.All",  # grant any app role to anything, itself included
    "DelegatedPermissionGrant.ReadWrite.*",  # grant any delegated permission on anyone's behalf
    "Directory.ReadWrite.All",
    "RoleManagement*.ReadWrite.*",  # assign directory roles, or rewrite their activation rules
    "RoleAssignmentSchedule.ReadWrite.*",  # activate directory roles through PIM
    "RoleEligibilitySchedule.ReadWrite.*",  # make anyone eligible for directory roles through PIM
    "PrivilegedAccess.ReadWrite.*",  # PIM for groups, including role-assignable ones
    "PrivilegedAssignmentSchedule.ReadWrite.*",
    "PrivilegedEligibilitySchedule.ReadWrite.*",
    "UserAuthenticationMethod.ReadWrite.*",  # replace an administrator's sign-in methods
    "User-PasswordProfile.ReadWrite.*",  # reset passwords
    "Policy.ReadWrite.*",  # Conditional Access, consent, authorization, authentication methods, federation
    "Domain.ReadWrite.All",  # federate a domain and sign in as any of its users
    "Organization.ReadWrite.All",  # tenant-wide settings, certificate-based authentication trust
    "full_access_as_app",  # Exchange Web Services: every mailbox, read and send
)
# The same roles by id on Microsoft Graph, so an allow-list entry cannot carry one under a harmless name.
TENANT_TAKEOVER_GRAPH_IDS = {
    "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9": "Application.ReadWrite.All",
    "18a4783c-866b-4cc7-a460-3d5e5662c884": "Application.ReadWrite.OwnedBy",
    "06b708a9-e830-4db3-a914-8e69da51d44f": "AppRoleAssignment.ReadWrite.All",
    "8e8e4742-1d95-4f68-9d56-6ee75648c72a": "DelegatedPermissionGrant.ReadWrite.All",
    "19dbc75e-c2e2-444c-a770-ec69d8559fc7": "Directory.ReadWrite.All",
    "9e3f62cf-ca93-4989-b6ce-bf83c28f9fe8": "RoleManagement.ReadWrite.Directory",
    "dd199f4a-f148-40a4-a2ec-f0069cc799ec": "RoleAssignmentSchedule.ReadWrite.Directory",
    "fee28b28-e1f3-4841-818e-2704dc62245f": "RoleEligibilitySchedule.ReadWrite.Directory",
    "50483e42-d915-4231-9639-7fdb7fd190e5": "UserAuthenticationMethod.ReadWrite.All",
    "7e05723c-0bb0-42da-be95-ae9f08a6e53c": "Domain.ReadWrite.All",
    "292d869f-3427-49a8-9dab-8c70152b74e9": "Organization.ReadWrite.All",
    "a402ca1c-2696-4531-972d-6e5ee4aa11ea": "Policy.ReadWrite.PermissionGrant",
    "01c0a623-fc9b-48e9-b794-0756f8e8f067": "Policy.ReadWrite.ConditionalAccess",
    "fb221be6-99f2-473f-bd32-01c6a0e9ca3b": "Policy.ReadWrite.Authorization",
    "be74164b-cff1-491c-8741-e671cb536e13": "Policy.ReadWrite.ApplicationConfiguration",
    "29c18626-4985-4dcd-85c0-193eef327366": "Policy.ReadWrite.AuthenticationMethod",
}
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
# The only Azure roles a catalog may give an app on a customer's workspace: Microsoft Sentinel's own
# (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/security). The customer's admin lets
# this service assign exactly these, by a condition on its Role Based Access Control Administrator role
# (docs/sentinel.md): anything else would be refused there too.
SENTINEL_ROLES = {
    "8d289c81-5878-46d4-8554-54e1e3d8b5cb": "Microsoft Sentinel Reader",
    "3e150937-b8fe-4cfb-8069-0eaf05ecd056": "Microsoft Sentinel Responder",
}

Impact = Literal["read", "high"]


class CatalogError(ValueError):
    pass


@dataclass(frozen=True)
class AllowedPermission:
    """One reviewed entry of `allowedPermissions`: an app role, by value and id, on one resource API."""

    resource_app_id: str
    value: str
    id: str
    impact: Impact
    reason: str | None = None


@dataclass(frozen=True)
class ResourceApi:
    """One entry of `resources`: a resource API by app id, and its token scope in each cloud it exists in."""

    app_id: str
    name: str
    scopes: Mapping[str, str]  # cloud name -> https://{application ID URI}/.default, or {app id}/.default


class Catalog:
    """The profiles of one cloud. Those whose resource APIs do not exist there, and such add-ons of the others, are
    kept aside: every path (a request, a registration's recorded add-ons, the listing) sees only what the cloud
    has, and asking for the rest says so (NotInThisCloud) rather than that it is unknown."""

    def __init__(
        self,
        profiles: Mapping[str, IntegrationProfile],
        allowed: Iterable[AllowedPermission] = (),
        cloud: str = PUBLIC.name,
    ) -> None:
        self.cloud = cloud
        here = {k: p for k, p in profiles.items() if _exists_in(p.clouds, cloud)}
        self._elsewhere = {k: p for k, p in profiles.items() if k not in here}
        self._add_ons_elsewhere = {
            k: {a.id: a for a in p.add_ons if not _exists_in(a.clouds, cloud)} for k, p in here.items()
        }
        self._profiles = {
            k: replace(p, add_ons=tuple(a for a in p.add_ons if _exists_in(a.clouds, cloud))) for k, p in here.items()
        }
        for profile in self._profiles.values():
            grants = (*profile.permissions, *(r for a in profile.add_ons for r in a.permissions))
            unscoped = [r.resource_name for r in grants if not r.token_scope]
            if unscoped:  # what _in_clouds resolved: a scope wherever the entry exists
                raise CatalogError(f"{profile.id}: no token scope in {cloud} for {', '.join(unscoped)}")
        self.allowed_permissions = tuple(allowed)

    def get(self, integration_id: str) -> IntegrationProfile | None:
        return self._profiles.get(integration_id)

    def require(self, integration_id: str) -> IntegrationProfile:
        """The profile, or UnknownIntegration (404 `unknown-integration`), or NotInThisCloud (400) for one whose
        resource APIs this cloud does not have."""
        profile = self._profiles.get(integration_id)
        if profile is None:
            elsewhere = self._elsewhere.get(integration_id)
            if elsewhere is not None:
                raise NotInThisCloud(
                    f"Integration {integration_id!r} is not available in {self.cloud}: it exists in "
                    f"{', '.join(sorted(elsewhere.clouds or ()))}.",
                    integration=integration_id, cloud=self.cloud,
                )  # fmt: skip
            raise UnknownIntegration(f"No integration {integration_id!r} in the catalog.", integration=integration_id)
        return profile

    def refuse_elsewhere(self, profile: IntegrationProfile, add_on_ids: Iterable[str]) -> None:
        """NotInThisCloud (400) for a named add-on the connection has, but not in this cloud."""
        elsewhere = self._add_ons_elsewhere.get(profile.id, {})
        absent = [a for a in add_on_ids if a in elsewhere]
        if absent:
            raise NotInThisCloud(
                f"addOns: {', '.join(absent)} of {profile.id} not available in {self.cloud}.",
                integration=profile.id, cloud=self.cloud, field="addOns",
            )  # fmt: skip

    def __iter__(self) -> Iterator[IntegrationProfile]:
        return iter(self._profiles.values())

    def __len__(self) -> int:
        return len(self._profiles)

    def to_json(self) -> dict[str, Any]:
        """The body of GET /api/integrations (and the CLI's `catalog --json`)."""
        return {
            "integrations": [
                {
                    "id": p.id,
                    "displayName": p.display_name,
                    "description": p.description,
                    "highImpact": {"reason": p.high_impact_reason} if p.high_impact_reason else None,
                    "supersededBy": (
                        {"integration": p.superseded_by[0], "addOns": list(p.superseded_by[1])}
                        if p.superseded_by
                        else None
                    ),
                    "credentialTypes": [str(t) for t in p.credential_types],
                    "defaultCredentialType": str(p.default_credential_type),
                    "workspaceRoles": [
                        {
                            "id": r.id,
                            "displayName": r.display_name,
                            "roleDefinitionId": r.role_definition_id,
                            "highImpact": {"reason": r.high_impact_reason} if r.high_impact_reason else None,
                        }
                        for r in p.workspace_roles
                    ],
                    "permissions": [_resource_json(r) for r in p.permissions],
                    "addOns": [
                        {
                            "id": a.id,
                            "displayName": a.display_name,
                            "description": a.description,
                            "highImpact": {"reason": a.high_impact_reason} if a.high_impact_reason else None,
                            "credentialTypes": [str(t) for t in a.credential_types or p.credential_types],
                            "remainingStep": a.remaining_step,
                            "remainingStepDoneWith": [
                                {"templateId": r.template_id, "displayName": r.display_name} for r in a.step_done_with
                            ],
                            "permissions": [_resource_json(r) for r in a.permissions],
                        }
                        for a in p.add_ons
                    ],
                }
                for p in self
            ]
        }


def _exists_in(clouds: frozenset[str] | None, cloud: str) -> bool:
    return clouds is None or cloud in clouds


def _resource_json(r: ResourcePermissions) -> dict[str, Any]:
    roles = []
    for value in r.roles:
        role: dict[str, Any] = {"value": value, "id": r.role_ids.get(value), "impact": "read"}
        if value in r.high_impact:
            role |= {"impact": "high", "reason": r.high_impact[value]}
        roles.append(role)
    return {"resource": r.resource_name, "resourceAppId": r.resource_app_id, "roles": list(r.roles), "appRoles": roles}


def load_catalog(path: Path = CATALOG_FILE, cloud: str = PUBLIC.name) -> Catalog:
    """The catalog as `cloud` (an AZURE_CLOUD name) sees it: each permission with its resource's token scope there,
    and the integrations and add-ons whose resource APIs it lacks set aside."""
    if cloud not in CLOUDS:
        raise CatalogError(f"no cloud {cloud!r}: one of {', '.join(CLOUDS)}")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CatalogError(f"{path.name}: cannot be read as JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CatalogError(f"{path.name}: must be an object")
    _only(data, {"allowedPermissions", "resources", "integrations"}, path.name)
    allowed = _allow_list(data.get("allowedPermissions"), f"{path.name}: allowedPermissions")
    apis = _resource_apis(data.get("resources"), f"{path.name}: resources")
    entries = data.get("integrations")
    if not isinstance(entries, list) or not entries:
        raise CatalogError(f"{path.name}: 'integrations' must be a non-empty list")
    profiles: dict[str, IntegrationProfile] = {}
    for index, entry in enumerate(entries):
        where = f"{path.name}: integrations[{index}]"
        profile = _in_clouds(_profile(entry, allowed, where), entry, apis, cloud, where)
        if profile.id in profiles:
            raise CatalogError(f"{path.name}: integration id {profile.id!r} appears twice")
        profiles[profile.id] = profile
    _check_successors(profiles, f"{path.name}: integrations")
    used = {
        (r.resource_app_id, value)
        for p in profiles.values()
        for r in (*p.permissions, *(r for a in p.add_ons for r in a.permissions))
        for value in r.roles
    }
    unused = sorted(f"{value} ({app_id})" for app_id, value in set(allowed) - used)
    if unused:
        # The list stays as small as what is granted, so every line of it is worth a reviewer's time.
        raise CatalogError(f"{path.name}: allowedPermissions: no integration uses {', '.join(unused)}; remove them")
    idle = sorted(set(apis) - {app_id for app_id, _ in used})
    if idle:
        raise CatalogError(f"{path.name}: resources: no integration uses {', '.join(idle)}; remove them")
    return Catalog(profiles, allowed.values(), cloud)


def _resource_apis(entries: Any, where: str) -> dict[str, ResourceApi]:
    """The resource APIs permissions are granted on, each with its token scope per cloud (absent: the API does not
    exist in that cloud). Scopes are the API's application ID URI, or its app id where that is what its API
    documents (Defender for Cloud Apps: https://learn.microsoft.com/defender-cloud-apps/api-authentication-application),
    then /.default; every entry cites Microsoft's page for its national-cloud endpoints in `source`."""
    if not isinstance(entries, list) or not entries:
        raise CatalogError(f"{where}: a non-empty list of resource APIs")
    apis: dict[str, ResourceApi] = {}
    for index, entry in enumerate(entries):
        at = f"{where}[{index}]"
        if not isinstance(entry, dict):
            raise CatalogError(f"{at}: must be an object")
        _only(entry, {"resourceAppId", "name", "scopes", "source"}, at)
        app_id = _guid(entry.get("resourceAppId"), f"{at}.resourceAppId")
        name, scopes, source = entry.get("name"), entry.get("scopes"), entry.get("source")
        if app_id in apis:
            raise CatalogError(f"{at}.resourceAppId: {app_id} appears twice")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            raise CatalogError(f"{at}.name: a string of 1-100 characters")
        if not isinstance(source, str) or not source.startswith("https://learn.microsoft.com/"):
            raise CatalogError(f"{at}.source: the Microsoft Learn page that gives these endpoints")
        if not isinstance(scopes, dict) or not scopes or not set(scopes) <= set(CLOUDS):
            raise CatalogError(f"{at}.scopes: an object from cloud names ({', '.join(CLOUDS)}) to token scopes")
        for cloud, scope in scopes.items():
            if (
                not isinstance(scope, str)
                or not scope.endswith("/.default")
                or not (scope.startswith("https://") or scope == f"{app_id}/.default")
            ):
                raise CatalogError(
                    f"{at}.scopes.{cloud}: an https resource URI, or the resource's app id, then /.default"
                )
        apis[app_id] = ResourceApi(app_id, name, dict(scopes))
    return apis


def _in_clouds(
    profile: IntegrationProfile, entry: dict[str, Any], apis: Mapping[str, ResourceApi], cloud: str, where: str
) -> IntegrationProfile:
    """`profile` with the clouds it and each add-on exist in (where all their resource APIs do, narrowed by an
    entry's own `clouds`), and its permissions' token scopes in `cloud` (empty where the API is absent)."""

    def resolved(resources: tuple[ResourcePermissions, ...], at: str) -> tuple[ResourcePermissions, ...]:
        missing = sorted({r.resource_app_id for r in resources} - set(apis))
        if missing:
            raise CatalogError(f"{at}.permissions: {', '.join(missing)} not in resources")
        return tuple(
            replace(
                r, resource_name=apis[r.resource_app_id].name, token_scope=apis[r.resource_app_id].scopes.get(cloud, "")
            )
            for r in resources
        )

    def clouds_of(
        resources: tuple[ResourcePermissions, ...], narrowed: Any, within: frozenset[str], at: str
    ) -> frozenset[str]:
        where_all = within.intersection(*(apis[r.resource_app_id].scopes for r in resources))
        if not where_all:
            raise CatalogError(f"{at}: its resource APIs exist together in no cloud (within {sorted(within)})")
        if narrowed is None:
            return where_all
        if not isinstance(narrowed, list) or not narrowed or not set(narrowed) <= where_all:
            raise CatalogError(
                f"{at}.clouds: a non-empty list within where its resource APIs exist {sorted(where_all)}"
            )
        return frozenset(narrowed)

    add_on_entries = {a.get("id"): (i, a) for i, a in enumerate(entry.get("addOns", []))}
    permissions = resolved(profile.permissions, where)
    clouds = clouds_of(profile.permissions, entry.get("clouds"), frozenset(CLOUDS), where)
    add_ons = []
    for add_on in profile.add_ons:
        index, add_on_entry = add_on_entries[add_on.id]
        at = f"{where}.addOns[{index}]"
        add_ons.append(
            replace(
                add_on,
                permissions=resolved(add_on.permissions, at),
                clouds=clouds_of(add_on.permissions, add_on_entry.get("clouds"), clouds, at),
            )
        )
    return replace(profile, permissions=permissions, add_ons=tuple(add_ons), clouds=clouds)


def _allow_list(entries: Any, where: str) -> dict[tuple[str, str], AllowedPermission]:
    if not isinstance(entries, list) or not entries:
        raise CatalogError(f"{where}: a non-empty list of reviewed app roles (default deny)")
    allowed: dict[tuple[str, str], AllowedPermission] = {}
    ids: dict[tuple[str, str], str] = {}
    for index, entry in enumerate(entries):
        permission = _allowed(entry, f"{where}[{index}]")
        key = (permission.resource_app_id, permission.value)
        if key in allowed:
            raise CatalogError(f"{where}[{index}]: {permission.value} on {permission.resource_app_id} appears twice")
        same_id = ids.get((permission.resource_app_id, permission.id))
        if same_id is not None:
            raise CatalogError(f"{where}[{index}]: id {permission.id} is already listed as {same_id}")
        allowed[key] = permission
        ids[(permission.resource_app_id, permission.id)] = permission.value
    return allowed


def _allowed(entry: Any, where: str) -> AllowedPermission:
    if not isinstance(entry, dict):
        raise CatalogError(f"{where}: must be an object")
    _only(entry, {"resourceAppId", "value", "id", "impact", "reason"}, where)
    app_id = _guid(entry.get("resourceAppId"), f"{where}.resourceAppId")
    value = entry.get("value")
    if not isinstance(value, str) or not ROLE_VALUE.match(value):
        raise CatalogError(f"{where}.value: an app role value")
    _refuse_takeover(value, where)
    role_id = _guid(entry.get("id"), f"{where}.id")
    if app_id == GRAPH_APP_ID and role_id in TENANT_TAKEOVER_GRAPH_IDS and TENANT_TAKEOVER_GRAPH_IDS[role_id] != value:
        raise CatalogError(
            f"{where}.id: {role_id} is {TENANT_TAKEOVER_GRAPH_IDS[role_id]} on Microsoft Graph, not {value}; refused"
        )
    impact, reason = entry.get("impact"), entry.get("reason")
    if impact not in ("read", "high"):
        raise CatalogError(f"{where}.impact: 'read' or 'high'")
    if reason is not None and (not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON):
        raise CatalogError(f"{where}.reason: a string of 1-{MAX_REASON} characters")
    if impact == "high" and reason is None:
        raise CatalogError(f"{where}.reason: required for a high-impact role: say what it lets the vendor do")
    if impact == "read" and not _reads_only(value):
        raise CatalogError(
            f"{where}.impact: {value} can write, act or read credentials; mark it 'high' and give a reason"
        )
    return AllowedPermission(app_id, value, role_id, impact, reason)


def _profile(entry: Any, allowed: Mapping[tuple[str, str], AllowedPermission], where: str) -> IntegrationProfile:
    if not isinstance(entry, dict):
        raise CatalogError(f"{where}: must be an object")
    _only(
        entry,
        {
            "id",
            "displayName",
            "description",
            "highImpact",
            "permissions",
            "credentialTypes",
            "defaultCredentialType",
            "addOns",
            "supersededBy",
            "workspaceRoles",
            "clouds",
        },
        where,
    )
    profile_id, display_name, description, high_impact_reason, resources = _granting(entry, allowed, where, "profile")
    types, default = _credential_types(entry, where)
    add_ons = _add_ons(entry.get("addOns", []), allowed, types, f"{where}.addOns")
    return IntegrationProfile(
        profile_id, display_name, description, resources, high_impact_reason,
        credential_types=types, default_credential_type=default, add_ons=add_ons,
        superseded_by=_superseded_by(entry.get("supersededBy"), f"{where}.supersededBy"),
        workspace_roles=_workspace_roles(entry.get("workspaceRoles", []), f"{where}.workspaceRoles"),
    )  # fmt: skip


def _workspace_roles(entries: Any, where: str) -> tuple[WorkspaceRole, ...]:
    """The Sentinel roles a connection may give its app on a customer's workspace; the first is the default, so it
    may not be high impact (a caller names a high-impact one)."""
    if not isinstance(entries, list):
        raise CatalogError(f"{where}: a list")
    roles: list[WorkspaceRole] = []
    for index, entry in enumerate(entries):
        at = f"{where}[{index}]"
        if not isinstance(entry, dict):
            raise CatalogError(f"{at}: must be an object")
        _only(entry, {"id", "displayName", "roleDefinitionId", "highImpact"}, at)
        role_id, name = entry.get("id"), entry.get("displayName")
        if not isinstance(role_id, str) or not INTEGRATION_ID.match(role_id) or any(r.id == role_id for r in roles):
            raise CatalogError(f"{at}.id: a distinct id of 3-32 lowercase letters, digits or hyphens")
        definition = _guid(entry.get("roleDefinitionId"), f"{at}.roleDefinitionId")
        if SENTINEL_ROLES.get(definition) != name:
            raise CatalogError(f"{at}: only Microsoft Sentinel's roles, by their id and name: {SENTINEL_ROLES}")
        reason = _high_impact(entry.get("highImpact"), f"{at}.highImpact")
        if index == 0 and reason is not None:
            raise CatalogError(f"{at}: the first role is the default, so it may not be high impact")
        roles.append(WorkspaceRole(role_id, SENTINEL_ROLES[definition], definition, reason))
    return tuple(roles)


def _superseded_by(entry: Any, where: str) -> tuple[str, tuple[str, ...]] | None:
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise CatalogError(f"{where}: an object naming an integration and its add-ons")
    _only(entry, {"integration", "addOns"}, where)
    integration, add_ons = entry.get("integration"), entry.get("addOns", [])
    if not isinstance(integration, str) or not INTEGRATION_ID.match(integration):
        raise CatalogError(f"{where}.integration: an integration id")
    if not isinstance(add_ons, list) or not all(isinstance(a, str) for a in add_ons):
        raise CatalogError(f"{where}.addOns: a list of add-on ids")
    return integration, tuple(add_ons)


def _check_successors(profiles: Mapping[str, IntegrationProfile], where: str) -> None:
    """A superseded profile names a connection, and add-ons it offers, that grant at least what it grants: moving a
    registration to them loses no access."""
    for profile in profiles.values():
        if profile.superseded_by is None:
            continue
        integration, add_ons = profile.superseded_by
        successor = profiles.get(integration)
        if successor is None or successor.superseded_by is not None:
            raise CatalogError(f"{where}: {profile.id} is superseded by {integration!r}, not a current integration")
        unknown = [a for a in add_ons if successor.add_on(a) is None]
        if unknown:
            raise CatalogError(f"{where}: {profile.id}'s successor {integration} offers no add-on {', '.join(unknown)}")
        missing = profile.all_roles() - successor.with_add_ons(add_ons).all_roles()
        if missing:
            raise CatalogError(f"{where}: {profile.id}'s successor does not grant {sorted(r for _, r in missing)}")
        everywhere = frozenset(CLOUDS)
        named = [a.clouds or everywhere for a in successor.add_ons if a.id in add_ons]
        lacking = (profile.clouds or everywhere) - (successor.clouds or everywhere).intersection(*named)
        if lacking:
            raise CatalogError(
                f"{where}: {profile.id}'s successor, with its add-ons, does not exist in {sorted(lacking)}"
            )


def _granting(
    entry: dict[str, Any], allowed: Mapping[tuple[str, str], AllowedPermission], where: str, kind: str
) -> tuple[str, str, str, str | None, tuple[ResourcePermissions, ...]]:
    """What a profile and an add-on have alike: (id, display name, description, high-impact reason, permissions),
    each resource API once, a high-impact role only where the entry declares highImpact, and that declaration
    only where it asks for one."""
    entry_id, display_name, description = entry.get("id"), entry.get("displayName"), entry.get("description", "")
    if not isinstance(entry_id, str) or not INTEGRATION_ID.match(entry_id):
        raise CatalogError(f"{where}.id: 3-32 lowercase letters, digits or hyphens")
    if not isinstance(display_name, str) or not 1 <= len(display_name) <= 100:
        raise CatalogError(f"{where}.displayName: a string of 1-100 characters")
    if not isinstance(description, str) or len(description) > 500:
        raise CatalogError(f"{where}.description: a string of at most 500 characters")
    reason = _high_impact(entry.get("highImpact"), f"{where}.highImpact")
    permissions = entry.get("permissions")
    if not isinstance(permissions, list) or not permissions:
        raise CatalogError(f"{where}.permissions: a non-empty list")
    resources = tuple(
        _resource(p, allowed, reason is not None, f"{where}.permissions[{i}]") for i, p in enumerate(permissions)
    )
    if len({r.resource_app_id for r in resources}) != len(resources):
        raise CatalogError(f"{where}.permissions: each resource API may appear once")
    if reason is not None and not any(r.high_impact for r in resources):
        raise CatalogError(f"{where}.highImpact: the {kind} asks for no high-impact role; remove the marking")
    return entry_id, display_name, description, reason, resources


def _add_ons(
    entries: Any, allowed: Mapping[tuple[str, str], AllowedPermission], offered: tuple[CredentialType, ...], where: str
) -> tuple[AddOn, ...]:
    """A connection's opt-in add-ons: each named, with its own reviewed permissions, its own high-impact reason
    when it asks for a high-impact role, the credential types it works with (within the connection's), and what
    the customer's admin must still do after it is granted, if anything."""
    if not isinstance(entries, list):
        raise CatalogError(f"{where}: a list")
    add_ons: list[AddOn] = []
    for index, entry in enumerate(entries):
        at = f"{where}[{index}]"
        if not isinstance(entry, dict):
            raise CatalogError(f"{at}: must be an object")
        _only(
            entry,
            {
                "id", "displayName", "description", "highImpact", "permissions", "credentialTypes", "remainingStep",
                "remainingStepDoneWith", "clouds",
            },
            at,
        )  # fmt: skip
        add_on_id, display_name, description, reason, resources = _granting(entry, allowed, at, "add-on")
        if any(a.id == add_on_id for a in add_ons):
            raise CatalogError(f"{at}.id: {add_on_id!r} appears twice")
        types: tuple[CredentialType, ...] = ()
        if "credentialTypes" in entry:
            types, _ = _credential_types(entry, at)
            if not set(types) <= set(offered):
                raise CatalogError(f"{at}.credentialTypes: within the connection's {[str(t) for t in offered]}")
        step = entry.get("remainingStep")
        if step is not None and (
            not isinstance(step, str) or not step.strip() or len(step) > 2000
            or not set(PLACEHOLDERS.findall(step)) <= STEP_FIELDS
        ):  # fmt: skip
            raise CatalogError(f"{at}.remainingStep: text of 1-2000 characters; placeholders {sorted(STEP_FIELDS)}")
        done_with = _directory_roles(entry.get("remainingStepDoneWith", []), f"{at}.remainingStepDoneWith")
        if done_with and step is None:
            raise CatalogError(f"{at}.remainingStepDoneWith: only with a remainingStep")
        add_ons.append(AddOn(add_on_id, display_name, description, resources, reason, types, step, done_with))
    if len(",".join(a.id for a in add_ons)) > MAX_ADD_ON_TAG:
        raise CatalogError(f"{where}: their ids together must fit one Key Vault tag ({MAX_ADD_ON_TAG} characters)")
    return tuple(add_ons)


def _directory_roles(entries: Any, where: str) -> tuple[DirectoryRole, ...]:
    """Entra built-in roles by template id (a GUID, each once) and display name."""
    if not isinstance(entries, list) or len(entries) > MAX_DIRECTORY_ROLES:
        raise CatalogError(f"{where}: a list of at most {MAX_DIRECTORY_ROLES} roles")
    roles: list[DirectoryRole] = []
    for index, entry in enumerate(entries):
        at = f"{where}[{index}]"
        if not isinstance(entry, dict):
            raise CatalogError(f"{at}: an object with templateId and displayName")
        _only(entry, {"templateId", "displayName"}, at)
        template_id, name = _guid(entry.get("templateId"), f"{at}.templateId"), entry.get("displayName")
        if any(r.template_id == template_id for r in roles):
            raise CatalogError(f"{at}.templateId: {template_id} appears twice")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_ROLE_NAME:
            raise CatalogError(f"{at}.displayName: a string of 1-{MAX_ROLE_NAME} characters")
        roles.append(DirectoryRole(template_id, name))
    return tuple(roles)


def _credential_types(entry: dict[str, Any], where: str) -> tuple[tuple[CredentialType, ...], CredentialType]:
    """What a caller may choose (`credentialTypes`, default: a client secret only) and what it gets by default."""
    names = entry.get("credentialTypes", [CredentialType.SECRET.value])
    known = {t.value for t in CredentialType}
    if not isinstance(names, list) or not names or any(n not in known for n in names) or len(set(names)) != len(names):
        raise CatalogError(f"{where}.credentialTypes: a non-empty list of distinct values of {sorted(known)}")
    types = tuple(CredentialType(n) for n in names)
    default = entry.get("defaultCredentialType", types[0].value)
    if default not in names:
        raise CatalogError(f"{where}.defaultCredentialType: one of credentialTypes {names}")
    return types, CredentialType(default)


def _high_impact(entry: Any, where: str) -> str | None:
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise CatalogError(f"{where}: an object with a reason")
    _only(entry, {"reason"}, where)
    reason = entry.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise CatalogError(f"{where}.reason: a string of 1-{MAX_REASON} characters")
    return reason


def _resource(
    entry: Any, allowed: Mapping[tuple[str, str], AllowedPermission], high_impact_profile: bool, where: str
) -> ResourcePermissions:
    if not isinstance(entry, dict):
        raise CatalogError(f"{where}: must be an object")
    _only(entry, {"resourceAppId", "roles"}, where)
    app_id = _guid(entry.get("resourceAppId"), f"{where}.resourceAppId")
    roles = entry.get("roles")
    if not isinstance(roles, list) or not roles or not all(isinstance(r, str) and ROLE_VALUE.match(r) for r in roles):
        raise CatalogError(f"{where}.roles: a non-empty list of app role values")
    if len(set(roles)) != len(roles):
        raise CatalogError(f"{where}.roles: duplicates")
    for role in roles:
        _refuse_takeover(role, f"{where}.roles")
    unlisted = [role for role in roles if (app_id, role) not in allowed]
    if unlisted:
        raise CatalogError(
            f"{where}.roles: {', '.join(unlisted)} on {app_id} not in allowedPermissions; "
            "every role is refused until it is reviewed there"
        )
    high = {role: allowed[app_id, role].reason or "" for role in roles if allowed[app_id, role].impact == "high"}
    if high and not high_impact_profile:
        raise CatalogError(
            f"{where}.roles: {', '.join(high)} is high impact; only a profile that declares highImpact "
            "(one a caller names explicitly, never a default) may ask for it"
        )
    role_ids = {role: allowed[app_id, role].id for role in roles}
    # Name and token scope come from `resources`, for the catalog's cloud (_in_clouds).
    return ResourcePermissions(app_id, "", "", tuple(roles), role_ids=role_ids, high_impact=high)


def _refuse_takeover(value: str, where: str) -> None:
    if any(fnmatchcase(value.lower(), pattern.lower()) for pattern in TENANT_TAKEOVER):
        raise CatalogError(
            f"{where}: {value} would let the integration take over the tenant; refused even if allow-listed"
        )


def _reads_only(value: str) -> bool:
    return bool(READ_ONLY_VALUE.match(value)) and not any(fnmatchcase(value, p) for p in CREDENTIAL_READS)


def _guid(raw: Any, where: str) -> str:
    try:
        return str(uuid.UUID(str(raw)))
    except ValueError as exc:
        raise CatalogError(f"{where}: must be a GUID") from exc


def _only(entry: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(entry) - allowed - {"_comment"})
    if unknown:
        raise CatalogError(f"{where}: unknown fields {unknown}")
