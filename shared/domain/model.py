"""The project's own value types: what use cases, adapters and handlers pass between them.

SDK models stop at the adapters (shared/adapters/); everything past them speaks these
frozen dataclasses. A secret value travels only inside `Secret`, whose repr and str never
show it, so a stray log line or exception message cannot leak it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Secret:
    """A secret value that refuses to be printed. Call `reveal()` only where the value must go on the wire."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not value:
            raise ValueError("a secret cannot be empty")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret is not picklable")


@dataclass(frozen=True)
class ResourcePermissions:
    """Application permissions (app roles, by value) an integration needs on one resource API.

    `role_ids` holds the app role id the catalog's reviewed allow-list pins for each value: onboarding
    resolves values on the tenant's own resource service principal and must refuse one that answers
    with another id. `high_impact` maps each role that can write or act (devices, mail, identity,
    policy) to the reason the catalog gives for it.
    """

    resource_app_id: str
    resource_name: str
    token_scope: str  # e.g. https://graph.microsoft.com/.default, used to prove the grant works
    roles: tuple[str, ...]
    role_ids: Mapping[str, str] = field(default_factory=dict, hash=False)
    high_impact: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class IntegrationProfile:
    id: str
    display_name: str
    description: str
    permissions: tuple[ResourcePermissions, ...]
    # Set only on a profile that grants a high-impact role: the caller must name it, it is never a default.
    high_impact_reason: str | None = None
    # False for an integration that has left the catalog but still has registrations (credentials.known_profile).
    in_catalog: bool = True

    def all_roles(self) -> set[tuple[str, str]]:
        return {(p.resource_app_id, role) for p in self.permissions for role in p.roles}


@dataclass(frozen=True)
class PasswordInfo:
    """A password credential as Graph shows it after creation (never with its secret)."""

    key_id: str
    display_name: str | None
    hint: str | None
    start: datetime
    end: datetime


@dataclass(frozen=True)
class NewPassword:
    info: PasswordInfo
    secret: Secret


@dataclass(frozen=True)
class RoleRef:
    resource_app_id: str
    app_role_id: str


@dataclass(frozen=True)
class AppRegistration:
    object_id: str
    app_id: str
    unique_name: str
    display_name: str
    required_roles: frozenset[RoleRef]
    passwords: tuple[PasswordInfo, ...]
    tags: tuple[str, ...] = ()
    created: datetime | None = None  # createdDateTime: which of the tenant's policy restrictions apply
    notes: str | None = None
    sign_in_audience: str | None = None
    key_credential_ids: tuple[str, ...] = ()  # certificates: this service never adds one


@dataclass(frozen=True)
class ResourceApi:
    """A resource API's service principal in one tenant, with its application roles by value."""

    object_id: str
    app_id: str
    display_name: str
    roles_by_value: Mapping[str, str]


@dataclass(frozen=True)
class Assignment:
    """An app role assignment (one granted application permission)."""

    id: str
    resource_object_id: str
    app_role_id: str


@dataclass(frozen=True)
class PasswordPolicy:
    """What a tenant's app management policy allows for new secrets (None: no cap).

    Graph's passwordCredentialConfiguration can narrow a restriction to apps created on or after
    `restrictForAppsCreatedAfterDateTime`, switch it off (`state: disabled`) or exempt some callers
    (`excludeActors`); https://learn.microsoft.com/graph/api/resources/passwordcredentialconfiguration.
    The adapter drops disabled restrictions and keeps the dates, so `for_app_created` can say what
    Entra will enforce on a given app. A restriction that may exempt this caller never refuses ahead
    of time: Entra's own answer to addPassword decides.
    """

    additions_allowed: bool = True
    max_lifetime_days: float | None = None
    policy_id: str | None = None
    # The enforcement dates of the two restrictions (None: every app, whenever created).
    additions_forbidden_for_apps_created_from: datetime | None = None
    lifetime_capped_for_apps_created_from: datetime | None = None

    def for_app_created(self, created: datetime | None) -> PasswordPolicy:
        """The policy as Entra enforces it on an app created at `created` (None: unknown, so it applies)."""

        def applies(since: datetime | None) -> bool:
            return since is None or created is None or created >= since

        return PasswordPolicy(
            additions_allowed=self.additions_allowed or not applies(self.additions_forbidden_for_apps_created_from),
            max_lifetime_days=self.max_lifetime_days if applies(self.lifetime_capped_for_apps_created_from) else None,
            policy_id=self.policy_id,
        )


class SecretKind(StrEnum):
    CLIENT_ID = "client-id"
    TENANT_ID = "tenant-id"
    CLIENT_SECRET = "client-secret"  # noqa: S105 - a kind of secret, not a secret


@dataclass(frozen=True)
class StoredSecret:
    """One Key Vault secret's latest version, as the vault adapter reads it."""

    name: str
    version: str
    uri: str  # versionless https://{vault}/secrets/{name}
    tags: Mapping[str, str]
    expires: datetime | None
    value: Secret | None = field(default=None, compare=False)


@dataclass(frozen=True)
class SecretSummary:
    """A secret's latest version as listing shows it: metadata only, no value."""

    name: str
    tags: Mapping[str, str]
    expires: datetime | None


# What the provisioner app needs in a customer tenant: create apps it then owns, and grant consent, which
# Graph documents as AppRoleAssignment.ReadWrite.All *and* Application.Read.All
# (https://learn.microsoft.com/graph/api/serviceprincipal-post-approleassignedto).
PROVISIONER_ROLES = frozenset(
    {"Application.ReadWrite.OwnedBy", "Application.Read.All", "AppRoleAssignment.ReadWrite.All"}
)
