"""The onboarding use case over in-memory fakes: idempotence, crash recovery, replication, policy, hygiene."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Literal

import pytest

from shared.adapters.x509 import public_certificate
from shared.domain.errors import (
    NameHeldByDeletedRegistration,
    NotOwned,
    PermissionNotOffered,
    RegistrationNotFound,
    ResourceApiMissing,
    SecretsForbiddenByPolicy,
    UnknownIntegration,
    UpstreamError,
    UpstreamUnavailable,
)
from shared.domain.model import KeyInfo, PasswordInfo, PasswordPolicy, Secret, SecretKind
from shared.domain.ports import NotReplicatedYet, PasswordOutcomeUnknown, Throttled
from shared.entrypoints.presenters import registration_json
from shared.usecases.onboarding import OnboardRequest, Outcome
from shared.usecases.replication import PENDING_RETRY_AFTER_SECONDS
from tests.fakes import (
    DEFENDER_APP_ID,
    GRAPH_APP_ID,
    LOG_ANALYTICS_APP_ID,
    SERVICE_OBJECT_ID,
    START,
    TENANT,
    Call,
    FakeApp,
    FakeKey,
    FakePassword,
    FaultSwitches,
    Harness,
    When,
    make_onboarding,
    resource_object_id,
    role_id,
    self_signed,
)

OTHER_TENANT = "22222222-3333-4444-8555-666666666666"
M365 = "m365-defender"
REQUEST = OnboardRequest(TENANT, M365)


class Crash(RuntimeError):
    """The process died at this point: an exception nothing in the use case handles."""


def unavailable() -> UpstreamUnavailable:
    return UpstreamUnavailable("Key Vault is throttling while writing a secret", "keyvault", 503, None)


def lost_response() -> PasswordOutcomeUnknown:
    return PasswordOutcomeUnknown("addPassword answered 503")


def client_secret_only(call: Call) -> bool:
    return str(call["name"]).endswith("-client-secret")


def client_id_only(call: Call) -> bool:
    return str(call["name"]).endswith("-client-id")


def after_the_first() -> Callable[[Call], bool]:
    """Matches every call but the first: the PUT looks its app up once before it mints."""
    seen = 0

    def matches(call: Call) -> bool:
        nonlocal seen
        seen += 1
        return seen > 1

    return matches


# --- helpers ----------------------------------------------------------------------------------


def names(h: Harness, tenant: str = TENANT, integration: str = M365) -> dict[SecretKind, str]:
    """The three secrets of a client-secret registration (a vendor certificate's record is not one of them)."""
    kinds = (SecretKind.CLIENT_ID, SecretKind.TENANT_ID, SecretKind.CLIENT_SECRET)
    return {kind: h.onboarding.registry.secret_name(tenant, integration, kind) for kind in kinds}


def wanted_grants(h: Harness, tenant: str = TENANT, integration: str = M365) -> set[tuple[str, str]]:
    profile = h.onboarding.catalog.require(integration)
    return {
        (resource_object_id(tenant, p.resource_app_id), role_id(p.resource_app_id, role))
        for p in profile.permissions
        for role in p.roles
    }


def the_app(h: Harness, tenant: str = TENANT, integration: str = M365) -> FakeApp:
    wanted = h.onboarding.registry.unique_name(integration)
    apps = [a for a in h.directory.apps(tenant) if a.unique_name == wanted]
    assert len(apps) == 1, f"expected exactly one app named {wanted}, found {len(apps)}"
    return apps[0]


def assert_converged(h: Harness, tenant: str = TENANT, integration: str = M365) -> FakeApp:
    """One app, one service principal, exactly the profile's grants, exactly one password (the stored, verified one)."""
    app = the_app(h, tenant, integration)
    principal = h.directory.service_principal_of(tenant, app.app_id)
    assert principal is not None
    assert list(h.directory.tenants[tenant].service_principals) == [app.app_id]
    assert h.directory.granted(tenant, principal) == wanted_grants(h, tenant, integration)
    secret_names = names(h, tenant, integration)
    stored = h.vault.latest(secret_names[SecretKind.CLIENT_SECRET])
    assert stored is not None
    assert list(app.passwords) == [stored.tags["key-id"]]
    assert stored.tags["verified"] == "true"
    assert h.directory.is_current_password(tenant, app.app_id, stored.value)
    client_id = h.vault.latest(secret_names[SecretKind.CLIENT_ID])
    tenant_id = h.vault.latest(secret_names[SecretKind.TENANT_ID])
    assert client_id is not None and client_id.value == app.app_id
    assert tenant_id is not None and tenant_id.value == tenant
    return app


# --- 1, 2: first and repeated PUT -------------------------------------------------------------


async def test_first_onboarding_registers_one_app_grants_the_profile_and_stores_three_tagged_secrets() -> None:
    h = make_onboarding()
    result = await h.onboarding.onboard(REQUEST)

    assert result.outcome is Outcome.CREATED
    app = assert_converged(h)
    assert h.directory.calls["upsert_application"] == 1
    assert h.directory.calls["upsert_service_principal"] == 1
    assert h.directory.calls["add_password"] == 1
    assert len(h.directory.minted) == 1
    (password,) = app.passwords.values()

    secret_names = names(h)
    common = {
        "managed-by": "tenant-onboarding",
        "tenant-id": TENANT,
        "integration": M365,
        "app-object-id": app.object_id,
        "client-id": app.app_id,
    }
    client_secret = h.vault.latest(secret_names[SecretKind.CLIENT_SECRET])
    assert client_secret is not None
    assert client_secret.tags == common | {
        "kind": "client-secret",
        "key-id": password.info.key_id,
        "verified": "true",
        "issued-at": "2025-01-15T09:00:00Z",
        "lifetime-days": "180",  # what the caller asked for (here the default), so rotation keeps to it
    }
    assert client_secret.value == password.text
    assert client_secret.expires == password.info.end == START + timedelta(days=180)
    assert client_secret.content_type == "application/vnd.entra.client-secret"
    for kind in (SecretKind.CLIENT_ID, SecretKind.TENANT_ID):
        stored = h.vault.latest(secret_names[kind])
        assert stored is not None
        assert stored.tags == common | {"kind": kind.value, "credential-type": "secret"}
        assert stored.expires is None
    assert h.vault.version_counts() == dict.fromkeys(secret_names.values(), 1)

    registration = registration_json(result.registration)
    assert registration["application"] == {
        "objectId": app.object_id,
        "clientId": app.app_id,
        "displayName": "Microsoft 365 and Defender (Microsoft Graph)",
    }
    assert registration["drift"] == []
    assert all(p["granted"] for p in registration["permissions"])
    assert registration["credential"]["verified"] is True
    assert registration["credential"]["keyId"] == password.info.key_id
    assert registration["credential"]["otherCredentialsOnApp"] == 0
    assert registration["keyVaultReferences"]["clientSecret"] == (
        f"@Microsoft.KeyVault(SecretUri=https://vault.example/secrets/{secret_names[SecretKind.CLIENT_SECRET]}/)"
    )
    assert result.changes == [
        "application created",
        "service principal created",
        "10 permissions granted",
        "client secret created",
        "client and tenant ids stored",
    ]


async def test_second_identical_put_creates_nothing() -> None:
    h = make_onboarding()
    await h.onboarding.onboard(REQUEST)
    versions = h.vault.version_counts()
    app_before = the_app(h)
    passwords_before = list(app_before.passwords)

    result = await h.onboarding.onboard(REQUEST)

    assert result.outcome is Outcome.COMPLETE
    assert result.changes == []
    assert h.directory.calls["add_password"] == 1
    assert h.directory.calls["grant"] == 2  # the first PUT's single probing grant, then the rest; none now
    assert h.directory.calls["remove_password"] == 0
    assert h.vault.calls["write"] == 3
    assert h.vault.calls["update_tags"] == 1
    assert h.vault.version_counts() == versions
    assert list(the_app(h).passwords) == passwords_before
    assert registration_json(result.registration)["drift"] == []


async def test_a_first_onboarding_reads_once_up_front_and_answers_without_reading_back() -> None:
    h = make_onboarding()

    result = await h.onboarding.onboard(REQUEST)

    assert result.outcome is Outcome.CREATED
    # Key Vault is read once per name (the three secrets and a vendor certificate's record), beside the
    # tenant's resource APIs and the client certificate, and the Client ID once more before the lock (beside
    # the tenant's reachability: is this a federated registration?); the app is looked up once (an existing one
    # must prove it is this service's before anything is written to it); a service principal this PUT created
    # has no grants to read; nothing could be an orphan. The answer is what the PUT just did, as a GET reads it.
    assert h.vault.calls["read"] == 5
    assert h.vault.calls["read_certificate"] == 1
    assert h.vault.calls["stored_key_ids"] == 0
    assert h.directory.calls["find_application"] == 1
    for read in ("find_service_principal", "assignments", "application_owners"):
        assert h.directory.calls[read] == 0, read
    assert result.registration == await h.status.describe(TENANT, M365)


async def test_the_secret_is_minted_and_stored_while_the_grants_wait_for_the_service_principal() -> None:
    h = make_onboarding()
    h.directory.fail_next("grant", NotReplicatedYet("the service principal"), times=5)

    result = await h.onboarding.onboard(REQUEST)

    assert result.outcome is Outcome.CREATED
    calls = [name for name, _ in h.directory.log]
    last_grant = len(calls) - 1 - calls[::-1].index("grant")
    assert calls.index("add_password") < last_grant
    assert h.vault.calls["update_tags"] == 1
    assert_converged(h)


# --- 3: a PUT that died at any write is finished by the next ------------------------------------


@dataclass(frozen=True)
class Fault:
    fake: Literal["directory", "vault"]
    switch: Literal["fail_next", "fail_after"]
    operation: str
    error: Callable[[], Exception]
    when: When | None = None


CRASHES = [
    pytest.param((Fault("directory", "fail_next", "upsert_application", Crash),), id="upsert_application-before"),
    pytest.param((Fault("directory", "fail_after", "upsert_application", Crash),), id="upsert_application-after"),
    pytest.param(
        (Fault("directory", "fail_next", "upsert_service_principal", Crash),), id="upsert_service_principal-before"
    ),
    pytest.param(
        (Fault("directory", "fail_after", "upsert_service_principal", Crash),), id="upsert_service_principal-after"
    ),
    pytest.param((Fault("directory", "fail_next", "grant", Crash),), id="grant-before"),
    pytest.param((Fault("directory", "fail_after", "grant", Crash),), id="grant-after"),
    pytest.param((Fault("directory", "fail_next", "add_password", Crash),), id="add_password-before"),
    # Minted, then the process died before it saw the response: an orphan only the grace-period cleanup removes.
    pytest.param((Fault("directory", "fail_after", "add_password", Crash),), id="add_password-after-crash"),
    # Minted, response lost (PasswordOutcomeUnknown), and the process died while looking for it to remove it.
    pytest.param(
        (
            Fault("directory", "fail_after", "add_password", lost_response),
            Fault("directory", "fail_next", "find_application", Crash, after_the_first()),
        ),
        id="add_password-after-lost-response",
    ),
    pytest.param(
        (Fault("vault", "fail_next", "write", unavailable, client_secret_only),), id="vault-write-client-secret-before"
    ),
    pytest.param((Fault("vault", "fail_next", "update_tags", unavailable),), id="vault-update_tags-before"),
    pytest.param((Fault("vault", "fail_after", "update_tags", Crash),), id="vault-update_tags-after"),
    pytest.param(
        (Fault("vault", "fail_next", "write", unavailable, client_id_only),), id="vault-write-client-id-before"
    ),
    pytest.param((Fault("vault", "fail_after", "write", Crash, client_id_only),), id="vault-write-client-id-after"),
]


def arm(h: Harness, fault: Fault) -> None:
    fake: FaultSwitches = h.directory if fault.fake == "directory" else h.vault
    switch = fake.fail_next if fault.switch == "fail_next" else fake.fail_after
    switch(fault.operation, fault.error(), when=fault.when)


@pytest.mark.parametrize("faults", CRASHES)
async def test_a_put_that_died_at_any_write_is_finished_by_the_next_put(faults: tuple[Fault, ...]) -> None:
    h = make_onboarding()
    for fault in faults:
        arm(h, fault)

    with pytest.raises((Crash, UpstreamUnavailable)):
        await h.onboarding.onboard(REQUEST)
    assert h.directory.unfired() == [] and h.vault.unfired() == [], "the fault never fired"

    stored_ids = {v.tags.get("key-id") for v in h.vault.versions.get(names(h)[SecretKind.CLIENT_SECRET], [])}
    orphans = [k for a in h.directory.apps(TENANT) for k in a.passwords if k not in stored_ids]
    h.clock.advance(minutes=h.onboarding.settings.orphan_grace_minutes + 1)
    result = await h.onboarding.onboard(REQUEST)

    # COMPLETE too: a crash after the last write (the ids) leaves nothing to do but orphan cleanup.
    assert result.outcome is not Outcome.PENDING
    app = assert_converged(h)
    assert not set(orphans) & set(app.passwords), "an orphaned secret is still on the app"
    if orphans:
        assert f"{len(orphans)} orphaned secrets removed" in result.changes
    assert registration_json(result.registration)["drift"] == []
    assert (await h.onboarding.onboard(REQUEST)).outcome is Outcome.COMPLETE


async def test_an_orphan_is_kept_until_it_is_older_than_the_grace_period() -> None:
    h = make_onboarding(ORPHAN_GRACE_MINUTES=5)
    await h.onboarding.onboard(REQUEST)
    # The stored credential disappears from the app (removed by hand), so the next PUT mints, and dies.
    the_app(h).passwords.clear()
    h.directory.fail_after("add_password", Crash())
    with pytest.raises(Crash):
        await h.onboarding.onboard(REQUEST)
    orphan = h.directory.minted[-1].info.key_id

    result = await h.onboarding.onboard(REQUEST)  # at once: it may belong to a request still in flight
    assert result.outcome is Outcome.UPDATED
    assert orphan in the_app(h).passwords
    assert registration_json(result.registration)["credential"]["otherCredentialsOnApp"] == 1

    h.clock.advance(minutes=4)
    assert (await h.onboarding.onboard(REQUEST)).outcome is Outcome.COMPLETE
    assert orphan in the_app(h).passwords

    h.clock.advance(minutes=2)
    result = await h.onboarding.onboard(REQUEST)
    assert result.changes == ["1 orphaned secrets removed"]
    assert_converged(h)
    assert h.directory.calls_of("remove_password")[-1]["key_id"] == orphan


# --- 4, 5: minting under a lost response and throttling -----------------------------------------


async def test_a_lost_add_password_response_removes_that_password_and_mints_once_more() -> None:
    h = make_onboarding()
    h.directory.fail_after("add_password", lost_response())

    result = await h.onboarding.onboard(REQUEST)

    assert result.outcome is Outcome.CREATED
    lost, kept = h.directory.minted
    assert lost.info.display_name == kept.info.display_name  # the unique name it was found by
    assert [c["key_id"] for c in h.directory.calls_of("remove_password")] == [lost.info.key_id]
    app = assert_converged(h)
    assert list(app.passwords) == [kept.info.key_id]


async def test_a_lost_add_password_response_that_minted_nothing_removes_nothing() -> None:
    h = make_onboarding()
    h.directory.fail_next("add_password", lost_response())

    assert (await h.onboarding.onboard(REQUEST)).outcome is Outcome.CREATED

    assert h.directory.calls["add_password"] == 2
    assert len(h.directory.minted) == 1
    assert h.directory.calls["remove_password"] == 0
    assert_converged(h)


async def test_throttled_add_password_waits_the_retry_after_and_mints_once() -> None:
    h = make_onboarding()
    h.directory.fail_next("add_password", Throttled("graph", 3))

    assert (await h.onboarding.onboard(REQUEST)).outcome is Outcome.CREATED

    assert 3 in h.clock.sleeps
    assert h.clock.slept >= 3
    assert h.directory.calls["add_password"] == 2
    assert len(h.directory.minted) == 1
    assert_converged(h)


async def test_throttled_grants_wait_the_retry_after_graph_asked_for() -> None:
    h = make_onboarding()
    h.directory.throttle_grants(retry_after=7)

    assert (await h.onboarding.onboard(REQUEST)).outcome is Outcome.CREATED

    assert 7 in h.clock.sleeps
    assert h.directory.calls["grant"] == 3  # the throttled probe, the probe again, then the rest
    assert_converged(h)


@pytest.mark.parametrize("step", ["add_password", "grant"])
async def test_throttling_longer_than_the_deadline_answers_pending_with_graphs_retry_after(step: str) -> None:
    h = make_onboarding(REPLICATION_TIMEOUT_SECONDS=60)
    if step == "add_password":
        h.directory.fail_next("add_password", Throttled("graph", 120))
    else:
        h.directory.throttle_grants(retry_after=120)

    pending = await h.onboarding.onboard(REQUEST)

    assert pending.outcome is Outcome.PENDING
    if step == "add_password":
        assert h.directory.minted == []
    else:
        # The secret does not wait for the grants: it is minted and stored unverified, for the next PUT to prove.
        stored = h.vault.latest(names(h)[SecretKind.CLIENT_SECRET])
        assert stored is not None and stored.tags["verified"] == "false"
        assert [p.info.key_id for p in h.directory.minted] == [stored.tags["key-id"]]
    assert pending.retry_after is not None and pending.retry_after >= 120, (
        f"Graph asked for 120 s; the caller is told to come back after {pending.retry_after} s "
        f"because {pending.pending_reason!r}"
    )


# --- 6, 7: replication and verification time ---------------------------------------------------


async def test_replication_lag_within_the_timeout_is_waited_out() -> None:
    h = make_onboarding()
    h.directory.replication_steps = 3
    h.checker.not_replicated_for(2)

    result = await h.onboarding.onboard(REQUEST)

    assert result.outcome is Outcome.CREATED
    # The two branches that need the new app poll it side by side and share its 3 lagging reads
    # (NoBackingApplicationObject, 404 on addPassword), then each succeeds once.
    assert h.directory.calls["upsert_service_principal"] + h.directory.calls["add_password"] == 3 + 2
    # 3 single probing grants while the new service principal is not found, then it, then the rest.
    assert h.directory.calls["grant"] == 5
    assert h.directory.calls["assignments"] == 0  # a service principal this PUT created has no grants to read
    assert h.checker.calls["granted_roles"] == 3
    assert 0 < h.clock.elapsed < h.onboarding.settings.replication_timeout_seconds
    assert_converged(h)
    assert len(h.directory.minted) == 1


async def test_replication_lag_past_the_timeout_answers_pending_and_the_next_put_completes() -> None:
    h = make_onboarding(REPLICATION_TIMEOUT_SECONDS=10)
    h.directory.replication_steps = 10_000

    pending = await h.onboarding.onboard(REQUEST)

    assert pending.outcome is Outcome.PENDING
    assert pending.retry_after == PENDING_RETRY_AFTER_SECONDS
    assert pending.pending_reason is not None and "service principal" in pending.pending_reason
    assert pending.changes == ["application created"]
    assert h.clock.elapsed <= 10
    assert len(h.directory.apps(TENANT)) == 1
    assert h.directory.minted == []
    assert h.vault.versions == {}

    h.directory.replication_steps = 0  # Entra catches up, and stays quick
    h.directory.settle()
    result = await h.onboarding.onboard(REQUEST)

    assert result.outcome is Outcome.UPDATED
    assert "application created" not in result.changes
    assert "service principal created" in result.changes
    assert_converged(h)
    assert len(h.directory.minted) == 1
    assert (await h.onboarding.onboard(REQUEST)).outcome is Outcome.COMPLETE


async def test_grants_still_replicating_past_the_timeout_answer_pending_and_are_finished_next_time() -> None:
    h = make_onboarding(REPLICATION_TIMEOUT_SECONDS=10)
    await h.onboarding.onboard(REQUEST)
    app = the_app(h)
    principal = h.directory.service_principal_of(TENANT, app.app_id)
    assert principal is not None
    h.directory.revoke_by_hand(TENANT, principal, min(wanted_grants(h)))
    h.directory.fail_next("grant", NotReplicatedYet("the service principal"), times=10_000)

    pending = await h.onboarding.onboard(REQUEST)

    assert pending.outcome is Outcome.PENDING
    assert pending.pending_reason is not None and "permission grants" in pending.pending_reason
    h.directory.clear_faults()
    assert (await h.onboarding.onboard(REQUEST)).changes == ["1 permissions granted"]
    assert_converged(h)


async def test_verification_failing_past_its_timeout_is_pending_and_the_next_put_verifies_without_minting() -> None:
    h = make_onboarding(VERIFY_TIMEOUT_SECONDS=20)
    h.checker.not_replicated_for(10_000)
    secret_names = names(h)

    pending = await h.onboarding.onboard(REQUEST)

    assert pending.outcome is Outcome.PENDING
    assert pending.retry_after == PENDING_RETRY_AFTER_SECONDS
    assert pending.pending_reason is not None and "new credential" in pending.pending_reason
    assert 0 < h.clock.elapsed <= 20
    stored = h.vault.latest(secret_names[SecretKind.CLIENT_SECRET])
    assert stored is not None and stored.tags["verified"] == "false"
    assert registration_json(pending.registration)["credential"]["verified"] is False
    assert h.vault.latest(secret_names[SecretKind.CLIENT_ID]) is None  # ids only after proof

    h.checker.not_replicated_for(0)
    result = await h.onboarding.onboard(REQUEST)

    assert result.outcome is Outcome.UPDATED
    assert "client secret created" not in result.changes
    assert len(h.directory.minted) == 1
    assert h.vault.version_count(secret_names[SecretKind.CLIENT_SECRET]) == 1
    assert stored.tags["verified"] == "true"  # the same version, re-tagged in place
    assert_converged(h)


# --- 8, 9: tenants that cannot satisfy the profile, and password policy -------------------------


def assert_nothing_written(h: Harness, tenant: str) -> None:
    assert h.directory.apps(tenant) == []
    assert h.directory.tenants[tenant].service_principals == {}
    for write in ("upsert_application", "upsert_service_principal", "grant", "add_password", "remove_password"):
        assert h.directory.calls[write] == 0, write
    assert h.vault.versions == {}
    assert h.vault.calls["write"] == 0


async def test_a_tenant_without_defender_gets_resource_api_missing_and_nothing_is_written() -> None:
    h = make_onboarding()
    h.directory.add_tenant(OTHER_TENANT, without={DEFENDER_APP_ID})

    with pytest.raises(ResourceApiMissing) as raised:
        await h.onboarding.onboard(OnboardRequest(OTHER_TENANT, "defender-endpoint"))

    assert raised.value.extensions["resourceAppId"] == DEFENDER_APP_ID
    assert "WindowsDefenderATP" in raised.value.detail
    assert_nothing_written(h, OTHER_TENANT)
    # The same tenant can still take a profile it has the resources for.
    assert (await h.onboarding.onboard(OnboardRequest(OTHER_TENANT, M365))).outcome is Outcome.CREATED


async def test_a_role_the_resource_does_not_offer_gets_permission_not_offered_and_nothing_is_written() -> None:
    h = make_onboarding()
    h.directory.add_tenant(OTHER_TENANT, not_offering={GRAPH_APP_ID: {"ThreatHunting.Read.All"}})

    with pytest.raises(PermissionNotOffered) as raised:
        await h.onboarding.onboard(OnboardRequest(OTHER_TENANT, M365))

    assert "ThreatHunting.Read.All" in raised.value.detail
    assert raised.value.extensions["resourceAppId"] == GRAPH_APP_ID
    assert_nothing_written(h, OTHER_TENANT)


async def test_a_policy_that_forbids_secrets_is_refused_before_anything_is_created() -> None:
    h = make_onboarding()
    h.directory.add_tenant(OTHER_TENANT, policy=PasswordPolicy(additions_allowed=False, policy_id="policy-1"))

    with pytest.raises(SecretsForbiddenByPolicy) as raised:
        await h.onboarding.onboard(OnboardRequest(OTHER_TENANT, M365))

    assert raised.value.extensions["policyId"] == "policy-1"
    assert_nothing_written(h, OTHER_TENANT)


async def test_a_policy_max_lifetime_clamps_the_default_secret_lifetime() -> None:
    h = make_onboarding()
    h.directory.add_tenant(OTHER_TENANT, policy=PasswordPolicy(max_lifetime_days=30))
    progress: list[tuple[str, str]] = []

    result = await h.onboarding.onboard(
        OnboardRequest(OTHER_TENANT, M365), progress=lambda step, detail: progress.append((step, detail))
    )

    assert result.outcome is Outcome.CREATED
    (password,) = h.directory.minted
    assert abs(password.info.end - (h.clock.now() + timedelta(days=30))) < timedelta(minutes=1)
    stored = h.vault.latest(names(h, OTHER_TENANT)[SecretKind.CLIENT_SECRET])
    assert stored is not None and stored.expires == password.info.end
    assert ("policy", "secret lifetime clamped to 30 days by the tenant's policy") in progress


async def test_a_requested_lifetime_below_the_policy_cap_is_kept() -> None:
    h = make_onboarding()
    h.directory.add_tenant(OTHER_TENANT, policy=PasswordPolicy(max_lifetime_days=30))

    await h.onboarding.onboard(OnboardRequest(OTHER_TENANT, M365, secret_lifetime_days=10))

    (password,) = h.directory.minted
    assert password.info.end == START + timedelta(days=10)


# --- 10: a secret whose store failed is taken off the app ---------------------------------------


async def test_a_put_that_died_right_after_storing_the_secret_is_finished_by_the_next_put() -> None:
    h = make_onboarding()
    h.vault.fail_after("write", Crash(), when=client_secret_only)
    # The process dies before it can read back whether the write landed.
    h.vault.fail_next("read", Crash(), when=lambda call: client_secret_only(call) and h.vault.calls["write"] > 0)

    with pytest.raises(Crash):
        await h.onboarding.onboard(REQUEST)
    h.vault.clear_faults()
    h.clock.advance(minutes=31)

    await h.onboarding.onboard(REQUEST)
    assert_converged(h)


async def test_a_vault_write_whose_answer_was_lost_is_recognised_as_stored() -> None:
    h = make_onboarding()
    h.vault.fail_after(
        "write", UpstreamUnavailable("lost", "keyvault", None, "ServiceResponseError"), when=client_secret_only
    )

    result = await h.onboarding.onboard(REQUEST)

    assert result.outcome is Outcome.CREATED
    assert h.directory.calls["add_password"] == 1
    assert_converged(h)


async def test_a_failed_vault_write_of_a_new_secret_takes_it_off_the_app_and_propagates() -> None:
    h = make_onboarding()
    h.vault.fail_next("write", unavailable(), when=client_secret_only)

    with pytest.raises(UpstreamUnavailable):
        await h.onboarding.onboard(REQUEST)

    (password,) = h.directory.minted
    assert the_app(h).passwords == {}
    assert [c["key_id"] for c in h.directory.calls_of("remove_password")] == [password.info.key_id]
    assert h.vault.latest(names(h)[SecretKind.CLIENT_SECRET]) is None

    assert (await h.onboarding.onboard(REQUEST)).outcome is Outcome.UPDATED
    assert_converged(h)


# --- 11: drift ----------------------------------------------------------------------------------


async def test_a_revoked_grant_is_reported_as_drift_and_only_it_is_granted_again() -> None:
    h = make_onboarding()
    await h.onboarding.onboard(REQUEST)
    app = the_app(h)
    principal = h.directory.service_principal_of(TENANT, app.app_id)
    assert principal is not None
    revoked = (resource_object_id(TENANT, GRAPH_APP_ID), role_id(GRAPH_APP_ID, "User.Read.All"))
    h.directory.revoke_by_hand(TENANT, principal, revoked)

    state = registration_json(await h.status.describe(TENANT, M365))

    assert [p["permission"] for p in state["permissions"] if not p["granted"]] == ["User.Read.All"]
    assert state["drift"] == ["permission not granted: User.Read.All"]

    result = await h.onboarding.onboard(REQUEST)

    assert result.outcome is Outcome.UPDATED
    assert result.changes == ["1 permissions granted"]
    assert h.directory.calls_of("grant")[-1]["roles"] == [revoked]
    assert len(h.directory.minted) == 1
    assert_converged(h)


async def test_a_stored_secret_removed_from_the_app_is_replaced_by_exactly_one_new_one() -> None:
    h = make_onboarding()
    await h.onboarding.onboard(REQUEST)
    app = the_app(h)
    (old,) = list(app.passwords)
    del app.passwords[old]  # someone deleted it in the portal

    state = registration_json(await h.status.describe(TENANT, M365))
    assert state["drift"] == ["stored client secret matches no credential on the app"]

    result = await h.onboarding.onboard(REQUEST)

    assert result.outcome is Outcome.UPDATED
    assert "client secret created" in result.changes
    assert len(h.directory.minted) == 2
    assert_converged(h)


async def test_an_expired_stored_secret_is_replaced_and_the_old_one_left_to_rotation() -> None:
    h = make_onboarding()
    await h.onboarding.onboard(REQUEST)
    (old,) = list(the_app(h).passwords)
    h.clock.advance(days=181)

    assert registration_json(await h.status.describe(TENANT, M365))["drift"] == ["client secret expired"]
    result = await h.onboarding.onboard(REQUEST)

    assert "client secret created" in result.changes
    stored = h.vault.latest(names(h)[SecretKind.CLIENT_SECRET])
    assert stored is not None and stored.tags["key-id"] == h.directory.minted[-1].info.key_id
    assert old in the_app(h).passwords  # it was stored once: rotation's to retire, not orphan cleanup's
    assert registration_json(result.registration)["drift"] == []


# --- 12: secret hygiene -------------------------------------------------------------------------

STANDARD_RECORD_FIELDS = set(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
}


async def test_no_secret_text_reaches_a_log_record_the_progress_or_the_result(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    h = make_onboarding()
    # Walk the noisy paths too: throttling, a lost response, replication and verification retries.
    h.directory.fail_next("add_password", Throttled("graph", 1))
    h.directory.fail_after("add_password", lost_response())
    h.directory.replication_steps = 2
    h.checker.not_replicated_for(2)
    progress: list[str] = []

    result = await h.onboarding.onboard(REQUEST, progress=lambda step, detail: progress.append(f"{step} {detail}"))

    assert result.outcome is Outcome.CREATED
    texts = [p.text for p in h.directory.minted]
    assert len(texts) == 2
    stored = h.vault.latest(names(h)[SecretKind.CLIENT_SECRET])
    assert stored is not None and stored.value == texts[-1]  # the search below looks for a real secret
    assert any(r.name == "tenant_onboarding.audit" for r in caplog.records)
    assert any(r.levelno == logging.DEBUG and "retrying" in r.getMessage() for r in caplog.records)

    for record in caplog.records:
        extras = {k: v for k, v in vars(record).items() if k not in STANDARD_RECORD_FIELDS}
        seen = " ".join(
            (record.getMessage(), repr(record.args), repr(extras), json.dumps(extras, default=repr), str(record.msg))
        )
        for text in texts:
            assert text not in seen, f"secret text in log record {record.name}: {record.msg!r}"
    visible = json.dumps(
        {
            "registration": registration_json(result.registration),
            "changes": result.changes,
            "reason": result.pending_reason,
            "progress": progress,
        }
    )
    for text in texts:
        assert text not in visible


# --- reading state, and the fakes themselves ----------------------------------------------------


async def test_status_of_an_integration_never_onboarded_is_registration_not_found() -> None:
    h = make_onboarding()
    with pytest.raises(RegistrationNotFound):
        await h.status.status(TENANT, M365)
    await h.onboarding.onboard(REQUEST)
    assert registration_json(await h.status.status(TENANT, M365))["drift"] == []


async def test_an_integration_not_in_the_catalog_is_refused_before_any_call() -> None:
    h = make_onboarding()
    with pytest.raises(UnknownIntegration):
        await h.onboarding.onboard(OnboardRequest(TENANT, "no-such-thing"))
    assert sum(h.directory.calls.values()) == 0


async def test_a_profile_on_two_resource_apis_is_granted_and_proven_on_both() -> None:
    h = make_onboarding()
    result = await h.onboarding.onboard(OnboardRequest(TENANT, "sentinel"))

    assert result.outcome is Outcome.CREATED
    app = assert_converged(h, integration="sentinel")
    assert {c["scope"] for c in h.checker.calls_of("granted_roles")} == {
        "https://api.loganalytics.io/.default",
        "https://graph.microsoft.com/.default",
    }
    assert h.directory.granted_values(TENANT, app.app_id) == {
        LOG_ANALYTICS_APP_ID: {"Data.Read"},
        GRAPH_APP_ID: {"SecurityEvents.Read.All"},
    }


async def test_two_integrations_in_one_tenant_get_separate_apps_and_secrets() -> None:
    h = make_onboarding()
    await h.onboarding.onboard(REQUEST)
    await h.onboarding.onboard(OnboardRequest(TENANT, "defender-endpoint"))

    assert len(h.directory.apps(TENANT)) == 2
    assert len(h.directory.minted) == 2
    assert len(h.vault.versions) == 6


async def test_fake_checker_reports_only_granted_roles_and_rejects_a_secret_not_on_the_app() -> None:
    h = make_onboarding()
    await h.onboarding.onboard(REQUEST)
    app = the_app(h)
    principal = h.directory.service_principal_of(TENANT, app.app_id)
    assert principal is not None
    (password,) = app.passwords.values()
    scope = "https://graph.microsoft.com/.default"
    profile_roles = set(h.onboarding.catalog.require(M365).permissions[0].roles)

    assert await h.checker.granted_roles(TENANT, app.app_id, Secret(password.text), scope) == profile_roles
    h.directory.revoke_by_hand(
        TENANT, principal, (resource_object_id(TENANT, GRAPH_APP_ID), role_id(GRAPH_APP_ID, "Group.Read.All"))
    )
    assert await h.checker.granted_roles(TENANT, app.app_id, Secret(password.text), scope) == profile_roles - {
        "Group.Read.All"
    }
    with pytest.raises(NotReplicatedYet) as raised:
        await h.checker.granted_roles(TENANT, app.app_id, Secret("not-a-password-of-this-app"), scope)
    assert raised.value.code == "AADSTS7000215"
    h.clock.advance(days=181)
    with pytest.raises(NotReplicatedYet):
        await h.checker.granted_roles(TENANT, app.app_id, Secret(password.text), scope)


async def test_fake_switches_fire_before_or_after_the_work_and_only_when_matching() -> None:
    h = make_onboarding()
    h.vault.fail_next("write", Crash(), when=client_id_only)
    with pytest.raises(Crash):
        await h.vault.write("x-client-id", "v", "text/plain", {}, None)
    assert h.vault.versions == {}
    await h.vault.write("x-tenant-id", "v", "text/plain", {}, None)  # not matched
    h.vault.fail_after("write", Crash())
    with pytest.raises(Crash):
        await h.vault.write("x-client-id", "v", "text/plain", {}, None)
    assert h.vault.version_count("x-client-id") == 1
    assert h.vault.calls["write"] == 3
    assert h.vault.unfired() == []
    with pytest.raises(AttributeError):
        h.directory.fail_next("add_passwrod", Crash())


# --- a deleted app that still holds the unique name ------------------------------------------


async def test_onboarding_after_a_soft_delete_purges_the_deleted_app_and_registers_anew() -> None:
    h = make_onboarding()
    await h.onboarding.onboard(REQUEST)
    old = h.directory.tenants[TENANT].apps[h.onboarding.registry.unique_name(M365)]
    await h.directory.delete_application(TENANT, old.object_id)

    result = await h.onboarding.onboard(REQUEST)

    assert result.outcome is Outcome.CREATED
    assert result.changes[0] == "deleted application purged"
    assert h.directory.tenants[TENANT].deleted_apps == {}
    assert assert_converged(h).object_id != old.object_id


async def test_a_deleted_app_this_service_may_not_purge_is_a_named_conflict_and_nothing_is_created() -> None:
    h = make_onboarding()
    await h.onboarding.onboard(REQUEST)
    old = h.directory.tenants[TENANT].apps[h.onboarding.registry.unique_name(M365)]
    await h.directory.delete_application(TENANT, old.object_id)
    forbidden = UpstreamError("Graph failed", "graph", 403, "Authorization_RequestDenied")
    h.directory.fail_next("purge_deleted_application", forbidden)
    minted = len(h.directory.minted)

    with pytest.raises(NameHeldByDeletedRegistration) as raised:
        await h.onboarding.onboard(REQUEST)

    assert raised.value.status == 409
    assert raised.value.extensions["deletedObjectId"] == old.object_id
    assert h.directory.tenants[TENANT].apps == {} and len(h.directory.minted) == minted


async def test_a_create_refused_while_the_purge_replicates_is_waited_out() -> None:
    h = make_onboarding()
    await h.onboarding.onboard(REQUEST)
    old = h.directory.tenants[TENANT].apps[h.onboarding.registry.unique_name(M365)]
    await h.directory.delete_application(TENANT, old.object_id)
    # Deleted items already show the purge; a replica still refuses the name once.
    held = UpstreamError("Graph failed", "graph", 400, "Request_BadRequest")
    real_upsert = h.directory.upsert_application
    refusals = [held]

    async def upsert_refused_once(*args: object, **kwargs: object) -> object:
        if h.directory.calls["purge_deleted_application"] and refusals:
            raise refusals.pop()
        return await real_upsert(*args, **kwargs)  # type: ignore[arg-type]

    h.directory.upsert_application = upsert_refused_once  # type: ignore[method-assign,assignment]
    result = await h.onboarding.onboard(REQUEST)

    assert result.outcome is Outcome.CREATED and refusals == []


# --- an app under the registration's name that this service cannot prove its own ----------------

INTRUDER = "0badc0de-0000-4000-8000-000000000001"


def squat(h: Harness, *, owners: set[str], password_name: str | None = "mine", **extra: object) -> FakeApp:
    """Someone registers the app under the predictable unique name before the vendor's first PUT."""
    unique = h.onboarding.registry.unique_name(M365)
    app = FakeApp("a9a9a9a9-0000-4000-8000-000000000001", "c1c1c1c1-0000-4000-8000-000000000001", unique,
                  "Contoso look-alike", (), "", frozenset(), owners=owners, **extra)  # type: ignore[arg-type]  # fmt: skip
    if password_name is not None:
        info = PasswordInfo(
            "0e0e0e0e-0000-4000-8000-000000000001", password_name, "abc", START, START + timedelta(days=90)
        )
        app.passwords[info.key_id] = FakePassword(info, "intruder's own secret")
    h.directory.tenants[TENANT].apps[unique] = app
    return app


def foreign_certificate() -> dict[str, FakeKey]:
    """A certificate someone else put on the app, under a display name that is not this service's prefix."""
    issued = self_signed("CN=look-alike", START, START + timedelta(days=365))
    certificate = public_certificate(issued.der)
    info = KeyInfo(
        "0c0c0c0c-0000-4000-8000-000000000001", "intruder's certificate", certificate.thumbprint_sha1,
        certificate.not_before, certificate.not_after,
    )  # fmt: skip
    return {info.key_id: FakeKey(info, issued.der)}


def assert_nothing_granted_or_minted(h: Harness) -> None:
    assert h.directory.calls["grant"] == 0 and h.directory.calls["add_password"] == 0
    assert h.directory.calls["update_application"] == 0 and h.directory.calls["upsert_service_principal"] == 0
    assert not h.vault.versions


@pytest.mark.parametrize(
    ("owners", "extra", "problem"),
    [
        pytest.param({SERVICE_OBJECT_ID, INTRUDER}, {}, "owner(s) other than this service", id="co-owned"),
        pytest.param({SERVICE_OBJECT_ID}, {}, "client secret(s) this service did not add", id="foreign-secret"),
        pytest.param({INTRUDER}, {}, "this service is not an owner", id="not-ours-at-all"),
        pytest.param(
            {SERVICE_OBJECT_ID}, {"keys": foreign_certificate()}, "certificate credential(s)", id="certificate"
        ),
        pytest.param(
            {SERVICE_OBJECT_ID}, {"federated_credential_ids": ("f1",)}, "federated credential(s)", id="federated"
        ),
    ],
)
async def test_an_app_this_service_cannot_prove_its_own_alone_is_refused_and_nothing_is_granted(
    owners: set[str], extra: dict[str, object], problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    h = make_onboarding()
    squat(h, owners=owners, password_name="intruder" if problem.startswith("client secret") else None, **extra)

    with caplog.at_level(logging.INFO, logger="tenant_onboarding.audit"), pytest.raises(NotOwned) as refused:
        await h.onboarding.onboard(REQUEST)

    assert refused.value.status == 409 and refused.value.problem_type == "registration-not-owned"
    assert any(problem in reason for reason in refused.value.extensions["reasons"])
    assert_nothing_granted_or_minted(h)
    events = [r.audit for r in caplog.records if hasattr(r, "audit")]
    assert [e["operation"] for e in events] == ["application.refused"]


async def test_a_secret_named_like_ours_on_an_app_nobody_recorded_is_removed_before_anything_is_granted() -> None:
    h = make_onboarding()
    prefix = h.onboarding.settings.name_prefix
    squat(h, owners={SERVICE_OBJECT_ID}, password_name=f"{prefix} 0123456789ab")  # a copied name

    result = await h.onboarding.onboard(REQUEST)

    assert "1 orphaned secrets removed" in result.changes
    first_grant = next(i for i, (name, _) in enumerate(h.directory.log) if name == "grant")
    removal = next(i for i, (name, _) in enumerate(h.directory.log) if name == "remove_password")
    assert removal < first_grant
    assert "0e0e0e0e-0000-4000-8000-000000000001" not in assert_converged(h).passwords


async def test_a_proven_app_is_written_only_when_it_differs_from_the_profile() -> None:
    h = make_onboarding()
    await h.onboarding.onboard(REQUEST)
    assert (await h.onboarding.onboard(REQUEST)).outcome is Outcome.COMPLETE
    assert h.directory.calls["update_application"] == 0 and h.directory.calls["upsert_application"] == 1

    renamed = await h.onboarding.onboard(OnboardRequest(TENANT, M365, display_name="Contoso SOC"))
    assert renamed.changes == ["application updated"]
    assert the_app(h).display_name == "Contoso SOC"


async def test_a_resource_that_offers_a_role_under_an_unreviewed_id_gets_nothing_granted() -> None:
    h = make_onboarding()
    graph = h.directory.tenants[TENANT].resources[GRAPH_APP_ID]
    swapped = dict(graph.roles_by_value, **{"AuditLog.Read.All": "deadbeef-0000-4000-8000-000000000000"})
    h.directory.tenants[TENANT].resources[GRAPH_APP_ID] = replace(graph, roles_by_value=swapped)

    with pytest.raises(PermissionNotOffered) as refused:
        await h.onboarding.onboard(REQUEST)

    assert "AuditLog.Read.All" in refused.value.detail
    assert h.directory.calls["upsert_application"] == 0 and h.directory.calls["grant"] == 0
