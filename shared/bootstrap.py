"""The composition root: builds settings, catalog, credentials and SDK clients once per process, lazily.

Functions guidance: create clients once and reuse them across invocations; nothing heavy at
import time, so a cold start pays only for what the first request needs. Tests swap in fakes
with `override`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.adapters.graph import GraphDirectory
from shared.adapters.identity import PROVISIONER_ROLES, TOKEN_EXCHANGE_SCOPE, Identity, TokenRoleChecker
from shared.adapters.keyvault import KeyVault
from shared.adapters.locks import BlobLeaseLocks, Locks, ProcessLocks, RegistrationBusy
from shared.domain.catalog import Catalog, load_catalog
from shared.domain.retry import RealClock
from shared.settings import Settings, load_settings
from shared.usecases.offboarding import Offboarding
from shared.usecases.onboarding import Onboarding
from shared.usecases.rotation import Rotation

logger = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    catalog: Catalog
    onboarding: Onboarding
    rotation: Rotation
    offboarding: Offboarding
    identity: Identity | None = None
    directory: GraphDirectory | None = None
    vault: KeyVault | None = None
    locks: Locks | None = None

    async def consent_status(self, tenant_id: str) -> dict[str, object]:
        """The body of GET /api/tenants/{tenantId}/consent."""
        assert self.identity is not None
        if tenant_id == self.settings.home_tenant_id:
            self.identity.management_credential(tenant_id)  # refuses the home tenant where it is not allowed
            return {"tenantId": tenant_id, "consented": True, "via": "managed identity", "missingRoles": []}
        if self.settings.provisioner_client_id is None:
            return {"tenantId": tenant_id, "consented": False, "via": None, "missingRoles": [], "consentUrl": None}
        consented, roles = await self.identity.consent(tenant_id)
        missing = sorted(PROVISIONER_ROLES - roles) if consented else sorted(PROVISIONER_ROLES)
        body: dict[str, object] = {
            "tenantId": tenant_id,
            "consented": consented and not missing,
            "via": "provisioner app",
            "missingRoles": missing,
        }
        if missing:
            body["consentUrl"] = self.identity.consent_url(tenant_id)
        return body

    async def warm_up(self) -> None:
        """What a process pays once, paid before its first request (the Functions `warmup` trigger).

        The first onboarding in a fresh process otherwise pays, on top of its own work: the SDK
        modules loaded on first use (httpx's connection pool imports httpcore and anyio; msgraph
        builds request builders on first navigation; azure-core its aiohttp transport), the
        managed identity's tokens, TLS to Graph and Key Vault, and the lock container. Each step
        is a read that changes nothing: Graph answers with the home tenant's app management
        policy and a 404 for an app that does not exist, Key Vault a 404, and the lock is one
        no registration uses. Best effort: a step that fails is logged and left to the first
        request, which does the same work anyway.
        """
        assert self.directory is not None and self.vault is not None and self.identity is not None
        home, prefix = self.settings.home_tenant_id, self.settings.name_prefix
        steps: dict[str, Awaitable[object]] = {"Key Vault": self.vault.read(f"{prefix}-warm-up")}
        if self.settings.provisioner_client_id is None or self.settings.allow_home_tenant:
            # Vendor-hosted mode refuses the home tenant by default, and no customer tenant is known
            # yet: there the Graph stack is loaded by the first request.
            steps["Graph"] = self.directory.password_policy(home)
            steps["Graph app lookup"] = self.directory.find_application(home, f"{prefix}-warm-up")
        if self.locks is not None:
            steps["locks"] = self._touch_lock(self.locks)
        if self.settings.provisioner_client_id is not None:
            # Customer tenants are reached with the managed identity's token for the token exchange.
            steps["token exchange"] = self.identity.vault_credential().get_token(TOKEN_EXCHANGE_SCOPE)
        started = time.perf_counter()
        outcomes = await asyncio.gather(*steps.values(), return_exceptions=True)
        for name, outcome in zip(steps, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                logger.warning(
                    "warm-up: %s failed (%s); the first request will pay for it", name, type(outcome).__name__
                )
        logger.info("warm-up done in %.2f s", time.perf_counter() - started)

    @staticmethod
    async def _touch_lock(locks: Locks) -> None:
        try:
            async with locks.hold(WARM_UP_LOCK, wait_seconds=0):
                pass
        except RegistrationBusy:
            pass  # another instance is warming up at the same moment: the container exists either way

    async def close(self) -> None:
        if isinstance(self.locks, BlobLeaseLocks):
            await self.locks.close()
        for resource in (self.directory, self.vault, self.identity):
            if resource is not None:
                await resource.close()


_services: Services | None = None
# Registration locks are `{tenant}/{integration}`; this key can be no registration's.
WARM_UP_LOCK = "warm-up"


def build(
    settings: Settings | None = None, now: Callable[[], datetime] | None = None, catalog: Catalog | None = None
) -> Services:
    """`now` and `catalog` exist for tests (a stand-in's moved clock, a large synthetic catalog)."""
    settings = settings or load_settings()
    catalog = catalog or load_catalog()
    identity = Identity(settings)
    directory = GraphDirectory(settings, identity)
    vault = KeyVault(settings, identity)
    locks = _locks(settings, identity)
    now = now or (lambda: datetime.now(UTC))
    checker, clock = TokenRoleChecker(settings), RealClock()
    onboarding = Onboarding(settings, catalog, directory, vault, checker, clock, now=now, locks=locks, access=identity)
    rotation = Rotation(settings, catalog, directory, vault, checker, clock, locks, now=now, access=identity)
    offboarding = Offboarding(settings, catalog, directory, vault, locks, access=identity)
    logger.info("services built: vault %s, %d integrations in the catalog", settings.key_vault_url, len(catalog))
    return Services(settings, catalog, onboarding, rotation, offboarding, identity, directory, vault, locks)


def _locks(settings: Settings, identity: Identity) -> Locks:
    if settings.storage_connection_string:
        return BlobLeaseLocks(connection_string=settings.storage_connection_string)
    if settings.storage_blob_uri:
        return BlobLeaseLocks(settings.storage_blob_uri, credential=identity.vault_credential())
    logger.warning("no Functions storage configured: registrations are serialized within this process only")
    return ProcessLocks()


def services() -> Services:
    global _services
    if _services is None:
        _services = build()
    return _services


async def warm_up() -> None:
    """Build the services and pay the process's one-time costs (see Services.warm_up)."""
    await services().warm_up()


def override(replacement: Services | None) -> None:
    """Tests: use these services (None: build from the environment again on next use)."""
    global _services
    _services = replacement
