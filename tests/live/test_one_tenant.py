"""One integration in one tenant, through its whole life: onboard, read, use, rotate, offboard.

The tests run in file order on one registration (module-scoped); each makes sure it exists first, so
any one of them also runs alone (`-k rotate`). The registration asks for the shortest secret lifetime
the API accepts (1 day), so what is rotated is a short-lived secret.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.live.target import REFERENCE, SHORTEST_LIFETIME_DAYS, Answer, Consumer, Target, World, token_scopes


@dataclass
class Registration:
    target: Target
    tenant: str
    integration: str
    answers: list[Answer]  # the PUTs that onboarded it, first to last
    gone: bool = False

    async def ensure(self) -> Registration:
        if self.gone:
            self.answers, self.gone = await self.target.onboard(self.tenant, self.integration), False
        return self

    async def state(self) -> dict[str, Any]:
        answer = await self.target.get(self.tenant, self.integration)
        assert answer.status == 200, str(answer)
        body: dict[str, Any] = answer.body
        return body


@pytest.fixture(scope="module")
async def registration(target: Target, world: World) -> AsyncIterator[Registration]:
    made = Registration(target, world.tenant, world.integration, [])
    made.answers = await target.onboard(world.tenant, world.integration)
    yield made
    assert not await target.cleanup([(world.tenant, world.integration)])


@pytest.fixture
async def onboarded(registration: Registration) -> Registration:
    return await registration.ensure()


def consumer_of(world: World) -> Consumer:
    if world.consumer is None:
        pytest.skip("reading a stored secret needs the vault: run this check with LIVE_TARGET=in-process")
    return world.consumer


async def a_scope(target: Target, integration: str) -> str:
    """A token scope of one of the integration's resource APIs: enough to ask whether a secret still works."""
    [resource, *_] = await target.catalog_roles(integration)
    return token_scopes().get(resource, f"{resource}/.default")


def expires(credential: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(credential["expires"]).replace("Z", "+00:00"))


async def test_onboarding_answers_201_and_an_identical_put_then_changes_nothing(
    onboarded: Registration, target: Target
) -> None:
    first, last = onboarded.answers[0], onboarded.answers[-1]
    # 201 when this PUT registered the app; 202 (Retry-After) while Entra replicates, then the same PUT
    # again until it answers 200.
    assert first.status in (201, 202), str(first)
    assert first.status != 201 or first.headers["location"].endswith(
        target.path(onboarded.tenant, onboarded.integration)
    )
    assert last.status in (200, 201) and last.body["outcome"] in ("created", "updated"), str(last)

    again = await target.put(onboarded.tenant, onboarded.integration)

    assert again.status == 200, str(again)
    assert again.body["outcome"] == "complete" and again.body["changes"] == []
    assert again.body["application"] == last.body["application"]
    assert again.body["credential"]["keyId"] == last.body["credential"]["keyId"]
    assert again.body["application"]["displayName"] == target.run.display_name(onboarded.integration)
    assert again.body["uniqueName"].endswith(f"-{onboarded.integration}")


async def test_status_shows_every_permission_granted_a_verified_credential_and_no_drift(
    onboarded: Registration, target: Target, world: World
) -> None:
    state = await onboarded.state()

    roles = await target.catalog_roles(onboarded.integration)
    granted = {(p["resourceAppId"], p["permission"]) for p in state["permissions"] if p["granted"]}
    assert granted == {(app, role) for app, values in roles.items() for role in values}
    assert state["credential"]["verified"] is True and state["drift"] == []
    # The shortest lifetime asked for is the one issued (lifetimes follow Entra's clock: allow its skew).
    lifetime = expires(state["credential"]) - datetime.now(UTC)
    assert timedelta(days=SHORTEST_LIFETIME_DAYS) - timedelta(hours=1) < lifetime <= timedelta(days=1, minutes=5)
    references = state["keyVaultReferences"]
    assert set(references) == {"clientId", "tenantId", "clientSecret"}
    assert all(REFERENCE.fullmatch(str(ref)) for ref in references.values()), references  # versionless
    if world.consumer is not None:  # and the value behind the reference is in no answer this run got
        secret, _ = world.consumer.read(references["clientSecret"])
        assert not any(secret in answer.text for answer in target.answers)


async def test_the_stored_secret_gets_a_token_holding_the_profiles_roles_in_this_tenant(
    onboarded: Registration, target: Target, world: World
) -> None:
    consumer = consumer_of(world)
    references = (await onboarded.state())["keyVaultReferences"]
    client_id, _ = consumer.read(references["clientId"])
    tenant_id, _ = consumer.read(references["tenantId"])
    secret, tags = consumer.read(references["clientSecret"])
    assert tenant_id == onboarded.tenant and tags["verified"] == "true"

    scopes = token_scopes()
    for resource, roles in (await target.catalog_roles(onboarded.integration)).items():
        claims = consumer.claims(tenant_id, client_id, secret, scopes.get(resource, f"{resource}/.default"))
        assert claims is not None, f"Entra refused the stored secret for {resource}"
        assert claims["tid"] == onboarded.tenant and claims["appid"] == client_id
        assert set(claims["roles"]) == roles


