"""Races on one registration: PUT against DELETE, and the timer, the event and an on-demand rotate at once."""

from __future__ import annotations

import asyncio

from azure.functions.timer import TimerRequest

from tests.functions.conftest import FUNCTIONS, Api, body_of
from tests.functions.test_rotation import near_expiry, secret_name, stored, works


async def test_put_racing_delete_ends_either_fully_onboarded_or_fully_gone(api: Api) -> None:
    tenant = api.stand_in.home_tenant_id
    params = {"tenantId": tenant, "integration": "sentinel"}
    await api.put(tenant, "sentinel")
    for _ in range(3):
        put, delete = await asyncio.gather(
            api.put(tenant, "sentinel"),
            api.call("offboard_integration", "DELETE", f"tenants/{tenant}/integrations/sentinel", params),
        )
        assert put.status_code in (200, 201) and delete.status_code == 200
        state = api.stand_in.state()
        apps = api.apps()
        live = [n for n in state["vault"]["secrets"] if n.startswith(api.services.settings.name_prefix)]
        if apps:  # the PUT won last: one app, one credential, three secrets, all consistent
            [app] = apps
            assert len(app["passwordKeyIds"]) == 1 and len(live) == 3
            assert works(api, body_of(put)["application"]["clientId"], stored(api, "sentinel")[0])
        else:  # the DELETE won last: nothing left
            assert live == []


async def test_timer_event_and_on_demand_rotate_at_once_leave_one_current_credential(api: Api) -> None:
    tenant = api.stand_in.home_tenant_id
    created = body_of(await api.put(tenant, "sentinel"))
    params = {"tenantId": tenant, "integration": "sentinel"}
    rotate_now = api.call("rotate_now", "POST", f"tenants/{tenant}/integrations/sentinel/rotate", params)
    results = await asyncio.gather(
        FUNCTIONS["rotation_sweep"](TimerRequest()),
        FUNCTIONS["secret_near_expiry"](near_expiry(api, secret_name(api, "sentinel"))),
        rotate_now,
    )
    assert results[2].status_code == 200
    [app] = api.apps()
    latest, tags = stored(api, "sentinel")
    # Exactly one new credential (the forced one); the original stays through its grace period.
    assert len(app["passwordKeyIds"]) == 2 and tags["key-id"] in app["passwordKeyIds"]
    assert created["credential"]["keyId"] in app["passwordKeyIds"]
    assert works(api, created["application"]["clientId"], latest)
    versions = api.stand_in.state()["vault"]["secrets"][secret_name(api, "sentinel")]["versions"]
    assert len(versions) == 2
