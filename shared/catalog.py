"""The integration catalog: an allow-list of profiles, each naming the application permissions it gets.

The managed identity can grant any app role (AppRoleAssignment.ReadWrite.All), so this file is a
security boundary: callers choose a profile id, never permissions, and the loader refuses
roles that would let an integration escalate (write access to apps, roles or the directory)
even if someone adds them to the file.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .model import IntegrationProfile, ResourcePermissions

CATALOG_FILE = Path(__file__).with_name("catalog.json")
PROFILE_ID = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
ROLE_VALUE = re.compile(r"^[A-Za-z][A-Za-z0-9.]{1,119}$")
# Roles that would let an integration's credential take over apps, consent or the directory.
ESCALATING_ROLES = frozenset(
    {
        "Application.ReadWrite.All",
        "Application.ReadWrite.OwnedBy",
        "AppRoleAssignment.ReadWrite.All",
        "DelegatedPermissionGrant.ReadWrite.All",
        "Directory.ReadWrite.All",
        "RoleManagement.ReadWrite.Directory",
        "Policy.ReadWrite.ApplicationConfiguration",
        "Policy.ReadWrite.ConditionalAccess",
        "User.ReadWrite.All",
        "Group.ReadWrite.All",
    }
)


class CatalogError(ValueError):
    pass


class Catalog:
    def __init__(self, profiles: Mapping[str, IntegrationProfile]) -> None:
        self._profiles = dict(profiles)

    def get(self, integration_id: str) -> IntegrationProfile | None:
        return self._profiles.get(integration_id)

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
                    "permissions": [
                        {"resource": r.resource_name, "resourceAppId": r.resource_app_id, "roles": list(r.roles)}
                        for r in p.permissions
                    ],
                }
                for p in self
            ]
        }


def load_catalog(path: Path = CATALOG_FILE) -> Catalog:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CatalogError(f"{path.name}: cannot be read as JSON: {exc}") from exc
    entries = data.get("integrations") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise CatalogError(f"{path.name}: 'integrations' must be a non-empty list")
    profiles: dict[str, IntegrationProfile] = {}
    for index, entry in enumerate(entries):
        profile = _profile(entry, f"{path.name}: integrations[{index}]")
        if profile.id in profiles:
            raise CatalogError(f"{path.name}: integration id {profile.id!r} appears twice")
        profiles[profile.id] = profile
    return Catalog(profiles)


def _profile(entry: Any, where: str) -> IntegrationProfile:
    if not isinstance(entry, dict):
        raise CatalogError(f"{where}: must be an object")
    _only(entry, {"id", "displayName", "description", "permissions"}, where)
    profile_id = entry.get("id")
    if not isinstance(profile_id, str) or not PROFILE_ID.match(profile_id):
        raise CatalogError(f"{where}.id: 3-32 lowercase letters, digits or hyphens")
    display_name, description = entry.get("displayName"), entry.get("description", "")
    if not isinstance(display_name, str) or not 1 <= len(display_name) <= 100:
        raise CatalogError(f"{where}.displayName: a string of 1-100 characters")
    if not isinstance(description, str) or len(description) > 500:
        raise CatalogError(f"{where}.description: a string of at most 500 characters")
    permissions = entry.get("permissions")
    if not isinstance(permissions, list) or not permissions:
        raise CatalogError(f"{where}.permissions: a non-empty list")
    resources = [_resource(p, f"{where}.permissions[{i}]") for i, p in enumerate(permissions)]
    if len({r.resource_app_id for r in resources}) != len(resources):
        raise CatalogError(f"{where}.permissions: each resource API may appear once")
    return IntegrationProfile(profile_id, display_name, description, tuple(resources))


def _resource(entry: Any, where: str) -> ResourcePermissions:
    if not isinstance(entry, dict):
        raise CatalogError(f"{where}: must be an object")
    _only(entry, {"resourceAppId", "resourceName", "tokenScope", "roles"}, where)
    try:
        app_id = str(uuid.UUID(str(entry.get("resourceAppId"))))
    except ValueError as exc:
        raise CatalogError(f"{where}.resourceAppId: must be a GUID") from exc
    name, scope, roles = entry.get("resourceName"), entry.get("tokenScope"), entry.get("roles")
    if not isinstance(name, str) or not name:
        raise CatalogError(f"{where}.resourceName: required")
    if not isinstance(scope, str) or not scope.startswith("https://") or not scope.endswith("/.default"):
        raise CatalogError(f"{where}.tokenScope: an https resource URI ending in /.default")
    if not isinstance(roles, list) or not roles or not all(isinstance(r, str) and ROLE_VALUE.match(r) for r in roles):
        raise CatalogError(f"{where}.roles: a non-empty list of app role values")
    if len(set(roles)) != len(roles):
        raise CatalogError(f"{where}.roles: duplicates")
    escalating = sorted(set(roles) & ESCALATING_ROLES)
    if escalating:
        raise CatalogError(f"{where}.roles: {', '.join(escalating)} would let the integration escalate; refused")
    return ResourcePermissions(app_id, name, scope, tuple(roles))


def _only(entry: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(entry) - allowed - {"_comment"})
    if unknown:
        raise CatalogError(f"{where}: unknown fields {unknown}")
