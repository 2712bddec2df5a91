"""Events to the vendor's backend, through the real handlers: each change publishes exactly one CloudEvent to the
Event Grid topic (the stand-in's), valid against its JSON Schema and holding no secret; when Event Grid is down
the change still succeeds, its event waits in the outbox (Azurite's queue) and arrives later with the same id."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs in the venv
import pytest
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from emulator.launcher import StandIn
from shared.adapters import outbox
from shared.domain.events import EVENT_TYPES
from shared.domain.model import SecretKind
from tests.azurite import Azurite, AzuriteQueues, start_azurite_queues
from tests.functions.conftest import Api, app_environment, serving

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = {
    f"TenantOnboarding.{path.stem}": json.loads(path.read_text(encoding="utf-8"))
    for path in (REPO / "schemas" / "events").glob("*.json")
}
EVENT_GRID_DOWN = {"kind": "status", "service": "eventgrid", "status": 503, "retry_after": 0}


@pytest.fixture(scope="module")
def queues() -> Iterator[AzuriteQueues]:
    instance = start_azurite_queues()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
async def api(
    stand_in: StandIn, clean_faults: StandIn, azurite: Azurite, queues: AzuriteQueues, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Api]:
    """The app with events on: the stand-in's topic, and the outbox in Azurite's queue service."""
    app_environment(monkeypatch, stand_in, "v", azurite, EVENT_GRID_TOPIC_ENDPOINT=stand_in.event_grid_endpoint)
    monkeypatch.setenv("AzureWebJobsStorage", queues.connection_string(azurite.blob_endpoint))
    stand_in.admin("DELETE", "/eventgrid/events")
    async with serving(stand_in) as served:
        await drain_outbox(served)  # another test's leftovers are not this one's
        stand_in.admin("DELETE", "/eventgrid/events")
        yield served


async def drain_outbox(api: Api) -> None:
    while await api.services.events.drain():
        pass


def received(api: Api) -> list[dict[str, Any]]:
    """This test's events (its name prefix is in their source)."""
    source = f"/tenant-onboarding/{api.services.settings.name_prefix}"
    return [e for e in api.stand_in.admin("GET", "/eventgrid/events")["value"] if e.get("source") == source]


def types_of(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def valid(event: dict[str, Any]) -> None:
    jsonschema.validate(event, SCHEMAS[event["type"]], format_checker=jsonschema.FormatChecker())


async def rotate(api: Api, tenant: str, integration: str, retire: str = "immediately") -> int:
    response = await api.call(
        "rotate_now", "POST", f"tenants/{tenant}/integrations/{integration}/rotate",
        {"tenantId": tenant, "integration": integration}, json.dumps({"retirePrevious": retire}).encode(),
        {"content-type": "application/json"},
    )  # fmt: skip
    return int(response.status_code)


def test_every_event_type_has_a_schema() -> None:
    assert set(SCHEMAS) == set(EVENT_TYPES)


async def test_each_change_publishes_exactly_one_valid_event_and_none_holds_a_secret(api: Api) -> None:
    tenant = api.stand_in.home_tenant_id
    assert (await api.put(tenant, "m365-defender")).status_code == 201
    assert (await api.put(tenant, "m365-defender")).status_code == 200  # nothing changed: nothing published
    assert types_of(received(api)) == ["TenantOnboarding.CredentialCreated"]

    assert await rotate(api, tenant, "m365-defender") == 200  # rotated, the previous one retired at once
    api.stand_in.set_faults(
        [{"kind": "status", "service": "graph", "method": "POST", "path": "addPassword$", "status": 400, "count": 1}]
    )
    assert await rotate(api, tenant, "m365-defender") >= 400
    api.stand_in.clear_faults()
    offboarded = await api.call(
        "offboard_integration", "DELETE", "x", {"tenantId": tenant, "integration": "m365-defender"}
    )
    assert offboarded.status_code == 200
    await api.call("offboard_integration", "DELETE", "x", {"tenantId": tenant, "integration": "m365-defender"})

    events = received(api)
    assert types_of(events) == [
        "TenantOnboarding.CredentialCreated",
        "TenantOnboarding.CredentialRotated",
        "TenantOnboarding.CredentialRetired",
        "TenantOnboarding.RotationFailed",
        "TenantOnboarding.RegistrationOffboarded",
    ], "one each; the second DELETE found nothing to remove"
    for event in events:
        valid(event)
        assert event["subject"] == f"tenants/{tenant}/integrations/m365-defender"
    assert len({e["id"] for e in events}) == len(events)
    created, rotated, retired, failed, _ = events
    assert (
        rotated["data"]["keyId"] == retired["data"]["keyId"]
        or rotated["data"]["previousKeyId"] == (retired["data"]["keyId"])
    )
    assert created["data"]["credentialType"] == "secret" and failed["data"]["willRetry"] == "true"


async def test_no_event_holds_the_secret_it_reports(api: Api) -> None:
    tenant = api.stand_in.home_tenant_id
    assert (await api.put(tenant, "sentinel")).status_code == 201
    assert await rotate(api, tenant, "sentinel", "afterGracePeriod") == 200
    vault = SecretClient(
        api.stand_in.vault_url, ManagedIdentityCredential(), verify_challenge_resource=False,
        connection_verify=api.stand_in.ca_bundle,
    )  # fmt: skip
    name = api.services.settings.registry.secret_name(tenant, "sentinel", SecretKind.CLIENT_SECRET)
    secrets = [
        vault.get_secret(name, version.version).value
        for version in vault.list_properties_of_secret_versions(name)
        if version.version
    ]
    published = json.dumps(received(api))
    assert len(secrets) == 2 and all(secret and secret not in published for secret in secrets)
    assert all(secret and secret[:8] not in published for secret in secrets)


async def test_a_change_made_while_event_grid_is_down_succeeds_and_its_event_arrives_later_with_the_same_id(
    api: Api,
) -> None:
    tenant = api.stand_in.home_tenant_id
    api.stand_in.set_faults([EVENT_GRID_DOWN])
    assert (await api.put(tenant, "defender-endpoint")).status_code == 201  # the change does not wait on Event Grid
    assert received(api) == []
    api.stand_in.clear_faults()

    # The next invocation that publishes sends what the outbox kept, after its own event.
    assert await rotate(api, tenant, "defender-endpoint") == 200
    first = received(api)
    assert sorted(types_of(first)) == [
        "TenantOnboarding.CredentialCreated", "TenantOnboarding.CredentialRetired", "TenantOnboarding.CredentialRotated",
    ]  # fmt: skip
    for event in first:
        valid(event)
    await drain_outbox(api)
    assert received(api) == first, "each once: the outbox is empty"


async def test_events_a_failed_drain_took_come_back_for_a_later_one(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox, "VISIBILITY_SECONDS", 1)  # how long a taken event stays hidden
    tenant = api.stand_in.home_tenant_id
    api.stand_in.set_faults([EVENT_GRID_DOWN])
    assert (await api.put(tenant, "sentinel")).status_code == 201
    assert await api.services.events.drain() == 0  # Event Grid still down: taken, not sent, not removed
    api.stand_in.clear_faults()
    await asyncio.sleep(1.5)
    assert await api.services.events.drain() == 1  # as the timer's run does
    [event] = received(api)
    assert event["type"] == "TenantOnboarding.CredentialCreated"
