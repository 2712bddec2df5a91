"""Every change in Entra or Key Vault leaves one structured audit event, tied to its request, with no secret."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pytest

from tests.functions.conftest import Api, body_of

REQUIRED = {"operation", "outcome", "correlationId", "tenantId", "integration"}


def events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.__dict__["audit"] for r in caplog.records if r.name == "tenant_onboarding.audit"]


async def test_onboarding_rotation_and_offboarding_are_audited(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    tenant = api.stand_in.home_tenant_id
    params = {"tenantId": tenant, "integration": "sentinel"}
    with caplog.at_level(logging.INFO, logger="tenant_onboarding.audit"):
        created = await api.put(tenant, "sentinel", x_correlation_id="onboard-1")
        onboarded = events(caplog)
        caplog.clear()
        await api.call(
            "rotate_now", "POST", f"tenants/{tenant}/integrations/sentinel/rotate", params,
            b'{"retirePrevious": "immediately"}', {"content-type": "application/json", "x-correlation-id": "rotate-1"},
        )  # fmt: skip
        rotated = events(caplog)
        caplog.clear()
        await api.call("offboard_integration", "DELETE", f"tenants/{tenant}/integrations/sentinel", params)
        offboarded = events(caplog)

    assert created.headers["x-correlation-id"] == "onboard-1"
    assert Counter(e["operation"] for e in onboarded) == {
        "application.created": 1, "servicePrincipal.created": 1, "permission.granted": 2,
        "secret.created": 1, "secret.stored": 3,
    }  # fmt: skip
    assert {e["correlationId"] for e in onboarded} == {"onboard-1"}
    assert Counter(e["operation"] for e in rotated) == {
        "secret.created": 1, "secret.stored": 1, "secret.rotated": 1, "secret.retired": 1,
    }  # fmt: skip
    assert {e["correlationId"] for e in rotated} == {"rotate-1"}
    assert Counter(e["operation"] for e in offboarded) == {"application.deleted": 1, "secret.deleted": 3}
    assert len({e["correlationId"] for e in offboarded}) == 1  # a fresh id when the caller sends none

    app = body_of(created)["application"]
    everything = onboarded + rotated + offboarded
    for event in everything:
        assert set(event) >= REQUIRED and event["outcome"] == "succeeded"
        assert event["tenantId"] == tenant and event["integration"] == "sentinel"
    with_key = [
        e for e in everything
        if e["operation"] in ("secret.created", "secret.rotated", "secret.retired")
        or (e["operation"] == "secret.stored" and str(e["secretName"]).endswith("-client-secret"))
    ]  # fmt: skip
    assert len(with_key) == 6 and all(e["keyId"] for e in with_key)
    assert all(e["appObjectId"] == app["objectId"] for e in everything if "appObjectId" in e)
    # No audit event carries a secret: no value looks like one of Entra's secrets.
    assert not any("Q~" in str(value) for event in everything for value in event.values())
