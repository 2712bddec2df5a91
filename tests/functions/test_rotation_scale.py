"""A sweep over many registrations against the stand-in, with faults on: every one ends with a working secret."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity.aio import ClientSecretCredential, ManagedIdentityCredential
from azure.keyvault.secrets.aio import SecretClient

from emulator.launcher import StandIn
from shared import bootstrap
from shared.domain.catalog import Catalog
from shared.domain.model import IntegrationProfile, ResourcePermissions
from shared.settings import load_settings
from shared.usecases.onboarding import OnboardRequest, Outcome
from tests.azurite import Azurite
from tests.functions.conftest import app_environment
from tests.functions.test_rotation import DAY, StandInClock

# CI runs 60 (about 10 s); the full run is ROTATION_SCALE_REGISTRATIONS=1000 (about five minutes).
REGISTRATIONS = int(os.environ.get("ROTATION_SCALE_REGISTRATIONS", "60"))
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"


def synthetic_catalog(count: int) -> Catalog:
    """`count` integrations in one tenant: one registration each, as many as the test wants."""
    graph = ResourcePermissions(
        GRAPH_APP_ID, "Microsoft Graph", "https://graph.microsoft.com/.default", ("User.Read.All",),
        role_ids={"User.Read.All": "df021288-bdef-4463-88db-98f22de89214"},  # the id the catalog reviewed
    )  # fmt: skip
    return Catalog(
        {
            f"bulk-{i:05d}": IntegrationProfile(f"bulk-{i:05d}", f"Bulk {i}", "scale test", (graph,))
            for i in range(count)
        }
    )


@pytest.fixture
async def many(
    clock_stand_in: StandIn, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[bootstrap.Services, StandInClock]]:
    stand_in = clock_stand_in
    app_environment(monkeypatch, stand_in, "s", azurite, SECRET_LIFETIME_DAYS="60", ROTATION_CONCURRENCY="16")
    clock = StandInClock(stand_in)
    services = bootstrap.build(load_settings(), now=clock.now, catalog=synthetic_catalog(REGISTRATIONS))
    try:
        yield services, clock
    finally:
        await services.close()


async def test_a_sweep_over_many_registrations_with_faults_leaves_every_one_working(
    many: tuple[bootstrap.Services, StandInClock], clock_stand_in: StandIn
) -> None:
    stand_in = clock_stand_in
    services, clock = many
    tenant = stand_in.home_tenant_id
    limit = asyncio.Semaphore(16)

    async def onboard(integration: str) -> None:
        async with limit:
            result = await services.onboarding.onboard(OnboardRequest(tenant, integration))
            assert result.outcome is Outcome.CREATED

    started = time.monotonic()
    await asyncio.gather(*(onboard(p.id) for p in services.catalog))
    onboarded = time.monotonic()

    clock.advance(31 * DAY)  # every secret is now inside the rotation window
    stand_in.set_faults(
        [
            {"kind": "status", "service": "graph", "status": 429, "retry_after": 1, "probability": 0.02},
            {"kind": "status", "service": "vault", "status": 503, "retry_after": 1, "probability": 0.02},
            {"kind": "status", "service": "entra", "path": "/oauth2/", "status": 503, "probability": 0.01},
        ],
        seed=4,
        password=200,
    )
    summary = await services.sweep.run()
    injected = stand_in.admin("GET", "/faults")["injected"]
    stand_in.clear_faults()
    swept = time.monotonic()

    assert summary.scanned == REGISTRATIONS
    assert summary.planned["due"] == REGISTRATIONS
    working = await check_every_stored_secret(services, stand_in)
    print(
        f"\n{REGISTRATIONS} registrations: onboarded in {onboarded - started:.1f} s, swept in {swept - onboarded:.1f} s "
        f"with {injected} injected faults; outcomes {dict(summary.outcomes)}; {working} of {REGISTRATIONS} stored "
        "secrets authenticate"
    )
    assert working == REGISTRATIONS
    assert summary.outcomes["rotated"] >= REGISTRATIONS * 0.9  # the rest still hold their working previous secret


async def check_every_stored_secret(services: bootstrap.Services, stand_in: StandIn) -> int:
    """Read each stored client secret as a consumer would and ask Entra for a token with it."""
    identity = ManagedIdentityCredential()
    vault = SecretClient(
        stand_in.vault_url, identity, verify_challenge_resource=False, connection_verify=stand_in.ca_bundle
    )
    limit = asyncio.Semaphore(16)
    prefix = services.settings.name_prefix

    async def check(integration: str) -> bool:
        async with limit:
            name = f"{prefix}-{stand_in.home_tenant_id}-{integration}-client-secret"
            secret = await vault.get_secret(name)
            client_id = (secret.properties.tags or {})["client-id"]
            credential = ClientSecretCredential(
                stand_in.home_tenant_id, client_id, str(secret.value), authority=stand_in.authority,
                disable_instance_discovery=True, connection_verify=stand_in.ca_bundle,
            )  # fmt: skip
            try:
                await credential.get_token("https://graph.microsoft.com/.default")
                return True
            except ClientAuthenticationError:
                return False
            finally:
                await credential.close()

    try:
        results = await asyncio.gather(*(check(p.id) for p in services.catalog))
    finally:
        await vault.close()
        await identity.close()
    return sum(results)
