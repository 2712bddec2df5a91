"""Key Vault's near-expiry events: only a failure that may pass asks Event Grid to deliver the event again.

Event Grid redelivers an event whose handler fails, up to 30 times over 24 hours
(https://learn.microsoft.com/azure/event-grid/delivery-and-retry). An event about a registration
that no longer exists, or a tenant that withdrew consent, fails the same way every time.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import azure.functions as func
import pytest

from shared.domain.errors import UpstreamUnavailable
from shared.entrypoints.rotation_api import vault_name
from tests.functions.conftest import FABRIKAM, FUNCTIONS, Api


def near_expiry(api: Api, tenant: str, integration: str) -> func.EventGridEvent:
    name = f"{api.services.settings.name_prefix}-{tenant}-{integration}-client-secret"
    return func.EventGridEvent(
        id=str(uuid.uuid4()), topic="/subscriptions/x/resourceGroups/y/providers/Microsoft.KeyVault/vaults/z",
        subject=name, event_type="Microsoft.KeyVault.SecretNearExpiry", event_time=None, data_version="1",
        data={"Id": f"{api.stand_in.vault_url}/secrets/{name}/abc", "VaultName": vault_name(api.stand_in.vault_url),
              "ObjectType": "Secret", "ObjectName": name, "Version": "abc", "NBF": None, "EXP": 0},
    )  # fmt: skip


def audited(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.__dict__["audit"] for r in caplog.records if r.name == "tenant_onboarding.audit"]


async def test_an_event_for_a_registration_that_is_gone_is_audited_and_not_redelivered(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = api.stand_in.home_tenant_id  # nothing onboarded under this test's prefix: registration-not-found
    event = near_expiry(api, tenant, "sentinel")
    with caplog.at_level(logging.INFO):
        await FUNCTIONS["secret_near_expiry"](event)  # returns: the invocation succeeds, so no redelivery
    [record] = audited(caplog)
    assert record["operation"] == "secret.rotated" and record["outcome"] == "failed"
    assert record["problemType"] == "registration-not-found" and record["correlationId"] == event.id
    assert record["tenantId"] == tenant and record["integration"] == "sentinel"
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name == "shared.entrypoints.rotation_api"
    ]
    assert any("registration-not-found" in message for message in warnings)


async def test_an_event_for_a_tenant_that_withdrew_consent_is_not_redelivered(
    vendor: tuple[Api, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    api, _, _ = vendor
    with caplog.at_level(logging.INFO, logger="tenant_onboarding.audit"):
        await FUNCTIONS["secret_near_expiry"](near_expiry(api, FABRIKAM, "sentinel"))
    # Once: nothing is registered there, so rotation records and audits nothing, and the trigger says it.
    [record] = audited(caplog)
    assert record["operation"] == "secret.rotated" and record["outcome"] == "failed"
    assert record["problemType"] == "consent-required" and record["correlationId"]


async def test_an_event_met_by_an_unavailable_key_vault_is_redelivered(api: Api) -> None:
    tenant = api.stand_in.home_tenant_id
    assert (await api.put(tenant, "sentinel")).status_code == 201
    api.stand_in.set_faults(
        [{"kind": "status", "service": "vault", "method": "GET", "path": "client-secret", "status": 503, "count": 100}]
    )
    with pytest.raises(UpstreamUnavailable):  # the invocation fails: Event Grid delivers the event again
        await FUNCTIONS["secret_near_expiry"](near_expiry(api, tenant, "sentinel"))
