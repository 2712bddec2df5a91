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
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.domain.audit import audit
from shared.domain.catalog import Catalog
from shared.domain.errors import (
    InvalidRequest,
    NameHeldByDeletedRegistration,
    OnboardingError,
    SecretsForbiddenByPolicy,
    TenantNotAllowed,
    UpstreamError,
)
from shared.domain.model import (
    AppRegistration,
    ClientAssertion,
    ClientCredential,
    CredentialType,
    IntegrationProfile,
    KeyInfo,
    PasswordInfo,
    PasswordPolicy,
    PublicCertificate,
    ResourceApi,
    RoleRef,
    Secret,
    SecretKind,
    StoredCertificate,
    StoredSecret,
)
from shared.domain.ports import (
    ApplicationSpec,
    CertificateReader,
    Directory,
    Locks,
    NameHeldByDeletedApplication,
    NotReplicatedYet,
    TenantAccess,
    Vault,
)
from shared.domain.registry import APP_NOTES, Tag, iso
from shared.domain.retry import Clock
from shared.settings import Settings
from shared.usecases.certificates import Certificates, check_vendor_certificate, pem, validity_months
from shared.usecases.connector import Connectors
from shared.usecases.consent import Tally, converge, resolve, wanted_grants
from shared.usecases.credentials import CONTENT_TYPES, Credentials, recorded_add_ons
from shared.usecases.ownership import require_ours
from shared.usecases.remaining_steps import check_steps, confirmable_add_ons, recorded_steps_done, steps_tag
from shared.usecases.replication import StillReplicating, together, within_replication
from shared.usecases.status import RegistrationState, RegistrationStatus, read_stored
from shared.usecases.workspace_access import WorkspaceAccess, WorkspaceRequest, WorkspaceState

logger = logging.getLogger(__name__)

Progress = Callable[[str, str], None]
# A customer's admin consents in minutes, not seconds: how soon a PUT waiting for it is worth repeating.
PENDING_CONSENT_RETRY_AFTER_SECONDS = 60


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
    credential_type: CredentialType | None = None  # None: the registration's own, else the catalog's default
    certificate: str | None = None  # a public certificate the vendor supplies (PEM or base64 DER)
    certificate_proof: str | None = None  # a client assertion signed with that certificate's key
    add_ons: tuple[str, ...] | None = None  # None: the registration's own add-ons (none for a new one)
    workspace: WorkspaceRequest | None = None  # None: the registration's own workspace, if it has one


@dataclass
class OnboardResult:
    outcome: Outcome
    registration: RegistrationState
    pending_reason: str | None = None
    retry_after: int | None = None
    changes: list[str] = field(default_factory=list)
    consent_url: str | None = None  # a federated registration waiting for the customer's admin


async def _nothing() -> None:
    return None


def _no_progress(step: str, detail: str) -> None:
    return None


