"""The rotation use case over in-memory fakes: when it rotates, the two phases, crash recovery, policy,
locking, and the streaming sweep. Time moves only on the fake clock."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import pytest

from shared.domain.errors import OnboardingError, SecretsForbiddenByPolicy, UpstreamError, UpstreamUnavailable
from shared.domain.model import PasswordInfo, PasswordPolicy, SecretKind
from shared.domain.ports import PasswordOutcomeUnknown
from shared.domain.registry import ProblemRecord, iso
from shared.usecases.offboarding import Offboarding
from shared.usecases.onboarding import OnboardRequest, Outcome
from shared.usecases.rotation import Action
from shared.usecases.sweep import PlannedItem
from tests.fakes import (
    START,
    TENANT,
    Call,
    FakeApp,
    FakePassword,
    FaultSwitches,
    RotationHarness,
    VaultVersion,
    When,
    make_rotation,
    seed_client_secret,
)

M365 = "m365-defender"
DEFENDER = "defender-endpoint"
SENTINEL = "sentinel"
TENANT_B = "22222222-3333-4444-8555-666666666666"
TENANT_C = "33333333-4444-4555-8666-777777777777"
# Defaults: 180-day secrets, a 30-day rotation window, 48 hours of grace, orphans after 30 minutes.
INTO_THE_WINDOW = timedelta(days=151)
GRACE = timedelta(hours=48)
ORPHAN_GRACE = timedelta(minutes=30)
WRITES = ("add_password", "remove_password", "write", "update_tags")


class Crash(RuntimeError):
    """The process died at this point: an exception nothing in the use case handles."""


def lost_response() -> PasswordOutcomeUnknown:
    return PasswordOutcomeUnknown("addPassword answered 503")


def unavailable() -> UpstreamUnavailable:
    return UpstreamUnavailable("Key Vault is throttling while writing a secret", "keyvault", 503, None)


def refused() -> UpstreamError:
    return UpstreamError("Entra refused the new credential", "entra", 401, "AADSTS7000215")


def client_secret_only(call: Call) -> bool:
    return str(call["name"]).endswith("-client-secret")


# --- helpers ----------------------------------------------------------------------------------


def advance(h: RotationHarness, delta: timedelta) -> None:
    h.clock.advance(seconds=delta.total_seconds())


def name_of(h: RotationHarness, tenant: str = TENANT, integration: str = M365) -> str:
    return h.rotation.registry.secret_name(tenant, integration, SecretKind.CLIENT_SECRET)


def latest(h: RotationHarness, tenant: str = TENANT, integration: str = M365) -> VaultVersion:
    stored = h.vault.latest(name_of(h, tenant, integration))
    assert stored is not None
    return stored


def app_of(h: RotationHarness, tenant: str = TENANT, integration: str = M365) -> FakeApp:
    app = h.directory.app(tenant, h.rotation.registry.unique_name(integration))
    assert app is not None
    return app


def on_app(h: RotationHarness, tenant: str = TENANT, integration: str = M365) -> set[str]:
    return set(app_of(h, tenant, integration).passwords)


def writes(h: RotationHarness) -> Counter[str]:
    """How many write calls the directory and the vault have seen so far."""
    return Counter({op: h.directory.calls[op] + h.vault.calls[op] for op in WRITES})


def removed_key_ids(h: RotationHarness) -> list[str]:
    return [str(call["key_id"]) for call in h.directory.calls_of("remove_password")]


def put_password(h: RotationHarness, display_name: str, start: datetime) -> str:
    """A credential added to the app behind this service's back (a human in the portal, another request)."""
    key_id = str(uuid.uuid4())
    info = PasswordInfo(key_id, display_name, "Hu", start, start + timedelta(days=365))
    app_of(h).passwords[key_id] = FakePassword(info, f"Hu~{key_id}")
    return key_id


async def onboard(
    h: RotationHarness, tenant: str = TENANT, integration: str = M365, lifetime_days: int | None = None
) -> str:
    """Onboard through the use case; the keyId of the stored credential."""
    result = await h.onboarding.onboard(OnboardRequest(tenant, integration, secret_lifetime_days=lifetime_days))
    assert result.outcome is Outcome.CREATED
    return latest(h, tenant, integration).tags["key-id"]


def assert_serving(h: RotationHarness, tenant: str = TENANT, integration: str = M365) -> VaultVersion:
    """The latest version is proven, carries no journal, and its secret is a current credential of the app."""
    stored = latest(h, tenant, integration)
    assert stored.tags["verified"] == "true"
    assert "pending" not in stored.tags
    assert stored.tags["key-id"] in on_app(h, tenant, integration)
    assert h.directory.is_current_password(tenant, app_of(h, tenant, integration).app_id, stored.value)
    return stored


def assert_rotated_once(h: RotationHarness, old: str) -> VaultVersion:
    """Exactly one new credential stored and working; the old one retired; nothing half-made left on the app."""
    stored = assert_serving(h)
    assert stored.tags["key-id"] != old
    assert stored.tags["previous-key-id"] == old
    assert "retire-after" not in stored.tags
    assert on_app(h) == {stored.tags["key-id"]}
    assert h.vault.version_count(name_of(h)) == 2
    return stored


async def planned(h: RotationHarness) -> dict[tuple[str, str], str]:
    return {(item.tenant_id, item.integration): item.reason async for item in h.sweep.plan()}


# --- 1: due or not ----------------------------------------------------------------------------


async def test_a_secret_outside_the_window_is_not_rotated() -> None:
    h = make_rotation()
    await onboard(h)
    before = writes(h)

    for days in (0, 149):  # 180-day secret: 180 and 31 days left, the window is 30
        h.clock.advance(days=days)
        result = await h.rotation.rotate(TENANT, M365)
        assert result.action is Action.NOTHING_DUE
        assert result.was_expired is False
        assert result.new_key_id is None

    assert writes(h) == before
    assert len(h.directory.minted) == 1


