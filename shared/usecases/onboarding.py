"""Onboarding one integration into one tenant: register, consent, mint, store, prove — idempotently.

Every step reads what already exists and does only what is missing, so a repeated PUT never
creates a second app or secret and a PUT that died half-way is finished by the next one:

1. resolve the profile's permissions to app role ids on the tenant's resource APIs (reads only,
   so a tenant that cannot satisfy the profile gets a named error and nothing is created), beside
   reading the tenant's password policy and what Key Vault already holds for this registration;
2. upsert the app by uniqueName (creates it, or converges display name, tags and permissions);
3. upsert its service principal by appId, then grant the missing app role assignments (admin
   consent), batched; and at the same time
4. mint a client secret only when Key Vault holds none that is still on the app, and store it
   *before* proving it: a secret whose text exists nowhere but in this process is the one
   thing a crash could leak into an orphan;
5. prove it with a real token request whose `roles` must hold every granted permission;
6. mark it verified and, only then, write Client ID and Tenant ID; remove secrets this service
   minted but never stored.

Steps run side by side whenever neither needs the other's answer or object: 3 and 4 each wait
only for the new app to replicate, so an onboarding costs its dependent round trips plus the
replication lags on its critical path, not the sum of every call (bench/onboarding_latency.py).
Entra's replication can outlast a request; then the answer is 202 and the next PUT continues.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar, overload

from shared.adapters.locks import Locks, ProcessLocks
from shared.domain.catalog import Catalog
from shared.domain.errors import (
    NameHeldByDeletedRegistration,
    RegistrationNotFound,
    SecretsForbiddenByPolicy,
    UnknownIntegration,
    UpstreamError,
)
from shared.domain.model import (
    AppRegistration,
    IntegrationProfile,
    PasswordInfo,
    PasswordPolicy,
    ResourceApi,
    RoleRef,
    Secret,
    SecretKind,
    StoredSecret,
)
from shared.domain.ports import (
    ApplicationSpec,
    CredentialChecker,
    Directory,
    NameHeldByDeletedApplication,
    NotReplicatedYet,
    TenantAccess,
    Vault,
)
from shared.domain.retry import Clock
from shared.settings import Settings
from shared.usecases.consent import Tally, converge, resolve, wanted_grants
from shared.usecases.credentials import (
    CONTENT_TYPES,
    Credentials,
    StillReplicating,
    audit,
    iso,
    known_profile,
    registration_key,
    secret_name,
    unique_name,
    within_replication,
)
from shared.usecases.ownership import examine, require_ours

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
        context = {"tenantId": tenant, "integration": profile.id}
        names = {kind: secret_name(self.settings, tenant, profile.id, kind) for kind in SecretKind}

        # Reads only, and none needs another's answer: the tenant's resource APIs and policy, and
        # what Key Vault already holds for this registration (which decides what to mint and write).
        apis, policy, stored = await _together(
            resolve(self.directory, tenant, profile),
            self.directory.password_policy(tenant),
            self._read_stored(names),
        )
        progress(
            "resolve", f"{sum(len(p.roles) for p in profile.permissions)} permissions on {len(apis)} resource APIs"
        )
        # As Entra enforces it on an app created now; an existing app may predate a restriction.
        policy = await self._policy_for_this_app(tenant, profile, policy)
        if not policy.additions_allowed:
            raise SecretsForbiddenByPolicy(
                "The tenant's app management policy does not allow client secrets.",
                policyId=policy.policy_id,
                **context,
            )
        # What the caller asked for is kept on the stored secret (`lifetime-days`), so rotation keeps to it.
        requested_days = request.secret_lifetime_days or self.settings.secret_lifetime_days
        lifetime_days = float(requested_days)
        if policy.max_lifetime_days is not None and lifetime_days > policy.max_lifetime_days:
            progress("policy", f"secret lifetime clamped to {policy.max_lifetime_days:g} days by the tenant's policy")
            lifetime_days = policy.max_lifetime_days

        spec = self._spec(request, profile, apis)
        done = _Done()
        try:
            app, done.app_created = await self._replicated(
                "app registration", lambda: self._converge_application(tenant, profile, spec, stored, context, done)
            )
            if done.app_created:
                audit("application.created", context, appObjectId=app.object_id, clientId=app.app_id)
            progress(
                "application",
                f"{'created' if done.app_created else 'found'} {app.display_name} (client id {app.app_id})",
            )

            # Both branches wait for the new app to replicate, then neither needs the other until the proof:
            # the service principal and its grants on one side, the client secret minted and stored on the other.
            (sp_id, granted), (secret_stored, secret, new_password) = await _together(
                self._principal_and_grants(tenant, app, profile, apis, context, done, progress),
                self._ensure_secret(
                    tenant, profile, app, lifetime_days, requested_days, context, stored[SecretKind.CLIENT_SECRET], done
                ),
            )
            progress(
                "client secret", f"{'created' if done.minted else 'kept'} keyId {secret_stored.tags.get('key-id')}"
            )
            if new_password is not None:
                app = replace(app, passwords=(*app.passwords, new_password))

            if secret_stored.tags.get("verified") != "true":
                await self.credentials.prove(tenant, app.app_id, secret, profile)
                tags = dict(secret_stored.tags, verified="true")
                # Client ID and Tenant ID only once the secret is proven, beside marking it so.
                _, done.ids_written = await _together(
                    self.vault.update_tags(secret_stored.name, secret_stored.version, tags),
                    self._write_ids(tenant, profile, app, context, stored),
                )
                secret_stored = replace(secret_stored, tags=tags)
                progress("verify", "a token request with the new secret holds every granted permission")
            else:
                done.ids_written = await self._write_ids(tenant, profile, app, context, stored)
            removed = await self._remove_orphans(
                tenant, profile, app, keep=str(secret_stored.tags.get("key-id")), context=context
            )
            done.orphans_removed += len(removed)
            app = replace(app, passwords=tuple(p for p in app.passwords if p.key_id not in removed))
        except StillReplicating as pending:
            progress("pending", pending.reason)
            return OnboardResult(
                Outcome.PENDING,
                await self.describe(tenant, profile.id),
                pending_reason=pending.reason,
                retry_after=pending.retry_after,
                changes=done.changes(),
            )
        changes = done.changes()
        outcome = Outcome.CREATED if done.app_created else (Outcome.UPDATED if changes else Outcome.COMPLETE)
        # All of it was just read, written or proven by this call (the ids are stored now): reading it back
        # from Entra and Key Vault would cost three more dependent round trips and tell nothing new.
        registration = self._description(
            tenant,
            profile,
            app,
            sp_id,
            [apis[p.resource_app_id] for p in profile.permissions],
            granted,
            secret_stored,
            dict.fromkeys((SecretKind.CLIENT_ID, SecretKind.TENANT_ID), True),
        )
        return OnboardResult(outcome, registration, changes=changes)

    # --- steps ---
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

    async def _policy_for_this_app(
        self, tenant: str, profile: IntegrationProfile, policy: PasswordPolicy
    ) -> PasswordPolicy:
        """The tenant's policy as it applies to this registration's app: one created now, unless one exists.

        Reading the app costs a round trip, so it is read only when the answer could differ: when a
        restriction applies only to apps created from some date on."""
        for_new_app = policy.for_app_created(self.now())
        dated = policy.additions_forbidden_for_apps_created_from or policy.lifetime_capped_for_apps_created_from
        if dated is None:
            return for_new_app
        existing = await self.directory.find_application(tenant, unique_name(self.settings, profile.id))
        return policy.for_app_created(existing.created) if existing is not None else for_new_app

    async def _converge_application(
        self,
        tenant: str,
        profile: IntegrationProfile,
        spec: ApplicationSpec,
        stored: dict[SecretKind, StoredSecret | None],
        context: dict[str, str],
        done: _Done,
    ) -> tuple[AppRegistration, bool]:
        """The registration's app: created by this call, or an existing one proven this service's alone.

        An existing app is read and examined before anything is written to it, granted to it or
        minted on it (shared/usecases/ownership.py); one that fails is refused with `registration-not-owned`
        and an audit event. A proven one is written only when it differs from the spec.
        """
        existing = await self.directory.find_application(tenant, unique_name(self.settings, profile.id))
        converged = False
        if existing is None:
            app, created = await self._upsert_application(tenant, profile, spec, context, done)
            if created:
                return app, True
            # 204: it existed after all (created by an earlier call and still replicating to reads, or
            # by someone else in between): the upsert converged it; now it must prove itself like any other.
            existing, converged = app, True
        ownership = await require_ours(
            self.directory, tenant, existing, stored, f"{self.settings.name_prefix} ", context
        )
        for key_id in ownership.lost_passwords:
            if await self.directory.remove_password(tenant, existing.object_id, key_id):
                done.orphans_removed += 1
                audit("secret.removed", context, appObjectId=existing.object_id, keyId=key_id, reason="unrecorded")
        if ownership.lost_passwords:
            lost = set(ownership.lost_passwords)
            existing = replace(existing, passwords=tuple(p for p in existing.passwords if p.key_id not in lost))
        if not converged and not spec.matches(existing):
            await self.directory.update_application(tenant, existing.object_id, spec)
            done.app_updated = True
            existing = replace(
                existing,
                display_name=spec.display_name,
                tags=spec.tags,
                notes=spec.notes,
                sign_in_audience=spec.sign_in_audience,
                required_roles=frozenset(
                    RoleRef(resource, role) for resource, roles in spec.required_roles for role in roles
                ),
            )
        return existing, False

    async def _upsert_application(
        self, tenant: str, profile: IntegrationProfile, spec: ApplicationSpec, context: dict[str, str], done: _Done
    ) -> tuple[AppRegistration, bool]:
        """Upsert the app by uniqueName, first purging a deleted registration that still holds the name.

        An offboarded app stays in deleted items, keeping its uniqueName, for 30 days. Restoring it
        would bring back credentials and state from before the offboarding; purging it and creating
        a new one gives a registration made entirely by this call. Graph lets an
        Application.ReadWrite.OwnedBy caller purge only an app it owns, so nothing foreign is purged:
        a refusal becomes NameHeldByDeletedRegistration for an operator to resolve.
        """
        unique = unique_name(self.settings, profile.id)
        try:
            return await self.directory.upsert_application(tenant, unique, spec)
        except NameHeldByDeletedApplication as held:
            try:
                purged = await self.directory.purge_deleted_application(tenant, held.deleted_object_id)
            except UpstreamError as error:
                if error.upstream_status != 403:
                    raise
                raise NameHeldByDeletedRegistration(
                    "A deleted app registration holds this integration's unique name and this service may not "
                    "purge it; restore or permanently delete it in Entra ID (Deleted applications).",
                    deletedObjectId=held.deleted_object_id,
                    uniqueName=unique,
                    **context,
                ) from error
            if purged:
                done.deleted_purged += 1
                audit("application.purged", context, appObjectId=held.deleted_object_id, reason="unique name held")
            # The purge takes a moment to free the name everywhere: the next attempt sees it freed.
            raise NotReplicatedYet("the purge of the deleted app registration") from held
        except UpstreamError as error:
            if done.deleted_purged and error.upstream_status in (400, 409):
                # After a purge, a replica that still holds the name can refuse the create for a while.
                raise NotReplicatedYet("the purge of the deleted app registration", error.upstream_code) from error
            raise

    async def _replicated(self, what: str, operation: Callable[[], Any]) -> Any:
        """Run a Graph step, waiting out replication within the configured time, else 202."""
        return await within_replication(
            what, operation, deadline_seconds=self.settings.replication_timeout_seconds, clock=self.clock
        )

    async def _principal_and_grants(
        self,
        tenant: str,
        app: AppRegistration,
        profile: IntegrationProfile,
        apis: dict[str, ResourceApi],
        context: dict[str, str],
        done: _Done,
        progress: Progress,
    ) -> tuple[str, set[tuple[str, str]]]:
        """The app's service principal and its grants: (its id, the (resource, role) pairs it now holds)."""
        sp_id, done.sp_created = await self._replicated(
            "service principal",
            lambda: self.directory.upsert_service_principal(tenant, app.app_id, app_is_new=done.app_created),
        )
        if done.sp_created:
            audit("servicePrincipal.created", context, servicePrincipalId=sp_id, clientId=app.app_id)
        progress("service principal", f"{'created' if done.sp_created else 'found'} {sp_id}")
        granted = await self._grant(tenant, sp_id, profile, apis, context, done)
        progress("consent", f"{done.consent.granted} granted now, {len(profile.all_roles())} in the profile")
        return sp_id, granted

    async def _grant(
        self,
        tenant: str,
        sp_id: str,
        profile: IntegrationProfile,
        apis: dict[str, ResourceApi],
        context: dict[str, str],
        done: _Done,
    ) -> set[tuple[str, str]]:
        return await converge(
            self.directory, tenant, sp_id, wanted_grants(profile, apis), context,
            principal_is_new=done.sp_created, deadline_seconds=self.settings.replication_timeout_seconds,
            clock=self.clock, tally=done.consent,
        )  # fmt: skip

    async def _read_stored(
        self, names: dict[SecretKind, str], with_value: bool = True
    ) -> dict[SecretKind, StoredSecret | None]:
        found = await asyncio.gather(*(self.vault.read(name, with_value=with_value) for name in names.values()))
        return dict(zip(names, found, strict=True))

    async def _ensure_secret(
        self,
        tenant: str,
        profile: IntegrationProfile,
        app: AppRegistration,
        lifetime_days: float,
        requested_days: int,
        context: dict[str, str],
        stored: StoredSecret | None,
        done: _Done,
    ) -> tuple[StoredSecret, Secret, PasswordInfo | None]:
        """The stored client secret if it is still on the app, else a new one, stored at once (and its info)."""
        if stored is not None and stored.value is not None:
            on_app = next((p for p in app.passwords if p.key_id == stored.tags.get("key-id")), None)
            if on_app is not None and on_app.end > self.now():
                return stored, stored.value, None
        end = self.now() + timedelta(days=lifetime_days)
        new = await self.credentials.mint(tenant, app, end, context)
        tags = self._tags(tenant, profile, app, SecretKind.CLIENT_SECRET) | {
            "key-id": new.info.key_id,
            "verified": "false",
            "issued-at": iso(self.now()),
            "lifetime-days": str(requested_days),
        }
        name = secret_name(self.settings, tenant, profile.id, SecretKind.CLIENT_SECRET)
        written = await self.credentials.store(tenant, app, name, new, tags, context)
        done.minted = True
        return written, new.secret, new.info

    async def _write_ids(
        self,
        tenant: str,
        profile: IntegrationProfile,
        app: AppRegistration,
        context: dict[str, str],
        stored: dict[SecretKind, StoredSecret | None],
    ) -> int:
        """Client ID and Tenant ID, each written unless Key Vault (as read at the start) already holds it."""

        async def ensure(kind: SecretKind, value: str) -> int:
            name = secret_name(self.settings, tenant, profile.id, kind)
            tags = self._tags(tenant, profile, app, kind)
            current = stored[kind]
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
    ) -> set[str]:
        """Secrets this service minted (by display-name prefix) whose keyId no stored version ever held.

        Only those older than the grace period: a younger one may belong to a request still in flight.
        Credentials that were stored once are rotation's to retire, never removed here.
        """
        cutoff = self.now() - timedelta(minutes=self.settings.orphan_grace_minutes)
        ours = [
            p
            for p in app.passwords
            if (p.display_name or "").startswith(f"{self.settings.name_prefix} ")
            and p.key_id != keep
            and p.start <= cutoff
        ]
        if not ours:
            return set()  # nothing that could be an orphan: no need to list the stored versions
        name = secret_name(self.settings, tenant, profile.id, SecretKind.CLIENT_SECRET)
        stored_ids = await self.vault.stored_key_ids(name)
        removed: set[str] = set()
        for password in ours:
            if password.key_id in stored_ids:
                continue
            if await self.directory.remove_password(tenant, app.object_id, password.key_id):
                removed.add(password.key_id)
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
        """Like `describe`, for a registration that must exist, in a tenant this service may reach."""
        if self.access is not None:
            # As onboard does: a tenant that has not consented gets 403 with the consent URL, not a failed read.
            await self.access.ensure_reachable(tenant)
        state = await self.describe(tenant, integration)
        if state["application"] is None and state["keyVaultReferences"]["clientSecret"] is None:
            raise RegistrationNotFound(
                "Nothing is registered for this integration in this tenant.", tenantId=tenant, integration=integration
            )
        return state

    async def describe(self, tenant: str, integration: str) -> dict[str, Any]:
        """The live state from Entra and Key Vault, including drift; never a secret value."""
        profile = await known_profile(self.catalog, self.vault, self.settings, tenant, integration)
        names = {kind: secret_name(self.settings, tenant, profile.id, kind) for kind in SecretKind}
        app, stored, apis = await _together(
            self.directory.find_application(tenant, unique_name(self.settings, profile.id)),
            self._read_stored(names, with_value=False),
            asyncio.gather(*(self.directory.resource_api(tenant, p.resource_app_id) for p in profile.permissions)),
        )
        sp_id, ownership = (
            await _together(
                self.directory.find_service_principal(tenant, app.app_id),
                examine(self.directory, tenant, app, stored, f"{self.settings.name_prefix} "),
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
        return self._description(
            tenant,
            profile,
            app,
            sp_id,
            list(apis),
            {(a.resource_object_id, a.app_role_id) for a in assignments},
            stored[SecretKind.CLIENT_SECRET],
            {kind: stored[kind] is not None for kind in (SecretKind.CLIENT_ID, SecretKind.TENANT_ID)},
            ownership.problems if ownership else (),
        )

    def _description(
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
    ) -> dict[str, Any]:
        """The registration as the API shows it, from what was read (describe) or just converged (onboard)."""
        names = {kind: secret_name(self.settings, tenant, profile.id, kind) for kind in SecretKind}
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
        key_id = secret.tags.get("key-id") if secret else None
        on_app = next((c for c in app.passwords if c.key_id == key_id), None) if app and key_id else None
        drift = [f"application not provably this service's alone: {problem}" for problem in not_ours]
        if not profile.in_catalog:
            drift.append("integration no longer in the catalog: offboard it")
        if app is None:
            drift.append("application missing")
        elif sp_id is None:
            drift.append("service principal missing")
        drift += [f"permission not granted: {p['permission']}" for p in permissions if not p["granted"]]
        # Roles someone granted by hand, beyond the profile: reported (an escalation to review), not revoked.
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
                "clientId": self.vault.reference(names[SecretKind.CLIENT_ID])
                if ids_stored[SecretKind.CLIENT_ID]
                else None,
                "tenantId": self.vault.reference(names[SecretKind.TENANT_ID])
                if ids_stored[SecretKind.TENANT_ID]
                else None,
                "clientSecret": self.vault.reference(names[SecretKind.CLIENT_SECRET]) if secret else None,
            },
            "drift": drift,
        }


