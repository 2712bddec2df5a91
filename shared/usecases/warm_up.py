"""What a new instance pays once, paid before its first request (the Functions `warmup` trigger).

The first onboarding in a fresh process otherwise pays, on top of its own work: the SDK modules
loaded on first use (httpx's connection pool imports httpcore and anyio; msgraph builds request
builders on first navigation; azure-core its aiohttp transport), the managed identity's tokens,
TLS to Graph and Key Vault, and the lock container. Each step is a read that changes nothing:
Graph answers with the home tenant's app management policy and a 404 for an app that does not
exist, Key Vault a 404 (for a secret and for a certificate), and the lock is one no registration uses. Best effort: a step that fails
is logged and left to the first request, which does the same work anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable

from shared.domain.errors import RegistrationBusy
from shared.domain.ports import Directory, Locks, TenantAccess, Vault
from shared.settings import Settings

logger = logging.getLogger(__name__)
# Registration locks are `{tenant}/{integration}` (shared/domain/registry.py); this key can be no registration's.
WARM_UP_LOCK = "warm-up"


class WarmUp:
    def __init__(
        self, settings: Settings, directory: Directory, vault: Vault, locks: Locks, access: TenantAccess
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.vault = vault
        self.locks = locks
        self.access = access

    async def run(self) -> None:
        home, registry = self.settings.home_tenant_id, self.settings.registry
        steps: dict[str, Awaitable[object]] = {
            "Key Vault": self.vault.read(registry.probe_secret_name),
            # Every onboarding reads the registration's client certificate: its client, and its challenge, now.
            "Key Vault certificates": self.vault.read_certificate(registry.probe_secret_name),
        }
        if self.settings.provisioner_client_id is None or self.settings.allow_home_tenant:
            # Vendor-hosted mode refuses the home tenant by default, and no customer tenant is known
            # yet: there the Graph stack is loaded by the first request.
            steps["Graph"] = self.directory.password_policy(home)
            steps["Graph app lookup"] = self.directory.find_application(home, registry.unique_name("warm-up"))
        steps["locks"] = self._touch_lock()
        if self.settings.provisioner_client_id is not None:
            # Customer tenants are reached with the managed identity's token for the token exchange.
            steps["token exchange"] = self.access.warm_up()
        started = time.perf_counter()
        outcomes = await asyncio.gather(*steps.values(), return_exceptions=True)
        for name, outcome in zip(steps, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                logger.warning(
                    "warm-up: %s failed (%s); the first request will pay for it", name, type(outcome).__name__
                )
        logger.info("warm-up done in %.2f s", time.perf_counter() - started)

    async def _touch_lock(self) -> None:
        try:
            async with self.locks.hold(WARM_UP_LOCK, wait_seconds=0):
                pass
        except RegistrationBusy:
            pass  # another instance is warming up at the same moment: the container exists either way
