"""The rotation sweep: every registration this deployment manages, read from Key Vault's listing, planned
from tags alone (no secret is read to plan), and rotated or retired where due, with bounded
concurrency and a fleet-wide pace. One failing tenant never stops the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.domain.audit import audit
from shared.domain.errors import OnboardingError, request_ids_text
from shared.domain.model import SecretSummary
from shared.domain.ports import Vault
from shared.domain.registry import ProblemRecord, Tag, iso, parse_iso
from shared.domain.retry import Clock
from shared.domain.sweep_state import EPOCH
from shared.settings import Settings
from shared.usecases.rotation import Action, Rotation, rotation_window

logger = logging.getLogger(__name__)
RETRY_FIRST, RETRY_MOST = timedelta(minutes=15), timedelta(hours=24)


@dataclass(frozen=True)
class PlannedItem:
    """What the sweep will do for one registration, decided from Key Vault tags alone."""

    tenant_id: str
    integration: str
    secret: str
    reason: str  # due | expired | retire | waiting | journal | retry | ok
    expires: datetime | None

    @property
    def needs_action(self) -> bool:
        return self.reason in ("due", "expired", "retire", "journal", "retry")


@dataclass
class SweepSummary:
    scanned: int = 0
    planned: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    failures_by_tenant: Counter[str] = field(default_factory=Counter)
    expired: int = 0


class Sweep:
    def __init__(
        self, settings: Settings, rotation: Rotation, vault: Vault, clock: Clock, now: Callable[[], datetime]
    ) -> None:
        self.settings = settings
        self.rotation = rotation
        self.vault = vault
        self.clock = clock
        self.now = now

    def classify(self, summary: SecretSummary) -> PlannedItem:
        tags = summary.tags
        return PlannedItem(
            str(tags.get(Tag.TENANT_ID, "")),
            str(tags.get(Tag.INTEGRATION, "")),
            summary.name,
            plan_reason(self.settings, summary, self.now()),
            summary.expires,
        )

    async def plan(self) -> AsyncIterator[PlannedItem]:
        async for summary in self.vault.client_secrets():
            yield self.classify(summary)
        # Client certificates are listed apart (Key Vault lists certificates and secrets separately); a
        # registration switched from a secret has both until the secret's grace period ends.
        async for summary in self.vault.client_certificates():
            yield self.classify(summary)

    async def run(self, dry_run: bool = False, on_item: Callable[[PlannedItem], None] | None = None) -> SweepSummary:
        """Plan from the listing, act on what needs it with bounded concurrency; what happened, counted."""
        summary = SweepSummary()
        queue: asyncio.Queue[PlannedItem | None] = asyncio.Queue(maxsize=self.settings.rotation_concurrency * 2)

        pace = Pacer(self.settings.rotation_rate_per_second, self.clock)

        async def worker() -> None:
            while (item := await queue.get()) is not None:
                await pace.next_start()
                await self._sweep_one(item, summary)

        workers = [asyncio.create_task(worker()) for _ in range(self.settings.rotation_concurrency)]
        started = self.clock.monotonic()
        try:
            async for item in self.plan():
                summary.scanned += 1
                summary.planned[item.reason] += 1
                # Counted apart from the plan's reason: a rotation staged earlier is planned as `journal`.
                if item.expires is None or item.expires <= self.now():
                    summary.expired += 1
                    # Each run that finds it so says so (an alert rule in infra/app/alerts.json watches for it).
                    audit(
                        "credential.expired", {"tenantId": item.tenant_id, "integration": item.integration},
                        outcome="found", secretName=item.secret, expires=iso(item.expires) if item.expires else "never",
                    )  # fmt: skip
                if on_item is not None:
                    on_item(item)
                if item.needs_action and not dry_run:
                    await queue.put(item)  # bounded: memory stays flat however large the vault
        finally:
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
        if not dry_run:
            # Only a pass that reached the end of the listing says so: a run cut off by the function timeout, a
            # crash or a failed listing leaves a silence, which the `sweep-missing` alert rule watches for.
            audit(
                "sweep.completed", {}, scanned=str(summary.scanned), expiredFound=str(summary.expired),
                failures=str(sum(summary.failures_by_tenant.values())),
                seconds=f"{self.clock.monotonic() - started:.1f}",
            )  # fmt: skip
        return summary  # reported by the caller: the timer logs it, the CLI prints it

    async def _sweep_one(self, item: PlannedItem, summary: SweepSummary) -> None:
        try:
            # A sweep never waits on a busy registration: whoever holds it is doing this work.
            result = await self.rotation.rotate(item.tenant_id, item.integration, wait_seconds=0)
            summary.outcomes[result.action.value] += 1
            if result.action in (Action.FAILED, Action.APP_MISSING):
                summary.failures_by_tenant[item.tenant_id] += 1
        except OnboardingError as error:
            summary.outcomes[Action.FAILED.value] += 1
            summary.failures_by_tenant[item.tenant_id] += 1
            logger.warning(
                "rotation of %s/%s failed: %s %s (%s)", item.tenant_id, item.integration, error.problem_type,
                error.detail, request_ids_text(error.upstream_request_ids),
            )  # fmt: skip
        except Exception:
            summary.outcomes[Action.FAILED.value] += 1
            summary.failures_by_tenant[item.tenant_id] += 1
            logger.exception("rotation of %s/%s failed unexpectedly", item.tenant_id, item.integration)


def plan_reason(settings: Settings, summary: SecretSummary, now: datetime) -> str:
    """What a credential's listed record says is to do: journal (a rotation to finish), expired, due, retire (a
    previous credential's grace is over), waiting (it is not yet), retry (the last rotation failed), or ok."""
    tags = summary.tags
    if tags.get(Tag.PENDING) or tags.get(Tag.STAGED):
        return "journal"
    if summary.expires is None or summary.expires <= now:
        return "expired"
    if summary.expires - now <= rotation_window(
        settings, summary.expires - (parse_iso(tags.get(Tag.ISSUED_AT)) or EPOCH)
    ):
        return "due"
    if (retire_after := parse_iso(tags.get(Tag.RETIRE_AFTER))) is not None:
        return "retire" if retire_after <= now else "waiting"
    if tags.get(Tag.LAST_PROBLEM):
        return "retry"  # the last rotation failed (an on-demand one, say): run it again, which sheds the record if all is well
    return "ok"


