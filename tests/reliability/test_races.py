"""Races on one registration: PUT against DELETE, and the timer, the event and an on-demand rotate at once.

Each race is made to overlap: a latency rule holds the winner inside its writes long enough for every
other caller to arrive while it works, so only the registration's lock keeps them apart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextvars import ContextVar
from typing import Any

import pytest
from azure.functions.timer import TimerRequest

from emulator.launcher import StandIn
from shared import bootstrap
from shared.settings import load_settings
from shared.usecases.rotation import RotationResult
from tests.azurite import Azurite
from tests.functions.conftest import FUNCTIONS, Api, app_environment, body_of
from tests.functions.test_rotation import DAY, StandInClock, near_expiry, secret_name, stored, works

ROUNDS = 6
# The winner's writes are slow, so every racer reaches the lock while the winner still holds it.
SLOW_WRITES = [
    {"kind": "latency", "service": "graph", "method": "POST", "path": "addPassword", "latency_ms": 400},
    {"kind": "latency", "service": "graph", "method": "DELETE", "latency_ms": 300},
    {"kind": "latency", "service": "vault", "method": "PUT", "latency_ms": 150},
    {"kind": "latency", "service": "vault", "method": "DELETE", "latency_ms": 700},
]


def live_secrets(api: Api) -> list[str]:
    prefix = api.services.settings.name_prefix
    return sorted(n for n in api.stand_in.state()["vault"]["secrets"] if n.startswith(prefix))


def service_principals_of(api: Api, app_id: str) -> int:
    principals = api.stand_in.state()["tenants"][api.stand_in.home_tenant_id]["servicePrincipals"]
    return [sp["appId"] for sp in principals].count(app_id)


async def test_put_racing_delete_ends_either_fully_onboarded_or_fully_gone(api: Api) -> None:
    tenant = api.stand_in.home_tenant_id
    params = {"tenantId": tenant, "integration": "sentinel"}
    await api.put(tenant, "sentinel")
    api.stand_in.set_faults(SLOW_WRITES)
    endings = []
    for round_ in range(ROUNDS):
        put = api.put(tenant, "sentinel")
        delete = api.call("offboard_integration", "DELETE", f"tenants/{tenant}/integrations/sentinel", params)
        if round_ % 2:  # either may reach the lock first
            put_response, delete_response = await asyncio.gather(put, delete)
        else:
            delete_response, put_response = await asyncio.gather(delete, put)
        assert put_response.status_code in (200, 201), body_of(put_response)
        assert delete_response.status_code in (200, 404), body_of(delete_response)
        apps, live = api.apps(), live_secrets(api)
        if apps or live:  # the PUT went last: all of it there, and consistent
            [app] = apps
            assert len(live) == 3 and len(app["passwordKeyIds"]) == 1, (round_, app, live)
            assert service_principals_of(api, app["appId"]) == 1
            secret, tags = stored(api, "sentinel")
            assert tags["client-id"] == app["appId"] and tags["key-id"] in app["passwordKeyIds"]
            assert works(api, app["appId"], secret)
            # It went last, after the DELETE had removed everything: it created the app again, and its answer
            # describes what is there.
            assert put_response.status_code == 201, (round_, body_of(put_response))
            answered = body_of(put_response)
            assert answered["application"]["clientId"] == app["appId"], (round_, answered, app)
            assert answered["credential"]["keyId"] == tags["key-id"], (round_, answered, tags)
            endings.append("onboarded")
        else:  # the DELETE went last: it removed what the PUT had made, and nothing of it is left
            assert delete_response.status_code == 200, (round_, body_of(delete_response))
            endings.append("gone")
        print(f"round {round_}: {endings[-1]}")
    fired = [rule["fired"] for rule in api.stand_in.admin("GET", "/faults")["rules"]]
    assert sum(fired) > 0, "the latency rules never slowed a write: the race was not widened"


# --- the timer, Key Vault's event and an on-demand rotate, all at once, on a registration that is due ---

caller: ContextVar[str] = ContextVar("caller", default="?")


@pytest.fixture
async def due_soon(
    clock_stand_in: StandIn, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Api, StandInClock, dict[str, list[str]]]]:
    """Services on a stand-in whose directory clock can move, recording each caller's rotation result.

    No lock waits (LOCK_WAIT_SECONDS=0): a caller that finds the registration held answers `busy` at once,
    as the sweep always does. A waiting on-demand call would, by design, force a second rotation afterwards."""
    stand_in = clock_stand_in
    stand_in.clear_faults()
    app_environment(
        monkeypatch, stand_in, "q", azurite,
        SECRET_LIFETIME_DAYS="60", ROTATION_WINDOW_DAYS="30", ROTATION_GRACE_HOURS="48", LOCK_WAIT_SECONDS="0",
    )  # fmt: skip
    clock = StandInClock(stand_in)
    services = bootstrap.build(load_settings(), now=clock.now)
    actions: dict[str, list[str]] = {}
    rotate = services.rotation.rotate

    async def recording(*args: Any, **kwargs: Any) -> RotationResult:
        result = await rotate(*args, **kwargs)
        actions.setdefault(caller.get(), []).append(result.action.value)
        return result

    monkeypatch.setattr(services.rotation, "rotate", recording)
    bootstrap.override(services)
    try:
        yield Api(stand_in, services), clock, actions
    finally:
        bootstrap.override(None)
        await services.close()
        stand_in.clear_faults()


async def as_caller(name: str, work: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    caller.set(name)  # this task's own context: the sweep's workers inherit it
    return await work()


async def test_timer_event_and_on_demand_rotate_at_once_make_exactly_one_rotation(
    due_soon: tuple[Api, StandInClock, dict[str, list[str]]],
) -> None:
    api, clock, actions = due_soon
    tenant = api.stand_in.home_tenant_id
    params = {"tenantId": tenant, "integration": "sentinel"}
    created = body_of(await api.put(tenant, "sentinel"))
    client_id = created["application"]["clientId"]
    api.stand_in.set_faults(SLOW_WRITES)
    name = secret_name(api, "sentinel")
    callers: dict[str, Callable[[], Awaitable[Any]]] = {
        "timer": lambda: FUNCTIONS["rotation_sweep"](TimerRequest()),
        "event": lambda: FUNCTIONS["secret_near_expiry"](near_expiry(api, name)),
        "on-demand": lambda: api.call("rotate_now", "POST", f"tenants/{tenant}/integrations/sentinel/rotate", params),
    }
    winners = []
    for round_ in range(ROUNDS):
        clock.advance(31 * DAY)  # the stored secret has 29 of its 60 days left: inside the 30-day window
        before = stored(api, "sentinel")[1]["key-id"]
        versions_before = len(api.stand_in.state()["vault"]["secrets"][name]["versions"])
        [app] = api.apps()
        credentials_before = set(app["passwordKeyIds"])
        actions.clear()
        order = list(callers)[round_ % 3 :] + list(callers)[: round_ % 3]  # each starts first in turn
        results = dict(
            zip(order, await asyncio.gather(*(as_caller(c, callers[c]) for c in order)), strict=True)  # type: ignore[arg-type]
        )
        assert sorted(actions) == sorted(callers), actions  # every caller reached the rotation, once
        assert all(len(a) == 1 for a in actions.values()), actions
        acted = {c: a[0] for c, a in actions.items()}
        assert sorted(acted.values()).count("rotated") == 1, (round_, acted)
        assert set(acted.values()) <= {"rotated", "busy", "nothing-due", "waiting"}, (round_, acted)
        on_demand = results["on-demand"]
        assert on_demand.status_code == (200 if acted["on-demand"] == "rotated" else 409), body_of(on_demand)
        winners.append(next(c for c, a in acted.items() if a == "rotated"))

        [app] = api.apps()
        latest, tags = stored(api, "sentinel")
        # Exactly one new credential, the one stored; its predecessor stays through its grace period.
        assert tags["key-id"] != before and tags["previous-key-id"] == before
        assert set(app["passwordKeyIds"]) - credentials_before == {tags["key-id"]}, (round_, acted, app)
        assert before in app["passwordKeyIds"]
        assert len(api.stand_in.state()["vault"]["secrets"][name]["versions"]) == versions_before + 1
        assert works(api, client_id, latest)
        print(f"round {round_}: {acted}")
    print(f"winners: {winners}")
