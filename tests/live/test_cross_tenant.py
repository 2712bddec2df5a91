"""Vendor-hosted mode: from the vendor's deployment into customer tenants that consented, and out again.

Needs customer tenants: the stand-in's two, or LIVE_CUSTOMER_TENANT_IDS against a real deployment
whose provisioner app those tenants consented to (README, Deployment modes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.live.target import Target, World, token_scopes


@pytest.fixture(scope="module")
async def customers(target: Target, world: World) -> AsyncIterator[list[str]]:
    if not world.customers:
        pytest.skip(
            "no customer tenants: set LIVE_CUSTOMER_TENANT_IDS to tenants that consented to the deployment's "
            "provisioner app (vendor-hosted mode)"
        )
    if world.credential == "azure-cli":
        pytest.skip(
            "customer tenants are reached by federating the managed identity's token, which `az login` cannot "
            "stand in for: run in process where the identity is, or over HTTP"
        )
    yield world.customers
    assert not await target.cleanup([(tenant, world.integration) for tenant in world.customers])


async def test_each_customer_tenant_has_consented_to_the_provisioner_app(target: Target, customers: list[str]) -> None:
    for tenant in customers:
        answer = await target.request("GET", f"tenants/{tenant}/consent")
        assert answer.status == 200, str(answer)
        assert answer.body["consented"] is True and answer.body["missingRoles"] == [], str(answer)


async def test_onboarding_in_a_customer_tenant_registers_the_app_in_that_tenant(
    target: Target, world: World, customers: list[str]
) -> None:
    roles = await target.catalog_roles(world.integration)
    for tenant in customers:
        answers = await target.onboard(tenant, world.integration)

        assert answers[0].status in (201, 202) and answers[-1].status in (200, 201), str(answers[-1])
        state = answers[-1].body
        assert state["tenantId"] == tenant and state["drift"] == [] and state["credential"]["verified"] is True
        assert {(p["resourceAppId"], p["permission"]) for p in state["permissions"] if p["granted"]} == {
            (app, role) for app, values in roles.items() for role in values
        }
        if world.consumer is None:
            continue  # over HTTP the runner cannot read the vault: the API's word is all there is
        references = state["keyVaultReferences"]
        assert world.consumer.read(references["tenantId"])[0] == tenant
        client_id, _ = world.consumer.read(references["clientId"])
        secret, _ = world.consumer.read(references["clientSecret"])
        for resource, expected in roles.items():
            scope = token_scopes().get(resource, f"{resource}/.default")
            claims = world.consumer.claims(tenant, client_id, secret, scope)
            assert claims is not None, f"Entra refused the stored secret in {tenant}"
            # The token says where the credential lives: the customer's tenant, not the vendor's.
            assert claims["tid"] == tenant and set(claims["roles"]) == expected


async def test_offboarding_a_customer_tenant_leaves_nothing_there(
    target: Target, world: World, customers: list[str]
) -> None:
    for tenant in customers:
        if (tenant, world.integration) not in target.onboarded:
            await target.onboard(tenant, world.integration)

        first = await target.delete(tenant, world.integration)

        assert first.status == 200 and first.body["application"] == "purged", str(first)
        gone = await target.get(tenant, world.integration)
        assert gone.status == 404 and gone.problem == "registration-not-found", str(gone)
        again = await target.delete(tenant, world.integration)
        assert again.status == 200 and again.body["application"] == "absent", str(again)
        assert set(again.body["secrets"].values()) == {"absent"}
