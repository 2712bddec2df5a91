"""The fixed ids the fakes and the unit tests share: tenants, first-party resource APIs, their app roles.

Owns the made-up world's constants (`TENANT`, `GRAPH_APP_ID`, the clock's `START`) and the two id functions
(`role_id`, `resource_object_id`) that give every fake tenant the same, stable ids.
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime

from shared.domain.catalog import load_catalog

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
DEFENDER_APP_ID = "fc780465-2017-40d4-a0c5-307022471b92"
LOG_ANALYTICS_APP_ID = "ca7f3f0b-7d91-482c-8e09-c5d840d0eac5"
RESOURCE_NAMES = {
    GRAPH_APP_ID: "Microsoft Graph",
    DEFENDER_APP_ID: "WindowsDefenderATP",
    LOG_ANALYTICS_APP_ID: "Log Analytics API",
}
# Roles each resource offers besides the catalog's, so a tenant never offers exactly the profile.
EXTRA_ROLES = {
    GRAPH_APP_ID: ("Application.Read.All", "Mail.Read"),
    DEFENDER_APP_ID: ("Vulnerability.Read.All",),
    LOG_ANALYTICS_APP_ID: ("Data.Write",),
}

TENANT = "11111111-2222-4333-8444-555555555555"
HOME_TENANT = "99999999-8888-4777-8666-555555555555"
VAULT_URL = "https://vault.example"
BASE_ENV: dict[str, str] = {"KEY_VAULT_URL": VAULT_URL, "HOME_TENANT_ID": HOME_TENANT}
START = datetime(2025, 1, 15, 9, 0, tzinfo=UTC)

NAMESPACE = uuid.UUID("6f1c1a52-94a5-4c55-9f5e-2b1f3f7d0a11")


def role_id(resource_app_id: str, value: str) -> str:
    """The app role id of `value` on a resource API, the same in every tenant: the one the shipped catalog
    reviewed (as the real resource offers it), else a made-up stable one."""
    reviewed = _reviewed_role_ids().get((resource_app_id, value))
    return reviewed or str(uuid.uuid5(NAMESPACE, f"role/{resource_app_id}/{value}"))


@functools.cache
def _reviewed_role_ids() -> dict[tuple[str, str], str]:
    return {
        (r.resource_app_id, value): role
        for profile in load_catalog()
        for r in profile.permissions
        for value, role in r.role_ids.items()
    }


def resource_object_id(tenant_id: str, resource_app_id: str) -> str:
    """The made-up object id of a resource API's service principal in one tenant."""
    return str(uuid.uuid5(NAMESPACE, f"sp/{tenant_id}/{resource_app_id}"))