async def test_a_secret_inside_the_window_is_rotated_tagged_and_the_old_one_kept() -> None:
    h = make_rotation()
    old = await onboard(h)
    onboarded_tags = dict(latest(h).tags)
    (old_password,) = app_of(h).passwords.values()
    advance(h, INTO_THE_WINDOW)
    now = h.clock.now()

    result = await h.rotation.rotate(TENANT, M365)

    assert result.action is Action.ROTATED
    assert result.was_expired is False
    new_password = h.directory.minted[-1]
    new = new_password.info.key_id
    assert len(h.directory.minted) == 2
    assert result.new_key_id == new
    stored = assert_serving(h)
    assert stored.value == new_password.text
    assert h.vault.version_count(name_of(h)) == 2
    assert stored.tags == {k: v for k, v in onboarded_tags.items() if k not in ("key-id", "issued-at")} | {
        "key-id": new,
        "previous-key-id": old,
        "verified": "true",
        "issued-at": iso(now),
        "rotated-at": iso(now),
        "retire-after": iso(now + GRACE),
    }
    assert stored.expires == new_password.info.end == now + timedelta(days=180)
    assert result.expires == iso(new_password.info.end)
    # Consumers still on the old version keep working until retirement.
    assert on_app(h) == {old, new}
    assert h.directory.is_current_password(TENANT, app_of(h).app_id, old_password.text)
    assert result.retired_key_ids == []


# --- 2: retiring ------------------------------------------------------------------------------


async def test_the_superseded_credential_is_retired_only_after_the_grace_period_and_nothing_else_is() -> None:
    h = make_rotation()
    old = await onboard(h)
    human = put_password(h, "created by a human", start=START - timedelta(days=30))
    advance(h, INTO_THE_WINDOW)
    new = (await h.rotation.rotate(TENANT, M365)).new_key_id
    assert new is not None

    advance(h, GRACE - timedelta(hours=1))
    waiting = await h.rotation.rotate(TENANT, M365)

    assert waiting.action is Action.WAITING
    assert waiting.retired_key_ids == []
    assert on_app(h) == {old, new, human}
    assert h.directory.calls["remove_password"] == 0

    advance(h, timedelta(hours=1))
    retired = await h.rotation.rotate(TENANT, M365)

    assert retired.action is Action.RETIRED
    assert retired.retired_key_ids == [old]
    assert removed_key_ids(h) == [old]
    assert on_app(h) == {new, human}  # never the latest's own, never one this service did not issue
    stored = assert_serving(h)
    assert stored.tags["key-id"] == new
    assert "retire-after" not in stored.tags
    assert h.vault.version_count(name_of(h)) == 2  # tags cleared in place, no new version

    before = writes(h)
    advance(h, timedelta(days=7))
    assert (await h.rotation.rotate(TENANT, M365)).action is Action.NOTHING_DUE
    assert writes(h) == before
    assert on_app(h) == {new, human}


async def test_a_credential_of_ours_too_young_to_be_an_orphan_is_kept_until_it_is_old_enough() -> None:
    h = make_rotation()
    old = await onboard(h)
    advance(h, INTO_THE_WINDOW)
    new = (await h.rotation.rotate(TENANT, M365)).new_key_id
    advance(h, GRACE - timedelta(minutes=10))
    # Ours by its name, stored nowhere, minted just now: it may belong to a request still in flight.
    young = put_password(h, f"{h.rotation.settings.name_prefix} 0123456789ab", start=h.clock.now())

    advance(h, timedelta(minutes=11))
    result = await h.rotation.rotate(TENANT, M365)

    assert result.action is Action.RETIRED
    assert result.retired_key_ids == [old]
    assert on_app(h) == {new, young}
    assert "retire-after" in latest(h).tags  # not done retiring yet

    advance(h, ORPHAN_GRACE - timedelta(minutes=1))
    result = await h.rotation.rotate(TENANT, M365)

    assert result.action is Action.RETIRED
    assert result.retired_key_ids == [young]
    assert on_app(h) == {new}
    assert "retire-after" not in assert_serving(h).tags


# --- 3: a rotation that died at any step converges on the next runs -----------------------------


@dataclass(frozen=True)
class Fault:
    fake: Literal["directory", "vault", "checker"]
    switch: Literal["fail_next", "fail_after"]
    operation: str
    error: Callable[[], Exception]
    when: Callable[[RotationHarness], When] | None = None  # built when armed, from the state then


@dataclass(frozen=True)
class Case:
    faults: tuple[Fault, ...]
    completes: bool = False  # the faulted run still rotates (the use case recovers by itself)
    retire_now: bool = False


def once_minting(h: RotationHarness) -> When:
    """Only calls made after the rotation has called add_password."""
    minted_before = h.directory.calls["add_password"]
    return lambda call: h.directory.calls["add_password"] > minted_before


def on_a_new_version(h: RotationHarness) -> When:
    """Only tag updates of a version written after this point."""
    current = latest(h).version
    return lambda call: call["version"] != current


def secret_writes(h: RotationHarness) -> When:
    return client_secret_only


