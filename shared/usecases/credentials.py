"""A client secret's life, shared by onboarding and rotation: mint it safely, store it, prove it (and any credential).

Minting is the one operation that cannot simply be repeated (each call makes a new secret whose
text is shown once), so it is guarded here: SDK retries off, a unique display name per attempt
so a lost answer can be found and removed, and the new secret stored before anything else can
fail. Proving asks Entra for a real token and checks its `roles`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from shared.domain.audit import audit
from shared.domain.catalog import Catalog
from shared.domain.model import (
    AppRegistration,
    ClientCredential,
    IntegrationProfile,
    NewPassword,
    SecretKind,
    StoredSecret,
)
from shared.domain.ports import CredentialChecker, Directory, NotReplicatedYet, PasswordOutcomeUnknown, Vault
from shared.domain.registry import Registry, Tag, iso
from shared.domain.retry import Clock, RetryDeadline, retry
from shared.settings import Settings
from shared.usecases.replication import StillReplicating, throttle_hint

CONTENT_TYPES = {
    SecretKind.CLIENT_ID: "application/vnd.entra.client-id",
    SecretKind.TENANT_ID: "application/vnd.entra.tenant-id",
    SecretKind.CLIENT_SECRET: "application/vnd.entra.client-secret",
    SecretKind.VENDOR_CERTIFICATE: "application/x-pem-file",
    SecretKind.WORKSPACE_ID: "application/vnd.loganalytics.workspace-id",
    SecretKind.WORKSPACE_NAME: "application/vnd.loganalytics.workspace-name",
}


async def known_profile(
    catalog: Catalog, vault: Vault, registry: Registry, tenant_id: str, integration: str
) -> IntegrationProfile:
    """The integration's profile, or, for one that has left the catalog but that Key Vault still records in this
    tenant, a profile with no permissions: status, rotation and offboarding keep working on its registrations
    from Key Vault's record (onboarding a new one is refused). UnknownIntegration otherwise."""
    profile = catalog.get(integration)
    if profile is not None:
        if not profile.add_ons:
            return profile
        # The add-ons this registration has, as its Client ID records them (one that left the catalog is dropped).
        ids = await vault.read(registry.secret_name(tenant_id, integration, SecretKind.CLIENT_ID))
        return profile.with_add_ons(recorded_add_ons(ids))
    names = registry.secret_names(tenant_id, integration).values()
    if not any(await asyncio.gather(*(vault.read(name) for name in names))):
        catalog.require(integration)  # raises UnknownIntegration
    return IntegrationProfile(integration, integration, "No longer in the catalog.", (), in_catalog=False)


def recorded_add_ons(ids: StoredSecret | None) -> tuple[str, ...]:
    """The add-ons a registration has, from its Client ID's `add-ons` tag (none before it is onboarded)."""
    value = ids.tags.get(Tag.ADD_ONS, "") if ids is not None else ""
    return tuple(v for v in value.split(",") if v)


class Credentials:
    def __init__(
        self,
        settings: Settings,
        directory: Directory,
        vault: Vault,
        checker: CredentialChecker,
        clock: Clock,
        now: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.vault = vault
        self.checker = checker
        self.clock = clock
        self.now = now

    async def store(
        self,
        tenant: str,
        app: AppRegistration,
        name: str,
        new: NewPassword,
        tags: dict[str, str],
        context: dict[str, str],
        *,
        remove_if_lost: bool = True,
    ) -> StoredSecret:
        """Write a new secret as the latest version; if that fails, make sure no orphan is left.

        `remove_if_lost=False` is for a secret whose text is already stored elsewhere (rotation's staging
        secret): a write that did not land leaves it on the app, for the next run to write again."""
        try:
            written = await self.vault.write(
                name, new.secret.reveal(), CONTENT_TYPES[SecretKind.CLIENT_SECRET], tags, new.info.end
            )
        except Exception:
            # The write may have landed and only its answer been lost. Read back to know.
            try:
                latest = await self.vault.read(name)
            except Exception:
                # Removing the credential could leave the vault's latest version dead, so leave it: if it
                # was not stored, the rotation journal or the orphan check removes it on a later run.
                raise
            if latest is not None and latest.tags.get(Tag.KEY_ID) == new.info.key_id:
                audit("secret.stored", context, secretName=name, version=latest.version, keyId=new.info.key_id)
                return latest
            if not remove_if_lost:
                raise
            # Not stored, and nobody will ever know this secret's text: take it off the app now.
            await self.directory.remove_password(tenant, app.object_id, new.info.key_id)
            audit("secret.removed", context, appObjectId=app.object_id, keyId=new.info.key_id, reason="store-failed")
            raise
        audit("secret.stored", context, secretName=name, version=written.version, keyId=new.info.key_id)
        return written

    async def mint(
        self, tenant: str, app: AppRegistration, end: datetime, context: dict[str, str], display_name: str | None = None
    ) -> NewPassword:
        """addPassword, safe against lost answers and throttling; StillReplicating when time runs out."""
        display_name = display_name or self.settings.registry.new_credential_name()

        async def attempt() -> NewPassword:
            try:
                return await self.directory.add_password(tenant, app.object_id, display_name, end)
            except PasswordOutcomeUnknown:
                # Graph may have minted it; its text is lost to us, so find it by its unique name and remove it.
                current = await self.directory.find_application(tenant, app.unique_name)
                for password in current.passwords if current else ():
                    if password.display_name == display_name:
                        await self.directory.remove_password(tenant, app.object_id, password.key_id)
                        audit(
                            "secret.removed",
                            context,
                            appObjectId=app.object_id,
                            keyId=password.key_id,
                            reason="outcome-unknown",
                        )
                raise

        def hint(error: Exception) -> float | None:
            if isinstance(error, NotReplicatedYet | PasswordOutcomeUnknown):
                return 0.0
            return throttle_hint(error)

        try:
            new: NewPassword = await retry(
                attempt, what="client secret", retry_after=hint,
                deadline_seconds=self.settings.replication_timeout_seconds, clock=self.clock,
            )  # fmt: skip
        except RetryDeadline as deadline:
            raise StillReplicating("client secret", deadline) from deadline
        audit("secret.created", context, appObjectId=app.object_id, keyId=new.info.key_id, end=iso(new.info.end))
        return new

    async def prove(self, tenant: str, client_id: str, secret: ClientCredential, profile: IntegrationProfile) -> None:
        """A token for every resource API, holding every granted role; waits out replication, else 202."""

        async def check(resource_scope: str, wanted: set[str]) -> None:
            async def once() -> None:
                roles = await self.checker.granted_roles(tenant, client_id, secret, resource_scope)
                if not wanted <= roles:
                    raise NotReplicatedYet("the permission grants", "roles missing from the token")

            try:
                await retry(
                    once, what="credential verification",
                    retry_after=lambda error: 0.0 if isinstance(error, NotReplicatedYet) else None,
                    deadline_seconds=self.settings.verify_timeout_seconds, clock=self.clock,
                )  # fmt: skip
            except RetryDeadline as deadline:
                raise StillReplicating("new credential", deadline) from deadline

        # An integration that has left the catalog has no roles to check: the secret must still get a token.
        checks = [(p.token_scope, set(p.roles)) for p in profile.permissions] or [(self.settings.graph_scope, set())]
        await asyncio.gather(*(check(scope, wanted) for scope, wanted in checks))
