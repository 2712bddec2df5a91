"""The Directory contract without faults: apps by unique name, passwords, service principals, grants, owners,
soft delete and purge. Each case runs against the fake and against GraphDirectory on the stand-in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.errors import UpstreamError
from shared.domain.model import Assignment, RoleRef
from shared.domain.ports import NameHeldByDeletedApplication
from tests.contract.conftest import ROLE_VALUES, Ports, graph_api, in_days
from tests.fakes import GRAPH_APP_ID


async def test_upserting_the_same_unique_name_twice_creates_once_and_then_converges(ports: Ports) -> None:
    unique = ports.unique("app")
    graph = await graph_api(ports)
    role = graph.roles_by_value[ROLE_VALUES[0]]

    created, was_created = await ports.directory.upsert_application(ports.tenant_id, unique, ports.spec("One", (role,)))
    again, created_again = await ports.directory.upsert_application(ports.tenant_id, unique, ports.spec("One", (role,)))

    assert (was_created, created_again) == (True, False)
    assert (again.object_id, again.app_id, again.unique_name) == (created.object_id, created.app_id, unique)
    assert again.display_name == "One"
    assert set(again.tags) == {"contract", ports.prefix}
    assert again.required_roles == frozenset({RoleRef(GRAPH_APP_ID, role)})
    assert again.passwords == ()

    converged, created_third = await ports.directory.upsert_application(ports.tenant_id, unique, ports.spec("Two"))
    assert (converged.object_id, created_third) == (created.object_id, False)
    assert (converged.display_name, converged.required_roles) == ("Two", frozenset())


async def test_find_application_sees_a_created_app_and_none_for_an_unknown_name(ports: Ports) -> None:
    unique = ports.unique("app")
    assert await ports.directory.find_application(ports.tenant_id, unique) is None

    created, _ = await ports.directory.upsert_application(ports.tenant_id, unique, ports.spec("Found"))
    found = await ports.directory.find_application(ports.tenant_id, unique)

    assert found is not None
    assert (found.object_id, found.app_id, found.unique_name, found.display_name) == (
        created.object_id, created.app_id, unique, "Found",
    )  # fmt: skip
    assert found.notes == "created by tests/contract"
    assert found.sign_in_audience == "AzureADMyOrg"
    assert found.created is not None and abs(found.created - datetime.now(UTC)) < timedelta(minutes=1)


async def test_update_application_converges_an_app_by_object_id(ports: Ports) -> None:
    unique = ports.unique("app")
    created, _ = await ports.directory.upsert_application(ports.tenant_id, unique, ports.spec("Before"))
    role = (await graph_api(ports)).roles_by_value[ROLE_VALUES[1]]

    await ports.directory.update_application(ports.tenant_id, created.object_id, ports.spec("After", (role,)))

    found = await ports.directory.find_application(ports.tenant_id, unique)
    assert found is not None
    assert (found.display_name, found.required_roles) == ("After", frozenset({RoleRef(GRAPH_APP_ID, role)}))


async def test_resource_api_offers_roles_by_value_with_the_catalog_ids_and_none_for_an_unknown_app(
    ports: Ports,
) -> None:
    graph = await graph_api(ports)
    offered = {value: graph.roles_by_value[value] for value in ROLE_VALUES}

    assert graph.app_id == GRAPH_APP_ID
    assert offered == {
        "User.Read.All": "df021288-bdef-4463-88db-98f22de89214",
        "Group.Read.All": "5b567255-7703-4780-807c-7be8301ae99b",
    }
    assert await ports.directory.resource_api(ports.tenant_id, str(uuid.uuid4())) is None


async def test_a_password_added_shows_on_the_app_and_a_second_removal_finds_it_gone(ports: Ports) -> None:
    unique = ports.unique("app")
    app, _ = await ports.directory.upsert_application(ports.tenant_id, unique, ports.spec("Secrets"))
    end = in_days(30)

    new = await ports.directory.add_password(ports.tenant_id, app.object_id, "contract secret", end)

    assert (new.info.display_name, new.info.end) == ("contract secret", end)
    assert new.info.hint == new.secret.reveal()[:3]
    assert abs(new.info.start - datetime.now(UTC)) < timedelta(minutes=1)
    found = await ports.directory.find_application(ports.tenant_id, unique)
    assert found is not None
    (listed,) = found.passwords
    assert (listed.key_id, listed.display_name, listed.end, listed.hint) == (
        new.info.key_id, "contract secret", end, new.info.hint,
    )  # fmt: skip

    assert await ports.directory.remove_password(ports.tenant_id, app.object_id, new.info.key_id) is True
    found = await ports.directory.find_application(ports.tenant_id, unique)
    assert found is not None and found.passwords == ()
    assert await ports.directory.remove_password(ports.tenant_id, app.object_id, new.info.key_id) is False


async def test_upsert_service_principal_creates_once_then_finds_the_same_one(ports: Ports) -> None:
    app, _ = await ports.directory.upsert_application(ports.tenant_id, ports.unique("app"), ports.spec("Principal"))
    assert await ports.directory.find_service_principal(ports.tenant_id, app.app_id) is None

    principal, created = await ports.directory.upsert_service_principal(ports.tenant_id, app.app_id, app_is_new=True)
    again, created_again = await ports.directory.upsert_service_principal(ports.tenant_id, app.app_id)

    assert (created, created_again) == (True, False)
    assert again == principal
    assert await ports.directory.find_service_principal(ports.tenant_id, app.app_id) == principal


async def test_granting_twice_counts_as_granted_and_revoking_twice_finds_it_gone(ports: Ports) -> None:
    app, _ = await ports.directory.upsert_application(ports.tenant_id, ports.unique("app"), ports.spec("Grants"))
    principal, _ = await ports.directory.upsert_service_principal(ports.tenant_id, app.app_id, app_is_new=True)
    graph = await graph_api(ports)
    roles = [(graph.object_id, graph.roles_by_value[value]) for value in ROLE_VALUES]
    role_ids = tuple(role for _, role in roles)
    assert await ports.directory.assignments(ports.tenant_id, principal) == []

    first = await ports.directory.grant(ports.tenant_id, principal, roles)
    second = await ports.directory.grant(ports.tenant_id, principal, roles)  # already granted: not an error

    assert (first.granted, first.pending, first.retry_after) == (role_ids, (), None)
    assert (second.granted, second.pending, second.retry_after) == (role_ids, (), None)
    held = await ports.directory.assignments(ports.tenant_id, principal)
    assert sorted((a.resource_object_id, a.app_role_id) for a in held) == sorted(roles)  # once each
    assert all(isinstance(a, Assignment) and a.id for a in held)

    revoked = held[0]
    assert await ports.directory.revoke(ports.tenant_id, revoked.resource_object_id, revoked.id) is True
    assert await ports.directory.revoke(ports.tenant_id, revoked.resource_object_id, revoked.id) is False
    assert set(await ports.directory.assignments(ports.tenant_id, principal)) == set(held) - {revoked}


async def test_granting_a_role_the_resource_does_not_offer_is_graphs_400(ports: Ports) -> None:
    app, _ = await ports.directory.upsert_application(ports.tenant_id, ports.unique("app"), ports.spec("Unoffered"))
    principal, _ = await ports.directory.upsert_service_principal(ports.tenant_id, app.app_id, app_is_new=True)
    graph = await graph_api(ports)

    with pytest.raises(UpstreamError) as refused:
        await ports.directory.grant(ports.tenant_id, principal, [(graph.object_id, str(uuid.uuid4()))])

    assert (refused.value.service, refused.value.upstream_status) == ("graph", 400)
    assert refused.value.upstream_code == "Request_BadRequest"
    assert await ports.directory.assignments(ports.tenant_id, principal) == []


async def test_the_caller_owns_the_apps_it_creates_and_they_have_no_federated_credentials(ports: Ports) -> None:
    app, _ = await ports.directory.upsert_application(ports.tenant_id, ports.unique("app"), ports.spec("Owned"))

    caller = await ports.directory.caller_object_id(ports.tenant_id)

    assert await ports.directory.application_owners(ports.tenant_id, app.object_id) == frozenset({caller})
    assert await ports.directory.federated_credentials(ports.tenant_id, app.object_id) == ()


async def test_a_deleted_app_holds_its_name_until_purged(ports: Ports) -> None:
    unique = ports.unique("app")
    app, _ = await ports.directory.upsert_application(ports.tenant_id, unique, ports.spec("Deleted"))
    await ports.directory.upsert_service_principal(ports.tenant_id, app.app_id, app_is_new=True)
    assert await ports.directory.find_deleted_application(ports.tenant_id, unique) is None

    assert await ports.directory.delete_application(ports.tenant_id, app.object_id) is True
    assert await ports.directory.delete_application(ports.tenant_id, app.object_id) is False

    assert await ports.directory.find_application(ports.tenant_id, unique) is None
    assert await ports.directory.find_service_principal(ports.tenant_id, app.app_id) is None  # deleted with it
    assert await ports.directory.find_deleted_application(ports.tenant_id, unique) == app.object_id
    with pytest.raises(NameHeldByDeletedApplication) as held:
        await ports.directory.upsert_application(ports.tenant_id, unique, ports.spec("Deleted"))
    assert held.value.deleted_object_id == app.object_id

    assert await ports.directory.purge_deleted_application(ports.tenant_id, app.object_id) is True
    assert await ports.directory.purge_deleted_application(ports.tenant_id, app.object_id) is False
    assert await ports.directory.find_deleted_application(ports.tenant_id, unique) is None
    anew, created = await ports.directory.upsert_application(ports.tenant_id, unique, ports.spec("Deleted"))
    assert created is True and anew.object_id != app.object_id
