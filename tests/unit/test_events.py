"""Which audit events become which events, and how delivery behaves when Event Grid or the outbox fails: never by
failing the change, never by losing an event the outbox took, and loudly when both fail."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.domain.audit import audit, new_correlation_id
from shared.domain.errors import UpstreamError, UpstreamUnavailable
from shared.domain.events import (
    CONSENT_REVOKED,
    CREDENTIAL_CREATED,
    CREDENTIAL_ROTATED,
    POLICY_FORBIDS_CREDENTIAL,
    ROTATION_FAILED,
    Event,
    from_audit,
)
from shared.domain.ports import OutboxItem
from shared.usecases import events as delivery
from shared.usecases.events import EventDelivery
from tests.fakes import TENANT

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
SCHEMAS = {
    f"TenantOnboarding.{path.stem}": json.loads(path.read_text(encoding="utf-8"))
    for path in (Path(__file__).resolve().parents[2] / "schemas" / "events").glob("*.json")
}
CONTEXT = {"tenantId": "11111111-2222-3333-4444-555555555555", "integration": "m365-defender"}


class Topic:
    """Event Grid: takes batches, or fails with `failure` while set."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []
        self.failure: Exception | None = None

    async def publish(self, events: Sequence[Event]) -> None:
        if self.failure is not None:
            raise self.failure
        self.batches.append(list(events))

    @property
    def ids(self) -> list[str]:
        return [e.id for batch in self.batches for e in batch]


class Outbox:
    """A queue: a taken item is hidden until done or until its hiding time passes (`reveal`)."""

    def __init__(self) -> None:
        self.items: list[OutboxItem] = []
        self.hidden: set[tuple[str, str]] = set()
        self.failure: Exception | None = None

    async def put(self, events: Sequence[Event]) -> None:
        if self.failure is not None:
            raise self.failure
        self.items += [OutboxItem(e, (e.id, "receipt"), 0) for e in events]

    async def take(self, limit: int) -> list[OutboxItem]:
        visible = [i for i in self.items if i.receipt not in self.hidden][:limit]
        taken = [OutboxItem(i.event, i.receipt, i.attempts + 1) for i in visible]
        by_receipt = {i.receipt: i for i in taken}
        self.items = [by_receipt.get(i.receipt, i) for i in self.items]
        self.hidden |= set(by_receipt)
        return taken

    def reveal(self) -> None:
        self.hidden.clear()

    async def done(self, items: Sequence[OutboxItem]) -> None:
        gone = {i.receipt for i in items}
        self.items = [i for i in self.items if i.receipt not in gone]


def world() -> tuple[EventDelivery, Topic, Outbox]:
    topic, outbox = Topic(), Outbox()
    return EventDelivery(topic, outbox, "/tenant-onboarding/test", lambda: NOW), topic, outbox


@pytest.mark.parametrize(
    ("operation", "fields", "expected"),
    [
        ("registration.ready", {"credentialType": "secret", "clientId": "c"}, CREDENTIAL_CREATED),
        ("secret.rotated", {"keyId": "k"}, CREDENTIAL_ROTATED),
        ("rotation.failed", {"outcome": "failed", "problemType": "upstream-error"}, ROTATION_FAILED),
        ("rotation.failed", {"outcome": "failed", "problemType": "consent-required"}, CONSENT_REVOKED),
        (
            "rotation.failed",
            {"outcome": "failed", "problemType": "secrets-forbidden-by-policy"},
            POLICY_FORBIDS_CREDENTIAL,
        ),
        ("secret.rotated", {"outcome": "failed", "problemType": "registration-not-found"}, None),
        ("secret.stored", {"secretName": "n"}, None),  # a step, not a change a consumer reads
        ("credential.expired", {"outcome": "found"}, None),  # a finding: an alert's, not an event's
    ],
)
def test_an_audit_event_becomes_the_event_a_consumer_is_told(
    operation: str, fields: dict[str, str], expected: str | None
) -> None:
    event = from_audit({"operation": operation, "outcome": "succeeded", **CONTEXT, **fields}, "/s", NOW)
    assert (event.type if event else None) == expected


def test_an_events_data_holds_only_identifiers_never_another_field() -> None:
    audited = {"operation": "secret.rotated", "outcome": "succeeded", **CONTEXT, "keyId": "k", "secretText": "x"}
    event = from_audit(audited, "/s", NOW)
    assert event is not None and "secretText" not in event.data and event.data["keyId"] == "k"
    assert Event.from_json(event.to_json()) == event


async def test_what_an_invocation_changes_is_published_when_it_ends_even_when_it_fails() -> None:
    events, topic, _ = world()
    new_correlation_id()
    with pytest.raises(RuntimeError):
        async with events.delivering():
            audit("registration.ready", CONTEXT, credentialType="secret", clientId="c")
            raise RuntimeError("the request failed after the change")
    [[created]] = topic.batches
    assert created.type == CREDENTIAL_CREATED and created.subject.endswith("/integrations/m365-defender")


async def test_a_topic_that_is_down_leaves_the_events_in_the_outbox_and_a_later_publish_sends_them_once() -> None:
    events, topic, outbox = world()
    topic.failure = UpstreamUnavailable("down", "eventgrid", 503, None)
    async with events.delivering():
        audit("registration.ready", CONTEXT, credentialType="secret", clientId="c")
    kept = [item.event.id for item in outbox.items]
    assert topic.batches == [] and len(kept) == 1

    topic.failure = None
    async with events.delivering():
        audit("secret.rotated", CONTEXT, keyId="k")
    assert topic.ids[1:] == kept and outbox.items == [], "the kept one follows, with its id, once"


