"""The alert rules (infra/app/alerts.json) read what the product really emits: each query's event names, the
customDimensions it reads and the values it compares them with, checked against the audit events that rotation
and the sweep emit when each alerted situation happens. Application Insights names an audit event's custom event
`audit.<operation>` with its fields as customDimensions (shared/adapters/telemetry.py), so a renamed operation or
field fails here, not silently in Azure."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.domain.errors import ConsentRequired, UpstreamError, UpstreamUnavailable
from shared.usecases.onboarding import OnboardRequest
from tests.fakes import TENANT, RotationHarness, make_rotation

REPO = Path(__file__).resolve().parents[2]
RULES: list[dict[str, Any]] = json.loads((REPO / "infra" / "app" / "alerts.json").read_text(encoding="utf-8"))
EVENT_NAME = re.compile(r'name == "(audit\.[a-z.]+)"')
DIMENSION = re.compile(r"customDimensions\.(\w+)")
COMPARED = re.compile(r'\b(\w+) (?:==|!=) "([^"]+)"')
M365 = "m365-defender"
INTO_THE_WINDOW = timedelta(days=151)


def advance(h: RotationHarness, delta: timedelta) -> None:
    h.clock.advance(seconds=delta.total_seconds())


class RevokedConsent:
    async def ensure_reachable(self, tenant_id: str) -> None:
        raise ConsentRequired("The tenant no longer consents.", tenantId=tenant_id)

    def ensure_allowed(self, tenant_id: str) -> None:
        return None


async def onboarded(verify_timeout_seconds: float = 60) -> RotationHarness:
    h = make_rotation(VERIFY_TIMEOUT_SECONDS=verify_timeout_seconds)
    await h.onboarding.onboard(OnboardRequest(TENANT, M365))
    return h


async def rotation_fails() -> None:
    h = await onboarded()
    advance(h, INTO_THE_WINDOW)
    h.directory.fail_next("add_password", UpstreamError("refused", "graph", 400, "Request_BadRequest"))
    with pytest.raises(UpstreamError):
        await h.rotation.rotate(TENANT, M365)


async def consent_is_revoked() -> None:
    h = await onboarded()
    h.rotation.access = RevokedConsent()  # type: ignore[assignment]
    with pytest.raises(ConsentRequired):
        await h.rotation.rotate(TENANT, M365, force=True)


async def rotation_is_stuck() -> None:
    h = await onboarded(verify_timeout_seconds=20)
    advance(h, INTO_THE_WINDOW)
    h.checker.not_replicated_for(10**9)
    await h.sweep.run()
    advance(h, timedelta(hours=25))
    await h.sweep.run()


async def credential_expires() -> None:
    h = await onboarded()
    advance(h, timedelta(days=181))
    h.directory.fail_next("add_password", UpstreamError("refused", "graph", 400, "Request_BadRequest"))
    await h.sweep.run()


async def sweep_completes() -> None:
    """What the absence rule counts: a sweep that reaches the end of the listing."""
    h = await onboarded()
    await h.sweep.run()


SITUATIONS: dict[str, Callable[[], Awaitable[None]]] = {
    "rotation-failed": rotation_fails,
    "consent-revoked": consent_is_revoked,
    "rotation-stuck": rotation_is_stuck,
    "credential-expired": credential_expires,
    "sweep-missing": sweep_completes,
}


def test_every_rule_has_a_situation_that_raises_it() -> None:
    assert sorted(rule["name"] for rule in RULES) == sorted(SITUATIONS)


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: str(rule["name"]))
async def test_each_rules_query_reads_events_the_product_emits_when_its_situation_happens(
    rule: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tenant_onboarding.audit"):
        await SITUATIONS[rule["name"]]()
    # As Application Insights holds them: the custom event's name and its customDimensions.
    emitted = [
        (f"audit.{r.__dict__['audit']['operation']}", r.__dict__["audit"])
        for r in caplog.records
        if r.name == "tenant_onboarding.audit"
    ]
    query = rule["query"]
    [name] = EVENT_NAME.findall(query)
    events = [fields for event_name, fields in emitted if event_name == name]
    assert events, f"{rule['name']}: nothing emitted {name}; emitted {sorted({n for n, _ in emitted})}"
    read = set(DIMENSION.findall(query))
    assert read, "a rule reads at least one field of its event"
    assert set(rule["dimensions"]) <= read, "each dimension an alert splits on is one the query extends"
    # A column compared with a literal is a dimension extended from customDimensions; the situation's event
    # must satisfy the comparison (== matches, != differs).
    matching = events
    for column, value in COMPARED.findall(query):
        if column == "name":
            continue
        assert column in read, f"{rule['name']}: compares {column}, which it does not read"
        equal = f'{column} == "{value}"' in query
        matching = [e for e in matching if (str(e.get(column)) == value) == equal]
    assert matching, f"{rule['name']}: no {name} event passes the query's comparisons"
    for fields in matching:
        assert read <= set(fields), f"{rule['name']} reads {sorted(read - set(fields))}, absent from {fields}"


async def test_a_sweep_that_does_not_reach_the_end_of_the_listing_leaves_the_silence_the_absence_rule_sees(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = await onboarded()
    h.vault.fail_next("client_secrets", UpstreamUnavailable("throttled", "keyvault", 429, None))
    with caplog.at_level(logging.INFO, logger="tenant_onboarding.audit"), pytest.raises(UpstreamUnavailable):
        await h.sweep.run()
    assert not [r for r in caplog.records if r.__dict__.get("audit", {}).get("operation") == "sweep.completed"]
