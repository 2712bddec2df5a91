"""Onboarding one integration into one tenant: register, consent, mint, store, prove — idempotently.

Every step reads what already exists and does only what is missing, so a repeated PUT never
creates a second app or secret and a PUT that died half-way is finished by the next one:

1. resolve the profile's permissions to app role ids on the tenant's resource APIs (reads only,
   so a tenant that cannot satisfy the profile gets a named error and nothing is created);
2. upsert the app by uniqueName (creates it, or converges display name, tags and permissions);
3. upsert its service principal by appId;
4. grant the missing app role assignments (admin consent), batched;
5. mint a client secret only when Key Vault holds none that is still on the app, and store it
   *before* proving it: a secret whose text exists nowhere but in this process is the one
   thing a crash could leak into an orphan;
6. prove it with a real token request whose `roles` must hold every granted permission;
7. write Client ID and Tenant ID, and remove secrets this service minted but never stored.

Entra's replication can outlast a request; then the answer is 202 and the next PUT continues.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from .catalog import Catalog
from .credentials import (
    CONTENT_TYPES,
    Credentials,
    StillReplicating,
    audit,
    iso,
    registration_key,
    secret_name,
    throttle_hint,
    unique_name,
)
from .errors import (
    PermissionNotOffered,
    RegistrationNotFound,
    ResourceApiMissing,
    SecretsForbiddenByPolicy,
    UnknownIntegration,
)
from .locks import Locks, ProcessLocks
from .model import AppRegistration, IntegrationProfile, ResourceApi, Secret, SecretKind, StoredSecret
from .ports import (
    ApplicationSpec,
    CredentialChecker,
    Directory,
    NotReplicatedYet,
    TenantAccess,
    Throttled,
    Vault,
)
from .retry import Clock, RetryDeadline, retry
from .settings import Settings

logger = logging.getLogger(__name__)

Progress = Callable[[str, str], None]


class Outcome(StrEnum):
    CREATED = "created"  # this call registered the app
    UPDATED = "updated"  # it existed; this call converged something
    COMPLETE = "complete"  # nothing was missing
    PENDING = "pending"  # progress made; Entra has not caught up yet


@dataclass(frozen=True)
class OnboardRequest:
    tenant_id: str
    integration: str
    display_name: str | None = None
    secret_lifetime_days: int | None = None
    notes: str | None = None


@dataclass
class OnboardResult:
    outcome: Outcome
    registration: dict[str, Any]
    pending_reason: str | None = None
    retry_after: int | None = None
    changes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The body of the HTTP PUT (and the CLI's --json), so scripts can use either."""
        payload: dict[str, Any] = {"outcome": self.outcome.value, "changes": self.changes, **self.registration}
        if self.outcome is Outcome.PENDING:
            payload["pendingReason"] = self.pending_reason
            payload["retryAfter"] = self.retry_after
        return payload


def _no_progress(step: str, detail: str) -> None:
    return None