CRASHES = [
    pytest.param(Case((Fault("vault", "fail_next", "update_tags", Crash),)), id="journal-write-before"),
    pytest.param(Case((Fault("vault", "fail_after", "update_tags", Crash),)), id="journal-write-after"),
    pytest.param(Case((Fault("directory", "fail_next", "add_password", Crash),)), id="add_password-before"),
    # Minted; the process died before it saw the answer: only the journal knows about it.
    pytest.param(Case((Fault("directory", "fail_after", "add_password", Crash),)), id="add_password-after-crash"),
    # Minted, answer lost: found by its unique display name, removed, and minted once more.
    pytest.param(
        Case((Fault("directory", "fail_after", "add_password", lost_response),), completes=True),
        id="add_password-after-lost-response",
    ),
    # Minted, answer lost, and the process died while looking for it.
    pytest.param(
        Case(
            (
                Fault("directory", "fail_after", "add_password", lost_response),
                Fault("directory", "fail_next", "find_application", Crash, once_minting),
            )
        ),
        id="add_password-after-lost-response-then-crash",
    ),
    pytest.param(Case((Fault("checker", "fail_next", "granted_roles", refused),)), id="prove-fails"),
    pytest.param(
        Case((Fault("vault", "fail_next", "write", unavailable, secret_writes),)), id="vault-write-new-version-before"
    ),
    # Written, answer lost: recognised as stored by reading it back.
    pytest.param(
        Case((Fault("vault", "fail_after", "write", unavailable, secret_writes),), completes=True),
        id="vault-write-new-version-after-lost-answer",
    ),
    # Stored, the previous credential removed at once, then the process died tagging the new version.
    pytest.param(
        Case((Fault("vault", "fail_next", "update_tags", Crash, on_a_new_version),), retire_now=True),
        id="update_tags-after-storing",
    ),
]


def arm(h: RotationHarness, fault: Fault) -> None:
    fakes: dict[str, FaultSwitches] = {"directory": h.directory, "vault": h.vault, "checker": h.checker}
    fake = fakes[fault.fake]
    switch = fake.fail_next if fault.switch == "fail_next" else fake.fail_after
    switch(fault.operation, fault.error(), when=fault.when(h) if fault.when else None)


def unfired(h: RotationHarness) -> list[str]:
    return h.directory.unfired() + h.vault.unfired() + h.checker.unfired()


@pytest.mark.parametrize("case", CRASHES)
async def test_a_rotation_that_died_at_any_step_converges_on_the_next_runs(case: Case) -> None:
    h = make_rotation()
    old = await onboard(h)
    advance(h, INTO_THE_WINDOW)
    for fault in case.faults:
        arm(h, fault)

    if case.completes:
        first = await h.rotation.rotate(TENANT, M365, force=case.retire_now, retire_now=case.retire_now)
        assert first.action is Action.ROTATED
    else:
        with pytest.raises((Crash, OnboardingError)):
            await h.rotation.rotate(TENANT, M365, force=case.retire_now, retire_now=case.retire_now)
    assert unfired(h) == [], "the fault never fired"
    assert old in on_app(h) or case.retire_now, "the working credential was removed before a new one was stored"

    second = await h.rotation.rotate(TENANT, M365)
    assert second.action in (Action.ROTATED, Action.WAITING, Action.NOTHING_DUE)
    assert_serving(h)
    advance(h, GRACE + ORPHAN_GRACE + timedelta(minutes=1))
    await h.rotation.rotate(TENANT, M365)

    assert_rotated_once(h, old)
    before = writes(h)
    assert (await h.rotation.rotate(TENANT, M365)).action is Action.NOTHING_DUE
    assert writes(h) == before


async def test_a_rotation_that_died_between_minting_and_storing_is_cleaned_up_first_by_the_next_run() -> None:
    h = make_rotation()
    old = await onboard(h)
    advance(h, INTO_THE_WINDOW)
    h.directory.fail_after("add_password", Crash())

    with pytest.raises(Crash):
        await h.rotation.rotate(TENANT, M365)

    half_made = h.directory.minted[-1].info
    journaled = latest(h)
    assert journaled.tags["key-id"] == old  # nothing stored: consumers still read the old version
    assert journaled.tags["pending"] == half_made.display_name
    assert on_app(h) == {old, half_made.key_id}
    assert await planned(h) == {(TENANT, M365): "journal"}

    log_from, tagged_from = len(h.directory.log), len(h.vault.calls_of("update_tags"))
    result = await h.rotation.rotate(TENANT, M365)  # at once: the journal needs no orphan grace

    assert result.action is Action.ROTATED
    changes = [(op, call) for op, call in h.directory.log[log_from:] if op in ("add_password", "remove_password")]
    assert [op for op, _ in changes] == ["remove_password", "add_password"]
    assert changes[0][1]["key_id"] == half_made.key_id
    # Then the journal is dropped from the version it was written on, before a new attempt journals again.
    cleared = h.vault.calls_of("update_tags")[tagged_from]
    assert cleared["version"] == journaled.version
    assert cleared["tags"] == {k: v for k, v in journaled.tags.items() if k != "pending"} | {"key-id": old}
    new = assert_serving(h).tags["key-id"]
    assert on_app(h) == {old, new}
    assert half_made.key_id not in on_app(h)


async def test_a_successful_rotation_leaves_no_journal_on_any_version() -> None:
    h = make_rotation()
    await onboard(h)
    advance(h, INTO_THE_WINDOW)

    assert (await h.rotation.rotate(TENANT, M365)).action is Action.ROTATED

    assert [v.tags.get("pending") for v in h.vault.versions[name_of(h)]] == [None, None]


async def test_a_new_secret_that_fails_its_proof_is_removed_and_never_stored() -> None:
    h = make_rotation()
    old = await onboard(h)
    before = dict(latest(h).tags)
    advance(h, INTO_THE_WINDOW)
    h.checker.fail_next("granted_roles", refused())

    with pytest.raises(UpstreamError):
        await h.rotation.rotate(TENANT, M365)

    unproven = h.directory.minted[-1].info.key_id
    assert unproven != old
    assert removed_key_ids(h) == [unproven]
    assert on_app(h) == {old}
    assert h.vault.version_count(name_of(h)) == 1
    tags = dict(latest(h).tags)
    assert tags.pop("last-problem").startswith("upstream-error ")  # for the fleet view
    assert tags == before  # journal cleared
    assert_serving(h)


