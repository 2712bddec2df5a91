"""The fleet view's rows and states, from Key Vault records as the product leaves them (the fake vault)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.catalog import load_catalog
from shared.domain.model import SecretKind
from shared.domain.registry import Registry, Tag, iso
from shared.entrypoints.report import expiries_by_week, ordered, report_csv, report_text
from shared.usecases import fleet
from shared.usecases.fleet import Fleet, FleetQuery, FleetState
from tests.fakes.harness import make_settings
from tests.fakes.vault import FakeVault

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
TENANT = "11111111-2222-3333-4444-555555555555"
OTHER_TENANT = "66666666-7777-8888-9999-000000000000"


@pytest.fixture
def world() -> tuple[Fleet, FakeVault, Registry]:
    settings = make_settings()
    vault = FakeVault(name_prefix=settings.registry.prefix, now=lambda: NOW)
    return Fleet(settings, load_catalog(), vault, lambda: NOW), vault, settings.registry


async def put(
    vault: FakeVault,
    registry: Registry,
    integration: str,
    kind: SecretKind,
    expires: datetime | None,
    tenant: str = TENANT,
    **extra: str,
) -> None:
    tags = registry.tags(tenant, integration, kind.value, "app-object", "client-" + integration) | extra
    await vault.write(registry.secret_name(tenant, integration, kind), "value", "text/plain", tags, expires)


async def states(world_fleet: Fleet, **query: object) -> dict[tuple[str, str], FleetState]:
    rows = [row async for row in world_fleet.every(FleetQuery(**query))]  # type: ignore[arg-type]
    return {(row.tenant_id, row.integration): row.state for row in rows}


async def test_each_state_comes_from_the_records_alone(world: tuple[Fleet, FakeVault, Registry]) -> None:
    fleet_view, vault, registry = world
    year = NOW + timedelta(days=365)
    issued = {Tag.ISSUED_AT: iso(NOW - timedelta(days=300)), Tag.VERIFIED: Tag.TRUE}
    await put(vault, registry, "m365-defender", SecretKind.CLIENT_SECRET, year, **issued)
    await put(vault, registry, "sentinel", SecretKind.CLIENT_SECRET, NOW + timedelta(days=10), **issued)  # due
    await put(vault, registry, "defender-endpoint", SecretKind.CLIENT_SECRET, NOW - timedelta(hours=1))  # expired
    grace = {Tag.RETIRE_AFTER: iso(NOW + timedelta(hours=5)), Tag.ROTATED_AT: iso(NOW - timedelta(hours=19))}
    await put(vault, registry, "m365-defender", SecretKind.CLIENT_SECRET, year, OTHER_TENANT, **issued, **grace)
    failing = {Tag.LAST_PROBLEM: f"upstream-error {iso(NOW)} 3"}
    await put(vault, registry, "sentinel", SecretKind.CLIENT_SECRET, year, OTHER_TENANT, **issued, **failing)
    revoked = {Tag.LAST_PROBLEM: "consent-required"}  # a value in another shape: one failure of that problem
    await put(vault, registry, "defender-endpoint", SecretKind.CLIENT_SECRET, year, OTHER_TENANT, **revoked)
    await put(vault, registry, "retired-integration", SecretKind.CLIENT_SECRET, year)  # left the catalog
    federated = {Tag.CREDENTIAL_TYPE: "federated"}
    await put(
        vault,
        registry,
        "m365-defender",
        SecretKind.CLIENT_ID,
        None,
        "aaaaaaaa-2222-3333-4444-555555555555",
        **federated,
    )
    # Ids, tenant ids and other deployments' secrets make no row.
    await put(vault, registry, "sentinel", SecretKind.CLIENT_ID, None, **{Tag.CREDENTIAL_TYPE: "secret"})
    await put(vault, registry, "sentinel", SecretKind.TENANT_ID, None)
    await vault.write("someone-else", "v", "text/plain", {Tag.MANAGED_BY: "another-prefix"}, year)

    assert await states(fleet_view) == {
        (TENANT, "m365-defender"): FleetState.HEALTHY,
        (TENANT, "sentinel"): FleetState.DUE,
        (TENANT, "defender-endpoint"): FleetState.EXPIRED,
        (OTHER_TENANT, "m365-defender"): FleetState.IN_GRACE,
        (OTHER_TENANT, "sentinel"): FleetState.FAILING,
        (OTHER_TENANT, "defender-endpoint"): FleetState.CONSENT_REVOKED,
        (TENANT, "retired-integration"): FleetState.UNMANAGED_LEFTOVER,
        ("aaaaaaaa-2222-3333-4444-555555555555", "m365-defender"): FleetState.HEALTHY,
    }
    rows = {(r.tenant_id, r.integration): r async for r in fleet_view.every(FleetQuery())}
    problem = rows[OTHER_TENANT, "sentinel"].last_problem
    assert problem is not None and (problem.type, problem.at, problem.failures) == ("upstream-error", NOW, 3)
    assert rows[OTHER_TENANT, "m365-defender"].last_rotated == NOW - timedelta(hours=19)
    assert rows["aaaaaaaa-2222-3333-4444-555555555555", "m365-defender"].credential_type == "federated"
    assert rows[TENANT, "m365-defender"].client_id == "client-m365-defender"

    assert set(await states(fleet_view, states=frozenset({FleetState.FAILING, FleetState.EXPIRED}))) == {
        (OTHER_TENANT, "sentinel"), (TENANT, "defender-endpoint"),
    }  # fmt: skip
    assert {t for t, _ in await states(fleet_view, tenant_id=OTHER_TENANT)} == {OTHER_TENANT}
    soon = await states(fleet_view, expiring_before=NOW + timedelta(days=30))
    assert set(soon) == {(TENANT, "sentinel"), (TENANT, "defender-endpoint")}, "federated rows never expire"


async def test_a_superseded_credential_is_a_second_row_in_grace(world: tuple[Fleet, FakeVault, Registry]) -> None:
    fleet_view, vault, registry = world
    superseded = {Tag.SUPERSEDED_BY: "certificate", Tag.RETIRE_AFTER: iso(NOW + timedelta(hours=2))}
    await put(vault, registry, "sentinel", SecretKind.CLIENT_SECRET, NOW + timedelta(days=200), **superseded)
    await put(vault, registry, "sentinel", SecretKind.VENDOR_CERTIFICATE, NOW + timedelta(days=300))
    rows = [row async for row in fleet_view.every(FleetQuery())]
    assert sorted((r.credential_type, r.state.value, r.superseded) for r in rows) == [
        ("secret", "in-grace", True), ("vendor-certificate", "healthy", False),
    ]  # fmt: skip


async def test_a_page_stops_after_its_share_of_the_listing_and_the_token_resumes_it(
    world: tuple[Fleet, FakeVault, Registry], monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet_view, vault, registry = world
    for n in range(60):  # 60 rows, with ids beside them: 120 records, 5 listing pages
        tenant = f"{n:08d}-2222-3333-4444-555555555555"
        await put(vault, registry, "m365-defender", SecretKind.CLIENT_SECRET, NOW + timedelta(days=100 + n), tenant)
        await put(vault, registry, "m365-defender", SecretKind.CLIENT_ID, None, tenant)
    monkeypatch.setattr(fleet, "LISTING_PAGES_PER_PAGE", 2)
    pages, seen, token = 0, [], None
    while True:
        page = await fleet_view.page(FleetQuery(continuation_token=token))
        pages += 1
        assert page.listed <= 50
        seen += [row.tenant_id for row in page.rows]
        token = page.continuation_token
        if token is None:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 60  # 5 pages of secrets, then the (empty) certificates


def test_the_report_puts_the_most_pressing_first_and_counts_expiries_by_week() -> None:
    from shared.usecases.fleet import FleetRow

    def row(state: FleetState, days: float | None, integration: str = "m365-defender") -> FleetRow:
        expires = NOW + timedelta(days=days) if days is not None else None
        return FleetRow(TENANT, integration, "secret", None, expires, None, True, state, None, False)

    rows = [
        row(FleetState.HEALTHY, 80), row(FleetState.HEALTHY, 3), row(FleetState.EXPIRED, -1),
        row(FleetState.DUE, 20), row(FleetState.HEALTHY, None, "federated"), row(FleetState.HEALTHY, 200),
    ]  # fmt: skip
    assert [(r.state.value, r.expires) for r in ordered(rows)][:3] == [
        ("expired", NOW - timedelta(days=1)), ("due", NOW + timedelta(days=20)), ("healthy", NOW + timedelta(days=3)),
    ]  # fmt: skip
    weeks = expiries_by_week(rows, NOW)
    assert len(weeks) == 13 and weeks[0] == 1 and weeks[2] == 1 and weeks[11] == 1 and sum(weeks) == 3
    text = report_text(rows, NOW)
    assert text[0] == "6 registrations: 1 expired, 1 due, 4 healthy"
    assert report_csv(rows).splitlines()[1].startswith("expired,")