class Onboarding:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        directory: Directory,
        vault: Vault,
        checker: CredentialChecker,
        clock: Clock,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        locks: Locks | None = None,
        access: TenantAccess | None = None,
    ) -> None:
        self.locks: Locks = locks or ProcessLocks()
        self.access = access
        self.settings = settings
        self.catalog = catalog
        self.directory = directory
        self.vault = vault
        self.checker = checker
        self.clock = clock
        self.now = now
        self.credentials = Credentials(settings, directory, vault, checker, clock, now)

    def profile(self, integration: str) -> IntegrationProfile:
        profile = self.catalog.get(integration)
        if profile is None:
            raise UnknownIntegration(f"No integration {integration!r} in the catalog.", integration=integration)
        return profile

    async def onboard(self, request: OnboardRequest, progress: Progress = _no_progress) -> OnboardResult:
        """Serialized per registration: a concurrent identical PUT waits, then finds the work done."""
        profile = self.profile(request.integration)
        if self.access is not None:
            # A tenant that has not consented gets 403 with the consent URL, and nothing is created.
            await self.access.ensure_reachable(request.tenant_id)
        async with self.locks.hold(registration_key(request.tenant_id, profile.id), self.settings.lock_wait_seconds):
            return await self._onboard(request, profile, progress)

    async def _onboard(self, request: OnboardRequest, profile: IntegrationProfile, progress: Progress) -> OnboardResult:
        tenant = request.tenant_id
        changes: list[str] = []
        context = {"tenantId": tenant, "integration": profile.id}

        apis = await self._resolve(tenant, profile)
        progress(
            "resolve", f"{sum(len(p.roles) for p in profile.permissions)} permissions on {len(apis)} resource APIs"
        )
        policy = await self.directory.password_policy(tenant)
        if not policy.additions_allowed:
            raise SecretsForbiddenByPolicy(
                "The tenant's app management policy does not allow client secrets.",
                policyId=policy.policy_id,
                **context,
            )
        lifetime_days = float(request.secret_lifetime_days or self.settings.secret_lifetime_days)
        if policy.max_lifetime_days is not None and lifetime_days > policy.max_lifetime_days:
            progress("policy", f"secret lifetime clamped to {policy.max_lifetime_days:g} days by the tenant's policy")
            lifetime_days = policy.max_lifetime_days

        spec = self._spec(request, profile, apis)
        try:
            app, created = await self._replicated(
                "app registration",
                lambda: self.directory.upsert_application(tenant, unique_name(self.settings, profile.id), spec),
            )
            if created:
                changes.append("application created")
                audit("application.created", context, appObjectId=app.object_id, clientId=app.app_id)
            progress("application", f"{'created' if created else 'found'} {app.display_name} (client id {app.app_id})")

            sp_id, sp_created = await self._replicated(
                "service principal", lambda: self.directory.upsert_service_principal(tenant, app.app_id)
            )
            if sp_created:
                changes.append("service principal created")
                audit("servicePrincipal.created", context, servicePrincipalId=sp_id, clientId=app.app_id)
            progress("service principal", f"{'created' if sp_created else 'found'} {sp_id}")

            granted_now = await self._grant(tenant, sp_id, profile, apis, context)
            if granted_now:
                changes.append(f"{granted_now} permissions granted")
            progress("consent", f"{granted_now} granted now, {len(profile.all_roles())} in the profile")

            stored, secret, minted = await self._ensure_secret(tenant, profile, app, lifetime_days, context)
            if minted:
                changes.append("client secret created")
            progress("client secret", f"{'created' if minted else 'kept'} keyId {stored.tags.get('key-id')}")

            if stored.tags.get("verified") != "true":
                await self.credentials.prove(tenant, app.app_id, secret, profile)
                tags = dict(stored.tags, verified="true")
                await self.vault.update_tags(stored.name, stored.version, tags)
                stored = StoredSecret(stored.name, stored.version, stored.uri, tags, stored.expires)
                progress("verify", "a token request with the new secret holds every granted permission")
            ids_written = await self._write_ids(tenant, profile, app, context)
            if ids_written:
                changes.append("client and tenant ids stored")
            removed = await self._remove_orphans(
                tenant, profile, app, keep=str(stored.tags.get("key-id")), context=context
            )
            if removed:
                changes.append(f"{removed} orphaned secrets removed")
        except StillReplicating as pending:
            progress("pending", pending.reason)
            return OnboardResult(
                Outcome.PENDING,
                await self.describe(tenant, profile.id),
                pending_reason=pending.reason,
                retry_after=pending.retry_after,
                changes=changes,
            )
        outcome = Outcome.CREATED if created else (Outcome.UPDATED if changes else Outcome.COMPLETE)
        return OnboardResult(outcome, await self.describe(tenant, profile.id), changes=changes)

    # --- steps ---
    async def _resolve(self, tenant: str, profile: IntegrationProfile) -> dict[str, ResourceApi]:
        found = await asyncio.gather(
            *(self.directory.resource_api(tenant, p.resource_app_id) for p in profile.permissions)
        )
        apis: dict[str, ResourceApi] = {}
        for permissions, api in zip(profile.permissions, found, strict=True):
            if api is None:
                raise ResourceApiMissing(
                    f"The tenant has no service principal for {permissions.resource_name}; the product that provides "
                    "it may not be licensed or enabled there.",
                    tenantId=tenant,
                    integration=profile.id,
                    resourceAppId=permissions.resource_app_id,
                )
            missing = [role for role in permissions.roles if role not in api.roles_by_value]
            if missing:
                raise PermissionNotOffered(
                    f"{permissions.resource_name} in this tenant does not offer {', '.join(missing)}.",
                    tenantId=tenant,
                    integration=profile.id,
                    resourceAppId=permissions.resource_app_id,
                )
            apis[permissions.resource_app_id] = api
        return apis

    def _spec(
        self, request: OnboardRequest, profile: IntegrationProfile, apis: dict[str, ResourceApi]
    ) -> ApplicationSpec:
        notes = "Managed by tenant onboarding automation: permissions and secrets are set and rotated automatically."
        if request.notes:
            notes = f"{notes} {request.notes}"
        return ApplicationSpec(
            display_name=request.display_name or profile.display_name,
            tags=("tenant-onboarding", f"integration:{profile.id}"),
            notes=notes[:1024],
            required_roles=tuple(
                (p.resource_app_id, tuple(apis[p.resource_app_id].roles_by_value[r] for r in p.roles))
                for p in profile.permissions
            ),
        )

    async def _replicated(self, what: str, operation: Callable[[], Any]) -> Any:
        """Run a Graph step, waiting out replication within the configured time, else 202."""
        try:
            return await retry(
                operation,
                what=what,
                retry_after=lambda error: 0.0 if isinstance(error, NotReplicatedYet) else throttle_hint(error),
                deadline_seconds=self.settings.replication_timeout_seconds,
                clock=self.clock,
            )
        except RetryDeadline as deadline:
            raise StillReplicating(what, deadline) from deadline

    async def _grant(
        self,
        tenant: str,
        sp_id: str,
        profile: IntegrationProfile,
        apis: dict[str, ResourceApi],
        context: dict[str, str],
    ) -> int:
        wanted = {
            (apis[p.resource_app_id].object_id, apis[p.resource_app_id].roles_by_value[role])
            for p in profile.permissions
            for role in p.roles
        }
        existing = await self._replicated("service principal", lambda: self.directory.assignments(tenant, sp_id))
        missing = sorted(wanted - {(a.resource_object_id, a.app_role_id) for a in existing})
        granted = 0

        async def grant_missing() -> None:
            nonlocal missing, granted
            result = await self.directory.grant(tenant, sp_id, missing)
            granted += len(result.granted)
            for role_id in result.granted:
                audit("permission.granted", context, servicePrincipalId=sp_id, appRoleId=role_id)
            missing = [pair for pair in missing if pair[1] in result.pending]
            if missing:
                raise (
                    NotReplicatedYet("the service principal")
                    if result.retry_after is None
                    else Throttled("graph", result.retry_after)
                )

        if missing:
            await self._replicated("permission grants", grant_missing)
        return granted

    async def _ensure_secret(
        self,
        tenant: str,
        profile: IntegrationProfile,
        app: AppRegistration,
        lifetime_days: float,
        context: dict[str, str],
    ) -> tuple[StoredSecret, Secret, bool]:
        """The stored client secret if it is still on the app, else a new one, stored at once."""
        name = secret_name(self.settings, tenant, profile.id, SecretKind.CLIENT_SECRET)
        stored = await self.vault.read(name, with_value=True)
        if stored is not None and stored.value is not None:
            on_app = next((p for p in app.passwords if p.key_id == stored.tags.get("key-id")), None)
            if on_app is not None and on_app.end > self.now():
                return stored, stored.value, False
        end = self.now() + timedelta(days=lifetime_days)
        new = await self.credentials.mint(tenant, app, end, context)
        tags = self._tags(tenant, profile, app, SecretKind.CLIENT_SECRET) | {
            "key-id": new.info.key_id,
            "verified": "false",
            "issued-at": iso(self.now()),
        }
        written = await self.credentials.store(tenant, app, name, new, tags, context)
        return written, new.secret, True

    async def _write_ids(
        self, tenant: str, profile: IntegrationProfile, app: AppRegistration, context: dict[str, str]
    ) -> int:
        async def ensure(kind: SecretKind, value: str) -> int:
            name = secret_name(self.settings, tenant, profile.id, kind)
            tags = self._tags(tenant, profile, app, kind)
            current = await self.vault.read(name, with_value=True)
            if current is not None and current.value == Secret(value) and dict(current.tags) == tags:
                return 0
            # No expiry: a stale `exp` on an id would break the references after a rotation.
            written = await self.vault.write(name, value, CONTENT_TYPES[kind], tags, None)
            audit("secret.stored", context, secretName=name, version=written.version)
            return 1

        written = await asyncio.gather(ensure(SecretKind.CLIENT_ID, app.app_id), ensure(SecretKind.TENANT_ID, tenant))
        return sum(written)

    async def _remove_orphans(
        self, tenant: str, profile: IntegrationProfile, app: AppRegistration, keep: str, context: dict[str, str]
    ) -> int:
        """Secrets this service minted (by display-name prefix) whose keyId no stored version ever held.

        Only those older than the grace period: a younger one may belong to a request still in flight.
        Credentials that were stored once are rotation's to retire, never removed here.
        """
        ours = [p for p in app.passwords if (p.display_name or "").startswith(f"{self.settings.name_prefix} ")]
        if not ours:
            return 0
        name = secret_name(self.settings, tenant, profile.id, SecretKind.CLIENT_SECRET)
        stored_ids = await self.vault.stored_key_ids(name)
        cutoff = self.now() - timedelta(minutes=self.settings.orphan_grace_minutes)
        removed = 0
        for password in ours:
            if password.key_id == keep or password.key_id in stored_ids or password.start > cutoff:
                continue
            if await self.directory.remove_password(tenant, app.object_id, password.key_id):
                removed += 1
                audit("secret.removed", context, appObjectId=app.object_id, keyId=password.key_id, reason="orphan")
        return removed

    def _tags(self, tenant: str, profile: IntegrationProfile, app: AppRegistration, kind: SecretKind) -> dict[str, str]:
        return {
            "managed-by": self.settings.name_prefix,
            "tenant-id": tenant,
            "integration": profile.id,
            "kind": kind.value,
            "app-object-id": app.object_id,
            "client-id": app.app_id,
        }

    # --- reading state back ---
    async def status(self, tenant: str, integration: str) -> dict[str, Any]:
        """Like `describe`, for a registration that must exist."""
        state = await self.describe(tenant, integration)
        if state["application"] is None and state["keyVaultReferences"]["clientSecret"] is None:
            raise RegistrationNotFound(
                "Nothing is registered for this integration in this tenant.", tenantId=tenant, integration=integration
            )
        return state

    async def describe(self, tenant: str, integration: str) -> dict[str, Any]:
        """The live state from Entra and Key Vault, including drift; never a secret value."""
        profile = self.profile(integration)
        app = await self.directory.find_application(tenant, unique_name(self.settings, profile.id))
        names = {kind: secret_name(self.settings, tenant, profile.id, kind) for kind in SecretKind}
        stored = dict(zip(names, await asyncio.gather(*(self.vault.read(n) for n in names.values())), strict=True))
        sp_id = await self.directory.find_service_principal(tenant, app.app_id) if app else None
        apis = await asyncio.gather(
            *(self.directory.resource_api(tenant, p.resource_app_id) for p in profile.permissions)
        )
        assignments = []
        if sp_id:
            try:
                assignments = await self.directory.assignments(tenant, sp_id)
            except NotReplicatedYet:
                assignments = []
        granted = {(a.resource_object_id, a.app_role_id) for a in assignments}
        permissions = []
        for p, api in zip(profile.permissions, apis, strict=True):
            for role in p.roles:
                role_id = api.roles_by_value.get(role) if api else None
                permissions.append(
                    {
                        "resource": p.resource_name,
                        "resourceAppId": p.resource_app_id,
                        "permission": role,
                        "granted": bool(api and role_id and (api.object_id, role_id) in granted),
                    }
                )
        secret = stored[SecretKind.CLIENT_SECRET]
        key_id = secret.tags.get("key-id") if secret else None
        on_app = next((c for c in app.passwords if c.key_id == key_id), None) if app and key_id else None
        drift = []
        if app is None:
            drift.append("application missing")
        elif sp_id is None:
            drift.append("service principal missing")
        drift += [f"permission not granted: {p['permission']}" for p in permissions if not p["granted"]]
        if secret is None:
            drift.append("client secret not stored")
        elif on_app is None:
            drift.append("stored client secret matches no credential on the app")
        elif on_app.end <= self.now():
            drift.append("client secret expired")
        return {
            "tenantId": tenant,
            "integration": profile.id,
            "uniqueName": unique_name(self.settings, profile.id),
            "application": {"objectId": app.object_id, "clientId": app.app_id, "displayName": app.display_name}
            if app
            else None,
            "servicePrincipalId": sp_id,
            "permissions": permissions,
            "credential": {
                "keyId": key_id,
                "hint": on_app.hint if on_app else None,
                "expires": iso(on_app.end) if on_app else (iso(secret.expires) if secret and secret.expires else None),
                "verified": bool(secret and secret.tags.get("verified") == "true"),
                "otherCredentialsOnApp": len(app.passwords) - (1 if on_app else 0) if app else 0,
            },
            "keyVaultReferences": {
                "clientId": self.vault.reference(names[SecretKind.CLIENT_ID]) if stored[SecretKind.CLIENT_ID] else None,
                "tenantId": self.vault.reference(names[SecretKind.TENANT_ID]) if stored[SecretKind.TENANT_ID] else None,
                "clientSecret": self.vault.reference(names[SecretKind.CLIENT_SECRET]) if secret else None,
            },
            "drift": drift,
        }