async def test_a_new_secret_still_replicating_past_the_timeout_stays_staged_and_the_next_run_proves_it() -> None:
    """Entra can take minutes to accept a new secret. Removing it after VERIFY_TIMEOUT_SECONDS and minting
    another on the next run would never catch up in such a tenant: the secret stays on the app and in a
    staging secret, consumers keep the old one, and the next run proves the same secret and promotes it."""
    h = make_rotation(VERIFY_TIMEOUT_SECONDS=20)
    old = await onboard(h)
    advance(h, INTO_THE_WINDOW)
    h.checker.not_replicated_for(10_000)

    result = await h.rotation.rotate(TENANT, M365)

    assert result.action is Action.PENDING
    assert "new credential" in result.detail
    staged = h.directory.minted[-1].info.key_id
    assert on_app(h) == {old, staged}  # the old one still serves; the new one waits for Entra
    assert h.vault.version_count(name_of(h)) == 1  # consumers still read the old one
    assert latest(h).tags["staged"] == staged and "pending" not in latest(h).tags
    staging = h.vault.latest(h.rotation.registry.staging_secret_name(TENANT, M365))
    assert staging is not None and staging.tags["key-id"] == staged
    minted = len(h.directory.minted)

    h.checker.not_replicated_for(0)
    assert (await h.rotation.rotate(TENANT, M365)).action is Action.ROTATED
    assert len(h.directory.minted) == minted  # the staged secret, proven: no second one
    assert latest(h).tags["key-id"] == staged and "staged" not in latest(h).tags
    assert h.vault.latest(h.rotation.registry.staging_secret_name(TENANT, M365)) is None
    assert_serving(h)


async def test_a_staged_secret_survives_a_put_and_the_sweep_while_it_waits_for_entra() -> None:
    """Orphan removal (a PUT) and retirement (a later run) spare the staged credential; the sweep plans to finish it."""
    h = make_rotation(VERIFY_TIMEOUT_SECONDS=20)
    old = await onboard(h)
    advance(h, INTO_THE_WINDOW)
    h.checker.not_replicated_for(10**9)
    assert (await h.rotation.rotate(TENANT, M365)).action is Action.PENDING
    staged = latest(h).tags["staged"]

    advance(h, ORPHAN_GRACE + timedelta(minutes=1))  # older than the orphan grace, still unproven
    assert (await h.onboarding.onboard(OnboardRequest(TENANT, M365))).outcome is Outcome.COMPLETE
    assert (await h.rotation.rotate(TENANT, M365)).action is Action.PENDING
    assert on_app(h) == {old, staged} and latest(h).tags["staged"] == staged
    assert [item.reason async for item in h.sweep.plan()] == ["journal"]

    h.checker.not_replicated_for(0)
    assert (await h.sweep.run()).outcomes == Counter({"rotated": 1})
    assert latest(h).tags["key-id"] == staged


async def stage(h: RotationHarness, *, force: bool = False) -> str:
    """A rotation whose new secret Entra has not accepted yet: the keyId it left staged."""
    h.checker.not_replicated_for(10**9)
    assert (await h.rotation.rotate(TENANT, M365, force=force)).action is Action.PENDING
    h.checker.not_replicated_for(0)
    return latest(h).tags["staged"]


async def test_an_on_demand_rotation_after_a_leak_never_promotes_a_secret_the_sweep_staged_earlier() -> None:
    h = make_rotation(VERIFY_TIMEOUT_SECONDS=20)
    await onboard(h)
    advance(h, INTO_THE_WINDOW)
    by_sweep = await stage(h)

    result = await h.rotation.rotate(TENANT, M365, force=True, retire_now=True)

    assert result.action is Action.ROTATED and result.new_key_id != by_sweep
    assert by_sweep not in on_app(h)  # minted before the request: it may be what leaked
    assert_serving(h)


async def test_an_on_demand_rotation_repeated_after_its_202_promotes_the_secret_it_staged() -> None:
    h = make_rotation(VERIFY_TIMEOUT_SECONDS=20)
    await onboard(h)
    on_demand = await stage(h, force=True)
    minted = len(h.directory.minted)

    result = await h.rotation.rotate(TENANT, M365, force=True)

    assert result.action is Action.ROTATED and result.new_key_id == on_demand
    assert len(h.directory.minted) == minted


async def test_a_policy_that_now_forbids_secrets_still_lets_the_staged_one_be_promoted() -> None:
    """Promoting adds nothing to the app; refusing it would let the stored secret expire with a good one waiting."""
    h = make_rotation(VERIFY_TIMEOUT_SECONDS=20)
    await onboard(h)
    advance(h, INTO_THE_WINDOW)
    staged = await stage(h)
    h.directory.tenants[TENANT].policy = PasswordPolicy(additions_allowed=False, policy_id="policy-9")
    advance(h, timedelta(minutes=2))  # past the policy cache

    result = await h.rotation.rotate(TENANT, M365)

    assert result.action is Action.ROTATED and result.new_key_id == staged


async def test_a_token_endpoint_that_does_not_answer_leaves_the_staged_secret_for_the_next_run() -> None:
    h = make_rotation(VERIFY_TIMEOUT_SECONDS=20)
    await onboard(h)
    advance(h, INTO_THE_WINDOW)
    staged = await stage(h)
    h.checker.fail_next("granted_roles", unavailable())

    with pytest.raises(UpstreamUnavailable):
        await h.rotation.rotate(TENANT, M365)
    assert staged in on_app(h) and latest(h).tags["staged"] == staged

    assert (await h.rotation.rotate(TENANT, M365)).new_key_id == staged


async def test_a_put_that_mints_a_new_secret_removes_a_staged_one_nothing_would_finish() -> None:
    h = make_rotation(VERIFY_TIMEOUT_SECONDS=20)
    old = await onboard(h)
    advance(h, INTO_THE_WINDOW)
    staged = await stage(h)
    await h.directory.remove_password(TENANT, app_of(h).object_id, old)  # an admin removed the serving one

    assert (await h.onboarding.onboard(OnboardRequest(TENANT, M365))).outcome is Outcome.UPDATED

    assert staged not in on_app(h) and "staged" not in latest(h).tags
    assert h.vault.latest(h.rotation.registry.staging_secret_name(TENANT, M365)) is None
    assert_serving(h)


