"""Rotation end to end: the timer, Event Grid and HTTP triggers, real SDKs, the stand-in's clock moved by days."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential, ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from emulator.launcher import StandIn
from tests.azurite import Azurite
from tests.functions.conftest import FUNCTIONS, Api, app_environment, body_of, serving
from tests.functions.queue_host import MAX_DEQUEUE_COUNT, sweep_and_work

GRAPH = "https://graph.microsoft.com/.default"
DAY = 86400


class StandInClock:
    """The service's `now`, following the stand-in's directory clock as tests move it forward."""

    def __init__(self, stand_in: StandIn) -> None:
        self.stand_in = stand_in
        self.offset = timedelta(seconds=float(stand_in.admin("GET", "/clock")["offset_seconds"]))

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        state = self.stand_in.advance_clock(seconds)
        self.offset = timedelta(seconds=float(state["offset_seconds"]))


@pytest.fixture
async def rotating(  # also tests/functions/test_certificates.py's: secrets live 60 days, certificates two months
    clock_stand_in: StandIn, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Api, StandInClock]]:
    stand_in = clock_stand_in
    stand_in.clear_faults()
    app_environment(
        monkeypatch, stand_in, "r", azurite,
        SECRET_LIFETIME_DAYS="60", CERTIFICATE_VALIDITY_MONTHS="2", ROTATION_WINDOW_DAYS="30",
        ROTATION_GRACE_HOURS="48",
    )  # fmt: skip
    clock = StandInClock(stand_in)
    try:
        async with serving(stand_in, now=clock.now) as served:
            yield served, clock
    finally:
        stand_in.clear_faults()


def secret_name(api: Api, integration: str) -> str:
    return f"{api.services.settings.name_prefix}-{api.stand_in.home_tenant_id}-{integration}-client-secret"


def vault(api: Api) -> SecretClient:
    return SecretClient(
        api.stand_in.vault_url, ManagedIdentityCredential(), verify_challenge_resource=False,
        connection_verify=api.stand_in.ca_bundle,
    )  # fmt: skip


def works(api: Api, client_id: str, secret: str) -> bool:
    credential = ClientSecretCredential(
        api.stand_in.home_tenant_id, client_id, secret, authority=api.stand_in.authority,
        disable_instance_discovery=True, connection_verify=api.stand_in.ca_bundle,
    )  # fmt: skip
    try:
        credential.get_token(GRAPH)
        return True
    except ClientAuthenticationError:
        return False


def stored(api: Api, integration: str) -> tuple[str, dict[str, str]]:
    secret = vault(api).get_secret(secret_name(api, integration))
    assert secret.value is not None
    return secret.value, dict(secret.properties.tags or {})


async def sweep() -> None:
    await sweep_and_work()


async def test_a_registration_goes_due_rotated_grace_retired_without_a_gap(rotating: tuple[Api, StandInClock]) -> None:
    api, clock = rotating
    created = body_of(await api.put(api.stand_in.home_tenant_id, "sentinel"))
    client_id = created["application"]["clientId"]
    first, first_tags = stored(api, "sentinel")
    assert works(api, client_id, first)

    await sweep()  # not due yet: nothing changes
    assert stored(api, "sentinel")[1]["key-id"] == first_tags["key-id"]

    clock.advance(31 * DAY)  # 29 days left: inside the 30-day window
    assert works(api, client_id, stored(api, "sentinel")[0])
    await sweep()
    second, second_tags = stored(api, "sentinel")
    assert second_tags["key-id"] != first_tags["key-id"]
    assert second_tags["previous-key-id"] == first_tags["key-id"]
    assert works(api, client_id, second) and works(api, client_id, first)  # both live during the grace period

    clock.advance(47 * 3600)
    await sweep()
    assert works(api, client_id, first), "retired before the grace period ended"
    assert works(api, client_id, stored(api, "sentinel")[0])

    clock.advance(2 * 3600)
    await sweep()
    assert not works(api, client_id, first), "the previous secret outlived its grace period"
    assert works(api, client_id, stored(api, "sentinel")[0])
    [app] = api.apps()
    assert app["passwordKeyIds"] == [second_tags["key-id"]]
    assert "retire-after" not in stored(api, "sentinel")[1]


async def test_the_timer_logs_one_sweep_summary_with_structured_fields(
    rotating: tuple[Api, StandInClock], caplog: pytest.LogCaptureFixture
) -> None:
    """Application Insights gets the sweep's figures as customDimensions (`rotation_summary`), not only text."""
    api, clock = rotating
    body_of(await api.put(api.stand_in.home_tenant_id, "sentinel"))
    clock.advance(31 * DAY)
    with caplog.at_level(logging.INFO, logger="shared.entrypoints.rotation_api"):
        await sweep()
    [record] = [r for r in caplog.records if r.getMessage().startswith("rotation sweep:")]
    summary = record.__dict__["rotation_summary"]
    # The due index found it (filed when onboarding stored the secret); the full pass, its first, found it again and
    # queued it no second time.
    assert summary["dueEntries"] == 1 and summary["enqueued"] == {"due": 1}, summary
    assert summary["completed"] and summary["scanned"] >= 1 and summary["poisoned"] == 0
    [worked] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("queued due of")]
    assert "sentinel: rotated" in worked


