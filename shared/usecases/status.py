"""Reading a registration back: its live state in Entra and Key Vault, and how it drifts from its profile.

Returns values (RegistrationState); the HTTP API and the CLI shape them (shared/entrypoints/presenters.py).
Never a secret: Key Vault is read without values, and only references to the secrets are returned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shared.domain.catalog import Catalog
from shared.domain.errors import RegistrationNotFound
from shared.domain.model import (
    WORKSPACE_KINDS,
    AppRegistration,
    CredentialType,
    IntegrationProfile,
    ResourceApi,
    SecretKind,
    StoredCertificate,
    StoredSecret,
)
from shared.domain.ports import Directory, NotReplicatedYet, TenantAccess, Vault
from shared.domain.registry import Registry, Tag, iso
from shared.usecases.credentials import known_profile
from shared.usecases.ownership import examine
from shared.usecases.remaining_steps import recorded_steps_done, remaining_steps
from shared.usecases.replication import together
from shared.usecases.workspace_access import WorkspaceAccess, WorkspaceState

if TYPE_CHECKING:
    from shared.usecases.connector import Connectors


@dataclass(frozen=True)
class AppSummary:
    object_id: str
    client_id: str
    display_name: str


@dataclass(frozen=True)
class PermissionState:
    resource: str
    resource_app_id: str
    permission: str
    granted: bool
    add_on: str | None = None  # the add-on that brings it (None: the connection's base permissions)


@dataclass(frozen=True)
class CredentialState:
    key_id: str | None
    hint: str | None
    expires: datetime | None
    verified: bool
    other_credentials_on_app: int
    type: CredentialType = CredentialType.SECRET
    thumbprint: str | None = None  # a certificate's SHA-256 thumbprint (the `x5t#S256` consumers send)
    vendor_supplied: bool = False  # the vendor holds the key: installed here, never rotated here


@dataclass(frozen=True)
class References:
    """Key Vault references to the registration's secrets (None: not stored). A certificate's reference is
    to its backing secret, which holds the PKCS#12 (certificate and key)."""

    client_id: str | None
    tenant_id: str | None
    client_secret: str | None
    client_certificate: str | None = None
    vendor_certificate: str | None = None  # the public certificate the vendor supplied (PEM)
    workspace_id: str | None = None  # the Sentinel connection's workspace (customer) id and name
    workspace_name: str | None = None


@dataclass(frozen=True)
class RegistrationState:
    """A registration as read back (or as onboarding just left it): never a secret value."""

    tenant_id: str
    integration: str
    unique_name: str
    application: AppSummary | None
    service_principal_id: str | None
    permissions: list[PermissionState]
    credential: CredentialState
    references: References
    drift: list[str]
    add_ons: tuple[str, ...] = ()
    superseded_by: tuple[str, tuple[str, ...]] | None = None  # the profile's successor (catalog supersededBy)
    workspace: WorkspaceState | None = None  # the Sentinel connection's workspace and its role, when it has one
    # What the customer's admin must still do that this service may not (an add-on's remaining step), ids filled in.
    remaining_steps: list[str] = field(default_factory=list)