async def test_offboarding_deletes_a_staging_secret_too() -> None:
    h = make_rotation(VERIFY_TIMEOUT_SECONDS=20)
    await onboard(h)
    advance(h, INTO_THE_WINDOW)
    h.checker.not_replicated_for(10**9)
    assert (await h.rotation.rotate(TENANT, M365)).action is Action.PENDING
    staging = h.rotation.registry.staging_secret_name(TENANT, M365)
    offboarding = Offboarding(h.onboarding.settings, h.onboarding.catalog, h.directory, h.vault, h.locks)

    gone = await offboarding.offboard(TENANT, M365)

    assert gone.secrets[staging] == "deleted" and h.vault.latest(staging) is None
    assert len(gone.secrets) == 4


async def test_a_vault_write_that_landed_but_could_not_be_read_back_leaves_the_latest_version_working() -> None:
    h = make_rotation()
    old = await onboard(h)
    advance(h, INTO_THE_WINDOW)
    written_before = h.vault.calls["write"]
    h.vault.fail_after("write", unavailable(), when=client_secret_only)  # landed; the answer was lost
    h.vault.fail_next("read", unavailable(), when=lambda call: h.vault.calls["write"] > written_before)

    with pytest.raises(UpstreamUnavailable):
        await h.rotation.rotate(TENANT, M365)
    assert unfired(h) == []

    stored = latest(h)
    assert stored.tags["key-id"] != old  # the new version is what consumers now read
    assert h.directory.is_current_password(TENANT, app_of(h).app_id, stored.value)


# --- 4, 5: forced and overdue rotations ---------------------------------------------------------


async def test_a_forced_rotation_retiring_now_removes_the_previous_credential_once_the_new_one_is_stored() -> None:
    h = make_rotation()
    old = await onboard(h)  # not due at all

    result = await h.rotation.rotate(TENANT, M365, force=True, retire_now=True)

    assert result.action is Action.ROTATED
    assert result.retired_key_ids == [old]
    assert removed_key_ids(h) == [old]
    stored = assert_serving(h)
    assert result.new_key_id == stored.tags["key-id"]
    assert on_app(h) == {stored.tags["key-id"]}
    assert "retire-after" not in stored.tags
    assert h.vault.version_count(name_of(h)) == 2


@pytest.mark.parametrize("how", ["expired", "missing"])
async def test_an_expired_or_missing_credential_is_replaced_at_once(how: str) -> None:
    h = make_rotation()
    old = await onboard(h)
    if how == "expired":
        advance(h, timedelta(days=181))
    else:
        del app_of(h).passwords[old]  # deleted in the portal

    result = await h.rotation.rotate(TENANT, M365)

    assert result.action is Action.ROTATED
    assert result.was_expired is True
    stored = assert_serving(h)
    assert stored.tags["previous-key-id"] == old
    assert h.vault.version_count(name_of(h)) == 2
    if how == "missing":
        assert on_app(h) == {stored.tags["key-id"]}
        assert "retire-after" not in stored.tags  # nothing left to retire
    else:
        assert on_app(h) == {old, stored.tags["key-id"]}
        advance(h, GRACE)
        assert (await h.rotation.rotate(TENANT, M365)).retired_key_ids == [old]


# --- 6: policy ---------------------------------------------------------------------------------


async def test_a_policy_lowered_since_onboarding_clamps_the_new_secrets_lifetime() -> None:
    h = make_rotation()
    await onboard(h)
    advance(h, INTO_THE_WINDOW)
    h.directory.tenants[TENANT].policy = PasswordPolicy(max_lifetime_days=20)

    result = await h.rotation.rotate(TENANT, M365)

    assert result.action is Action.ROTATED
    new_password = h.directory.minted[-1].info
    assert new_password.end == h.clock.now() + timedelta(days=20)
    stored = assert_serving(h)
    assert stored.expires == new_password.end
    assert result.expires == iso(new_password.end)


async def test_a_secret_clamped_below_the_rotation_window_is_not_rotated_again_by_the_next_run() -> None:
    h = make_rotation()
    await onboard(h)
    advance(h, INTO_THE_WINDOW)
    h.directory.tenants[TENANT].policy = PasswordPolicy(max_lifetime_days=20)
    assert (await h.rotation.rotate(TENANT, M365)).action is Action.ROTATED

    advance(h, timedelta(hours=6))  # the next timer sweep
    result = await h.rotation.rotate(TENANT, M365)

    assert result.action is not Action.ROTATED
    assert len(h.directory.minted) == 2


async def test_a_policy_that_now_forbids_secrets_refuses_the_rotation_and_mints_nothing() -> None:
    h = make_rotation()
    old = await onboard(h)
    tags = dict(latest(h).tags)
    advance(h, INTO_THE_WINDOW)
    h.directory.tenants[TENANT].policy = PasswordPolicy(additions_allowed=False, policy_id="policy-7")
    before = writes(h)

    with pytest.raises(SecretsForbiddenByPolicy) as raised:
        await h.rotation.rotate(TENANT, M365)

    assert isinstance(raised.value, OnboardingError)
    assert raised.value.extensions["policyId"] == "policy-7"
    assert writes(h) - before == Counter({"update_tags": 1})  # not even the journal: the problem, for the fleet
    assert len(h.directory.minted) == 1
    assert on_app(h) == {old}
    now = dict(latest(h).tags)
    assert now.pop("last-problem").startswith(f"{raised.value.problem_type} ")
    assert now == tags


