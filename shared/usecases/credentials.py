"""A client secret's life, shared by onboarding and rotation: mint it safely, store it, prove it.

Minting is the one operation that cannot simply be repeated (each call makes a new secret whose
text is shown once), so it is guarded here: SDK retries off, a unique display name per attempt
so a lost answer can be found and removed, and the new secret stored before anything else can
fail. Proving asks Entra for a real token and checks its `roles`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from shared.domain.catalog import Catalog
from shared.domain.errors import UnknownIntegration
from shared.domain.model import AppRegistration, IntegrationProfile, NewPassword, Secret, SecretKind, StoredSecret
from shared.domain.ports import CredentialChecker, Directory, NotReplicatedYet, PasswordOutcomeUnknown, Throttled, Vault
from shared.domain.retry import THROTTLED_WITHOUT_RETRY_AFTER_SECONDS, Clock, RetryDeadline, retry
from shared.settings import Settings

audit_log = logging.getLogger("tenant_onboarding.audit")
T = TypeVar("T")
PENDING_RETRY_AFTER_SECONDS = 5
CONTENT_TYPES = {
    SecretKind.CLIENT_ID: "application/vnd.entra.client-id",
    SecretKind.TENANT_ID: "application/vnd.entra.tenant-id",
    SecretKind.CLIENT_SECRET: "application/vnd.entra.client-secret",
}


class StillReplicating(Exception):
    """A step ran out of time waiting for Entra: replication lag, or throttling longer than we wait."""

    def __init__(self, step: str, deadline: RetryDeadline) -> None:
        super().__init__(step)
        self.step = step
        throttle = deadline.last if isinstance(deadline.last, Throttled) else None
        self.throttled = throttle is not None
        self.retry_after = max(PENDING_RETRY_AFTER_SECONDS, math.ceil(throttle.retry_after or 0) if throttle else 0)

    @property
    def reason(self) -> str:
        if self.throttled:
            return f"Graph is throttling the {self.step} step; repeat the same request after Retry-After."
        return f"Entra has not finished replicating the {self.step}; repeat the same request."


async def known_profile(
    catalog: Catalog, vault: Vault, settings: Settings, tenant_id: str, integration: str
) -> IntegrationProfile:
    """The integration's profile, or, for one that has left the catalog but that Key Vault still records in this
    tenant, a profile with no permissions: status, rotation and offboarding keep working on its registrations
    from Key Vault's record (onboarding a new one is refused). UnknownIntegration otherwise."""
    profile = catalog.get(integration)
    if profile is not None:
        return profile
    recorded = await asyncio.gather(
        *(vault.read(secret_name(settings, tenant_id, integration, kind)) for kind in SecretKind)
    )  # fmt: skip
    if not any(recorded):
        raise UnknownIntegration(f"No integration {integration!r} in the catalog.", integration=integration)
    return IntegrationProfile(integration, integration, "No longer in the catalog.", (), in_catalog=False)


def registration_key(tenant_id: str, integration: str) -> str:
    return f"{tenant_id}/{integration}"


def unique_name(settings: Settings, integration: str) -> str:
    return f"{settings.name_prefix}-{integration}"


def secret_name(settings: Settings, tenant_id: str, integration: str, kind: SecretKind) -> str:
    # Key Vault names allow 0-9, a-z, A-Z and '-'; all three parts are validated to that alphabet.
    return f"{settings.name_prefix}-{tenant_id}-{integration}-{kind.value}"


# The invocation an audit event belongs to: set by each trigger (HTTP, timer, event, CLI) so every
# change one request makes can be found together in Application Insights.
correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="")


def new_correlation_id(given: str | None = None) -> str:
    """Use the caller's id when it is a sane token, else a fresh one; set it for this invocation."""
    value = given if given and re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", given) else str(uuid.uuid4())
    correlation_id.set(value)
    return value


def audit(operation: str, context: dict[str, str], **fields: str) -> None:
    """One structured audit event per change in Entra or Key Vault (never a secret).

    Logged at INFO on `tenant_onboarding.audit` with the event as the record's `audit` attribute;
    the Functions host ships it to Application Insights with the invocation's other traces."""
    event = {
        "operation": operation,
        "outcome": "succeeded",
        "correlationId": correlation_id.get() or new_correlation_id(),
        **context,
        **fields,
    }
    audit_log.info("%s %s", operation, " ".join(f"{k}={v}" for k, v in sorted(event.items())), extra={"audit": event})


async def within_replication(
    what: str, operation: Callable[[], Awaitable[T]], *, deadline_seconds: float, clock: Clock
) -> T:
    """Run a Graph step, waiting out replication lag (and throttling) for up to `deadline_seconds`;
    StillReplicating after that, for the caller to answer 202 or report the rotation pending."""
    try:
        return await retry(
            operation,
            what=what,
            retry_after=lambda error: 0.0 if isinstance(error, NotReplicatedYet) else throttle_hint(error),
            deadline_seconds=deadline_seconds,
            clock=clock,
        )
    except RetryDeadline as deadline:
        raise StillReplicating(what, deadline) from deadline


def throttle_hint(error: Exception) -> float | None:
    if isinstance(error, Throttled):
        return error.retry_after or THROTTLED_WITHOUT_RETRY_AFTER_SECONDS
    return None


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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

    def new_display_name(self) -> str:
        """Unique per attempt, and prefixed: how this service recognises secrets it issued."""
        return f"{self.settings.name_prefix} {uuid.uuid4().hex[:12]}"

    async def store(
        self,
        tenant: str,
        app: AppRegistration,
        name: str,
        new: NewPassword,
        tags: dict[str, str],
        context: dict[str, str],
    ) -> StoredSecret:
        """Write a new secret as the latest version; if that fails, make sure no orphan is left."""
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
            if latest is not None and latest.tags.get("key-id") == new.info.key_id:
                audit("secret.stored", context, secretName=name, version=latest.version, keyId=new.info.key_id)
                return latest
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
        display_name = display_name or self.new_display_name()

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

    async def prove(self, tenant: str, client_id: str, secret: Secret, profile: IntegrationProfile) -> None:
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