async def test_a_new_secret_entra_takes_minutes_to_accept_is_staged_and_promoted_by_the_next_sweep(
    rotating: tuple[Api, StandInClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entra's lag for a new secret can outlast VERIFY_TIMEOUT_SECONDS (the stand-in's `password` lag here): the
    sweep leaves it staged in Key Vault, consumers keep the old secret, and the next sweep promotes the same one."""
    api, clock = rotating
    created = body_of(await api.put(api.stand_in.home_tenant_id, "sentinel"))
    client_id = created["application"]["clientId"]
    first, first_tags = stored(api, "sentinel")
    credentials = api.services.rotation.credentials
    monkeypatch.setattr(credentials, "settings", dataclasses.replace(credentials.settings, verify_timeout_seconds=0.5))
    clock.advance(31 * DAY)
    api.stand_in.set_faults(password=2500)  # stamped on the new secret when it is minted
    try:
        await sweep()
    finally:
        api.stand_in.clear_faults()

    pending, pending_tags = stored(api, "sentinel")
    assert pending == first and pending_tags["key-id"] == first_tags["key-id"]  # consumers keep the old one
    staged_key = pending_tags["staged"]
    staging = vault(api).get_secret(f"{secret_name(api, 'sentinel')}-staged")
    assert staging.properties.tags and staging.properties.tags["key-id"] == staged_key
    [app] = api.apps()
    assert set(app["passwordKeyIds"]) == {first_tags["key-id"], staged_key}

    await asyncio.sleep(2.6)  # the stand-in's lag, measured on its monotonic clock, runs out
    await sweep()
    second, second_tags = stored(api, "sentinel")
    assert second_tags["key-id"] == staged_key and "staged" not in second_tags
    assert works(api, client_id, second) and works(api, client_id, first)  # both live through the grace period
    assert [s.name for s in vault(api).list_properties_of_secrets() if (s.name or "").endswith("-staged")] == []


async def test_an_expired_credential_is_rotated_at_once(rotating: tuple[Api, StandInClock]) -> None:
    api, clock = rotating
    created = body_of(await api.put(api.stand_in.home_tenant_id, "sentinel"))
    clock.advance(61 * DAY)
    assert not works(api, created["application"]["clientId"], stored(api, "sentinel")[0])
    await sweep()
    assert works(api, created["application"]["clientId"], stored(api, "sentinel")[0])


def near_expiry(
    api: Api, name: str, vault_name: str = "127.0.0.1", event_type: str = "Microsoft.KeyVault.SecretNearExpiry"
) -> func.EventGridEvent:
    return func.EventGridEvent(
        id=str(uuid.uuid4()), topic="/subscriptions/x/resourceGroups/y/providers/Microsoft.KeyVault/vaults/z",
        subject=name, event_type=event_type, event_time=None, data_version="1",
        # Key Vault's payload casing varies between schemas; mixed on purpose.
        data={"Id": f"{api.stand_in.vault_url}/secrets/{name}/abc", "vaultName": vault_name, "ObjectType": "Secret",
              "objectName": name, "Version": "abc", "NBF": None, "EXP": 0},
    )  # fmt: skip


async def test_near_expiry_event_rotates_only_our_secrets(rotating: tuple[Api, StandInClock]) -> None:
    api, clock = rotating
    await api.put(api.stand_in.home_tenant_id, "sentinel")
    before = stored(api, "sentinel")[1]["key-id"]
    clock.advance(31 * DAY)
    for ignored in (
        near_expiry(api, "someone-elses-secret"),
        near_expiry(api, secret_name(api, "sentinel"), vault_name="another-vault"),
        near_expiry(api, secret_name(api, "sentinel"), event_type="Microsoft.KeyVault.SecretNewVersionCreated"),
        # The registration's client id secret: ours, but not a credential that expires.
        near_expiry(api, secret_name(api, "sentinel").removesuffix("-client-secret") + "-client-id"),
    ):
        await FUNCTIONS["secret_near_expiry"](ignored)
    assert stored(api, "sentinel")[1]["key-id"] == before

    await FUNCTIONS["secret_near_expiry"](near_expiry(api, secret_name(api, "sentinel")))
    assert stored(api, "sentinel")[1]["key-id"] != before


async def test_on_demand_rotation_can_retire_the_leaked_secret_at_once(rotating: tuple[Api, StandInClock]) -> None:
    api, _ = rotating
    tenant = api.stand_in.home_tenant_id
    created = body_of(await api.put(tenant, "sentinel"))
    leaked, _ = stored(api, "sentinel")
    response = await api.call(
        "rotate_now", "POST", f"tenants/{tenant}/integrations/sentinel/rotate",
        {"tenantId": tenant, "integration": "sentinel"}, b'{"retirePrevious": "immediately"}',
        {"content-type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 200, body_of(response)
    result = body_of(response)
    assert result["action"] == "rotated" and result["retiredKeyIds"] == [created["credential"]["keyId"]]
    assert not works(api, created["application"]["clientId"], leaked)
    assert works(api, created["application"]["clientId"], stored(api, "sentinel")[0])


async def test_concurrent_timer_and_event_make_one_new_credential(rotating: tuple[Api, StandInClock]) -> None:
    api, clock = rotating
    await api.put(api.stand_in.home_tenant_id, "sentinel")
    clock.advance(31 * DAY)
    await asyncio.gather(
        sweep(), FUNCTIONS["secret_near_expiry"](near_expiry(api, secret_name(api, "sentinel"))), sweep()
    )
    [app] = api.apps()
    assert len(app["passwordKeyIds"]) == 2  # the original (in grace) and exactly one new one
    versions = api.stand_in.state()["vault"]["secrets"][secret_name(api, "sentinel")]["versions"]
    assert len(versions) == 2


async def test_a_failed_store_rolls_the_new_secret_back_is_poisoned_reported_and_the_sweep_rotates_after_backoff(
    rotating: tuple[Api, StandInClock], caplog: pytest.LogCaptureFixture
) -> None:
    api, clock = rotating
    created = body_of(await api.put(api.stand_in.home_tenant_id, "sentinel"))
    clock.advance(31 * DAY)
    api.stand_in.set_faults(
        [{"kind": "status", "service": "vault", "method": "PUT", "path": "client-secret", "status": 400, "count": 1000}]
    )
    await sweep()  # every delivery fails alike: after maxDequeueCount the host moves the work item to the poison queue
    [app] = api.apps()
    assert app["passwordKeyIds"] == [created["credential"]["keyId"]]  # nothing half-made left behind
    assert "pending" not in stored(api, "sentinel")[1]
    # Each delivery failed: as many failures in a row as the host's maxDequeueCount.
    assert stored(api, "sentinel")[1]["last-problem"].split()[2] == str(MAX_DEQUEUE_COUNT)
    api.stand_in.clear_faults()
    with caplog.at_level(logging.INFO, logger="tenant_onboarding.audit"):
        await sweep()  # inside the backoff: reported, not retried
    assert stored(api, "sentinel")[1]["key-id"] == created["credential"]["keyId"]
    poisoned = [
        r.__dict__["audit"]
        for r in caplog.records
        if r.__dict__.get("audit", {}).get("operation") == "rotation.poisoned"
    ]
    assert [(p["integration"], p["reason"]) for p in poisoned] == [("sentinel", "due")]
    clock.advance(5 * 3600)  # past the backoff of those failures in a row (15 min, doubled with each)
    await sweep()
    assert stored(api, "sentinel")[1]["key-id"] != created["credential"]["keyId"]
    assert works(api, created["application"]["clientId"], stored(api, "sentinel")[0])
