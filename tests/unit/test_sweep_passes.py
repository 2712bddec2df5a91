"""The bounded sweep (shared/usecases/sweep_pass.py) over fakes: invocations that stop at a budget and resume from the
checkpoint, a killed one that the next completes exactly, the due index filed on every change and read instead of the
listing, the overdue and behind alerts' events, the poison queue, the fleet-wide pace, and the index's timing rule."""

from __future__ import annotations

import itertools
import logging
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from shared.domain.catalog import Catalog
from shared.domain.errors import UpstreamUnavailable
from shared.domain.model import Listing, SecretKind, SecretSummary
from shared.domain.ports import CheckpointMoved
from shared.domain.registry import ProblemRecord, Tag, iso
from shared.domain.sweep_state import EPOCH, Checkpoint, DueEntry, FullPass, NotAWorkItem, WorkItem
from shared.settings import Settings
from shared.usecases.onboarding import OnboardRequest
from shared.usecases.sweep import decide, next_action_at
from shared.usecases.sweep_pass import FleetPace
from tests.fakes.harness import make_settings
from tests.fakes.ids import NAMESPACE
from tests.fakes.sweep_store import Killed, QueuedItem
from tests.fakes.sweeping import M365, fleet

DAY = timedelta(days=1)


def operations(caplog: pytest.LogCaptureFixture, operation: str) -> list[dict[str, Any]]:
    return [
        r.__dict__["audit"]
        for r in caplog.records
        if r.name == "tenant_onboarding.audit" and r.__dict__["audit"]["operation"] == operation
    ]


# The index's timing rule --------------------------------------------------------------------------------------------


def records(settings: Settings, now: datetime) -> Iterator[SecretSummary]:
    """Credential records in every shape the tags allow, around `now`."""
    base = {Tag.MANAGED_BY: settings.name_prefix, Tag.KIND: SecretKind.CLIENT_SECRET.value}
    expiries = [None, now - DAY, now + 10 * DAY, now + 29 * DAY, now + 31 * DAY, now + 200 * DAY]
    issued = [None, now - 60 * DAY, now - 2 * DAY]
    journal: list[dict[str, str]] = [{}, {Tag.PENDING: "k"}, {Tag.STAGED: "k"}]
    retire: list[dict[str, str]] = [{}, {Tag.RETIRE_AFTER: iso(now - DAY)}, {Tag.RETIRE_AFTER: iso(now + DAY)}]
    problem: list[dict[str, str]] = [
        {},
        {Tag.LAST_PROBLEM: ProblemRecord("upstream-error", now - timedelta(minutes=5), 1).tag()},
        {Tag.LAST_PROBLEM: ProblemRecord("consent-required", now - timedelta(hours=3), 4).tag()},
    ]
    for expires, issued_at, j, r, p in itertools.product(expiries, issued, journal, retire, problem):
        tags = base | j | r | p | ({Tag.ISSUED_AT: iso(issued_at)} if issued_at else {})
        yield SecretSummary("record", tags, expires)


def test_a_record_is_acted_on_from_its_next_action_on_and_never_before() -> None:
    """What makes the due index sound: an entry filed at `next_action_at` is read exactly when the sweep would act."""
    settings = make_settings()
    now = datetime(2026, 12, 5, 12, tzinfo=EPOCH.tzinfo)
    checked = 0
    for record in records(settings, now):
        at = next_action_at(settings, record.tags, record.expires)
        for moment in (at, at + timedelta(minutes=1), at + DAY, at + 40 * DAY, now):
            if moment >= at:
                assert decide(settings, record, moment).act, (record, moment)
        if at > EPOCH:
            assert not decide(settings, record, at - timedelta(seconds=1)).act, record
        if not decide(settings, record, now).act:
            assert decide(settings, record, now).at > now, record
        checked += 1
    assert checked == 6 * 3 * 3 * 3 * 3


# Bounded invocations, checkpoint, crash and resume ------------------------------------------------------------------


