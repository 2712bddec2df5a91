"""Where entry points get their services: built once per process, on first use, by shared/bootstrap/composition.py.

Importing this module loads no SDK. The composition root, and with it every adapter and Microsoft SDK, is
imported by the first `services()`: on a scaled-out instance the `warmup` trigger calls it before the instance
takes traffic, otherwise the first invocation does. That is the pattern Microsoft gives for what the warmup
trigger cannot cover, restarts and scale from zero ("Lazy loading is a good pattern",
https://learn.microsoft.com/azure/azure-functions/functions-bindings-warmup), and it keeps `import function_app`,
which every new instance pays before the host indexes it, to the routes (bench/cold_start.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from shared.domain.catalog import Catalog
from shared.domain.ports import Locks, SweepStore
from shared.settings import Settings

if TYPE_CHECKING:  # the adapters' types only: importing them would load their SDKs
    from shared.adapters.event_grid import EventGridPublisher
    from shared.adapters.graph import GraphDirectory
    from shared.adapters.identity import Identity
    from shared.adapters.keyvault import KeyVault
    from shared.adapters.outbox import QueueOutbox
    from shared.adapters.sweep_storage import StorageSweepStore
    from shared.adapters.token_check import TokenRoleChecker
    from shared.adapters.workspaces import ArmWorkspaces
    from shared.usecases.events import EventDelivery
    from shared.usecases.fleet import Fleet
    from shared.usecases.offboarding import Offboarding
    from shared.usecases.onboarding import Onboarding
    from shared.usecases.rotation import Rotation
    from shared.usecases.status import RegistrationStatus
    from shared.usecases.sweep import Sweep
    from shared.usecases.sweep_pass import SweepPasses
    from shared.usecases.tenant_access import TenantConsent
    from shared.usecases.warm_up import WarmUp


@dataclass
class Services:
    settings: Settings
    catalog: Catalog
    onboarding: Onboarding
    status: RegistrationStatus
    rotation: Rotation
    sweep: Sweep
    fleet: Fleet
    events: EventDelivery
    offboarding: Offboarding
    tenant_consent: TenantConsent
    warm_up: WarmUp
    identity: Identity | None = None
    directory: GraphDirectory | None = None
    connector_directory: GraphDirectory | None = None  # the home tenant's connector apps only (HomeApps)
    vault: KeyVault | None = None
    locks: Locks | None = None
    checker: TokenRoleChecker | None = None
    workspaces: ArmWorkspaces | None = None
    event_publisher: EventGridPublisher | None = None
    outbox: QueueOutbox | None = None
    # The bounded sweep and its state in the Functions storage account (None: no storage, the timer sweeps in-process).
    sweep_passes: SweepPasses | None = None
    sweep_store: StorageSweepStore | None = None

    async def close(self) -> None:
        from shared.adapters.locks import BlobLeaseLocks  # loaded already: these services were composed

        if isinstance(self.locks, BlobLeaseLocks):
            await self.locks.close()
        resources = (
            self.directory, self.connector_directory, self.vault, self.identity, self.checker, self.workspaces,
            self.event_publisher, self.outbox, self.sweep_store,
        )  # fmt: skip
        for resource in resources:
            if resource is not None:
                await resource.close()


_services: Services | None = None


def build(
    settings: Settings | None = None,
    now: Callable[[], datetime] | None = None,
    catalog: Catalog | None = None,
    sweep_store: SweepStore | None = None,
) -> Services:
    """Compose the services (shared/bootstrap/composition.py); the arguments exist for tests and benchmarks."""
    from shared.bootstrap.composition import compose

    return compose(settings, now, catalog, sweep_store)


def services() -> Services:
    global _services
    if _services is None:
        _services = build()
    return _services


async def warm_up() -> None:
    """Build the services and pay the process's one-time costs (shared/usecases/warm_up.py)."""
    await services().warm_up.run()


def override(replacement: Services | None) -> None:
    """Tests: use these services (None: build from the environment again on next use)."""
    global _services
    _services = replacement
