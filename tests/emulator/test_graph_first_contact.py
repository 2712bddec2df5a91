"""What real Graph does that the stand-in once hid, each pinned with its source in emulator/FIDELITY.md."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.directory.deleted_items.graph_application.graph_application_request_builder import (
    GraphApplicationRequestBuilder,
)
from msgraph.generated.models.app_role_assignment import AppRoleAssignment
from msgraph.generated.models.application import Application
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.service_principal import ServicePrincipal
from msgraph.graph_service_client import GraphServiceClient

from emulator.launcher import StandIn
from tests.emulator.directory import (
    GRAPH_APP_ID,
    add_password,
    create_if_missing,
    grant,
    role_id,
    upsert_app,
    upsert_service_principal,
)
from tests.emulator.sdk import graph_client, secret_credential


@pytest.fixture
def no_faults(stand_in: StandIn) -> Iterator[StandIn]:
    stand_in.clear_faults()
    yield stand_in
    stand_in.clear_faults()


def _error(error: ODataError) -> tuple[int | None, str, str]:
    assert error.error is not None
    return error.response_status_code, str(error.error.code), str(error.error.message)


async def _identity_with(graph: GraphServiceClient, name: str, roles: list[str]) -> tuple[str, str, str]:
    """Another automation identity (an app with a secret) holding these Graph roles:
    (client id, secret, service principal id)."""
    app = await upsert_app(graph, name)
    sp = await upsert_service_principal(graph, str(app.app_id))
    for role in roles:
        await grant(graph, str(sp.id), GRAPH_APP_ID, role)
    secret = await add_password(graph, str(app.id))
    return str(app.app_id), str(secret.secret_text), str(sp.id)


async def test_granting_needs_application_read_all_beside_app_role_assignment(
    graph: GraphServiceClient, stand_in: StandIn, no_faults: StandIn
) -> None:
    unique = uuid.uuid4().hex[:10]
    client_id, secret, sp_id = await _identity_with(
        graph, f"granter-{unique}", ["Application.ReadWrite.OwnedBy", "AppRoleAssignment.ReadWrite.All"]
    )
    target = await upsert_app(graph, f"target-{unique}")
    target_sp = await upsert_service_principal(graph, str(target.app_id))
    resource_id, app_role_id = await role_id(graph, GRAPH_APP_ID, "User.Read.All")
    body = AppRoleAssignment(principal_id=str(target_sp.id), resource_id=resource_id, app_role_id=app_role_id)

    without_read = graph_client(stand_in, secret_credential(stand_in, stand_in.home_tenant_id, client_id, secret))
    with pytest.raises(ODataError) as denied:
        await without_read.service_principals.by_service_principal_id(resource_id).app_role_assigned_to.post(body)
    assert _error(denied.value)[:2] == (403, "Authorization_RequestDenied")

    # The documented least privilege: AppRoleAssignment.ReadWrite.All and Application.Read.All.
    await grant(graph, sp_id, GRAPH_APP_ID, "Application.Read.All")
    with_read = graph_client(stand_in, secret_credential(stand_in, stand_in.home_tenant_id, client_id, secret))
    granted = await with_read.service_principals.by_service_principal_id(resource_id).app_role_assigned_to.post(body)
    assert granted is not None and str(granted.app_role_id) == app_role_id


async def test_owned_by_caller_does_not_own_the_service_principal_it_creates(
    graph: GraphServiceClient, no_faults: StandIn
) -> None:
    app = await upsert_app(graph, f"sp-owner-{uuid.uuid4().hex[:10]}")
    sp = await upsert_service_principal(graph, str(app.app_id))

    owners = await graph.service_principals.by_service_principal_id(str(sp.id)).owners.get()
    assert owners is not None and owners.value == []
    # So Application.ReadWrite.OwnedBy may not change it afterwards, not even by its appId upsert.
    with pytest.raises(ODataError) as denied:
        await graph.service_principals_with_app_id(str(app.app_id)).patch(
            ServicePrincipal(account_enabled=True), request_configuration=create_if_missing()
        )
    assert _error(denied.value)[:2] == (403, "Authorization_RequestDenied")
    # The application itself stays the creator's to manage.
    await graph.applications.by_application_id(str(app.id)).patch(Application(notes="still mine"))


async def test_a_deleted_app_keeps_its_unique_name_until_purged(graph: GraphServiceClient, no_faults: StandIn) -> None:
    unique_name = f"deleted-{uuid.uuid4().hex[:10]}"
    app = await upsert_app(graph, unique_name)
    await graph.applications.by_application_id(str(app.id)).delete()

    with pytest.raises(ODataError) as held:
        await graph.applications_with_unique_name(unique_name).patch(
            Application(display_name="again"), request_configuration=create_if_missing()
        )
    assert _error(held.value)[0] == 400
    query = GraphApplicationRequestBuilder.GraphApplicationRequestBuilderGetQueryParameters(
        filter=f"uniqueName eq '{unique_name}'"
    )
    deleted = await graph.directory.deleted_items.graph_application.get(RequestConfiguration(query_parameters=query))
    assert deleted is not None and [str(a.id) for a in deleted.value or []] == [str(app.id)]

    await graph.directory.deleted_items.by_directory_object_id(str(app.id)).delete()
    created = await graph.applications_with_unique_name(unique_name).patch(
        Application(display_name="again"), request_configuration=create_if_missing()
    )
    assert created is not None and created.id != app.id


async def test_grants_to_a_replicating_principal_answer_404_then_not_a_valid_reference_update(
    graph: GraphServiceClient, stand_in: StandIn, no_faults: StandIn
) -> None:
    app = await upsert_app(graph, f"lagging-{uuid.uuid4().hex[:10]}")
    stand_in.set_faults(servicePrincipal=1200)
    created = await graph.service_principals_with_app_id(str(app.app_id)).patch(
        ServicePrincipal(), request_configuration=create_if_missing()
    )
    assert created is not None
    resource_id, app_role_id = await role_id(graph, GRAPH_APP_ID, "User.Read.All")
    body = AppRoleAssignment(principal_id=str(created.id), resource_id=resource_id, app_role_id=app_role_id)
    answers: list[tuple[int | None, str, str]] = []
    for _ in range(200):  # bounded: the lag ends in 1.2 s, each attempt is a few ms apart
        try:
            await graph.service_principals.by_service_principal_id(resource_id).app_role_assigned_to.post(body)
            break
        except ODataError as error:
            answers.append(_error(error))
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the grant never landed")
    kinds = [(status, code) for status, code, _ in answers]
    assert (404, "Request_ResourceNotFound") in kinds
    assert (400, "Request_BadRequest", "Not a valid reference update.") in answers
    # 404 first, then the write path's 400: never the other way round.
    assert kinds.index((404, "Request_ResourceNotFound")) < kinds.index((400, "Request_BadRequest"))