async def test_a_full_pass_split_over_invocations_reads_every_record_once_and_queues_each_due_one_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    f = await fleet(40)
    f.store.index.clear()  # as if every record predated the index: only the full pass can find them
    f.clock.advance(days=150 - 40 + 20)  # registrations 0..20 are inside the rotation window
    due = f.due_now()
    assert 15 < len(due) < 30
    with caplog.at_level(logging.INFO, logger="tenant_onboarding.audit"):
        reports = await f.invoke_until_complete()
    # 120 secrets (client id, tenant id, secret per registration) are 5 pages, then one page of certificates.
    assert [r.pages for r in reports] == [2, 2, 2] and all(r.stopped == "pages" for r in reports[:-1])
    assert sum(r.scanned for r in reports) == 40
    queued = [q.item.name for q in f.store.queue]
    assert sorted(queued) == sorted(due)  # each due registration once, none other
    [completed] = operations(caplog, "sweep.completed")
    assert completed["scanned"] == "40" and completed["invocations"] == "3" and completed["enqueued"] == str(len(due))
    # What comes due before the next pass can reach it is filed in the index: the next 8 days' registrations.
    horizon = f.clock.now() + timedelta(hours=168 + 24)
    assert {e.name for e in f.store.index} >= {f.name(t) for t in f.tenants if f.clock.now() < f.due_at(t) <= horizon}
    assert (await f.work())["rotated"] == len(due)
    # The next invocation starts no pass (the last began less than SWEEP_FULL_PASS_HOURS ago): it reads no page.
    assert (await f.passes.run()).pages == 0


async def test_an_invocation_killed_mid_pass_is_completed_exactly_by_the_next(caplog: pytest.LogCaptureFixture) -> None:
    f = await fleet(40, SWEEP_PAGES_PER_INVOCATION=0, SWEEP_CHECKPOINT_PAGES=2)
    f.store.index.clear()
    f.clock.advance(days=150 - 40 + 20)
    due = f.due_now()
    f.store.fail_save_after = 2  # the saves after the due pass and after pages 1-2 go through; after pages 3-4 it dies
    with pytest.raises(Killed):
        await f.passes.run()
    before_resume = [q.item.name for q in f.store.queue]
    f.store.fail_save_after = None
    with caplog.at_level(logging.INFO, logger="tenant_onboarding.audit"):
        await f.invoke_until_complete()
    [completed] = operations(caplog, "sweep.completed")
    assert completed["scanned"] == "40", "pages 3-4 were counted once: the checkpoint holds what pages 1-2 left"
    queued = Counter(q.item.name for q in f.store.queue)
    assert set(queued) == due, "nothing skipped"
    # Pages 3-4's items were queued by the killed invocation and again by the next: the worker does them once.
    twice = {name for name, n in queued.items() if n > 1}
    assert twice and twice <= set(before_resume)
    outcomes = await f.work()
    assert outcomes["rotated"] == len(due) and outcomes.total() == len(due) + len(twice), outcomes
    assert "failed" not in outcomes
    for tenant in f.tenants:
        app = f.directory.app(tenant, f.settings.registry.unique_name(M365))
        assert app is not None and len(app.passwords) == (2 if f.name(tenant) in due else 1)


async def test_the_time_budget_ends_an_invocation_at_a_page_boundary() -> None:
    f = await fleet(40, SWEEP_PAGES_PER_INVOCATION=0, SWEEP_INVOCATION_SECONDS=10)
    reading = f.vault.record_page

    async def slow_page(listing: Listing, link: str | None) -> Any:
        f.clock.advance(seconds=4)  # each page takes 4 s of the invocation's 10
        return await reading(listing, link)

    f.vault.record_page = slow_page  # type: ignore[method-assign]
    f.passes.vault = f.vault  # the pass reads the listing straight from the vault here
    report = await f.passes.run()
    assert report.pages == 3 and report.stopped == "budget"
    checkpoint, _ = await f.store.checkpoint()
    assert checkpoint.full_pass is not None and checkpoint.full_pass.pages == 3


async def test_two_invocations_at_once_cannot_both_advance_the_pass() -> None:
    f = await fleet(3)
    first_read = await f.store.checkpoint()
    await f.passes.run()  # begins and completes a pass
    checkpoint, _ = first_read
    with pytest.raises(CheckpointMoved):
        await f.store.save_checkpoint(checkpoint, first_read[1])
    # And an invocation that finds its checkpoint moved stops, reporting it.
    f.store.fail_save_after = None
    original = f.store.save_checkpoint
    calls = 0

    async def moved_under_it(checkpoint: Checkpoint, etag: str | None) -> str:
        nonlocal calls
        calls += 1
        f.store.version += 1  # another invocation saved first
        return await original(checkpoint, etag)

    f.store.save_checkpoint = moved_under_it  # type: ignore[method-assign]
    f.clock.advance(days=8)
    assert (await f.passes.run()).stopped == "moved" and calls == 1