async def test_a_sweep_reads_a_tenants_policy_once_not_before_every_rotation() -> None:
    h = make_rotation()
    for integration in (M365, DEFENDER, SENTINEL):
        await onboard(h, integration=integration)
    advance(h, INTO_THE_WINDOW)
    before = h.directory.calls["password_policy"]

    summary = await h.sweep.run()

    assert summary.outcomes == Counter({Action.ROTATED.value: 3})
    assert h.directory.calls["password_policy"] == before + 1


async def test_a_failed_policy_read_is_not_remembered() -> None:
    h = make_rotation()
    await onboard(h)
    advance(h, INTO_THE_WINDOW)
    h.directory.fail_next("password_policy", unavailable())

    with pytest.raises(UpstreamUnavailable):
        await h.rotation.rotate(TENANT, M365)
    result = await h.rotation.rotate(TENANT, M365)

    assert result.action is Action.ROTATED
    assert_serving(h)


async def test_a_policy_tightened_after_it_was_read_is_still_enforced_by_the_next_run() -> None:
    h = make_rotation()
    await onboard(h)
    await onboard(h, integration=DEFENDER)
    advance(h, INTO_THE_WINDOW)
    assert (await h.rotation.rotate(TENANT, M365)).action is Action.ROTATED  # reads and keeps the policy
    h.directory.tenants[TENANT].policy = PasswordPolicy(additions_allowed=False, policy_id="policy-8")

    advance(h, timedelta(minutes=2))  # the next run, past the minute a read policy is kept
    with pytest.raises(SecretsForbiddenByPolicy):
        await h.rotation.rotate(TENANT, DEFENDER)


# --- 7: an app deleted out of band ------------------------------------------------------------


async def test_an_app_deleted_out_of_band_is_reported_app_missing_and_nothing_is_written() -> None:
    h = make_rotation()
    await onboard(h)
    del h.directory.tenants[TENANT].apps[h.rotation.registry.unique_name(M365)]
    advance(h, INTO_THE_WINDOW)
    before = writes(h)

    result = await h.rotation.rotate(TENANT, M365)

    assert result.action is Action.APP_MISSING
    assert writes(h) - before == Counter({"update_tags": 1})  # only the problem, recorded for the fleet view
    assert latest(h).tags["last-problem"].startswith("app-missing ")

    summary = await h.sweep.run()
    assert summary.outcomes == Counter({Action.APP_MISSING.value: 1})
    assert summary.failures_by_tenant == Counter({TENANT: 1})


# --- 8: concurrent rotations of one registration ------------------------------------------------


async def test_two_concurrent_rotations_of_one_registration_mint_one_new_credential() -> None:
    h = make_rotation()
    old = await onboard(h)
    advance(h, INTO_THE_WINDOW)

    results = await asyncio.gather(h.rotation.rotate(TENANT, M365), h.rotation.rotate(TENANT, M365))

    assert sorted(r.action.value for r in results) == [Action.ROTATED.value, Action.WAITING.value]
    assert h.locks.contended == 1, "the second rotation never overlapped the first"
    assert len(h.directory.minted) == 2
    assert h.vault.version_count(name_of(h)) == 2
    new = assert_serving(h).tags["key-id"]
    assert on_app(h) == {old, new}


async def test_a_rotation_that_will_not_wait_reports_busy_while_another_holds_the_registration() -> None:
    h = make_rotation()
    await onboard(h)
    advance(h, INTO_THE_WINDOW)
    h.checker.hold_proofs(times=1)  # the first rotation stops after minting, holding the registration

    async def second() -> Action:
        for _ in range(1_000):
            if h.checker.held:
                break
            await asyncio.sleep(0)
        else:
            pytest.fail("the first rotation never reached its proof")
        try:
            return (await h.rotation.rotate(TENANT, M365, wait_seconds=0)).action
        finally:
            h.checker.release_proofs()

    first, busy = await asyncio.gather(h.rotation.rotate(TENANT, M365), second())

    assert busy is Action.BUSY
    assert first.action is Action.ROTATED
    assert len(h.directory.minted) == 2
    assert_serving(h)


# --- 9: the sweep across tenants ------------------------------------------------------------------

FLEET = {
    # (tenant, integration): (what the sweep should plan at START + 100 days, secret lifetime at onboarding)
    (TENANT, M365): ("ok", 180),
    (TENANT, DEFENDER): ("due", 120),
    (TENANT, SENTINEL): ("expired", 90),
    (TENANT_B, M365): ("retire", 180),  # force-rotated 3 days before: its grace has passed
    (TENANT_B, DEFENDER): ("waiting", 180),  # force-rotated an hour before
    (TENANT_B, SENTINEL): ("due", 120),
    (TENANT_C, M365): ("due", 120),
    (TENANT_C, DEFENDER): ("expired", 90),
    (TENANT_C, SENTINEL): ("ok", 180),
}
ACTIONABLE = ("due", "expired", "retire", "journal")


async def fleet() -> RotationHarness:
    """Nine registrations in three tenants, in every state a sweep plans, at START + 100 days."""
    h = make_rotation(tenants=(TENANT_B, TENANT_C))
    for (tenant, integration), (_, lifetime) in FLEET.items():
        await onboard(h, tenant, integration, lifetime_days=lifetime)
    h.clock.advance(days=97)
    await h.rotation.rotate(TENANT_B, M365, force=True)
    h.clock.advance(days=3, seconds=-3600)
    await h.rotation.rotate(TENANT_B, DEFENDER, force=True)
    h.clock.advance(seconds=3600)
    assert h.clock.now() == START + timedelta(days=100)
    return h


