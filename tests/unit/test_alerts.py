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
from shared.domain.model import Listing
from shared.domain.sweep_state import WorkItem
from shared.usecases.onboarding import OnboardRequest
from tests.fakes import TENANT, RotationHarness, make_rotation
from tests.fakes.sweep_store import QueuedItem
from tests.fakes.sweeping import M365 as FLEET_INTEGRATION
from tests.fakes.sweeping import fleet

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


async def sweep_runs() -> None:
    """What the absence rule counts: a sweep invocation (the bounded sweep the timer runs)."""
    f = await fleet(1)
    await f.passes.run()


async def full_pass_is_late() -> None:
    """A full pass that cannot read Key Vault's listing for longer than SWEEP_FULL_PASS_HOURS + SWEEP_REACH_HOURS."""
    f = await fleet(2, SWEEP_FULL_PASS_HOURS=24, SWEEP_REACH_HOURS=24)
    await f.invoke_until_complete()
    f.clock.advance(days=2, seconds=1)
    f.vault.fail_next("record_page", UpstreamUnavailable("throttled", "keyvault", 429, None))
    with pytest.raises(UpstreamUnavailable):
        await f.passes.run()


async def registration_is_missed() -> None:
    """The due index lost a registration and no pass reached it within SWEEP_REACH_HOURS of its due time."""
    f = await fleet(1)
    f.store.index.clear()
    await f.passes.run()
    f.clock.advance(days=150 + 9)
    await f.invoke_until_complete()


async def work_is_poisoned() -> None:
    """The host moved a work item to the poison queue after every delivery failed."""
    f = await fleet(1)
    name = f.name(f.tenants[0])
    f.store.poison = [QueuedItem(WorkItem(f.tenants[0], FLEET_INTEGRATION, Listing.SECRETS, name, "due"), 0)]
    await f.passes.run()


SITUATIONS: dict[str, Callable[[], Awaitable[None]]] = {
    "rotation-failed": rotation_fails,
    "consent-revoked": consent_is_revoked,
    "rotation-stuck": rotation_is_stuck,
    "credential-expired": credential_expires,
    "sweep-missing": sweep_runs,
    "sweep-behind": full_pass_is_late,
    "registration-overdue": registration_is_missed,
    "rotation-poisoned": work_is_poisoned,
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


async def test_a_failing_invocation_still_counts_for_the_absence_rule_and_completes_no_pass(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The absence rule watches for invocations that do not run at all (a timer not firing, a process killed at the
    function timeout); one that fails says so (stopped=failed), and the late pass is `sweep-behind`'s to report."""
    f = await fleet(1)
    f.vault.fail_next("record_page", UpstreamUnavailable("throttled", "keyvault", 429, None))
    with caplog.at_level(logging.INFO, logger="tenant_onboarding.audit"), pytest.raises(UpstreamUnavailable):
        await f.passes.run()
    operations = [r.__dict__["audit"] for r in caplog.records if r.name == "tenant_onboarding.audit"]
    assert [o["stopped"] for o in operations if o["operation"] == "sweep.ran"] == ["failed"]
    assert not [o for o in operations if o["operation"] == "sweep.completed"]