# The due index --------------------------------------------------------------------------------------------------


async def test_on_a_quiet_day_the_due_index_finds_what_is_due_and_the_listing_is_not_read() -> None:
    f = await fleet(40)
    f.clock.advance(days=150 - 40 - 1)  # the first registration comes due in a day
    await f.invoke_until_complete()  # a full pass: the next begins in a week
    f.vault.calls.clear()
    f.clock.advance(seconds=4.5 * 86400)  # four registrations came due since
    due = f.due_now()
    report = await f.passes.run()
    assert report.pages == 0 and report.full_pass is None
    assert sorted(q.item.name for q in f.store.queue) == sorted(due) and len(due) == 4
    assert f.vault.calls["record_page"] == 0 and f.vault.calls["read"] == len(due)  # one read per due entry
    assert (await f.work())["rotated"] == len(due)
    # Rotated: each record's entry moved to its retirement, after the grace period; none due now.
    assert (await f.passes.run()).enqueued == Counter()
    f.clock.advance(seconds=49 * 3600)
    retired = await f.passes.run()
    assert retired.enqueued["retire"] == len(due)  # (and what came due in those two days)


async def test_a_failed_rotation_waits_out_its_backoff_before_the_index_brings_it_back() -> None:
    f = await fleet(3)
    await f.invoke_until_complete()
    f.clock.advance(days=150)
    assert len(f.due_now()) == 3
    await f.passes.run()
    f.directory.fail_next("add_password", UpstreamUnavailable("busy", "graph", 503, None), times=3)
    for queued in f.store.take_work():
        with pytest.raises(UpstreamUnavailable):
            await f.rotation.rotate(queued.item.tenant_id, queued.item.integration, wait_seconds=0)
    f.clock.advance(seconds=60)
    assert (await f.passes.run()).enqueued == Counter(), "inside the 15-minute backoff"
    f.clock.advance(minutes=15)
    retried = await f.passes.run()  # each failed after writing its journal: finishing it is what is due
    assert retried.enqueued == Counter({"journal": 3}) and (await f.work())["rotated"] == 3


async def test_an_index_write_that_fails_never_fails_the_change_and_the_full_pass_repairs_the_index(
    caplog: pytest.LogCaptureFixture,
) -> None:
    f = await fleet(1)
    original = f.store.schedule

    async def unavailable(entries: Any) -> None:
        raise UpstreamUnavailable("Storage is down", "storage", 503, None)

    f.store.schedule = unavailable  # type: ignore[method-assign]
    tenant = str(uuid.uuid5(NAMESPACE, "fleet/late"))
    f.directory.add_tenant(tenant)
    with caplog.at_level(logging.WARNING):
        await f.onboarding.onboard(OnboardRequest(tenant, M365))
    assert any("the due index missed" in r.getMessage() for r in caplog.records)
    assert not any(e.name == f.name(tenant) for e in f.store.index)
    f.store.schedule = original  # type: ignore[method-assign]
    f.clock.advance(days=150 - 7)  # within the next pass's horizon
    await f.invoke_until_complete()
    assert any(e.name == f.name(tenant) for e in f.store.index), "the full pass filed what the change could not"


# Nothing forgotten: the events the alert rules read --------------------------------------------------------------


async def test_a_registration_no_pass_reached_in_time_is_audited_overdue(caplog: pytest.LogCaptureFixture) -> None:
    f = await fleet(3)
    f.store.index.clear()  # the index lost them, and no full pass has run since
    await f.passes.run()  # a pass begins and ends now (nothing due); the next begins a week later
    f.clock.advance(days=150 + 9)  # all three came due over a week ago: missed by everything
    with caplog.at_level(logging.INFO, logger="tenant_onboarding.audit"):
        await f.invoke_until_complete()
    overdue = operations(caplog, "rotation.overdue")
    assert sorted(e["secretName"] for e in overdue) == sorted(f.name(t) for t in f.tenants)
    assert all(e["tenantId"] in f.tenants and e["integration"] == M365 for e in overdue)


