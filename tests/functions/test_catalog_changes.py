"""Catalog changes reach registrations already onboarded: a role taken out of a profile is taken back, a role
nobody reviewed is revoked, and an integration that left the catalog can still be read, rotated and offboarded.

Each step runs the registered functions against the stand-in, with the services rebuilt around an edited
catalog as a new deployment of the app would be.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest

from emulator.launcher import StandIn
from shared import bootstrap
from shared.domain.catalog import Catalog, load_catalog
from shared.settings import load_settings
from tests.azurite import Azurite
from tests.emulator.directory import GRAPH_APP_ID
from tests.functions.conftest import Api, app_environment, body_of

M365 = "m365-defender"
TAKEN_OUT = "Policy.Read.All"


@pytest.fixture
async def redeploy(
    stand_in: StandIn, clean_faults: StandIn, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[[Catalog], Api]]:
    """Services over the stand-in; calling the fixture again 'deploys' the app with another catalog."""
    app_environment(monkeypatch, stand_in, "c", azurite)
    built: list[bootstrap.Services] = []

    def deploy(catalog: Catalog) -> Api:
        services = bootstrap.build(load_settings(), catalog=catalog)
        bootstrap.override(services)
        built.append(services)
        return Api(stand_in, services)

    try:
        yield deploy
    finally:
        bootstrap.override(None)
        for services in built:
            await services.close()


def without_role(catalog: Catalog, integration: str, role: str) -> Catalog:
    profiles = {p.id: p for p in catalog}
    profile = profiles[integration]
    profiles[integration] = replace(
        profile,
        permissions=tuple(
            replace(r, roles=tuple(v for v in r.roles if v != role), role_ids={k: v for k, v in r.role_ids.items() if k != role})
            for r in profile.permissions
        ),
    )  # fmt: skip
    return Catalog(profiles)


def without_integration(catalog: Catalog, integration: str) -> Catalog:
    return Catalog({p.id: p for p in catalog if p.id != integration})


async def test_a_role_taken_out_of_a_profile_is_taken_back_by_the_next_put(
    redeploy: Callable[[Catalog], Api], caplog: pytest.LogCaptureFixture
) -> None:
    api = redeploy(load_catalog())
    tenant = api.stand_in.home_tenant_id
    assert (await api.put(tenant, M365)).status_code == 201

    api = redeploy(without_role(load_catalog(), M365, TAKEN_OUT))
    with caplog.at_level(logging.INFO, logger="tenant_onboarding.audit"):
        again = await api.put(tenant, M365)

    assert again.status_code == 200 and "1 permissions beyond the profile revoked" in body_of(again)["changes"]
    state = body_of(await api.get(tenant, M365))
    assert TAKEN_OUT not in [p["permission"] for p in state["permissions"]] and state["drift"] == []
    events = [getattr(r, "audit", {}) for r in caplog.records]
    revoked = [e for e in events if e.get("operation") == "permission.revoked"]
    assert len(revoked) == 1


async def test_a_role_granted_by_hand_beyond_the_profile_is_revoked_by_the_next_put(
    redeploy: Callable[[Catalog], Api],
) -> None:
    api = redeploy(load_catalog())
    tenant = api.stand_in.home_tenant_id
    created = body_of(await api.put(tenant, M365))
    app_id = created["application"]["clientId"]
    # A customer's admin grants the vendor's app one more Graph permission in the portal.
    api.stand_in.admin("POST", f"/tenants/{tenant}/consent", {"appId": app_id, "roles": {GRAPH_APP_ID: ["Mail.Read"]}})
    drift = body_of(await api.get(tenant, M365))["drift"]
    assert "permission granted outside the profile: Mail.Read" in drift

    again = await api.put(tenant, M365)

    assert "1 permissions beyond the profile revoked" in body_of(again)["changes"]
    assert body_of(await api.get(tenant, M365))["drift"] == []


async def test_an_integration_that_left_the_catalog_can_still_be_read_rotated_and_offboarded(
    redeploy: Callable[[Catalog], Api],
) -> None:
    api = redeploy(load_catalog())
    tenant = api.stand_in.home_tenant_id
    created = body_of(await api.put(tenant, "sentinel"))

    api = redeploy(without_integration(load_catalog(), "sentinel"))
    state = await api.get(tenant, "sentinel")
    assert state.status_code == 200
    assert "integration no longer in the catalog: offboard it" in body_of(state)["drift"]

    rotated = await api.call(
        "rotate_now", "POST", f"tenants/{tenant}/integrations/sentinel/rotate",
        {"tenantId": tenant, "integration": "sentinel"},
    )  # fmt: skip
    assert rotated.status_code == 200 and body_of(rotated)["action"] == "rotated", body_of(rotated)
    assert body_of(rotated)["newKeyId"] != created["credential"]["keyId"]

    onboard_again = await api.put(tenant, "sentinel")
    assert onboard_again.status_code == 404  # nothing new is onboarded for it

    offboarded = await api.call(
        "offboard_integration", "DELETE", f"tenants/{tenant}/integrations/sentinel",
        {"tenantId": tenant, "integration": "sentinel"},
    )  # fmt: skip
    assert offboarded.status_code == 200 and body_of(offboarded)["application"] == "deleted"


async def test_an_integration_nobody_ever_registered_is_still_unknown(redeploy: Callable[[Catalog], Api]) -> None:
    api = redeploy(load_catalog())
    missing = await api.get(api.stand_in.home_tenant_id, "never-offered")
    assert missing.status_code == 404 and body_of(missing)["type"].endswith("/unknown-integration")
