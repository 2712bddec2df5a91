"""Concurrent callers on one registration: serialized by a blob lease, so nothing is made twice."""

from __future__ import annotations

import asyncio

import pytest

from shared.adapters.locks import BlobLeaseLocks
from shared.domain.errors import RegistrationBusy
from tests.azurite import Azurite
from tests.functions.conftest import Api, body_of


async def test_twenty_simultaneous_identical_puts_make_one_app_and_one_credential(api: Api) -> None:
    tenant = api.stand_in.home_tenant_id
    responses = await asyncio.gather(*(api.put(tenant, "sentinel") for _ in range(20)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 19 + [201]
    [app] = api.apps()
    assert len(app["passwordKeyIds"]) == 1
    key_ids = {body_of(r)["credential"]["keyId"] for r in responses}
    assert key_ids == set(app["passwordKeyIds"])
    secrets = api.stand_in.state()["vault"]["secrets"]
    name = f"{api.services.settings.name_prefix}-{tenant}-sentinel-client-secret"
    assert len(secrets[name]["versions"]) == 1


async def test_a_held_lease_turns_a_second_holder_away_until_released(azurite: Azurite) -> None:
    locks = BlobLeaseLocks(connection_string=azurite.connection_string)
    try:
        async with locks.hold("tenant-a/sentinel", wait_seconds=0):
            with pytest.raises(RegistrationBusy):
                async with locks.hold("tenant-a/sentinel", wait_seconds=0.2):
                    pass
            async with locks.hold("tenant-b/sentinel", wait_seconds=0):
                pass  # other registrations are not blocked
        async with locks.hold("tenant-a/sentinel", wait_seconds=0):
            pass  # released
    finally:
        await locks.close()