class Onboarding:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        directory: Directory,
        vault: Vault,
        credentials: Credentials,
        status: RegistrationStatus,
        locks: Locks,
        clock: Clock,
        now: Callable[[], datetime],
        access: TenantAccess | None = None,
        certificates: Certificates | None = None,
        reader: CertificateReader | None = None,
        connectors: Connectors | None = None,
        workspace_access: WorkspaceAccess | None = None,
    ) -> None:
        self.connectors = connectors
        self.workspace_access = workspace_access
        self.settings = settings
        self.registry = settings.registry
        self.catalog = catalog
        self.directory = directory
        self.vault = vault
        self.credentials = credentials
        self.certificates = certificates or Certificates(settings, directory, vault, clock, now)
        self.reader = reader or _NoCertificateReader()
        self.status = status
        self.locks = locks
        self.clock = clock
        self.now = now
        self.access = access

    async def onboard(self, request: OnboardRequest, progress: Progress = _no_progress) -> OnboardResult:
        """Serialized per registration: a concurrent identical PUT waits, then finds the work done."""
        profile = self.catalog.require(request.integration)
        # Side by side: the registration's Client ID record (its type: a federated registration needs nothing of
        # the tenant but its admin's consent to the connector; its add-ons) and whether this service can reach
        # the tenant to create its app. A tenant that has not consented gets 403 with the consent URL, and
        # nothing is created.
        ids, reachable = await asyncio.gather(
            self._ids_record(request, profile),
            self.access.ensure_reachable(request.tenant_id) if self.access is not None else _nothing(),
            return_exceptions=True,
        )
        if isinstance(ids, BaseException):
            raise ids
        if request.workspace is not None and (not profile.workspace_roles or self.workspace_access is None):
            raise InvalidRequest(f"{profile.id} takes no workspace.", field="workspace")
        if profile.superseded_by is not None and ids is None:
            # Kept for the registrations made with it, which go on converging; a new one takes the current shape.
            successor, add_ons = profile.superseded_by
            raise InvalidRequest(
                f"{profile.id} is kept only for the registrations made with it: onboard {successor}"
                + (f" with addOns {list(add_ons)}" if add_ons else "")
                + " instead (the same permissions on one app).",
                field="integration",
            )
        if _is_federated(request, ids):
            if request.workspace is not None:
                raise InvalidRequest(
                    "a workspace role is not offered with credentialType federated yet: choose secret or certificate.",
                    field="workspace",
                )
            if request.add_ons:
                raise InvalidRequest(
                    "add-ons are not offered with credentialType federated: its connector app is shared by every "
                    "tenant, so it cannot hold one tenant's add-ons. Choose secret or certificate for add-ons.",
                    field="addOns",
                )
            return await self._onboard_federated(request, profile, progress)
        if isinstance(reachable, BaseException):
            raise reachable
        profile = _with_add_ons(self.catalog, profile, request.add_ons, ids)
        key = self.registry.registration_key(request.tenant_id, profile.id)
        async with self.locks.hold(key, self.settings.lock_wait_seconds):
            return await self._onboard(request, profile, progress)

    async def _onboard(self, request: OnboardRequest, profile: IntegrationProfile, progress: Progress) -> OnboardResult:
        tenant = request.tenant_id
        context = {"tenantId": tenant, "integration": profile.id}
        names = self.registry.secret_names(tenant, profile.id)

        # The vendor's certificate is read first: text that is not one public certificate is refused before
        # anything is read or written, and never echoed.
        supplied = self.reader.public_certificate(request.certificate) if request.certificate is not None else None
        certificate_name = self.registry.certificate_name(tenant, profile.id)
        # Reads only, and none needs another's answer: the tenant's resource APIs and policy, and
        # what Key Vault already holds for this registration (which decides what to mint and write).
        # The client certificate with its key when this call may have to prove it.
        wants_key = request.credential_type is CredentialType.CERTIFICATE and supplied is None
        workspace_access = self.workspace_access if profile.workspace_roles else None
        apis, policy, stored, stored_certificate, workspace_records = await together(
            resolve(self.directory, tenant, profile),
            self.directory.password_policy(tenant),
            read_stored(self.vault, names),
            self.vault.read_certificate(certificate_name, with_key=wants_key),
            workspace_access.stored(tenant, profile) if workspace_access else _no_records(),
        )
        kind, vendor = self._credential_type(request, profile, stored, supplied is not None)
        if vendor and supplied is None:
            # The same vendor certificate as before (a PUT that names no type keeps the registration's own).
            record = stored[SecretKind.VENDOR_CERTIFICATE]
            assert record is not None and record.value is not None
            supplied = self.reader.public_certificate(record.value.reveal())
        if kind is CredentialType.CERTIFICATE and not vendor and stored_certificate and stored_certificate.key is None:
            stored_certificate = await self.vault.read_certificate(certificate_name, with_key=True)
        progress(
            "resolve", f"{sum(len(p.roles) for p in profile.permissions)} permissions on {len(apis)} resource APIs"
        )
        # As Entra enforces it on an app created now; an existing app may predate a restriction.
        policy = await self._policy_for_this_app(tenant, profile, policy)
        requested_days = request.secret_lifetime_days or self.settings.secret_lifetime_days
        lifetime_days = float(requested_days)
        months = 0
        if kind is CredentialType.SECRET:
            if not policy.additions_allowed:
                raise SecretsForbiddenByPolicy(
                    "The tenant's app management policy does not allow client secrets; onboard with "
                    "credentialType 'certificate'.",
                    policyId=policy.policy_id,
                    **context,
                )
            # What the caller asked for is kept on the stored secret (`lifetime-days`), so rotation keeps to it.
            if policy.max_lifetime_days is not None and lifetime_days > policy.max_lifetime_days:
                progress(
                    "policy", f"secret lifetime clamped to {policy.max_lifetime_days:g} days by the tenant's policy"
                )
                lifetime_days = policy.max_lifetime_days
        elif supplied is not None:
            check_vendor_certificate(supplied, self.now(), policy, context)
        else:
            months = validity_months(self.settings, policy, context)

        # The workspace (named now, or the registration's own): read, and this service's right to assign roles on it
        # checked, before anything is created.
        workspace = role = None
        recorded_workspace = workspace_records.get(SecretKind.WORKSPACE_ID)
        resource_id = request.workspace.resource_id if request.workspace else None
        if resource_id is None and recorded_workspace is not None:
            resource_id = recorded_workspace.tags.get(Tag.WORKSPACE_RESOURCE_ID)
        if workspace_access is not None and resource_id:
            role = workspace_access.role(profile, request.workspace, recorded_workspace)
            workspace = await workspace_access.check(tenant, profile, resource_id, role)
            progress("workspace", f"{workspace.name}: this service may give the app {role.display_name}")

        spec = self._spec(request, profile, apis)
        done = _Done()
        certificate: StoredCertificate | None = None
        secret_stored: StoredSecret | None = None
        vendor_stored: StoredSecret | None = None
        try:
            app, done.app_created = await self._replicated(
                "app registration",
                lambda: self._converge_application(tenant, profile, spec, stored, stored_certificate, context, done),
            )
            if done.app_created:
                audit("application.created", context, appObjectId=app.object_id, clientId=app.app_id)
            progress(
                "application",
                f"{'created' if done.app_created else 'found'} {app.display_name} (client id {app.app_id})",
            )
            if kind is CredentialType.SECRET:
                app, sp_id, granted, secret_stored = await self._with_secret(
                    tenant, profile, app, apis, lifetime_days, requested_days, stored, context, done, progress
                )
                await self._supersede(stored, stored_certificate, context, done, keep=SecretKind.CLIENT_SECRET)
            elif supplied is not None:
                app, sp_id, granted, vendor_stored = await self._with_vendor_certificate(
                    tenant, profile, app, apis, supplied, request.certificate_proof, stored, context, done, progress
                )
                await self._supersede(stored, stored_certificate, context, done, keep=SecretKind.VENDOR_CERTIFICATE)
            else:
                app, sp_id, granted, certificate = await self._with_certificate(
                    tenant, profile, app, apis, months, stored, stored_certificate, context, done, progress
                )
                await self._supersede(stored, None, context, done, keep=None)
            # What signs in as the app from here on, when something does: its own credential, or a vendor's
            # certificate only through its signed assertion (this service holds no key of it).
            proof: ClientCredential | None = None
            if (workspace is not None and role is not None) or confirmable_add_ons(profile):
                if secret_stored is not None and secret_stored.value is None:  # as written: read its text back
                    secret_stored = await self.vault.read(secret_stored.name, with_value=True) or secret_stored
                proof = (
                    secret_stored.value if secret_stored is not None
                    else certificate.key if certificate is not None
                    else ClientAssertion(Secret(request.certificate_proof)) if request.certificate_proof
                    else None
                )  # fmt: skip
            steps_done = await self._steps_done(tenant, profile, app, proof, stored[SecretKind.CLIENT_ID], context)
            if workspace_access is not None and workspace is not None and role is not None:
                done.workspace = await workspace_access.converge(
                    tenant, profile, workspace, role, app, sp_id, proof, workspace_records, context
                )
                progress("workspace", f"{role.display_name} on {workspace.name}" + (
                    ", proven by a query as the app" if done.workspace.proven else ", not proven (no key here)"
                ))  # fmt: skip
        except StillReplicating as pending:
            progress("pending", pending.reason)
            return OnboardResult(
                Outcome.PENDING,
                await self.status.describe(tenant, profile.id),
                pending_reason=pending.reason,
                retry_after=pending.retry_after,
                changes=done.changes(),
            )
        changes = done.changes()
        outcome = Outcome.CREATED if done.app_created else (Outcome.UPDATED if changes else Outcome.COMPLETE)
        # All of it was just read, written or proven by this call (the ids are stored now): reading it back
        # from Entra and Key Vault would cost three more dependent round trips and tell nothing new.
        registration = self.status.state(
            tenant,
            profile,
            app,
            sp_id,
            [apis[p.resource_app_id] for p in profile.permissions],
            granted,
            secret_stored or stored[SecretKind.CLIENT_SECRET],
            dict.fromkeys((SecretKind.CLIENT_ID, SecretKind.TENANT_ID), True),
            certificate=certificate or stored_certificate,
            vendor=vendor_stored or stored[SecretKind.VENDOR_CERTIFICATE],
            current=_type_tag(
                SecretKind.CLIENT_SECRET
                if kind is CredentialType.SECRET
                else SecretKind.VENDOR_CERTIFICATE
                if supplied is not None
                else None
            ),
            steps_done=steps_done,
        )
        if done.workspace is not None:
            registration = await self.status.with_workspace(tenant, profile, registration, done.workspace)
        return OnboardResult(outcome, registration, changes=changes)

    async def _steps_done(
        self,
        tenant: str,
        profile: IntegrationProfile,
        app: AppRegistration,
        proof: ClientCredential | None,
        ids: StoredSecret | None,
        context: dict[str, str],
    ) -> frozenset[str]:
        """The add-ons' remaining steps the app's token shows done now, recorded on the Client ID when that changed
        (its latest version: `_write_ids` may have just written one)."""
        recorded = recorded_steps_done(ids)
        steps_done = await check_steps(
            self.credentials.checker, self.settings.graph_scope, tenant, profile, app.app_id, proof, recorded, context
        )
        if steps_done != recorded:
            name = self.registry.secret_name(tenant, profile.id, SecretKind.CLIENT_ID)
            try:
                latest = await self.vault.read(name)
                if latest is not None:
                    tags = {k: v for k, v in latest.tags.items() if k != Tag.STEPS_DONE} | steps_tag(steps_done)
                    await self.vault.update_tags(name, latest.version, tags)
            except OnboardingError as error:  # informs only: the next PUT checks again
                logger.warning("could not record the steps done for %s/%s: %s", tenant, profile.id, error)
        return steps_done

    async def _ids_record(self, request: OnboardRequest, profile: IntegrationProfile) -> StoredSecret | None:
        """The Client ID record, when the request leaves something to it: the type (none named, no certificate
        sent) or the add-ons (none named). None when the request names both, or nothing is recorded."""
        names_type = request.credential_type is not None or request.certificate is not None
        if names_type and (request.add_ons is not None or not profile.add_ons) and profile.superseded_by is None:
            return None
        return await self.vault.read(self.registry.secret_name(request.tenant_id, profile.id, SecretKind.CLIENT_ID))

    async def _onboard_federated(
        self, request: OnboardRequest, profile: IntegrationProfile, progress: Progress
    ) -> OnboardResult:
        """The secretless type (shared/usecases/connector.py): the connector kept in shape, the tenant's consent
        proven with a real token, Client ID and Tenant ID stored; 202 with the consent URL until consented."""
        if CredentialType.FEDERATED not in profile.credential_types or self.connectors is None:
            allowed = ", ".join(str(t) for t in profile.credential_types)
            raise InvalidRequest(
                f"credentialType federated is not offered for {profile.id} (offered: {allowed}).",
                field="credentialType",
            )
        if request.certificate is not None or request.certificate_proof is not None:
            raise InvalidRequest("certificate is only for credentialType certificate.", field="certificate")
        if request.secret_lifetime_days is not None:
            raise InvalidRequest(
                "a federated registration has no secret to give a lifetime.", field="secretLifetimeDays"
            )
        # No tenant rule beyond the consent itself: this service creates nothing in the tenant and grants
        # nothing there; the tenant's own admin decides, at the consent URL, what the connector may do. But the
        # home tenant stays opt-in as it is for the other types (ALLOW_HOME_TENANT): the vendor's own directory.
        if request.tenant_id == self.settings.home_tenant_id and self.settings.home_tenant_refused:
            raise TenantNotAllowed.home_tenant(request.tenant_id)
        self.connectors.require_configured()
        context = {"tenantId": request.tenant_id, "integration": profile.id}
        key = self.registry.registration_key(request.tenant_id, profile.id)
        async with self.locks.hold(key, self.settings.lock_wait_seconds):
            found = await self.connectors.onboard(request.tenant_id, profile, context)
        if found.consent_url is not None:
            progress("consent", found.pending_reason or "")
            return OnboardResult(
                Outcome.PENDING, found.registration, pending_reason=found.pending_reason,
                retry_after=PENDING_CONSENT_RETRY_AFTER_SECONDS, consent_url=found.consent_url,
            )  # fmt: skip
        progress("verify", "a token through the federated exchange holds every granted permission")
        outcome = Outcome.CREATED if found.first else Outcome.UPDATED if found.ids_written else Outcome.COMPLETE
        changes = ["client and tenant ids stored"] if found.ids_written else []
        return OnboardResult(outcome, found.registration, changes=changes)

    def _credential_type(
        self,
        request: OnboardRequest,
        profile: IntegrationProfile,
        stored: dict[SecretKind, StoredSecret | None],
        supplied: bool,
    ) -> tuple[CredentialType, bool]:
        """(the credential type, whether the vendor supplies the certificate). The caller's choice within what the
        catalog allows; a PUT that names none keeps the registration's own type (its Client ID's
        `credential-type` tag), and a new registration gets the catalog's default."""
        current = _current_type(stored)
        if request.credential_type is not None:
            kind = request.credential_type
        elif supplied:
            kind = CredentialType.CERTIFICATE
        elif current is not None:
            kind = CredentialType.SECRET if current == CredentialType.SECRET.value else CredentialType.CERTIFICATE
        else:
            kind = profile.default_credential_type
        if kind not in profile.credential_types and profile.chosen:
            # The connection offers it, an add-on does not take it (Exchange Online's app-only access takes a
            # certificate): the caller says which type, never this service behind its back.
            allowed = ", ".join(str(t) for t in profile.credential_types) or "no type in common"
            raise InvalidRequest(
                f"add-ons {', '.join(profile.chosen)} work with credentialType {allowed}, not {kind!s}; "
                "name the credentialType with them.",
                field="addOns" if request.credential_type is None else "credentialType",
            )
        if kind not in profile.credential_types:
            allowed = ", ".join(str(t) for t in profile.credential_types)
            raise InvalidRequest(
                f"credentialType {kind!s} is not offered for {profile.id} (offered: {allowed}).",
                field="credentialType",
            )
        if supplied and kind is not CredentialType.CERTIFICATE:
            raise InvalidRequest("certificate is only for credentialType certificate.", field="certificate")
        if request.certificate_proof is not None and not supplied:
            raise InvalidRequest("certificateProof proves a certificate sent with it.", field="certificateProof")
        keeps_vendor = request.credential_type is None and current == SecretKind.VENDOR_CERTIFICATE.value
        vendor = supplied or (keeps_vendor and stored[SecretKind.VENDOR_CERTIFICATE] is not None)
        return kind, vendor

    async def _with_secret(
        self,
        tenant: str,
        profile: IntegrationProfile,
        app: AppRegistration,
        apis: dict[str, ResourceApi],
        lifetime_days: float,
        requested_days: int,
        stored: dict[SecretKind, StoredSecret | None],
        context: dict[str, str],
        done: _Done,
        progress: Progress,
    ) -> tuple[AppRegistration, str, set[tuple[str, str]], StoredSecret]:
        """The secret flow: principal and grants beside mint-and-store, then proof, ids, orphans."""
        # Both branches wait for the new app to replicate, then neither needs the other until the proof:
        # the service principal and its grants on one side, the client secret minted and stored on the other.
        (sp_id, granted), (secret_stored, secret, new_password) = await together(
            self._principal_and_grants(tenant, app, profile, apis, context, done, progress),
            self._ensure_secret(
                tenant, profile, app, lifetime_days, requested_days, context, stored[SecretKind.CLIENT_SECRET], done
            ),
        )
        progress("client secret", f"{'created' if done.minted else 'kept'} keyId {secret_stored.tags.get(Tag.KEY_ID)}")
        if new_password is not None:
            app = replace(app, passwords=(*app.passwords, new_password))

        if secret_stored.tags.get(Tag.VERIFIED) != Tag.TRUE:
            await self.credentials.prove(tenant, app.app_id, secret, profile)
            tags = dict(secret_stored.tags) | {Tag.VERIFIED: Tag.TRUE}
            # Client ID and Tenant ID only once the secret is proven, beside marking it so.
            _, done.ids_written = await together(
                self.vault.update_tags(secret_stored.name, secret_stored.version, tags),
                self._write_ids(tenant, profile, app, context, stored, CredentialType.SECRET.value),
            )
            secret_stored = replace(secret_stored, tags=tags)
            progress("verify", "a token request with the new secret holds every granted permission")
        else:
            done.ids_written = await self._write_ids(tenant, profile, app, context, stored, CredentialType.SECRET.value)
        removed = await self._remove_orphans(
            tenant, profile, app, keep=_kept_credentials(secret_stored), context=context
        )
        done.orphans_removed += len(removed)
        app = replace(app, passwords=tuple(p for p in app.passwords if p.key_id not in removed))
        return app, sp_id, granted, secret_stored

    async def _with_certificate(
        self,
        tenant: str,
        profile: IntegrationProfile,
        app: AppRegistration,
        apis: dict[str, ResourceApi],
        months: int,
        stored: dict[SecretKind, StoredSecret | None],
        stored_certificate: StoredCertificate | None,
        context: dict[str, str],
        done: _Done,
        progress: Progress,
    ) -> tuple[AppRegistration, str, set[tuple[str, str]], StoredCertificate]:
        """The certificate flow: principal and grants beside create-and-install, then proof and ids; a client
        secret the certificate replaces is marked for retirement after the grace period (no gap for consumers
        still reading it), never removed at once."""
        (sp_id, granted), (certificate, key) = await together(
            self._principal_and_grants(tenant, app, profile, apis, context, done, progress),
            self._ensure_certificate(tenant, profile, app, months, stored_certificate, context, done),
        )
        progress(
            "client certificate",
            f"{'created' if done.certificate_created else 'kept'} thumbprint {certificate.certificate.thumbprint_sha256}",
        )
        if all(k.key_id != key.key_id for k in app.keys):
            app = replace(app, keys=(*app.keys, key))
        if certificate.tags.get(Tag.VERIFIED) != Tag.TRUE:
            assert certificate.key is not None  # read with its key by _ensure_certificate
            await self.credentials.prove(tenant, app.app_id, certificate.key, profile)
            tags = dict(certificate.tags) | {Tag.VERIFIED: Tag.TRUE}
            _, done.ids_written = await together(
                self.vault.update_certificate_tags(certificate.name, certificate.version, tags),
                self._write_ids(tenant, profile, app, context, stored, CredentialType.CERTIFICATE.value),
            )
            certificate = replace(certificate, tags=tags)
            progress("verify", "a token request signed with the new certificate holds every granted permission")
        else:
            done.ids_written = await self._write_ids(
                tenant, profile, app, context, stored, CredentialType.CERTIFICATE.value
            )
        return app, sp_id, granted, certificate

    async def _with_vendor_certificate(
        self,
        tenant: str,
        profile: IntegrationProfile,
        app: AppRegistration,
        apis: dict[str, ResourceApi],
        supplied: PublicCertificate,
        proof: str | None,
        stored: dict[SecretKind, StoredSecret | None],
        context: dict[str, str],
        done: _Done,
        progress: Progress,
    ) -> tuple[AppRegistration, str, set[tuple[str, str]], StoredSecret]:
        """A certificate the vendor issued and holds the key of: recorded in Key Vault (its public PEM, the
        record rotation and status read), put on the app, and proven only if the vendor sent a client
        assertion signed with its key (`certificateProof`); otherwise reported installed but unproven. This
        service never rotates it: status, the sweep and the audit log report its expiry ahead of time."""
        record = stored[SecretKind.VENDOR_CERTIFICATE]
        key_id = self.registry.key_credential_id(supplied.thumbprint_sha256)
        if record is None or record.tags.get(Tag.KEY_ID) != key_id or record.tags.get(Tag.SUPERSEDED_BY):
            # Recorded before it goes on the app: a crash in between leaves a record whose key the next PUT
            # adds, never a key on the app that nothing records.
            tags = self._tags(tenant, profile, app, SecretKind.VENDOR_CERTIFICATE) | {
                Tag.KEY_ID: key_id,
                Tag.THUMBPRINT: supplied.thumbprint_sha256,
                Tag.VERIFIED: Tag.FALSE,
                Tag.ISSUED_AT: iso(self.now()),
            }
            if record is not None and record.tags.get(Tag.KEY_ID) and not record.tags.get(Tag.SUPERSEDED_BY):
                # The vendor replaced its certificate: the previous one stays on the app for the grace period.
                retire_after = self.now() + timedelta(hours=self.settings.rotation_grace_hours)
                tags |= {Tag.PREVIOUS_KEY_ID: str(record.tags[Tag.KEY_ID]), Tag.RETIRE_AFTER: iso(retire_after)}
            name = self.registry.secret_name(tenant, profile.id, SecretKind.VENDOR_CERTIFICATE)
            record = await self.vault.write(
                name, pem(supplied), CONTENT_TYPES[SecretKind.VENDOR_CERTIFICATE], tags, supplied.not_after
            )
            audit("certificate.recorded", context, secretName=name, thumbprint=supplied.thumbprint_sha256,
                  end=iso(supplied.not_after), source="vendor")  # fmt: skip
            done.vendor_stored = True
        stored_record = record
        (sp_id, granted), (key, added) = await together(
            self._principal_and_grants(tenant, app, profile, apis, context, done, progress),
            self.certificates.install_public(tenant, app, supplied, context),
        )
        done.certificate_added = added
        if all(k.key_id != key.key_id for k in app.keys):
            app = replace(app, keys=(*app.keys, key))
        verified = stored_record.tags.get(Tag.VERIFIED) == Tag.TRUE
        if proof is not None and not verified:
            await self.credentials.prove(tenant, app.app_id, ClientAssertion(Secret(proof)), profile)
            tags = dict(stored_record.tags) | {Tag.VERIFIED: Tag.TRUE}
            await self.vault.update_tags(stored_record.name, stored_record.version, tags)
            stored_record = replace(stored_record, tags=tags)
            done.vendor_proven = True
            progress("verify", "the vendor's signed assertion got a token holding every granted permission")
        else:
            progress("verify", "installed; proven only by a signed assertion from the vendor (certificateProof)")
        done.ids_written = await self._write_ids(
            tenant, profile, app, context, stored, SecretKind.VENDOR_CERTIFICATE.value
        )
        return app, sp_id, granted, stored_record

    async def _ensure_certificate(
        self,
        tenant: str,
        profile: IntegrationProfile,
        app: AppRegistration,
        months: int,
        current: StoredCertificate | None,
        context: dict[str, str],
        done: _Done,
    ) -> tuple[StoredCertificate, KeyInfo]:
        """The stored certificate (as read, with its key, at the start), on the app; a new one (created by Key
        Vault) when none is stored or it is about to expire. Returns it and its key credential on the app."""
        name = self.registry.certificate_name(tenant, profile.id)
        if current is None or not self.certificates.usable(app, current):
            tags = self.certificates.tags(tenant, profile.id, app, Tag.CERTIFICATE_KIND)
            current = await self.certificates.create(name, tenant, profile.id, months, tags, context)
            done.certificate_created = True
        elif current.tags.get(Tag.SUPERSEDED_BY):
            # Switched back within its grace period: the certificate is current again, not to be retired.
            tags = {k: v for k, v in current.tags.items() if k not in SUPERSEDED_MARKS}
            await self.vault.update_certificate_tags(current.name, current.version, tags)
            current = replace(current, tags=tags)
        key, added = await self.certificates.install(tenant, app, current, context)
        done.certificate_added = added
        return current, key

    async def _supersede(
        self,
        stored: dict[SecretKind, StoredSecret | None],
        certificate: StoredCertificate | None,
        context: dict[str, str],
        done: _Done,
        keep: SecretKind | None,
    ) -> None:
        """Start the grace period of the credentials the one just proven replaces (a switch of type): consumers
        still reading them keep working until `retire-after`, then rotation takes them off the app and out of
        Key Vault (shared/usecases/rotation.py). `keep`: the record now current (None: the client certificate)."""
        now_type = _type_tag(keep)
        retire_after = iso(self.now() + timedelta(hours=self.settings.rotation_grace_hours))
        marks = {Tag.SUPERSEDED_BY: now_type, Tag.RETIRE_AFTER: retire_after}
        for kind in (SecretKind.CLIENT_SECRET, SecretKind.VENDOR_CERTIFICATE):
            record = stored[kind]
            if kind is keep or record is None or record.tags.get(Tag.SUPERSEDED_BY):
                continue
            await self.vault.update_tags(record.name, record.version, dict(record.tags) | marks)
            audit("credential.superseded", context, secretName=record.name, retireAfter=retire_after)
            done.superseded += 1
        if keep is not None and certificate is not None and not certificate.tags.get(Tag.SUPERSEDED_BY):
            await self.vault.update_certificate_tags(
                certificate.name, certificate.version, dict(certificate.tags) | marks
            )
            audit("credential.superseded", context, certificateName=certificate.name, retireAfter=retire_after)
            done.superseded += 1

    # --- steps ---
    def _spec(
        self, request: OnboardRequest, profile: IntegrationProfile, apis: dict[str, ResourceApi]
    ) -> ApplicationSpec:
        notes = APP_NOTES
        if request.notes:
            notes = f"{notes} {request.notes}"
        return ApplicationSpec(
            display_name=request.display_name or profile.display_name,
            tags=self.registry.app_tags(profile.id),
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
        existing = await self.directory.find_application(tenant, self.registry.unique_name(profile.id))
        return policy.for_app_created(existing.created) if existing is not None else for_new_app

    async def _converge_application(
        self,
        tenant: str,
        profile: IntegrationProfile,
        spec: ApplicationSpec,
        stored: dict[SecretKind, StoredSecret | None],
        stored_certificate: StoredCertificate | None,
        context: dict[str, str],
        done: _Done,
    ) -> tuple[AppRegistration, bool]:
        """The registration's app: created by this call, or an existing one proven this service's alone.

        An existing app is read and examined before anything is written to it, granted to it or
        minted on it (shared/usecases/ownership.py); one that fails is refused with `registration-not-owned`
        and an audit event. A proven one is written only when it differs from the spec.
        """
        existing = await self.directory.find_application(tenant, self.registry.unique_name(profile.id))
        converged = False
        if existing is None:
            app, created = await self._upsert_application(tenant, profile, spec, context, done)
            if created:
                return app, True
            # 204: it existed after all (created by an earlier call and still replicating to reads, or
            # by someone else in between): the upsert converged it; now it must prove itself like any other.
            existing, converged = app, True
        ownership = await require_ours(
            self.directory, tenant, existing, stored, self.registry.credential_prefix, context, stored_certificate
        )
        for key_id in ownership.lost_passwords:
            if await self.directory.remove_password(tenant, existing.object_id, key_id):
                done.orphans_removed += 1
                audit("secret.removed", context, appObjectId=existing.object_id, keyId=key_id, reason="unrecorded")
        for key_id in ownership.lost_keys:
            if await self.directory.remove_key(tenant, existing.object_id, key_id):
                done.orphans_removed += 1
                audit("certificate.removed", context, appObjectId=existing.object_id, keyId=key_id, reason="unrecorded")
        if ownership.lost_passwords or ownership.lost_keys:
            lost = {*ownership.lost_passwords, *ownership.lost_keys}
            existing = replace(
                existing,
                passwords=tuple(p for p in existing.passwords if p.key_id not in lost),
                keys=tuple(k for k in existing.keys if k.key_id not in lost),
            )
        if not converged and not spec.matches(existing):
            await self.directory.update_application(tenant, existing.object_id, spec)
            # Its permissions (an add-on named or dropped, a catalog change), name or notes now follow the spec.
            audit("application.updated", context, appObjectId=existing.object_id, clientId=existing.app_id)
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
        unique = self.registry.unique_name(profile.id)
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
            on_app = next((p for p in app.passwords if p.key_id == stored.tags.get(Tag.KEY_ID)), None)
            if on_app is not None and on_app.end > self.now():
                if stored.tags.get(Tag.SUPERSEDED_BY):
                    # Switched back within its grace period: the secret is current again, not to be retired.
                    tags = {k: v for k, v in stored.tags.items() if k not in SUPERSEDED_MARKS}
                    await self.vault.update_tags(stored.name, stored.version, tags)
                    return replace(stored, tags=tags), stored.value, None
                return stored, stored.value, None
        staged = stored.tags.get(Tag.STAGED) if stored is not None else None
        if staged:
            # A rotation staged a secret this PUT now supersedes: the new version will carry no journal, so
            # nothing would ever finish or remove it. Off the app and out of staging, before minting.
            if await self.directory.remove_password(tenant, app.object_id, staged):
                audit("secret.removed", context, appObjectId=app.object_id, keyId=staged, reason="superseded")
            staging = self.registry.staging_secret_name(tenant, profile.id)
            if await self.vault.delete(staging):
                audit("secret.deleted", context, secretName=staging, reason="superseded")
        end = self.now() + timedelta(days=lifetime_days)
        new = await self.credentials.mint(tenant, app, end, context)
        tags = self._tags(tenant, profile, app, SecretKind.CLIENT_SECRET) | {
            Tag.KEY_ID: new.info.key_id,
            Tag.VERIFIED: Tag.FALSE,
            Tag.ISSUED_AT: iso(self.now()),
            Tag.LIFETIME_DAYS: str(requested_days),
        }
        name = self.registry.secret_name(tenant, profile.id, SecretKind.CLIENT_SECRET)
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
        credential_type: str,
    ) -> int:
        """Client ID and Tenant ID, each written unless Key Vault (as read at the start) already holds it. Both
        carry the registration's credential type, which tells status and rotation what to look for."""

        async def ensure(kind: SecretKind, value: str) -> int:
            name = self.registry.secret_name(tenant, profile.id, kind)
            tags = self._tags(tenant, profile, app, kind) | {Tag.CREDENTIAL_TYPE: credential_type}
            if profile.chosen:
                tags[Tag.ADD_ONS] = ",".join(profile.chosen)
            current = stored[kind]
            if kind is SecretKind.CLIENT_ID:  # kept as recorded: _steps_done brings it up to date
                tags |= steps_tag(recorded_steps_done(current))
            if current is not None and current.value == Secret(value) and dict(current.tags) == tags:
                return 0
            # No expiry: a stale `exp` on an id would break the references after a rotation.
            written = await self.vault.write(name, value, CONTENT_TYPES[kind], tags, None)
            audit("secret.stored", context, secretName=name, version=written.version)
            if kind is SecretKind.CLIENT_ID and (current is None or _type_changed(current, credential_type)):
                # Consumers can use the registration from here: its ids name a proven credential of this type.
                audit("registration.ready", context, credentialType=credential_type, clientId=app.app_id)
            return 1

        written = await asyncio.gather(ensure(SecretKind.CLIENT_ID, app.app_id), ensure(SecretKind.TENANT_ID, tenant))
        return sum(written)

    async def _remove_orphans(
        self, tenant: str, profile: IntegrationProfile, app: AppRegistration, keep: set[str], context: dict[str, str]
    ) -> set[str]:
        """Secrets this service minted (by display-name prefix) whose keyId no stored version ever held.

        Only those older than the grace period: a younger one may belong to a request still in flight.
        Credentials that were stored once are rotation's to retire, never removed here.
        """
        cutoff = self.now() - timedelta(minutes=self.settings.orphan_grace_minutes)
        ours = [
            p
            for p in app.passwords
            if self.registry.issued_here(p.display_name) and p.key_id not in keep and p.start <= cutoff
        ]
        if not ours:
            return set()  # nothing that could be an orphan: no need to list the stored versions
        name = self.registry.secret_name(tenant, profile.id, SecretKind.CLIENT_SECRET)
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
        return self.registry.tags(tenant, profile.id, kind, app.object_id, app.app_id)