class RegistrationStatus:
    def __init__(
        self,
        registry: Registry,
        catalog: Catalog,
        directory: Directory,
        vault: Vault,
        now: Callable[[], datetime],
        access: TenantAccess | None = None,
        rotation_window_days: float = 30,
    ) -> None:
        self.rotation_window_days = rotation_window_days  # from when a vendor certificate's expiry is reported
        self.connectors: Connectors | None = None  # the federated type's reader (bootstrap sets it)
        self.workspace_access: WorkspaceAccess | None = None  # the Sentinel workspace's reader (bootstrap sets it)
        self.registry = registry
        self.catalog = catalog
        self.directory = directory
        self.vault = vault
        self.now = now
        self.access = access

    async def status(self, tenant: str, integration: str) -> RegistrationState:
        """Like `describe`, for a registration that must exist, in a tenant this service may reach."""
        federated = await self._federated(tenant, integration)
        if self.access is not None and not federated:
            # As onboard does: a tenant that has not consented gets 403 with the consent URL, not a failed read.
            # (A federated registration has nothing in the tenant to read: its connector's token tells.)
            await self.access.ensure_reachable(tenant)
        state = await self.describe(tenant, integration)
        if (
            state.application is None
            and state.references.client_secret is None
            and state.references.client_certificate is None
        ):
            raise RegistrationNotFound(
                "Nothing is registered for this integration in this tenant.", tenantId=tenant, integration=integration
            )
        return state

    async def _federated(self, tenant: str, integration: str) -> bool:
        """Whether the registration is the secretless type (its Client ID says so): a connector, nothing in the tenant."""
        ids = await self.vault.read(self.registry.secret_name(tenant, integration, SecretKind.CLIENT_ID))
        return ids is not None and ids.tags.get(Tag.CREDENTIAL_TYPE) == CredentialType.FEDERATED.value

    async def describe(self, tenant: str, integration: str) -> RegistrationState:
        """The live state from Entra and Key Vault, including drift; never a secret value."""
        profile = await known_profile(self.catalog, self.vault, self.registry, tenant, integration)
        names = self.registry.secret_names(tenant, profile.id)
        if self.connectors is not None and await self._federated(tenant, profile.id):
            records = await read_stored(self.vault, names, with_value=False)
            return await self.connectors.describe(tenant, profile, records)
        app, stored, certificate, apis = await together(
            self.directory.find_application(tenant, self.registry.unique_name(profile.id)),
            read_stored(self.vault, names, with_value=False),
            self.vault.read_certificate(self.registry.certificate_name(tenant, profile.id)),
            asyncio.gather(*(self.directory.resource_api(tenant, p.resource_app_id) for p in profile.permissions)),
        )
        sp_id, ownership = (
            await together(
                self.directory.find_service_principal(tenant, app.app_id),
                examine(self.directory, tenant, app, stored, self.registry.credential_prefix, certificate),
            )
            if app
            else (None, None)
        )
        assignments = []
        if sp_id:
            try:
                assignments = await self.directory.assignments(tenant, sp_id)
            except NotReplicatedYet:
                assignments = []
        state = self.state(
            tenant,
            profile,
            app,
            sp_id,
            list(apis),
            {(a.resource_object_id, a.app_role_id) for a in assignments},
            stored[SecretKind.CLIENT_SECRET],
            {kind: stored[kind] is not None for kind in (SecretKind.CLIENT_ID, SecretKind.TENANT_ID)},
            ownership.problems if ownership else (),
            certificate=certificate,
            vendor=stored[SecretKind.VENDOR_CERTIFICATE],
            current=ids.tags.get(Tag.CREDENTIAL_TYPE) if (ids := stored[SecretKind.CLIENT_ID]) else None,
            steps_done=recorded_steps_done(ids),
        )
        return await self.with_workspace(tenant, profile, state)

    async def with_workspace(
        self, tenant: str, profile: IntegrationProfile, state: RegistrationState, known: WorkspaceState | None = None
    ) -> RegistrationState:
        """The registration with its workspace: as onboarding just left it (`known`), else as Key Vault records it,
        its role assignment read back from Azure Resource Manager (missing: drift)."""
        if self.workspace_access is None or not profile.workspace_roles:
            return state
        workspace = known
        if workspace is None:
            workspace = await self.workspace_access.state(tenant, await self.workspace_access.stored(tenant, profile))
        if workspace is None:
            return state
        drift = list(state.drift)
        if not workspace.assigned:
            drift.append("the Sentinel role on the workspace is missing: PUT again to assign it")
        names = self.registry.secret_names(tenant, profile.id, WORKSPACE_KINDS)
        references = replace(
            state.references,
            workspace_id=self.vault.reference(names[SecretKind.WORKSPACE_ID]),
            workspace_name=self.vault.reference(names[SecretKind.WORKSPACE_NAME]),
        )
        return replace(state, workspace=workspace, drift=drift, references=references)

    def state(
        self,
        tenant: str,
        profile: IntegrationProfile,
        app: AppRegistration | None,
        sp_id: str | None,
        apis: list[ResourceApi | None],
        granted: set[tuple[str, str]],
        secret: StoredSecret | None,
        ids_stored: dict[SecretKind, bool],
        not_ours: tuple[str, ...] = (),
        *,
        certificate: StoredCertificate | None = None,
        vendor: StoredSecret | None = None,
        current: str | None = None,
        steps_done: frozenset[str] = frozenset(),
    ) -> RegistrationState:
        """The registration from what was read (describe) or just converged (onboard).

        Its credential is the one the Client ID records as current (`current`, the `credential-type` tag); before
        that is written, the one stored and not superseded (a vendor's certificate, a client certificate, then a
        client secret)."""
        names = self.registry.secret_names(tenant, profile.id)
        permissions = []
        for p, api in zip(profile.permissions, apis, strict=True):
            for role in p.roles:
                role_id = api.roles_by_value.get(role) if api else None
                granted_now = bool(api and role_id and (api.object_id, role_id) in granted)
                permissions.append(
                    PermissionState(
                        p.resource_name,
                        p.resource_app_id,
                        role,
                        granted_now,
                        profile.source_of(p.resource_app_id, role),
                    )
                )
        drift = [f"application not provably this service's alone: {problem}" for problem in not_ours]
        if not profile.in_catalog:
            drift.append("integration no longer in the catalog: offboard it")
        if app is None:
            drift.append("application missing")
        elif sp_id is None:
            drift.append("service principal missing")
        drift += [f"permission not granted: {p.permission}" for p in permissions if not p.granted]
        # Roles someone granted by hand, beyond the profile: reported (an escalation to review) until the next
        # PUT or rotation revokes them (shared/usecases/consent.py).
        role_names = {
            (api.object_id, role_id): value for api in apis if api for value, role_id in api.roles_by_value.items()
        }
        profile_roles = {
            (api.object_id, api.roles_by_value.get(role))
            for p, api in zip(profile.permissions, apis, strict=True)
            if api
            for role in p.roles
        }
        drift += sorted(
            f"permission granted outside the profile: {role_names.get(grant, f'app role {grant[1]} on {grant[0]}')}"
            for grant in granted - profile_roles
        )
        current = current or _fallback_type(secret, certificate, vendor)
        if current == SecretKind.VENDOR_CERTIFICATE.value and vendor is not None:
            credential, credential_drift = self._vendor_state(app, vendor)
        elif current == CredentialType.CERTIFICATE.value and certificate is not None:
            credential, credential_drift = self._certificate_state(app, certificate)
        else:
            credential, credential_drift = self._secret_state(app, secret)
        drift += credential_drift
        return RegistrationState(
            tenant_id=tenant,
            integration=profile.id,
            unique_name=self.registry.unique_name(profile.id),
            application=AppSummary(app.object_id, app.app_id, app.display_name) if app else None,
            service_principal_id=sp_id,
            permissions=permissions,
            credential=credential,
            references=References(
                client_id=self.vault.reference(names[SecretKind.CLIENT_ID])
                if ids_stored[SecretKind.CLIENT_ID]
                else None,
                tenant_id=self.vault.reference(names[SecretKind.TENANT_ID])
                if ids_stored[SecretKind.TENANT_ID]
                else None,
                client_secret=self.vault.reference(names[SecretKind.CLIENT_SECRET]) if secret else None,
                client_certificate=self.vault.reference(certificate.name) if certificate else None,
                vendor_certificate=self.vault.reference(vendor.name) if vendor else None,
            ),
            drift=drift,
            add_ons=profile.chosen,
            superseded_by=profile.superseded_by,
            remaining_steps=remaining_steps(profile, tenant, app, sp_id, steps_done),
        )

    def _secret_state(
        self, app: AppRegistration | None, secret: StoredSecret | None
    ) -> tuple[CredentialState, list[str]]:
        key_id = secret.tags.get(Tag.KEY_ID) if secret else None
        on_app = next((c for c in app.passwords if c.key_id == key_id), None) if app and key_id else None
        drift = []
        if secret is None:
            drift.append("client secret not stored")
        elif on_app is None:
            drift.append("stored client secret matches no credential on the app")
        elif on_app.end <= self.now():
            drift.append("client secret expired")
        others = _others_on_app(app, on_app is not None)
        return CredentialState(
            key_id=key_id,
            hint=on_app.hint if on_app else None,
            expires=on_app.end if on_app else (secret.expires if secret else None),
            verified=bool(secret and secret.tags.get(Tag.VERIFIED) == Tag.TRUE),
            other_credentials_on_app=others,
        ), drift

    def _vendor_state(self, app: AppRegistration | None, record: StoredSecret) -> tuple[CredentialState, list[str]]:
        """A vendor's certificate: on the app or not, proven only if the vendor sent a signed assertion, and its
        expiry reported from the rotation window on, since only the vendor can replace it."""
        key_id = record.tags.get(Tag.KEY_ID)
        on_app = next((k for k in app.keys if k.key_id == key_id), None) if app and key_id else None
        drift = []
        now = self.now()
        if on_app is None:
            drift.append("stored vendor certificate matches no certificate on the app")
        if record.expires is not None and record.expires <= now:
            drift.append("vendor certificate expired: the vendor must send a new one")
        elif record.expires is not None and record.expires - now <= timedelta(days=self.rotation_window_days):
            drift.append(f"vendor certificate expires {iso(record.expires)}: the vendor must send a new one")
        others = _others_on_app(app, on_app is not None)
        return CredentialState(
            key_id=key_id,
            hint=None,
            expires=record.expires,
            verified=record.tags.get(Tag.VERIFIED) == Tag.TRUE,
            other_credentials_on_app=others,
            type=CredentialType.CERTIFICATE,
            thumbprint=record.tags.get(Tag.THUMBPRINT),
            vendor_supplied=True,
        ), drift

    def _certificate_state(
        self, app: AppRegistration | None, certificate: StoredCertificate
    ) -> tuple[CredentialState, list[str]]:
        key_id = self.registry.key_credential_id(certificate.certificate.thumbprint_sha256)
        on_app = next((k for k in app.keys if k.key_id == key_id), None) if app else None
        drift = []
        if on_app is None:
            drift.append("stored client certificate matches no certificate on the app")
        elif certificate.expires <= self.now():
            drift.append("client certificate expired")
        others = _others_on_app(app, on_app is not None)
        return CredentialState(
            key_id=key_id,
            hint=None,
            expires=certificate.expires,
            verified=certificate.tags.get(Tag.VERIFIED) == Tag.TRUE,
            other_credentials_on_app=others,
            type=CredentialType.CERTIFICATE,
            thumbprint=certificate.certificate.thumbprint_sha256,
        ), drift


def _others_on_app(app: AppRegistration | None, holds_current: bool) -> int:
    """Credentials on the app (secrets and certificates) besides the registration's current one."""
    return (len(app.passwords) + len(app.keys) - (1 if holds_current else 0)) if app else 0


def _fallback_type(
    secret: StoredSecret | None, certificate: StoredCertificate | None, vendor: StoredSecret | None
) -> str:
    def current(record: StoredSecret | StoredCertificate | None) -> bool:
        return record is not None and not record.tags.get(Tag.SUPERSEDED_BY)

    if current(vendor):
        return SecretKind.VENDOR_CERTIFICATE.value
    if current(certificate) and not current(secret):
        return CredentialType.CERTIFICATE.value
    return CredentialType.SECRET.value


async def read_stored(
    vault: Vault, names: dict[SecretKind, str], with_value: bool = True
) -> dict[SecretKind, StoredSecret | None]:
    """What Key Vault holds under each of a registration's secret names (None: nothing)."""
    found = await asyncio.gather(*(vault.read(name, with_value=with_value) for name in names.values()))
    return dict(zip(names, found, strict=True))