@dataclass
class _Done:
    """What one call changed, reported in the order of the steps whatever order they finished in."""

    deleted_purged: int = 0
    app_created: bool = False
    app_updated: bool = False
    sp_created: bool = False
    consent: Tally = field(default_factory=Tally)
    minted: bool = False
    ids_written: int = 0
    orphans_removed: int = 0

    def changes(self) -> list[str]:
        return [
            change
            for change, happened in (
                ("deleted application purged", self.deleted_purged),
                ("application created", self.app_created),
                ("application updated", self.app_updated),
                ("service principal created", self.sp_created),
                (f"{self.consent.granted} permissions granted", self.consent.granted),
                (f"{self.consent.revoked} permissions beyond the profile revoked", self.consent.revoked),
                ("client secret created", self.minted),
                ("client and tenant ids stored", self.ids_written),
                (f"{self.orphans_removed} orphaned secrets removed", self.orphans_removed),
            )
            if happened
        ]


A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")


@overload
async def _together(a: Awaitable[A], b: Awaitable[B], /) -> tuple[A, B]: ...


@overload
async def _together(a: Awaitable[A], b: Awaitable[B], c: Awaitable[C], /) -> tuple[A, B, C]: ...


async def _together(*steps: Awaitable[Any]) -> tuple[Any, ...]:
    """Run independent steps at once, wait for every one of them, then raise the first failure.

    None is cancelled when another fails: an addPassword cut off in flight could mint a secret
    whose text nobody receives. A definite error wins over StillReplicating, which only asks the
    caller to come back and would hide it.
    """
    results = await asyncio.gather(*steps, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise next((f for f in failures if not isinstance(f, StillReplicating)), failures[0])
    return tuple(results)