# The tags `_supersede` sets, which a credential that becomes current again sheds.
SUPERSEDED_MARKS = (Tag.SUPERSEDED_BY, Tag.RETIRE_AFTER)


async def _no_records() -> dict[SecretKind, StoredSecret | None]:
    return {}


def _is_federated(request: OnboardRequest, ids: StoredSecret | None) -> bool:
    """The type the request names, else the one the Client ID records (a vendor certificate sent: not federated)."""
    if request.credential_type is not None:
        return request.credential_type is CredentialType.FEDERATED
    if request.certificate is not None:
        return False
    return ids is not None and ids.tags.get(Tag.CREDENTIAL_TYPE) == CredentialType.FEDERATED.value


def _with_add_ons(
    catalog: Catalog, profile: IntegrationProfile, requested: tuple[str, ...] | None, ids: StoredSecret | None
) -> IntegrationProfile:
    """The profile of this registration: the add-ons the request names, else the ones it has. A named add-on the
    connection does not offer is a 400 (one it offers in other clouds only says so); a recorded one that left the
    catalog is dropped (and its grants revoked)."""
    if requested is None:
        return profile.with_add_ons(recorded_add_ons(ids))
    catalog.refuse_elsewhere(profile, requested)
    unknown = [a for a in requested if profile.add_on(a) is None]
    if unknown:
        offered = ", ".join(a.id for a in profile.add_ons) or "none"
        raise InvalidRequest(
            f"addOns: {', '.join(unknown)} not offered for {profile.id} (offered: {offered}).", field="addOns"
        )
    return profile.with_add_ons(requested)