async def test_when_the_outbox_fails_too_the_loss_is_logged_with_the_ids(caplog: pytest.LogCaptureFixture) -> None:
    events, topic, outbox = world()
    topic.failure = UpstreamUnavailable("down", "eventgrid", 503, None)
    outbox.failure = UpstreamUnavailable("down", "storage", 503, None)
    with caplog.at_level(logging.ERROR, logger="shared.usecases.events"):
        async with events.delivering():  # the change itself is not failed
            audit("registration.ready", CONTEXT, credentialType="secret", clientId="c")
    [record] = caplog.records
    assert "events lost" in record.getMessage() and CREDENTIAL_CREATED in record.getMessage()


async def test_an_event_the_topic_refuses_for_good_is_dropped_after_enough_attempts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(delivery, "MAX_ATTEMPTS", 2)
    events, topic, outbox = world()
    topic.failure = UpstreamUnavailable("down", "eventgrid", 503, None)
    async with events.delivering():
        audit("registration.ready", CONTEXT, credentialType="secret", clientId="c")
    topic.failure = UpstreamError("refused", "eventgrid", 400, "BadRequest")
    assert await events.drain() == 0 and len(outbox.items) == 1  # first refusal: kept
    outbox.reveal()  # its hiding time passes
    assert await events.drain() == 0 and outbox.items == []  # refused again: dropped, the outbox not blocked


async def test_without_a_topic_nothing_is_collected_or_sent() -> None:
    events = EventDelivery(None, None, "/s", lambda: NOW)
    async with events.delivering():
        audit("registration.ready", CONTEXT, credentialType="secret", clientId="c")
    assert await events.drain() == 0


async def policy_forbids_secrets() -> None:
    from shared.domain.errors import SecretsForbiddenByPolicy
    from shared.domain.model import PasswordPolicy
    from tests.unit.test_alerts import INTO_THE_WINDOW, advance, onboarded

    h = await onboarded()
    advance(h, INTO_THE_WINDOW)
    h.directory.tenants[TENANT].policy = PasswordPolicy(additions_allowed=False, policy_id="policy-7")
    with pytest.raises(SecretsForbiddenByPolicy):
        await h.rotation.rotate(TENANT, "m365-defender")


async def exchange_step_done() -> None:
    from shared.usecases.remaining_steps import check_steps
    from tests.unit.test_remaining_steps import EXCHANGE_ADMINISTRATOR, GRAPH_SCOPE, SECRET, Roles, with_exchange

    client_id = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
    await check_steps(
        Roles({EXCHANGE_ADMINISTRATOR}), GRAPH_SCOPE, TENANT, with_exchange(), client_id, SECRET, frozenset(), CONTEXT
    )


@pytest.mark.parametrize(
    "situation",
    ["rotation-failed", "consent-revoked", "rotation-stuck", "policy-forbids", "step-done", "rotated-and-retired"],
)
async def test_the_events_each_situation_makes_match_their_schemas(situation: str) -> None:
    from jsonschema import FormatChecker, validate  # type: ignore[import-untyped]  # no stubs in the venv

    from shared.domain.audit import collecting
    from tests.unit.test_alerts import SITUATIONS, onboarded
    from tests.unit.test_rotation import INTO_THE_WINDOW, advance

    async def rotated_and_retired() -> None:
        h = await onboarded()
        advance(h, INTO_THE_WINDOW)
        await h.rotation.rotate(TENANT, "m365-defender", retire_now=True)

    run = {
        **SITUATIONS, "policy-forbids": policy_forbids_secrets, "step-done": exchange_step_done,
        "rotated-and-retired": rotated_and_retired,
    }[situation]  # fmt: skip
    new_correlation_id()
    with collecting() as audited:
        await run()
    made = [e for a in audited if (e := from_audit(a, "/tenant-onboarding/test", NOW)) is not None]
    assert made, f"{situation} made no event"
    for event in made:
        validate(event.to_json(), SCHEMAS[event.type], format_checker=FormatChecker())


class Picky(Topic):
    """Refuses any batch holding the one event it will never take."""

    def __init__(self, refused: str) -> None:
        super().__init__()
        self.refused = refused

    async def publish(self, events: Sequence[Event]) -> None:
        if any(e.id == self.refused for e in events):
            raise UpstreamError("refused", "eventgrid", 400, "BadRequest")
        await super().publish(events)


async def test_one_event_the_topic_refuses_does_not_hold_back_the_others_in_its_batch() -> None:
    outbox = Outbox()
    good = [from_audit({"operation": "secret.rotated", "outcome": "succeeded", **CONTEXT, "keyId": str(n)}, "/s", NOW)
            for n in range(3)]  # fmt: skip
    bad = from_audit({"operation": "secret.rotated", "outcome": "succeeded", **CONTEXT, "keyId": "x"}, "/s", NOW)
    assert bad is not None and all(good)
    await outbox.put([*(e for e in good if e), bad])
    topic = Picky(bad.id)
    events = EventDelivery(topic, outbox, "/s", lambda: NOW)
    assert await events.drain() == 3
    assert [i.event.id for i in outbox.items] == [bad.id]  # kept until its attempts run out