async def test_rotating_on_demand_issues_a_new_credential_and_keeps_the_old_one_through_the_grace_period(
    onboarded: Registration, target: Target, world: World
) -> None:
    before = await onboarded.state()
    old_key = before["credential"]["keyId"]
    reference = before["keyVaultReferences"]["clientSecret"]
    if world.consumer is not None:
        old_secret, _ = world.consumer.read(reference)
        versions = world.consumer.versions(reference)

    rotated = await target.rotate(onboarded.tenant, onboarded.integration)

    assert rotated.status == 200, str(rotated)
    assert rotated.body["action"] == "rotated" and rotated.body["newKeyId"] not in (None, old_key)
    assert rotated.body["retiredKeyIds"] == []  # assumes ROTATION_GRACE_HOURS > 0 (48 by default)
    after = await onboarded.state()
    assert after["credential"]["keyId"] == rotated.body["newKeyId"]  # Key Vault's latest version is the new one
    assert after["credential"]["verified"] is True and after["drift"] == []
    assert after["credential"]["otherCredentialsOnApp"] == before["credential"]["otherCredentialsOnApp"] + 1
    if world.consumer is not None:
        new_secret, tags = world.consumer.read(reference)
        assert new_secret != old_secret and world.consumer.versions(reference) == versions + 1
        assert tags["key-id"] == rotated.body["newKeyId"] and tags["previous-key-id"] == old_key
        client_id, scope = after["application"]["clientId"], await a_scope(target, onboarded.integration)
        assert world.consumer.claims(onboarded.tenant, client_id, new_secret, scope) is not None
        assert world.consumer.claims(onboarded.tenant, client_id, old_secret, scope) is not None  # no gap


async def test_the_fleet_view_lists_the_registration_as_key_vault_records_it(
    onboarded: Registration, target: Target
) -> None:
    """GET /api/registrations, every page for this tenant: the registration once, healthy (or in its grace
    period after the rotation above), its expiry the one status reports."""
    state = await onboarded.state()
    rows: list[dict[str, Any]] = []
    token: str | None = None
    for _ in range(10_000):
        query = f"registrations?tenantId={onboarded.tenant}" + (f"&continuationToken={token}" if token else "")
        page = await target.request("GET", query)
        assert page.status == 200, str(page)
        rows += [r for r in page.body["registrations"] if r["integration"] == onboarded.integration]
        if (token := page.body["continuationToken"]) is None:
            break
    [row] = rows
    assert row["state"] in ("healthy", "in-grace") and row["verified"] is True and row["lastProblem"] is None
    assert row["clientId"] == state["application"]["clientId"] and row["expires"] == state["credential"]["expires"]


async def test_rotating_after_a_leak_retires_the_previous_credentials_at_once(
    onboarded: Registration, target: Target, world: World
) -> None:
    before = await onboarded.state()
    old_key = before["credential"]["keyId"]
    reference = before["keyVaultReferences"]["clientSecret"]
    old_secret = world.consumer.read(reference)[0] if world.consumer is not None else None

    rotated = await target.rotate(onboarded.tenant, onboarded.integration, retire_previous="immediately")

    assert rotated.status == 200, str(rotated)
    assert rotated.body["action"] == "rotated" and old_key in rotated.body["retiredKeyIds"]
    after = await onboarded.state()
    assert after["credential"]["keyId"] == rotated.body["newKeyId"] and after["credential"]["verified"] is True
    assert after["credential"]["otherCredentialsOnApp"] == 0 and after["drift"] == []
    if world.consumer is not None and old_secret is not None:
        client_id, scope = after["application"]["clientId"], await a_scope(target, onboarded.integration)
        new_secret, _ = world.consumer.read(reference)
        assert world.consumer.claims(onboarded.tenant, client_id, new_secret, scope) is not None
        assert world.consumer.refused(onboarded.tenant, client_id, old_secret, scope, world.settle_seconds)


async def test_a_rotated_secret_keeps_the_short_lifetime_the_caller_asked_for(
    onboarded: Registration, target: Target
) -> None:
    rotated = await target.rotate(onboarded.tenant, onboarded.integration)
    assert rotated.status == 200, str(rotated)
    lifetime = expires((await onboarded.state())["credential"]) - datetime.now(UTC)
    assert lifetime <= timedelta(days=SHORTEST_LIFETIME_DAYS, minutes=5), f"the rotated secret lives {lifetime}"


async def test_offboarding_removes_the_app_and_its_secrets_and_a_second_delete_reports_absent(
    onboarded: Registration, target: Target, world: World
) -> None:
    before = await onboarded.state()
    secret = world.consumer.read(before["keyVaultReferences"]["clientSecret"])[0] if world.consumer else None

    first = await target.delete(onboarded.tenant, onboarded.integration)

    assert first.status == 200, str(first)
    onboarded.gone = True
    assert first.body["application"] == "purged"  # deleted, then purged from deleted items
    removed = "purged" if world.purge_secrets else "deleted"  # soft-deleted where purge protection is on
    assert len(first.body["secrets"]) == 3 and set(first.body["secrets"].values()) == {removed}
    status = await target.get(onboarded.tenant, onboarded.integration)
    assert status.status == 404 and status.problem == "registration-not-found", str(status)

    again = await target.delete(onboarded.tenant, onboarded.integration)

    assert again.status == 200, str(again)
    assert again.body["application"] == "absent" and set(again.body["secrets"].values()) == {"absent"}
    if world.consumer is not None and secret is not None:
        client_id, scope = before["application"]["clientId"], await a_scope(target, onboarded.integration)
        assert world.consumer.refused(onboarded.tenant, client_id, secret, scope, world.settle_seconds)
