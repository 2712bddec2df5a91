"""The project's own value types: what use cases, adapters and handlers pass between them.

SDK models stop at the adapters (shared/adapters/); everything past them speaks these
frozen dataclasses. A secret value travels only inside `Secret`, whose repr and str never
show it, so a stray log line or exception message cannot leak it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
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


class CredentialType(StrEnum):
    """What an integration's app proves itself with (README, "Credential types").

    A client secret is a bearer string; a certificate's private key stays in Key Vault, which creates it,
    and a token request proves possession by signing (docs/credentials.md)."""

    SECRET = "secret"  # noqa: S105 - the name of a credential type, not a secret
    CERTIFICATE = "certificate"
    # No credential at all: the vendor's workload identity is trusted by a multi-tenant "connector" app in the
    # vendor's tenant, which the customer's admin consents to (shared/usecases/connector.py).
    FEDERATED = "federated"


@dataclass(frozen=True)
class FederatedTrust:
    """A federated identity credential: the app accepts tokens `issuer` issued to `subject` for `audiences`
    (https://learn.microsoft.com/graph/api/resources/federatedidentitycredential)."""

    name: str
    issuer: str
    subject: str
    audiences: tuple[str, ...]
    id: str | None = None  # Graph's id, once it exists

    def same_trust(self, other: FederatedTrust) -> bool:
        return (self.issuer, self.subject, set(self.audiences)) == (other.issuer, other.subject, set(other.audiences))


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
    token_scope: str  # in the catalog's cloud, e.g. https://graph.microsoft.com/.default; proves the grant works
    roles: tuple[str, ...]
    role_ids: Mapping[str, str] = field(default_factory=dict, hash=False)
    high_impact: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class DirectoryRole:
    """A Microsoft Entra built-in role, by the template id its tokens' `wids` claim carries."""

    template_id: str
    display_name: str


@dataclass(frozen=True)
class AddOn:
    """An opt-in part of a connection: more permissions on the same app, granted only when a caller names it.

    `credential_types` narrows what the connection offers (Exchange Online's app-only access takes a
    certificate); empty means any. `remaining_step` is what the customer's admin must still do that this
    service may not (an Exchange role for the app), with `{appId}`, `{servicePrincipalId}` and `{tenantId}`
    filled in when it is reported. `step_done_with` are the Entra roles that, once the app's own token carries
    one, show that step done; empty means this service cannot see it done."""

    id: str
    display_name: str
    description: str
    permissions: tuple[ResourcePermissions, ...]
    high_impact_reason: str | None = None
    credential_types: tuple[CredentialType, ...] = ()
    remaining_step: str | None = None
    step_done_with: tuple[DirectoryRole, ...] = ()
    clouds: frozenset[str] | None = None  # where it exists (shared/domain/clouds.py); None: everywhere


@dataclass(frozen=True)
class WorkspaceRole:
    """An Azure role this service may assign a registration's app on the customer's Log Analytics workspace (the
    Sentinel connection): what a caller names (`id`), and the built-in role definition it is."""

    id: str
    display_name: str
    role_definition_id: str
    high_impact_reason: str | None = None


@dataclass(frozen=True)
class IntegrationProfile:
    """A connection in the catalog: its base permissions and the add-ons it offers. `with_add_ons` gives the
    profile one registration has: `permissions` then hold the base and its chosen add-ons' together."""

    id: str
    display_name: str
    description: str
    permissions: tuple[ResourcePermissions, ...]
    # Set only on a profile that grants a high-impact role: the caller must name it, it is never a default.
    high_impact_reason: str | None = None
    # False for an integration that has left the catalog but still has registrations (credentials.known_profile).
    in_catalog: bool = True
    # What a caller may choose for this integration, and what it gets when it does not choose.
    credential_types: tuple[CredentialType, ...] = (CredentialType.SECRET,)
    default_credential_type: CredentialType = CredentialType.SECRET
    add_ons: tuple[AddOn, ...] = ()  # what the connection offers
    chosen: tuple[str, ...] = ()  # the add-ons this registration has, in the catalog's order
    base: tuple[ResourcePermissions, ...] | None = None  # the connection's own permissions, once add-ons are merged
    # A profile kept for the registrations made with it: the connection and add-ons that grant what it grants.
    superseded_by: tuple[str, tuple[str, ...]] | None = None
    # Roles on a customer's workspace the connection may give its app (the first is the default; none: no workspace).
    workspace_roles: tuple[WorkspaceRole, ...] = ()
    clouds: frozenset[str] | None = None  # where it exists (shared/domain/clouds.py); None: everywhere

    def workspace_role(self, role_id: str) -> WorkspaceRole | None:
        return next((r for r in self.workspace_roles if r.id == role_id), None)

    def all_roles(self) -> set[tuple[str, str]]:
        return {(p.resource_app_id, role) for p in self.permissions for role in p.roles}

    def add_on(self, add_on_id: str) -> AddOn | None:
        return next((a for a in self.add_ons if a.id == add_on_id), None)

    @property
    def base_permissions(self) -> tuple[ResourcePermissions, ...]:
        return self.permissions if self.base is None else self.base

    def with_add_ons(self, add_on_ids: Iterable[str]) -> IntegrationProfile:
        """This connection with the named add-ons (ids it offers; others are the caller's to refuse first): their
        permissions merged into the base per resource API, and the credential types every one of them accepts."""
        wanted = set(add_on_ids)
        chosen = tuple(a for a in self.add_ons if a.id in wanted)
        merged: dict[str, ResourcePermissions] = {p.resource_app_id: p for p in self.base_permissions}
        types = list(self.credential_types)
        for add_on in chosen:
            for extra in add_on.permissions:
                have = merged.get(extra.resource_app_id)
                if have is None:
                    merged[extra.resource_app_id] = extra
                    continue
                merged[extra.resource_app_id] = replace(
                    have,
                    roles=(*have.roles, *(r for r in extra.roles if r not in have.roles)),
                    role_ids={**extra.role_ids, **have.role_ids},
                    high_impact={**extra.high_impact, **have.high_impact},
                )
            if add_on.credential_types:
                types = [t for t in types if t in add_on.credential_types]
        # No type every add-on accepts: an empty tuple, which the caller refuses naming the add-ons.
        default = self.default_credential_type if self.default_credential_type in types or not types else types[0]
        return replace(
            self,
            permissions=tuple(merged.values()),
            chosen=tuple(a.id for a in chosen),
            base=self.base_permissions,
            credential_types=tuple(types),
            default_credential_type=default,
        )

    def source_of(self, resource_app_id: str, role: str) -> str | None:
        """Which chosen add-on brings this role (None: the connection's base permissions)."""
        if any(p.resource_app_id == resource_app_id and role in p.roles for p in self.base_permissions):
            return None
        for add_on_id in self.chosen:
            add_on = self.add_on(add_on_id)
            if add_on and any(p.resource_app_id == resource_app_id and role in p.roles for p in add_on.permissions):
                return add_on_id
        return None


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
class KeyInfo:
    """A certificate (key credential) on an app as Graph lists it: never its key bytes."""

    key_id: str
    display_name: str | None
    thumbprint: str | None  # SHA-1 of the certificate, upper-case hex (Graph's customKeyIdentifier)
    start: datetime
    end: datetime


@dataclass(frozen=True)
class PublicCertificate:
    """An X.509 certificate's public part (DER), with what the app and the token endpoint know it by."""

    der: bytes = field(repr=False)
    thumbprint_sha1: str  # upper-case hex: Graph's customKeyIdentifier, the `x5t` header
    thumbprint_sha256: str  # upper-case hex: the `x5t#S256` header
    subject: str
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class NewKey:
    """A certificate to put on an app, under the keyId and display name this service chose for it."""

    key_id: str
    display_name: str
    certificate: PublicCertificate


class CertificateKey:
    """A certificate with its private key (PKCS#12, base64), as Key Vault hands it over: proves an app in a
    token request. Its repr never shows the key, like `Secret`."""

    __slots__ = ("certificate", "pkcs12")

    def __init__(self, certificate: PublicCertificate, pkcs12: Secret) -> None:
        self.certificate = certificate
        self.pkcs12 = pkcs12

    def __repr__(self) -> str:
        return f"CertificateKey({self.certificate.thumbprint_sha256[:12]}…, ***)"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a CertificateKey is not picklable")


@dataclass(frozen=True)
class ClientAssertion:
    """A client assertion someone else signed (a vendor proving the certificate it holds): sent as it is."""

    assertion: Secret


# What a token request proves an app with.
ClientCredential = Secret | CertificateKey | ClientAssertion


@dataclass(frozen=True)
class StoredCertificate:
    """One Key Vault certificate's latest version, as the vault adapter reads it (its key only on request)."""

    name: str
    version: str
    uri: str  # versionless https://{vault}/secrets/{name}: the backing secret downstream services reference
    tags: Mapping[str, str]
    certificate: PublicCertificate
    key: CertificateKey | None = field(default=None, compare=False)

    @property
    def expires(self) -> datetime:
        return self.certificate.not_after


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
    keys: tuple[KeyInfo, ...] = ()  # certificates (keyCredentials)


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
    """What a tenant's app management policy allows for new secrets and certificates (None: no cap).

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
    # keyCredentialConfiguration (https://learn.microsoft.com/graph/api/resources/keycredentialconfiguration):
    # `asymmetricKeyLifetime` caps a certificate's validity. (`trustedCertificateAuthority` exists in beta
    # only, so a v1.0 read never sees it; Entra's refusal on adding the key still says so.)
    certificate_max_lifetime_days: float | None = None
    certificate_lifetime_capped_for_apps_created_from: datetime | None = None

    def for_app_created(self, created: datetime | None) -> PasswordPolicy:
        """The policy as Entra enforces it on an app created at `created` (None: unknown, so it applies)."""

        def applies(since: datetime | None) -> bool:
            return since is None or created is None or created >= since

        return PasswordPolicy(
            additions_allowed=self.additions_allowed or not applies(self.additions_forbidden_for_apps_created_from),
            max_lifetime_days=self.max_lifetime_days if applies(self.lifetime_capped_for_apps_created_from) else None,
            policy_id=self.policy_id,
            certificate_max_lifetime_days=self.certificate_max_lifetime_days
            if applies(self.certificate_lifetime_capped_for_apps_created_from)
            else None,
        )


class SecretKind(StrEnum):
    CLIENT_ID = "client-id"
    TENANT_ID = "tenant-id"
    CLIENT_SECRET = "client-secret"  # noqa: S105 - a kind of secret, not a secret
    # The public certificate a vendor supplied (PEM): not secret, but the record of what is on the app.
    VENDOR_CERTIFICATE = "vendor-certificate"
    # The Sentinel connection's workspace: its workspace (customer) id and its name, beside the credentials.
    WORKSPACE_ID = "workspace-id"
    WORKSPACE_NAME = "workspace-name"


# What every registration has (read together on each onboarding and status); a Sentinel registration's workspace
# records are read apart, by the workspace step, so no other registration pays for them.
REGISTRATION_KINDS = (
    SecretKind.CLIENT_ID,
    SecretKind.TENANT_ID,
    SecretKind.CLIENT_SECRET,
    SecretKind.VENDOR_CERTIFICATE,
)
WORKSPACE_KINDS = (SecretKind.WORKSPACE_ID, SecretKind.WORKSPACE_NAME)


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


class Listing(StrEnum):
    """Key Vault's two listings of a deployment's records: secrets, and certificates (listed apart)."""

    SECRETS = "secrets"
    CERTIFICATES = "certificates"


@dataclass(frozen=True)
class RecordPage:
    """One page of a Key Vault listing, this deployment's records only (metadata, no value), and the link to the next
    page (None: the listing is done)."""

    records: tuple[SecretSummary, ...]
    next_link: str | None


# What the provisioner app needs in a customer tenant: create apps it then owns, and grant consent, which
# Graph documents as AppRoleAssignment.ReadWrite.All *and* Application.Read.All
# (https://learn.microsoft.com/graph/api/serviceprincipal-post-approleassignedto).
PROVISIONER_ROLES = frozenset(
    {"Application.ReadWrite.OwnedBy", "Application.Read.All", "AppRoleAssignment.ReadWrite.All"}
)


@dataclass(frozen=True)
class HeldAssignment:
    """An Azure role assignment a principal holds at or above a scope: its role (a GUID) and its ABAC condition."""

    scope: str
    role_definition_id: str
    condition: str | None


@dataclass(frozen=True)
class Workspace:
    """A Log Analytics workspace as Azure Resource Manager shows it: its resource id, its name, and the workspace
    (customer) id its query API is addressed by."""

    resource_id: str
    name: str
    customer_id: str
