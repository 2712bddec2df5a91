"""A fleet for the bounded sweep's tests: registrations onboarded one day apart over the fakes, every use case writing
through the indexing vault into an in-memory sweep store, and the sweep and a stand-in for its rotation worker."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.adapters.locks import ProcessLocks
from shared.domain.catalog import load_catalog
from shared.domain.model import SecretKind
from shared.domain.sweep_state import WorkItem
from shared.settings import Settings
from shared.usecases.credentials import Credentials
from shared.usecases.due_index import IndexingVault
from shared.usecases.onboarding import Onboarding, OnboardRequest
from shared.usecases.rotation import Rotation
from shared.usecases.status import RegistrationStatus
from shared.usecases.sweep_pass import InvocationReport, SweepPasses
from tests.fakes.checker import FakeChecker
from tests.fakes.clock import FakeClock
from tests.fakes.directory import FakeDirectory
from tests.fakes.harness import make_settings
from tests.fakes.ids import NAMESPACE
from tests.fakes.sweep_store import MemorySweepStore
from tests.fakes.vault import FakeVault

M365 = "m365-defender"


@dataclass
class Fleet:
    """Registrations onboarded one day apart over fakes, every use case writing through the indexing vault."""

    settings: Settings
    clock: FakeClock
    directory: FakeDirectory
    vault: FakeVault
    store: MemorySweepStore
    rotation: Rotation
    onboarding: Onboarding
    passes: SweepPasses
    tenants: list[str]

    def due_at(self, tenant: str) -> datetime:
        secret = self.vault.latest(self.name(tenant))
        assert secret is not None and secret.expires is not None
        return secret.expires - timedelta(days=self.settings.rotation_window_days)

    def name(self, tenant: str) -> str:
        return self.settings.registry.secret_name(tenant, M365, SecretKind.CLIENT_SECRET)

    def due_now(self) -> set[str]:
        return {self.name(t) for t in self.tenants if self.due_at(t) <= self.clock.now()}

    async def invoke_until_complete(self, most: int = 50) -> list[InvocationReport]:
        reports = []
        for _ in range(most):
            reports.append(await self.passes.run())
            if reports[-1].completed:
                return reports
        raise AssertionError("the pass did not complete")

    async def work(self) -> Counter[str]:
        """The rotation worker over everything queued (each item as the queue trigger gets it)."""
        outcomes: Counter[str] = Counter()
        for queued in self.store.take_work():
            item = WorkItem.from_json(queued.item.to_json())
            result = await self.rotation.rotate(item.tenant_id, item.integration, wait_seconds=0)
            outcomes[result.action.value] += 1
        return outcomes


async def fleet(count: int, **settings: str | float) -> Fleet:
    settings_ = make_settings(**({"SWEEP_PAGES_PER_INVOCATION": 2, "ROTATION_RATE_PER_SECOND": 0} | settings))
    catalog = load_catalog()
    clock = FakeClock()
    directory = FakeDirectory(catalog, clock.now)
    vault = FakeVault(name_prefix=settings_.name_prefix, now=clock.now)
    store = MemorySweepStore()
    indexed = IndexingVault(vault, store, settings_, clock.now)
    checker = FakeChecker(directory, catalog)
    locks = ProcessLocks()
    credentials = Credentials(settings_, directory, indexed, checker, clock, clock.now)
    status = RegistrationStatus(settings_.registry, catalog, directory, indexed, clock.now)
    rotation = Rotation(settings_, catalog, directory, indexed, credentials, locks, clock, clock.now)
    onboarding = Onboarding(settings_, catalog, directory, indexed, credentials, status, locks, clock, clock.now)
    tenants = [str(uuid.uuid5(NAMESPACE, f"fleet/{i}")) for i in range(count)]
    for tenant in tenants:
        directory.add_tenant(tenant)
        await onboarding.onboard(OnboardRequest(tenant, M365))
        clock.advance(days=1)
    passes = SweepPasses(settings_, catalog, indexed, store, clock, clock.now)
    return Fleet(settings_, clock, directory, vault, store, rotation, onboarding, passes, tenants)