async def test_a_pass_that_does_not_end_in_time_is_audited_behind(caplog: pytest.LogCaptureFixture) -> None:
    f = await fleet(40, SWEEP_PAGES_PER_INVOCATION=1, SWEEP_FULL_PASS_HOURS=24, SWEEP_REACH_HOURS=24)
    await f.invoke_until_complete()
    f.clock.advance(days=1)
    with caplog.at_level(logging.INFO, logger="tenant_onboarding.audit"):
        f.vault.fail_next("record_page", UpstreamUnavailable("throttled", "keyvault", 429, None), times=100)
        for _ in range(3):  # a day, a day and a half and two days after the last pass ended
            with pytest.raises(UpstreamUnavailable):
                await f.passes.run()
            f.clock.advance(seconds=12 * 3600)
        assert not operations(caplog, "sweep.behind")  # within SWEEP_FULL_PASS_HOURS + SWEEP_REACH_HOURS
        f.clock.advance(seconds=1)
        with pytest.raises(UpstreamUnavailable):
            await f.passes.run()
        assert [r["stopped"] for r in operations(caplog, "sweep.ran")] == ["failed"] * 4
    [behind] = operations(caplog, "sweep.behind")
    assert float(behind["hours"]) > 48


async def test_poisoned_work_items_are_reported_once_each_and_removed(caplog: pytest.LogCaptureFixture) -> None:
    f = await fleet(1)
    item = WorkItem(f.tenants[0], M365, Listing.SECRETS, f.name(f.tenants[0]), "due")
    f.store.poison = [QueuedItem(item, 0), QueuedItem(item, 0)]
    with caplog.at_level(logging.INFO, logger="tenant_onboarding.audit"):
        report = await f.passes.run()
        again = await f.passes.run()
    assert report.poisoned == 2 and again.poisoned == 0 and f.store.poison == []
    poisoned = operations(caplog, "rotation.poisoned")
    assert [(p["tenantId"], p["integration"], p["reason"]) for p in poisoned] == [(f.tenants[0], M365, "due")] * 2
    [ran, _] = operations(caplog, "sweep.ran")
    assert ran["poisoned"] == "2"


# The fleet-wide pace ----------------------------------------------------------------------------------------------


async def test_fanned_out_rotations_start_at_the_fleet_wide_rate_and_the_next_slot_is_kept() -> None:
    f = await fleet(12, ROTATION_RATE_PER_SECOND=4)
    await f.invoke_until_complete()
    f.clock.advance(days=150 - 12 + 7)
    await f.passes.run()
    delays = [q.delay for q in f.store.queue]
    assert delays == pytest.approx([i * 0.25 for i in range(8)]) and len(delays) == 8
    checkpoint, _ = await f.store.checkpoint()
    assert checkpoint.next_slot == pytest.approx(f.clock.now().timestamp() + 8 * 0.25)
    await f.work()
    f.clock.advance(days=3)  # three more due, the eight rotated past their grace; the kept slot has passed
    await f.passes.run()
    assert Counter(q.item.reason for q in f.store.queue) == Counter({"retire": 8, "due": 3})
    assert [q.delay for q in f.store.queue] == pytest.approx([i * 0.25 for i in range(11)])


def test_the_pace_continues_where_the_checkpoint_left_it() -> None:
    now = datetime(2026, 12, 5, tzinfo=EPOCH.tzinfo)
    pace = FleetPace(now.timestamp() + 10, 2, lambda: now)
    assert [pace.delay() for _ in range(3)] == [10, 10.5, 11]
    assert FleetPace(0, 0, lambda: now).delay() == 0


# Data at the edges ------------------------------------------------------------------------------------------------


def test_work_items_are_validated_as_strictly_as_any_input() -> None:
    good = WorkItem(str(uuid.uuid5(NAMESPACE, "t")), M365, Listing.SECRETS, "p-x-client-secret", "due")
    assert WorkItem.from_json(good.to_json()) == good
    broken_items: list[Any] = [
        None, [], {}, good.to_json() | {"v": "2"}, good.to_json() | {"tenantId": "not-a-tenant"},
        good.to_json() | {"integration": "../etc"}, good.to_json() | {"listing": "keys"},
        good.to_json() | {"name": "a/b"}, good.to_json() | {"reason": "force"}, good.to_json() | {"name": 7},
    ]  # fmt: skip
    for broken in broken_items:
        with pytest.raises(NotAWorkItem):
            WorkItem.from_json(broken)