async def test_a_dry_run_sweep_plans_every_state_from_tags_and_touches_nothing() -> None:
    h = await fleet()
    directory_calls, vault_calls = sum(h.directory.calls.values()), Counter(h.vault.calls)
    seen: list[PlannedItem] = []

    summary = await h.sweep.run(dry_run=True, on_item=seen.append)

    assert summary.scanned == len(FLEET)
    assert summary.planned == Counter(reason for reason, _ in FLEET.values())
    assert summary.planned == Counter(ok=2, due=3, expired=2, retire=1, waiting=1)
    assert summary.expired == 2
    assert {(i.tenant_id, i.integration): i.reason for i in seen} == {k: v[0] for k, v in FLEET.items()}
    assert summary.outcomes == Counter()
    assert summary.failures_by_tenant == Counter()
    assert sum(h.directory.calls.values()) == directory_calls
    # One listing of each (secrets and certificates), no read, no write.
    assert h.vault.calls - vault_calls == Counter({"client_secrets": 1, "client_certificates": 1})


async def test_a_sweep_rotates_every_other_tenant_when_one_tenant_fails() -> None:
    h = await fleet()
    keys_before = {k: latest(h, *k).tags["key-id"] for k in FLEET}
    h.directory.fail_next(
        "find_application",
        UpstreamError("Graph failed", "graph", 500, "InternalServerError"),
        times=1_000,
        when=lambda call: call["tenant_id"] == TENANT_C,
    )

    minted_before = len(h.directory.minted)

    summary = await h.sweep.run()

    assert summary.scanned == len(FLEET)
    assert summary.planned == Counter(ok=2, due=3, expired=2, retire=1, waiting=1)
    assert summary.outcomes == Counter({Action.ROTATED.value: 3, Action.RETIRED.value: 1, Action.FAILED.value: 2})
    assert sum(summary.outcomes.values()) == sum(summary.planned[reason] for reason in ACTIONABLE)
    assert summary.failures_by_tenant == Counter({TENANT_C: 2})
    for (tenant, integration), (reason, _) in FLEET.items():
        key = latest(h, tenant, integration).tags["key-id"]
        if tenant != TENANT_C and reason in ("due", "expired"):
            assert key != keys_before[(tenant, integration)], (tenant, integration)
            assert_serving(h, tenant, integration)
        else:
            assert key == keys_before[(tenant, integration)], (tenant, integration)
    assert on_app(h, TENANT_B, M365) == {latest(h, TENANT_B, M365).tags["key-id"]}  # retired
    assert len(on_app(h, TENANT_B, DEFENDER)) == 2  # still waiting
    assert len(h.directory.minted) == minted_before + 3  # nothing minted in the failing tenant


# --- 10: the sweep streams --------------------------------------------------------------------


async def test_the_sweep_streams_a_large_listing_with_bounded_concurrency_and_reads_only_what_it_acts_on() -> None:
    concurrency = 3
    quiet = 2_000
    # Tenant ids that interleave in the (name-sorted) listing: three due tenants among the first quiet ones
    # (9 registrations to act on in the first page, more than the queue holds), one more further down.
    due_tenants = [str(uuid.UUID(int=n)) for n in (1, 3, 5, 1001)]
    h = make_rotation(tenants=due_tenants, ROTATION_CONCURRENCY=concurrency, ROTATION_RATE_PER_SECOND=0)
    due = [(tenant, integration) for tenant in due_tenants for integration in (M365, DEFENDER, SENTINEL)]
    for tenant, integration in due:
        await onboard(h, tenant, integration)
    for i in range(quiet):
        seed_client_secret(h.vault, h.rotation.settings, str(uuid.UUID(int=2 * i)), M365, START + timedelta(days=365))
    advance(h, INTO_THE_WINDOW)  # the onboarded secrets are due, the seeded ones have 214 days left

    listed: list[PlannedItem] = []
    actionable: list[PlannedItem] = []
    starts: list[tuple[int, int]] = []  # (items listed, actionable items planned) as each rotation starts

    def on_item(item: PlannedItem) -> None:
        listed.append(item)
        if item.needs_action:
            actionable.append(item)

    h.locks.on_enter = lambda key: starts.append((len(listed), len(actionable)))
    reads_from = len(h.vault.calls_of("read"))

    summary = await h.sweep.run(on_item=on_item)

    assert summary.scanned == quiet + len(due)
    assert summary.planned == Counter(ok=quiet, due=len(due))
    assert summary.outcomes == Counter({Action.ROTATED.value: len(due)})
    assert summary.failures_by_tenant == Counter()
    assert h.locks.max_in_flight == concurrency  # reached, never exceeded
    assert len(starts) == len(due)
    # Streaming: acting began long before the listing ended, and planning never ran further ahead of
    # the workers than the bounded queue (2 x concurrency) plus the one item waiting to be queued.
    assert starts[0][0] < summary.scanned // 10
    assert max(planned - started for started, (_, planned) in enumerate(starts, start=1)) <= 2 * concurrency + 1
    # Planning read no secret: the only reads are the rotations' own, for the registrations acted on (each reads
    # its client secret and the record a vendor's certificate would have, and, for a connection that offers
    # add-ons, its Client ID, which records the add-ons it has).
    reads = h.vault.calls_of("read")[reads_from:]
    vendor_record = [h.rotation.registry.secret_name(*k, SecretKind.VENDOR_CERTIFICATE) for k in due]
    add_ons = [
        h.rotation.registry.secret_name(*k, SecretKind.CLIENT_ID)
        for k in due
        if h.rotation.catalog.require(k[1]).add_ons
    ]
    assert sorted(str(c["name"]) for c in reads) == sorted([*(name_of(h, *k) for k in due), *vendor_record, *add_ons])
    for tenant, integration in due:
        assert_serving(h, tenant, integration)


