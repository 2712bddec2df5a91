"""The secretless credential type: one multi-tenant "connector" app per integration, trusted federatedly, consented per tenant.

A federated identity credential lets a workload trade a token from its own identity for an app's
token, with nothing stored. Entra refuses it across tenants for a single-tenant app (AADSTS700236:
https://learn.microsoft.com/entra/workload-id/workload-identity-federation-config-app-trust-managed-identity),
so the app lives in the vendor's tenant, multi-tenant, and each customer's admin consents to it once:

- this service keeps one connector app per integration in the home tenant in shape: its unique name,
  `AzureADMultipleOrgs`, exactly the profile's application permissions (by the ids the catalog pins),
  no password or certificate, and exactly two federated credentials: the vendor backend's workload
  identity (CONNECTOR_TRUST_SUBJECT / _ISSUER, from settings, never from a caller) and this service's
  own managed identity, which is what lets onboarding prove the consent with a real token;
- onboarding a tenant answers 202 with the admin-consent URL until the admin has consented, then
  proves it (a token for that tenant through the exchange, whose `roles` hold every permission) and
  stores Client ID and Tenant ID: there is no secret to store, rotate or leak;
- status reports missing or revoked consent as drift; offboarding removes the stored ids and says what
  the customer's admin must remove (the enterprise application is theirs, not this service's).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from shared.domain.audit import audit
from shared.domain.catalog import Catalog
from shared.domain.errors import InvalidRequest, NotOwned
from shared.domain.model import (
    AppRegistration,
    CredentialType,
    FederatedTrust,
    IntegrationProfile,
    SecretKind,
    StoredSecret,
)
from shared.domain.ports import ApplicationSpec, ConnectorTokens, Directory, Locks, Vault
from shared.domain.registry import Tag
from shared.domain.retry import Clock
from shared.settings import Settings
from shared.usecases.credentials import CONTENT_TYPES
from shared.usecases.replication import StillReplicating, within_replication
from shared.usecases.status import (
    AppSummary,
    CredentialState,
    PermissionState,
    References,
    RegistrationState,
)

MULTI_TENANT = "AzureADMultipleOrgs"
CONNECTOR_NOTES = (
    "Managed by tenant onboarding automation: one connector per integration, consented by each customer's admin. "
    "Its federated credentials trust the vendor's backend and this service; it holds no secret or certificate."
)
VENDOR_TRUST = "vendor-backend"
PROOF_TRUST = "onboarding-proof"


@dataclass(frozen=True)
class FederatedOutcome:
    """What a federated onboarding found: the state, whether it wrote the ids, and the consent URL while pending."""

    registration: RegistrationState
    ids_written: bool
    consent_url: str | None
    pending_reason: str | None = None
    first: bool = False  # no Client ID was stored before: this call completed the registration


class Connectors:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        directory: Directory,
        vault: Vault,
        tokens: ConnectorTokens,
        clock: Clock,
        now: Callable[[], datetime],
        locks: Locks | None = None,
    ) -> None:
        self.locks = locks
        self.settings = settings
        self.registry = settings.registry
        self.catalog = catalog
        self.directory = directory
        self.vault = vault
        self.tokens = tokens
        self.clock = clock
        self.now = now

    def require_configured(self) -> str:
        """The vendor backend's identity the connectors trust; InvalidRequest when this deployment trusts none."""
        subject = self.settings.connector_trust_subject
        if subject is None:
            raise InvalidRequest(
                "credentialType federated needs the vendor backend's workload identity (CONNECTOR_TRUST_SUBJECT), "
                "which this deployment does not configure.",
                field="credentialType",
            )
        return subject

    def consent_url(self, tenant: str, client_id: str) -> str:
        return f"{self.settings.public_authority.rstrip('/')}/{tenant}/adminconsent?client_id={client_id}"

    # --- the connector app, in the home tenant ---
    def spec(self, profile: IntegrationProfile) -> ApplicationSpec:
        """The connector's shape: the profile's roles by the ids the catalog pins (the resource APIs need not have
        a service principal in the vendor's tenant; each customer's consent resolves them in theirs)."""
        return ApplicationSpec(
            display_name=f"{profile.display_name} (connector)"[:120],
            tags=(*self.registry.app_tags(profile.id), "connector"),
            notes=CONNECTOR_NOTES,
            required_roles=tuple(
                (p.resource_app_id, tuple(p.role_ids[role] for role in p.roles)) for p in profile.permissions
            ),
            sign_in_audience=MULTI_TENANT,
        )

    async def connector(self, profile: IntegrationProfile, context: dict[str, str]) -> AppRegistration:
        """The integration's connector app, created or converged, trusting exactly the vendor backend and this
        service: a federated credential anyone else added would let its issuer act as the connector in every
        customer tenant, so it is removed (on an app this service alone owns; anything else is refused).

        One writer at a time per connector (every tenant's onboarding of the integration converges the same
        app): two first onboardings at once would both add its federated credentials, whose names Graph keeps
        unique per app, and one would fail."""
        if self.locks is None:
            return await self._connector(profile, context)
        async with self.locks.hold(self.registry.connector_lock_key(profile.id), self.settings.lock_wait_seconds):
            return await self._connector(profile, context)

    async def _connector(self, profile: IntegrationProfile, context: dict[str, str]) -> AppRegistration:
        home = self.settings.home_tenant_id
        vendor_subject = self.require_configured()
        unique = self.registry.connector_unique_name(profile.id)
        spec = self.spec(profile)
        deadline = self.settings.replication_timeout_seconds
        found = await self.directory.find_application(home, unique)
        me = await self.directory.caller_object_id(home)
        if found is None:
            app, created = await within_replication(
                "connector app", lambda: self.directory.upsert_application(home, unique, spec),
                deadline_seconds=deadline, clock=self.clock,
            )  # fmt: skip
            if created:
                audit("connector.created", context, appObjectId=app.object_id, clientId=app.app_id)
        else:
            app = found
            owners = await self.directory.application_owners(home, app.object_id)
            problems = [
                *([f"{len(owners - {me})} owner(s) other than this service"] if owners - {me} else []),
                *(["this service is not an owner"] if me not in owners else []),
                *([f"{len(app.passwords) + len(app.keys)} credential(s)"] if app.passwords or app.keys else []),
            ]
            if problems:
                audit("application.refused", context, appObjectId=app.object_id, reasons="; ".join(problems))
                raise NotOwned(
                    f"The connector app {unique} is not provably this service's alone: {'; '.join(problems)}.",
                    appObjectId=app.object_id, reasons=problems, **context,
                )  # fmt: skip
            if not spec.matches(app):
                await self.directory.update_application(home, app.object_id, spec)
                audit("connector.updated", context, appObjectId=app.object_id)
        own_issuer, own_subject = await self.tokens.own_identity()
        audience = (self.settings.cloud.federation_audience,)  # api://AzureADTokenExchange{,USGov,China}
        vendor_issuer = self.settings.connector_trust_issuer or own_issuer  # the vendor's tenant is this one
        wanted = [FederatedTrust(VENDOR_TRUST, vendor_issuer, vendor_subject, audience)]
        if (vendor_issuer, vendor_subject) != (own_issuer, own_subject):
            wanted.append(FederatedTrust(PROOF_TRUST, own_issuer, own_subject, audience))
        object_id = app.object_id
        current = await within_replication(
            "connector app", lambda: self.directory.federated_trusts(home, object_id),
            deadline_seconds=deadline, clock=self.clock,
        )  # fmt: skip
        for trust in current:
            if not any(trust.same_trust(w) and trust.name == w.name for w in wanted) and trust.id:
                await self.directory.remove_federated_trust(home, object_id, trust.id)
                audit("connector.trust.removed", context, appObjectId=object_id, issuer=trust.issuer,
                      subject=trust.subject)  # fmt: skip
        for trust in wanted:
            if not any(c.same_trust(trust) and c.name == trust.name for c in current):
                await self._add_trust(home, object_id, trust, deadline)
                audit("connector.trust.added", context, appObjectId=object_id, issuer=trust.issuer,
                      subject=trust.subject)  # fmt: skip
        return app

    async def _add_trust(self, home: str, object_id: str, trust: FederatedTrust, deadline: float) -> None:
        await within_replication(
            "connector app", lambda: self.directory.add_federated_trust(home, object_id, trust),
            deadline_seconds=deadline, clock=self.clock,
        )  # fmt: skip

    # --- one tenant's registration ---
    async def onboard(self, tenant: str, profile: IntegrationProfile, context: dict[str, str]) -> FederatedOutcome:
        """Keep the connector in shape, then prove the tenant's consent with a real token per resource API;
        Client ID and Tenant ID are stored only once every permission is in the token."""
        names = self.registry.secret_names(tenant, profile.id)
        stored = await asyncio.gather(*(self.vault.read(name) for name in names.values()))
        records = dict(zip(names, stored, strict=True))
        if any(records[k] is not None for k in (SecretKind.CLIENT_SECRET, SecretKind.VENDOR_CERTIFICATE)) or (
            await self.vault.read_certificate(self.registry.certificate_name(tenant, profile.id))
        ):
            raise InvalidRequest(
                "This registration has its own app registration and credential; offboard it before onboarding it "
                "with credentialType federated (its app and credential are removed then).",
                field="credentialType",
            )
        app = await self.connector(profile, context)
        state, missing_consent = await self._state(tenant, profile, app, records)
        url = self.consent_url(tenant, app.app_id)
        if missing_consent:
            return FederatedOutcome(state, False, url, missing_consent)
        written = await self._write_ids(tenant, profile, app, records, context)
        audit("connector.proven", context, clientId=app.app_id)
        first = records[SecretKind.CLIENT_ID] is None
        return FederatedOutcome(_with_references(state, self, names), written, None, first=first)

    async def describe(
        self, tenant: str, profile: IntegrationProfile, records: dict[SecretKind, StoredSecret | None]
    ) -> RegistrationState:
        app = await self.directory.find_application(
            self.settings.home_tenant_id, self.registry.connector_unique_name(profile.id)
        )
        if app is None:
            state = RegistrationState(
                tenant, profile.id, self.registry.connector_unique_name(profile.id), None, None, [],
                CredentialState(None, None, None, False, 0, CredentialType.FEDERATED), References(None, None, None),
                ["connector app missing in the vendor's tenant: onboard again to recreate it"],
            )  # fmt: skip
        else:
            state, _ = await self._state(tenant, profile, app, records)
        return _with_references(state, self, self.registry.secret_names(tenant, profile.id), records)

    async def _state(
        self,
        tenant: str,
        profile: IntegrationProfile,
        app: AppRegistration,
        records: dict[SecretKind, StoredSecret | None],
    ) -> tuple[RegistrationState, str | None]:
        """The registration as the connector's tokens show it in the tenant, and why it is not usable yet (None:
        it is: consented with every permission)."""

        async def roles_for(scope: str) -> set[str] | None:
            async def once() -> set[str] | None:
                return await self.tokens.roles(tenant, app.app_id, scope)

            try:
                return await within_replication(
                    "consent to the connector", once,
                    deadline_seconds=self.settings.verify_timeout_seconds, clock=self.clock,
                )  # fmt: skip
            except StillReplicating:
                return None

        granted = await asyncio.gather(*(roles_for(p.token_scope) for p in profile.permissions))
        permissions = [
            PermissionState(p.resource_name, p.resource_app_id, role, roles is not None and role in roles)
            for p, roles in zip(profile.permissions, granted, strict=True)
            for role in p.roles
        ]
        url = self.consent_url(tenant, app.app_id)
        drift: list[str] = []
        reason = None
        if any(roles is None for roles in granted):
            reason = f"The customer's admin has not consented to the connector app (or revoked it): {url}"
            drift.append(f"not consented (or consent revoked) in this tenant: the admin consents at {url}")
        else:
            missing = [p.permission for p in permissions if not p.granted]
            drift += [f"permission not granted: {m}" for m in missing]
            if missing:
                reason = f"Consented without {', '.join(missing)}: the admin consents again at {url}"
        if not profile.in_catalog:
            drift.append("integration no longer in the catalog: offboard it")
        state = RegistrationState(
            tenant_id=tenant,
            integration=profile.id,
            unique_name=self.registry.connector_unique_name(profile.id),
            application=AppSummary(app.object_id, app.app_id, app.display_name),
            service_principal_id=None,  # the customer's enterprise application: theirs, not read here
            permissions=permissions,
            credential=CredentialState(
                key_id=None,
                hint=None,
                expires=None,
                verified=reason is None,
                other_credentials_on_app=0,
                type=CredentialType.FEDERATED,
            ),
            references=References(None, None, None),
            drift=drift,
        )
        return state, reason

    async def _write_ids(
        self,
        tenant: str,
        profile: IntegrationProfile,
        app: AppRegistration,
        records: dict[SecretKind, StoredSecret | None],
        context: dict[str, str],
    ) -> bool:
        written = False
        for kind, value in ((SecretKind.CLIENT_ID, app.app_id), (SecretKind.TENANT_ID, tenant)):
            name = self.registry.secret_name(tenant, profile.id, kind)
            tags = self.registry.tags(tenant, profile.id, kind, app.object_id, app.app_id) | {
                Tag.CREDENTIAL_TYPE: CredentialType.FEDERATED.value
            }
            current = records.get(kind)
            if current is not None and dict(current.tags) == tags:
                continue
            stored = await self.vault.write(name, value, CONTENT_TYPES[kind], tags, None)
            audit("secret.stored", context, secretName=name, version=stored.version)
            if kind is SecretKind.CLIENT_ID and (current is None or current.tags.get(Tag.CREDENTIAL_TYPE) != (
                CredentialType.FEDERATED.value
            )):  # fmt: skip
                audit("registration.ready", context, credentialType=CredentialType.FEDERATED.value, clientId=app.app_id)
            written = True
        return written


def _with_references(
    state: RegistrationState,
    connectors: Connectors,
    names: dict[SecretKind, str],
    records: dict[SecretKind, StoredSecret | None] | None = None,
) -> RegistrationState:
    """The state with its Key Vault references: both ids once stored (onboarding just wrote them: `records` None)."""
    stored = records or {}
    has = {
        kind: records is None or stored.get(kind) is not None for kind in (SecretKind.CLIENT_ID, SecretKind.TENANT_ID)
    }
    references = References(
        connectors.vault.reference(names[SecretKind.CLIENT_ID]) if has[SecretKind.CLIENT_ID] else None,
        connectors.vault.reference(names[SecretKind.TENANT_ID]) if has[SecretKind.TENANT_ID] else None,
        None,
    )
    return RegistrationState(
        state.tenant_id, state.integration, state.unique_name, state.application, state.service_principal_id,
        state.permissions, state.credential, references, state.drift,
    )  # fmt: skip
