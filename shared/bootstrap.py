"""The composition root: builds settings, catalog, credentials and SDK clients once per process, lazily.

Functions guidance: create clients once and reuse them across invocations; nothing heavy at
import time, so a cold start pays only for what the first request needs. Tests swap in fakes
with `override`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from .catalog import Catalog, load_catalog
from .directory import GraphDirectory
from .identity import PROVISIONER_ROLES, Identity, TokenRoleChecker
from .locks import BlobLeaseLocks, Locks, ProcessLocks
from .offboarding import Offboarding
from .onboarding import Onboarding
from .retry import RealClock
from .rotation import Rotation
from .settings import Settings, load_settings
from .vault import KeyVault

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

    async def close(self) -> None:
        if isinstance(self.locks, BlobLeaseLocks):
            await self.locks.close()
        for resource in (self.directory, self.vault, self.identity):
            if resource is not None:
                await resource.close()


_services: Services | None = None


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


def override(replacement: Services | None) -> None:
    """Tests: use these services (None: build from the environment again on next use)."""
    global _services
    _services = replacement
