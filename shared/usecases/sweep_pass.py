"""The bounded sweep the timer runs: each invocation does a bounded amount of work and leaves the rest to the next.

An invocation, within its time (and optional page) budget:
1. reports what the rotation worker gave up on (the work queue's poison queue), as `rotation.poisoned`;
2. acts on what the due index says has come due: each entry's record is read again from Key Vault, the one source of
   truth, and fanned out as a work item if it still needs action, the entry moved to when it next will;
3. reads the next pages of the full pass over Key Vault's listings from the checkpoint, fanning out what needs action
   and filing in the index what will within the horizon (which repairs an index that missed a change), saving the
   checkpoint every SWEEP_CHECKPOINT_PAGES pages (20: a second of pages at 50 ms) and where it stops. A full pass
   begins every SWEEP_FULL_PASS_HOURS.

Due registrations are rotated by the queue-triggered worker (shared/entrypoints/rotation_api.py) on as many instances
as the platform scales to; their start times are spread at ROTATION_RATE_PER_SECOND across the whole fleet by giving
each work item a visibility delay (the next free slot is kept in the checkpoint).

An invocation killed anywhere resumes where the checkpoint stands: the pages read since it was saved are read again
(their counts were saved with the place, so nothing is counted twice), and their work items may be queued twice; the worker's rotation reads the record again under the registration's lock and does
nothing the second time, so no registration is skipped or rotated twice. Two invocations at once (a past-due timer
run overlapping the last, a benchmark or test beside the timer) cannot both advance the pass: the checkpoint is saved
only over the version read (its ETag); their due passes may queue the same items, which the worker does once.

Whatever is fanned out gets an entry to look at its record again (an hour after its slot, doubling while it stays
due, up to a day), so a lost work item, a rotation still pending or one that changed nothing comes back.

A full pass that has not ended within SWEEP_FULL_PASS_HOURS + SWEEP_REACH_HOURS of the last one's end, and a record
the full pass finds (no entry led to it) still needing action SWEEP_REACH_HOURS after it came due, with no failed
attempt recorded (missed, not failing), are audited (`sweep.behind`, `rotation.overdue`) for the alert rules in
infra/app/alerts.json.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.domain.audit import audit
from shared.domain.catalog import Catalog
from shared.domain.errors import InvalidRequest, OnboardingError, UpstreamError, UpstreamUnavailable
from shared.domain.model import Listing, SecretKind, SecretSummary
from shared.domain.ports import CheckpointMoved, SweepStore, Vault
from shared.domain.registry import Tag, iso
from shared.domain.retry import Clock
from shared.domain.sweep_state import EPOCH, Checkpoint, DueEntry, FullPass, WorkItem
from shared.settings import Settings
from shared.usecases.sweep import Decision, decide

logger = logging.getLogger(__name__)
DUE_BATCH = 32  # due entries read from Key Vault at once
POISON_BATCH, POISON_BATCHES = 32, 8
# After fanning a record out, when the index looks at it again: the worker's change files its own entry, this one
# catches a work item that never ran, or a rotation still pending, or one that changed nothing (a vendor's
# certificate, a registration someone else held). An hour after the work item's slot, doubling each time in a row,
# up to a day.
RECHECK_FIRST, RECHECK_MOST = timedelta(hours=1), timedelta(hours=24)
MAX_DELAY_SECONDS = 6 * 24 * 3600  # a queue message's visibility delay may not reach its 7-day time to live


@dataclass
class InvocationReport:
    """What one invocation did: the timer logs it and `sweep.ran` audits it."""

    poisoned: int = 0
    due_entries: int = 0
    enqueued: Counter[str] = field(default_factory=Counter)  # work items by reason
    pages: int = 0
    scanned: int = 0
    full_pass: str | None = None  # the pass this invocation continued
    completed: bool = False  # it read the pass's last page
    stopped: str = "done"  # done | budget | pages | moved (another invocation holds the pass) | failed
    behind: bool = False


class FleetPace:
    """Start times for fanned-out rotations, at most `rate` a second across every instance (each work item is hidden
    until its slot): Graph's 3,000 writes per 150 s per app and tenant and Key Vault's 300 secret creates per 10 s per
    vault hold however far the worker scales out (https://learn.microsoft.com/graph/throttling-limits,
    https://learn.microsoft.com/azure/key-vault/general/service-limits)."""

    def __init__(self, next_slot: float, rate: float, now: Callable[[], datetime]) -> None:
        self.next_slot = next_slot
        self.interval = 1.0 / rate if rate > 0 else 0.0  # 0: unpaced
        self.now = now

    def delay(self) -> float:
        wall = self.now().timestamp()
        slot = max(wall, self.next_slot)
        self.next_slot = slot + self.interval
        return min(slot - wall, MAX_DELAY_SECONDS)


def recheck(rechecks: int) -> timedelta:
    """How long after a work item's slot the index looks at its record again, the `rechecks`-th time in a row."""
    return min(RECHECK_MOST, RECHECK_FIRST * (1 << min(rechecks, 8)))


class SweepPasses:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        vault: Vault,
        store: SweepStore,
        clock: Clock,
        now: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.registry = settings.registry
        self.vault = vault
        self.store = store
        self.clock = clock
        self.now = now
        self.interval = timedelta(hours=settings.sweep_full_pass_hours)
        self.reach = timedelta(hours=settings.sweep_reach_hours)
        # What a full pass files in the index: what will need action before the next pass can reach it.
        self.horizon = self.interval + self.reach

    async def run(self, started: float | None = None) -> InvocationReport:
        """One invocation; `started`: when the function began (the clock's monotonic time), so the budget counts the
        whole invocation, not only this part of it."""
        started = self.clock.monotonic() if started is None else started
        deadline = started + self.settings.sweep_invocation_seconds
        report = InvocationReport()
        checkpoint, etag = await self.store.checkpoint()
        try:
            await self._invoke(checkpoint, etag, report, started, deadline)
        except CheckpointMoved:
            report.stopped = "moved"
            logger.warning(
                "the sweep's checkpoint moved under this invocation: another one is sweeping, this one stops"
            )
        except BaseException:
            report.stopped = "failed"  # raised on: the Functions host records the invocation as failed
            raise
        finally:
            # Whatever stopped it: a pass that keeps failing is as late as one that never runs.
            self._check_behind(checkpoint, report)
            audit(
                "sweep.ran", {}, dueEntries=str(report.due_entries), enqueued=str(sum(report.enqueued.values())),
                pages=str(report.pages), scanned=str(report.scanned), poisoned=str(report.poisoned),
                fullPass=report.full_pass or "", stopped=report.stopped,
                seconds=f"{self.clock.monotonic() - started:.1f}",
            )  # fmt: skip
        return report

    async def _invoke(
        self, checkpoint: Checkpoint, etag: str | None, report: InvocationReport, started: float, deadline: float
    ) -> None:
        pace = FleetPace(checkpoint.next_slot, self.settings.rotation_rate_per_second, self.now)
        fanned_out: set[str] = set()  # records this invocation queued: one work item each
        await self._report_poisoned(report, deadline)
        # What is due comes first, but leaves a pass in flight half the budget: neither starves the other.
        budget = self.settings.sweep_invocation_seconds
        await self._due_pass(
            report, pace, fanned_out, deadline if checkpoint.full_pass is None else started + budget / 2
        )
        checkpoint.next_slot = pace.next_slot
        now = self.now()
        if checkpoint.full_pass is None and (
            checkpoint.last_started_at is None or now - checkpoint.last_started_at >= self.interval
        ):
            checkpoint.full_pass = FullPass(uuid.uuid4().hex, now)
            checkpoint.last_started_at = now
        if checkpoint.full_pass is not None:
            checkpoint.full_pass.invocations += 1
            report.full_pass = checkpoint.full_pass.id
        etag = await self.store.save_checkpoint(checkpoint, etag)
        unsaved = 0  # pages read since the checkpoint was last saved
        while checkpoint.full_pass is not None:
            if self.clock.monotonic() >= deadline:
                report.stopped = "budget"
                break
            if 0 < self.settings.sweep_pages_per_invocation <= report.pages:
                report.stopped = "pages"
                break
            try:
                await self._page(checkpoint, report, pace, fanned_out)
            except OnboardingError as error:
                if not self._restart_refused_pass(checkpoint, error):
                    if unsaved:  # what was read stays read; the failed page is the next invocation's
                        await self.store.save_checkpoint(checkpoint, etag)
                    raise
            unsaved += 1
            checkpoint.next_slot = pace.next_slot
            # Saved every SWEEP_CHECKPOINT_PAGES pages: a killed invocation reads at most that many pages again.
            if unsaved >= self.settings.sweep_checkpoint_pages:
                etag = await self.store.save_checkpoint(checkpoint, etag)
                unsaved = 0
        if unsaved:
            await self.store.save_checkpoint(checkpoint, etag)

    def _restart_refused_pass(self, checkpoint: Checkpoint, error: OnboardingError) -> bool:
        """A page the saved link names refused for good (the vault moved, a continuation Key Vault no longer takes):
        the pass begins again from the first page, rather than failing at that page every invocation. True when so;
        a failure that may pass (throttling, 5xx), or the first page's, is left to raise."""
        full = checkpoint.full_pass
        refused = isinstance(error, InvalidRequest) or (
            isinstance(error, UpstreamError)
            and not isinstance(error, UpstreamUnavailable)
            and error.upstream_status in (400, 404)  # Key Vault's answer to a continuation it does not take
        )
        if full is None or full.link is None or not refused:
            return False
        logger.warning("a saved listing link was refused (%s): the full pass begins again", error.problem_type)
        audit(
            "sweep.restarted", {}, outcome="found", problemType=error.problem_type, fullPass=full.id,
            position=f"{full.listing.value} page {full.pages}",
        )  # fmt: skip
        checkpoint.full_pass = FullPass(uuid.uuid4().hex, self.now(), invocations=1)
        checkpoint.last_started_at = checkpoint.full_pass.started_at
        return True

    # The poison queue --------------------------------------------------------------------------------------------

    async def _report_poisoned(self, report: InvocationReport, deadline: float) -> None:
        for _ in range(POISON_BATCHES):
            if self.clock.monotonic() >= deadline:
                return
            items = await self.store.poisoned(POISON_BATCH)
            if not items:
                return
            for poisoned in items:
                item = poisoned.item
                who = {"tenantId": item.tenant_id, "integration": item.integration} if item else {}
                audit(
                    "rotation.poisoned", who, outcome="failed", secretName=item.name if item else "not-a-work-item",
                    reason=item.reason if item else "",
                )  # fmt: skip
            report.poisoned += len(items)
            await self.store.forget_poisoned(items)

    # The due index -----------------------------------------------------------------------------------------------

    async def _due_pass(self, report: InvocationReport, pace: FleetPace, fanned_out: set[str], deadline: float) -> None:
        batch: list[DueEntry] = []
        async for entry in self.store.due(self.now()):
            batch.append(entry)
            if len(batch) == DUE_BATCH:
                await self._due_batch(batch, report, pace, fanned_out)
                batch = []
                if self.clock.monotonic() >= deadline:
                    break
        if batch:
            await self._due_batch(batch, report, pace, fanned_out)

    async def _due_batch(
        self, entries: Sequence[DueEntry], report: InvocationReport, pace: FleetPace, fanned_out: set[str]
    ) -> None:
        limit = asyncio.Semaphore(self.settings.rotation_concurrency)

        async def read(entry: DueEntry) -> SecretSummary | OnboardingError | None:
            async with limit:
                try:
                    return await self._record(entry.listing, entry.name)
                except OnboardingError as error:
                    return error

        records = await asyncio.gather(*(read(entry) for entry in entries))
        now = self.now()
        report.due_entries += len(entries)
        work: list[tuple[WorkItem, DueEntry]] = []  # and the entry that led to it
        moves: list[DueEntry] = []
        done: list[DueEntry] = []
        for entry, record in zip(entries, records, strict=True):
            if isinstance(record, OnboardingError):
                logger.warning("due index: %s not read (%s); tried again next run", entry.name, record.problem_type)
                continue
            done.append(entry)
            if record is None:
                continue  # offboarded, or not ours any more: the entry goes
            decision = self._decide(record, now)
            if not decision.act:
                moves.append(DueEntry(decision.at, entry.listing, entry.name))
                continue
            item = self._work_item(entry.listing, record, decision.reason)
            if item is None:  # not a registration the catalog has: looked at again in a day, not fanned out
                moves.append(DueEntry(now + RECHECK_MOST, entry.listing, entry.name))
            elif item.name not in fanned_out:  # a record may have two entries due: one work item
                fanned_out.add(item.name)
                work.append((item, entry))
        delays = await self._fan_out([item for item, _ in work], pace, report)
        moves += [
            DueEntry(
                now + timedelta(seconds=delay) + recheck(entry.rechecks), entry.listing, entry.name, entry.rechecks + 1
            )
            for (_, entry), delay in zip(work, delays, strict=True)
        ]
        # The new entries before the old ones go: a crash between leaves both, never neither. Compared by key: an
        # entry moved to the second it already names is the same blob, and must stay.
        await self.store.schedule(moves)
        kept = {entry.key for entry in moves}
        await self.store.unschedule([entry for entry in done if entry.key not in kept])

    async def _record(self, listing: Listing, name: str) -> SecretSummary | None:
        """The record as Key Vault holds it now (metadata only), or None when it is gone or not a managed credential."""
        if listing is Listing.SECRETS:
            secret = await self.vault.read(name)
            if secret is None or not self.registry.is_swept_secret(dict(secret.tags)):
                return None
            return SecretSummary(name, secret.tags, secret.expires)
        certificate = await self.vault.read_certificate(name)
        if certificate is None or not self.registry.is_managed_client_certificate(dict(certificate.tags)):
            return None
        return SecretSummary(name, certificate.tags, certificate.expires)

    # The full pass -----------------------------------------------------------------------------------------------

    async def _page(
        self, checkpoint: Checkpoint, report: InvocationReport, pace: FleetPace, fanned_out: set[str]
    ) -> None:
        full = checkpoint.full_pass
        assert full is not None
        page = await self.vault.record_page(full.listing, full.link)
        now = self.now()
        work: list[WorkItem] = []
        entries: list[DueEntry] = []
        for record in page.records:
            if not self._swept(full.listing, record):
                continue
            full.scanned += 1
            report.scanned += 1
            decision = self._decide(record, now)
            if record.expires is None or record.expires <= now:
                full.expired += 1
            if decision.act:
                item = self._work_item(full.listing, record, decision.reason)
                if item is not None and item.name not in fanned_out:
                    fanned_out.add(item.name)
                    work.append(item)
                    # Found by the full pass, not the index: missed, if it came due long enough ago.
                    full.overdue += self._overdue(record, decision.at, now)
            elif decision.at <= now + self.horizon:
                entries.append(DueEntry(decision.at, full.listing, record.name))
        delays = await self._fan_out(work, pace, report)
        # What it fans out is looked at again through the index, as the due pass's is.
        entries += [
            DueEntry(now + timedelta(seconds=delay) + recheck(0), item.listing, item.name, 1)
            for item, delay in zip(work, delays, strict=True)
        ]
        await self.store.schedule(entries)
        full.enqueued += len(work)
        full.indexed += len(entries)
        full.pages += 1
        report.pages += 1
        if page.next_link is not None:
            full.link = page.next_link
        elif full.listing is Listing.SECRETS:
            full.listing, full.link = Listing.CERTIFICATES, None  # certificates are listed apart from secrets
        else:
            self._complete(checkpoint, report, now)

    def _complete(self, checkpoint: Checkpoint, report: InvocationReport, now: datetime) -> None:
        full = checkpoint.full_pass
        assert full is not None
        # What the `sweep-behind` rule's reasoning rests on: every registration has been reached since `started`.
        audit(
            "sweep.completed", {}, scanned=str(full.scanned), expiredFound=str(full.expired),
            enqueued=str(full.enqueued), indexed=str(full.indexed), overdue=str(full.overdue),
            pages=str(full.pages), invocations=str(full.invocations), startedAt=iso(full.started_at),
        )  # fmt: skip
        checkpoint.last_completed_at = now
        checkpoint.last_completed_scanned = full.scanned
        checkpoint.full_pass = None
        report.completed = True

    def _check_behind(self, checkpoint: Checkpoint, report: InvocationReport) -> None:
        since = checkpoint.last_completed_at or (checkpoint.full_pass.started_at if checkpoint.full_pass else None)
        now = self.now()
        if since is not None and now - since > self.interval + self.reach:
            report.behind = True
            audit(
                "sweep.behind", {}, outcome="found", since=iso(since),
                hours=f"{(now - since).total_seconds() / 3600:.1f}",
                position=f"{checkpoint.full_pass.listing.value} page {checkpoint.full_pass.pages}"
                if checkpoint.full_pass else "none",
            )  # fmt: skip

    # Shared by both ----------------------------------------------------------------------------------------------

    def _swept(self, listing: Listing, record: SecretSummary) -> bool:
        tags = dict(record.tags)
        if listing is Listing.SECRETS:
            return self.registry.is_swept_secret(tags)
        return self.registry.is_managed_client_certificate(tags)

    def _decide(self, record: SecretSummary, now: datetime) -> Decision:
        if record.expires is None or record.expires <= now:
            # Each pass that finds one says so (the `credential-expired` alert rule watches for it).
            audit(
                "credential.expired",
                {"tenantId": str(record.tags.get(Tag.TENANT_ID, "")), "integration": str(record.tags.get(Tag.INTEGRATION, ""))},
                outcome="found", secretName=record.name,
                expires=iso(record.expires) if record.expires else "never",
            )  # fmt: skip
        return decide(self.settings, record, now)

    def _overdue(self, record: SecretSummary, at: datetime, now: datetime) -> bool:
        """A record the full pass found (no index entry led to it) that came due more than the reach bound ago and was
        never tried (no problem recorded): missed by the index and by every pass since. Audited for the
        `registration-overdue` alert rule. A vendor's certificate is not rotated here: it is never overdue."""
        vendor = record.tags.get(Tag.KIND) == SecretKind.VENDOR_CERTIFICATE.value
        if vendor or at == EPOCH or record.tags.get(Tag.LAST_PROBLEM) or now - at <= self.reach:
            return False
        audit(
            "rotation.overdue",
            {"tenantId": str(record.tags.get(Tag.TENANT_ID, "")), "integration": str(record.tags.get(Tag.INTEGRATION, ""))},
            outcome="found", secretName=record.name, dueSince=iso(at),
        )  # fmt: skip
        return True

    def _work_item(self, listing: Listing, record: SecretSummary, reason: str) -> WorkItem | None:
        tenant, integration = str(record.tags.get(Tag.TENANT_ID, "")), str(record.tags.get(Tag.INTEGRATION, ""))
        if self.catalog.get(integration) is None:
            logger.info("%s names an integration the catalog does not have: not rotated", record.name)
            return None
        try:
            return WorkItem.from_json(
                WorkItem(tenant, integration, listing, record.name, reason).to_json()
            )  # the worker's own check, here: a record with malformed tags is logged once, not poisoned
        except ValueError:
            logger.warning("%s carries tags that name no registration: not rotated", record.name)
            return None

    async def _fan_out(self, items: Sequence[WorkItem], pace: FleetPace, report: InvocationReport) -> list[float]:
        delays = [pace.delay() for _ in items]
        await self.store.enqueue(list(zip(items, delays, strict=True)))
        for item in items:
            report.enqueued[item.reason] += 1
        return delays
