"""Offboarding one integration from one tenant: remove the app registration, then its stored secrets.

Idempotent: every step checks what is still there, so a half-finished offboarding finishes on
retry and a second DELETE is a clean no-op. It touches only this integration's objects: the app
is found by its uniqueName, the secrets by their names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from shared.domain.audit import audit
from shared.domain.catalog import Catalog
from shared.domain.model import REGISTRATION_KINDS, WORKSPACE_KINDS, CredentialType, SecretKind, StoredSecret
from shared.domain.ports import Directory, Locks, TenantAccess, Vault
from shared.domain.registry import Tag
from shared.settings import Settings
from shared.usecases.credentials import known_profile
from shared.usecases.workspace_access import WorkspaceAccess


@dataclass
class OffboardResult:
    tenant_id: str
    integration: str
    application: str  # deleted | purged | absent
    secrets: dict[str, str] = field(default_factory=dict)  # name -> deleted | purged | absent
    # Client certificates (and a rotation's staging one) that were there: name -> deleted | purged
    certificates: dict[str, str] = field(default_factory=dict)
    # What only the customer's admin can do (a federated registration's consent is theirs to withdraw).
    customer_action: str | None = None
    # The Sentinel role this service assigned on the customer's workspace: removed | absent (None: no workspace)
    workspace_role: str | None = None

    @property
    def changed(self) -> bool:
        return (
            self.application != "absent" or any(v != "absent" for v in self.secrets.values()) or bool(self.certificates)
            or self.workspace_role == "removed"
        )  # fmt: skip


class Offboarding:
    def __init__(
        self, settings: Settings, catalog: Catalog, directory: Directory, vault: Vault, locks: Locks,
        access: TenantAccess | None = None, workspace_access: WorkspaceAccess | None = None,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.registry = settings.registry
        self.catalog = catalog
        self.directory = directory
        self.vault = vault
        self.locks = locks
        self.access = access
        self.workspace_access = workspace_access

    async def offboard(
        self, tenant: str, integration: str, *, purge_application: bool = False, purge_secrets: bool = False
    ) -> OffboardResult:
        # An integration that has left the catalog is still offboarded from Key Vault's record.
        profile = await known_profile(self.catalog, self.vault, self.registry, tenant, integration)
        context = {"tenantId": tenant, "integration": integration}
        ids = await self.vault.read(self.registry.secret_name(tenant, integration, SecretKind.CLIENT_ID))
        if ids is not None and ids.tags.get(Tag.CREDENTIAL_TYPE) == CredentialType.FEDERATED.value:
            return await self._offboard_federated(tenant, integration, ids, purge_secrets, context)
        if self.access is not None:
            await self.access.ensure_reachable(tenant)
        async with self.locks.hold(
            self.registry.registration_key(tenant, integration), self.settings.lock_wait_seconds
        ):
            result = OffboardResult(tenant, integration, "absent")
            workspace = self.workspace_access if profile.workspace_roles else None
            workspace_records = await workspace.stored(tenant, profile) if workspace else {}
            if workspace is not None and workspace_records.get(SecretKind.WORKSPACE_ID) is not None:
                # Before the app: its service principal goes with it, and an assignment to a deleted principal
                # lingers on the workspace as "unknown" until someone removes it by hand.
                role_removed = await workspace.remove(tenant, workspace_records, context)
                result.workspace_role = "removed" if role_removed else "absent"
            unique = self.registry.unique_name(integration)
            app = await self.directory.find_application(tenant, unique)
            # Deleting the app also removes its service principal (and with it the grants) and every
            # credential on it, so the stored secret stops working before it is deleted from the vault.
            if app is not None and await self.directory.delete_application(tenant, app.object_id):
                result.application = "deleted"
                audit("application.deleted", context, appObjectId=app.object_id, clientId=app.app_id)
            if purge_application:
                # On a retry the app is already in deleted items: find it there by its unique name.
                deleted_id = app.object_id if app else await self.directory.find_deleted_application(tenant, unique)
                if deleted_id and await self.directory.purge_deleted_application(tenant, deleted_id):
                    result.application = "purged"
                    audit("application.purged", context, appObjectId=deleted_id)
            every = self.registry.secret_names(
                tenant,
                integration,
                (*REGISTRATION_KINDS, *(WORKSPACE_KINDS if any(workspace_records.values()) else ())),
            )
            names = [name for kind, name in every.items() if kind is not SecretKind.VENDOR_CERTIFICATE]
            # Reported only when there was one: a rotation's staging secret (it holds a secret's text) and the
            # record of a vendor's certificate.
            extras = [self.registry.staging_secret_name(tenant, integration), every[SecretKind.VENDOR_CERTIFICATE]]
            outcomes = await asyncio.gather(
                *(self._remove_secret(name, purge_secrets, context) for name in [*names, *extras])
            )
            result.secrets = dict(zip(names, outcomes, strict=False))
            for name, outcome in zip(extras, outcomes[len(names) :], strict=True):
                if outcome != "absent":
                    result.secrets[name] = outcome
            certificates = [
                self.registry.certificate_name(tenant, integration),
                self.registry.staging_certificate_name(tenant, integration),
            ]
            removed = await asyncio.gather(
                *(self._remove_certificate(name, purge_secrets, context) for name in certificates)
            )
            result.certificates = {
                name: outcome for name, outcome in zip(certificates, removed, strict=True) if outcome != "absent"
            }
            _offboarded(result, context)
            return result

    async def _offboard_federated(
        self, tenant: str, integration: str, ids: StoredSecret, purge: bool, context: dict[str, str]
    ) -> OffboardResult:
        """A federated registration has no app of its own: the stored ids go, and the connector (shared by every
        tenant) stays. Consent is the customer's to withdraw: the result says what their admin removes."""
        async with self.locks.hold(
            self.registry.registration_key(tenant, integration), self.settings.lock_wait_seconds
        ):
            result = OffboardResult(tenant, integration, "absent")
            names = [
                self.registry.secret_name(tenant, integration, k) for k in (SecretKind.CLIENT_ID, SecretKind.TENANT_ID)
            ]
            outcomes = await asyncio.gather(*(self._remove_secret(name, purge, context) for name in names))
            result.secrets = dict(zip(names, outcomes, strict=True))
            result.customer_action = (
                f"The customer's admin removes the enterprise application with client id "
                f"{ids.tags.get(Tag.CLIENT_ID)} (Entra ID, Enterprise applications) to withdraw its consent; this "
                "service no longer uses it for the tenant."
            )
            _offboarded(result, context)
            return result

    async def _remove_certificate(self, name: str, purge: bool, context: dict[str, str]) -> str:
        """A client certificate goes with its backing secret and key (Key Vault deletes all three together)."""
        return await _remove(
            name, purge, context, self.vault.delete_certificate, self.vault.purge_certificate, "certificate"
        )

    async def _remove_secret(self, name: str, purge: bool, context: dict[str, str]) -> str:
        return await _remove(name, purge, context, self.vault.delete, self.vault.purge, "secret")


async def _remove(
    name: str,
    purge: bool,
    context: dict[str, str],
    delete: Callable[[str], Awaitable[bool]],
    purge_deleted: Callable[[str], Awaitable[bool]],
    kind: str,
) -> str:
    """Soft-delete, then purge if asked: absent | deleted | purged, each change audited."""
    outcome = "absent"
    if await delete(name):
        outcome = "deleted"
        audit(f"{kind}.deleted", context, **{f"{kind}Name": name})
    if purge and await purge_deleted(name):
        outcome = "purged"
        audit(f"{kind}.purged", context, **{f"{kind}Name": name})
    return outcome


def _offboarded(result: OffboardResult, context: dict[str, str]) -> None:
    """One audit event when this call removed anything (a repeated DELETE, which finds nothing, adds none)."""
    removed = [o for o in (*result.secrets.values(), *result.certificates.values()) if o != "absent"]
    if result.application != "absent" or removed:
        audit("registration.offboarded", context, application=result.application, removedRecords=str(len(removed)))
