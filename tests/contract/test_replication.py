"""The Directory contract under Entra's replication lag: right after a write, reads miss the new object and
dependent calls raise `NotReplicatedYet` (or leave grants pending), and once Entra catches up they work.

The stand-in lags by time (its admin API's replication_lag_ms); the fake by its `replication_steps` switch."""

from __future__ import annotations

import pytest

from shared.domain.ports import NotReplicatedYet
from tests.contract.conftest import ROLE_VALUES, Ports, graph_api, in_days


async def test_a_new_app_is_invisible_to_reads_and_dependent_calls_until_entra_catches_up(ports: Ports) -> None:
    unique = ports.unique("app")
    ports.lag("application")
    app, created = await ports.directory.upsert_application(ports.tenant_id, unique, ports.spec("Lagging"))
    assert created is True  # the upsert by unique name sees the write replica

    assert await ports.directory.find_application(ports.tenant_id, unique) is None
    with pytest.raises(NotReplicatedYet):  # converging writes, then reads the app back
        await ports.directory.upsert_application(ports.tenant_id, unique, ports.spec("Lagging"))
    with pytest.raises(NotReplicatedYet):
        await ports.directory.upsert_service_principal(ports.tenant_id, app.app_id, app_is_new=True)
    with pytest.raises(NotReplicatedYet):
        await ports.directory.upsert_service_principal(ports.tenant_id, app.app_id)
    with pytest.raises(NotReplicatedYet):
        await ports.directory.add_password(ports.tenant_id, app.object_id, "too soon", in_days(30))
    with pytest.raises(NotReplicatedYet):
        await ports.directory.application_owners(ports.tenant_id, app.object_id)
    with pytest.raises(NotReplicatedYet):
        await ports.directory.update_application(ports.tenant_id, app.object_id, ports.spec("Renamed"))

    await ports.settle()

    found = await ports.directory.find_application(ports.tenant_id, unique)
    assert found is not None and (found.object_id, found.display_name) == (app.object_id, "Lagging")
    principal, sp_created = await ports.directory.upsert_service_principal(ports.tenant_id, app.app_id, app_is_new=True)
    assert sp_created is True and principal
    new = await ports.directory.add_password(ports.tenant_id, app.object_id, "in time", in_days(30))
    assert new.info.display_name == "in time"


async def test_deleting_an_app_entra_has_not_replicated_yet_reports_it_absent(ports: Ports) -> None:
    """What Graph answers (404) and the adapter reports (False, "already gone") while a new app replicates:
    the app is still there afterwards. Pinned here so the fake cannot pretend otherwise."""
    unique = ports.unique("app")
    ports.lag("application")
    app, _ = await ports.directory.upsert_application(ports.tenant_id, unique, ports.spec("Undeletable yet"))

    assert await ports.directory.delete_application(ports.tenant_id, app.object_id) is False

    await ports.settle()
    assert await ports.directory.find_application(ports.tenant_id, unique) is not None
    assert await ports.directory.delete_application(ports.tenant_id, app.object_id) is True


async def test_a_new_service_principal_cannot_be_granted_to_until_entra_catches_up(ports: Ports) -> None:
    app, _ = await ports.directory.upsert_application(ports.tenant_id, ports.unique("app"), ports.spec("SP lag"))
    graph = await graph_api(ports)
    roles = [(graph.object_id, graph.roles_by_value[value]) for value in ROLE_VALUES]
    ports.lag("servicePrincipal")

    principal, created = await ports.directory.upsert_service_principal(ports.tenant_id, app.app_id, app_is_new=True)
    assert created is True

    assert await ports.directory.find_service_principal(ports.tenant_id, app.app_id) is None
    with pytest.raises(NotReplicatedYet):
        await ports.directory.assignments(ports.tenant_id, principal)
    pending = await ports.directory.grant(ports.tenant_id, principal, roles)
    assert (pending.granted, pending.pending, pending.retry_after) == ((), tuple(r for _, r in roles), None)

    await ports.settle()

    assert await ports.directory.find_service_principal(ports.tenant_id, app.app_id) == principal
    granted = await ports.directory.grant(ports.tenant_id, principal, roles)
    assert (granted.granted, granted.pending) == (tuple(r for _, r in roles), ())
    held = await ports.directory.assignments(ports.tenant_id, principal)
    assert sorted((a.resource_object_id, a.app_role_id) for a in held) == sorted(roles)


async def test_upserting_a_service_principal_again_before_it_replicates_is_not_replicated_yet(ports: Ports) -> None:
    app, _ = await ports.directory.upsert_application(ports.tenant_id, ports.unique("app"), ports.spec("SP again"))
    ports.lag("servicePrincipal")
    principal, created = await ports.directory.upsert_service_principal(ports.tenant_id, app.app_id, app_is_new=True)
    assert created is True

    with pytest.raises(NotReplicatedYet):  # a rerun's upsert, while the read path does not show it yet
        await ports.directory.upsert_service_principal(ports.tenant_id, app.app_id)

    await ports.settle()
    assert await ports.directory.upsert_service_principal(ports.tenant_id, app.app_id) == (principal, False)