def test_index_keys_sort_by_time_and_read_back() -> None:
    early = DueEntry(datetime(2026, 1, 2, 3, 4, 5, tzinfo=EPOCH.tzinfo), Listing.SECRETS, "b")
    late = DueEntry(datetime(2026, 1, 2, 3, 4, 6, tzinfo=EPOCH.tzinfo), Listing.CERTIFICATES, "a")
    assert early.key < late.key and DueEntry.from_key(early.key) == early and DueEntry.from_key(late.key) == late
    again = DueEntry(early.at, Listing.SECRETS, "b", rechecks=2)
    assert again.key == early.key + "/2" and DueEntry.from_key(again.key) == again
    for foreign in ("x", "20260102T030405Z/keys/a", "2026/secrets/a", "20260102T030405Z/secrets/a/b", early.key + "/0"):
        assert DueEntry.from_key(foreign) is None


def test_a_checkpoint_in_another_shape_starts_afresh_and_one_of_ours_reads_back() -> None:
    now = datetime(2026, 12, 5, tzinfo=EPOCH.tzinfo)
    saved = Checkpoint(
        FullPass("p", now, Listing.CERTIFICATES, "https://v/certificates?x", pages=3, scanned=70), now, None, 0, 12.5
    )
    assert Checkpoint.from_json(saved.to_json()) == saved
    others: list[Any] = [None, [], {"v": 2}, {"v": 1, "fullPass": {"id": "p"}}]
    for other in others:
        assert Checkpoint.from_json(other).full_pass is None


# What the review found -------------------------------------------------------------------------------------------


def test_an_entry_is_filed_at_whole_seconds_never_before_the_moment_it_stands_for() -> None:
    half = datetime(2026, 12, 5, 12, 0, 0, 500_000, tzinfo=EPOCH.tzinfo)
    entry = DueEntry(half, Listing.SECRETS, "r")
    assert entry.at == half.replace(microsecond=0) + timedelta(seconds=1) and DueEntry.from_key(entry.key) == entry
    assert DueEntry(half.replace(microsecond=0), Listing.SECRETS, "r").at == half.replace(microsecond=0)


async def test_what_the_full_pass_fans_out_is_looked_at_again_through_the_index() -> None:
    f = await fleet(5)
    f.store.index.clear()
    f.clock.advance(days=150)
    await f.invoke_until_complete()
    assert len(f.store.take_work()) == 5  # the work items are lost: no worker ever runs them
    f.clock.advance(seconds=3600 + 1)
    assert (await f.passes.run()).enqueued == Counter({"due": 5}), "the recheck entries brought them back"


async def test_a_record_that_stays_due_is_looked_at_less_and_less_often_and_never_called_overdue(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What a rotation cannot change (a vendor's certificate in its window, a registration someone else holds) comes
    back through the index at growing intervals, up to a day, not every hour; the index reached it, so it is not
    `rotation.overdue`."""
    f = await fleet(1)
    f.clock.advance(days=149)  # due this moment
    queued_at = []
    with caplog.at_level(logging.INFO, logger="tenant_onboarding.audit"):
        for hour in range(24 * 6):
            if (await f.passes.run()).enqueued:
                queued_at.append(hour)
            f.store.take_work()  # and nothing changes the record
            f.clock.advance(seconds=3600)
    gaps = [later - earlier for earlier, later in itertools.pairwise(queued_at)]
    assert gaps == sorted(gaps) and gaps[0] <= 2 and gaps[-1] >= 24, queued_at
    assert len(queued_at) < 24
    assert not operations(caplog, "rotation.overdue")


async def test_a_registration_the_catalog_no_longer_has_is_not_fanned_out() -> None:
    f = await fleet(2)
    f.clock.advance(days=150)
    f.passes.catalog = Catalog({})
    assert (await f.passes.run()).enqueued == Counter()


async def test_a_saved_listing_link_refused_for_good_begins_the_pass_again(caplog: pytest.LogCaptureFixture) -> None:
    f = await fleet(40, SWEEP_PAGES_PER_INVOCATION=1)
    await f.passes.run()  # a pass begins and saves its place after the first page
    checkpoint, etag = await f.store.checkpoint()
    assert checkpoint.full_pass is not None and checkpoint.full_pass.link is not None
    checkpoint.full_pass.link = "https://another-vault.vault.azure.net/secrets?after=x"  # e.g. KEY_VAULT_URL changed
    await f.store.save_checkpoint(checkpoint, etag)
    with caplog.at_level(logging.INFO, logger="tenant_onboarding.audit"):
        reports = await f.invoke_until_complete()
    [restarted] = operations(caplog, "sweep.restarted")
    assert restarted["problemType"] == "invalid-request"
    [completed] = operations(caplog, "sweep.completed")
    assert completed["scanned"] == "40"
    assert reports[0].pages == 1  # the refused page was not counted; the new pass read its first page