def _type_changed(ids: StoredSecret, credential_type: str) -> bool:
    return ids.tags.get(Tag.CREDENTIAL_TYPE) != credential_type


def _current_type(stored: dict[SecretKind, StoredSecret | None]) -> str | None:
    """The registration's credential type as its Client ID records it (None: not onboarded yet)."""
    ids = stored.get(SecretKind.CLIENT_ID)
    return ids.tags.get(Tag.CREDENTIAL_TYPE) if ids is not None else None


def _type_tag(record: SecretKind | None) -> str:
    """The `credential-type` tag value of the credential kept in `record` (None: the client certificate)."""
    if record is SecretKind.CLIENT_SECRET:
        return CredentialType.SECRET.value
    if record is SecretKind.VENDOR_CERTIFICATE:
        return SecretKind.VENDOR_CERTIFICATE.value
    return CredentialType.CERTIFICATE.value


def _kept_credentials(stored: StoredSecret) -> set[str]:
    """The credentials orphan removal must spare: the stored one, and one a rotation has staged (shared/usecases/rotation.py)."""
    return {key for key in (stored.tags.get(Tag.KEY_ID), stored.tags.get(Tag.STAGED)) if key}


@dataclass
class _Done:
    """What one call changed, reported in the order of the steps whatever order they finished in."""

    deleted_purged: int = 0
    app_created: bool = False
    app_updated: bool = False
    sp_created: bool = False
    consent: Tally = field(default_factory=Tally)
    minted: bool = False
    certificate_created: bool = False
    certificate_added: bool = False
    superseded: int = 0
    vendor_stored: bool = False
    vendor_proven: bool = False
    ids_written: int = 0
    orphans_removed: int = 0
    workspace: WorkspaceState | None = None  # the Sentinel workspace, once its role is assigned (and proven)

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
                ("client certificate created", self.certificate_created),
                ("client certificate added to the application", self.certificate_added),
                (
                    f"{self.superseded} previous credential(s) superseded (removed after the grace period)",
                    self.superseded,
                ),
                ("vendor certificate stored", self.vendor_stored),
                ("vendor certificate proven", self.vendor_proven),
                ("client and tenant ids stored", self.ids_written),
                ("Sentinel role on the workspace assigned", self.workspace is not None and self.workspace.changed),
                (f"{self.orphans_removed} orphaned secrets removed", self.orphans_removed),
            )
            if happened
        ]


class _NoCertificateReader:
    """Onboarding built without a reader (tests of other flows) refuses vendor certificates outright."""

    def public_certificate(self, text: str) -> PublicCertificate:
        raise InvalidRequest("certificate: this deployment reads no vendor certificates.", field="certificate")
