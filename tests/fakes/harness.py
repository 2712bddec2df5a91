"""Wiring the use cases over fresh fakes for unit tests: `make_onboarding`, `make_rotation`, seeders.

`make_onboarding` wires `shared.usecases.onboarding.Onboarding` over plain fakes. `make_rotation` wires
`shared.usecases.rotation.Rotation` and `Onboarding` (to set up state) over the same fakes and one lock
table, with port calls that yield to the event loop so that concurrent runs really interleave, a checker
that can be held mid-rotation (`hold_proofs`), and `CountingLocks` to see how many rotations are in flight.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from shared.adapters.locks import ProcessLocks
from shared.domain.catalog import load_catalog
from shared.domain.model import SecretKind
from shared.domain.registry import Tag
from shared.settings import Settings, load_settings
from shared.usecases.credentials import CONTENT_TYPES, Credentials
from shared.usecases.onboarding import Onboarding
from shared.usecases.rotation import Rotation
from shared.usecases.status import RegistrationStatus
from shared.usecases.sweep import Sweep
from tests.fakes.checker import FakeChecker, HoldableChecker
from tests.fakes.clock import FakeClock
from tests.fakes.directory import FakeDirectory, YieldingDirectory
from tests.fakes.ids import BASE_ENV, NAMESPACE, TENANT
from tests.fakes.locks import CountingLocks
from tests.fakes.vault import FakeVault, YieldingVault


class Harness(NamedTuple):
    onboarding: Onboarding
    directory: FakeDirectory
    vault: FakeVault
    checker: FakeChecker
    clock: FakeClock
    status: RegistrationStatus


def make_settings(**overrides: str | float) -> Settings:
    """Settings through `load_settings`, from environment-style names: `ORPHAN_GRACE_MINUTES=5`."""
    return load_settings(BASE_ENV | {name: str(value) for name, value in overrides.items()})


def make_onboarding(**settings_overrides: str | float) -> Harness:
    """The use case over fresh fakes, with `TENANT` seeded with every resource API the catalog uses."""
    settings = make_settings(**settings_overrides)
    catalog = load_catalog()
    clock = FakeClock()
    directory = FakeDirectory(catalog, clock.now)
    directory.add_tenant(TENANT)
    vault = FakeVault(name_prefix=settings.name_prefix, now=clock.now)
    checker = FakeChecker(directory, catalog)
    credentials = Credentials(settings, directory, vault, checker, clock, clock.now)
    status = RegistrationStatus(settings.registry, catalog, directory, vault, clock.now)
    onboarding = Onboarding(settings, catalog, directory, vault, credentials, status, ProcessLocks(), clock, clock.now)
    return Harness(onboarding, directory, vault, checker, clock, status)


class RotationHarness(NamedTuple):
    rotation: Rotation
    onboarding: Onboarding  # the same fakes and locks: onboard to set up what rotation finds
    directory: YieldingDirectory
    vault: YieldingVault
    checker: HoldableChecker
    clock: FakeClock
    locks: CountingLocks
    sweep: Sweep


def make_rotation(*, tenants: Iterable[str] = (), **settings_overrides: str | float) -> RotationHarness:
    """Rotation (and Onboarding) over fresh yielding fakes sharing one lock table; `TENANT` and
    `tenants` are seeded with every resource API the catalog uses."""
    settings = make_settings(**settings_overrides)
    catalog = load_catalog()
    clock = FakeClock()
    directory = YieldingDirectory(catalog, clock.now)
    for tenant_id in (TENANT, *tenants):
        directory.add_tenant(tenant_id)
    vault = YieldingVault(name_prefix=settings.name_prefix, now=clock.now)
    checker = HoldableChecker(directory, catalog)
    locks = CountingLocks()
    credentials = Credentials(settings, directory, vault, checker, clock, clock.now)
    status = RegistrationStatus(settings.registry, catalog, directory, vault, clock.now)
    rotation = Rotation(settings, catalog, directory, vault, credentials, locks, clock, clock.now)
    onboarding = Onboarding(settings, catalog, directory, vault, credentials, status, locks, clock, clock.now)
    sweep = Sweep(settings, rotation, vault, clock, clock.now)
    return RotationHarness(rotation, onboarding, directory, vault, checker, clock, locks, sweep)


def seed_client_secret(
    vault: FakeVault, settings: Settings, tenant_id: str, integration: str, expires: datetime | None
) -> str:
    """A managed client secret put straight into the vault, tagged as onboarding tags it (no app behind it)."""
    name = settings.registry.secret_name(tenant_id, integration, SecretKind.CLIENT_SECRET)
    tags = {
        Tag.MANAGED_BY: settings.name_prefix,
        Tag.TENANT_ID: tenant_id,
        Tag.INTEGRATION: integration,
        Tag.KIND: SecretKind.CLIENT_SECRET.value,
        Tag.KEY_ID: str(uuid.uuid5(NAMESPACE, f"seeded/{name}")),
        Tag.VERIFIED: Tag.TRUE,
    }
    vault.seed(
        name, f"seeded~{uuid.uuid5(NAMESPACE, name).hex}", CONTENT_TYPES[SecretKind.CLIENT_SECRET], tags, expires
    )
    return name