async def test_the_sweep_starts_at_most_the_configured_rotations_a_second() -> None:
    # Everything due at once must not become a burst past Graph's and Key Vault's write limits.
    tenants = [str(uuid.UUID(int=n)) for n in range(1, 11)]
    h = make_rotation(tenants=tenants, ROTATION_CONCURRENCY=8, ROTATION_RATE_PER_SECOND=4)
    for tenant in tenants:
        await onboard(h, tenant, M365)
    advance(h, INTO_THE_WINDOW)
    starts: list[float] = []
    h.locks.on_enter = lambda key: starts.append(h.clock.monotonic())

    summary = await h.sweep.run()

    assert summary.outcomes == Counter({Action.ROTATED.value: 10})
    gaps = [later - earlier for earlier, later in itertools.pairwise(sorted(starts))]
    assert min(gaps) >= 0.25 - 1e-9  # 4 a second, although 8 workers were free
    assert starts[-1] - starts[0] >= 9 * 0.25 - 1e-9


# --- consent converged on every rotation; pending that lasts is a failure -------------------------


def principal_of(h: RotationHarness, integration: str = M365) -> str:
    principal = h.directory.service_principal_of(TENANT, app_of(h, TENANT, integration).app_id)
    assert principal is not None
    return principal


async def test_a_permission_a_customer_admin_revoked_is_granted_again_before_the_next_secret_is_proven() -> None:
    h = make_rotation(VERIFY_TIMEOUT_SECONDS=20)
    old = await onboard(h)
    principal = principal_of(h)
    taken = min(h.directory.tenants[TENANT].assignments[principal])
    h.directory.revoke_by_hand(TENANT, principal, taken)
    advance(h, INTO_THE_WINDOW)

    result = await h.rotation.rotate(TENANT, M365)

    assert result.action is Action.ROTATED, result.detail
    assert taken in h.directory.tenants[TENANT].assignments[principal]
    assert latest(h).tags["key-id"] != old


async def test_a_role_beyond_the_profile_is_revoked_by_the_next_rotation() -> None:
    h = make_rotation()
    await onboard(h)
    principal = principal_of(h)
    resource = next(iter(h.directory.tenants[TENANT].resources.values()))
    extra = next(rid for value, rid in resource.roles_by_value.items() if value == "Mail.Read")
    await h.directory.grant(TENANT, principal, [(resource.object_id, extra)])
    advance(h, INTO_THE_WINDOW)

    assert (await h.rotation.rotate(TENANT, M365)).action is Action.ROTATED
    assert (resource.object_id, extra) not in h.directory.tenants[TENANT].assignments[principal]
    assert [c["resource_object_id"] for c in h.directory.calls_of("revoke")] == [resource.object_id]


async def test_a_rotation_pending_past_the_deadline_fails_the_sweep_loudly(caplog: pytest.LogCaptureFixture) -> None:
    h = make_rotation(VERIFY_TIMEOUT_SECONDS=20)
    await onboard(h)
    advance(h, INTO_THE_WINDOW)
    h.checker.not_replicated_for(10**9)  # the new secret never works

    first = await h.sweep.run()
    assert first.outcomes == Counter({"pending": 1}) and not first.failures_by_tenant
    assert "pending-since" in latest(h).tags

    advance(h, timedelta(hours=25))
    with caplog.at_level("INFO"):
        later = await h.sweep.run()

    assert later.outcomes == Counter({"failed": 1}) and later.failures_by_tenant == Counter({TENANT: 1})
    events = [r.audit for r in caplog.records if hasattr(r, "audit")]
    assert any(e["operation"] == "rotation.stuck" for e in events)
    assert any(r.levelname == "ERROR" and "pending since" in r.getMessage() for r in caplog.records)

    h.checker.not_replicated_for(0)
    assert (await h.rotation.rotate(TENANT, M365)).action is Action.ROTATED
    assert "pending-since" not in latest(h).tags


async def test_a_rotation_keeps_the_lifetime_the_onboarding_caller_asked_for() -> None:
    h = make_rotation()
    await onboard(h, lifetime_days=30)
    assert latest(h).tags["lifetime-days"] == "30"

    assert (await h.rotation.rotate(TENANT, M365, force=True)).action is Action.ROTATED

    new = app_of(h).passwords[latest(h).tags["key-id"]].info
    assert new.end - new.start == timedelta(days=30)
    assert latest(h).tags["lifetime-days"] == "30"


# --- the problem a rotation ends with, for the fleet view ---------------------------------------


async def test_a_failed_retirement_records_its_problem_and_the_run_that_retires_sheds_it() -> None:
    h = make_rotation()
    await onboard(h)
    advance(h, INTO_THE_WINDOW)
    assert (await h.rotation.rotate(TENANT, M365)).action is Action.ROTATED
    advance(h, GRACE + timedelta(minutes=1))
    h.directory.fail_next("remove_password", refused(), times=2)

    for failures in (1, 2):
        with pytest.raises(UpstreamError):
            await h.rotation.rotate(TENANT, M365)
        recorded = ProblemRecord.parse(latest(h).tags.get("last-problem"))
        assert recorded == ProblemRecord("upstream-error", h.clock.now(), failures)

    result = await h.rotation.rotate(TENANT, M365)
    assert result.action is Action.RETIRED
    assert "last-problem" not in latest(h).tags
    assert h.vault.version_count(name_of(h)) == 2, "the problem is shed on the version it was recorded on"


async def test_a_failed_rotation_of_a_credential_not_yet_due_is_revisited_by_the_sweep_which_sheds_its_problem() -> (
    None
):
    h = make_rotation()
    await onboard(h)
    h.directory.fail_next("find_application", unavailable())  # before any journal is written
    with pytest.raises(UpstreamUnavailable):
        await h.rotation.rotate(TENANT, M365, force=True)  # on demand, months before it is due
    assert "last-problem" in latest(h).tags
    assert await planned(h) == {(TENANT, M365): "retry"}

    summary = await h.sweep.run()
    assert summary.outcomes == Counter({"nothing-due": 1})
    assert "last-problem" not in latest(h).tags and await planned(h) == {(TENANT, M365): "ok"}