def next_action_at(settings: Settings, tags: Mapping[str, str], expires: datetime | None) -> datetime:
    """When a credential record next needs the sweep (what the due index files it under). A failed rotation's retry
    (`retry_at`) comes first, whatever is due meanwhile; otherwise at once (EPOCH) for a rotation to finish or no
    expiry, else the earlier of its rotation (expiry minus the rotation window) and its previous credential's
    retirement. From that moment on `decide` acts on the record, and not before (tests/unit/test_sweep_passes.py)."""
    if (problem := ProblemRecord.parse(tags.get(Tag.LAST_PROBLEM))) is not None:
        return retry_at(problem)
    if tags.get(Tag.PENDING) or tags.get(Tag.STAGED) or expires is None:
        return EPOCH
    rotate_at = expires - rotation_window(settings, expires - (parse_iso(tags.get(Tag.ISSUED_AT)) or EPOCH))
    if (retire_after := parse_iso(tags.get(Tag.RETIRE_AFTER))) is not None:
        return min(rotate_at, retire_after)
    return rotate_at


def retry_at(problem: ProblemRecord) -> datetime:
    """When a registration whose rotation failed is tried again: 15 minutes after the failure, doubling with each
    failure in a row up to a day (five failed deliveries of a work item: four hours), so a tenant that withdrew consent
    is not retried, and alerted on, every few minutes."""
    if problem.at is None:
        return EPOCH
    doublings: int = min(max(problem.failures - 1, 0), 8)
    return problem.at + min(RETRY_MOST, RETRY_FIRST * (1 << doublings))


@dataclass(frozen=True)
class Decision:
    """What the bounded sweep does with a record now: `act` on it for `reason`, and look at it again at `at`."""

    reason: str
    at: datetime
    act: bool


NEEDS_ACTION = frozenset({"due", "expired", "retire", "journal", "retry"})


def decide(settings: Settings, summary: SecretSummary, now: datetime) -> Decision:
    """`plan_reason`, with a failed rotation's backoff: a registration whose last rotation failed is tried again at
    its `retry_at`, not at every invocation (the in-process sweep runs every few hours, the bounded one every few
    minutes); then whatever is due is done, or, when nothing is, the rotation runs to shed the record."""
    reason = plan_reason(settings, summary, now)
    at = next_action_at(settings, summary.tags, summary.expires)
    if summary.tags.get(Tag.LAST_PROBLEM):
        act = at <= now
        return Decision(reason if reason in NEEDS_ACTION or not act else "retry", at, act)
    return Decision(reason, at, reason in NEEDS_ACTION)


class Pacer:
    """Spreads a sweep's rotations at most `rate` a second, however many workers wait.

    When many registrations fall due at once, workers alone would start rotations as fast as round
    trips allow (8 workers: ~50 a second), past Graph's 3,000 writes per 150 s per app and tenant
    (20 a second; a rotation writes once or twice) and Key Vault's 300 secret creates per 10 s per
    vault (https://learn.microsoft.com/graph/throttling-limits,
    https://learn.microsoft.com/azure/key-vault/general/service-limits). The SDKs would honour the 429s' Retry-After, but a sweep that paces
    itself leaves the limits' headroom to onboardings happening at the same time."""

    def __init__(self, rate: float, clock: Clock) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0  # 0: unpaced
        self.clock = clock
        self.next_slot: float | None = None

    async def next_start(self) -> None:
        now = self.clock.monotonic()
        slot = now if self.next_slot is None else max(now, self.next_slot)
        self.next_slot = slot + self.interval  # taken before sleeping: the next worker queues behind it
        if slot > now:
            await self.clock.sleep(slot - now)
