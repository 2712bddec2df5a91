"""Every change in Entra or Key Vault leaves one structured audit event, tied to its request, with no secret."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from shared.adapters.telemetry import managed_identity_client_id
from tests.appinsights import Ingestion, running_ingestion
from tests.functions.conftest import Api, body_of
from tests.functions.test_cli import ENTRA_SECRET_MARK, REPO

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
        "secret.created": 1, "secret.stored": 3, "registration.ready": 1,
    }  # fmt: skip
    assert {e["correlationId"] for e in onboarded} == {"onboard-1"}
    # The new secret is stored twice (staged, then promoted) and its staging secret deleted.
    assert Counter(e["operation"] for e in rotated) == {
        "secret.created": 1, "secret.stored": 2, "secret.deleted": 1, "secret.rotated": 1, "secret.retired": 1,
    }  # fmt: skip
    assert {e["correlationId"] for e in rotated} == {"rotate-1"}
    assert Counter(e["operation"] for e in offboarded) == {
        "application.deleted": 1, "secret.deleted": 3, "registration.offboarded": 1,
    }  # fmt: skip
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


@pytest.fixture
def ingestion() -> Iterator[Ingestion]:
    yield from running_ingestion()


def test_audit_events_reach_application_insights_as_custom_events_with_dimensions(ingestion: Ingestion) -> None:
    # A real process (the CLI, which configures export as function_app does) onboarding through its own
    # stand-in, exporting to a local ingestion endpoint: what arrives is what Application Insights stores.
    done = subprocess.run(
        [sys.executable, "-m", "emulator.local_cli", "onboard", "--integration", "sentinel", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        env=dict(
            os.environ, APPLICATIONINSIGHTS_CONNECTION_STRING=ingestion.connection_string,
            # Statsbeat reports the exporter's own health to a Microsoft endpoint this machine cannot reach.
            APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true",
        ),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    events = ingestion.custom_events()
    assert Counter(e["name"] for e in events) == {
        "audit.application.created": 1, "audit.servicePrincipal.created": 1, "audit.permission.granted": 2,
        "audit.secret.created": 1, "audit.secret.stored": 3, "audit.registration.ready": 1,
    }  # fmt: skip
    for event in events:
        dimensions = event["customDimensions"]
        assert set(dimensions) >= REQUIRED
        assert event["name"] == f"audit.{dimensions['operation']}" and dimensions["outcome"] == "succeeded"
        assert dimensions["tenantId"] == result["tenantId"] and dimensions["integration"] == "sentinel"
    assert len({e["customDimensions"]["correlationId"] for e in events}) == 1  # one CLI run, one correlation id
    created = next(e for e in events if e["name"] == "audit.secret.created")["customDimensions"]
    assert created["keyId"] == result["credential"]["keyId"]
    assert created["appObjectId"] == result["application"]["objectId"]
    assert not any(ENTRA_SECRET_MARK in body.decode() for body in ingestion.raw)


@pytest.mark.parametrize(
    ("authentication", "client_id"),
    [
        (None, None),
        ("", None),
        ("Authorization=AAD;ClientId=4b2c0d6e-0000-4000-8000-000000000001", "4b2c0d6e-0000-4000-8000-000000000001"),
        ("ClientId=abc; Authorization=aad", "abc"),
        ("Authorization=AAD", ""),  # the system-assigned identity
        ("Authorization=Other;ClientId=abc", None),
    ],
)
def test_the_exporter_authenticates_as_the_deployed_setting_says(
    authentication: str | None, client_id: str | None
) -> None:
    assert managed_identity_client_id(authentication) == client_id
